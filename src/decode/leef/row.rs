//! The `CommonSecurityLog` row of a LEEF record: the header's vendor, product, version and
//! event ID as CEF's header fields (`Activity` is the event ID too: LEEF has no name), each
//! predefined attribute as its CEF counterpart, the rest in `AdditionalExtensions`.

use std::borrow::Cow;

use super::{BAD_DELIMITER, IbmHeader, MALFORMED, Record, TABLE, TRUNCATED_HEADER, Target};
use crate::decode::cef::twin::CefTwin;
use crate::decode::syslog::SyslogHeader;
use crate::row::{MapContext, Problem, Row, columns as col};

/// The row of `record`, found behind `header` (or behind IBM's own header, `ibm`).
pub fn row<'a>(
    header: &SyslogHeader<'a>,
    ibm: Option<IbmHeader<'a>>,
    record: Record<'a>,
    cx: &MapContext<'a>,
) -> Row<'a> {
    let text = |v: Option<&'a str>| Cow::Borrowed(v.unwrap_or_default());
    let mut twin = CefTwin::new(header, text(record.vendor), text(record.product), cx);
    if let Some(ibm) = ibm {
        twin.computer(ibm.host);
        if let Some(at) = crate::time::parse_cef_time(ibm.timestamp, &cx.rx.time) {
            twin.syslog_time(at);
        }
    }
    if let Some(version) = record.product_version {
        twin.column(col::DEVICE_VERSION, Cow::Borrowed(version));
    }
    if let Some(id) = record.event_id {
        twin.column(col::DEVICE_EVENT_CLASS_ID, Cow::Borrowed(id));
        twin.column(col::ACTIVITY, Cow::Borrowed(id));
    }
    for (flag, kind, detail) in [
        (
            record.truncated_header,
            TRUNCATED_HEADER,
            "the header ends before the event ID",
        ),
        (
            record.bad_delimiter,
            BAD_DELIMITER,
            "the delimiter field is not a character or x/0x and 1-4 hex digits: split on tabs",
        ),
        (
            record.malformed,
            MALFORMED,
            "an attribute without `=` was skipped, or there were too many",
        ),
    ] {
        if flag {
            twin.problem(Problem {
                kind,
                detail: Some(detail.into()),
            });
        }
    }
    for (key, value) in record.attributes {
        match TABLE.get(key) {
            Some(Target::Severity) => twin.column(col::LOG_SEVERITY, value),
            Some(Target::Key(cef)) => twin.key(*cef, key, value, cx),
            // A vendor's own attribute, also one spelled like a CEF key (`spt`, `dvchost`):
            // kept under its name, so it cannot shadow a mapped attribute.
            None => twin.extension(key, &value),
        }
    }
    twin.finish(cx)
}
