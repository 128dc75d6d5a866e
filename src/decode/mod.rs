//! Decode: one raw message (text) -> its syslog header and, when it carries one, its CEF record.
//!
//! The split between the two is found here: the CEF record starts at the first `CEF:<n>|`
//! marker, and only header fields that lie before that marker are believed.

pub mod cef;
pub mod cisco;
pub mod syslog;
pub mod time;

pub use cef::{CefError, CefEvent, Extension};
pub use cisco::CiscoMessage;
pub use syslog::{ProcessId, SyslogHeader};
pub use time::TimeContext;

/// What one message turned out to be.
// The CEF variant is large and the other empty; boxing it would cost an allocation per
// message on the hot path for no gain (a Payload lives on the stack for one call).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Payload<'a> {
    /// A CEF record (or a broken one: the error keeps what was read) and its raw text from
    /// the marker on.
    Cef {
        event: Result<CefEvent<'a>, CefError<'a>>,
        text: &'a str,
    },
    /// A Cisco ASA or FTD message (`%ASA-6-302013: ...`), which Sentinel keeps in
    /// `CommonSecurityLog` although it is no CEF.
    Cisco(CiscoMessage<'a>),
    /// Anything else: a plain syslog message.
    Syslog,
}

/// One decoded message: header plus payload, borrowing from the input text.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<'a> {
    pub header: SyslogHeader<'a>,
    pub payload: Payload<'a>,
}

/// Decodes one message. Never fails: what cannot be read is kept for the raw fallback.
pub fn decode<'a>(text: &'a str, ctx: &TimeContext) -> Decoded<'a> {
    if let Some(at) = cef::find_marker(text) {
        let cef_text = &text[at..];
        return Decoded {
            header: header_before(text, at, ctx),
            payload: Payload::Cef {
                event: cef::parse(cef_text),
                text: cef_text,
            },
        };
    }
    if let Some(at) = cef::find_unmarked(text) {
        let cef_text = &text[at..];
        return Decoded {
            header: header_before(text, at, ctx),
            payload: Payload::Cef {
                event: cef::parse_unmarked(cef_text),
                text: cef_text,
            },
        };
    }
    let mut header = syslog::parse(text, ctx);
    if let Some((at, message)) = cisco::recognise(text, &header) {
        // The tag is no program name: header fields read from it or after it are dropped.
        let before = |s: Option<&'a str>| {
            s.filter(|s| syslog::offset_in(text, s).is_some_and(|o| o + s.len() <= at))
        };
        header.hostname = before(header.hostname);
        header.structured_data = before(header.structured_data);
        header.appname = None;
        header.procid = None;
        header.msgid = None;
        header.msg = &text[at..];
        return Decoded {
            header,
            payload: Payload::Cisco(message),
        };
    }
    Decoded {
        header,
        payload: Payload::Syslog,
    }
}

