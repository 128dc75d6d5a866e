//! The `CommonSecurityLog` row of a PAN-OS CSV line: the row its CEF twin gives through the
//! CEF path. Each field is sent as its CEF key (`grammars/pan-os-fields.tsv`); a dictionary
//! key fills its column converted as the CEF path converts it ([`cef::row::convert`]), any
//! other key goes to `AdditionalExtensions`. Fields past the table's last position are
//! ignored, as the vendor's CEF template does not send them; absent fields are absent.

use std::borrow::Cow;

use super::{Line, LogType, Source, Target};
use crate::decode::cef::action;
use crate::decode::cef::row::{ACT_INDEX, AdditionalExtensions, convert};
use crate::decode::syslog::SyslogHeader;
use crate::row::{
    MapContext, Problem, Row, Table, TimeSource, TimeSources, Value, columns as col, str_value,
};

/// `rt`'s dictionary index: the row's receipt time may become `TimeGenerated`.
const RT: &str = "rt";

/// The row of `line`, the CSV body `body` found behind `header`.
pub fn row<'a>(
    header: &SyslogHeader<'a>,
    line: Line<'a>,
    body: &'a str,
    cx: &MapContext<'a>,
) -> Row<'a> {
    let mut problems = Vec::new();
    let mut columns: Vec<(&'static str, Value<'a>)> = Vec::with_capacity(48);
    columns.push((col::TIME_GENERATED, Value::Time(cx.rx.time.received_at)));
    if let Some(host) = header.hostname.or(cx.rx.peer) {
        columns.push((col::COMPUTER, str_value(host)));
    }
    columns.push((col::COLLECTOR_HOST_NAME, cx.collector()));
    columns.push((col::DEVICE_VENDOR, str_value("Palo Alto Networks")));
    columns.push((col::DEVICE_PRODUCT, str_value("PAN-OS")));
    if line.unbalanced {
        problems.push(Problem {
            kind: super::UNBALANCED_QUOTE,
            detail: Some(format!("field {} has no closing quote", line.fields.len())),
        });
    }

    let log_type = line.get(3).unwrap_or_default();
    let Some(spec) = super::LOG_TYPES.get(log_type) else {
        // A type the table does not list: its header facts and the line as sent.
        columns.push((col::DEVICE_EVENT_CLASS_ID, field(&line, 4)));
        columns.push((col::ACTIVITY, field(&line, 3)));
        columns.push(("Message", str_value(body)));
        problems.push(Problem {
            kind: super::TYPE_UNLISTED,
            detail: Some(format!("log type {log_type:?}")),
        });
        return Row {
            table: Table::CommonSecurityLog,
            columns,
            problems,
        };
    };
    if line.fields.len() < spec.core_fields && !line.unbalanced {
        problems.push(Problem {
            kind: super::TRUNCATED,
            detail: Some(format!(
                "{log_type} has {} of its {} fields",
                line.fields.len(),
                spec.core_fields
            )),
        });
    }
    let (rt, start) = fill(spec, &line, cx, &mut columns, &mut problems);
    columns[0].1 = Value::Time(cx.time_generated(TimeSources {
        syslog: header.timestamp,
        rt,
        start,
        end: None,
    }));
    Row {
        table: Table::CommonSecurityLog,
        columns,
        problems,
    }
}

/// The value of field `i` as it stays in the row.
fn field<'a>(line: &Line<'a>, i: usize) -> Value<'a> {
    match line.fields.get(i) {
        Some(f) => Value::Str(f.clone()),
        None => Value::Str(Cow::Borrowed("")),
    }
}

type Times = (
    Option<chrono::DateTime<chrono::Utc>>,
    Option<chrono::DateTime<chrono::Utc>>,
);

