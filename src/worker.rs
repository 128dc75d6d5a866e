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
use crate::filter::{Predicate, ProjectAway};
use crate::listen::{FrameBatch, SenderRules};
use crate::metrics::{Metrics, OutputCounters};
use crate::record::{ProblemCounts, Reception, RowBuilder, Table};
use crate::row::{ForcedFormat, JsonShape, json_len, write_json_shaped};

/// One output as the decode stage sees it: which rows it takes, which columns it leaves
/// out, how its API wants the JSON, where its batches go, and its counters. This is the one
/// place a row takes its output's shape: batches, the spool and dead letters hold rows as
/// the output sends them.
pub struct Tap {
    pub filter: Option<Predicate>,
    pub project_away: ProjectAway,
    pub json_shape: JsonShape,
    pub writer: Writer,
    pub counters: Arc<OutputCounters>,
}

impl Tap {
    /// Takes every row whole and as built: the row can go straight to JSON.
    fn takes_all(&self) -> bool {
        self.filter.is_none()
            && self.project_away.is_empty()
            && self.json_shape == JsonShape::AS_BUILT
    }
}

/// A tap with its open batches and their charge on the budget.
struct Lane {
    tap: Tap,
    batcher: Batcher,
    open: Charge,
}

impl Lane {
    fn send(&mut self, batch: Batch) {
        let size = batch.body.capacity();
        self.open.set(self.batcher.open_bytes() + size);
        self.tap.writer.push(batch, self.open.split(size));
    }
}

/// Frames -> rows -> batches, until the frame queue closes and is empty. Each row is built
/// once and written into the batches of every output whose `where` keeps it.
///
/// Memory: a frame batch arrives with its charge on the budget and gives it back once
/// decoded; the rows' bytes are charged while their batch is open and travel with it into
/// the buffer.
pub fn decode(
    builder: RowBuilder,
    zone: SenderZone,
    limits: BatchLimits,
    frames: flume::Receiver<FrameBatch>,
    taps: Vec<Tap>,
    budget: Arc<MemoryBudget>,
    metrics: Arc<Metrics>,
) {
    let mut lanes: Vec<Lane> = taps
        .into_iter()
        .map(|tap| Lane {
            tap,
            batcher: Batcher::new(limits),
            open: budget.charge(0),
        })
        .collect();
    // One output that takes every row whole: no row value is looked at twice.
    let direct = lanes.len() == 1 && lanes[0].tap.takes_all();
    // The last sender (and its listener's zone rules): its address as text and its zone,
    // worked out once for a connection's frames, not per message.
    let mut peer = PeerCache::default();
    // For the length of rows an output filters out (its `bytes_not_sent`), which are
    // measured, not written.
    let mut scratch = Vec::with_capacity(64);
    loop {
        let now = Instant::now();
        let wait = lanes
            .iter()
            .map(|l| l.batcher.next_due(now))
            .min()
            .unwrap_or(limits.max_age);
        let fb = match frames.recv_timeout(wait) {
            Ok(fb) => fb,
            Err(flume::RecvTimeoutError::Timeout) => {
                for lane in &mut lanes {
                    for batch in lane.batcher.take_aged(Instant::now()) {
                        lane.send(batch);
                    }
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
                format: peer.format,
            };
            if direct {
                let lane = &mut lanes[0];
                let done = builder.convert(message, &rx, &mut counts, |table, write| {
                    match table {
                        Table::CommonSecurityLog => cef += 1,
                        Table::Syslog => syslog += 1,
                    }
                    lane.batcher.push(table, now, write)
                });
                Metrics::add(&lane.tap.counters.rows_kept, 1);
                if let Some(done) = done {
                    lane.send(done);
                }
                continue;
            }
            builder.convert_row(message, &rx, &mut counts, |row| {
                match row.table {
                    Table::CommonSecurityLog => cef += 1,
                    Table::Syslog => syslog += 1,
                }
                for lane in &mut lanes {
                    let tap = &lane.tap;
                    if tap.filter.as_ref().is_some_and(|f| !f.keeps(row)) {
                        let len = json_len(row, &mut scratch);
                        Metrics::add(&tap.counters.rows_filtered, 1);
                        Metrics::add(&tap.counters.bytes_not_sent, len as u64 + 1);
                        continue;
                    }
                    Metrics::add(&tap.counters.rows_kept, 1);
                    let (away, shape) = (&tap.project_away, &tap.json_shape);
                    let mut written = Default::default();
                    let done = lane.batcher.push(row.table, now, |out| {
                        written = write_json_shaped(row, shape, |c| !away.removes(c), out);
                    });
                    let written: crate::row::Written = written;
                    if written.left_out > 0 {
                        Metrics::add(&tap.counters.bytes_not_sent, written.left_out as u64);
                    }
                    if written.values_cut > 0 {
                        Metrics::add(&metrics.values_truncated, written.values_cut);
                    }
                    if let Some(done) = done {
                        lane.send(done);
                    }
                }
            });
        }
        for lane in &mut lanes {
            lane.open.set(lane.batcher.open_bytes());
        }
        drop(fb);
        Metrics::add(&metrics.rows_cef, cef);
        Metrics::add(&metrics.rows_syslog, syslog);
        metrics.add_problems(&counts);
        for lane in &mut lanes {
            for batch in lane.batcher.take_aged(Instant::now()) {
                lane.send(batch);
            }
        }
    }
    for lane in &mut lanes {
        for batch in lane.batcher.take_all() {
            lane.send(batch);
        }
    }
}

/// What the worker knows about the sender of the frames it is decoding.
#[derive(Default)]
struct PeerCache {
    peer: Option<IpAddr>,
    rules: Option<Arc<SenderRules>>,
    text: String,
    zone: SenderZone,
    format: Option<ForcedFormat>,
    /// False until the first frame.
    filled: bool,
}

impl PeerCache {
    fn update(
        &mut self,
        peer: Option<IpAddr>,
        rules: Option<&Arc<SenderRules>>,
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
        self.format = rules.and_then(|r| r.format_of(peer));
        self.filled = true;
    }
}
