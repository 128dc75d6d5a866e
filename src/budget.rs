//! The memory budget: one byte count shared by everything between the socket read and
//! durable storage (frames waiting for a decode worker, open and finished batches, rows in
//! flight to an output that has no spool).
//!
//! Only the readers wait on it. A TCP/TLS connection waits for room before each read (so the
//! kernel closes the sender's window), and UDP drops and counts when there is none. Every
//! later stage charges and releases without ever waiting, so the budget can never deadlock
//! the pipeline: whatever is charged is on its way out. The budget is checked before a read,
//! not byte by byte, so it can be overshot: each connection finishes the read it started
//! (64 KiB), and frames already queued still become rows, which take more bytes than the
//! frames they came from.
//!
//! Charges are values ([`Charge`]) that travel with the bytes they stand for and give them
//! back when dropped, so a batch that is written, delivered, dead-lettered or lost to a bug
//! can never leak budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// The shared byte budget.
#[derive(Debug)]
pub struct MemoryBudget {
    max: usize,
    used: AtomicUsize,
    /// The highest `used` seen, for reports.
    peak: AtomicUsize,
    room: Notify,
}

impl MemoryBudget {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            room: Notify::new(),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// True while nothing more should be read.
    pub fn is_full(&self) -> bool {
        self.used() >= self.max
    }

    /// Waits until the budget has room (returns at once when it has).
    pub async fn room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            // Registered before the check, so a release in between is not missed.
            notified.as_mut().enable();
            if !self.is_full() {
                return;
            }
            notified.await;
        }
    }

    /// Takes `bytes` from the budget, without waiting.
    pub fn charge(self: &Arc<Self>, bytes: usize) -> Charge {
        self.add(bytes);
        Charge {
            budget: Some(self.clone()),
            bytes,
        }
    }

    fn add(&self, bytes: usize) {
        let now = self.used.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    fn release(&self, bytes: usize) {
        let before = self.used.fetch_sub(bytes, Ordering::Relaxed);
        if before >= self.max && before - bytes < self.max {
            self.room.notify_waiters();
        }
    }
}

/// Bytes taken from a [`MemoryBudget`]; given back when dropped.
#[derive(Debug, Default)]
pub struct Charge {
    budget: Option<Arc<MemoryBudget>>,
    bytes: usize,
}

impl Charge {
    /// A charge against no budget (for batches that are not in memory, such as those read
    /// back from the spool).
    pub fn none() -> Self {
        Self::default()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Makes this charge `bytes`, taking or giving back the difference.
    pub fn set(&mut self, bytes: usize) {
        if let Some(budget) = &self.budget {
            if bytes > self.bytes {
                budget.add(bytes - self.bytes);
            } else {
                budget.release(self.bytes - bytes);
            }
        }
        self.bytes = bytes;
    }

    /// Moves `bytes` of this charge (at most all of it) into a charge of its own, which
    /// then travels with the bytes it stands for.
    pub fn split(&mut self, bytes: usize) -> Charge {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        Charge {
            budget: self.budget.clone(),
            bytes,
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.release(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_come_back_when_dropped_split_or_resized() {
        let budget = MemoryBudget::new(100);
        let mut a = budget.charge(60);
        let b = a.split(20);
        assert_eq!((a.bytes(), b.bytes(), budget.used()), (40, 20, 60));
        a.set(90);
        assert_eq!(budget.used(), 110);
        assert!(budget.is_full());
        drop(a);
        assert_eq!(budget.used(), 20);
        drop(b);
        assert_eq!((budget.used(), budget.peak()), (0, 110));
        assert_eq!(Charge::none().split(5).bytes(), 0);
    }

    #[tokio::test]
    async fn a_reader_waits_for_room_until_a_release_makes_some() {
        let budget = MemoryBudget::new(100);
        let held = budget.charge(150);
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.room().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "no room yet");
        drop(held);
        tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("the release wakes the reader")
            .unwrap();
    }
}
