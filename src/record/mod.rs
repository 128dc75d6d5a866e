//! Record: a decoded message -> one Sentinel row, `CommonSecurityLog` for CEF and `Syslog`
//! for everything else, with every value converted to its column's type.
//!
//! Nothing is dropped here: a value that does not fit its column goes to
//! `AdditionalExtensions`, a broken CEF record keeps its raw text, and each such problem is
//! written to the row (`CefgateDiagnostics`) and counted by the caller.

mod action;
mod fields;
mod json;
mod problem;
pub mod schema;

use std::borrow::Cow;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

pub use fields::{ColumnType, FIELDS, FieldSpec, lookup};
pub use json::{write_json, write_json_where};
pub use problem::{DIAGNOSTICS_COLUMN, Problem, ProblemCounts, ProblemKind};
use schema::columns as col;

use crate::decode::cisco::{self, CiscoMessage, Fields};
use crate::decode::{
    self, CefError, CefEvent, Extension, Payload, ProcessId, SyslogHeader, TimeContext,
};

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
pub const EVENT_ID_COLUMN: &str = col::CEFGATE_EVENT_ID;

/// The receive time of a row whose `TimeGenerated` Azure would replace (see
/// `sink::logs_ingestion`).
pub const RECEIVED_TIME_COLUMN: &str = col::CEFGATE_RECEIVED_TIME;

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
}

/// Turns decoded messages into rows.
#[derive(Debug, Clone)]
pub struct RowBuilder {
    settings: RecordSettings,
}

/// Where `act` (`DeviceAction`) is in the dictionary; `SimplifiedDeviceAction` follows it.
const ACT_INDEX: u16 = 0;

