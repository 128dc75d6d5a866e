//! Opening a spool: the folder is locked, then every chunk left over is checked by streaming
//! it through the checksum (memory stays flat whatever the folder holds) and queued in
//! order; broken ones and files with a chunk's name that are not chunks go to quarantine; a
//! chunk that cannot be read (permissions, an I/O error) may be intact, so it is left where
//! it is, reported and counted, and not queued this run. Numbering continues after every
//! number still in use, so that a new chunk never takes an old one's name.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

use super::format::{self, ReadError, chunk_seq};
use super::lock::lock_folder;
use super::quarantine::{self, move_to_quarantine};
use super::recent::Recent;
use super::{Chunk, Inner, Spool, SpoolError, SpoolSettings, unix_ms};
use crate::metrics::Metrics;

/// What [`Spool::open`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovery {
    pub chunks: usize,
    pub rows: usize,
    /// Damaged chunks and files with a `.chunk` name that is not a chunk's, moved to
    /// `quarantine/`.
    pub quarantined: usize,
    /// Chunks that could not be read (permissions, I/O errors): left in place, not queued.
    pub unreadable: usize,
}

impl Spool {
    /// Opens (or creates) the spool folder, locks it, checks every chunk left over,
    /// quarantines the broken ones and queues the rest in order.
    pub fn open(
        settings: SpoolSettings,
        metrics: Arc<Metrics>,
    ) -> Result<(Arc<Spool>, Recovery), SpoolError> {
        let err = |source| SpoolError::Io {
            path: settings.path.display().to_string(),
            source,
        };
        let quarantine = settings.path.join("quarantine");
        fs::create_dir_all(&quarantine).map_err(err)?;
        // Before anything is looked at: another instance may be writing here.
        let lock = lock_folder(&settings.path)?;
        let mut recovery = Recovery::default();
        let mut found: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(&settings.path).map_err(err)? {
            let path = entry.map_err(err)?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Some(seq) = chunk_seq(name) {
                found.push((seq, path));
            } else if name.ends_with(".chunk") {
                // Not a name cefgate writes: reported once, here, and out of the way so that
                // it is neither counted as kept for delivery nor reported again.
                match move_to_quarantine(&quarantine, &path) {
                    Ok(target) => tracing::warn!(
                        "spool: {name} is not a chunk (chunks are named by 16 hex digits and .chunk); moved to {}",
                        target.display()
                    ),
                    Err(e) => tracing::warn!(
                        "spool: {name} is not a chunk (chunks are named by 16 hex digits and .chunk) and cannot be moved to quarantine: {e}"
                    ),
                }
                Metrics::add(&metrics.chunks_quarantined, 1);
                recovery.quarantined += 1;
            } else if name.ends_with(".tmp") {
                // A write that never completed: it was never accepted, but keep it for a look.
                let _ = move_to_quarantine(&quarantine, &path);
                tracing::warn!("spool: incomplete chunk {name} moved to quarantine");
                Metrics::add(&metrics.chunks_quarantined, 1);
            }
        }
        found.sort();
        // Numbering continues after every number this spool has used and still shows: valid
        // chunks, unreadable ones (their number stays taken) and quarantined ones (so that a
        // number is not used twice, which would make `quarantine/` ambiguous).
        let mut highest = quarantine::highest_seq(&quarantine).map_err(err)?;
        let mut queued = VecDeque::new();
        let mut written = BTreeMap::new();
        let mut bytes = 0;
        let mut damaged = Vec::new();
        for (seq, path) in found {
            match format::verify_file(&path, seq) {
                Ok(rows) => {
                    let meta = fs::metadata(&path).ok();
                    let size = meta.as_ref().map_or(0, |m| m.len());
                    queued.push_back(Chunk { seq, size });
                    bytes += size;
                    written.insert(seq, meta.and_then(|m| m.modified().ok()).map_or(0, unix_ms));
                    recovery.chunks += 1;
                    recovery.rows += rows;
                    highest = highest.max(Some(seq));
                }
                Err(ReadError::Unreadable(e)) => {
                    tracing::error!(
                        "spool: chunk {} cannot be read ({e}); left in place and not delivered this run: {}",
                        path.display(),
                        format::unreadable_hint(&e)
                    );
                    Metrics::add(&metrics.chunks_unreadable, 1);
                    recovery.unreadable += 1;
                    highest = highest.max(Some(seq));
                }
                Err(ReadError::Damaged(reason)) => damaged.push((path, reason)),
            }
        }
        let spool = Arc::new(Spool {
            quarantine,
            inner: Mutex::new(Inner {
                // At most u64::MAX (none left), never wrapped.
                next_seq: highest.map_or(0, |s| s.saturating_add(1)),
                queued,
                bytes,
                closed: false,
                overflow: false,
                give_up_writes_at: None,
                written,
                recent: Recent::default(),
            }),
            space: Condvar::new(),
            ready: tokio::sync::Notify::new(),
            metrics,
            settings,
            _lock: lock,
        });
        for (path, reason) in damaged {
            spool.quarantine_path(&path, &reason);
            recovery.quarantined += 1;
        }
        Metrics::add(&spool.metrics.rows_recovered, recovery.rows as u64);
        spool.update_gauges();
        Ok((spool, recovery))
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::record::Table;
    use crate::spool::chunks_in;
    use crate::spool::format::chunk_name;
    use crate::spool::test_support::*;

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
                quarantined: 0,
                unreadable: 0,
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

    /// A stray `ffffffffffffffff.chunk` (here a copy of a real chunk) used to make the
    /// counter wrap to 0, and the next chunks replaced undelivered ones.
    #[tokio::test]
    async fn a_stray_last_numbered_chunk_neither_wraps_numbering_nor_is_delivered() {
        let dir = tempfile::tempdir().unwrap();
        write_chunks(dir.path(), 2);
        let copy = fs::read(dir.path().join(chunk_name(0))).unwrap();
        fs::write(dir.path().join("ffffffffffffffff.chunk"), &copy).unwrap();
        // A valid name with another chunk's header: its number is not trusted either.
        fs::write(dir.path().join("fffffffffffffffe.chunk"), &copy).unwrap();
        let metrics = Arc::new(Metrics::default());
        let (spool, rec) = Spool::open(settings(dir.path(), 1 << 20), metrics.clone()).unwrap();
        assert_eq!((rec.chunks, rec.rows, rec.quarantined), (2, 2, 2));
        spool.append(batch(Table::Syslog, &["{\"n\":2}"]));
        let got = take_all(&spool).await;
        let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            seqs,
            [0, 1, 2],
            "numbering continues after the last valid chunk"
        );
        let bodies: Vec<&[u8]> = got.iter().map(|(_, b)| b.body.as_slice()).collect();
        assert_eq!(
            bodies,
            [&b"{\"n\":0}\n"[..], b"{\"n\":1}\n", b"{\"n\":2}\n"],
            "every row once"
        );
        assert_eq!(chunks_in(dir.path()), 3);
    }

