//! The newest chunks, kept in memory as well as on disk: while the output keeps up, it takes
//! each batch from here instead of reading back the file just written (reading and checking
//! it was 7% of `run`'s CPU with the spool on). The file is still written and synced first,
//! and is what survives; a chunk that fell out of memory is read from disk.

use std::collections::VecDeque;

use crate::batch::Batch;

/// How many bytes of the newest chunks are also kept in memory: four default batches.
pub const RECENT_BYTES: usize = 4 << 20;

/// The newest chunks' batches, oldest first, and their body bytes (at most
/// [`RECENT_BYTES`]).
#[derive(Default)]
pub(super) struct Recent {
    batches: VecDeque<(u64, Batch)>,
    bytes: usize,
}

impl Recent {
    /// Keeps `batch` as the newest chunk in memory, dropping the oldest kept ones past
    /// [`RECENT_BYTES`] (they stay on disk).
    pub(super) fn keep(&mut self, seq: u64, batch: Batch) {
        self.bytes += batch.body.len();
        self.batches.push_back((seq, batch));
        while self.bytes > RECENT_BYTES {
            let Some((_, old)) = self.batches.pop_front() else {
                break;
            };
            self.bytes -= old.body.len();
        }
    }

    /// The kept batch of chunk `seq`, if still in memory (chunks are taken in order, so the
    /// older ones left in front will not be asked for again this run).
    pub(super) fn take(&mut self, seq: u64) -> Option<Batch> {
        while let Some(front) = self.batches.front().map(|(s, _)| *s) {
            if front > seq {
                return None;
            }
            let (_, batch) = self.batches.pop_front()?;
            self.bytes -= batch.body.len();
            if front == seq {
                return Some(batch);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::metrics::Metrics;
    use crate::record::Table;
    use crate::spool::Spool;
    use crate::spool::format::chunk_name;
    use crate::spool::test_support::*;

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
