//! The CEF twin of a vendor's line: the `CommonSecurityLog` row a device would have given
//! had it been set to send CEF. A native format (PAN-OS CSV, FortiOS key=value, ...) names,
//! for each of its fields, the CEF key the vendor's own CEF mode sends it as; [`CefTwin`]
//! puts each key where the CEF path puts it, converted as the CEF path converts it
//! ([`super::row::convert`]), so the twin and a real CEF record of the same event cannot
//! drift apart. A format then owns only its parser and its table of keys.

use std::borrow::Cow;

use super::action;
use super::fields::{FieldSpec, lookup};
use super::row::{ACT_INDEX, AdditionalExtensions, SEEN_WORDS, convert};
use crate::decode::syslog::SyslogHeader;
use crate::row::{
    MapContext, Problem, Row, Table, TimeSource, TimeSources, Value, columns as col, str_value,
};

/// Where a CEF key goes: its dictionary column, or `AdditionalExtensions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CefKey {
    /// A key of `grammars/cef-fields.tsv`: its name, spec and dictionary index.
    Column(&'static str, &'static FieldSpec, u16),
    /// Any other key, written to `AdditionalExtensions` as `key=value`.
    Extension(&'static str),
}

impl CefKey {
    /// `key` as the CEF path places it.
    pub fn of(key: &'static str) -> CefKey {
        match lookup(key) {
            Some((index, spec)) => CefKey::Column(key, spec, index),
            None => CefKey::Extension(key),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            CefKey::Column(key, ..) | CefKey::Extension(key) => key,
        }
    }
}

