//! The DCR template declares every column the rows carry, with a type that fits the value:
//! checked against the rows `cefgate convert` makes of every fixture.

use std::collections::HashMap;
use std::process::Command;

use serde_json::Value;

fn cefgate(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cefgate"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn declared(template: &Value, stream: &str) -> HashMap<String, String> {
    template["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Microsoft.Insights/dataCollectionRules")
        .unwrap()["properties"]["streamDeclarations"][stream]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn every_column_of_every_fixture_row_is_declared_with_a_fitting_type() {
    let template: Value = serde_json::from_str(&cefgate(&["dcr-template"])).unwrap();
    let csl = declared(&template, "Custom-CefGate_CommonSecurityLog");
    let syslog = declared(&template, "Custom-CefGate_Syslog");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut logs: Vec<String> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| p.display().to_string())
        .collect();
    logs.sort();
    let mut args = vec!["convert", "--received-at", "2026-11-26T10:00:00Z"];
    args.extend(logs.iter().map(String::as_str));
    let rows = cefgate(&args);
    let mut checked = 0;
    for line in rows.lines() {
        let row: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
        let columns = if row.contains_key("SyslogMessage") {
            &syslog
        } else {
            &csl
        };
        for (name, value) in &row {
            let t = columns
                .get(name)
                .unwrap_or_else(|| panic!("{name} is not declared (row {line})"));
            let fits = match value {
                Value::String(s) if t == "datetime" => {
                    chrono::DateTime::parse_from_rfc3339(s).is_ok()
                }
                Value::String(_) => t == "string",
                Value::Number(n) if t == "int" => {
                    n.as_i64().is_some_and(|v| i32::try_from(v).is_ok())
                }
                Value::Number(n) if t == "long" => n.as_i64().is_some(),
                Value::Number(_) => t == "real",
                _ => false,
            };
            assert!(fits, "{name}: {value} does not fit {t}");
            checked += 1;
        }
    }
    assert!(checked > 1000, "only {checked} values checked");
}

#[test]
fn streams_follow_the_output_settings() {
    let t: Value = serde_json::from_str(&cefgate(&[
        "dcr-template",
        "--custom-tables",
        "--cef-stream",
        "Custom-X",
        "--syslog-stream",
        "Custom-Y",
    ]))
    .unwrap();
    assert!(!declared(&t, "Custom-X").is_empty());
    assert!(!declared(&t, "Custom-Y").is_empty());
    assert_eq!(t["outputs"]["cef_stream"]["value"], "Custom-X");
}
