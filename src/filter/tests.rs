use chrono::{TimeZone, Utc};

use super::*;
use crate::decode::TimeContext;
use crate::record::{Reception, RecordSettings, RowBuilder, TimeSource};

const PAN: &str = "<14>Nov 26 09:59:00 pa-fw CEF:0|Palo Alto Networks|PAN-OS|10.2|end|TRAFFIC|1|act=allow src=10.1.1.5 dst=203.0.113.9 dpt=443 proto=TCP app=ssl cs1Label=Rule cs1=Allow-Web";
const FORTI: &str = "<189>Nov 26 09:59:01 fg CEF:0|Fortinet|Fortigate|7.0|00013|traffic:local accept|3|act=accept src=10.0.0.9 dpt=161 deviceExternalId=FG100";
const SYSLOG: &str = "<13>Nov 26 09:59:02 web01 nginx[77]: GET /Health-Check 200";

fn check(text: &str, line: &str) -> bool {
    let builder = RowBuilder::new(RecordSettings {
        collector_host: "c".into(),
        time_generated: vec![TimeSource::Received],
        event_id: false,
        keep_structured_data: false,
    });
    let rx = Reception {
        time: TimeContext::new(
            Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap(),
            crate::decode::time::SenderZone::default(),
        ),
        peer: Some("192.0.2.1"),
        truncated: false,
        format: None,
    };
    let row = builder.build(line, false, &rx);
    Predicate::parse(text)
        .unwrap_or_else(|e| panic!("{text}: {e} at {}", e.offset))
        .keeps(&row)
}

fn error(text: &str) -> (usize, String) {
    let e = Predicate::parse(text).expect_err(text);
    (e.offset, e.message)
}

