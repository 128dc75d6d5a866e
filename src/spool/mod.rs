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
//! {"cefgate_spool":1,"seq":42,"table":"CommonSecurityLog","rows":2,"bytes":123,"crc32":3735928559}
//! {"TimeGenerated":...}
//! {"TimeGenerated":...}
//! ```
//!
//! A chunk whose header or checksum does not match (a torn write, a flipped bit) is moved to
//! `quarantine/`, reported and counted, and never blocks the others: no manual clean-up is
//! ever needed. A simple directory of files was chosen over an embedded store because it is
//! inspectable with `head` and `ls`, has no compaction or format migration, and a write is
//! one `write` + `fsync` + `rename`, which costs little next to a network request.
//!
//! The newest chunks are also kept in memory (up to [`RECENT_BYTES`]): while the output keeps
//! up, it takes each batch from there instead of reading back the file just written (reading
//! and checking it was 7% of `run`'s CPU with the spool on). The file is still written and
//! synced first, and is what survives; a chunk that fell out of memory is read from disk.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::batch::Batch;
use crate::metrics::Metrics;
use crate::record::Table;

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

#[derive(Serialize, Deserialize)]
struct Header {
    cefgate_spool: u32,
    seq: u64,
    table: String,
    rows: usize,
    bytes: usize,
    crc32: u32,
}

/// A chunk waiting for delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub seq: u64,
    pub size: u64,
}

struct Inner {
    next_seq: u64,
    queued: VecDeque<Chunk>,
    bytes: u64,
    closed: bool,
    /// Shutting down: what is still in memory goes to disk even past `max_bytes`.
    overflow: bool,
    /// When each chunk still on disk (waiting or being delivered) was written, in Unix ms,
    /// by sequence number: the first is the oldest.
    written: std::collections::BTreeMap<u64, u64>,
    /// The newest chunks' batches, oldest first, and their body bytes (at most
    /// [`RECENT_BYTES`]).
    recent: VecDeque<(u64, Batch)>,
    recent_bytes: usize,
}

/// How many bytes of the newest chunks are also kept in memory: four default batches.
pub const RECENT_BYTES: usize = 4 << 20;

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
}

/// Why the spool could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("spool {path}: {source}")]
pub struct SpoolError {
    pub path: String,
    pub source: io::Error,
}

fn chunk_name(seq: u64) -> String {
    format!("{seq:016x}.chunk")
}

/// What [`Spool::open`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovery {
    pub chunks: usize,
    pub rows: usize,
    pub quarantined: usize,
}

impl Spool {
    /// Opens (or creates) the spool folder, checks every chunk left over, quarantines the
    /// broken ones and queues the rest in order.
    pub fn open(
        settings: SpoolSettings,
        metrics: Arc<Metrics>,
    ) -> Result<(Arc<Spool>, Recovery), SpoolError> {
        let err = |source| SpoolError {
            path: settings.path.display().to_string(),
            source,
        };
        let quarantine = settings.path.join("quarantine");
        fs::create_dir_all(&quarantine).map_err(err)?;
        let mut found: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(&settings.path).map_err(err)? {
            let path = entry.map_err(err)?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Some(seq) = name
                .strip_suffix(".chunk")
                .and_then(|s| u64::from_str_radix(s, 16).ok())
            {
                found.push((seq, path));
            } else if name.ends_with(".tmp") {
                // A write that never completed: it was never accepted, but keep it for a look.
                let _ = fs::rename(&path, quarantine.join(name));
                tracing::warn!("spool: incomplete chunk {name} moved to quarantine");
                Metrics::add(&metrics.chunks_quarantined, 1);
            }
        }
        found.sort();
        let spool = Arc::new(Spool {
            quarantine,
            inner: Mutex::new(Inner {
                next_seq: found.last().map_or(0, |(s, _)| s + 1),
                queued: VecDeque::new(),
                bytes: 0,
                closed: false,
                overflow: false,
                written: Default::default(),
                recent: VecDeque::new(),
                recent_bytes: 0,
            }),
            space: Condvar::new(),
            ready: tokio::sync::Notify::new(),
            metrics,
            settings,
        });
        let mut recovery = Recovery::default();
        for (seq, path) in found {
            match spool.read_path(&path) {
                Ok(batch) => {
                    let meta = fs::metadata(&path).ok();
                    let size = meta.as_ref().map_or(0, |m| m.len());
                    let written = meta.and_then(|m| m.modified().ok()).map_or(0, unix_ms);
                    let mut inner = spool.inner.lock().expect("spool lock");
                    inner.queued.push_back(Chunk { seq, size });
                    inner.bytes += size;
                    inner.written.insert(seq, written);
                    recovery.chunks += 1;
                    recovery.rows += batch.rows;
                }
                Err(reason) => {
                    spool.quarantine_path(&path, &reason);
                    recovery.quarantined += 1;
                }
            }
        }
        Metrics::add(&spool.metrics.rows_recovered, recovery.rows as u64);
        spool.update_gauges();
        Ok((spool, recovery))
    }

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

