//! Batch: rows routed per table, handed on when a batch reaches its row count, byte size or
//! age. Rows arrive already serialised (one JSON object per line), so a batch is one buffer.

pub mod config;

use std::time::{Duration, Instant};

use crate::record::Table;

/// Rows for one table, as JSON lines (each row followed by `\n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub table: Table,
    pub rows: usize,
    pub body: Vec<u8>,
}

impl Batch {
    /// The rows of the batch, without their `\n`.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        lines(&self.body)
    }
}

/// The non-empty lines of `body`. A JSON row never holds a raw LF, so this finds the rows of
/// a batch; memchr looks for the LFs a word at a time (a byte-wise split was 6% of the I/O
/// thread's time in a profile of `run`).
pub fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', body)
        .map(Some)
        .chain(std::iter::once(None))
        .filter_map(move |end| {
            let end = end.unwrap_or(body.len());
            let line = body.get(start..end)?;
            start = end + 1;
            (!line.is_empty()).then_some(line)
        })
}

/// Room kept free for the next row before it is written (a longer row grows the buffer
/// itself).
const ROW_ROOM: usize = 16 * 1024;

/// When a batch is handed on.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_rows: usize,
    pub max_bytes: usize,
    pub max_age: Duration,
}

struct Open {
    batch: Batch,
    opened: Instant,
}

/// The open batches of one worker, one per table.
pub struct Batcher {
    limits: BatchLimits,
    open: [Option<Open>; 2],
}

fn slot(table: Table) -> usize {
    match table {
        Table::CommonSecurityLog => 0,
        Table::Syslog => 1,
    }
}

impl Batcher {
    pub fn new(limits: BatchLimits) -> Self {
        Self {
            limits,
            open: [None, None],
        }
    }

    /// Appends one row, written by `write` straight into the batch buffer, and returns the
    /// batch it completed, if any. A row that would take a batch past `max_bytes` starts the
    /// next batch instead (a single row larger than `max_bytes` travels alone).
    /// `now` dates a batch that this row opens.
    pub fn push(
        &mut self,
        table: Table,
        now: Instant,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Option<Batch> {
        let open = self.open[slot(table)].get_or_insert_with(|| Open {
            batch: Batch {
                table,
                rows: 0,
                body: Vec::with_capacity(64 * 1024),
            },
            opened: now,
        });
        let body = &mut open.batch.body;
        if body.capacity() - body.len() < ROW_ROOM {
            // Grown by doubling, but never past what a full batch needs: a batch that ends
            // just past `max_bytes` must not double its buffer (and copy it) for one row.
            let want = (body.capacity() * 2)
                .clamp(body.len() + ROW_ROOM, self.limits.max_bytes + ROW_ROOM);
            body.reserve_exact(want.saturating_sub(body.len()));
        }
        let start = body.len();
        write(&mut open.batch.body);
        open.batch.body.push(b'\n');
        if open.batch.body.len() > self.limits.max_bytes && open.batch.rows > 0 {
            let row = open.batch.body.split_off(start);
            let done = std::mem::replace(
                &mut open.batch,
                Batch {
                    table,
                    rows: 1,
                    body: row,
                },
            );
            open.opened = now;
            return Some(done);
        }
        open.batch.rows += 1;
        if open.batch.rows >= self.limits.max_rows || open.batch.body.len() >= self.limits.max_bytes
        {
            return self.open[slot(table)].take().map(|o| o.batch);
        }
        None
    }

    /// Batches older than `max_age`.
    pub fn take_aged(&mut self, now: Instant) -> Vec<Batch> {
        let max_age = self.limits.max_age;
        self.open
            .iter_mut()
            .filter(|o| {
                o.as_ref()
                    .is_some_and(|o| now.duration_since(o.opened) >= max_age)
            })
            .filter_map(|o| o.take().map(|o| o.batch))
            .collect()
    }

    /// Every open batch (at shutdown).
    pub fn take_all(&mut self) -> Vec<Batch> {
        self.open
            .iter_mut()
            .filter_map(|o| o.take().map(|o| o.batch))
            .collect()
    }

    /// Memory held by the open batches (their buffers' capacity).
    pub fn open_bytes(&self) -> usize {
        self.open
            .iter()
            .flatten()
            .map(|o| o.batch.body.capacity())
            .sum()
    }

    /// How long until the oldest open batch is due; `max_age` when none is open.
    pub fn next_due(&self, now: Instant) -> Duration {
        self.open
            .iter()
            .flatten()
            .map(|o| (o.opened + self.limits.max_age).saturating_duration_since(now))
            .min()
            .unwrap_or(self.limits.max_age)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_skip_empty_ones_and_keep_a_last_line_without_lf() {
        for (body, want) in [
            (&b""[..], vec![]),
            (b"\n\n", vec![]),
            (b"a\nbc\n", vec![&b"a"[..], b"bc"]),
            (b"a\n\nbc", vec![&b"a"[..], b"bc"]),
            (b"\nx", vec![&b"x"[..]]),
        ] {
            assert_eq!(lines(body).collect::<Vec<_>>(), want, "{body:?}");
        }
    }

    use super::*;

    fn limits(rows: usize, bytes: usize) -> BatchLimits {
        BatchLimits {
            max_rows: rows,
            max_bytes: bytes,
            max_age: Duration::from_millis(50),
        }
    }

    fn t0() -> Instant {
        Instant::now()
    }

    fn row(text: &str) -> impl FnOnce(&mut Vec<u8>) + '_ {
        move |out: &mut Vec<u8>| out.extend_from_slice(text.as_bytes())
    }

    #[test]
    fn flushes_by_rows_per_table() {
        let mut b = Batcher::new(limits(2, 1 << 20));
        assert!(b.push(Table::Syslog, t0(), row("{\"a\":1}")).is_none());
        assert!(
            b.push(Table::CommonSecurityLog, t0(), row("{\"c\":1}"))
                .is_none()
        );
        let done = b.push(Table::Syslog, t0(), row("{\"a\":2}")).unwrap();
        assert_eq!(done.table, Table::Syslog);
        assert_eq!(done.rows, 2);
        assert_eq!(done.body, b"{\"a\":1}\n{\"a\":2}\n");
        let rest = b.take_all();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].table, Table::CommonSecurityLog);
    }

    #[test]
    fn a_row_that_would_overflow_bytes_starts_the_next_batch() {
        let mut b = Batcher::new(limits(100, 20));
        assert!(b.push(Table::Syslog, t0(), row("0123456789")).is_none()); // 11 bytes
        let done = b.push(Table::Syslog, t0(), row("0123456789")).unwrap(); // would be 22
        assert_eq!((done.rows, done.body.len()), (1, 11));
        let rest = b.take_all();
        assert_eq!((rest[0].rows, rest[0].body.len()), (1, 11));
    }

    #[test]
    fn oversize_single_row_travels_alone() {
        let mut b = Batcher::new(limits(100, 8));
        let done = b.push(Table::Syslog, t0(), row("0123456789")).unwrap();
        assert_eq!(done.rows, 1);
        assert!(b.take_all().is_empty());
    }

    #[test]
    fn aged_batches_are_due() {
        let mut b = Batcher::new(limits(100, 1 << 20));
        let t0 = t0();
        b.push(Table::Syslog, t0, row("{}"));
        assert!(b.next_due(t0) <= Duration::from_millis(50));
        assert!(b.take_aged(t0).is_empty());
        let aged = b.take_aged(t0 + Duration::from_millis(60));
        assert_eq!(aged.len(), 1);
        assert_eq!(b.next_due(t0), Duration::from_millis(50));
    }
}
