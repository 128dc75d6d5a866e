//! The parity corpus (`fixtures/parity/`): lines Microsoft published together with the rows
//! its ingestion stored for them. Every column such a row shows is compared with the row
//! `cefgate convert` builds from the same line, through the real binary. A value may differ
//! only where `fixtures/parity/differences.tsv` says so, with cefgate's exact value and the
//! reason; an entry that no longer matches a difference fails too, so the table stays true.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Columns of the exported rows that say nothing about how a line is mapped, and how each
/// is accounted for.
const NOT_FROM_THE_LINE: &[(&str, &str)] = &[
    (
        "TimeGenerated",
        "the time of ingestion; cefgate's receive time is pinned here",
    ),
    ("CollectorHostName", "the collector's own name"),
    ("MG", "the legacy agent's management group"),
    // Checked below: the table, and SourceSystem against the DCR transform.
    ("Type", "the table"),
    ("SourceSystem", "set by the DCR transform"),
];

fn parity() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/parity")
}

/// `line -> column -> value`, and the `# sender:` of the file, if any.
type Expected = BTreeMap<usize, BTreeMap<String, String>>;

fn expected(path: &Path) -> (Expected, Option<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut rows = Expected::new();
    let mut sender = None;
    for line in text.lines() {
        if let Some(s) = line.strip_prefix("# sender: ") {
            sender = Some(s.trim().to_string());
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let mut f = line.splitn(3, '\t');
        let (n, column, value) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap_or(""));
        rows.entry(n.parse().unwrap())
            .or_default()
            .insert(column.to_string(), value.to_string());
    }
    (rows, sender)
}

/// `(file, line or "*", column) -> cefgate's value`.
fn differences() -> BTreeMap<(String, String, String), String> {
    let text = std::fs::read_to_string(parity().join("differences.tsv")).unwrap();
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 5, "differences.tsv: 5 fields expected: {line:?}");
        assert!(
            !f[4].trim().is_empty(),
            "differences.tsv: no reason: {line:?}"
        );
        let key = (f[0].to_string(), f[1].to_string(), f[2].to_string());
        assert!(
            out.insert(key, f[3].to_string()).is_none(),
            "twice: {line:?}"
        );
    }
    out
}

fn text_of(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn convert(log: &Path, sender: Option<&str>) -> Vec<Value> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cefgate"));
    cmd.args(["convert", "--received-at", "2026-11-26T10:00:00Z"]);
    cmd.args(["--collector-host", "cefgate-test"]);
    if let Some(s) = sender {
        cmd.args(["--sender", s]);
    }
    let out = cmd.arg(log).output().expect("cefgate runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn dcr_transforms() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cefgate"))
        .arg("dcr-template")
        .output()
        .expect("cefgate runs");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn microsofts_ingested_rows_match_cefgates_column_for_column() {
    let differences = differences();
    let transforms = dcr_transforms();
    let mut used = BTreeSet::new();
    let mut failures = Vec::new();
    let mut compared = 0;
    let mut logs: Vec<PathBuf> = std::fs::read_dir(parity())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    assert!(logs.len() >= 6, "parity files missing: {logs:?}");
    for log in &logs {
        let name = log.file_stem().unwrap().to_str().unwrap().to_string();
        let (want, sender) = expected(&log.with_extension("rows.tsv"));
        let rows = convert(log, sender.as_deref());
        assert_eq!(rows.len(), want.len(), "{name}: one row per line");
        for (n, columns) in &want {
            let row = &rows[n - 1];
            for (column, value) in columns {
                if column == "Type" {
                    assert_eq!(value, "CommonSecurityLog", "{name}:{n}");
                    assert!(row.get("DeviceVendor").is_some(), "{name}:{n}: {row}");
                    assert!(row.get("SyslogMessage").is_none(), "{name}:{n}: {row}");
                    continue;
                }
                if column == "SourceSystem" {
                    let set = format!("extend SourceSystem = '{value}'");
                    assert!(
                        transforms.contains(&set),
                        "{name}:{n}: no `{set}` in the DCR"
                    );
                    continue;
                }
                if NOT_FROM_THE_LINE.iter().any(|(c, _)| c == column) {
                    continue;
                }
                compared += 1;
                let got = text_of(row.get(column));
                if &got == value {
                    continue;
                }
                let keys = [
                    (name.clone(), n.to_string(), column.clone()),
                    (name.clone(), "*".to_string(), column.clone()),
                ];
                match keys.iter().find(|k| differences.get(*k) == Some(&got)) {
                    Some(k) => {
                        used.insert(k.clone());
                    }
                    None => failures.push(format!(
                        "{name}:{n} {column}: Microsoft stored {value:?}, cefgate wrote {got:?}"
                    )),
                }
            }
        }
    }
    for key in differences.keys() {
        if !used.contains(key) {
            failures.push(format!("differences.tsv: {key:?} no longer differs"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compared > 1000, "only {compared} values compared");
    eprintln!(
        "{compared} values compared, {} documented differences",
        used.len()
    );
}
