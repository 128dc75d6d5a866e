use super::*;
use crate::row::{Reception, RecordSettings, Table as RowTable, Value};
use crate::time::test_context;

fn decoded<'a>(text: &'a str, settings: &'a RecordSettings) -> Row<'a> {
    let cx = MapContext {
        settings,
        rx: Reception {
            time: test_context(),
            peer: None,
            truncated: false,
            format: None,
        },
    };
    crate::decode::row(text, &cx)
}

const TRAFFIC: &str = "date=2026-11-26 time=09:58:01 devname=\"FG100F\" devid=\"FG100FTK19000000\" \
eventtime=1764151081123456789 tz=\"+0100\" logid=\"0000000013\" type=\"traffic\" subtype=\"forward\" \
level=\"notice\" vd=\"root\" srcip=10.1.1.5 srcport=51234 srcintf=\"port1\" srcintfrole=\"lan\" \
dstip=203.0.113.9 dstport=443 dstintf=\"wan1\" dstintfrole=\"wan\" sessionid=12345 proto=6 \
action=\"close\" policyid=3 policytype=\"policy\" service=\"HTTPS\" trandisp=\"snat\" \
transip=198.51.100.2 transport=40001 duration=12 sentbyte=1234 rcvdbyte=5678 sentpkt=10 \
rcvdpkt=12 appcat=\"unscanned\"";

#[test]
fn fortios_lines_are_recognised_and_others_are_not() {
    assert!(looks_like_fortios(TRAFFIC));
    assert!(looks_like_fortios(
        "logver=702081639 timestamp=1 logid=\"1\""
    ));
    for other in [
        "",
        "date=",
        "date=2026-11-26",
        "date=2026/11/26 time=1 logid=2",
        "date=2026-11-26 time=09:58:01 devname=x",
        "CEF:0|Fortinet|Fortigate|v7.2.8|00013|traffic:forward close|3|",
        "id=firewall sn=0017C5 time=\"2026-11-26 09:58:01\" m=98 logid=1",
        "1,2026/11/26 09:58:01,0123,TRAFFIC",
    ] {
        assert!(!looks_like_fortios(other), "{other:?}");
    }
    let settings = RecordSettings::default();
    for framed in [
        format!("<189>{TRAFFIC}"),
        TRAFFIC.to_string(),
        format!("<189>Nov 26 09:58:01 relay01 {TRAFFIC}"),
        format!("<189>1 2026-11-26T09:58:01Z relay01 - - - - {TRAFFIC}"),
    ] {
        let row = decoded(&framed, &settings);
        assert_eq!(row.table, RowTable::CommonSecurityLog, "{framed}");
        assert_eq!(
            row.get("DeviceEventClassID"),
            Some(&Value::Str("00013".into()))
        );
    }
}

