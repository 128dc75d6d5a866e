use super::*;
use crate::time::TimeContext;
use chrono::TimeZone;
use chrono::Utc;

fn builder(time_generated: Vec<TimeSource>) -> RowBuilder {
    RowBuilder::new(RecordSettings {
        collector_host: "collector".into(),
        time_generated,
        event_id: false,
        keep_structured_data: false,
    })
}

fn rx(peer: Option<&str>) -> Reception<'_> {
    Reception {
        time: TimeContext::new(
            Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap(),
            crate::decode::time::SenderZone::default(),
        ),
        peer,
        truncated: false,
        format: None,
    }
}

fn s(v: &str) -> Value<'_> {
    Value::Str(Cow::Borrowed(v))
}

#[test]
fn cef_header_and_known_keys_map_to_columns() {
    let b = builder(vec![TimeSource::Received]);
    let row = b.build(
        "<134>Nov 26 09:59:00 fw01 CEF:0|Acme|FW|1.2|0000013|Port scan|7|src=10.0.0.1 dpt=443 cn1=9000000000 cfp1=1.5 externalId=77 outcome=success reason=policy cat=scan",
        false,
        &rx(Some("192.0.2.9")),
    );
    assert_eq!(row.table, Table::CommonSecurityLog);
    assert_eq!(row.get("Computer"), Some(&s("fw01")));
    assert_eq!(row.get("CollectorHostName"), Some(&s("collector")));
    assert_eq!(row.get("DeviceEventClassID"), Some(&s("0000013")));
    assert_eq!(row.get("Activity"), Some(&s("Port scan")));
    assert_eq!(row.get("LogSeverity"), Some(&s("7")));
    assert_eq!(row.get("SourceIP"), Some(&s("10.0.0.1")));
    assert_eq!(row.get("DestinationPort"), Some(&Value::Int(443)));
    assert_eq!(
        row.get("FieldDeviceCustomNumber1"),
        Some(&Value::Int(9_000_000_000))
    );
    assert_eq!(
        row.get("DeviceCustomFloatingPoint1"),
        Some(&Value::Real(1.5))
    );
    assert_eq!(row.get("ExtID"), Some(&s("77")));
    assert_eq!(row.get("EventOutcome"), Some(&s("success")));
    assert_eq!(row.get("Reason"), Some(&s("policy")));
    assert_eq!(row.get("DeviceEventCategory"), Some(&s("scan")));
    assert_eq!(row.get("AdditionalExtensions"), None);
    assert!(row.problems.is_empty());
    assert_eq!(row.columns[0].0, "TimeGenerated");
}

#[test]
fn unknown_keys_and_misfits_go_to_additional_extensions() {
    let b = builder(vec![TimeSource::Received]);
    let row = b.build(
        "CEF:0|V|P|1|1|n|1|FTNTFGTlogid=13 spt=abc dpt=99999999999 cfp2=NaN start=yesterday ad.x=a=b",
        false,
        &rx(None),
    );
    assert_eq!(
        row.get("AdditionalExtensions"),
        Some(&Value::Str(Cow::Owned(
            "FTNTFGTlogid=13;spt=abc;dpt=99999999999;cfp2=NaN;start=yesterday;ad.x=a=b".into()
        )))
    );
    let kinds: Vec<_> = row.problems.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ProblemKind::VALUE_TYPE,
            ProblemKind::VALUE_TYPE,
            ProblemKind::VALUE_TYPE,
        ]
    );
    let Some(Value::Str(diag)) = row.get(DIAGNOSTICS_COLUMN) else {
        panic!("no diagnostics column")
    };
    assert!(
        diag.starts_with("value-type: spt is not a valid int; "),
        "{diag}"
    );
    assert_eq!(
        row.get("Computer"),
        None,
        "no header and no peer: no Computer"
    );
}

#[test]
fn duplicate_keys_keep_first_in_column_rest_in_extensions() {
    let b = builder(vec![TimeSource::Received]);
    let row = b.build(
        "CEF:0|V|P|1|1|n|1|src=1.1.1.1 src=2.2.2.2",
        false,
        &rx(None),
    );
    assert_eq!(row.get("SourceIP"), Some(&s("1.1.1.1")));
    assert_eq!(
        row.get("AdditionalExtensions"),
        Some(&Value::Str(Cow::Owned("src=2.2.2.2".into())))
    );
    assert_eq!(row.problems[0].kind, ProblemKind::DUPLICATE_KEY);
}

