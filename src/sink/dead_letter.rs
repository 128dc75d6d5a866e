//! The dead-letter queue: rows the service refused for good, each kept with the refusal,
//! as JSON lines appended to one file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::Utc;

use crate::decode::time::iso8601;
use crate::record::Table;

/// One entry of the dead-letter queue, as read back by `cefgate dlq`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub dead_lettered_at: String,
    pub table: String,
    pub route: String,
    pub error: String,
    pub row: Box<serde_json::value::RawValue>,
}

impl DeadLetter {
    pub fn table(&self) -> Option<Table> {
        Table::from_name(&self.table)
    }
}

/// Reads a dead-letter file; lines that are not entries are reported as `Err(line number)`.
pub fn read(path: &Path) -> std::io::Result<Vec<Result<DeadLetter, usize>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|_| i + 1))
        .collect())
}

/// Appends refused rows to a file, created (with its folder) at the first dead letter, so
/// that an output that never refuses a row leaves no file behind. Shared by every route of
/// an output.
pub struct DeadLetterQueue {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

impl DeadLetterQueue {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            file: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores `rows` (each one JSON object) with why they were refused and where they were
    /// going. One line per row:
    /// `{"deadLetteredAt":..,"table":..,"route":..,"error":..,"row":{..}}`.
    pub fn store(
        &self,
        table: Table,
        route: &str,
        error: &str,
        rows: &[&[u8]],
    ) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(rows.iter().map(|r| r.len() + 128).sum());
        let when = iso8601(&Utc::now());
        for row in rows {
            out.extend_from_slice(b"{\"deadLetteredAt\":");
            serde_json::to_writer(&mut out, &when)?;
            out.extend_from_slice(b",\"table\":");
            serde_json::to_writer(&mut out, table.name())?;
            out.extend_from_slice(b",\"route\":");
            serde_json::to_writer(&mut out, route)?;
            out.extend_from_slice(b",\"error\":");
            serde_json::to_writer(&mut out, error)?;
            out.extend_from_slice(b",\"row\":");
            out.extend_from_slice(row);
            out.extend_from_slice(b"}\n");
        }
        let mut file = self.file.lock().expect("dead-letter lock");
        if file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let opened = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            *file = Some(opened);
        }
        let file = file.as_mut().expect("opened above");
        file.write_all(&out)?;
        file.sync_data()
    }
}
