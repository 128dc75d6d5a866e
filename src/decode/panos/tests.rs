use super::*;
use crate::row::{Reception, RecordSettings, Table, Value};
use crate::time::test_context;
use std::path::{Path, PathBuf};

fn settings() -> RecordSettings {
    RecordSettings {
        collector_host: "cefgate-test".into(),
        ..RecordSettings::default()
    }
}

/// The row `decode::row` gives `text`, received from no known peer.
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

fn text<'a>(row: &'a Row<'_>, column: &str) -> Option<&'a str> {
    match row.get(column)? {
        Value::Str(s) => Some(s),
        _ => None,
    }
}

fn problems(row: &Row<'_>) -> Vec<&'static str> {
    row.problems.iter().map(|p| p.kind.name()).collect()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

const BODY: &str = "1,2026/12/03 10:00:00,012345678901,TRAFFIC,end,2561,2026/12/03 10:00:00,\
10.0.0.5,192.0.2.9,0.0.0.0,0.0.0.0,allow-all,,,ssl,vsys1,trust,untrust,ethernet1/2,\
ethernet1/1,default,2026/12/03 10:00:00,77,1,50000,443,0,0,0x400053,tcp,allow,300,100,200,4,\
2026/12/03 09:59:58,2,any,0,99,0x0,10.0.0.0-10.255.255.255,United States,0,2,2,tcp-fin,0,0,0,\
0,,fw01,from-policy";

#[test]
fn the_prefix_is_recognised_and_other_formats_are_not() {
    assert!(looks_like_panos(BODY));
    assert!(looks_like_panos(",2026/12/03 10:00:00,x"));
    for other in [
        "",
        "1",
        "1,2026/12/03",
        "1,2026-12-03 10:00:00,x",
        "CEF:0|Palo Alto Networks|PAN-OS|10.2|end|TRAFFIC|1|",
        "%ASA-6-302013: Built",
        "12345,2026/12/03 10:00:00,x",
        "1,2026/12/03 10:00:00",
    ] {
        assert!(!looks_like_panos(other), "{other:?}");
    }
}

#[test]
fn csv_quotes_and_doubled_quotes_are_read() {
    let line = parse(r#"a,"b,c","say ""hi""",,"",d"#);
    assert!(!line.unbalanced);
    assert_eq!(line.fields, ["a", "b,c", r#"say "hi""#, "", "", "d"]);
    let line = parse(r#"a,"x"y,z"#);
    assert_eq!(
        line.fields,
        ["a", "xy", "z"],
        "text after a closing quote is kept"
    );
    let line = parse("a,b,\r\n");
    assert_eq!(line.fields, ["a", "b", ""]);
}

#[test]
fn every_syslog_header_shape_gives_the_same_row() {
    let s = settings();
    let plain = decoded(BODY, &s);
    for line in [
        format!("<14>Dec  3 10:00:00 fw01 {BODY}"),
        format!("<14>1 2026-12-03T10:00:00Z fw01 - - - - {BODY}"),
        format!("<14>{BODY}"),
    ] {
        let row = decoded(&line, &s);
        assert_eq!(row.table, Table::CommonSecurityLog, "{line}");
        for column in ["DeviceEventClassID", "SourceIP", "DeviceName", "RequestURL"] {
            assert_eq!(
                text(&row, column),
                text(&plain, column),
                "{column} of {line}"
            );
        }
        assert_eq!(row.get("SentBytes"), Some(&Value::Int(100)));
        assert!(row.problems.is_empty(), "{line}: {:?}", row.problems);
    }
    assert_eq!(text(&plain, "Activity"), Some("TRAFFIC"));
    assert_eq!(text(&plain, "DeviceName"), Some("fw01"));
}

#[test]
fn hostile_lines_keep_what_was_read_and_never_panic() {
    let s = settings();
    let huge = "x".repeat(1 << 20);
    let prefix = "1,2026/12/03 10:00:00,012345678901,";
    let cases = [
        (prefix.to_string(), "panos-type-unlisted"),
        (format!("{prefix}TRAFFIC"), "panos-truncated"),
        (
            format!("{prefix}TRAFFIC,end,1,2026/12/03 10:00:00,10.0.0.5"),
            "panos-truncated",
        ),
        (
            format!(
                "{prefix}THREAT,url,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,\"{huge}"
            ),
            "panos-unbalanced-quote",
        ),
        (
            format!("{prefix}SYSTEM,general,0,2026/12/03 10:00:00,,general,\"a\"\"b,"),
            "panos-unbalanced-quote",
        ),
        (
            format!("{prefix}TRAFFIC,{}", ",".repeat(100_000)),
            "value-type",
        ),
        (format!("{prefix}{huge}"), "panos-type-unlisted"),
    ];
    for (line, kind) in &cases {
        let row = decoded(line, &s);
        assert_eq!(row.table, Table::CommonSecurityLog);
        assert!(
            text(&row, "DeviceExternalID")
                .or(text(&row, "Message"))
                .is_some()
        );
        assert!(
            problems(&row).contains(kind),
            "{}: {:?}",
            &line[..60.min(line.len())],
            problems(&row)
        );
    }
    // The field count is bounded, however many commas come.
    assert_eq!(parse(&",".repeat(100_000)).fields.len(), MAX_FIELDS);
    // The unbalanced field is kept, to the end of the line.
    let row = decoded(&cases[3].0, &s);
    assert_eq!(text(&row, "RequestURL").map(str::len), Some(huge.len()));
}

#[test]
fn severity_words_become_the_numbers_sentinel_reads() {
    let words = ["informational", "low", "medium", "high", "critical"];
    let numbers: Vec<_> = words.iter().map(|w| row::severity_number(w)).collect();
    assert_eq!(
        numbers,
        [Some("1"), Some("2"), Some("3"), Some("4"), Some("5")]
    );
    assert_eq!(row::severity_number("bogus"), None);
    assert_eq!(
        row::cef_time("2026/12/03 10:00:00").as_deref(),
        Some("Dec 03 2026 10:00:00")
    );
    assert_eq!(row::cef_time("2026/13/03 10:00:00"), None);
    assert_eq!(row::cef_time("Dec 03 2026"), None);
}

/// The CSV line and the vendor-CEF line of the same TRAFFIC event (fixtures/pan-os/pan-os.log
/// line 1, fixtures/paloalto.log line 1) give the same row, except where fixtures/README.md
/// ("PAN-OS CSV") says the content decides otherwise or CSV has no such field.
#[test]
fn a_traffic_line_gives_its_cef_twins_row() {
    let s = settings();
    let csv = std::fs::read_to_string(fixtures().join("pan-os/pan-os.log")).unwrap();
    let cef = std::fs::read_to_string(fixtures().join("paloalto.log")).unwrap();
    let csv_row = decoded(csv.lines().next().unwrap(), &s);
    let cef_row = decoded(cef.lines().next().unwrap(), &s);
    // Documented differences: the bytes (content: SentBytes is the source's), the version
    // (not in the CSV), the zone word on the CEF times, and the extension keys.
    let differ = [
        "SentBytes",
        "ReceivedBytes",
        "DeviceVersion",
        "ReceiptTime",
        "AdditionalExtensions",
    ];
    for (column, value) in &cef_row.columns {
        if differ.contains(column) {
            continue;
        }
        assert_eq!(csv_row.get(column), Some(value), "{column}");
    }
    for (column, _) in &csv_row.columns {
        assert!(
            cef_row.get(column).is_some() || differ.contains(column),
            "{column}"
        );
    }
    assert_eq!(csv_row.get("SentBytes"), cef_row.get("ReceivedBytes"));
    assert_eq!(csv_row.get("ReceivedBytes"), cef_row.get("SentBytes"));
    assert_eq!(text(&csv_row, "ReceiptTime"), Some("Nov 26 2026 09:58:01"));
}
