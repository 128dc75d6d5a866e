//! The `CommonSecurityLog` row of a FortiOS key=value line: the row its CEF twin gives.
//!
//! The CEF header as FortiOS writes it: vendor `Fortinet`, product `Fortigate`, version
//! `v<major>.<minor>.<patch>` from `logver`, event class the last five digits of `logid`,
//! name `type:subtype [eventtype] [action] [status]`, severity from `level`; `cat` is
//! `type:subtype`. Then each field in line order: a listed one as its CEF key, the rest as
//! `FTNTFGT<key>`. `date` and `time` (the twin's syslog timestamp) and `type` are not keys;
//! `devname` names the device (`DeviceName`, and `Computer` when no header names it).

use std::borrow::Cow;

use super::{INCOMPLETE, MALFORMED, MAX_PAIRS, PREFIX, TABLE, UNBALANCED_QUOTE};
use crate::decode::cef::twin::{CefKey, CefTwin};
use crate::decode::pairs::{Pair, split};
use crate::decode::syslog::SyslogHeader;
use crate::row::{MapContext, Problem, Row, TimeSource, columns as col};

/// The row of the key=value `body` found behind `header`.
pub fn row<'a>(header: &SyslogHeader<'a>, body: &'a str, cx: &MapContext<'a>) -> Row<'a> {
    let (pairs, odd) = split(body, MAX_PAIRS);
    let header_fields = HeaderFields::of(&pairs);
    let get = |key: &str| header_fields.get(key);
    let mut twin = CefTwin::new(
        header,
        Cow::Borrowed("Fortinet"),
        Cow::Borrowed("Fortigate"),
        cx,
    );
    if header.hostname.is_none()
        && let Some(Cow::Borrowed(name)) = header_fields.devname.map(|p| &p.value)
    {
        twin.computer(name);
    }
    if header.timestamp.is_none()
        && cx.wants(TimeSource::Syslog)
        && let (Some(date), Some(time)) = (get("date"), get("time"))
        && let Some(at) = device_time(date, time, get("tz"), cx)
    {
        twin.syslog_time(at);
    }
    if odd.unbalanced_quote {
        twin.problem(Problem {
            kind: UNBALANCED_QUOTE,
            detail: Some(match pairs.last() {
                Some(last) => format!("the value of {} has no closing quote", last.key),
                None => "a value has no closing quote".into(),
            }),
        });
    }
    if odd.bare_tokens > 0 || odd.cut {
        twin.problem(Problem {
            kind: MALFORMED,
            detail: Some(if odd.cut {
                format!("more than {MAX_PAIRS} fields: the rest is not read")
            } else {
                format!("{} word(s) without `=` skipped", odd.bare_tokens)
            }),
        });
    }

    let log_type = get("type").unwrap_or_default();
    let subtype = get("subtype").unwrap_or_default();
    let category = match (log_type, subtype) {
        ("", _) => String::new(),
        (t, "") => t.to_string(),
        (t, s) => format!("{t}:{s}"),
    };
    if let Some(version) = get("logver").and_then(version_of) {
        twin.column(col::DEVICE_VERSION, Cow::Owned(version));
    }
    match get("logid").filter(|id| !id.is_empty()) {
        Some(id) => twin.column(col::DEVICE_EVENT_CLASS_ID, Cow::Owned(class_of(id))),
        None => twin.problem(Problem {
            kind: INCOMPLETE,
            detail: Some("no logid".into()),
        }),
    }
    if log_type.is_empty() {
        twin.problem(Problem {
            kind: INCOMPLETE,
            detail: Some("no type".into()),
        });
    } else {
        let mut name = category.clone();
        for key in ["eventtype", "action", "status"] {
            if let Some(v) = get(key).filter(|v| !v.is_empty()) {
                name.push(' ');
                name.push_str(v);
            }
        }
        twin.column(col::ACTIVITY, Cow::Owned(name));
    }
    if let Some(level) = get("level") {
        let number = TABLE.levels.get(level).copied();
        twin.column(
            col::LOG_SEVERITY,
            number.map_or_else(|| Cow::Owned(level.to_string()), Cow::Borrowed),
        );
    }
    let mut category_sent = category.is_empty();
    for pair in &pairs {
        let Pair { key, value, .. } = pair;
        let (key, value) = (*key, value.clone());
        match TABLE.key(key, log_type, &category) {
            Some(None) => {}
            Some(Some(cef)) => {
                let value = if cef.name() == "deviceDirection" {
                    match TABLE.directions.get(value.as_ref()) {
                        Some(v) => Cow::Borrowed(*v),
                        None => value,
                    }
                } else {
                    value
                };
                twin.key(cef, key, value, cx);
            }
            None => {
                twin.prefixed_extension(PREFIX, key, &value);
                // FortiOS writes `cat` after `logid`.
                if key == "logid" && !category_sent {
                    twin.key(
                        CefKey::of("cat"),
                        "type:subtype",
                        Cow::Owned(category.clone()),
                        cx,
                    );
                    category_sent = true;
                }
            }
        }
    }
    if !category_sent {
        twin.key(CefKey::of("cat"), "type:subtype", Cow::Owned(category), cx);
    }
    twin.finish(cx)
}

