//! The decode stage: frame batches in, rows written straight into per-table batches, finished
//! batches pushed to the buffer. One plain thread per worker: it is CPU work that never
//! waits on anything but its queue, and the buffer's push.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;

use crate::batch::{Batch, BatchLimits, Batcher};
use crate::budget::{Charge, MemoryBudget};
use crate::buffer::Writer;
use crate::decode::TimeContext;
use crate::decode::time::SenderZone;
use crate::listen::FrameBatch;
use crate::metrics::Metrics;
use crate::record::{ProblemCounts, Reception, RowBuilder, Table};

/// Frames -> rows -> batches, until the frame queue closes and is empty.
///
/// Memory: a frame batch arrives with its charge on the budget and gives it back once
/// decoded; the rows' bytes are charged while their batch is open and travel with it into
/// the buffer.
pub fn decode(
    builder: RowBuilder,
    zone: SenderZone,
    limits: BatchLimits,
    frames: flume::Receiver<FrameBatch>,
    writer: Writer,
    budget: Arc<MemoryBudget>,
    metrics: Arc<Metrics>,
) {
    let mut batcher = Batcher::new(limits);
    let mut open = budget.charge(0);
    // The text of the last peer address, so a connection's frames format it once.
    let mut peer_text = (None::<IpAddr>, String::new());
    let send = |batch: Batch, batcher: &Batcher, open: &mut Charge| {
        let size = batch.body.capacity();
        open.set(batcher.open_bytes() + size);
        writer.push(batch, open.split(size));
    };
    loop {
        let wait = batcher.next_due(Instant::now());
        let fb = match frames.recv_timeout(wait) {
            Ok(fb) => fb,
            Err(flume::RecvTimeoutError::Timeout) => {
                for batch in batcher.take_aged(Instant::now()) {
                    send(batch, &batcher, &mut open);
                }
                continue;
            }
            Err(flume::RecvTimeoutError::Disconnected) => break,
        };
        let received_at = fb.received_at.unwrap_or_else(Utc::now);
        let now = Instant::now();
        let mut counts = ProblemCounts::default();
        let (mut cef, mut syslog) = (0u64, 0u64);
        for (message, info) in fb.iter() {
            if peer_text.0 != info.peer {
                peer_text = (
                    info.peer,
                    info.peer.map(|p| p.to_string()).unwrap_or_default(),
                );
            }
            let sender_zone = match &fb.zones {
                Some(rules) => rules.for_peer(info.peer, zone),
                None => zone,
            };
            let rx = Reception {
                time: TimeContext::new(received_at, sender_zone),
                peer: info.peer.map(|_| peer_text.1.as_str()),
                truncated: info.truncated,
            };
            let done = builder.convert(message, &rx, &mut counts, |table, write| {
                match table {
                    Table::CommonSecurityLog => cef += 1,
                    Table::Syslog => syslog += 1,
                }
                batcher.push(table, now, write)
            });
            if let Some(done) = done {
                send(done, &batcher, &mut open);
            }
        }
        open.set(batcher.open_bytes());
        drop(fb);
        Metrics::add(&metrics.rows_cef, cef);
        Metrics::add(&metrics.rows_syslog, syslog);
        metrics.add_problems(&counts);
        for batch in batcher.take_aged(Instant::now()) {
            send(batch, &batcher, &mut open);
        }
    }
    for batch in batcher.take_all() {
        send(batch, &batcher, &mut open);
    }
}
