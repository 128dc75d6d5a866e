//! The syslog header, decoded with `syslog_loose` (RFC 5424 first, then lenient RFC 3164).
//!
//! We keep only what the Sentinel tables use, as slices of the input, and the raw structured
//! data text, which has no column of its own.

pub mod row;

use crate::row::ProblemKind;
use chrono::{DateTime, Utc};
use syslog_loose::{ProcId, Protocol, Variant};

use crate::time::{SenderZone, TimeContext};

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
///
/// `syslog_loose` reads RFC 5424 and the common RFC 3164 shapes; the shapes it misreads are
/// read first by [`rfc3164_variant`]: a PRI with no timestamp, fractional seconds, a zone and
/// year after the time (the abbreviations of [`crate::time::parse_zone`]), and a
/// time followed by `:` with no host (Cisco ASA).
pub fn parse<'a>(text: &'a str, ctx: &TimeContext) -> SyslogHeader<'a> {
    if let Some(h) = rfc3164_variant(text, ctx) {
        return h;
    }
    let mut h = parse_loose(text, ctx);
    // An RFC 3164 TAG is alphanumeric: a "tag" with a comma is the start of MSG that
    // `syslog_loose` cut at its first space (PAN-OS's `1,2026/12/03 10:00:00,...`).
    if !h.rfc5424
        && let Some(app) = h.appname
        && app.contains(',')
        && let Some(at) = offset_in(text, app)
    {
        h.appname = None;
        h.procid = None;
        h.msg = &text[at..];
    }
    // A PRI `syslog_loose` could not place (the rest matched no header it knows) is still
    // the PRI: honoured, and not left at the front of the message.
    if h.facility.is_none()
        && let Some((facility, severity, rest)) = pri(text)
    {
        h.facility = Some(facility);
        h.severity = Some(severity);
        if h.msg.starts_with('<') {
            h.msg = rest.trim_start();
        }
    }
    h
}

/// `syslog_loose`'s reading of `text`.
fn parse_loose<'a>(text: &'a str, ctx: &TimeContext) -> SyslogHeader<'a> {
    let m = syslog_loose::parse_message_with_year_tz(
        text,
        |(month, day, hour, min, sec)| ctx.infer_year(month, day, hour, min, sec),
        Some(ctx.zone.offset_at(ctx.received_at)),
        Variant::Either,
    );
    let rfc5424 = matches!(m.protocol, Protocol::RFC5424(_));
    // An RFC 3164 time carries no zone: it was read at the offset in force when the message
    // arrived; a named zone's own offset for that wall-clock time may differ (a DST change).
    let timestamp = m.timestamp.map(|t| match ctx.zone {
        SenderZone::Fixed(_) => t.with_timezone(&Utc),
        _ if rfc5424 => t.with_timezone(&Utc),
        zone => zone
            .to_utc(t.naive_local())
            .unwrap_or_else(|| t.with_timezone(&Utc)),
    });
    let procid = m.procid.as_ref().map(|p| match p {
        ProcId::PID(n) => ProcessId::Number(*n),
        ProcId::Name(name) => ProcessId::Text(name),
    });
    let structured_data = m
        .structured_data
        .first()
        .and_then(|first| raw_structured_data(text, first.id, m.msg));
    SyslogHeader {
        rfc5424,
        facility: m.facility.map(|f| f.as_str()),
        severity: m.severity.map(|s| s.as_str()),
        timestamp,
        hostname: m.hostname,
        appname: m.appname,
        procid,
        msgid: m.msgid,
        structured_data,
        msg: m.msg,
    }
}

/// `<PRI>` at the start of `text`: (facility, severity, the rest).
fn pri(text: &str) -> Option<(&'static str, &'static str, &str)> {
    let rest = text.strip_prefix('<')?;
    let end = rest.find('>').filter(|e| (1..=3).contains(e))?;
    let value: u8 = rest[..end].parse().ok().filter(|v| *v <= 191)?;
    let (facility, severity) = syslog_loose::decompose_pri(value);
    Some((facility?.as_str(), severity?.as_str(), &rest[end + 1..]))
}

