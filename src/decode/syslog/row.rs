//! The `Syslog` row: what a message no other format recognises becomes, with the columns
//! Microsoft's agent writes.

use std::borrow::Cow;

use super::{ProcessId, SyslogHeader};
use crate::row::{MapContext, Problem, Row, Table, TimeSources, Value, columns as col, str_value};

/// Syslog `HostIP` when the sender's address is not known, as Microsoft's agent writes it.
const UNKNOWN_IP: &str = "Unknown IP";

/// The row of a message with its syslog `header`; `text` is the whole message.
pub fn row<'a>(header: &SyslogHeader<'a>, text: &'a str, cx: &MapContext<'a>) -> Row<'a> {
    let mut columns: Vec<(&'static str, Value<'a>)> = Vec::with_capacity(12);
    let mut problems = Vec::new();
    let time = cx.time_generated(TimeSources {
        syslog: header.timestamp,
        ..TimeSources::default()
    });
    columns.push((col::TIME_GENERATED, Value::Time(time)));
    if let Some(host) = header.hostname.or(cx.rx.peer) {
        columns.push((col::COMPUTER, str_value(host)));
    }
    if let Some(host) = header.hostname {
        columns.push((col::HOST_NAME, str_value(host)));
    }
    // Microsoft's agent writes `Unknown IP` when it has no address for the sender; cefgate
    // has one for everything it receives, so only `convert` without a sender writes it.
    columns.push((col::HOST_IP, str_value(cx.rx.peer.unwrap_or(UNKNOWN_IP))));
    columns.push((col::COLLECTOR_HOST_NAME, cx.collector()));
    if text.is_empty() {
        problems.push(Problem {
            kind: super::EMPTY_MESSAGE,
            detail: None,
        });
    } else if !header.has_header() {
        problems.push(Problem {
            kind: super::NO_HEADER,
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
            kind: super::PROCID_NOT_NUMBER,
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
    let keep = cx.settings.keep_structured_data || !header.rfc5424;
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