#[test]
fn full_names_map_only_without_a_short_key() {
    let b = builder(vec![TimeSource::Received]);
    let row = b.build(
        "CEF:0|V|P|1|1|n|1|sourceAddress=1.1.1.1 destinationPort=22 bytesIn=5 fileSize=9 deviceExternalId=fw1 requestClientApplication=curl/8",
        false,
        &rx(None),
    );
    assert_eq!(row.get("SourceIP"), None);
    assert_eq!(row.get("ReceivedBytes"), None);
    assert_eq!(row.get("DeviceExternalID"), Some(&s("fw1")));
    assert_eq!(row.get("RequestClientApplication"), Some(&s("curl/8")));
    assert_eq!(
        row.get("AdditionalExtensions"),
        Some(&Value::Str(Cow::Owned(
            "sourceAddress=1.1.1.1;destinationPort=22;bytesIn=5;fileSize=9".into()
        )))
    );
    assert!(row.problems.is_empty(), "{:?}", row.problems);
}

#[test]
fn start_and_end_stay_in_additional_extensions_and_may_still_be_the_time() {
    let line = "CEF:0|V|P|1|1|n|1|start=1691735642000 end=Aug 11 2023 06:34:12 src=10.0.0.1";
    let received = builder(vec![TimeSource::Received]);
    let row = received.build(line, false, &rx(None));
    assert_eq!(row.get("StartTime"), None);
    assert_eq!(row.get("EndTime"), None);
    assert_eq!(
        row.get("AdditionalExtensions"),
        Some(&Value::Str(Cow::Owned(
            "start=1691735642000;end=Aug 11 2023 06:34:12".into()
        )))
    );
    let by_start = builder(vec![TimeSource::Start, TimeSource::Received]);
    let row = by_start.build(line, false, &rx(None));
    assert_eq!(
        row.get("TimeGenerated"),
        Some(&Value::Time("2023-08-11T06:34:02Z".parse().unwrap()))
    );
    assert!(row.problems.is_empty(), "{:?}", row.problems);
    let by_end = builder(vec![TimeSource::End, TimeSource::Received]);
    let row = by_end.build("CEF:0|V|P|1|1|n|1|end=yesterday", false, &rx(None));
    assert_eq!(row.problems[0].kind, ProblemKind::BAD_TIMESTAMP);
    assert_eq!(
        row.get("TimeGenerated"),
        Some(&Value::Time(rx(None).time.received_at))
    );
}