/// An RFC 3164 timestamp `Mmm [d]d [yyyy] HH:MM:SS[.fraction] [ZONE yyyy]` at the start of
/// `text`, and the rest after it (a `:` right behind the time stays in the rest). The time is
/// worked out only for the forms `syslog_loose` misreads (a fraction, a zone and year, a `:`
/// behind the time); for the others it is `None`, and this costs a few byte comparisons: it
/// runs for every RFC 3164 message.
fn rfc3164_time<'a>(
    text: &'a str,
    ctx: &TimeContext,
) -> Option<(Option<chrono::DateTime<Utc>>, &'a str)> {
    use chrono::NaiveDate;
    let month = crate::time::month_number(text.get(..3)?)?;
    let rest = text.get(3..)?.strip_prefix(' ')?.trim_start_matches(' ');
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let n = digits(rest);
    let day: u32 = rest
        .get(..n)?
        .parse()
        .ok()
        .filter(|d| (1..=31).contains(d))?;
    let mut rest = rest[n..].strip_prefix(' ')?;
    let mut year = None;
    if digits(rest) == 4 && rest.as_bytes().get(4) == Some(&b' ') {
        year = rest[..4].parse::<i32>().ok();
        rest = &rest[5..];
    }
    let clock = rest.get(..8)?;
    let b = clock.as_bytes();
    if !(b[2] == b':' && b[5] == b':') {
        return None;
    }
    let (hour, min, sec): (u32, u32, u32) = (
        clock[..2].parse().ok()?,
        clock[3..5].parse().ok()?,
        clock[6..8].parse().ok()?,
    );
    rest = &rest[8..];
    let mut nanos = 0;
    // A year alone `syslog_loose` reads; a fraction or a zone it does not.
    let mut unusual = false;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = digits(frac);
        if n == 0 {
            return None;
        }
        let scale = 10u32.pow(9 - n.min(9) as u32);
        nanos = frac[..n.min(9)].parse::<u32>().ok()? * scale;
        rest = &frac[n..];
        unusual = true;
    }
    let mut zone = ctx.zone;
    if let Some(after) = rest.strip_prefix(' ') {
        let letters = after.bytes().take_while(u8::is_ascii_uppercase).count();
        let tail = &after[letters..];
        let named = (1..=4)
            .contains(&letters)
            .then(|| crate::time::parse_zone(&after[..letters]))
            .flatten();
        if (1..=4).contains(&letters)
            && tail.starts_with(' ')
            && digits(&tail[1..]) == 4
            && tail.as_bytes().get(5).is_none_or(|c| *c == b' ')
        {
            // ` ZONE yyyy ` after the time (the RFC 3164 example). A name that is no known
            // abbreviation keeps the configured zone.
            if let Some(named) = named {
                zone = SenderZone::Fixed(named);
            }
            year = tail[1..5].parse().ok();
            rest = &tail[5..];
            unusual = true;
        } else if let Some(named) = named
            && (tail.is_empty() || tail.starts_with([' ', ':']))
        {
            // A known zone abbreviation after the time (`Dec 15 2021 09:34:34 EDT: %ASA-...`,
            // `Nov 26 09:59:58 UTC host app: ...`) is the time's zone, never the host.
            zone = SenderZone::Fixed(named);
            rest = tail;
            unusual = true;
        }
    }
    if !unusual && !rest.starts_with(':') {
        return Some((None, rest));
    }
    let year = year.unwrap_or_else(|| ctx.infer_year(month, day, hour, min, sec));
    let local =
        NaiveDate::from_ymd_opt(year, month, day)?.and_hms_nano_opt(hour, min, sec, nanos)?;
    let time = zone.to_utc(local)?;
    Some((Some(time), rest))
}