    #[test]
    fn names_that_are_not_chunks_are_quarantined_once_and_never_counted_as_chunks() {
        let dir = tempfile::tempdir().unwrap();
        write_chunks(dir.path(), 1);
        for stray in [
            "zzzz.chunk",
            "000000000000000A.chunk",
            "+00000000000001.chunk",
        ] {
            fs::write(dir.path().join(stray), b"not a chunk").unwrap();
        }
        fs::write(dir.path().join("dead-letters.ndjson"), b"").unwrap();
        assert_eq!(chunks_in(dir.path()), 1, "only the real chunk is one");
        let metrics = Arc::new(Metrics::default());
        let (spool, rec) = Spool::open(settings(dir.path(), 1 << 20), metrics.clone()).unwrap();
        assert_eq!((rec.chunks, rec.quarantined), (1, 3));
        assert_eq!(Metrics::get(&metrics.chunks_quarantined), 3);
        drop(spool);
        assert_eq!(
            names(dir.path()),
            [
                "0000000000000000.chunk",
                "dead-letters.ndjson",
                "lock",
                "quarantine"
            ]
        );
        // Reported once: the next start finds nothing to report.
        let (_, rec) = Spool::open(settings(dir.path(), 1 << 20), metrics.clone()).unwrap();
        assert_eq!((rec.chunks, rec.quarantined), (1, 0));
    }

    /// Runs `f` in a thread whose file accesses are checked as user `nobody` even when the
    /// tests run as root (the filesystem uid is per thread on Linux), so that a mode-000
    /// file cannot be read.
    fn as_nobody<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: changes this thread's filesystem uid only; restored below.
                let before = unsafe { libc::setfsuid(65534) };
                let out = f();
                unsafe { libc::setfsuid(before as libc::uid_t) };
                out
            })
            .join()
            .unwrap()
        })
    }

    /// A chunk that cannot be read (permissions) used to be quarantined for good; it may be
    /// intact, so it stays where it is, counted, and is delivered once readable.
    #[tokio::test]
    async fn an_unreadable_chunk_stays_in_place_and_is_delivered_once_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        write_chunks(dir.path(), 2);
        fs::remove_file(dir.path().join("lock")).unwrap();
        let open_perms = |p: &Path, mode| fs::set_permissions(p, fs::Permissions::from_mode(mode));
        for p in [dir.path().to_path_buf(), dir.path().join("quarantine")] {
            open_perms(&p, 0o777).unwrap();
        }
        let victim = dir.path().join(chunk_name(0));
        open_perms(&victim, 0o000).unwrap();
        let metrics = Arc::new(Metrics::default());
        let (rec, queued) = as_nobody(|| {
            let (spool, rec) = Spool::open(settings(dir.path(), 1 << 20), metrics.clone()).unwrap();
            (rec, spool.queued())
        });
        assert_eq!(
            (rec.chunks, rec.unreadable, rec.quarantined, queued),
            (1, 1, 0, 1)
        );
        assert_eq!(Metrics::get(&metrics.chunks_unreadable), 1);
        assert!(victim.exists(), "left in place");
        open_perms(&victim, 0o644).unwrap();
        let (spool, rec) = Spool::open(settings(dir.path(), 1 << 20), metrics).unwrap();
        assert_eq!((rec.chunks, rec.unreadable), (2, 0));
        let seqs: Vec<u64> = take_all(&spool).await.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, [0, 1]);
    }
}
