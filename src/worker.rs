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
use crate::listen::{FrameBatch, ZoneRules};
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
    // The last sender (and its listener's zone rules): its address as text and its zone,
    // worked out once for a connection's frames, not per message.
    let mut peer = PeerCache::default();
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
            peer.update(info.peer, fb.zones.as_ref(), zone);
            let rx = Reception {
                time: TimeContext::new(received_at, peer.zone),
                peer: info.peer.map(|_| peer.text.as_str()),
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

/// What the worker knows about the sender of the frames it is decoding.
#[derive(Default)]
struct PeerCache {
    peer: Option<IpAddr>,
    rules: Option<Arc<ZoneRules>>,
    text: String,
    zone: SenderZone,
    /// False until the first frame.
    filled: bool,
}

impl PeerCache {
    fn update(
        &mut self,
        peer: Option<IpAddr>,
        rules: Option<&Arc<ZoneRules>>,
        default: SenderZone,
    ) {
        let same_rules = match (&self.rules, rules) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if self.filled && self.peer == peer && same_rules {
            return;
        }
        self.peer = peer;
        self.rules = rules.cloned();
        self.text = peer.map(|p| p.to_string()).unwrap_or_default();
        self.zone = rules.map_or(default, |r| r.for_peer(peer, default));
        self.filled = true;
    }
}