const SEEN_WORDS: usize = FIELDS.len().div_ceil(64);

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
        let decoded = decode::decode(text, &rx.time);
        let mut row = match decoded.payload {
            Payload::Cef {
                event,
                text: cef_text,
            } => self.common_security_log(&decoded.header, event, cef_text, rx),
            Payload::Cisco(message) => self.cisco(&decoded.header, message, rx),
            Payload::Syslog => self.syslog(&decoded.header, text, rx),
        };
        if lossy {
            row.problems.insert(
                0,
                Problem {
                    kind: ProblemKind::InvalidUtf8,
                    detail: None,
                },
            );
        }
        if rx.truncated {
            row.problems.insert(
                0,
                Problem {
                    kind: ProblemKind::MessageTruncated,
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

    fn collector(&self) -> Value<'_> {
        Value::Str(Cow::Borrowed(self.settings.collector_host.as_str()))
    }

    fn common_security_log<'a>(
        &'a self,
        header: &SyslogHeader<'a>,
        event: Result<CefEvent<'a>, CefError<'a>>,
        cef_text: &'a str,
        rx: &Reception<'a>,
    ) -> Row<'a> {
        let mut problems = Vec::new();
        // A broken header keeps the fields it has, its extension, and the raw record.
        let (event, header_fields, broken) = match event {
            Ok(ev) => (ev, 6, None),
            Err(err @ CefError::TruncatedHeader { .. }) => {
                let detail = err.to_string();
                let CefError::TruncatedHeader { event, found } = err else {
                    unreachable!()
                };
                (*event, found, Some(detail))
            }
            Err(err @ CefError::NoMarker) => (CefEvent::default(), 0, Some(err.to_string())),
        };
        // Header, host and time columns, one per pair, and the two catch-all columns.
        let mut columns: Vec<(&'static str, Value<'a>)> =
            Vec::with_capacity(12 + event.extension.len() / 16);
        columns.push((col::TIME_GENERATED, Value::Time(rx.time.received_at)));
        if let Some(host) = header.hostname.or(rx.peer) {
            columns.push((col::COMPUTER, str_value(host)));
        }
        columns.push((col::COLLECTOR_HOST_NAME, self.collector()));
        let cef_header = [
            (col::DEVICE_VENDOR, event.device_vendor),
            (col::DEVICE_PRODUCT, event.device_product),
            (col::DEVICE_VERSION, event.device_version),
            (col::DEVICE_EVENT_CLASS_ID, event.device_event_class_id),
            (col::ACTIVITY, event.name),
            (col::LOG_SEVERITY, event.severity),
        ];
        for (column, value) in cef_header.into_iter().take(header_fields) {
            columns.push((column, Value::Str(value)));
        }
        if let Some(detail) = broken {
            problems.push(Problem {
                kind: ProblemKind::CefHeaderIncomplete,
                detail: Some(detail),
            });
        }

        let mut extra = AdditionalExtensions::default();
        if let Some(sd) = header.structured_data {
            extra.push("syslogStructuredData", sd);
        }
        let mut pairs = Extension::new(event.extension);
        if let Some(text) = pairs.take_unkeyed() {
            extra.push("cefgateUnkeyed", text);
            problems.push(Problem {
                kind: ProblemKind::CefTextWithoutKey,
                detail: None,
            });
        }

        let mut seen = [0u64; SEEN_WORDS];
        let (mut rt, mut start, mut end) = (None, None, None);
        let mut action_at = None;
        for (key, raw) in pairs {
            let Some((idx, spec)) = lookup(key) else {
                // `start` and `end` have no column (Microsoft's agent leaves them here), but
                // either may still be the row's time.
                extra.push(key, raw.as_written());
                let time = match key {
                    "start" if start.is_none() && self.wants(TimeSource::Start) => &mut start,
                    "end" if end.is_none() && self.wants(TimeSource::End) => &mut end,
                    _ => continue,
                };
                *time = decode::time::parse_cef_time(&raw.as_stored(), &rx.time);
                if time.is_none() {
                    problems.push(Problem {
                        kind: ProblemKind::BadTimestamp,
                        detail: Some(format!("{key} is not a time cefgate reads")),
                    });
                }
                continue;
            };
            let (word, bit) = (idx as usize / 64, 1u64 << (idx % 64));
            if seen[word] & bit != 0 {
                extra.push(key, raw.as_written());
                problems.push(Problem {
                    kind: ProblemKind::DuplicateKey,
                    detail: Some(key.to_string()),
                });
                continue;
            }
            match convert(spec, raw.as_stored(), &rx.time) {
                Ok(v) => {
                    seen[word] |= bit;
                    match (spec.short, &v) {
                        ("rt", Value::Str(s)) if self.wants(TimeSource::Rt) => {
                            rt = decode::time::parse_cef_time(s, &rx.time)
                        }
                        _ => {}
                    }
                    if idx == ACT_INDEX {
                        action_at = Some(columns.len());
                    }
                    columns.push((spec.column, v));
                }
                Err((_, kind)) => {
                    extra.push(key, raw.as_written());
                    let detail = format!("{key} is not a valid {}", spec.column_type.name());
                    problems.push(Problem {
                        kind,
                        detail: Some(detail),
                    });
                }
            }
        }
        if header_fields < 6 {
            let msg_taken =
                lookup("msg").is_some_and(|(i, _)| seen[i as usize / 64] & (1 << (i % 64)) != 0);
            if msg_taken {
                extra.push("cefgateRaw", cef_text);
            } else {
                columns.push(("Message", str_value(cef_text)));
            }
        }
        if let Some(Value::Str(act)) = action_at.map(|i| &columns[i].1) {
            let simplified = action::simplified(act.clone());
            columns.push((col::SIMPLIFIED_DEVICE_ACTION, Value::Str(simplified)));
        }
        if let Some(text) = extra.finish() {
            columns.push((col::ADDITIONAL_EXTENSIONS, Value::Str(Cow::Owned(text))));
        }
        columns[0].1 = Value::Time(self.time_generated(rx, header, rt, start, end));
        Row {
            table: Table::CommonSecurityLog,
            columns,
            problems,
        }
    }

    /// A Cisco ASA/FTD message as Microsoft's agent stores it in `CommonSecurityLog`: the
    /// tag's vendor, product, ID and level, the message from its tag on, the sending device,
    /// and the network fields of the messages in `grammars/cisco-asa-messages.tsv`. The
    /// sources of each choice are in fixtures/README.md ("Cisco ASA and FTD").
    fn cisco<'a>(
        &'a self,
        header: &SyslogHeader<'a>,
        message: CiscoMessage<'a>,
        rx: &Reception<'a>,
    ) -> Row<'a> {
        let mut columns: Vec<(&'static str, Value<'a>)> = Vec::with_capacity(24);
        let mut problems = Vec::new();
        let time = self.time_generated(rx, header, None, None, None);
        columns.push((col::TIME_GENERATED, Value::Time(time)));
        let device = header.hostname.or(rx.peer);
        if let Some(host) = device {
            columns.push((col::COMPUTER, str_value(host)));
        }
        columns.push((col::COLLECTOR_HOST_NAME, self.collector()));
        columns.push((col::DEVICE_VENDOR, str_value("Cisco")));
        columns.push((col::DEVICE_PRODUCT, str_value(message.product.name())));
        columns.push((col::DEVICE_EVENT_CLASS_ID, str_value(message.id)));
        columns.push((
            col::LOG_SEVERITY,
            str_value(cisco::log_severity(message.level)),
        ));
        columns.push((
            col::ORIGINAL_LOG_SEVERITY,
            str_value(LEVEL_DIGITS[message.level as usize]),
        ));
        // The device's address: the sender's, else a header host that is an IP address.
        let address = rx.peer.or(header
            .hostname
            .filter(|h| h.parse::<std::net::IpAddr>().is_ok()));
        if let Some(address) = address {
            columns.push(("DeviceAddress", str_value(address)));
        }
        if let Some(host) = device {
            columns.push(("DeviceName", str_value(host)));
        }
        if let Some(facility) = header.facility {
            columns.push(("DeviceFacility", str_value(facility)));
        }
        match message.fields {
            Fields::NotListed => {}
            Fields::Unread => problems.push(Problem {
                kind: ProblemKind::CiscoFieldsUnread,
                detail: Some(format!("{} is not in its documented shape", message.id)),
            }),
            Fields::Read(f) => {
                if let Some(action) = f.action {
                    columns.push(("DeviceAction", str_value(action)));
                    columns.push((
                        col::SIMPLIFIED_DEVICE_ACTION,
                        Value::Str(action::simplified(Cow::Borrowed(action))),
                    ));
                }
                if let Some(direction) = f.direction {
                    columns.push(("CommunicationDirection", str_value(direction.name())));
                }
                if let Some(protocol) = f.protocol {
                    columns.push(("Protocol", Value::Str(protocol)));
                }
                let endpoints = [
                    (f.source, "SourceIP", "SourcePort"),
                    (f.destination, "DestinationIP", "DestinationPort"),
                    (
                        f.source_translated,
                        "SourceTranslatedAddress",
                        "SourceTranslatedPort",
                    ),
                    (
                        f.destination_translated,
                        "DestinationTranslatedAddress",
                        "DestinationTranslatedPort",
                    ),
                ];
                for (endpoint, address, port) in endpoints {
                    let Some(endpoint) = endpoint else { continue };
                    columns.push((address, str_value(endpoint.address)));
                    if let Some(p) = endpoint.port {
                        columns.push((port, Value::Int(p.into())));
                    }
                }
                if let Some(acl) = f.access_list {
                    columns.push(("DeviceCustomString2", str_value(acl)));
                }
            }
        }
        columns.push(("Message", str_value(message.text)));
        Row {
            table: Table::CommonSecurityLog,
            columns,
            problems,
        }
    }

    fn wants(&self, source: TimeSource) -> bool {
        self.settings.time_generated.contains(&source)
    }

    fn time_generated(
        &self,
        rx: &Reception<'_>,
        header: &SyslogHeader<'_>,
        rt: Option<DateTime<Utc>>,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> DateTime<Utc> {
        for source in &self.settings.time_generated {
            let found = match source {
                TimeSource::Received => Some(rx.time.received_at),
                TimeSource::Rt => rt,
                TimeSource::Start => start,
                TimeSource::End => end,
                TimeSource::Syslog => header.timestamp,
            };
            if let Some(t) = found {
                return t;
            }
        }
        rx.time.received_at
    }

    fn syslog<'a>(
        &'a self,
        header: &SyslogHeader<'a>,
        text: &'a str,
        rx: &Reception<'a>,
    ) -> Row<'a> {
        let mut columns: Vec<(&'static str, Value<'a>)> = Vec::with_capacity(12);
        let mut problems = Vec::new();
        let time = self.time_generated(rx, header, None, None, None);
        columns.push((col::TIME_GENERATED, Value::Time(time)));
        if let Some(host) = header.hostname.or(rx.peer) {
            columns.push((col::COMPUTER, str_value(host)));
        }
        if let Some(host) = header.hostname {
            columns.push((col::HOST_NAME, str_value(host)));
        }
        // Microsoft's agent writes `Unknown IP` when it has no address for the sender; cefgate
        // has one for everything it receives, so only `convert` without a sender writes it.
        columns.push((col::HOST_IP, str_value(rx.peer.unwrap_or(UNKNOWN_IP))));
        columns.push((col::COLLECTOR_HOST_NAME, self.collector()));
        if text.is_empty() {
            problems.push(Problem {
                kind: ProblemKind::EmptyMessage,
                detail: None,
            });
        } else if !header.has_header() {
            problems.push(Problem {
                kind: ProblemKind::NoSyslogHeader,
                detail: None,
            });
        }
        // RFC 3164 relays treat a message without PRI as user.notice.
        let (facility, severity) = match (header.facility, header.severity) {
            (Some(f), Some(s)) => (f, s),
            _ => ("user", "notice"),
        };
        columns.push((col::FACILITY, Value::Str(Cow::Borrowed(facility))));
        columns.push((col::SEVERITY_LEVEL, Value::Str(Cow::Borrowed(severity))));
        if let Some(app) = header.appname {
            columns.push((col::PROCESS_NAME, str_value(app)));
        }
        match header.procid {
            Some(ProcessId::Number(n)) => columns.push((col::PROCESS_ID, Value::Int(n.into()))),
            Some(ProcessId::Text(t)) => problems.push(Problem {
                kind: ProblemKind::ProcessIdNotNumber,
                detail: Some(format!("procid {t:?}")),
            }),
            None => {}
        }
        if let Some(t) = header.timestamp {
            columns.push((col::EVENT_TIME, Value::Time(t)));
        }
        // RFC 5424: a BOM only says "MSG is UTF-8"; it is not part of the text.
        let msg = header.msg.strip_prefix('\u{feff}').unwrap_or(header.msg);
        // RFC 5424 structured data is no part of MSG and the agent leaves it out; in an
        // RFC 3164 message a bracketed start is text (rsyslog keeps it in MSG), so it stays.
        let keep = self.settings.keep_structured_data || !header.rfc5424;
        let message = match header.structured_data {
            Some(sd) if keep && msg.is_empty() => str_value(sd),
            Some(sd) if keep => Value::Str(Cow::Owned(format!("{sd} {msg}"))),
            _ => str_value(msg),
        };
        columns.push((col::SYSLOG_MESSAGE, message));
        Row {
            table: Table::Syslog,
            columns,
            problems,
        }
    }
}

