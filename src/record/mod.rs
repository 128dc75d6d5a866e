//! Record: raw message bytes -> one Sentinel row. The formats in [`crate::decode`] build the
//! row; this step adds what every row gets whatever its format (the invalid-UTF-8 and
//! truncation problems, `CefgateEventId`, `CefgateDiagnostics`) and hands the row on,
//! counted. The row types themselves are [`crate::row`]'s, re-exported here.
//!
//! Nothing is dropped: a value that does not fit its column goes to `AdditionalExtensions`,
//! a broken CEF record keeps its raw text, and each such problem is written to the row and
//! counted by the caller.

mod problems;
pub mod schema;

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::decode;
pub use crate::decode::cef::{ColumnType, FIELDS, FieldSpec, lookup};
pub use crate::row::{
    DIAGNOSTICS_COLUMN, EVENT_ID_COLUMN, MapContext, Problem, ProblemKind, Reception,
    RecordSettings, Row, TIME_GENERATED_COPY_COLUMN, Table, TimeSource, UnknownTimeSource, Value,
    event_id, write_json, write_json_where,
};
pub use problems::{PROBLEM_KINDS, ProblemCounts, kind_index};

/// Turns decoded messages into rows.
#[derive(Debug, Clone)]
pub struct RowBuilder {
    settings: RecordSettings,
}

impl RowBuilder {
    pub fn new(settings: RecordSettings) -> Self {
        Self { settings }
    }

    pub fn settings(&self) -> &RecordSettings {
        &self.settings
    }

    /// The one message-to-row step of `run` and `convert`: raw bytes (any encoding; invalid
    /// UTF-8 is replaced and flagged) -> a row, counted in `counts` and handed to `place`
    /// with its table and a writer of its JSON (so that the row is written straight into
    /// the buffer `place` chooses).
    pub fn convert<R>(
        &self,
        message: &[u8],
        rx: &Reception<'_>,
        counts: &mut ProblemCounts,
        place: impl FnOnce(Table, &dyn Fn(&mut Vec<u8>)) -> R,
    ) -> R {
        let text = utf8_text(message);
        let row = self.build(&text, matches!(text, Cow::Owned(_)), rx);
        counts.record(&row.problems);
        place(row.table, &|out: &mut Vec<u8>| write_json(&row, out))
    }

    /// As [`RowBuilder::convert`], handing the row itself to `use_row` (to filter it, or
    /// write it for several outputs).
    pub fn convert_row<R>(
        &self,
        message: &[u8],
        rx: &Reception<'_>,
        counts: &mut ProblemCounts,
        use_row: impl FnOnce(&Row<'_>) -> R,
    ) -> R {
        let text = utf8_text(message);
        let row = self.build(&text, matches!(text, Cow::Owned(_)), rx);
        counts.record(&row.problems);
        use_row(&row)
    }

    /// Decodes one message and builds its row. `lossy` says the text had invalid UTF-8
    /// replaced before it got here.
    pub fn build<'a>(&'a self, text: &'a str, lossy: bool, rx: &Reception<'a>) -> Row<'a> {
        let cx = MapContext {
            settings: &self.settings,
            rx: *rx,
        };
        let mut row = decode::row(text, &cx);
        if lossy {
            row.problems.insert(
                0,
                Problem {
                    kind: ProblemKind::INVALID_UTF8,
                    detail: None,
                },
            );
        }
        if rx.truncated {
            row.problems.insert(
                0,
                Problem {
                    kind: ProblemKind::MESSAGE_TRUNCATED,
                    detail: None,
                },
            );
        }
        if self.settings.event_id {
            let id = event_id(text, &rx.time.received_at);
            row.columns
                .push((EVENT_ID_COLUMN, Value::Str(Cow::Owned(id))));
        }
        if !row.problems.is_empty() {
            let mut text = String::new();
            for (i, p) in row.problems.iter().enumerate() {
                if i > 0 {
                    text.push_str("; ");
                }
                let _ = write!(text, "{p}");
            }
            row.columns
                .push((DIAGNOSTICS_COLUMN, Value::Str(Cow::Owned(text))));
        }
        row
    }
}

#[cfg(test)]
mod tests;

/// `message` as text: borrowed when it is valid UTF-8, with invalid sequences replaced
/// otherwise. `str::from_utf8` checks ASCII a word at a time; `String::from_utf8_lossy`
/// walks byte by byte even when nothing needs replacing (5% of a decode thread's time in a
/// profile of `run`), so it runs only for the rare message that fails the check.
fn utf8_text(message: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(message) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(message),
    }
}
