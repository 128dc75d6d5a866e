//! `cefgate dlq list` and `cefgate dlq replay`: look at the rows the service refused for good,
//! and send them again once the cause is fixed (a column added to the DCR, a role granted).
//!
//! A replay never deletes a line it did not send: entries whose table is not a known name,
//! entries of a route turned off in the configuration, and lines that are not entries at all
//! (each line is judged alone, as bytes) are written back to the dead-letter file and named
//! by their line numbers. A file a killed replay left aside (`NAME.replaying-PID`) is shown
//! by `list` and sent by the next replay, with the rest.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::batch::Batch;
use crate::metrics::Metrics;
use crate::record::Table;
use crate::run::shutdown::Deadline;
use crate::sink::dead_letter::{self, DeadLetterError, DeadLetterQueue, Taken};
use crate::sink::{self, OutputSettings, OutputSetupError};

/// Why `dlq` could not do what was asked. Names files, never a secret's value.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("dlq replay needs a logs-ingestion or data-collector [output]")]
    NotAzure,
    #[error("{}: {source}", .path.display())]
    File {
        path: PathBuf,
        #[source]
        source: DeadLetterError,
    },
    #[error(transparent)]
    Output(#[from] OutputSetupError),
    #[error(
        "{what}; nothing was deleted: {} still hold(s) every row, and the next `cefgate dlq \
         replay` sends them again once {} can be written (rows delivered now may then be sent \
         twice)",
        list_paths(.kept),
        .path.display()
    )]
    NotSettled {
        what: String,
        path: PathBuf,
        kept: Vec<PathBuf>,
    },
}

fn list_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn file_error(path: &Path) -> impl FnOnce(DeadLetterError) -> DlqError + '_ {
    move |source| DlqError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// What the dead-letter queue holds.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub entries: usize,
    /// Line numbers that are not entries (a damaged file is reported, not fatal).
    pub unreadable: Vec<usize>,
    /// Line numbers of entries whose table is not a known name: a replay keeps them.
    pub unknown_table: Vec<usize>,
    /// Entries per (route, error).
    pub by_cause: BTreeMap<(String, String), usize>,
    pub oldest: Option<String>,
    pub newest: Option<String>,
    /// Files replays moved the queue aside to: left by a killed replay (the next replay sends
    /// them), or being sent by one that runs now.
    pub aside: Vec<AsideSummary>,
}

/// A file a replay moved the queue aside to.
#[derive(Debug, Clone)]
pub struct AsideSummary {
    pub path: PathBuf,
    /// A running replay holds it; otherwise a killed one left it.
    pub in_use: bool,
    pub summary: Summary,
}

impl Summary {
    fn of(bytes: &[u8]) -> Self {
        let mut summary = Summary::default();
        for line in dead_letter::parse(bytes) {
            let Some(e) = line.entry else {
                summary.unreadable.push(line.number);
                continue;
            };
            summary.entries += 1;
            if e.table().is_none() {
                summary.unknown_table.push(line.number);
            }
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
        summary
    }

    /// Rows a replay would send now: entries of a known table, in the file and in those a
    /// killed replay left (not those a running replay is sending).
    pub fn sendable(&self) -> usize {
        self.entries - self.unknown_table.len()
            + self
                .aside
                .iter()
                .filter(|a| !a.in_use)
                .map(|a| a.summary.sendable())
                .sum::<usize>()
    }
}

impl Summary {
    /// What `list` and the dry run say besides the counts: entries a replay would keep, and
    /// the files replays moved aside.
    pub fn details(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.unknown_table.is_empty() {
            out.push(format!(
                "entries whose table is not a known name (a replay keeps them): lines {:?}",
                self.unknown_table
            ));
        }
        for a in &self.aside {
            out.push(format!(
                "{}: {} dead-lettered row(s) {}",
                a.path.display(),
                a.summary.entries,
                if a.in_use {
                    "being sent by a running replay"
                } else {
                    "left by an interrupted replay; the next `cefgate dlq replay` sends them"
                }
            ));
            for ((route, error), n) in &a.summary.by_cause {
                out.push(format!("{n:>8}  {route}  {error}"));
            }
            if !a.summary.unreadable.is_empty() {
                out.push(format!("unreadable lines: {:?}", a.summary.unreadable));
            }
        }
        out
    }
}

/// Reads the queue at `path` and the files replays moved aside beside it. Reads only: no
/// secret needed, nothing moved.
pub fn list(path: &Path) -> Result<Summary, DlqError> {
    let bytes = dead_letter::read_shared(path).map_err(file_error(path))?;
    let mut summary = Summary::of(&bytes);
    for a in dead_letter::aside(path).map_err(file_error(path))? {
        summary.aside.push(AsideSummary {
            path: a.path,
            in_use: a.in_use,
            summary: Summary::of(&a.bytes),
        });
    }
    Ok(summary)
}

/// Why a replay put lines back unsent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeptBecause {
    /// `table` is neither CommonSecurityLog nor Syslog.
    UnknownTable,
    /// Not an entry: invalid UTF-8, not JSON, or cut short.
    Unreadable,
    /// The configuration turns the table's route off (an empty stream or log type).
    RouteOff,
}

