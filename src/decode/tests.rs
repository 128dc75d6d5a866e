use super::*;

use crate::time::test_context as ctx;

/// What the formats recognised in a message (for these tests: the production path goes
/// straight from recognising to the row).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
enum Payload<'a> {
    Cef {
        event: Result<CefEvent<'a>, CefError<'a>>,
        text: &'a str,
    },
    Cisco(CiscoMessage<'a>),
    Syslog,
}

#[derive(Debug, Clone, PartialEq)]
struct Decoded<'a> {
    header: SyslogHeader<'a>,
    payload: Payload<'a>,
}

/// Runs the recognisers in the order [`FORMATS`] lists them.
fn decode<'a>(text: &'a str, time: &TimeContext) -> Decoded<'a> {
    let message = Message::new(text, *time);
    if let Some(found) = cef::recognise(&message) {
        return Decoded {
            header: found.header,
            payload: Payload::Cef {
                event: found.event,
                text: found.text,
            },
        };
    }
    if let Some((header, m)) = cisco::recognise_message(&message) {
        return Decoded {
            header,
            payload: Payload::Cisco(m),
        };
    }
    Decoded {
        header: message.header().clone(),
        payload: Payload::Syslog,
    }
}

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

/// The row `row` builds for `text` with `format` named by the configuration.
fn forced_row<'a>(
    text: &'a str,
    format: Option<&str>,
    settings: &'a crate::row::RecordSettings,
) -> Row<'a> {
    let cx = MapContext {
        settings,
        rx: crate::row::Reception {
            time: ctx(),
            peer: None,
            truncated: false,
            format: format.map(|f| f.parse().unwrap()),
        },
    };
    row(text, &cx)
}

#[test]
fn a_forced_format_is_tried_first_and_a_miss_is_tagged_not_dropped() {
    use crate::row::{RecordSettings, Table};
    let settings = RecordSettings::default();
    let names = |r: &Row<'_>| r.problems.iter().map(|p| p.kind.name()).collect::<Vec<_>>();
    let cef = "<13>Nov 26 10:00:00 fw CEF:0|V|P|1|100|n|5|src=10.0.0.1";
    let plain = "<13>Nov 26 10:00:00 fw app: hello";

    // The named format recognises the line: its row, no problem.
    let r = forced_row(cef, Some("cef"), &settings);
    assert_eq!((r.table, names(&r)), (Table::CommonSecurityLog, vec![]));
    // It does not: recognised by content as if nothing were named, and tagged.
    let r = forced_row(cef, Some("pan-os"), &settings);
    assert_eq!(r.table, Table::CommonSecurityLog);
    assert_eq!(names(&r), ["forced-format-missed"]);
    let r = forced_row(plain, Some("cisco-asa"), &settings);
    assert_eq!(r.table, Table::Syslog);
    assert_eq!(names(&r), ["forced-format-missed"]);
    // `syslog` turns recognising off: a CEF line stays a Syslog row (read as any syslog
    // line is: `CEF` is its tag).
    let r = forced_row(cef, Some("syslog"), &settings);
    assert_eq!((r.table, names(&r)), (Table::Syslog, vec![]));
    assert!(
        matches!(r.get("SyslogMessage"), Some(crate::row::Value::Str(m)) if m.ends_with("|V|P|1|100|n|5|src=10.0.0.1"))
    );
    // Nothing named: as before.
    assert_eq!(
        forced_row(cef, None, &settings).table,
        Table::CommonSecurityLog
    );
}

#[test]
fn format_names_are_checked_and_the_error_lists_them() {
    assert_eq!("pan-os".parse::<ForcedFormat>().unwrap().name(), "pan-os");
    let e = "panos".parse::<ForcedFormat>().unwrap_err().to_string();
    assert_eq!(
        e,
        "unknown format \"panos\": use one of cef, cisco-asa, pan-os, fortigate, leef, syslog"
    );
}