/// Writes the header columns, each mapped field's column, `SimplifiedDeviceAction` and
/// `AdditionalExtensions`; returns the `rt` and `start` times when the settings want them.
fn fill<'a>(
    spec: &LogType,
    line: &Line<'a>,
    cx: &MapContext<'a>,
    columns: &mut Vec<(&'static str, Value<'a>)>,
    problems: &mut Vec<Problem>,
) -> Times {
    let mut extra = AdditionalExtensions::default();
    let (mut rt, mut start) = (None, None);
    let mut action_at = None;
    for mapping in &spec.mappings {
        let value: Cow<'a, str> = match mapping.source {
            Source::Constant(c) => Cow::Borrowed(c),
            Source::Field(i) => match line.fields.get(i) {
                Some(f) => f.clone(),
                None => continue,
            },
        };
        match mapping.target {
            Target::Class => columns.push((col::DEVICE_EVENT_CLASS_ID, Value::Str(value))),
            Target::Name => columns.push((col::ACTIVITY, Value::Str(value))),
            Target::Severity => {
                let number = severity_number(&value).map_or(value, Cow::Borrowed);
                columns.push((col::LOG_SEVERITY, Value::Str(number)));
            }
            Target::Extension(key) => {
                if key == "start" {
                    let formatted = cef_time(&value).map_or(value, Cow::Owned);
                    if cx.wants(TimeSource::Start) {
                        start = crate::time::parse_cef_time(&formatted, &cx.rx.time);
                    }
                    extra.push(key, &formatted);
                } else {
                    extra.push(key, &value);
                }
            }
            Target::Column(key, field_spec, idx) => {
                let value = if key == RT {
                    cef_time(&value).map_or(value, Cow::Owned)
                } else {
                    value
                };
                match convert(field_spec, value.clone(), &cx.rx.time) {
                    Ok(v) => {
                        if key == RT && cx.wants(TimeSource::Rt) {
                            rt = crate::time::parse_cef_time(&value, &cx.rx.time);
                        }
                        if idx == ACT_INDEX {
                            action_at = Some(columns.len());
                        }
                        columns.push((field_spec.column, v));
                    }
                    // As the CEF path does: the value stays, as sent, beside the others.
                    Err(kind) => {
                        extra.push(key, &value);
                        problems.push(Problem {
                            kind,
                            detail: Some(format!(
                                "{} ({key}) is not a valid {}",
                                mapping.pan_name,
                                field_spec.column_type.name()
                            )),
                        });
                    }
                }
            }
        }
    }
    if let Some(Value::Str(act)) = action_at.map(|i| &columns[i].1) {
        let simplified = action::simplified(act.clone());
        columns.push((col::SIMPLIFIED_DEVICE_ACTION, Value::Str(simplified)));
    }
    if let Some(text) = extra.finish() {
        columns.push((col::ADDITIONAL_EXTENSIONS, Value::Str(Cow::Owned(text))));
    }
    (rt, start)
}

/// The CEF header's severity for a PAN-OS severity word: 1 to 5 from informational to
/// critical, the numbers Sentinel's PAN-OS web-session parser reads (fixtures/README.md).
pub fn severity_number(word: &str) -> Option<&'static str> {
    Some(match word {
        "informational" => "1",
        "low" => "2",
        "medium" => "3",
        "high" => "4",
        "critical" => "5",
        _ => return None,
    })
}

/// `2026/12/03 10:00:00` as the vendor's `cef-formatted` times write it:
/// `Dec 03 2026 10:00:00`. `None` when the field is not in that shape (it is then kept as
/// sent).
pub fn cef_time(csv: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = csv.as_bytes();
    let shape_ok = b.len() == 19
        && b[4] == b'/'
        && b[7] == b'/'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':'
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
            .iter()
            .all(|&i| b[i].is_ascii_digit());
    if !shape_ok {
        return None;
    }
    let month: usize = csv[5..7].parse().ok()?;
    let name = MONTHS.get(month.checked_sub(1)?)?;
    Some(format!(
        "{name} {} {} {}",
        &csv[8..10],
        &csv[0..4],
        &csv[11..19]
    ))
}