/// The Cisco levels as `OriginalLogSeverity` text, without formatting per row.
/// Syslog `HostIP` when the sender's address is not known, as Microsoft's agent writes it.
const UNKNOWN_IP: &str = "Unknown IP";

const LEVEL_DIGITS: [&str; 8] = ["0", "1", "2", "3", "4", "5", "6", "7"];

fn str_value(s: &str) -> Value<'_> {
    Value::Str(Cow::Borrowed(s))
}

/// Converts a CEF value to its column's type, or hands it back with the problem.
#[allow(clippy::result_large_err)]
fn convert<'a>(
    spec: &FieldSpec,
    value: Cow<'a, str>,
    time: &TimeContext,
) -> Result<Value<'a>, (Cow<'a, str>, ProblemKind)> {
    if spec.column_type == ColumnType::String {
        return Ok(Value::Str(value));
    }
    let t = value.trim();
    match spec.column_type {
        ColumnType::String => Ok(Value::Str(value)),
        ColumnType::Int => match t.parse::<i32>() {
            Ok(n) => Ok(Value::Int(n.into())),
            Err(_) => Err((value, ProblemKind::ValueType)),
        },
        ColumnType::Long => match t.parse::<i64>() {
            Ok(n) => Ok(Value::Int(n)),
            Err(_) => Err((value, ProblemKind::ValueType)),
        },
        ColumnType::Real => match t.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(Value::Real(x)),
            _ => Err((value, ProblemKind::ValueType)),
        },
        ColumnType::DateTime => match decode::time::parse_cef_time(t, time) {
            Some(ts) => Ok(Value::Time(ts)),
            None => Err((value, ProblemKind::BadTimestamp)),
        },
    }
}

/// `key=value;key=value`, the form Sentinel content splits on. Values are written as they
/// came, escapes included (`CN\=...`), as Microsoft's agent keeps them (fixtures/README.md).
#[derive(Default)]
struct AdditionalExtensions {
    text: Option<String>,
}

impl AdditionalExtensions {
    fn push(&mut self, key: &str, value: &str) {
        let text = self.text.get_or_insert_with(|| String::with_capacity(256));
        if !text.is_empty() {
            text.push(';');
        }
        text.push_str(key);
        text.push('=');
        text.push_str(value);
    }

    fn finish(self) -> Option<String> {
        self.text
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
