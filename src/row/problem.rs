//! What went wrong while turning a message into a row. Problems never drop data: the row
//! still carries every value (in `AdditionalExtensions` or the raw text), and the problem is
//! written to the row's `CefgateDiagnostics` column and counted.

use std::fmt;

/// The column that lists a row's problems (`kind: detail; kind: detail`). Absent when the
/// row had none.
pub const DIAGNOSTICS_COLUMN: &str = super::schema::columns::CEFGATE_DIAGNOSTICS;

/// A kind of problem: its stable name, used in `CefgateDiagnostics` and as the `kind` label
/// of the `problems` metric. The kinds any format may meet are here; a format defines its own
/// beside its code (`decode::cef::HEADER_INCOMPLETE`), and `record::PROBLEM_KINDS` lists
/// them all, each counted separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProblemKind {
    name: &'static str,
}

impl ProblemKind {
    pub const fn new(name: &'static str) -> Self {
        Self { name }
    }

    /// The stable name used in the diagnostics column and in metrics.
    pub fn name(self) -> &'static str {
        self.name
    }

    /// The message was not valid UTF-8; bad bytes were replaced by U+FFFD.
    pub const INVALID_UTF8: Self = Self::new("invalid-utf8");
    /// A value that does not fit its column's type; kept in `AdditionalExtensions`.
    pub const VALUE_TYPE: Self = Self::new("value-type");
    /// A time value that no known format reads; kept in `AdditionalExtensions`.
    pub const BAD_TIMESTAMP: Self = Self::new("bad-timestamp");
    /// A key that appeared more than once; later values kept in `AdditionalExtensions`.
    pub const DUPLICATE_KEY: Self = Self::new("duplicate-key");
    /// The message was longer than the listener's `max_message_bytes` and was cut there.
    pub const MESSAGE_TRUNCATED: Self = Self::new("message-truncated");
}

/// The kinds of problem any format may meet, in the order they are listed.
pub const COMMON_PROBLEMS: &[ProblemKind] = &[
    ProblemKind::INVALID_UTF8,
    ProblemKind::VALUE_TYPE,
    ProblemKind::BAD_TIMESTAMP,
    ProblemKind::DUPLICATE_KEY,
    ProblemKind::MESSAGE_TRUNCATED,
];

/// One problem on one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// A short, human-readable detail (the key, the expected type); never a whole value.
    pub detail: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.detail {
            Some(d) => write!(f, "{}: {}", self.kind.name(), d),
            None => f.write_str(self.kind.name()),
        }
    }
}