/// The differential check: the same event written as FortiOS's CEF mode writes it (the
/// header and keys of the vendor's "Traffic log support for CEF" example, filled with this
/// line's values) gives the same row through the CEF path, column for column.
#[test]
fn a_line_and_its_fortios_cef_twin_give_the_same_row() {
    let cef = "<189>Nov 26 09:58:01 FG100F CEF:0|Fortinet|Fortigate|v7.2.8|00013|traffic:forward close|3|\
deviceExternalId=FG100FTK19000000 FTNTFGTeventtime=1764151081123456789 FTNTFGTtz=+0100 \
FTNTFGTlogid=0000000013 cat=traffic:forward FTNTFGTsubtype=forward FTNTFGTlevel=notice \
FTNTFGTvd=root src=10.1.1.5 spt=51234 deviceInboundInterface=port1 FTNTFGTsrcintfrole=lan \
dst=203.0.113.9 dpt=443 deviceOutboundInterface=wan1 FTNTFGTdstintfrole=wan externalId=12345 \
proto=6 act=close FTNTFGTpolicyid=3 FTNTFGTpolicytype=policy app=HTTPS FTNTFGTtrandisp=snat \
sourceTranslatedAddress=198.51.100.2 sourceTranslatedPort=40001 FTNTFGTduration=12 out=1234 \
in=5678 FTNTFGTsentpkt=10 FTNTFGTrcvdpkt=12 FTNTFGTappcat=unscanned";
    let kv = format!(
        "<189>{}",
        TRAFFIC.replacen("date=", "logver=702081639 date=", 1)
    );
    let settings = RecordSettings::default();
    let from_cef = decoded(cef, &settings);
    let from_kv = decoded(&kv, &settings);
    assert!(from_cef.problems.is_empty(), "{:?}", from_cef.problems);
    assert!(from_kv.problems.is_empty(), "{:?}", from_kv.problems);
    // The device name travels in the CEF twin's syslog header, not as a key: the only
    // column the key=value line adds is DeviceName (from `devname`).
    let mut kv_columns: Vec<_> = from_kv
        .columns
        .iter()
        .filter(|(c, _)| *c != "DeviceName" && *c != "TimeGenerated")
        .collect();
    let mut cef_columns: Vec<_> = from_cef
        .columns
        .iter()
        .filter(|(c, _)| *c != "TimeGenerated")
        .collect();
    kv_columns.sort_by_key(|(c, _)| *c);
    cef_columns.sort_by_key(|(c, _)| *c);
    assert_eq!(kv_columns, cef_columns);
    assert_eq!(
        from_kv.get("DeviceName"),
        Some(&Value::Str("FG100F".into()))
    );
}

#[test]
fn the_header_follows_fortios() {
    assert_eq!(row::class_of("0316013056"), "13056");
    assert_eq!(row::class_of("13"), "13");
    assert_eq!(row::version_of("700140601").as_deref(), Some("v7.0.14"));
    assert_eq!(row::version_of("7001406"), None);
    let settings = RecordSettings::default();
    let line = "date=2026-11-26 time=09:58:13 devname=\"FG100F\" logid=\"0100032001\" \
type=\"event\" subtype=\"system\" level=\"information\" user=\"admin\" ui=\"https(10.1.1.2)\" \
action=\"login\" status=\"success\" msg=\"Administrator admin logged in\"";
    let row = decoded(line, &settings);
    let text = |c: &str| match row.get(c) {
        Some(Value::Str(s)) => Some(s.to_string()),
        _ => None,
    };
    assert_eq!(
        text("Activity").as_deref(),
        Some("event:system login success")
    );
    assert_eq!(text("LogSeverity").as_deref(), Some("2"));
    assert_eq!(text("DeviceEventCategory").as_deref(), Some("event:system"));
    assert_eq!(text("DestinationUserName").as_deref(), Some("admin"));
    assert_eq!(
        text("SourceProcessName").as_deref(),
        Some("https(10.1.1.2)")
    );
    assert_eq!(text("EventOutcome").as_deref(), Some("success"));
    // No syslog host: the device's own name is the twin's header host.
    assert_eq!(text("Computer").as_deref(), Some("FG100F"));
}

#[test]
fn the_body_time_in_the_devices_zone_is_the_syslog_time() {
    let settings = RecordSettings {
        time_generated: vec![crate::row::TimeSource::Syslog],
        ..RecordSettings::default()
    };
    let line = format!("<189>{TRAFFIC}");
    let row = decoded(&line, &settings);
    let want = "2026-11-26T08:58:01Z"
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap();
    assert_eq!(row.get("TimeGenerated"), Some(&Value::Time(want)));
}

#[test]
fn extension_values_carry_cef_escapes() {
    let settings = RecordSettings::default();
    let line = "date=2026-11-26 time=09:58:19 devname=\"FG\" logid=\"0100032102\" type=\"event\" \
subtype=\"system\" level=\"notice\" cfgattr=\"name[a->b=c\\\\d]\"";
    let row = decoded(line, &settings);
    match row.get("AdditionalExtensions") {
        Some(Value::Str(s)) => assert!(s.ends_with(r"FTNTFGTcfgattr=name[a->b\=c\\d]"), "{s}"),
        other => panic!("{other:?}"),
    }
}