#[test]
fn time_generated_precedence() {
    let line = "<134>Nov 26 09:00:00 fw CEF:0|V|P|1|1|n|1|rt=Nov 26 2026 08:00:00 UTC end=1795676400000 start=2026-11-26T06:00:00Z";
    let time = |sources: Vec<TimeSource>| {
        let b = builder(sources);
        let row = b.build(line, false, &rx(None));
        match row.get("TimeGenerated") {
            Some(Value::Time(t)) => crate::decode::time::iso8601(t),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(time(vec![TimeSource::Received]), "2026-11-26T10:00:00Z");
    assert_eq!(
        time(vec![TimeSource::Rt, TimeSource::Received]),
        "2026-11-26T08:00:00Z"
    );
    assert_eq!(time(vec![TimeSource::End]), "2026-11-26T07:00:00Z");
    assert_eq!(time(vec![TimeSource::Start]), "2026-11-26T06:00:00Z");
    assert_eq!(time(vec![TimeSource::Syslog]), "2026-11-26T09:00:00Z");
    // A source the message lacks falls through to the next, then to the receive time.
    let b = builder(vec![TimeSource::Rt]);
    let row = b.build("CEF:0|V|P|1|1|n|1|", false, &rx(None));
    assert_eq!(
        row.get("TimeGenerated"),
        Some(&Value::Time(rx(None).time.received_at))
    );
}

#[test]
fn rt_kept_as_sent() {
    let b = builder(vec![TimeSource::Received]);
    let row = b.build(
        "CEF:0|V|P|1|1|n|1|rt=Jan 17 2020 08:52:10",
        false,
        &rx(None),
    );
    assert_eq!(row.get("ReceiptTime"), Some(&s("Jan 17 2020 08:52:10")));
}

#[test]
fn broken_cef_keeps_raw_text() {
    let b = builder(vec![TimeSource::Received]);
    let row = b.build(
        "<134>Nov 26 09:00:00 fw CEF:0|Vendor|Product|src=1.2.3.4",
        false,
        &rx(None),
    );
    assert_eq!(row.table, Table::CommonSecurityLog);
    assert_eq!(row.get("DeviceVendor"), Some(&s("Vendor")));
    assert_eq!(
        row.get("Message"),
        Some(&s("CEF:0|Vendor|Product|src=1.2.3.4"))
    );
    assert_eq!(row.get("Computer"), Some(&s("fw")));
    assert_eq!(row.problems[0].kind, crate::decode::cef::HEADER_INCOMPLETE);
}

#[test]
fn syslog_row_columns() {
    let b = builder(vec![TimeSource::Received]);
    let row = b.build(
        "<38>Nov 26 09:59:58 web01 sshd[4242]: Accepted password\r\n",
        false,
        &rx(Some("192.0.2.1")),
    );
    assert_eq!(row.table, Table::Syslog);
    assert_eq!(row.get("Computer"), Some(&s("web01")));
    assert_eq!(row.get("HostName"), Some(&s("web01")));
    assert_eq!(row.get("HostIP"), Some(&s("192.0.2.1")));
    assert_eq!(row.get("Facility"), Some(&s("auth")));
    assert_eq!(row.get("SeverityLevel"), Some(&s("info")));
    assert_eq!(row.get("ProcessName"), Some(&s("sshd")));
    assert_eq!(row.get("ProcessID"), Some(&Value::Int(4242)));
    assert_eq!(row.get("SyslogMessage"), Some(&s("Accepted password")));
    assert!(matches!(row.get("EventTime"), Some(Value::Time(_))));
    assert!(row.problems.is_empty());
}

#[test]
fn syslog_without_header_is_user_notice_and_flagged() {
    let b = builder(vec![TimeSource::Received]);
    let row = b.build("free text", true, &rx(Some("192.0.2.1")));
    assert_eq!(row.get("Facility"), Some(&s("user")));
    assert_eq!(row.get("SeverityLevel"), Some(&s("notice")));
    assert_eq!(
        row.get("Computer"),
        Some(&s("192.0.2.1")),
        "peer address stands in"
    );
    let kinds: Vec<_> = row.problems.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        vec![ProblemKind::INVALID_UTF8, crate::decode::syslog::NO_HEADER]
    );
}

#[test]
fn problem_counts() {
    let b = builder(vec![TimeSource::Received]);
    let mut counts = ProblemCounts::default();
    for line in [
        "free text",
        "CEF:0|V|P|1|1|n|1|dpt=x spt=y",
        "<13>Nov 26 09:00:00 h a: ok",
    ] {
        counts.record(&b.build(line, false, &rx(None)).problems);
    }
    assert_eq!(counts.rows_with_problems, 2);
    assert_eq!(counts.get(ProblemKind::VALUE_TYPE), 2);
    assert_eq!(counts.get(crate::decode::syslog::NO_HEADER), 1);
}

#[test]
fn event_ids_are_deterministic_and_optional() {
    let mut settings = RecordSettings {
        collector_host: "c".into(),
        time_generated: vec![TimeSource::Received],
        event_id: true,
        keep_structured_data: false,
    };
    let b = RowBuilder::new(settings.clone());
    fn id(b: &RowBuilder, text: &str) -> Option<String> {
        match b.build(text, false, &rx(None)).get(EVENT_ID_COLUMN) {
            Some(Value::Str(s)) => Some(s.to_string()),
            _ => None,
        }
    }
    let a1 = id(&b, "CEF:0|V|P|1|1|n|1|src=1.1.1.1");
    assert_eq!(
        a1,
        id(&b, "CEF:0|V|P|1|1|n|1|src=1.1.1.1"),
        "same message, same receive time"
    );
    assert_ne!(a1, id(&b, "CEF:0|V|P|1|1|n|1|src=1.1.1.2"));
    let hex = a1.unwrap();
    assert_eq!(hex.len(), 16);
    assert_eq!(
        hex,
        event_id("CEF:0|V|P|1|1|n|1|src=1.1.1.1", &rx(None).time.received_at)
    );
    settings.event_id = false;
    assert_eq!(id(&RowBuilder::new(settings), "CEF:0|V|P|1|1|n|1|"), None);
}

#[test]
fn structured_data_leaves_syslog_message_unless_asked_to_stay() {
    let text = r#"<165>1 2003-10-11T22:14:15.003Z host app - ID47 [ex@32473 iut="3"] the message"#;
    let message = |keep: bool| {
        let b = RowBuilder::new(RecordSettings {
            keep_structured_data: keep,
            ..RecordSettings::default()
        });
        match b.build(text, false, &rx(None)).get("SyslogMessage") {
            Some(Value::Str(s)) => s.to_string(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(message(false), "the message");
    assert_eq!(message(true), r#"[ex@32473 iut="3"] the message"#);
}

#[test]
fn escapes_undone_in_columns_kept_in_additional_extensions() {
    let b = builder(vec![TimeSource::Received]);
    let row = b.build(
        r"CEF:0|V|P|1|1|n|1|suser=DOM\\alice request=/a?b\=c cs3=GET /\r\nHost: x originsicname=CN\=fw,O\=mgmt path=C:\\tmp",
        false,
        &rx(None),
    );
    assert_eq!(row.get("SourceUserName"), Some(&s(r"DOM\alice")));
    assert_eq!(row.get("RequestURL"), Some(&s("/a?b=c")));
    assert_eq!(
        row.get("DeviceCustomString3"),
        Some(&s(r"GET /\r\nHost: x")),
        "\\r and \\n stay the two characters they are on the wire"
    );
    assert_eq!(
        row.get("AdditionalExtensions"),
        Some(&Value::Str(Cow::Owned(
            r"originsicname=CN\=fw,O\=mgmt;path=C:\\tmp".into()
        )))
    );
}
