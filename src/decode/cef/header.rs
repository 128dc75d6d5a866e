//! The syslog header in front of a CEF record: whatever the text before the record's
//! start is (RFC 3164, RFC 5424 with or without structured data, a relay's header around
//! another, the `timestamp host` prefix ArcSight connectors write, or nothing), with only
//! the fields that lie before the record believed.

use crate::decode::syslog::{self, ProcessId, SyslogHeader};
use crate::time::{self, TimeContext};

/// The syslog header of the text before a CEF record at `at`; fields that the header parser
/// took from the CEF record itself are dropped.
pub fn header_before<'a>(text: &'a str, at: usize, ctx: &TimeContext) -> SyslogHeader<'a> {
    if let Some(h) = syslog::pri_time_host(text[..at].trim_end(), ctx) {
        return SyslogHeader {
            msg: &text[at..],
            ..h
        };
    }
    header_before_in_general(text, at, ctx)
}

/// [`header_before`] for any header shape.
fn header_before_in_general<'a>(text: &'a str, at: usize, ctx: &TimeContext) -> SyslogHeader<'a> {
    let prefix = text[..at].trim_end();
    if prefix.is_empty() {
        return SyslogHeader {
            rfc5424: false,
            facility: None,
            severity: None,
            timestamp: None,
            hostname: None,
            appname: None,
            procid: None,
            msgid: None,
            structured_data: None,
            msg: &text[at..],
        };
    }
    let mut h = syslog::parse(text, ctx);
    let before = |s: Option<&'a str>| {
        s.filter(|s| syslog::offset_in(text, s).is_some_and(|o| o + s.len() <= at))
    };
    h.hostname = before(h.hostname);
    h.appname = before(h.appname);
    h.msgid = before(h.msgid);
    h.structured_data = before(h.structured_data);
    if let Some(ProcessId::Text(t)) = h.procid
        && before(Some(t)).is_none()
    {
        h.procid = None;
    }
    let doubtful = h.timestamp.is_none() || h.hostname.is_none() || h.appname.is_some();
    if !h.rfc5424 && doubtful && !rfc5424_without_sd(prefix, &mut h) {
        arcsight_prefix(prefix, &mut h, ctx);
    }
    h.msg = &text[at..];
    h
}

/// An RFC 5424 header whose STRUCTURED-DATA is missing, as Microsoft Defender for Identity
/// and ATA send it (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID 0|Microsoft|...`), possibly behind
/// a relay's own prefix. The RFC 5424 parser rejects it, so the fields are read here.
fn rfc5424_without_sd<'a>(prefix: &'a str, h: &mut SyslogHeader<'a>) -> bool {
    let tokens: Vec<&'a str> = prefix.split(' ').filter(|t| !t.is_empty()).collect();
    for (i, token) in tokens.iter().enumerate() {
        let version = token.rsplit_once('>').map_or(*token, |(_, v)| v);
        if version != "1" || tokens.len() < i + 6 {
            continue;
        }
        let Ok(ts) = chrono::DateTime::parse_from_rfc3339(tokens[i + 1]) else {
            continue;
        };
        let field = |t: &'a str| (t != "-").then_some(t);
        let pri = token.strip_prefix('<').and_then(|t| t.split_once('>'));
        if let Some(Ok(pri)) = pri.map(|(p, _)| p.parse::<u8>()) {
            let (facility, severity) = syslog_loose::decompose_pri(pri);
            h.facility = facility.map(|f| f.as_str());
            h.severity = severity.map(|s| s.as_str());
        }
        // A relay that wrapped the message in its own RFC 3164 header (`MMM d hh:mm:ss host`)
        // is the host a syslog receiver sees: its time and host stay, as Microsoft's agent
        // keeps them (fixtures/README.md, parity corpus `paloalto-cdl-*`).
        let relayed = i > 0 && h.timestamp.is_some() && h.hostname.is_some();
        if !relayed {
            h.timestamp = Some(ts.with_timezone(&chrono::Utc));
            h.hostname = field(tokens[i + 2]);
        }
        h.appname = field(tokens[i + 3]);
        h.procid = field(tokens[i + 4]).map(|p| match p.parse() {
            Ok(n) => ProcessId::Number(n),
            Err(_) => ProcessId::Text(p),
        });
        h.msgid = field(tokens[i + 5]);
        h.rfc5424 = true;
        return true;
    }
    false
}

