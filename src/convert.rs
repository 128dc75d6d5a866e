//! `cefgate convert`: captured lines in, the JSON rows that would be posted out, one per
//! input line and in input order.

use std::io::{self, BufRead, Write};

use chrono::{DateTime, Utc};

use crate::decode::TimeContext;
use crate::decode::time::SenderZone;
use crate::record::{ProblemCounts, Reception, RowBuilder, Table};

/// What `convert` needs besides its input.
#[derive(Debug, Clone)]
pub struct ConvertSettings {
    /// Pinned receive time; `None` means the clock at each line.
    pub received_at: Option<DateTime<Utc>>,
    /// Zone for timestamps that carry none.
    pub zone: SenderZone,
    /// `--where`: only rows it keeps are written (the others are counted).
    pub filter: Option<crate::filter::Predicate>,
    /// `--project-away`: columns left out.
    pub project_away: crate::filter::ProjectAway,
}

/// What one conversion did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvertSummary {
    pub lines: u64,
    pub bytes: u64,
    pub cef_rows: u64,
    pub syslog_rows: u64,
    pub problems: ProblemCounts,
    /// Rows `--where` left out (not written).
    pub dropped: u64,
}

/// Converts every line of `input` (LF or CRLF; a final line without LF counts) and writes one
/// JSON row per line to `output`. `progress` is called with the bytes read so far.
pub fn convert_stream<R: BufRead, W: Write>(
    builder: &RowBuilder,
    settings: &ConvertSettings,
    mut input: R,
    output: &mut W,
    summary: &mut ConvertSummary,
    mut progress: impl FnMut(u64),
) -> io::Result<()> {
    let mut line = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(1 << 16);
    loop {
        line.clear();
        let n = input.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        summary.lines += 1;
        summary.bytes += n as u64;
        // Line ends, and the NULs some senders add, are no part of the message.
        let message = crate::frame::trim_trailer(&line);
        let received_at = settings.received_at.unwrap_or_else(Utc::now);
        let rx = Reception {
            time: TimeContext::new(received_at, settings.zone),
            peer: None,
            truncated: false,
        };
        let (table, kept) = if settings.filter.is_none() && settings.project_away.is_empty() {
            let table = builder.convert(message, &rx, &mut summary.problems, |table, write| {
                write(&mut out);
                table
            });
            (table, true)
        } else {
            builder.convert_row(message, &rx, &mut summary.problems, |row| {
                let kept = settings.filter.as_ref().is_none_or(|f| f.keeps(row));
                if kept {
                    let away = &settings.project_away;
                    crate::record::write_json_where(row, |c| !away.removes(c), &mut out);
                }
                (row.table, kept)
            })
        };
        if kept {
            out.push(b'\n');
        } else {
            summary.dropped += 1;
        }
        match table {
            Table::CommonSecurityLog => summary.cef_rows += 1,
            Table::Syslog => summary.syslog_rows += 1,
        }
        if out.len() >= 1 << 16 {
            output.write_all(&out)?;
            out.clear();
            progress(summary.bytes);
        }
    }
    output.write_all(&out)?;
    output.flush()?;
    progress(summary.bytes);
    Ok(())
}
