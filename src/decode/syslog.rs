//! The syslog header, decoded with `syslog_loose` (RFC 5424 first, then lenient RFC 3164).
//!
//! We keep only what the Sentinel tables use, as slices of the input, and the raw structured
//! data text, which has no column of its own.

use chrono::{DateTime, Utc};
use syslog_loose::{ProcId, Protocol, Variant};

use super::time::TimeContext;

/// The decoded syslog header of one message. Every text field borrows from the input.
#[derive(Debug, Clone, PartialEq)]
pub struct SyslogHeader<'a> {
    pub rfc5424: bool,
    /// Facility keyword as the Azure agents write it (`auth`, `local4`, ...).
    pub facility: Option<&'static str>,
    /// Severity keyword (`emerg` ... `debug`).
    pub severity: Option<&'static str>,
    pub timestamp: Option<DateTime<Utc>>,
    pub hostname: Option<&'a str>,
    pub appname: Option<&'a str>,
    pub procid: Option<ProcessId<'a>>,
    pub msgid: Option<&'a str>,
    /// Structured data exactly as sent (RFC 5424, or the RFC 3164 messages rsyslog writes) (`[id k="v"]...`).
    pub structured_data: Option<&'a str>,
    /// The MSG part (after the header and structured data).
    pub msg: &'a str,
}

impl SyslogHeader<'_> {
    /// True when a PRI or timestamp was found, i.e. the text had a syslog header at all.
    pub fn has_header(&self) -> bool {
        self.facility.is_some() || self.timestamp.is_some()
    }
}

/// A syslog PROCID: numeric ids become `ProcessID`, others are kept as text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProcessId<'a> {
    Number(i32),
    Text(&'a str),
}

/// Byte offset of `part` inside `whole`, when `part` is a slice of it.
pub(crate) fn offset_in(whole: &str, part: &str) -> Option<usize> {
    let start = whole.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    (at >= start && at + part.len() <= start + whole.len()).then(|| at - start)
}

/// Decodes the syslog header of `text`. Never fails: without a header, `msg` is the text.
pub fn parse<'a>(text: &'a str, ctx: &TimeContext) -> SyslogHeader<'a> {
    let m = syslog_loose::parse_message_with_year_tz(
        text,
        |(month, day, hour, min, sec)| ctx.infer_year(month, day, hour, min, sec),
        Some(ctx.zone),
        Variant::Either,
    );
    let procid = m.procid.as_ref().map(|p| match p {
        ProcId::PID(n) => ProcessId::Number(*n),
        ProcId::Name(name) => ProcessId::Text(name),
    });
    let structured_data = m
        .structured_data
        .first()
        .and_then(|first| raw_structured_data(text, first.id, m.msg));
    SyslogHeader {
        rfc5424: matches!(m.protocol, Protocol::RFC5424(_)),
        facility: m.facility.map(|f| f.as_str()),
        severity: m.severity.map(|s| s.as_str()),
        timestamp: m.timestamp.map(|t| t.with_timezone(&Utc)),
        hostname: m.hostname,
        appname: m.appname,
        procid,
        msgid: m.msgid,
        structured_data,
        msg: m.msg,
    }
}

/// The SD-ELEMENTs as sent: from the `[` of the first element to just before MSG.
fn raw_structured_data<'a>(text: &'a str, first_id: &'a str, msg: &'a str) -> Option<&'a str> {
    let id_at = offset_in(text, first_id)?;
    let start = text[..id_at].rfind('[')?;
    let end = match offset_in(text, msg) {
        Some(at) if at >= start && !msg.is_empty() => at,
        _ => text.len(),
    };
    Some(text[start..end].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    use crate::decode::time::test_context as ctx;

    #[test]
    fn rfc3164_with_tag_and_pid() {
        let h = parse(
            "<38>Nov 26 09:59:58 web01 sshd[4242]: Accepted password",
            &ctx(),
        );
        assert!(!h.rfc5424);
        assert_eq!(h.facility, Some("auth"));
        assert_eq!(h.severity, Some("info"));
        assert_eq!(h.hostname, Some("web01"));
        assert_eq!(h.appname, Some("sshd"));
        assert_eq!(h.procid, Some(ProcessId::Number(4242)));
        assert_eq!(h.msg, "Accepted password");
        assert_eq!(
            h.timestamp.unwrap().to_rfc3339(),
            "2026-11-26T09:59:58+00:00"
        );
    }

    #[test]
    fn rfc3164_zone_is_configurable() {
        let mut c = ctx();
        c.zone = FixedOffset::east_opt(3600).unwrap();
        let h = parse("<38>Nov 26 10:59:58 web01 sshd: x", &c);
        assert_eq!(
            h.timestamp.unwrap().to_rfc3339(),
            "2026-11-26T09:59:58+00:00"
        );
    }

    #[test]
    fn rfc5424_keeps_structured_data_raw() {
        let text = r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application"][x@1 a="b\]c"] An application event"#;
        let h = parse(text, &ctx());
        assert!(h.rfc5424);
        assert_eq!(h.facility, Some("local4"));
        assert_eq!(h.severity, Some("notice"));
        assert_eq!(h.hostname, Some("mymachine.example.com"));
        assert_eq!(h.appname, Some("evntslog"));
        assert_eq!(h.procid, None);
        assert_eq!(h.msgid, Some("ID47"));
        assert_eq!(
            h.structured_data,
            Some(r#"[exampleSDID@32473 iut="3" eventSource="Application"][x@1 a="b\]c"]"#)
        );
        assert_eq!(h.msg, "An application event");
    }

    #[test]
    fn no_header_means_whole_text_is_msg() {
        let h = parse("just some text", &ctx());
        assert!(!h.has_header());
        assert_eq!(h.msg, "just some text");
    }

    #[test]
    fn offsets() {
        let s = "abcdef";
        assert_eq!(offset_in(s, &s[2..4]), Some(2));
        assert_eq!(offset_in(s, "zz"), None);
    }
}
