//! Several outputs with KQL `where` filters and `project_away`, through the real binary: the
//! archive gets every row, the filtered output exactly the rows its predicate keeps.

use crate::support as common;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;

use common::{Cefgate, DEADLINE, http_get, wait_for};
use serde_json::Value;

/// A mix of vendors, activities and ports, each with whether the Sentinel output's predicate
/// below keeps it (read off the predicate by hand).
const LINES: &[(&str, bool)] = &[
    // Allowed PAN-OS traffic: the noise the predicate drops.
    (
        "<14>Nov 26 09:59:00 pa-fw CEF:0|Palo Alto Networks|PAN-OS|10.2|end|TRAFFIC|1|act=allow src=10.1.1.5 dst=203.0.113.9 dpt=443 cs1=Allow-Web msg=tag-1",
        false,
    ),
    (
        "<14>Nov 26 09:59:00 pa-fw CEF:0|Palo Alto Networks|PAN-OS|10.2|end|TRAFFIC|1|act=allow src=10.1.1.6 dst=203.0.113.9 dpt=53 msg=tag-2",
        false,
    ),
    // Denied PAN-OS traffic and a threat: kept.
    (
        "<14>Nov 26 09:59:01 pa-fw CEF:0|Palo Alto Networks|PAN-OS|10.2|drop|TRAFFIC|3|act=deny src=198.51.100.7 dst=10.1.1.5 dpt=22 msg=tag-3",
        true,
    ),
    (
        "<14>Nov 26 09:59:02 pa-fw CEF:0|Palo Alto Networks|PAN-OS|10.2|vulnerability|THREAT|8|act=alert src=198.51.100.7 dst=10.1.1.5 dpt=445 msg=tag-4",
        true,
    ),
    // FortiGate local traffic: dropped; forward traffic on 443: kept.
    (
        "<189>Nov 26 09:59:03 fg CEF:0|Fortinet|Fortigate|7.0|00013|traffic:local accept|3|act=accept src=10.0.0.9 dpt=161 msg=tag-5",
        false,
    ),
    (
        "<189>Nov 26 09:59:04 fg CEF:0|Fortinet|Fortigate|7.0|00013|traffic:forward accept|3|act=accept src=10.0.0.9 dpt=443 msg=tag-6",
        true,
    ),
    // Heartbeats by DeviceEventClassID: dropped.
    (
        "<14>Nov 26 09:59:05 sensor CEF:0|Acme|IDS|2.0|heartbeat|Keepalive|0|msg=tag-7",
        false,
    ),
    (
        "<14>Nov 26 09:59:06 sensor CEF:0|Acme|IDS|2.0|4001|Port scan|7|src=203.0.113.66 dpt=8080 msg=tag-8",
        true,
    ),
    // Plain syslog: no DeviceVendor (empty), kept.
    ("<13>Nov 26 09:59:07 web01 nginx[7]: tag-9", true),
];

const SENTINEL_WHERE: &str = r#"not(DeviceVendor == "Palo Alto Networks" and Activity == "TRAFFIC" and DeviceAction == "allow") and not(Activity has "local") and DeviceEventClassID !in~ ("HEARTBEAT")"#;

fn rows(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn tag(row: &Value) -> String {
    let text = row["Message"]
        .as_str()
        .or(row["SyslogMessage"].as_str())
        .unwrap_or_default();
    text.to_string()
}

#[test]
fn the_archive_gets_every_row_and_sentinel_what_its_where_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, sentinel) = (
        dir.path().join("archive.ndjson"),
        dir.path().join("sentinel.ndjson"),
    );
    let config = format!(
        r#"[[listener]]
protocol = "tcp"
address = "127.0.0.1:0"

[[output]]
name = "archive"
type = "file"
path = "{}"

[[output]]
name = "sentinel"
type = "file"
path = "{}"
where = '{SENTINEL_WHERE}'
project_away = ["AdditionalExtensions", "DeviceCustomString1"]

[batch]
max_age_ms = 20

[metrics]
address = "127.0.0.1:0"
"#,
        archive.display(),
        sentinel.display()
    );
    let mut gate = Cefgate::start_raw(dir, archive.clone(), &config, &[]);
    let mut s = TcpStream::connect(gate.tcp.unwrap()).unwrap();
    for (line, _) in LINES {
        writeln!(s, "{line}").unwrap();
    }
    s.flush().unwrap();
    drop(s);
    let want: Vec<String> = LINES
        .iter()
        .filter(|(_, keep)| *keep)
        .map(|(line, _)| {
            line.rsplit_once("tag-")
                .map(|(_, n)| format!("tag-{n}"))
                .unwrap()
        })
        .collect();
    wait_for("both outputs", DEADLINE, || {
        (rows(&archive).len() == LINES.len() && rows(&sentinel).len() == want.len()).then_some(())
    });
    let mut got: Vec<String> = rows(&sentinel).iter().map(tag).collect();
    got.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got, want_sorted);
    // project_away is the sentinel output's only: the archive keeps the columns.
    let archived = rows(&archive);
    let first = archived.iter().find(|r| tag(r) == "tag-1").unwrap();
    assert_eq!(first["DeviceCustomString1"], "Allow-Web");
    for row in rows(&sentinel) {
        assert!(row.get("DeviceCustomString1").is_none(), "{row}");
        assert!(row.get("AdditionalExtensions").is_none(), "{row}");
        assert!(row.get("TimeGenerated").is_some(), "{row}");
    }
    let (_, metrics) = http_get(gate.metrics.unwrap(), "/metrics");
    let dropped = LINES.len() - want.len();
    assert!(
        metrics.contains(&format!(
            "cefgate_output_rows_filtered_total{{output=\"sentinel\"}} {dropped}\n"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "cefgate_output_rows_kept_total{{output=\"archive\"}} {}\n",
            LINES.len()
        )),
        "{metrics}"
    );
    assert!(metrics.contains("cefgate_output_bytes_not_sent_total{output=\"sentinel\"}"));
    assert!(metrics.contains("cefgate_output_bytes_not_sent_total{output=\"archive\"} 0\n"));
    gate.stop();
}