/// The syslog header of the text before a CEF record at `at`; fields that the header parser
/// took from the CEF record itself are dropped.
fn header_before<'a>(text: &'a str, at: usize, ctx: &TimeContext) -> SyslogHeader<'a> {
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

    use crate::decode::time::test_context as ctx;

    fn cef_of<'a>(d: &'a Decoded<'a>) -> &'a CefEvent<'a> {
        match &d.payload {
            Payload::Cef { event: Ok(ev), .. } => ev,
            other => panic!("not CEF: {other:?}"),
        }
    }

    /// The shortcut for `<PRI>Mmm dd HH:MM:SS HOST CEF:...` must read exactly what the
    /// general path reads: every CEF line of the fixtures, and made-up ones around the
    /// edges (one-digit days, a year's end, impossible dates, odd hosts), in three zones.
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
                let Some(at) = cef::find_marker(line) else {
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

    #[test]
    fn cisco_tags_behind_every_header_form() {
        let forms = [
            (
                "<166>Nov 26 2026 09:51:00 asa-01 : %ASA-6-302010: 3 in use",
                Some("asa-01"),
            ),
            ("<166>Nov 26 2026 09:51:00: %ASA-6-302010: 3 in use", None),
            (
                "<166>Nov 26 09:51:00 asa-01 %ASA-6-302010: 3 in use",
                Some("asa-01"),
            ),
            ("<166>%ASA-6-302010: 3 in use", None),
            (
                "<166>1 2026-11-26T09:51:00Z ftd-01 - - - - %FTD-6-302010: 3 in use",
                Some("ftd-01"),
            ),
            ("%ASA-6-302010: 3 in use", None),
        ];
        for (line, host) in forms {
            let d = decode(line, &ctx());
            let Payload::Cisco(m) = &d.payload else {
                panic!("{line}: {:?}", d.payload)
            };
            assert_eq!(m.id, "302010", "{line}");
            assert!(m.text.ends_with("302010: 3 in use"), "{line}: {}", m.text);
            assert_eq!(d.header.hostname, host, "{line}");
            assert_eq!(d.header.appname, None, "{line}: the tag is no program");
            if line.starts_with('<') {
                assert_eq!(d.header.facility, Some("local4"), "{line}");
            }
        }
        // A tag later in the text is no tag; `%` text that is no tag stays a Syslog row.
        for line in [
            "<14>Nov 26 09:51:00 relay app: saw %ASA-6-302010: 3 in use",
            "<14>Nov 26 09:51:00 host %CPU-high: 90%",
        ] {
            assert_eq!(decode(line, &ctx()).payload, Payload::Syslog, "{line}");
        }
    }

    #[test]
    fn cef_without_header() {
        let d = decode("CEF:0|V|P|1|1|n|1|src=1.1.1.1", &ctx());
        assert!(!d.header.has_header());
        assert_eq!(cef_of(&d).device_vendor, "V");
    }

    #[test]
    fn cef_after_rfc3164() {
        let d = decode(
            "<134>Sep 19 08:26:10 host CEF:0|V|P|1|1|n|1|src=1.1.1.1",
            &ctx(),
        );
        assert_eq!(d.header.hostname, Some("host"));
        assert_eq!(d.header.facility, Some("local0"));
        assert_eq!(d.header.appname, None, "the CEF marker is no tag");
        assert_eq!(cef_of(&d).pairs().len(), 1);
    }

    #[test]
    fn cef_after_rfc3164_without_pri() {
        let d = decode("Feb 12 11:11:30 syslog-800c CEF:0|V|P|1|1|n|1|a=b", &ctx());
        assert_eq!(d.header.hostname, Some("syslog-800c"));
        assert_eq!(cef_of(&d).pairs()[0].0, "a");
    }

    #[test]
    fn cef_after_rfc5424() {
        let d = decode(
            "<182>1 2020-10-04T10:41:14.608731Z cortexxdr - - - - CEF:0|V|P|1|1|n|9|a=b",
            &ctx(),
        );
        assert!(d.header.rfc5424);
        assert_eq!(d.header.hostname, Some("cortexxdr"));
        assert_eq!(cef_of(&d).severity, "9");
    }

    #[test]
    fn cef_after_rfc5424_with_tag_cef() {
        let d = decode(
            "<134>1 2026-11-26T10:00:00Z fw01 CEF - - [meta seq=\"1\"] CEF:0|V|P|1|1|n|9|a=b",
            &ctx(),
        );
        assert_eq!(d.header.hostname, Some("fw01"));
        assert_eq!(d.header.appname, Some("CEF"));
        assert_eq!(d.header.structured_data, Some("[meta seq=\"1\"]"));
    }

    #[test]
    fn cef_without_marker_behind_rfc5424_tag() {
        let d = decode(
            "<84>1 2018-02-21T14:19:27.540731+00:00 CENTER CEF 6076 AccountEnumerationSecurityAlert 0|Microsoft|Azure ATP|2.22|AccountEnumerationSecurityAlert|Reconnaissance|5|start=2018-02-21T14:19:02.6045416Z app=Kerberos",
            &ctx(),
        );
        let ev = cef_of(&d);
        assert_eq!(ev.version, "0");
        assert_eq!(ev.device_product, "Azure ATP");
        assert_eq!(d.header.hostname, Some("CENTER"));
        assert_eq!(d.header.appname, Some("CEF"));
        assert_eq!(d.header.procid, Some(ProcessId::Number(6076)));
        assert_eq!(d.header.facility, Some("authpriv"));
        assert_eq!(d.header.severity, Some("warning"));
        assert_eq!(ev.pairs().len(), 2);
    }

    /// Microsoft's test command (`logger --rfc3164 -t CEF "0|Mock-test|..."`) and the devices
    /// and relays that put `CEF` in the RFC 3164 tag: CEF behind every header shape.
    #[test]
    fn cef_behind_an_rfc3164_cef_tag() {
        let cases = [
            (
                "<164>Dec  2 15:53:38 vm CEF: 0|Mock-test|MOCK|common=event-format-test|end|TRAFFIC|1|rt==event-formatted-receive_time",
                Some("vm"),
                "Mock-test",
            ),
            (
                "Aug  3 10:49:35 Barracuda CEF: 0|BarracudaNetworks|WAAS|BNWAS-1.0|WAF|WAF|4| cat=TR",
                Some("Barracuda"),
                "BarracudaNetworks",
            ),
            (
                "<134>Dec  2 15:53:38 10.6.0.4 CEF: 0|Palo Alto Networks|PAN-OS|10.0|end|TRAFFIC|1|src=10.0.0.1",
                Some("10.6.0.4"),
                "Palo Alto Networks",
            ),
            (
                "<164>Dec  2 15:53:38 vm CEF[42]: 0|V|P|1|1|n|1|a=b",
                Some("vm"),
                "V",
            ),
            (
                "<164>2026-12-02T15:53:38Z vm CEF: 0|V|P|1|1|n|1|a=b",
                Some("vm"),
                "V",
            ),
            (
                "<164>Dec  2 2026 15:53:38 vm CEF:  0|V|P|1|1|n|1|a=b",
                Some("vm"),
                "V",
            ),
            ("<164>CEF: 0|V|P|1|1|n|1|a=b", None, "V"),
            ("CEF: 0|V|P|1|1|n|1|a=b", None, "V"),
        ];
        for (line, host, vendor) in cases {
            let d = decode(line, &ctx());
            let ev = cef_of(&d);
            assert_eq!(ev.device_vendor, vendor, "{line}");
            assert_eq!(d.header.hostname, host, "{line}");
            assert!(d.header.msg.starts_with("0|"), "{line}: {}", d.header.msg);
            if line.starts_with("<164>") {
                assert_eq!(d.header.facility, Some("local4"), "{line}");
                assert_eq!(d.header.severity, Some("warning"), "{line}");
            }
        }
        let d = decode(cases[0].0, &ctx());
        let t = d.header.timestamp.map(|t| time::iso8601(&t));
        assert_eq!(t.as_deref(), Some("2026-12-02T15:53:38Z"));
        // A record cut short behind the tag is still CEF (its problem is the header's).
        let d = decode("<164>Dec  2 15:53:38 vm CEF: 0|Mock-test|MOCK", &ctx());
        assert!(matches!(d.payload, Payload::Cef { event: Err(_), .. }));
        // Not the tag, or no record right behind it: plain syslog.
        for line in [
            "<13>Nov 26 09:00:00 host app: CEF: hello",
            "<13>Nov 26 09:00:00 host CEFX: 0|V|P|1|1|n|1|",
            "<13>Nov 26 09:00:00 host myCEF: 0|V|P|1|1|n|1|",
            "<13>Nov 26 09:00:00 host CEF: version 0|V",
            "<13>Nov 26 09:00:00 host CEF[x]: 0|V|P|1|1|n|1|",
            "<13>Nov 26 09:00:00 host CEF:0",
        ] {
            assert_eq!(decode(line, &ctx()).payload, Payload::Syslog, "{line}");
        }
    }

    /// A zone abbreviation after the time is the time's zone, in every header form, and
    /// never the host (`Dec 15 2021 09:34:34 EDT: %ASA-...` once gave `Computer` `EDT`).
    #[test]
    fn a_zone_after_the_time_is_never_the_host() {
        let cases = [
            (
                "Dec 15 2021 09:34:34 EDT: %ASA-session-5-106100: access-list x denied tcp",
                None,
                "2021-12-15T13:34:34Z",
            ),
            (
                "<166>Dec 15 2021 09:34:34 EDT asa-01 : %ASA-5-106100: access-list x denied tcp",
                Some("asa-01"),
                "2021-12-15T13:34:34Z",
            ),
            (
                "<13>Nov 26 09:59:58 UTC web01 sshd[1]: hi",
                Some("web01"),
                "2026-11-26T09:59:58Z",
            ),
            ("<13>Nov 26 09:59:58 CET: hi", None, "2026-11-26T08:59:58Z"),
            (
                "<13>Nov 26 09:59:58.250 PST fw CEF:0|V|P|1|1|n|1|a=b",
                Some("fw"),
                "2026-11-26T17:59:58.250Z",
            ),
            (
                "<13>Nov 26 09:59:58 UTC CEF:0|V|P|1|1|n|1|a=b",
                None,
                "2026-11-26T09:59:58Z",
            ),
            (
                "<13>Nov 26 2026 09:59:58 EDT CEF:0|V|P|1|1|n|1|a=b",
                None,
                "2026-11-26T13:59:58Z",
            ),
            ("<13>Nov 26 09:59:58 EST", None, "2026-11-26T14:59:58Z"),
        ];
        for (line, host, when) in cases {
            let d = decode(line, &ctx());
            assert_eq!(d.header.hostname, host, "{line}");
            let t = d.header.timestamp.map(|t| time::iso8601(&t));
            assert_eq!(t.as_deref(), Some(when), "{line}");
        }
        let d = decode(cases[0].0, &ctx());
        assert!(matches!(d.payload, Payload::Cisco(_)), "{:?}", d.payload);
    }

    #[test]
    fn cef_after_arcsight_prefixes() {
        for (line, when) in [
            (
                "1493738863000 hostname.example.com CEF:0|V|P|1|1|n|1|a=b",
                "2017-05-02T15:27:43Z",
            ),
            (
                "May 02 15:27:43.000 UTC hostname.example.com CEF:0|V|P|1|1|n|1|a=b",
                "2026-05-02T15:27:43Z",
            ),
            (
                "<13>May 02 2017 15:27:43 hostname.example.com CEF:0|V|P|1|1|n|1|a=b",
                "2017-05-02T15:27:43Z",
            ),
        ] {
            let d = decode(line, &ctx());
            assert_eq!(d.header.hostname, Some("hostname.example.com"), "{line}");
            assert_eq!(d.header.appname, None, "{line}");
            let t = d.header.timestamp.map(|t| time::iso8601(&t));
            assert_eq!(t.as_deref(), Some(when), "{line}");
        }
    }

    #[test]
    fn rfc3164_tag_before_cef_stays_a_tag() {
        let d = decode(
            "<134>Sep 19 08:26:10 host tag[7]: CEF:0|V|P|1|1|n|1|a=b",
            &ctx(),
        );
        assert_eq!(d.header.hostname, Some("host"));
        assert_eq!(d.header.appname, Some("tag"));
    }

    #[test]
    fn plain_syslog() {
        let d = decode("<13>Nov 26 09:00:00 host app: hello CEF world", &ctx());
        assert_eq!(d.payload, Payload::Syslog);
        assert_eq!(d.header.msg, "hello CEF world");
    }
}