/// Lines a replay wrote back to the dead-letter file unsent.
#[derive(Debug, Clone)]
pub struct Kept {
    /// The file they were read from, as it was (line numbers count its lines).
    pub from: PathBuf,
    pub because: KeptBecause,
    pub lines: Vec<usize>,
}

impl fmt::Display for Kept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let one = self.lines.len() == 1;
        let what = match (self.because, one) {
            (KeptBecause::UnknownTable, true) => "entry whose table is not a known name",
            (KeptBecause::UnknownTable, false) => "entries whose table is not a known name",
            (KeptBecause::Unreadable, true) => "unreadable line",
            (KeptBecause::Unreadable, false) => "unreadable lines",
            (KeptBecause::RouteOff, true) => "entry whose route this configuration turns off",
            (KeptBecause::RouteOff, false) => "entries whose route this configuration turns off",
        };
        const SHOWN: usize = 20;
        let mut numbers: Vec<String> = self
            .lines
            .iter()
            .take(SHOWN)
            .map(usize::to_string)
            .collect();
        if self.lines.len() > SHOWN {
            numbers.push(format!("and {} more", self.lines.len() - SHOWN));
        }
        write!(
            f,
            "kept {} {what} ({} {}) of {}",
            self.lines.len(),
            if one { "line" } else { "lines" },
            numbers.join(", "),
            self.from.display()
        )
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default)]
pub struct ReplayOutcome {
    pub rows: usize,
    pub delivered: u64,
    pub dead_lettered_again: u64,
    /// Lines written back to the dead-letter file unsent.
    pub kept: Vec<Kept>,
    /// Files a killed replay left, sent by this one too.
    pub recovered: Vec<PathBuf>,
    /// Files a running replay holds, left to it.
    pub in_use: Vec<PathBuf>,
}

impl ReplayOutcome {
    /// What a replay says besides the counts: lines kept, files taken or left alone.
    pub fn details(&self) -> Vec<String> {
        let mut out: Vec<String> = self.kept.iter().map(Kept::to_string).collect();
        if !self.kept.is_empty() {
            out.push(
                "those lines were written back to the dead-letter file: fix them (or the \
                 configuration) and replay again, or delete them"
                    .into(),
            );
        }
        for p in &self.recovered {
            out.push(format!(
                "sent the rows an interrupted replay left in {}",
                p.display()
            ));
        }
        for p in &self.in_use {
            out.push(format!(
                "left {} alone: a running replay is sending it",
                p.display()
            ));
        }
        out
    }
}

/// A line of a file taken for the replay: the file's index, the line's number.
type LineAt = (usize, usize);

/// One file taken for the replay, and where its lines go.
struct Source {
    taken: Taken,
    /// The name its line numbers are reported under.
    name: PathBuf,
}