    /// Writes `batch` as a chunk and returns once it is durable (per the fsync policy).
    /// Blocks while the spool is full, and retries while the disk refuses (full disk, I/O
    /// errors): the rows are never dropped here, and back-pressure reaches the listeners.
    pub fn append(&self, batch: Batch) {
        // The header is under 200 bytes.
        let size = (batch.body.len() + 200) as u64;
        let seq = {
            let mut inner = self.inner.lock().expect("spool lock");
            // A batch larger than the whole spool still goes in when the spool is empty.
            // (Chunks being delivered count: they are still on disk.)
            let mut waited = false;
            while inner.bytes + size > self.settings.max_bytes && inner.bytes > 0 && !inner.overflow
            {
                if !waited {
                    waited = true;
                    Metrics::add(&self.metrics.spool_full_waits, 1);
                    self.metrics.spool_full_now.store(1, Ordering::Relaxed);
                    tracing::warn!(
                        "spool full ({} bytes): holding input until the output catches up",
                        inner.bytes
                    );
                }
                inner = self.space.wait(inner).expect("spool lock");
            }
            if waited {
                self.metrics.spool_full_now.store(0, Ordering::Relaxed);
            }
            inner.next_seq += 1;
            inner.next_seq - 1
        };
        let header = serde_json::to_vec(&Header {
            cefgate_spool: 1,
            seq,
            table: batch.table.name().into(),
            rows: batch.rows,
            bytes: batch.body.len(),
            crc32: crc32fast::hash(&batch.body),
        })
        .expect("a header serialises");
        let mut delay = Duration::from_millis(100);
        loop {
            match self.write_chunk(seq, &header, &batch.body) {
                Ok(size) => {
                    let mut inner = self.inner.lock().expect("spool lock");
                    inner.queued.push_back(Chunk { seq, size });
                    inner.bytes += size;
                    inner
                        .written
                        .insert(seq, unix_ms(std::time::SystemTime::now()));
                    inner.keep_recent(seq, batch);
                    drop(inner);
                    Metrics::add(&self.metrics.spool_chunks_written, 1);
                    self.update_gauges();
                    self.ready.notify_one();
                    return;
                }
                Err(e) => {
                    Metrics::add(&self.metrics.spool_write_errors, 1);
                    tracing::error!(
                        "spool: cannot write a chunk to {}: {e}; holding the rows and retrying in {delay:?}",
                        self.settings.path.display()
                    );
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// temp file -> write -> fsync -> rename -> fsync dir. On any error the temp file is
    /// removed: the spool never holds a half-written chunk under a chunk name.
    fn write_chunk(&self, seq: u64, header: &[u8], body: &[u8]) -> io::Result<u64> {
        let tmp = self.settings.path.join(format!("{seq:016x}.tmp"));
        let result = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(header)?;
            f.write_all(b"\n")?;
            f.write_all(body)?;
            if self.settings.fsync == FsyncPolicy::Batch {
                f.sync_data()?;
            }
            let size = f.metadata()?.len();
            fs::rename(&tmp, self.path_of(seq))?;
            if self.settings.fsync == FsyncPolicy::Batch {
                fs::File::open(&self.settings.path)?.sync_all()?;
            }
            Ok(size)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// The next chunk to deliver, waiting for one; `None` once the spool is closed and empty.
    pub async fn next(&self) -> Option<Chunk> {
        loop {
            let notified = self.ready.notified();
            {
                let mut inner = self.inner.lock().expect("spool lock");
                if let Some(chunk) = inner.queued.pop_front() {
                    return Some(chunk);
                }
                if inner.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// From now on [`Spool::append`] no longer waits for space: at shutdown, the rows still
    /// in memory are written even past `max_bytes` (the overshoot is bounded by the memory
    /// budget), because the alternative is to lose them.
    pub fn allow_overflow(&self) {
        self.inner.lock().expect("spool lock").overflow = true;
        self.space.notify_all();
    }

    /// Says no more chunks will be appended (at shutdown); [`Spool::next`] then ends when
    /// the queue is empty.
    pub fn close(&self) {
        self.inner.lock().expect("spool lock").closed = true;
        self.ready.notify_waiters();
    }

    /// The chunk's batch: from memory when it is still there, else read back from its file;
    /// a broken file is quarantined and `None` returned.
    pub fn read(&self, chunk: Chunk) -> Option<Batch> {
        if let Some(batch) = self
            .inner
            .lock()
            .expect("spool lock")
            .take_recent(chunk.seq)
        {
            return Some(batch);
        }
        let path = self.path_of(chunk.seq);
        match self.read_path(&path) {
            Ok(batch) => Some(batch),
            Err(reason) => {
                self.quarantine_path(&path, &reason);
                self.release(chunk);
                None
            }
        }
    }

    fn read_path(&self, path: &Path) -> Result<Batch, String> {
        let data = fs::read(path).map_err(|e| e.to_string())?;
        let nl = data
            .iter()
            .position(|b| *b == b'\n')
            .ok_or("no header line")?;
        let header: Header =
            serde_json::from_slice(&data[..nl]).map_err(|e| format!("bad header: {e}"))?;
        let body = &data[nl + 1..];
        if header.cefgate_spool != 1 {
            return Err(format!("unknown spool version {}", header.cefgate_spool));
        }
        if body.len() != header.bytes {
            return Err(format!(
                "body is {} bytes, the header says {}",
                body.len(),
                header.bytes
            ));
        }
        if crc32fast::hash(body) != header.crc32 {
            return Err("checksum mismatch".into());
        }
        let table = Table::from_name(&header.table)
            .ok_or_else(|| format!("unknown table {:?}", header.table))?;
        Ok(Batch {
            table,
            rows: header.rows,
            body: body.to_vec(),
        })
    }

    fn quarantine_path(&self, path: &Path, reason: &str) {
        let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
        let target = self.quarantine.join(&name);
        match fs::rename(path, &target) {
            Ok(()) => tracing::error!(
                "spool: chunk {} is damaged ({reason}); moved to {} and skipped",
                name.to_string_lossy(),
                target.display()
            ),
            Err(e) => tracing::error!(
                "spool: chunk {} is damaged ({reason}) and cannot be moved: {e}",
                path.display()
            ),
        }
        Metrics::add(&self.metrics.chunks_quarantined, 1);
    }

    /// The chunk was delivered (or its refused rows dead-lettered): delete it.
    pub fn remove(&self, chunk: Chunk) {
        if let Err(e) = fs::remove_file(self.path_of(chunk.seq))
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::error!(
                "spool: cannot delete delivered chunk {}: {e}",
                chunk_name(chunk.seq)
            );
        }
        self.release(chunk);
    }

    /// Gives the chunk's space back (its file is gone or kept for the next start).
    pub fn release(&self, chunk: Chunk) {
        let mut inner = self.inner.lock().expect("spool lock");
        inner.bytes = inner.bytes.saturating_sub(chunk.size);
        inner.written.remove(&chunk.seq);
        drop(inner);
        self.space.notify_all();
        self.update_gauges();
    }

    /// Chunk files in the spool folder (waiting, being delivered, or kept for a restart).
    pub fn chunks_on_disk(&self) -> usize {
        chunks_in(&self.settings.path)
    }

    /// Chunks waiting (not counting those being delivered).
    pub fn queued(&self) -> usize {
        self.inner.lock().expect("spool lock").queued.len()
    }
}

impl Inner {
    /// Keeps `batch` as the newest chunk in memory, dropping the oldest kept ones past
    /// [`RECENT_BYTES`] (they stay on disk).
    fn keep_recent(&mut self, seq: u64, batch: Batch) {
        self.recent_bytes += batch.body.len();
        self.recent.push_back((seq, batch));
        while self.recent_bytes > RECENT_BYTES {
            let Some((_, old)) = self.recent.pop_front() else {
                break;
            };
            self.recent_bytes -= old.body.len();
        }
    }

    /// The kept batch of chunk `seq`, if still in memory (chunks are taken in order, so the
    /// older ones left in front will not be asked for again this run).
    fn take_recent(&mut self, seq: u64) -> Option<Batch> {
        while let Some(front) = self.recent.front().map(|(s, _)| *s) {
            if front > seq {
                return None;
            }
            let (_, batch) = self.recent.pop_front()?;
            self.recent_bytes -= batch.body.len();
            if front == seq {
                return Some(batch);
            }
        }
        None
    }
}

/// Chunk files in a spool folder.
pub fn chunks_in(folder: &Path) -> usize {
    fs::read_dir(folder)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".chunk"))
                .count()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path, max: u64) -> SpoolSettings {
        SpoolSettings {
            path: dir.to_path_buf(),
            max_bytes: max,
            fsync: FsyncPolicy::Batch,
        }
    }

    fn batch(table: Table, rows: &[&str]) -> Batch {
        let mut body = Vec::new();
        for r in rows {
            body.extend_from_slice(r.as_bytes());
            body.push(b'\n');
        }
        Batch {
            table,
            rows: rows.len(),
            body,
        }
    }

    #[tokio::test]
    async fn chunks_survive_a_restart_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        {
            let (spool, rec) = Spool::open(settings(dir.path(), 1 << 20), metrics.clone()).unwrap();
            assert_eq!(rec, Recovery::default());
            spool.append(batch(Table::Syslog, &["{\"a\":1}"]));
            spool.append(batch(Table::CommonSecurityLog, &["{\"b\":2}", "{\"b\":3}"]));
            let first = spool.next().await.unwrap();
            let b = spool.read(first).unwrap();
            assert_eq!(b.body, b"{\"a\":1}\n");
            spool.remove(first);
        }
        let (spool, rec) = Spool::open(settings(dir.path(), 1 << 20), metrics).unwrap();
        assert_eq!(
            rec,
            Recovery {
                chunks: 1,
                rows: 2,
                quarantined: 0
            }
        );
        let c = spool.next().await.unwrap();
        let b = spool.read(c).unwrap();
        assert_eq!((b.table, b.rows), (Table::CommonSecurityLog, 2));
        spool.append(batch(Table::Syslog, &["{}"]));
        assert!(
            spool.next().await.unwrap().seq > c.seq,
            "numbering continues after a restart"
        );
    }

    #[tokio::test]
    async fn damaged_chunks_are_quarantined_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        {
            let (spool, _) = Spool::open(settings(dir.path(), 1 << 20), metrics.clone()).unwrap();
            for i in 0..3 {
                spool.append(batch(Table::Syslog, &[&format!("{{\"n\":{i}}}")]));
            }
        }
        // Flip a byte in the second chunk's body; leave a torn temp file behind.
        let second = dir.path().join(chunk_name(1));
        let mut data = fs::read(&second).unwrap();
        let last = data.len() - 2;
        data[last] ^= 0x01;
        fs::write(&second, data).unwrap();
        fs::write(
            dir.path().join("0000000000000009.tmp"),
            b"{\"cefgate_spool\":1,",
        )
        .unwrap();
        let (spool, rec) = Spool::open(settings(dir.path(), 1 << 20), metrics.clone()).unwrap();
        assert_eq!((rec.chunks, rec.quarantined), (2, 1));
        assert!(dir.path().join("quarantine").join(chunk_name(1)).exists());
        assert!(dir.path().join("quarantine/0000000000000009.tmp").exists());
        assert_eq!(Metrics::get(&metrics.chunks_quarantined), 2);
        let seqs = [
            spool.next().await.unwrap().seq,
            spool.next().await.unwrap().seq,
        ];
        assert_eq!(seqs, [0, 2]);
    }

    #[test]
    fn a_full_spool_holds_the_producer_until_space_frees() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let (spool, _) = Spool::open(settings(dir.path(), 400), metrics.clone()).unwrap();
        let row = "x".repeat(200);
        spool.append(batch(Table::Syslog, &[&row])); // ~300 bytes: the spool is now full
        let producer = {
            let spool = spool.clone();
            let row = row.clone();
            std::thread::spawn(move || spool.append(batch(Table::Syslog, &[&row])))
        };
        // The producer must be waiting: the chunk is not there yet.
        crate::tests_support::wait_until(|| Metrics::get(&metrics.spool_full_waits) == 1);
        assert_eq!(spool.queued(), 1);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let first = runtime.block_on(spool.next()).unwrap();
        spool.remove(first);
        producer.join().unwrap();
        assert_eq!(spool.queued(), 1);
    }

    #[test]
    fn a_failing_write_is_retried_and_leaves_nothing_half_written() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let (spool, _) = Spool::open(settings(dir.path(), 1 << 20), metrics.clone()).unwrap();
        // The temporary name of the first chunk is taken by a folder: every write fails.
        let blocker = dir.path().join("0000000000000000.tmp");
        fs::create_dir(&blocker).unwrap();
        let producer = {
            let spool = spool.clone();
            std::thread::spawn(move || spool.append(batch(Table::Syslog, &["{\"kept\":1}"])))
        };
        crate::tests_support::wait_until(|| Metrics::get(&metrics.spool_write_errors) >= 1);
        assert_eq!(spool.chunks_on_disk(), 0, "no chunk under a chunk name yet");
        fs::remove_dir(&blocker).unwrap();
        producer.join().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let chunk = runtime.block_on(spool.next()).unwrap();
        assert_eq!(spool.read(chunk).unwrap().body, b"{\"kept\":1}\n");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[tokio::test]
    async fn close_ends_the_consumer_once_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(settings(dir.path(), 1 << 20), Arc::default()).unwrap();
        spool.append(batch(Table::Syslog, &["{}"]));
        spool.close();
        assert!(spool.next().await.is_some());
        assert!(spool.next().await.is_none());
    }