/// The commonest header in front of a CEF record, `<PRI>Mmm dd HH:MM:SS HOST`, and nothing
/// else: the whole of `prefix` (the text before `CEF:`, trimmed). It is read here without
/// the general parser (a tenth of a message's decode time); any other shape is `None` and
/// goes the general way, and a test checks that both agree on every fixture.
pub(crate) fn pri_time_host<'a>(prefix: &'a str, ctx: &TimeContext) -> Option<SyslogHeader<'a>> {
    let (facility, severity, rest) = pri(prefix)?;
    let month = crate::time::month_number(rest.get(..3)?)?;
    let rest = rest[3..].strip_prefix(' ')?.trim_start_matches(' ');
    let day_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    if !(1..=2).contains(&day_len) {
        return None;
    }
    let day: u32 = rest[..day_len].parse().ok()?;
    let rest = rest[day_len..].strip_prefix(' ')?;
    let clock = rest.get(..8)?.as_bytes();
    let two = |at: usize| -> Option<u32> {
        let (a, b) = (clock[at], clock[at + 1]);
        (a.is_ascii_digit() && b.is_ascii_digit()).then(|| u32::from((a - b'0') * 10 + (b - b'0')))
    };
    if clock[2] != b':' || clock[5] != b':' {
        return None;
    }
    let (hour, min, sec) = (two(0)?, two(3)?, two(6)?);
    let host = rest[8..].strip_prefix(' ')?;
    if host.is_empty()
        || crate::time::is_zone_abbreviation(host)
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return None;
    }
    let year = ctx.infer_year(month, day, hour, min, sec);
    let local = chrono::NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(hour, min, sec)?;
    Some(SyslogHeader {
        rfc5424: false,
        facility: Some(facility),
        severity: Some(severity),
        timestamp: Some(ctx.zone.to_utc(local)?),
        hostname: Some(host),
        appname: None,
        procid: None,
        msgid: None,
        structured_data: None,
        msg: "",
    })
}

/// `TAG[PID]: ` at the start of `s`: the tag, its PID and where MSG starts.
fn tag(s: &str) -> Option<(&str, Option<ProcessId<'_>>, usize)> {
    // A tag is at most 48 bytes: only that far is searched, not the whole message.
    const MAX_TAG: usize = 48;
    let window = &s.as_bytes()[..s.len().min(MAX_TAG + 2)];
    let colon = memchr::memmem::find(window, b": ")
        .or_else(|| (s.len() <= MAX_TAG + 1 && s.ends_with(':')).then(|| s.len() - 1))?;
    let tag = &s[..colon];
    if tag.is_empty() || tag.contains(' ') || tag.contains('=') || tag.len() > MAX_TAG {
        return None;
    }
    let (name, pid) = match tag.strip_suffix(']').and_then(|t| t.split_once('[')) {
        Some((name, pid)) => (
            name,
            Some(pid.parse().map_or(ProcessId::Text(pid), ProcessId::Number)),
        ),
        None => (tag, None),
    };
    Some((name, pid, (colon + 2).min(s.len())))
}

/// What follows an RFC 3164 timestamp or PRI: `HOST TAG[PID]: MSG`, `TAG[PID]: MSG`, or MSG
/// alone.
struct Rest<'a> {
    host: Option<&'a str>,
    tag: Option<&'a str>,
    pid: Option<ProcessId<'a>>,
    msg: &'a str,
}

