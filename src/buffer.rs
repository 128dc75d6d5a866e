//! Buffer: the one hand-over between batching and the outputs, in memory or in the spool.
//!
//! [`open`] turns the buffer settings into a [`Writer`] (the decode workers push finished
//! batches) and a [`Reader`] (the output driver takes [`Lease`]s). A lease is acknowledged
//! once its rows are settled (delivered or dead-lettered) or kept, when they are not: the
//! spool keeps the chunk on disk for the next start.
//!
//! Back-pressure comes from two places and the reader never needs to know which:
//! - memory: batches hold their [`Charge`] on the memory budget until acknowledged, so a
//!   slow output fills the budget and the listeners stop reading;
//! - spool: [`Writer::push`] waits while the spool is full (the workers stop, the frame queue
//!   and the budget fill, the listeners stop reading). Once on disk a batch gives its charge
//!   back: from then on a crash cannot lose it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::batch::Batch;
use crate::budget::Charge;
use crate::metrics::Metrics;
use crate::spool::{Chunk, Recovery, Spool, SpoolError, SpoolSettings};

/// Where batches wait for the output.
#[derive(Debug, Clone)]
pub enum BufferSettings {
    /// In memory only: bounded by the memory budget, lost by a crash.
    Memory,
    /// On disk, in checksummed chunks: survives a crash and a restart.
    Spool(SpoolSettings),
}

/// Opens the buffer. With a spool, chunks left from an earlier run are read first.
pub fn open(
    settings: &BufferSettings,
    metrics: Arc<Metrics>,
) -> Result<(Writer, Reader, Recovery), SpoolError> {
    match settings {
        BufferSettings::Memory => {
            let (tx, rx) = flume::unbounded();
            Ok((
                Writer(WriterKind::Memory(tx, metrics)),
                Reader(ReaderKind::Memory {
                    queue: rx,
                    kept: Arc::default(),
                }),
                Recovery::default(),
            ))
        }
        BufferSettings::Spool(s) => {
            let (spool, recovery) = Spool::open(s.clone(), metrics)?;
            let closer = Arc::new(CloseOnDrop(spool.clone()));
            Ok((
                Writer(WriterKind::Spool {
                    spool: spool.clone(),
                    _closer: closer,
                }),
                Reader(ReaderKind::Spool(spool)),
                recovery,
            ))
        }
    }
}