#[test]
fn check_refuses_a_broken_where_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[listener]]\nprotocol = \"udp\"\naddress = \"127.0.0.1:0\"\n\n[[output]]\nname = \"a\"\ntype = \"stdout\"\n\n[[output]]\nname = \"b\"\ntype = \"stdout\"\nwhere = 'DeviceVendor == \"x\" and DestinationPort = 443'\nproject_away = [\"TimeGenerated\"]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cefgate"))
        .args(["check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let p = path.display();
    // Line 12: the value starts at column 10, and the lone `=` is 40 characters into it.
    assert!(
        stderr.contains(&format!(
            "{p}:12:50: in `where`: `=` is no operator: write `==`"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{p}:13:17: in `project_away`: TimeGenerated cannot be removed"
        )),
        "{stderr}"
    );
}

#[test]
fn convert_tries_a_filter_on_captured_lines() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mix.log");
    let text: String = LINES.iter().map(|(l, _)| format!("{l}\n")).collect();
    std::fs::write(&input, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cefgate"))
        .args([
            "convert",
            "--where",
            SENTINEL_WHERE,
            "--project-away",
            "AdditionalExtensions",
        ])
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success());
    let kept = LINES.iter().filter(|(_, k)| *k).count();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), kept);
    assert!(!stdout.contains("AdditionalExtensions"));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!(
            "--where kept {kept} rows and dropped {}",
            LINES.len() - kept
        )),
        "{stderr}"
    );
}

/// A Sentinel outage fills only Sentinel's spool: the archive keeps receiving, and every
/// row reaches Sentinel once the service is back.
#[test]
fn an_outage_of_one_output_does_not_stop_the_other() {
    let emu = common::Emulator::start(&["--outage", "0:3"]);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive.ndjson");
    let spool = dir.path().join("spool");
    let config = format!(
        r#"[[listener]]
protocol = "tcp"
address = "127.0.0.1:0"

[[output]]
name = "archive"
type = "file"
path = "{archive}"

[[output]]
name = "sentinel"
type = "logs-ingestion"
endpoint = "{url}"
authority_host = "{url}"
dcr_id = "dcr-00000000000000000000000000000000"
tenant_id = "00000000-0000-0000-0000-000000000000"
client_id = "00000000-0000-0000-0000-000000000000"
client_secret_env = "CEFGATE_CLIENT_SECRET"
retry_max_secs = 1

[spool]
path = "{spool}"

[batch]
max_age_ms = 20
"#,
        archive = archive.display(),
        url = emu.url,
        spool = spool.display(),
    );
    let mut gate = Cefgate::start_raw(
        dir,
        archive.clone(),
        &config,
        &[("CEFGATE_CLIENT_SECRET", "emulator-client-secret")],
    );
    let mut s = TcpStream::connect(gate.tcp.unwrap()).unwrap();
    for i in 0..50 {
        writeln!(s, "<13>host app: during-outage-{i}").unwrap();
    }
    s.flush().unwrap();
    // The archive has every row while Sentinel answers 503.
    wait_for("the archive", DEADLINE, || {
        (rows(&archive).len() == 50).then_some(())
    });
    assert!(
        emu.rows("Custom-CefGate_Syslog").is_empty(),
        "the outage is on"
    );
    assert!(
        spool.join("sentinel").is_dir(),
        "Sentinel spools in its own folder"
    );
    // After the outage every row reaches Sentinel.
    let delivered = emu.wait_rows("Custom-CefGate_Syslog", 50);
    assert_eq!(delivered.len(), 50);
    let c = gate.stop();
    assert_eq!(c.get("rows_delivered"), 100);
}
