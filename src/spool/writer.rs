//! Writing chunks: a batch becomes a chunk file (temp file, write, fsync, rename that never
//! replaces, fsync of the folder) before it counts as accepted. The producer waits while the
//! spool is full and retries while the disk refuses, so rows are never dropped here; only at
//! shutdown, past the deadline, does a write that still fails give its rows up, counted.

use std::fs;
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::format;
use super::rename::rename_noreplace;
use super::{Chunk, FsyncPolicy, Spool, unix_ms};
use crate::batch::Batch;
use crate::metrics::Metrics;

/// Why a chunk write did not happen.
enum WriteError {
    /// A file already has the chunk's name: take another number.
    Taken,
    Io(io::Error),
}

impl Spool {
    /// The next chunk number, or `None` when none is left (only after a chunk file numbered
    /// just under `u64::MAX`).
    fn take_seq(&self) -> Option<u64> {
        let mut inner = self.inner.lock().expect("spool lock");
        let seq = inner.next_seq;
        if seq == u64::MAX {
            return None;
        }
        inner.next_seq = seq + 1;
        Some(seq)
    }

    /// Blocks while the spool is full, and retries while the disk refuses (full disk, I/O
    /// errors): the rows are never dropped here, and back-pressure reaches the listeners.
    /// While a write keeps failing, `spool_write_failing` says so (and `/ready` with it).
    pub fn append(&self, batch: Batch) {
        // The header is under 200 bytes.
        let size = (batch.body.len() + 200) as u64;
        {
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
        }
        let mut delay = Duration::from_millis(100);
        let mut failing = false;
        let mut seq = None;
        loop {
            let result = match seq.or_else(|| self.take_seq()) {
                None => Err(WriteError::Io(io::Error::other(format!(
                    "no chunk number is left (a file numbered near ffffffffffffffff is in the folder); deliver or move the chunks out of {} and restart",
                    self.settings.path.display()
                )))),
                Some(s) => {
                    seq = Some(s);
                    let header = format::encode_header(s, &batch);
                    self.write_chunk(s, &header, &batch.body)
                }
            };
            match result {
                Ok(size) => {
                    let seq = seq.expect("a written chunk has a number");
                    let mut inner = self.inner.lock().expect("spool lock");
                    inner.queued.push_back(Chunk { seq, size });
                    inner.bytes += size;
                    inner
                        .written
                        .insert(seq, unix_ms(std::time::SystemTime::now()));
                    inner.recent.keep(seq, batch);
                    drop(inner);
                    if failing {
                        self.metrics
                            .spool_write_failing
                            .fetch_sub(1, Ordering::Relaxed);
                    }
                    Metrics::add(&self.metrics.spool_chunks_written, 1);
                    self.update_gauges();
                    self.ready.notify_one();
                    return;
                }
                Err(WriteError::Taken) => {
                    let taken = seq.take().expect("a taken name has a number");
                    tracing::warn!(
                        "spool: {} already holds a file cefgate did not write there; it is left alone and the chunk takes another number",
                        self.path_of(taken).display()
                    );
                }
                Err(WriteError::Io(e)) => {
                    Metrics::add(&self.metrics.spool_write_errors, 1);
                    if !failing {
                        failing = true;
                        self.metrics
                            .spool_write_failing
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    let give_up_at = self.inner.lock().expect("spool lock").give_up_writes_at;
                    let now = std::time::Instant::now();
                    if give_up_at.is_some_and(|at| now >= at) {
                        self.metrics
                            .spool_write_failing
                            .fetch_sub(1, Ordering::Relaxed);
                        Metrics::add(&self.metrics.rows_lost, batch.rows as u64);
                        tracing::error!(
                            "spool: cannot write a chunk to {}: {e}; the shutdown deadline has passed, so its {} {} row(s) are lost (free space on that disk, or raise shutdown_timeout_secs)",
                            self.settings.path.display(),
                            batch.rows,
                            batch.table.name()
                        );
                        return;
                    }
                    tracing::error!(
                        "spool: cannot write a chunk to {}: {e}; holding the rows and retrying in {delay:?}",
                        self.settings.path.display()
                    );
                    let wait =
                        give_up_at.map_or(delay, |at| delay.min(at.saturating_duration_since(now)));
                    std::thread::sleep(wait);
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// any error the temp file is removed: the spool never holds a half-written chunk under
    /// a chunk name.
    fn write_chunk(&self, seq: u64, header: &[u8], body: &[u8]) -> Result<u64, WriteError> {
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
            rename_noreplace(&tmp, &self.path_of(seq))?;
            if self.settings.fsync == FsyncPolicy::Batch {
                fs::File::open(&self.settings.path)?.sync_all()?;
            }
            Ok(size)
        })();
        result.map_err(|e: io::Error| {
            let _ = fs::remove_file(&tmp);
            if e.kind() == io::ErrorKind::AlreadyExists {
                WriteError::Taken
            } else {
                WriteError::Io(e)
            }
        })
    }

    /// From now on [`Spool::append`] no longer waits for space: at shutdown, the rows still
    /// in memory are written even past `max_bytes` (the overshoot is bounded by the memory
    /// budget), because the alternative is to lose them.
    pub fn allow_overflow(&self) {
        self.inner.lock().expect("spool lock").overflow = true;
        self.space.notify_all();
    }

    /// At shutdown: a chunk that still cannot be written at `deadline` (a full disk, I/O
    /// errors) is given up, its rows counted in `rows_lost` and named in the log, so that
    /// the shutdown ends in `shutdown_timeout_secs` instead of retrying for ever (the
    /// service manager's kill would then lose them uncounted).
    pub fn give_up_writes_at(&self, deadline: std::time::Instant) {
        self.inner.lock().expect("spool lock").give_up_writes_at = Some(deadline);
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::sync::Arc;

    use crate::metrics::Metrics;
    use crate::record::Table;
    use crate::spool::Spool;
    use crate::spool::format::chunk_name;
    use crate::spool::test_support::*;

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
        assert_eq!(
            Metrics::get(&metrics.spool_write_failing),
            1,
            "the failing write is shown (and /ready with it)"
        );
        fs::remove_dir(&blocker).unwrap();
        producer.join().unwrap();
        assert_eq!(Metrics::get(&metrics.spool_write_failing), 0);
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
    async fn a_file_already_under_the_next_name_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(settings(dir.path(), 1 << 20), Arc::default()).unwrap();
        // Something put a file where chunk 0 is about to go, after the spool was opened.
        fs::write(dir.path().join(chunk_name(0)), b"someone else's").unwrap();
        spool.append(batch(Table::Syslog, &["{\"n\":1}"]));
        assert_eq!(
            fs::read(dir.path().join(chunk_name(0))).unwrap(),
            b"someone else's"
        );
        let got = take_all(&spool).await;
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].0, got[0].1.body.as_slice()),
            (1, &b"{\"n\":1}\n"[..])
        );
    }
}