#[test]
fn equality_is_exact_and_tilde_ignores_case() {
    assert!(check(r#"DeviceVendor == "Palo Alto Networks""#, PAN));
    assert!(!check(r#"DeviceVendor == "palo alto networks""#, PAN));
    assert!(check(r#"DeviceVendor =~ "palo ALTO networks""#, PAN));
    assert!(check(r#"DeviceVendor != "Fortinet""#, PAN));
    assert!(!check(r#"DeviceVendor !~ "PALO ALTO NETWORKS""#, PAN));
    assert!(check("DeviceAction == 'allow'", PAN));
    assert!(check(r#"DeviceAction == @"allow""#, PAN));
}

#[test]
fn numbers_compare_numerically() {
    assert!(check("DestinationPort == 443", PAN));
    assert!(check(
        "DestinationPort > 100 and DestinationPort <= 443",
        PAN
    ));
    assert!(!check("DestinationPort < 443", PAN));
    assert!(check("DestinationPort >= 443.0", PAN));
    assert!(check("DestinationPort between (400 .. 500)", PAN));
    assert!(!check("DestinationPort between (1 .. 100)", PAN));
    assert!(check("DestinationPort !between (1 .. 100)", PAN));
    // A numeric string compares as a number with a number.
    assert!(check("DeviceEventClassID == 13", FORTI));
    assert!(check("toint(DeviceEventClassID) == 13", FORTI));
    assert!(check("tolong(DestinationPort) == 161", FORTI));
    assert!(check(r#"tostring(DestinationPort) == "161""#, FORTI));
}

#[test]
fn has_matches_whole_terms_ignoring_case() {
    assert!(check(r#"Activity has "local""#, FORTI));
    assert!(check(r#"Activity has "LOCAL""#, FORTI));
    assert!(check(r#"Activity has "traffic:local""#, FORTI));
    assert!(!check(r#"Activity has "loc""#, FORTI), "a part of a term");
    assert!(!check(r#"Activity has "raffic""#, FORTI));
    assert!(check(r#"Activity !has "loc""#, FORTI));
    assert!(check(r#"Activity has_cs "local""#, FORTI));
    assert!(!check(r#"Activity has_cs "LOCAL""#, FORTI));
    assert!(check(r#"SyslogMessage has "health""#, SYSLOG));
    assert!(!check(r#"SyslogMessage has "heal""#, SYSLOG));
}

#[test]
fn contains_and_affixes_ignore_case_unless_cs() {
    assert!(check(r#"Activity contains "AFFIC:LO""#, FORTI));
    assert!(!check(r#"Activity contains_cs "AFFIC""#, FORTI));
    assert!(check(r#"Activity !contains "deny""#, FORTI));
    assert!(check(r#"Activity startswith "TRAFFIC""#, FORTI));
    assert!(check(r#"Activity !startswith "event""#, FORTI));
    assert!(check(r#"Activity endswith "Accept""#, FORTI));
    assert!(!check(r#"Activity endswith_cs "Accept""#, FORTI));
    assert!(check(r#"Activity !endswith "deny""#, FORTI));
}

#[test]
fn in_lists_regexes_and_logic() {
    assert!(check(r#"DestinationPort in (53, 443)"#, PAN));
    assert!(check(r#"DeviceAction in ("allow", "accept")"#, PAN));
    assert!(!check(r#"DeviceAction in ("ALLOW")"#, PAN));
    assert!(check(r#"DeviceAction in~ ("ALLOW")"#, PAN));
    assert!(check(r#"DeviceAction !in ("deny", "drop")"#, PAN));
    assert!(check(r#"SourceIP matches regex @"^10\.1\.""#, PAN));
    assert!(!check(r#"SourceIP matches regex "^192""#, PAN));
    let noise = r#"not(DeviceVendor == "Palo Alto Networks" and DeviceEventClassID == "end" and Activity == "TRAFFIC" and DeviceAction == "allow")"#;
    assert!(!check(noise, PAN));
    assert!(check(noise, FORTI));
    assert!(check(noise, SYSLOG));
    assert!(check(
        r#"(DeviceVendor == "x" or DestinationPort == 443) and true"#,
        PAN
    ));
    assert!(!check("false or false", PAN));
}

#[test]
fn a_missing_column_is_empty() {
    // A Syslog row has no DeviceVendor; a CEF row no SyslogMessage.
    assert!(check("isempty(DeviceVendor)", SYSLOG));
    assert!(check(r#"DeviceVendor == """#, SYSLOG));
    assert!(!check(r#"DeviceVendor == "Fortinet""#, SYSLOG));
    assert!(check(r#"DeviceVendor != "Fortinet""#, SYSLOG));
    assert!(
        !check("DestinationPort > 0", SYSLOG),
        "missing orders against nothing"
    );
    assert!(!check(r#"DeviceVendor has "x""#, SYSLOG));
    assert!(check(r#"DeviceVendor !has "x""#, SYSLOG));
    assert!(check("isnotempty(SyslogMessage)", SYSLOG));
    assert!(check("isempty(SyslogMessage)", PAN));
    assert!(check(r#"tolower(Computer) == "web01""#, SYSLOG));
}

#[test]
fn errors_say_what_was_expected_and_where() {
    assert_eq!(error(r#"DeviceVendor = "x""#).0, 13);
    let (at, message) = error(r#"DeviceVendr == "x""#);
    assert_eq!(at, 0);
    assert!(
        message.contains("unknown column `DeviceVendr`"),
        "{message}"
    );
    let (at, message) = error(r#"DeviceVendor == "x" and"#);
    assert_eq!(at, 23);
    assert!(message.contains("found the end"), "{message}");
    let (at, message) = error(r#"DeviceVendor has "x" junk"#);
    assert_eq!(at, 21);
    assert!(message.contains("found `junk`"), "{message}");
    assert!(error("DeviceVendor == 'open").1.contains("not closed"));
    assert!(error("DestinationPort between (1 2)").1.contains("`..`"));
    assert!(
        error(r#"SourceIP matches regex "(""#)
            .1
            .contains("not a regular expression")
    );
    assert!(
        error("frobnicate(DeviceVendor)")
            .1
            .contains("unknown function")
    );
    assert!(error("not DeviceVendor").1.contains("not(...)"));
    assert!(
        error(r#"DeviceVendor !like "x""#)
            .1
            .contains("`!like` is no operator")
    );
}

#[test]
fn a_predicate_read_from_text_shows_the_place_under_it() {
    let e = "Déviçe == 'x' or".parse::<Predicate>().expect_err("bad");
    assert_eq!(
        e.to_string(),
        "unknown column `Déviçe` (a CommonSecurityLog or Syslog column, spelled as in the table)\n  Déviçe == 'x' or\n  ^"
    );
    let e = "Computer == 'é' or".parse::<Predicate>().expect_err("bad");
    assert!(
        e.to_string()
            .ends_with("\n  Computer == 'é' or\n                    ^"),
        "{e}"
    );
    assert!("Computer == 'x'".parse::<Predicate>().is_ok());
}

#[test]
fn project_away_keeps_time_generated() {
    assert!(ProjectAway::new(&["AdditionalExtensions", "Message"]).is_ok());
    assert_eq!(
        ProjectAway::new(&["Message", "TimeGenerated"])
            .unwrap_err()
            .0,
        1
    );
    assert_eq!(ProjectAway::new(&["Nope"]).unwrap_err().0, 0);
    let p = ProjectAway::new(&["AdditionalExtensions"]).unwrap();
    assert!(p.removes("AdditionalExtensions"));
    assert!(!p.removes("Message"));
}

#[test]
fn nesting_is_bounded_and_reported_where_it_goes_too_deep() {
    let nested = |n: usize| format!("{}DeviceVendor == \"x\"{}", "(".repeat(n), ")".repeat(n));
    assert!(Predicate::parse(&nested(MAX_DEPTH)).is_ok());
    let (at, message) = error(&nested(MAX_DEPTH + 1));
    assert_eq!(at, MAX_DEPTH, "at the first paren too many");
    assert!(message.contains("nested more than 64 levels"), "{message}");
    // Deep enough to overflow any stack if the parser recursed all the way down.
    assert!(error(&nested(100_000)).1.contains("nested more than"));
    let calls = format!(
        "{}DeviceVendor{} == \"x\"",
        "tolower(".repeat(100),
        ")".repeat(100)
    );
    assert!(error(&calls).1.contains("nested more than"));
    let nots = format!(
        "{}DeviceVendor == \"x\"{}",
        "not(".repeat(100),
        ")".repeat(100)
    );
    assert!(error(&nots).1.contains("nested more than"));
}
