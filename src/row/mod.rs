//! Row: what every message format produces. One Sentinel row (`CommonSecurityLog` or
//! `Syslog`) with typed values borrowing from the message, the problems found on the way,
//! the settings rows are built with, and the facts of a message's reception. Formats
//! (`decode`) write rows; everything after them (filter, batch, outputs) reads them.

mod json;
mod problem;
pub mod schema;

use std::borrow::Cow;

use chrono::{DateTime, Utc};

pub use json::{
    JsonShape, TRUNCATION_MARKER, Written, json_len, write_json, write_json_shaped,
    write_json_where,
};
pub use problem::{COMMON_PROBLEMS, DIAGNOSTICS_COLUMN, Problem, ProblemKind};
pub use schema::{ColumnType, columns};

use crate::time::TimeContext;

/// The Sentinel table a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    CommonSecurityLog,
    Syslog,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::CommonSecurityLog => "CommonSecurityLog",
            Table::Syslog => "Syslog",
        }
    }

    /// The table [`Table::name`] names.
    pub fn from_name(name: &str) -> Option<Table> {
        [Table::CommonSecurityLog, Table::Syslog]
            .into_iter()
            .find(|t| t.name() == name)
    }
}

/// A column value, typed as its column is.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Real(f64),
    Time(DateTime<Utc>),
}

/// One row: columns in a fixed order (TimeGenerated first), borrowing from the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Row<'a> {
    pub table: Table,
    pub columns: Vec<(&'static str, Value<'a>)>,
    pub problems: Vec<Problem>,
}

impl<'a> Row<'a> {
    /// The value of a column, if the row has it.
    pub fn get(&self, column: &str) -> Option<&Value<'a>> {
        self.columns
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, v)| v)
    }
}

/// Where `TimeGenerated` comes from; the first source that yields a time wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSource {
    /// When cefgate received the message (what Sentinel's agents do).
    Received,
    /// The CEF `rt` (device receipt time).
    Rt,
    /// The CEF `end`.
    End,
    /// The CEF `start`.
    Start,
    /// The syslog header's timestamp.
    Syslog,
}

impl TimeSource {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.trim() {
            "received" => TimeSource::Received,
            "rt" => TimeSource::Rt,
            "end" => TimeSource::End,
            "start" => TimeSource::Start,
            "syslog" => TimeSource::Syslog,
            _ => return None,
        })
    }
}

/// A `TimeGenerated` source [`TimeSource`] does not know: its name and the ones accepted
/// (`"bogus" (use received, ...)`); the caller says what was unknown before it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} (use received, rt, end, start, syslog)")]
pub struct UnknownTimeSource(pub String);

/// [`TimeSource::parse`], for `[record] time_generated` and `--time-generated`.
impl std::str::FromStr for TimeSource {
    type Err = UnknownTimeSource;

    fn from_str(name: &str) -> Result<Self, UnknownTimeSource> {
        TimeSource::parse(name).ok_or_else(|| UnknownTimeSource(name.to_string()))
    }
}

/// How rows are built: the settings that are not in the message.
#[derive(Debug, Clone)]
pub struct RecordSettings {
    /// This machine's name, written to `CollectorHostName`.
    pub collector_host: String,
    /// Precedence for `TimeGenerated`; `Received` is always the last resort.
    pub time_generated: Vec<TimeSource>,
    /// Add [`EVENT_ID_COLUMN`] to every row.
    pub event_id: bool,
    /// Keep RFC 5424 structured data at the front of `SyslogMessage`. Off by default: the
    /// Azure agent writes MSG alone, and Sentinel's parsers of `SyslogMessage` expect that.
    pub keep_structured_data: bool,
}

/// A deterministic ID of the message (its raw bytes and receive time), so that a row
/// delivered twice after a recovery can be deduplicated in KQL.
pub const EVENT_ID_COLUMN: &str = columns::CEFGATE_EVENT_ID;

/// A copy of `TimeGenerated`, written only for a row whose `TimeGenerated` Azure would replace
/// because it falls outside the ingestion window (see `sink::logs_ingestion`), so the event's
/// time survives ingestion.
pub const TIME_GENERATED_COPY_COLUMN: &str = columns::CEFGATE_TIME_GENERATED;

/// `xxh3-64(receive time in ns, little-endian ++ raw message)` as 16 hex digits.
pub fn event_id(text: &str, received_at: &DateTime<Utc>) -> String {
    let nanos = received_at.timestamp_nanos_opt().unwrap_or_default();
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(&nanos.to_le_bytes());
    hasher.update(text.as_bytes());
    format!("{:016x}", hasher.digest())
}

impl Default for RecordSettings {
    fn default() -> Self {
        Self {
            collector_host: gethostname::gethostname().to_string_lossy().into_owned(),
            time_generated: vec![TimeSource::Received],
            event_id: false,
            keep_structured_data: false,
        }
    }
}

/// Facts about one received message that are not in its text.
#[derive(Debug, Clone, Copy)]
pub struct Reception<'a> {
    pub time: TimeContext,
    /// The sender's address (Syslog `HostIP`, fallback for `Computer`), when known.
    pub peer: Option<&'a str>,
    /// The listener cut the message at its size limit.
    pub truncated: bool,
    /// The format the configuration names for this sender or listener, tried before any
    /// other; `None` recognises the format by content.
    pub format: Option<ForcedFormat>,
}

/// A format named by the configuration rather than recognised by content: a listener's
/// `format`, its `sender_formats`, `cefgate convert --format`. Holds the format's name as
/// `decode` checked it (`decode::ForcedFormat::from_str`), so an unknown name never gets here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForcedFormat(&'static str);

impl ForcedFormat {
    /// For the decode stage, which checks `name` against its formats.
    pub const fn checked(name: &'static str) -> Self {
        Self(name)
    }

    pub fn name(&self) -> &'static str {
        self.0
    }
}

/// What a format needs besides the message to build its row: the settings and the
/// reception.
#[derive(Debug, Clone, Copy)]
pub struct MapContext<'a> {
    pub settings: &'a RecordSettings,
    pub rx: Reception<'a>,
}

impl<'a> MapContext<'a> {
    /// `CollectorHostName`.
    pub fn collector(&self) -> Value<'a> {
        Value::Str(Cow::Borrowed(self.settings.collector_host.as_str()))
    }

    /// Whether `source` is one of the configured `TimeGenerated` sources.
    pub fn wants(&self, source: TimeSource) -> bool {
        self.settings.time_generated.contains(&source)
    }

    /// `TimeGenerated`: the first configured source the message has, else the receive time.
    pub fn time_generated(&self, found: TimeSources) -> DateTime<Utc> {
        for source in &self.settings.time_generated {
            let time = match source {
                TimeSource::Received => Some(self.rx.time.received_at),
                TimeSource::Rt => found.rt,
                TimeSource::Start => found.start,
                TimeSource::End => found.end,
                TimeSource::Syslog => found.syslog,
            };
            if let Some(t) = time {
                return t;
            }
        }
        self.rx.time.received_at
    }
}

/// The times a message carries that may be its `TimeGenerated`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeSources {
    pub syslog: Option<DateTime<Utc>>,
    pub rt: Option<DateTime<Utc>>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

/// A borrowed text value.
pub fn str_value(s: &str) -> Value<'_> {
    Value::Str(Cow::Borrowed(s))
}