    /// The newest chunks come back from memory (a file damaged after the write does not
    /// matter to them); chunks pushed out of memory by newer ones are read from their file
    /// and checked.
    #[tokio::test]
    async fn the_newest_chunks_are_taken_from_memory_and_older_ones_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let (spool, _) = Spool::open(settings(dir.path(), 1 << 30), metrics.clone()).unwrap();
        let big = "x".repeat(RECENT_BYTES / 4 - 64);
        let bodies: Vec<String> = (0..6)
            .map(|i| format!("{{\"n\":{i},\"{big}\":0}}"))
            .collect();
        for body in &bodies {
            spool.append(batch(Table::Syslog, &[body]));
        }
        // Damage every file: only what is read from disk can notice.
        for seq in 0..6 {
            let path = dir.path().join(chunk_name(seq));
            let mut data = fs::read(&path).unwrap();
            let last = data.len() - 2;
            data[last] ^= 0x01;
            fs::write(&path, data).unwrap();
        }
        let mut from_memory = Vec::new();
        while let Some(chunk) = {
            spool.close();
            spool.next().await
        } {
            if let Some(b) = spool.read(chunk) {
                assert_eq!(
                    b.body,
                    format!("{}\n", bodies[chunk.seq as usize]).as_bytes()
                );
                from_memory.push(chunk.seq);
                spool.remove(chunk);
            }
        }
        assert_eq!(
            from_memory,
            [2, 3, 4, 5],
            "the last {RECENT_BYTES} bytes are in memory"
        );
        assert_eq!(metrics.chunks_quarantined.load(Ordering::Relaxed), 2);
    }
}