/// `value` as a CEF extension value writes it: backslash and `=` escaped. The agent keeps these
/// escapes in `AdditionalExtensions` (fixtures/README.md), so the twin writes them too.
pub fn cef_escaped(value: &str) -> Cow<'_, str> {
    if !value.contains(['\\', '=']) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 4);
    for c in value.chars() {
        if c == '\\' || c == '=' {
            out.push('\\');
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// A `CommonSecurityLog` row being built from a vendor's fields, in the CEF path's order:
/// the header columns first, then each key as it comes.
pub struct CefTwin<'a> {
    columns: Vec<(&'static str, Value<'a>)>,
    problems: Vec<Problem>,
    extra: AdditionalExtensions,
    times: TimeSources,
    /// Where `DeviceAction` is, for `SimplifiedDeviceAction`.
    action_at: Option<usize>,
    /// Dictionary keys already in a column: a second one stays in `AdditionalExtensions`.
    seen: [u64; SEEN_WORDS],
}

impl<'a> CefTwin<'a> {
    /// A row with the columns every row starts with (`TimeGenerated`, set at the end,
    /// `Computer` from the header or the sender, `CollectorHostName`) and the CEF header's
    /// vendor and product.
    pub fn new(
        header: &SyslogHeader<'a>,
        vendor: Cow<'a, str>,
        product: Cow<'a, str>,
        cx: &MapContext<'a>,
    ) -> Self {
        let mut columns = Vec::with_capacity(48);
        columns.push((col::TIME_GENERATED, Value::Time(cx.rx.time.received_at)));
        if let Some(host) = header.hostname.or(cx.rx.peer) {
            columns.push((col::COMPUTER, str_value(host)));
        }
        columns.push((col::COLLECTOR_HOST_NAME, cx.collector()));
        columns.push((col::DEVICE_VENDOR, Value::Str(vendor)));
        columns.push((col::DEVICE_PRODUCT, Value::Str(product)));
        Self {
            columns,
            problems: Vec::new(),
            extra: AdditionalExtensions::default(),
            times: TimeSources {
                syslog: header.timestamp,
                ..TimeSources::default()
            },
            action_at: None,
            seen: [0; SEEN_WORDS],
        }
    }

    /// A column the vendor's CEF header (or the agent) fills directly: `DeviceVersion`,
    /// `DeviceEventClassID`, `Activity`, `LogSeverity`, ...
    pub fn column(&mut self, column: &'static str, value: Cow<'a, str>) {
        self.columns.push((column, Value::Str(value)));
    }

    /// A problem of the format's own (a truncated line, an unlisted type).
    pub fn problem(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// The vendor's field `field` sent as CEF key `key` with `value`, which must already be
    /// in the form the vendor's CEF writes it (times as CEF times, say). A value that does
    /// not fit its column stays in `AdditionalExtensions` with a problem, as on the CEF path.
    pub fn key(&mut self, key: CefKey, field: &str, value: Cow<'a, str>, cx: &MapContext<'a>) {
        match key {
            CefKey::Extension(name) => {
                self.time_of(name, &value, cx);
                self.extra.push(name, &cef_escaped(&value));
            }
            CefKey::Column(name, _, index)
                if self.seen[index as usize / 64] & (1 << (index % 64)) != 0 =>
            {
                // As the CEF path does with a key sent twice: the first keeps the column.
                self.extra.push(name, &cef_escaped(&value));
                self.problems.push(Problem {
                    kind: crate::row::ProblemKind::DUPLICATE_KEY,
                    detail: Some(format!("{field} ({name})")),
                });
            }
            CefKey::Column(name, spec, index) => match convert(spec, value.clone(), &cx.rx.time) {
                Ok(v) => {
                    self.seen[index as usize / 64] |= 1 << (index % 64);
                    self.time_of(name, &value, cx);
                    if index == ACT_INDEX {
                        self.action_at = Some(self.columns.len());
                    }
                    self.columns.push((spec.column, v));
                }
                Err(kind) => {
                    self.extra.push(name, &cef_escaped(&value));
                    self.problems.push(Problem {
                        kind,
                        detail: Some(format!(
                            "{field} ({name}) is not a valid {}",
                            spec.column_type.name()
                        )),
                    });
                }
            },
        }
    }

    /// A key the vendor's CEF mode sends that CEF does not define: `AdditionalExtensions`,
    /// the value escaped as the CEF record would carry it.
    pub fn extension(&mut self, key: &str, value: &str) {
        self.extra.push(key, &cef_escaped(value));
    }

    /// `prefix` + `key`, a key outside CEF the vendor marks with its prefix (`FTNTFGT`).
    pub fn prefixed_extension(&mut self, prefix: &str, key: &str, value: &str) {
        self.extra.push_prefixed(prefix, key, &cef_escaped(value));
    }

    /// `Computer` when the device names itself in the body and the line has no syslog host
    /// (its CEF twin's header would carry that name).
    pub fn computer(&mut self, host: &'a str) {
        match self.columns.iter_mut().find(|(c, _)| *c == col::COMPUTER) {
            Some(slot) => slot.1 = str_value(host),
            None => self.columns.insert(1, (col::COMPUTER, str_value(host))),
        }
    }

    /// The syslog timestamp, when the device writes its time in the body instead of a
    /// header (its CEF twin's header would carry it).
    pub fn syslog_time(&mut self, time: chrono::DateTime<chrono::Utc>) {
        self.times.syslog = Some(time);
    }

    /// Keeps the times `TimeGenerated` may come from, when the settings ask for them.
    fn time_of(&mut self, key: &str, value: &str, cx: &MapContext<'a>) {
        let (source, slot) = match key {
            "rt" => (TimeSource::Rt, &mut self.times.rt),
            "start" => (TimeSource::Start, &mut self.times.start),
            "end" => (TimeSource::End, &mut self.times.end),
            _ => return,
        };
        if cx.wants(source) {
            *slot = crate::time::parse_cef_time(value, &cx.rx.time);
        }
    }

    /// The row: `SimplifiedDeviceAction` after the action, `AdditionalExtensions`, and
    /// `TimeGenerated` from the configured sources.
    pub fn finish(mut self, cx: &MapContext<'a>) -> Row<'a> {
        if let Some(Value::Str(act)) = self.action_at.map(|i| &self.columns[i].1) {
            let simplified = action::simplified(act.clone());
            self.columns
                .push((col::SIMPLIFIED_DEVICE_ACTION, Value::Str(simplified)));
        }
        if let Some(text) = self.extra.finish() {
            self.columns
                .push((col::ADDITIONAL_EXTENSIONS, Value::Str(Cow::Owned(text))));
        }
        self.columns[0].1 = Value::Time(cx.time_generated(self.times));
        Row {
            table: Table::CommonSecurityLog,
            columns: self.columns,
            problems: self.problems,
        }
    }
}
