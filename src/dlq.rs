//! `cefgate dlq list` and `cefgate dlq replay`: look at the rows the service refused for good,
//! and send them again once the cause is fixed (a column added to the DCR, a role granted).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::batch::Batch;
use crate::metrics::Metrics;
use crate::record::Table;
use crate::sink::{self, Destination, OutputSettings, dead_letter};

/// What the dead-letter queue holds.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub entries: usize,
    /// Line numbers that are not entries (a damaged file is reported, not fatal).
    pub unreadable: Vec<usize>,
    /// Entries per (route, error).
    pub by_cause: BTreeMap<(String, String), usize>,
    pub oldest: Option<String>,
    pub newest: Option<String>,
}

pub fn list(path: &Path) -> std::io::Result<Summary> {
    let mut summary = Summary::default();
    for entry in dead_letter::read(path)? {
        match entry {
            Ok(e) => {
                summary.entries += 1;
                *summary
                    .by_cause
                    .entry((e.route.clone(), e.error.clone()))
                    .or_default() += 1;
                if summary
                    .oldest
                    .as_ref()
                    .is_none_or(|o| e.dead_lettered_at < *o)
                {
                    summary.oldest = Some(e.dead_lettered_at.clone());
                }
                if summary
                    .newest
                    .as_ref()
                    .is_none_or(|n| e.dead_lettered_at > *n)
                {
                    summary.newest = Some(e.dead_lettered_at.clone());
                }
            }
            Err(line) => summary.unreadable.push(line),
        }
    }
    Ok(summary)
}

/// What a replay did.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayOutcome {
    pub rows: usize,
    pub delivered: u64,
    pub dead_lettered_again: u64,
}

/// Sends every dead-lettered row again through the configured Azure output. The file is
/// renamed first, so rows refused again land in a fresh queue; it is deleted at the end.
/// Rows still undelivered after `timeout` go back to the queue.
pub fn replay(output: &OutputSettings, timeout: Duration) -> Result<ReplayOutcome, String> {
    if !matches!(
        output.destination,
        Destination::LogsIngestion(_) | Destination::DataCollector(_)
    ) {
        return Err("dlq replay needs a logs-ingestion or data-collector [output]".into());
    }
    let path = output.dead_letter_path.clone();
    let entries =
        dead_letter::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if entries.is_empty() {
        return Ok(ReplayOutcome::default());
    }
    let taken: PathBuf = path.with_extension(format!("replaying-{}", std::process::id()));
    std::fs::rename(&path, &taken)
        .map_err(|e| format!("cannot move {} aside: {e}", path.display()))?;
    let mut bodies: BTreeMap<u8, (Table, Vec<u8>, usize)> = BTreeMap::new();
    let mut rows = 0;
    for entry in entries.iter().flatten() {
        let Some(table) = entry.table() else { continue };
        let slot = bodies.entry(table as u8).or_insert((table, Vec::new(), 0));
        slot.1.extend_from_slice(entry.row.get().as_bytes());
        slot.1.push(b'\n');
        slot.2 += 1;
        rows += 1;
    }
    let metrics = Arc::new(Metrics::default());
    let give_up = CancellationToken::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let output =
        sink::build(output, metrics.clone(), give_up.clone()).map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let timer = {
            let give_up = give_up.clone();
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                give_up.cancel();
            })
        };
        for (table, body, n) in bodies.into_values() {
            let batch = Batch {
                table,
                rows: n,
                body,
            };
            output.delivery.deliver(&batch, false).await;
        }
        timer.abort();
    });
    let unreadable = entries.iter().filter(|e| e.is_err()).count();
    if unreadable == 0 {
        let _ = std::fs::remove_file(&taken);
    } else {
        tracing::warn!(
            "{unreadable} unreadable line(s) kept in {}",
            taken.display()
        );
    }
    Ok(ReplayOutcome {
        rows,
        delivered: Metrics::get(&metrics.rows_delivered),
        dead_lettered_again: Metrics::get(&metrics.rows_dead_lettered),
    })
}
