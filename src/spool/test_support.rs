//! What the spool's tests share: settings for a folder, batches of rows, and ways to fill a
//! spool and empty it.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use super::{FsyncPolicy, Spool, SpoolSettings};
use crate::batch::Batch;
use crate::record::Table;

pub(super) fn settings(dir: &Path, max: u64) -> SpoolSettings {
    SpoolSettings {
        path: dir.to_path_buf(),
        max_bytes: max,
        fsync: FsyncPolicy::Batch,
    }
}

pub(super) fn batch(table: Table, rows: &[&str]) -> Batch {
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

/// Writes `n` one-row Syslog chunks (rows `{"n":0}`, ...) and closes the spool.
pub(super) fn write_chunks(dir: &Path, n: usize) {
    let (spool, _) = Spool::open(settings(dir, 1 << 20), Arc::default()).unwrap();
    for i in 0..n {
        spool.append(batch(Table::Syslog, &[&format!("{{\"n\":{i}}}")]));
    }
}

/// Every chunk the spool hands out, read, and its number.
pub(super) async fn take_all(spool: &Spool) -> Vec<(u64, Batch)> {
    spool.close();
    let mut out = Vec::new();
    while let Some(chunk) = spool.next().await {
        if let Some(b) = spool.read(chunk) {
            out.push((chunk.seq, b));
        }
    }
    out
}

pub(super) fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
