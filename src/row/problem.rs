//! What went wrong while turning a message into a row. Problems never drop data: the row
//! still carries every value (in `AdditionalExtensions` or the raw text), and the problem is
//! written to the row's `CefgateDiagnostics` column and counted.

use std::fmt;

/// The column that lists a row's problems (`kind: detail; kind: detail`). Absent when the
/// row had none.
pub const DIAGNOSTICS_COLUMN: &str = super::schema::columns::CEFGATE_DIAGNOSTICS;

/// The kinds of problem, each counted separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProblemKind {
    /// The message was not valid UTF-8; bad bytes were replaced by U+FFFD.
    InvalidUtf8,
    /// The message was empty.
    EmptyMessage,
    /// A plain message had no syslog header (no PRI, no timestamp): treated as user.notice.
    NoSyslogHeader,
    /// A CEF record with fewer than seven header fields; the raw text is kept in `Message`.
    CefHeaderIncomplete,
    /// Text after the CEF header that belongs to no key; kept in `AdditionalExtensions`.
    CefTextWithoutKey,
    /// A value that does not fit its column's type; kept in `AdditionalExtensions`.
    ValueType,
    /// A time value that no known format reads; kept in `AdditionalExtensions`.
    BadTimestamp,
    /// A key that appeared more than once; later values kept in `AdditionalExtensions`.
    DuplicateKey,
    /// A syslog PROCID that is not a number (the Syslog table's ProcessID is an int).
    ProcessIdNotNumber,
    /// The message was longer than the listener's `max_message_bytes` and was cut there.
    MessageTruncated,
    /// A Cisco ASA/FTD message whose ID has network fields in
    /// `grammars/cisco-asa-messages.tsv` but whose text has another shape; the row keeps
    /// the text in `Message` without those fields.
    CiscoFieldsUnread,
}

impl ProblemKind {
    pub const ALL: [ProblemKind; 11] = [
        ProblemKind::InvalidUtf8,
        ProblemKind::EmptyMessage,
        ProblemKind::NoSyslogHeader,
        ProblemKind::CefHeaderIncomplete,
        ProblemKind::CefTextWithoutKey,
        ProblemKind::ValueType,
        ProblemKind::BadTimestamp,
        ProblemKind::DuplicateKey,
        ProblemKind::ProcessIdNotNumber,
        ProblemKind::MessageTruncated,
        ProblemKind::CiscoFieldsUnread,
    ];

    /// The stable name used in the diagnostics column and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::InvalidUtf8 => "invalid-utf8",
            ProblemKind::EmptyMessage => "empty-message",
            ProblemKind::NoSyslogHeader => "no-syslog-header",
            ProblemKind::CefHeaderIncomplete => "cef-header-incomplete",
            ProblemKind::CefTextWithoutKey => "cef-text-without-key",
            ProblemKind::ValueType => "value-type",
            ProblemKind::BadTimestamp => "bad-timestamp",
            ProblemKind::DuplicateKey => "duplicate-key",
            ProblemKind::ProcessIdNotNumber => "procid-not-number",
            ProblemKind::MessageTruncated => "message-truncated",
            ProblemKind::CiscoFieldsUnread => "cisco-fields-unread",
        }
    }
}

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

/// Problem counters, one per kind, plus the number of rows that had any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProblemCounts {
    counts: [u64; ProblemKind::ALL.len()],
    pub rows_with_problems: u64,
}

impl ProblemCounts {
    pub fn record(&mut self, problems: &[Problem]) {
        if problems.is_empty() {
            return;
        }
        self.rows_with_problems += 1;
        for p in problems {
            self.counts[p.kind as usize] += 1;
        }
    }

    /// Adds another set of counts to these.
    pub fn add(&mut self, other: &ProblemCounts) {
        self.rows_with_problems += other.rows_with_problems;
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
    }

    pub fn get(&self, kind: ProblemKind) -> u64 {
        self.counts[kind as usize]
    }

    /// `(name, count)` for every kind seen at least once.
    pub fn nonzero(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ProblemKind::ALL
            .iter()
            .map(|k| (k.name(), self.get(*k)))
            .filter(|(_, n)| *n > 0)
    }
}
