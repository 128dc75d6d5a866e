//! Spool: batches on disk between batching and the output, so that what was accepted
//! survives an outage, a restart or a crash.
//!
//! One file per batch ("chunk"), written under a temporary name, synced, and renamed: a chunk
//! either exists whole or not at all. A chunk is deleted only after the output confirmed
//! every row in it (or dead-lettered the ones the service refused for good). On start the
//! chunks left over are delivered first, in order.
//!
//! The format is meant to be read by people: a one-line JSON header, then the rows as JSON
//! lines.
//!
//! ```text
//! {"cefgate_spool":2,"seq":42,"table":"CommonSecurityLog","rows":2,"bytes":123,"crc32":3735928559}
//! {"TimeGenerated":...}
//! {"TimeGenerated":...}
//! ```
//!
//! In version 2 the checksum covers the header's fields as well as the body (see
//! [`format::header_crc`]): a flipped `table` would otherwise send CEF rows to the Syslog stream.
//! Version 1 chunks (checksum over the body only), left by an older release, are still read.
//!
//! A chunk whose header or checksum does not match (a torn write, a flipped bit) is moved to
//! `quarantine/`, reported and counted, and never blocks the others: no manual clean-up is
//! ever needed. A simple directory of files was chosen over an embedded store because it is
//! inspectable with `head` and `ls`, has no compaction or format migration, and a write is
//! one `write` + `fsync` + `rename`, which costs little next to a network request.
//!
//! What keeps one chunk from ever replacing another:
//! - the folder is locked (`flock` on its `lock` file, held while the spool is open): a
//!   second cefgate on the same path, or `cefgate spool drain` while one runs, is refused;
//! - only a name of exactly 16 lowercase hex digits and `.chunk` is a chunk, and numbering
//!   continues after the highest chunk that is valid (or that could not be read, or is in
//!   quarantine), with checked arithmetic: a stray `ffffffffffffffff.chunk` cannot wrap it;
//! - the final rename refuses to replace a file (`RENAME_NOREPLACE`), and a move to
//!   quarantine picks a name not taken.
//!
//! At start every chunk is checked by streaming it through the checksum (memory stays flat
//! whatever the folder holds); a file larger than any chunk cefgate writes is quarantined
//! without being read. A chunk that cannot be read (permissions, an I/O error) may be
//! intact: it is left where it is, reported and counted, and not queued this run.
//!
//! The newest chunks are also kept in memory (up to [`RECENT_BYTES`]): while the output keeps
//! up, it takes each batch from there instead of reading back the file just written (reading
//! and checking it was 7% of `run`'s CPU with the spool on). The file is still written and
//! synced first, and is what survives; a chunk that fell out of memory is read from disk.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | the settings, the [`Spool`] and its bookkeeping (queue, sizes, gauges) |
//! | `format.rs` | the chunk file: names, header, checksum, checking and reading a file |
//! | `writer.rs` | [`Spool::append`]: writing a chunk durably, waiting for space, retrying |
//! | `reader.rs` | [`Spool::next`] and [`Spool::read`]; removing, releasing, requeueing |
//! | `recent.rs` | the newest chunks kept in memory |
//! | `recovery.rs` | [`Spool::open`]: what a start finds in the folder |
//! | `quarantine.rs` | `quarantine/`: damaged chunks and strays, never replaced |
//! | `lock.rs` | the folder lock: one process per spool |
//! | `rename.rs` | the rename that never replaces a file |

mod format;
mod lock;
mod quarantine;
mod reader;
mod recent;
mod recovery;
mod rename;
#[cfg(test)]
mod test_support;
mod writer;

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};

use serde::Deserialize;

use crate::metrics::Metrics;
use format::chunk_name;
use recent::Recent;

pub use format::{MAX_CHUNK_BYTES, VERSION, chunk_seq, chunks_in};
pub use recent::RECENT_BYTES;
pub use recovery::Recovery;

/// When chunk writes are forced to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// fsync every chunk (and its directory entry) before it counts as accepted: survives a
    /// power cut.
    #[default]
    Batch,
    /// Leave it to the kernel: survives a crash of cefgate, not of the machine.
    Never,
}

#[derive(Debug, Clone)]
pub struct SpoolSettings {
    pub path: PathBuf,
    pub max_bytes: u64,
    pub fsync: FsyncPolicy,
}

/// A chunk waiting for delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub seq: u64,
    pub size: u64,
}

struct Inner {
    /// The next chunk number; `u64::MAX` means none is left (never reached in practice:
    /// it takes a chunk file numbered just under it).
    next_seq: u64,
    queued: VecDeque<Chunk>,
    bytes: u64,
    closed: bool,
    /// Shutting down: what is still in memory goes to disk even past `max_bytes`.
    overflow: bool,
    /// Shutting down: past this instant a chunk write that fails is not retried, and its
    /// rows are counted lost (the disk refused them and the shutdown deadline has passed).
    give_up_writes_at: Option<std::time::Instant>,
    /// When each chunk still on disk (waiting or being delivered) was written, in Unix ms,
    /// by sequence number: the first is the oldest.
    written: BTreeMap<u64, u64>,
    /// The newest chunks' batches, also on disk.
    recent: Recent,
}

fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The spool. Producers (decode threads) block in [`Spool::append`] while it is full;
/// the output takes chunks with [`Spool::next`] and removes them with [`Spool::remove`].
pub struct Spool {
    settings: SpoolSettings,
    quarantine: PathBuf,
    inner: Mutex<Inner>,
    space: Condvar,
    ready: tokio::sync::Notify,
    metrics: Arc<Metrics>,
    /// The `lock` file, `flock`ed for as long as the spool is open; closing it unlocks.
    _lock: fs::File,
}

/// Why the spool could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: String, source: io::Error },
    /// Another process holds the folder's lock: two writers would number their chunks
    /// alike and replace each other's.
    #[error(
        "spool {path} is in use by another cefgate{}: two instances on one spool would overwrite each other's chunks; stop the other one, or give this one its own [spool] path",
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    InUse { path: String, holder: Option<u32> },
}

impl Spool {
    fn path_of(&self, seq: u64) -> PathBuf {
        self.settings.path.join(chunk_name(seq))
    }

    fn update_gauges(&self) {
        let inner = self.inner.lock().expect("spool lock");
        self.metrics
            .spool_bytes
            .store(inner.bytes, Ordering::Relaxed);
        self.metrics
            .spool_chunks
            .store(inner.queued.len() as u64, Ordering::Relaxed);
        self.metrics.spool_oldest_chunk_unix_ms.store(
            inner.written.values().next().copied().unwrap_or(0),
            Ordering::Relaxed,
        );
    }
}
