//! Handing chunks to the output and settling them: the output takes the next chunk in
//! order, reads its batch (from memory when it is still there, else from its file, checked),
//! and then removes it once every row is settled, releases it (kept on disk for the next
//! start) or requeues it (handed out again this run). A chunk's space counts until its file
//! is gone or kept, so producers wait for what the output really frees.

use std::fs;
use std::io;

use super::format::{self, ReadError, chunk_name, chunks_in};
use super::{Chunk, Spool};
use crate::batch::Batch;
use crate::metrics::Metrics;

impl Spool {
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

    /// Says no more chunks will be appended (at shutdown); [`Spool::next`] then ends when
    /// the queue is empty.
    pub fn close(&self) {
        self.inner.lock().expect("spool lock").closed = true;
        self.ready.notify_waiters();
    }

    /// The chunk's batch: from memory when it is still there, else read back from its file;
    /// a broken file is quarantined and `None` returned; one that cannot be read stays for
    /// the next start.
    pub fn read(&self, chunk: Chunk) -> Option<Batch> {
        if let Some(batch) = self
            .inner
            .lock()
            .expect("spool lock")
            .recent
            .take(chunk.seq)
        {
            return Some(batch);
        }
        let path = self.path_of(chunk.seq);
        match format::read_file(&path, chunk.seq) {
            Ok(batch) => Some(batch),
            Err(ReadError::Damaged(reason)) => {
                self.quarantine_path(&path, &reason);
                self.release(chunk);
                None
            }
            Err(ReadError::Unreadable(e)) => {
                tracing::error!(
                    "spool: chunk {} cannot be read ({e}); left in place for the next start: {}",
                    path.display(),
                    format::unreadable_hint(&e)
                );
                Metrics::add(&self.metrics.chunks_unreadable, 1);
                self.release(chunk);
                None
            }
        }
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

    /// Puts a chunk taken with [`Spool::next`] back at the front of the queue (its output
    /// was replaced before it delivered any of it): it is handed out again this run, and
    /// keeps its place on disk and in the spool's size. After [`Spool::close`] the reader
    /// may have ended; the chunk then waits on disk for the next start, as a kept one does.
    pub fn requeue(&self, chunk: Chunk) {
        self.inner
            .lock()
            .expect("spool lock")
            .queued
            .push_front(chunk);
        self.update_gauges();
        self.ready.notify_one();
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::record::Table;
    use crate::spool::Spool;
    use crate::spool::test_support::*;

    #[tokio::test]
    async fn close_ends_the_consumer_once_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(settings(dir.path(), 1 << 20), Arc::default()).unwrap();
        spool.append(batch(Table::Syslog, &["{}"]));
        spool.close();
        assert!(spool.next().await.is_some());
        assert!(spool.next().await.is_none());
    }
}
