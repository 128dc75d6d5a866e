//! The `CommonSecurityLog` row of a CEF record: header columns, every dictionary key in
//! its column converted to the column's type (`grammars/cef-fields.tsv`), the rest in
//! `AdditionalExtensions` as written, as Microsoft's agent stores them (fixtures/README.md,
//! "Rows as Microsoft's agent writes them"). Nothing is dropped: a value that does not fit
//! its column stays in `AdditionalExtensions`, a broken record keeps its raw text, and each
//! such problem goes on the row.

use std::borrow::Cow;

use super::action;
use super::fields::{ColumnType, FIELDS, FieldSpec, lookup};
use super::{CefError, CefEvent, Extension};
use crate::decode::syslog::SyslogHeader;
use crate::row::{
    MapContext, Problem, ProblemKind, Row, Table, TimeSource, TimeSources, Value, columns as col,
    str_value,
};
use crate::time::TimeContext;

/// Where `act` (`DeviceAction`) is in the dictionary; `SimplifiedDeviceAction` follows it.
pub(crate) const ACT_INDEX: u16 = 0;

pub(crate) const SEEN_WORDS: usize = FIELDS.len().div_ceil(64);

/// The row of a CEF record found behind `header`; `cef_text` is the record as sent.
pub fn row<'a>(
    header: &SyslogHeader<'a>,
    event: Result<CefEvent<'a>, CefError<'a>>,
    cef_text: &'a str,
    cx: &MapContext<'a>,
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
    columns.push((col::TIME_GENERATED, Value::Time(cx.rx.time.received_at)));
    if let Some(host) = header.hostname.or(cx.rx.peer) {
        columns.push((col::COMPUTER, str_value(host)));
    }
    columns.push((col::COLLECTOR_HOST_NAME, cx.collector()));
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
            kind: super::HEADER_INCOMPLETE,
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
            kind: super::TEXT_WITHOUT_KEY,
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
                "start" if start.is_none() && cx.wants(TimeSource::Start) => &mut start,
                "end" if end.is_none() && cx.wants(TimeSource::End) => &mut end,
                _ => continue,
            };
            *time = crate::time::parse_cef_time(&raw.as_stored(), &cx.rx.time);
            if time.is_none() {
                problems.push(Problem {
                    kind: ProblemKind::BAD_TIMESTAMP,
                    detail: Some(format!("{key} is not a time cefgate reads")),
                });
            }
            continue;
        };
        let (word, bit) = (idx as usize / 64, 1u64 << (idx % 64));
        if seen[word] & bit != 0 {
            extra.push(key, raw.as_written());
            problems.push(Problem {
                kind: ProblemKind::DUPLICATE_KEY,
                detail: Some(key.to_string()),
            });
            continue;
        }
        match convert(spec, raw.as_stored(), &cx.rx.time) {
            Ok(v) => {
                seen[word] |= bit;
                match (spec.short, &v) {
                    ("rt", Value::Str(s)) if cx.wants(TimeSource::Rt) => {
                        rt = crate::time::parse_cef_time(s, &cx.rx.time)
                    }
                    _ => {}
                }
                if idx == ACT_INDEX {
                    action_at = Some(columns.len());
                }
                columns.push((spec.column, v));
            }
            Err(kind) => {
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
    columns[0].1 = Value::Time(cx.time_generated(TimeSources {
        syslog: header.timestamp,
        rt,
        start,
        end,
    }));
    Row {
        table: Table::CommonSecurityLog,
        columns,
        problems,
    }
}

/// Converts a CEF value to its column's type, or says why it does not fit (the caller keeps
/// the value as written in `AdditionalExtensions`).
pub(crate) fn convert<'a>(
    spec: &FieldSpec,
    value: Cow<'a, str>,
    time: &TimeContext,
) -> Result<Value<'a>, ProblemKind> {
    if spec.column_type == ColumnType::String {
        return Ok(Value::Str(value));
    }
    let t = value.trim();
    match spec.column_type {
        ColumnType::String => Ok(Value::Str(value)),
        ColumnType::Int => match t.parse::<i32>() {
            Ok(n) => Ok(Value::Int(n.into())),
            Err(_) => Err(ProblemKind::VALUE_TYPE),
        },
        ColumnType::Long => match t.parse::<i64>() {
            Ok(n) => Ok(Value::Int(n)),
            Err(_) => Err(ProblemKind::VALUE_TYPE),
        },
        ColumnType::Real => match t.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(Value::Real(x)),
            _ => Err(ProblemKind::VALUE_TYPE),
        },
        ColumnType::DateTime => match crate::time::parse_cef_time(t, time) {
            Some(ts) => Ok(Value::Time(ts)),
            None => Err(ProblemKind::BAD_TIMESTAMP),
        },
    }
}

/// `key=value;key=value`, the form Sentinel content splits on. Values are written as they
/// came, escapes included (`CN\=...`), as Microsoft's agent keeps them (fixtures/README.md).
#[derive(Default)]
pub(crate) struct AdditionalExtensions {
    text: Option<String>,
}

impl AdditionalExtensions {
    pub(crate) fn push(&mut self, key: &str, value: &str) {
        self.push_prefixed("", key, value);
    }

    /// `prefix` and `key` as one key (a vendor's prefix for keys CEF does not define).
    pub(crate) fn push_prefixed(&mut self, prefix: &str, key: &str, value: &str) {
        let text = self.text.get_or_insert_with(|| String::with_capacity(256));
        if !text.is_empty() {
            text.push(';');
        }
        text.push_str(prefix);
        text.push_str(key);
        text.push('=');
        text.push_str(value);
    }

    pub(crate) fn finish(self) -> Option<String> {
        self.text
    }
}