/// Sends every dead-lettered row again through the configured Azure output. The file is
/// moved aside first (with the lock the service takes for every write, so none is lost),
/// and files a killed replay left are taken too. Rows refused again, and rows still
/// undelivered after `timeout`, go back to the queue, as do the lines that were not sent
/// (see [`Kept`]); the files taken are deleted only once all that is written.
///
/// `runtime` is the process's one runtime (the binary's).
pub fn replay(
    runtime: &tokio::runtime::Runtime,
    output: &OutputSettings,
    timeout: Duration,
) -> Result<ReplayOutcome, DlqError> {
    if !output.destination.is_azure() {
        return Err(DlqError::NotAzure);
    }
    let path = output.dead_letter_path.clone();
    let listed = list(&path)?;
    if listed.entries + listed.unreadable.len() == 0 && listed.aside.iter().all(|a| a.in_use) {
        return Ok(ReplayOutcome {
            in_use: in_use(&listed),
            ..ReplayOutcome::default()
        });
    }
    let metrics = Arc::new(Metrics::default());
    let give_up = CancellationToken::new();
    let built = sink::build(output, metrics.clone(), give_up.clone())?;

    // Taken only now that the output is ready: a replay that cannot start moves nothing.
    let (left, in_use) = dead_letter::take_left_aside(&path).map_err(file_error(&path))?;
    let mut sources: Vec<Source> = left
        .into_iter()
        .map(|taken| Source {
            name: taken.path.clone(),
            taken,
        })
        .collect();
    let recovered: Vec<PathBuf> = sources.iter().map(|s| s.name.clone()).collect();
    if let Some(taken) = dead_letter::take(&path).map_err(file_error(&path))? {
        sources.push(Source {
            taken,
            name: path.clone(),
        });
    }

    // Per table: the rows to send, and where each came from (to keep them if the route is off).
    let mut bodies: BTreeMap<u8, (Table, Vec<u8>, Vec<LineAt>)> = BTreeMap::new();
    let mut kept: Vec<(usize, KeptBecause, usize)> = Vec::new();
    let mut rows = 0;
    for (i, source) in sources.iter().enumerate() {
        for line in dead_letter::parse(&source.taken.bytes) {
            let Some(entry) = &line.entry else {
                kept.push((i, KeptBecause::Unreadable, line.number));
                continue;
            };
            let Some(table) = entry.table() else {
                kept.push((i, KeptBecause::UnknownTable, line.number));
                continue;
            };
            let slot = bodies
                .entry(table as u8)
                .or_insert((table, Vec::new(), Vec::new()));
            slot.1.extend_from_slice(entry.row.get().as_bytes());
            slot.1.push(b'\n');
            slot.2.push((i, line.number));
            rows += 1;
        }
    }
    // Rows still undelivered at the deadline are given up: back to the queue.
    let deadline = Deadline::after(timeout, &give_up);
    let sends = async {
        for (table, body, from) in bodies.into_values() {
            let batch = Batch {
                table,
                rows: from.len(),
                body,
            };
            let unrouted = Metrics::get(&metrics.rows_unrouted);
            built.delivery.deliver(&batch, false).await;
            if Metrics::get(&metrics.rows_unrouted) > unrouted {
                kept.extend(from.into_iter().map(|(i, n)| (i, KeptBecause::RouteOff, n)));
                rows -= batch.rows;
            }
        }
    };
    runtime.block_on(deadline.settle(sends, None, || {}));
    let outcome = |kept| ReplayOutcome {
        rows,
        delivered: Metrics::get(&metrics.rows_delivered),
        dead_lettered_again: Metrics::get(&metrics.rows_dead_lettered),
        kept,
        recovered: recovered.clone(),
        in_use: in_use.clone(),
    };
    let names: Vec<PathBuf> = sources.iter().map(|s| s.taken.path.clone()).collect();
    let lost = Metrics::get(&metrics.rows_lost);
    if lost > 0 {
        return Err(DlqError::NotSettled {
            what: format!("{lost} row(s) refused again could not be written back to the queue"),
            path,
            kept: names,
        });
    }

    // Put back what was not sent, as it was, then delete the files taken.
    kept.sort_by_key(|(i, because, n)| (*i, *because as u8, *n));
    let mut back: Vec<&[u8]> = Vec::new();
    let mut groups: Vec<Kept> = Vec::new();
    for (i, because, number) in &kept {
        let source = &sources[*i];
        let raw = dead_letter::parse(&source.taken.bytes)
            .into_iter()
            .find(|l| l.number == *number)
            .map(|l| l.raw)
            .expect("a line found before");
        back.push(raw);
        match groups.last_mut() {
            Some(g) if g.from == source.name && g.because == *because => g.lines.push(*number),
            _ => groups.push(Kept {
                from: source.name.clone(),
                because: *because,
                lines: vec![*number],
            }),
        }
    }
    if let Err(e) = DeadLetterQueue::new(&path).append_lines(&back) {
        return Err(DlqError::NotSettled {
            what: format!(
                "{} line(s) that were not sent could not be written back to {}: {e}",
                back.len(),
                path.display()
            ),
            path,
            kept: names,
        });
    }
    for source in sources {
        let name = source.taken.path.clone();
        if let Err(e) = source.taken.remove() {
            tracing::warn!(
                "cannot delete {} ({e}): its rows were sent or written back; delete it, or \
                 the next replay sends them again",
                name.display()
            );
        }
    }
    Ok(outcome(groups))
}

fn in_use(listed: &Summary) -> Vec<PathBuf> {
    listed
        .aside
        .iter()
        .filter(|a| a.in_use)
        .map(|a| a.path.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(table: &str) -> String {
        format!(
            "{{\"deadLetteredAt\":\"2026-11-26T10:00:00Z\",\"table\":\"{table}\",\"route\":\"r\",\"error\":\"e\",\"row\":{{}}}}\n"
        )
    }

    #[test]
    fn list_counts_unknown_tables_and_unreadable_lines_and_files_left_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead-letters.ndjson");
        let mut bytes = entry("Syslog").into_bytes();
        bytes.extend_from_slice(b"\xff\xfe\n");
        bytes.extend_from_slice(entry("Nope").as_bytes());
        std::fs::write(&path, &bytes).unwrap();
        std::fs::write(
            dir.path().join("dead-letters.replaying-1"),
            entry("CommonSecurityLog") + &entry("Syslog"),
        )
        .unwrap();
        let s = list(&path).unwrap();
        assert_eq!(s.entries, 2);
        assert_eq!(s.unreadable, [2]);
        assert_eq!(s.unknown_table, [3]);
        assert_eq!(s.aside.len(), 1);
        assert!(!s.aside[0].in_use);
        assert_eq!(s.aside[0].summary.entries, 2);
        assert_eq!(s.sendable(), 3);
    }

    #[test]
    fn kept_lines_are_named_with_their_numbers() {
        let k = Kept {
            from: "/q".into(),
            because: KeptBecause::UnknownTable,
            lines: vec![6, 23],
        };
        assert_eq!(
            k.to_string(),
            "kept 2 entries whose table is not a known name (lines 6, 23) of /q"
        );
        let k = Kept {
            from: "/q".into(),
            because: KeptBecause::Unreadable,
            lines: (1..=25).collect(),
        };
        assert!(k.to_string().ends_with("19, 20, and 5 more) of /q"), "{k}");
    }
}