/// Closes the spool for reading once the last writer is gone.
struct CloseOnDrop(Arc<Spool>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The pushing end; one clone per decode worker. The reader ends once every clone is dropped
/// and everything pushed was handed out.
#[derive(Clone)]
pub struct Writer(WriterKind);

#[derive(Clone)]
enum WriterKind {
    Memory(flume::Sender<(Batch, Charge)>, Arc<Metrics>),
    Spool {
        spool: Arc<Spool>,
        _closer: Arc<CloseOnDrop>,
    },
}

impl Writer {
    /// Hands `batch` (and the memory it holds) on. With a spool, returns once it is on disk,
    /// waiting while the spool is full.
    pub fn push(&self, batch: Batch, charge: Charge) {
        match &self.0 {
            WriterKind::Memory(tx, metrics) => {
                // The reader lives until every writer is gone; a failed send means the
                // output task died, and then the rows have nowhere to go.
                let rows = batch.rows as u64;
                if tx.send((batch, charge)).is_err() {
                    Metrics::add(&metrics.rows_lost, rows);
                    tracing::error!("the output stopped; rows are being lost");
                }
            }
            WriterKind::Spool { spool, .. } => {
                spool.append(batch);
                drop(charge);
            }
        }
    }

    /// Shutdown: a spool write still failing at `deadline` gives its rows up (counted as
    /// lost; see [`Spool::give_up_writes_at`]). Memory never fails to take a batch.
    pub fn give_up_writes_at(&self, deadline: std::time::Instant) {
        if let WriterKind::Spool { spool, .. } = &self.0 {
            spool.give_up_writes_at(deadline);
        }
    }

    /// Shutdown has begun: stop waiting for space (see [`Spool::allow_overflow`]). Memory
    /// never waits.
    pub fn allow_overflow(&self) {
        if let WriterKind::Spool { spool, .. } = &self.0 {
            spool.allow_overflow();
        }
    }
}

/// The reading end, used by the output driver.
pub struct Reader(ReaderKind);

enum ReaderKind {
    Memory {
        queue: flume::Receiver<(Batch, Charge)>,
        /// Batches handed back with [`Lease::keep`], handed out again first.
        kept: Arc<Kept>,
    },
    Spool(Arc<Spool>),
}

/// Memory batches handed back by outputs, and how many leases are out: the reader ends
/// only when the queue is closed, nothing was handed back and no lease is out (a lease
/// still settling may come back, for a reload's new output to take).
#[derive(Default)]
struct Kept {
    batches: Mutex<VecDeque<(Batch, Charge)>>,
    out: std::sync::atomic::AtomicUsize,
    changed: tokio::sync::Notify,
}

/// A memory lease being out: counted in [`Kept::out`] until it is settled, put back or
/// dropped (a task that failed), so the reader never waits for a lease that is gone.
struct Out(Arc<Kept>);

impl Out {
    fn new(kept: &Arc<Kept>) -> Self {
        kept.out.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Out(kept.clone())
    }

    /// Hands the batch back (before the lease stops counting as out).
    fn put_back(self, batch: Batch, charge: Charge) {
        self.0
            .batches
            .lock()
            .expect("buffer lock")
            .push_back((batch, charge));
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        self.0.out.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

impl Reader {
    /// True when a kept lease survives a restart.
    pub fn is_durable(&self) -> bool {
        matches!(self.0, ReaderKind::Spool(_))
    }

    /// The next batch, waiting for one; `None` once the writers are gone and all was handed
    /// out.
    pub async fn next(&self) -> Option<Lease> {
        match &self.0 {
            ReaderKind::Memory { queue, kept } => {
                let (batch, charge) = loop {
                    let changed = kept.changed.notified();
                    tokio::pin!(changed);
                    changed.as_mut().enable();
                    if let Some(b) = kept.batches.lock().expect("buffer lock").pop_front() {
                        break b;
                    }
                    let closed = queue.is_disconnected() && queue.is_empty();
                    if closed && kept.out.load(std::sync::atomic::Ordering::Acquire) == 0 {
                        return None;
                    }
                    tokio::select! {
                        received = queue.recv_async(), if !closed => {
                            if let Ok(b) = received {
                                break b;
                            }
                        }
                        _ = &mut changed => {}
                    }
                };
                Some(Lease {
                    batch,
                    hold: Hold::Memory {
                        charge,
                        kept: Out::new(kept),
                    },
                })
            }
            ReaderKind::Spool(spool) => loop {
                let chunk = spool.next().await?;
                // A damaged chunk is quarantined by `read`; go on with the next one.
                if let Some(batch) = spool.read(chunk) {
                    return Some(Lease {
                        batch,
                        hold: Hold::Spool {
                            spool: spool.clone(),
                            chunk,
                        },
                    });
                }
            },
        }
    }
}

enum Hold {
    Memory { charge: Charge, kept: Out },
    Spool { spool: Arc<Spool>, chunk: Chunk },
}

/// One batch handed to the output. Dropping a lease without [`Lease::ack`] keeps it.
pub struct Lease {
    batch: Batch,
    hold: Hold,
}

impl Lease {
    pub fn batch(&self) -> &Batch {
        &self.batch
    }

    /// Every row is settled: forget the batch (the spool deletes its chunk).
    pub fn ack(self) {
        match self.hold {
            Hold::Memory { charge, kept } => drop((charge, kept)),
            Hold::Spool { spool, chunk } => spool.remove(chunk),
        }
    }

    /// Not settled: the spool keeps the chunk for the next start; memory hands the batch
    /// out again.
    pub fn keep(self) {
        match self.hold {
            Hold::Memory { charge, kept } => kept.put_back(self.batch, charge),
            Hold::Spool { spool, chunk } => spool.release(chunk),
        }
    }
}

impl Lease {
    /// Not settled, and its output was replaced by a reload: the batch goes back to the
    /// front of the buffer, for the output that replaced it, this run.
    pub fn hand_back(self) {
        match self.hold {
            Hold::Memory { .. } => self.keep(),
            Hold::Spool { spool, chunk } => spool.requeue(chunk),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::MemoryBudget;
    use crate::record::Table;
    use crate::spool::FsyncPolicy;

    fn batch(n: u8) -> Batch {
        Batch {
            table: Table::Syslog,
            rows: 1,
            body: format!("{{\"n\":{n}}}\n").into_bytes(),
        }
    }

    #[tokio::test]
    async fn memory_holds_its_charge_until_acknowledged_and_keeps_order() {
        let budget = MemoryBudget::new(1 << 20);
        let (writer, reader, _) = open(&BufferSettings::Memory, Arc::default()).unwrap();
        writer.push(batch(1), budget.charge(100));
        writer.push(batch(2), budget.charge(50));
        drop(writer);
        let first = reader.next().await.unwrap();
        assert_eq!(first.batch(), &batch(1));
        first.keep();
        assert_eq!(budget.used(), 150, "a kept batch still holds its memory");
        let again = reader.next().await.unwrap();
        assert_eq!(again.batch(), &batch(1), "a kept batch comes back first");
        again.ack();
        assert_eq!(budget.used(), 50);
        reader.next().await.unwrap().ack();
        assert_eq!(budget.used(), 0);
        assert!(
            reader.next().await.is_none(),
            "writers gone, all handed out"
        );
    }

    #[tokio::test]
    async fn spool_gives_memory_back_once_on_disk_and_ends_when_writers_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let settings = BufferSettings::Spool(SpoolSettings {
            path: dir.path().to_path_buf(),
            max_bytes: 1 << 20,
            fsync: FsyncPolicy::Batch,
        });
        let budget = MemoryBudget::new(1 << 20);
        let (writer, reader, _) = open(&settings, Arc::default()).unwrap();
        assert!(reader.is_durable());
        writer.push(batch(1), budget.charge(100));
        assert_eq!(budget.used(), 0);
        writer.push(batch(2), budget.charge(100));
        drop(writer);
        let first = reader.next().await.unwrap();
        first.keep();
        let second = reader.next().await.unwrap();
        assert_eq!(second.batch(), &batch(2));
        second.ack();
        assert!(reader.next().await.is_none());
        // The kept chunk is still on disk for the next start; the acknowledged one is gone.
        // (The spool is locked while open: the next start comes after this one closed it.)
        drop(reader);
        let (_w, reader, recovery) = open(&settings, Arc::default()).unwrap();
        assert_eq!((recovery.chunks, recovery.rows), (1, 1));
        assert_eq!(reader.next().await.unwrap().batch(), &batch(1));
    }

    /// A lease handed back (its output replaced by a reload) comes out again first, this
    /// run, from memory and from the spool; a memory reader whose writers are gone still
    /// waits for a lease that is out, since it may come back.
    #[tokio::test]
    async fn a_handed_back_lease_is_handed_out_again_this_run() {
        let dir = tempfile::tempdir().unwrap();
        let spool = BufferSettings::Spool(SpoolSettings {
            path: dir.path().to_path_buf(),
            max_bytes: 1 << 20,
            fsync: FsyncPolicy::Never,
        });
        for settings in [BufferSettings::Memory, spool] {
            let (writer, reader, _) = open(&settings, Arc::default()).unwrap();
            writer.push(batch(1), Charge::none());
            writer.push(batch(2), Charge::none());
            // A closed spool's reader ends at once (a chunk handed back then stays on disk
            // for the next start); memory has no next start, so it waits for the lease.
            let _open = matches!(settings, BufferSettings::Spool(_)).then_some(writer);
            let first = reader.next().await.unwrap();
            let reader = Arc::new(reader);
            let second = reader.next().await.unwrap();
            assert_eq!(second.batch(), &batch(2));
            second.ack();
            let waiting = tokio::spawn({
                let reader = reader.clone();
                async move { reader.next().await.map(|l| l.batch().clone()) }
            });
            tokio::task::yield_now().await;
            first.hand_back();
            assert_eq!(waiting.await.unwrap(), Some(batch(1)));
        }
    }

    #[test]
    fn a_full_spool_takes_everything_once_overflow_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let settings = BufferSettings::Spool(SpoolSettings {
            path: dir.path().to_path_buf(),
            max_bytes: 250,
            fsync: FsyncPolicy::Never,
        });
        let metrics = Arc::new(Metrics::default());
        let (writer, _reader, _) = open(&settings, metrics.clone()).unwrap();
        writer.push(batch(1), Charge::none());
        let pusher = {
            let writer = writer.clone();
            std::thread::spawn(move || writer.push(batch(2), Charge::none()))
        };
        crate::tests_support::wait_until(|| Metrics::get(&metrics.spool_full_waits) == 1);
        assert!(!pusher.is_finished(), "the spool is full: the push waits");
        writer.allow_overflow();
        pusher.join().unwrap();
        writer.push(batch(3), Charge::none());
        assert_eq!(Metrics::get(&metrics.spool_chunks_written), 3);
    }
}