/// The prefix ArcSight connectors and many appliances write instead of an RFC 3164 header:
/// `[<PRI>]<any CEF timestamp> <host> CEF:...`, e.g. `May 02 2017 15:27:43.000 UTC host` or
/// `1493738863000 host`. When the prefix has that shape, its time and host win over what the
/// RFC 3164 parser guessed (it reads the zone as the host and the host as a tag).
fn arcsight_prefix<'a>(prefix: &'a str, h: &mut SyslogHeader<'a>, ctx: &TimeContext) {
    let body = match prefix.strip_prefix('<').and_then(|p| p.split_once('>')) {
        Some((pri, body)) if pri.bytes().all(|b| b.is_ascii_digit()) => body,
        _ => prefix,
    };
    let Some((stamp, host)) = body.trim().rsplit_once(' ') else {
        return;
    };
    let hostname_like = !host.ends_with(':')
        && !time::is_zone_abbreviation(host)
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    if !hostname_like {
        return;
    }
    if let Some(t) = time::parse_cef_time(stamp, ctx) {
        h.timestamp = Some(t);
        h.hostname = Some(host);
        h.appname = None;
        h.procid = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::test_context as ctx;

    #[test]
    fn the_common_header_shortcut_agrees_with_the_general_path() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
        let mut lines: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .flat_map(|e| {
                String::from_utf8_lossy(&std::fs::read(e.path()).unwrap())
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        for head in [
            "<134>Nov 26 09:59:58 fw-edge-01",
            "<134>Nov  6 09:59:58 fw",
            "<134>Nov 6 09:59:58 fw",
            "<0>Jan  1 00:00:00 10.0.0.1",
            "<191>Dec 31 23:59:59 host.example.net",
            "<13>Feb 29 12:00:00 leap",
            "<13>Feb 30 12:00:00 nodate",
            "<13>Nov 26 24:00:00 late",
            "<13>Nov 26 09:59:60 leapsecond",
            "<13>Nov 26 9:59:58 short",
            "<13>Nov 26 09:59:58 host:",
            "<13>Nov 26 09:59:58 two words",
            "<13>Nov 26 09:59:58  doublespace",
            "<13>Nov 26 09:59:58",
            "<13>Nov 26 09:59:58 fw_1.x",
            "<13>nov 26 09:59:58 lower",
            "<13>Nov 026 09:59:58 threedigits",
            "<999>Nov 26 09:59:58 badpri",
        ] {
            lines.push(format!("{head} CEF:0|V|P|1|1|n|3|src=10.0.0.1"));
            lines.push(format!("{head}  CEF:0|V|P|1|1|n|3|"));
        }
        let zones = [
            crate::decode::time::SenderZone::default(),
            crate::decode::time::SenderZone::parse("+05:30").unwrap(),
            crate::decode::time::SenderZone::parse("Europe/Berlin").unwrap(),
        ];
        let mut shortcut = 0;
        for zone in zones {
            let ctx = TimeContext::new(ctx().received_at, zone);
            for line in &lines {
                let Some(at) = super::super::find_marker(line) else {
                    continue;
                };
                if syslog::pri_time_host(line[..at].trim_end(), &ctx).is_some() {
                    shortcut += 1;
                }
                assert_eq!(
                    header_before(line, at, &ctx),
                    header_before_in_general(line, at, &ctx),
                    "{line}"
                );
            }
        }
        assert!(shortcut > 30, "the shortcut was taken {shortcut} times");
    }
}