fn host_and_tag(rest: &str, host_allowed: bool) -> Rest<'_> {
    // `HOST : MSG` (Cisco ASA with a host name).
    // The host holds no space, so its ` : ` can only be at the first space.
    if host_allowed
        && let Some(space) = memchr::memchr(b' ', rest.as_bytes())
        && rest[space..].starts_with(" : ")
    {
        let (host, msg) = (&rest[..space], &rest[space + 3..]);
        return Rest {
            host: Some(host),
            tag: None,
            pid: None,
            msg,
        };
    }
    if host_allowed
        && let Some((host, after)) = rest.split_once(' ')
        && !host.ends_with(':')
        && let Some((name, pid, at)) = tag(after)
    {
        return Rest {
            host: Some(host),
            tag: Some(name),
            pid,
            msg: &after[at..],
        };
    }
    match tag(rest) {
        Some((name, pid, at)) => Rest {
            host: None,
            tag: Some(name),
            pid,
            msg: &rest[at..],
        },
        None => Rest {
            host: None,
            tag: None,
            pid: None,
            msg: rest,
        },
    }
}

/// The RFC 3164 shapes `syslog_loose` misreads (see [`parse`]); `None` for the others.
fn rfc3164_variant<'a>(text: &'a str, ctx: &TimeContext) -> Option<SyslogHeader<'a>> {
    let (facility, severity, after_pri) = match pri(text) {
        Some((f, s, rest)) => (Some(f), Some(s), rest),
        None => (None, None, text),
    };
    let header = |timestamp, rest: Rest<'a>| SyslogHeader {
        rfc5424: false,
        facility,
        severity,
        timestamp,
        hostname: rest.host,
        appname: rest.tag,
        procid: rest.pid,
        msgid: None,
        structured_data: None,
        msg: rest.msg,
    };
    match rfc3164_time(after_pri, ctx) {
        // `Nov 26 2026 05:34:22: %ASA-6-302013: ...`: a time followed by `:` has no host.
        Some((Some(time), rest)) if rest.starts_with(':') => Some(header(
            Some(time),
            host_and_tag(rest[1..].trim_start(), false),
        )),
        // A time and zone with nothing after them.
        Some((Some(time), "")) => Some(header(Some(time), host_and_tag("", true))),
        Some((Some(time), rest)) => Some(header(
            Some(time),
            host_and_tag(rest.strip_prefix(' ')?, true),
        )),
        Some((None, _)) => None,
        // A PRI and no timestamp (`<189>date=...`, `<14>host app[5]: text`). A digit next is
        // an RFC 5424 version or an ISO timestamp: `syslog_loose` reads those.
        None if facility.is_some() && !after_pri.starts_with(|c: char| c.is_ascii_digit()) => {
            Some(header(None, host_and_tag(after_pri.trim_start(), true)))
        }
        None => None,
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

/// The message was empty.
pub const EMPTY_MESSAGE: ProblemKind = ProblemKind::new("empty-message");
/// A plain message had no syslog header (no PRI, no timestamp): treated as user.notice.
pub const NO_HEADER: ProblemKind = ProblemKind::new("no-syslog-header");
/// A syslog PROCID that is not a number (the Syslog table's ProcessID is an int).
pub const PROCID_NOT_NUMBER: ProblemKind = ProblemKind::new("procid-not-number");
/// The problem kinds of this format.
pub const PROBLEMS: &[ProblemKind] = &[EMPTY_MESSAGE, NO_HEADER, PROCID_NOT_NUMBER];

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    use crate::time::test_context as ctx;

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
        c.zone = SenderZone::Fixed(FixedOffset::east_opt(3600).unwrap());
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

    #[test]
    fn a_pri_without_a_timestamp_is_honoured_and_removed() {
        let h = parse(
            "<189>date=2026-11-26 time=05:34:22 devname=\"FG100\"",
            &ctx(),
        );
        assert_eq!((h.facility, h.severity), (Some("local7"), Some("notice")));
        assert_eq!(h.msg, "date=2026-11-26 time=05:34:22 devname=\"FG100\"");
        assert_eq!((h.hostname, h.appname, h.timestamp), (None, None, None));
        let h = parse("<14>host app[5]: text", &ctx());
        assert_eq!((h.facility, h.severity), (Some("user"), Some("info")));
        assert_eq!((h.hostname, h.appname), (Some("host"), Some("app")));
        assert_eq!((h.procid, h.msg), (Some(ProcessId::Number(5)), "text"));
    }

    #[test]
    fn fractional_seconds_are_read() {
        let h = parse("<13>Nov 26 05:34:22.123 host app: fractional", &ctx());
        assert_eq!(
            h.timestamp.unwrap().to_rfc3339(),
            "2026-11-26T05:34:22.123+00:00"
        );
        assert_eq!(
            (h.hostname, h.appname, h.msg),
            (Some("host"), Some("app"), "fractional")
        );
    }

    #[test]
    fn a_zone_and_year_after_the_time_are_read() {
        let h = parse("<34>Aug 24 05:34:00 CST 1987 mymachine su: bad su", &ctx());
        assert_eq!(
            h.timestamp.unwrap().to_rfc3339(),
            "1987-08-24T11:34:00+00:00"
        );
        assert_eq!(
            (h.hostname, h.appname, h.msg),
            (Some("mymachine"), Some("su"), "bad su")
        );
    }

    #[test]
    fn a_tag_with_a_comma_is_the_start_of_the_message() {
        let ctx = ctx();
        let body = "1,2026/12/03 10:00:00,012345678901,TRAFFIC,end,2561";
        for line in [
            format!("<14>Dec  3 10:00:00 fw01 {body}"),
            format!("<14>1 2026-12-03T10:00:00Z fw01 - - - - {body}"),
            format!("<14>{body}"),
            body.to_string(),
        ] {
            let h = parse(&line, &ctx);
            assert_eq!((h.appname, h.msg), (None, body), "{line}");
        }
        let h = parse("<14>Dec  3 10:00:00 fw01 sshd[5]: a, b", &ctx);
        assert_eq!((h.appname, h.msg), (Some("sshd"), "a, b"));
    }

    #[test]
    fn cisco_asa_headers_with_and_without_a_host() {
        let h = parse(
            "<166>Nov 26 2026 05:34:22: %ASA-6-302013: Built inbound",
            &ctx(),
        );
        assert_eq!(h.hostname, None, "the tag is no host");
        assert_eq!((h.appname, h.msg), (Some("%ASA-6-302013"), "Built inbound"));
        assert_eq!(
            h.timestamp.unwrap().to_rfc3339(),
            "2026-11-26T05:34:22+00:00"
        );
        let h = parse(
            "<166>Nov 26 2026 05:34:22 asa-01 : %ASA-6-302013: Built",
            &ctx(),
        );
        assert_eq!(
            (h.hostname, h.msg),
            (Some("asa-01"), "%ASA-6-302013: Built")
        );
    }

    #[test]
    fn a_pri_in_front_of_an_unknown_header_is_still_honoured() {
        let h = parse(
            "<0>1990 Oct 22 10:52:01 TZ-6 scapegoat 10.1.2.3 sched[0]: All",
            &ctx(),
        );
        assert_eq!((h.facility, h.severity), (Some("kern"), Some("emerg")));
        assert!(h.msg.starts_with("1990 Oct 22"), "{}", h.msg);
    }

    #[test]
    fn a_named_zone_applies_to_rfc3164_headers() {
        let c = crate::time::TimeContext::new(
            "2026-11-26T10:00:00Z".parse().unwrap(),
            crate::time::SenderZone::parse("America/New_York").unwrap(),
        );
        let h = parse("<13>Jul 15 12:00:00 host app: summer", &c);
        assert_eq!(
            h.timestamp.unwrap().to_rfc3339(),
            "2026-07-15T16:00:00+00:00"
        );
        let h = parse("<13>Nov 26 04:00:00 host app: winter", &c);
        assert_eq!(
            h.timestamp.unwrap().to_rfc3339(),
            "2026-11-26T09:00:00+00:00"
        );
    }
}