/// The fields the header is built from, found in one pass over the line (the first of each).
#[derive(Default)]
struct HeaderFields<'p, 'a> {
    values: [Option<&'p str>; HEADER_KEYS.len()],
    devname: Option<&'p Pair<'a>>,
}

/// The keys [`HeaderFields`] keeps.
const HEADER_KEYS: [&str; 11] = [
    "date",
    "time",
    "tz",
    "type",
    "subtype",
    "logver",
    "logid",
    "eventtype",
    "action",
    "status",
    "level",
];

impl<'p, 'a> HeaderFields<'p, 'a> {
    fn of(pairs: &'p [Pair<'a>]) -> Self {
        let mut fields = HeaderFields {
            values: [None; HEADER_KEYS.len()],
            devname: None,
        };
        for pair in pairs {
            if pair.key == "devname" {
                fields.devname.get_or_insert(pair);
                continue;
            }
            if let Some(i) = HEADER_KEYS.iter().position(|k| *k == pair.key) {
                fields.values[i].get_or_insert(pair.value.as_ref());
            }
        }
        fields
    }

    fn get(&self, key: &str) -> Option<&'p str> {
        let i = HEADER_KEYS.iter().position(|k| *k == key)?;
        self.values[i]
    }
}

/// The event class FortiOS's CEF header carries: the last five digits of the ten-digit
/// `logid` (`0000000013` -> `00013`); any other `logid` as it is.
pub(super) fn class_of(logid: &str) -> String {
    if logid.len() > 5 && logid.bytes().all(|b| b.is_ascii_digit()) {
        logid[logid.len() - 5..].to_string()
    } else {
        logid.to_string()
    }
}

/// `logver=702081639` (major, two digits minor, two digits patch, four digits build) as the
/// version the CEF header writes: `v7.2.8`. `None` for any other shape.
pub(super) fn version_of(logver: &str) -> Option<String> {
    if logver.len() != 9 || !logver.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = |r: std::ops::Range<usize>| logver[r].parse::<u32>().ok();
    Some(format!(
        "v{}.{}.{}",
        number(0..1)?,
        number(1..3)?,
        number(3..5)?
    ))
}

/// `date=YYYY-MM-DD time=HH:MM:SS` in the device's `tz` (`+0100`), else the sender's zone.
fn device_time(
    date: &str,
    time: &str,
    tz: Option<&str>,
    cx: &MapContext<'_>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let number = |s: &str, r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    if date.len() != 10 || time.len() != 8 {
        return None;
    }
    let day = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(number(date, 0..4)?).ok()?,
        number(date, 5..7)?,
        number(date, 8..10)?,
    )?;
    let naive = day.and_hms_opt(
        number(time, 0..2)?,
        number(time, 3..5)?,
        number(time, 6..8)?,
    )?;
    match tz.and_then(crate::time::parse_zone) {
        Some(offset) => naive
            .and_local_timezone(offset)
            .single()
            .map(|t| t.with_timezone(&chrono::Utc)),
        None => cx.rx.time.zone.to_utc(naive),
    }
}
