//! The `CommonSecurityLog` row of a PAN-OS CSV line: the row its CEF twin gives through the
//! CEF path. Each field is sent as its CEF key (`grammars/pan-os-fields.tsv`); a dictionary
//! key fills its column converted as the CEF path converts it ([`cef::row::convert`]), any
//! other key goes to `AdditionalExtensions`. Fields past the table's last position are
//! ignored, as the vendor's CEF template does not send them; absent fields are absent.

use std::borrow::Cow;

use super::{Line, LogType, Source, Target};
use crate::decode::cef::twin::{CefKey, CefTwin};
use crate::decode::syslog::SyslogHeader;
use crate::row::{MapContext, Problem, Row, columns as col};

/// The row of `line`, the CSV body `body` found behind `header`.
pub fn row<'a>(
    header: &SyslogHeader<'a>,
    line: Line<'a>,
    body: &'a str,
    cx: &MapContext<'a>,
) -> Row<'a> {
    let mut twin = CefTwin::new(
        header,
        Cow::Borrowed("Palo Alto Networks"),
        Cow::Borrowed("PAN-OS"),
        cx,
    );
    if line.unbalanced {
        twin.problem(Problem {
            kind: super::UNBALANCED_QUOTE,
            detail: Some(format!("field {} has no closing quote", line.fields.len())),
        });
    }
    let log_type = line.get(3).unwrap_or_default();
    let Some(spec) = super::LOG_TYPES.get(log_type) else {
        // A type the table does not list: its header facts and the line as sent.
        twin.column(col::DEVICE_EVENT_CLASS_ID, field(&line, 4));
        twin.column(col::ACTIVITY, field(&line, 3));
        twin.key(CefKey::of("msg"), "message", Cow::Borrowed(body), cx);
        twin.problem(Problem {
            kind: super::TYPE_UNLISTED,
            detail: Some(format!("log type {log_type:?}")),
        });
        return twin.finish(cx);
    };
    if line.fields.len() < spec.core_fields && !line.unbalanced {
        twin.problem(Problem {
            kind: super::TRUNCATED,
            detail: Some(format!(
                "{log_type} has {} of its {} fields",
                line.fields.len(),
                spec.core_fields
            )),
        });
    }
    fill(spec, &line, cx, &mut twin);
    twin.finish(cx)
}

/// Field `i` as it stays in the row (empty when the line is shorter).
fn field<'a>(line: &Line<'a>, i: usize) -> Cow<'a, str> {
    line.fields.get(i).cloned().unwrap_or(Cow::Borrowed(""))
}

/// Each mapped field, as the vendor's CEF template sends it.
fn fill<'a>(spec: &LogType, line: &Line<'a>, cx: &MapContext<'a>, twin: &mut CefTwin<'a>) {
    for mapping in &spec.mappings {
        let value: Cow<'a, str> = match mapping.source {
            Source::Constant(c) => Cow::Borrowed(c),
            Source::Field(i) => match line.fields.get(i) {
                Some(f) => f.clone(),
                None => continue,
            },
        };
        match mapping.target {
            Target::Class => twin.column(col::DEVICE_EVENT_CLASS_ID, value),
            Target::Name => twin.column(col::ACTIVITY, value),
            Target::Severity => {
                let number = severity_number(&value).map_or(value, Cow::Borrowed);
                twin.column(col::LOG_SEVERITY, number);
            }
            Target::Key(key) => {
                // The template's `$cef-formatted-receive_time` and `-time_generated`.
                let value = match key.name() {
                    "rt" | "start" => cef_time(&value).map_or(value, Cow::Owned),
                    _ => value,
                };
                twin.key(key, mapping.pan_name, value, cx);
            }
        }
    }
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
