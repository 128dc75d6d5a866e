//! End to end: `logger` / TCP -> `cefgate run` -> `cefgate emulate`, for both Azure APIs,
//! with the emulator checking signatures, tokens and limits as Azure does.
#![cfg(feature = "emulator")]

use crate::support as common;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Cefgate, Emulator};
use serde_json::Value;

pub(super) const SECRET: &str = "s3cret-Client-Value-9f8e7d";
/// A shared key that is not the emulator's default (so a test proves it was used).
pub(super) const SHARED_KEY: &str =
    "c2hhcmVkLWtleS1mb3ItY2VmZ2F0ZS10ZXN0cy0wMTIzNDU2Nzg5YWJjZGVmZ2hpams=";

pub(super) fn li_output(emu: &Emulator, extra: &str) -> String {
    format!(
        r#"[output]
type = "logs-ingestion"
endpoint = "{url}"
dcr_id = "dcr-00000000000000000000000000000000"
cef_stream = "Custom-CefGate_CommonSecurityLog"
syslog_stream = "Custom-CefGate_Syslog"
tenant_id = "00000000-0000-0000-0000-000000000000"
client_id = "00000000-0000-0000-0000-000000000000"
client_secret_env = "CEFGATE_CLIENT_SECRET"
authority_host = "{url}"
{extra}
"#,
        url = emu.url
    )
}

pub(super) fn dc_output(emu: &Emulator, extra: &str) -> String {
    format!(
        r#"[output]
type = "data-collector"
workspace_id = "11111111-2222-3333-4444-555555555555"
shared_key_env = "CEFGATE_SHARED_KEY"
endpoint = "{url}"
cef_log_type = "CommonSecurityLog"
syslog_log_type = "Syslog"
{extra}
"#,
        url = emu.url
    )
}

/// cefgate with one TCP listener, `output`, short batches, and the secrets in its environment.
pub(super) fn gate(output: &str, extra: &str) -> Cefgate {
    gate_with_listener(output, "", extra)
}

/// As [`gate`], with more keys for the listener.
pub(super) fn gate_with_listener(output: &str, listener: &str, extra: &str) -> Cefgate {
    let dir = tempfile::tempdir().unwrap();
    let dlq = dir.path().join("dead-letters.ndjson");
    let output = output.replace("{dlq}", &dlq.display().to_string());
    let config = format!(
        "[[listener]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:0\"\n{listener}\n\n{output}\ndead_letter_path = \"{}\"\n\n[batch]\nmax_age_ms = 50\n\n[record]\ncollector_host = \"cefgate-test\"\n{extra}",
        dlq.display()
    );
    Cefgate::start_raw(
        dir,
        dlq,
        &config,
        &[
            ("CEFGATE_CLIENT_SECRET", SECRET),
            ("CEFGATE_SHARED_KEY", SHARED_KEY),
        ],
    )
}

pub(super) fn send(gate: &Cefgate, lines: &[String]) {
    let mut s = TcpStream::connect(gate.tcp.unwrap()).unwrap();
    let mut buf = Vec::new();
    for l in lines {
        writeln!(buf, "{l}").unwrap();
    }
    s.write_all(&buf).unwrap();
}

pub(super) fn logger(gate: &Cefgate, args: &[&str]) {
    let tcp = gate.tcp.unwrap();
    let status = Command::new("logger")
        .args([
            "-n",
            &tcp.ip().to_string(),
            "-P",
            &tcp.port().to_string(),
            "--tcp",
        ])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success());
}

pub(super) fn emulator_args(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--client-secret".into(),
        SECRET.into(),
        "--workspace-id".into(),
        "11111111-2222-3333-4444-555555555555".into(),
        "--shared-key".into(),
        SHARED_KEY.into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

pub(super) fn emulator(extra: &[&str]) -> Emulator {
    let args = emulator_args(extra);
    Emulator::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

pub(super) fn cef(i: usize, extra: &str) -> String {
    format!(
        "<134>Nov 26 09:00:00 fw01 CEF:0|Acme|FW|1.0|{i}|Event {i}|5|src=10.0.0.1 dpt=443 cn1={i} {extra}"
    )
}

#[test]
fn logs_ingestion_end_to_end_with_gzip_and_typed_columns() {
    let emu = emulator(&[]);
    let mut gate = gate(&li_output(&emu, ""), "");
    logger(
        &gate,
        &[
            "--rfc3164",
            "-p",
            "local4.info",
            "-t",
            "fw",
            r"CEF:0|Acme|FW|1.0|100|Port scan|7|src=10.0.0.1 dst=10.0.0.2 spt=5000 dpt=443 in=100 cn1=9000000000 msg=a \= b",
        ],
    );
    logger(
        &gate,
        &[
            "--rfc5424",
            "-p",
            "auth.notice",
            "-t",
            "sshd",
            "--id=77",
            "Accepted publickey",
        ],
    );
    let cef = emu.wait_rows("Custom-CefGate_CommonSecurityLog", 1);
    let row = &cef[0];
    assert_eq!(row["DeviceVendor"], "Acme");
    assert_eq!(row["Activity"], "Port scan");
    assert_eq!(row["SourceIP"], "10.0.0.1");
    assert_eq!(row["DestinationIP"], "10.0.0.2");
    assert_eq!(row["SourcePort"], 5000);
    assert_eq!(row["DestinationPort"], 443);
    assert_eq!(row["ReceivedBytes"], 100);
    assert_eq!(row["FieldDeviceCustomNumber1"], 9_000_000_000i64);
    assert_eq!(row["Message"], "a = b");
    assert_eq!(row["CollectorHostName"], "cefgate-test");
    assert!(row["TimeGenerated"].as_str().unwrap().ends_with('Z'));
    let syslog = emu.wait_rows("Custom-CefGate_Syslog", 1);
    assert_eq!(syslog[0]["Facility"], "auth");
    assert_eq!(syslog[0]["SeverityLevel"], "notice");
    assert_eq!(syslog[0]["ProcessName"], "sshd");
    assert_eq!(syslog[0]["ProcessID"], 77);
    assert_eq!(syslog[0]["HostIP"], "127.0.0.1");
    let counts = emu.counts();
    assert!(counts["gzip_requests"].as_u64().unwrap() >= 2, "{counts}");
    // Each request is counted once, by its status.
    let by_status: u64 = counts["requests"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("logs-ingestion"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        by_status,
        counts["gzip_requests"].as_u64().unwrap(),
        "{counts}"
    );
    assert_eq!(counts["tokens_issued"], 1, "one token, cached");
    assert_eq!(
        counts["columns_dropped"], 0,
        "every column is declared by dcr-template"
    );
    let c = gate.stop();
    assert_eq!(c.get("rows_delivered"), 2);
    assert_eq!(c.get("rows_dead_lettered"), 0);
}

#[test]
fn data_collector_end_to_end_with_a_verified_signature() {
    let emu = emulator(&[]);
    let mut gate = gate(&dc_output(&emu, ""), "");
    logger(
        &gate,
        &[
            "--rfc3164",
            "-p",
            "local4.info",
            "-t",
            "fw",
            "CEF:0|Acme|FW|1.0|100|Café détecté|7|src=10.0.0.1 dpt=443 msg=non-ASCII ü",
        ],
    );
    send(&gate, &["<13>Nov 26 09:00:00 host app: plain".to_string()]);
    let rows = emu.wait_rows("CommonSecurityLog_CL", 1);
    assert_eq!(rows[0]["Activity"], "Café détecté");
    assert_eq!(rows[0]["DestinationPort"], 443);
    assert!(
        rows[0].get("TimeGenerated").is_none(),
        "reserved name renamed"
    );
    assert!(
        rows[0]["CefgateTimeGenerated"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let syslog = emu.wait_rows("Syslog_CL", 1);
    assert_eq!(syslog[0]["SyslogMessage"], "plain");
    let counts = emu.counts();
    assert_eq!(counts["requests"]["data-collector 200"], 2, "{counts}");
    gate.stop();
}

#[test]
fn requests_over_the_size_limit_are_split() {
    let emu = emulator(&["--max-request-bytes", "8192"]);
    let mut gate = gate(&li_output(&emu, "gzip = false"), "");
    let lines: Vec<String> = (0..300).map(|i| cef(i, &"x".repeat(100))).collect();
    send(&gate, &lines);
    let rows = emu.wait_rows("Custom-CefGate_CommonSecurityLog", 300);
    assert_eq!(rows.len(), 300);
    let counts = emu.counts();
    assert!(
        counts["requests"]["logs-ingestion 413"].as_u64().unwrap() >= 1,
        "{counts}"
    );
    let c = gate.stop();
    assert!(c.get("requests_split") >= 1);
    assert_eq!(c.get("rows_delivered"), 300);
    assert_eq!(c.get("rows_dead_lettered"), 0);
}

#[test]
fn a_poisoned_row_is_dead_lettered_and_the_rest_land() {
    let emu = emulator(&["--poison", "POISON-VALUE"]);
    let mut gate = gate(&li_output(&emu, ""), "");
    let lines: Vec<String> = (0..100)
        .map(|i| {
            cef(
                i,
                if i == 37 {
                    "msg=POISON-VALUE"
                } else {
                    "msg=fine"
                },
            )
        })
        .collect();
    send(&gate, &lines);
    let rows = emu.wait_rows("Custom-CefGate_CommonSecurityLog", 99);
    let c = gate.stop();
    assert_eq!(rows.len(), 99);
    assert!(rows.iter().all(|r| r["Message"] == "fine"));
    assert_eq!(c.get("rows_dead_lettered"), 1);
    let dlq = std::fs::read_to_string(&gate.output).unwrap();
    let dead: Vec<Value> = dlq
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["row"]["Message"], "POISON-VALUE");
    assert_eq!(dead[0]["route"], "Custom-CefGate_CommonSecurityLog");
    assert!(
        dead[0]["error"].as_str().unwrap().contains("HTTP 400"),
        "{}",
        dead[0]
    );
}

#[test]
fn retry_after_is_honoured() {
    let emu = emulator(&[
        "--fail-first",
        "1",
        "--fault-statuses",
        "429",
        "--retry-after-secs",
        "1.5",
    ]);
    let mut gate = gate(&li_output(&emu, ""), "");
    let sent = Instant::now();
    send(&gate, &[cef(1, "")]);
    emu.wait_rows("Custom-CefGate_CommonSecurityLog", 1);
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "delivered after {waited:?}, before Retry-After"
    );
    let counts = emu.counts();
    assert_eq!(counts["requests"]["logs-ingestion 429"], 1, "{counts}");
    let c = gate.stop();
    assert_eq!(c.get("requests_throttled"), 1);
    assert_eq!(c.get("rows_delivered"), 1);
}

#[test]
fn server_errors_are_retried_until_delivered_for_both_apis() {
    for output in ["li", "dc"] {
        let emu = emulator(&["--fail-first", "3", "--fault-statuses", "500"]);
        let config = if output == "li" {
            li_output(&emu, "")
        } else {
            dc_output(&emu, "")
        };
        let mut gate = gate(&config, "");
        send(&gate, &[cef(1, "")]);
        let table = if output == "li" {
            "Custom-CefGate_CommonSecurityLog"
        } else {
            "CommonSecurityLog_CL"
        };
        emu.wait_rows(table, 1);
        let c = gate.stop();
        assert_eq!(c.get("requests_failed"), 3, "{output}");
        assert_eq!(c.get("rows_delivered"), 1, "{output}");
    }
}

#[test]
fn expiring_tokens_are_refreshed_before_they_run_out() {
    let emu = emulator(&["--token-lifetime-secs", "2"]);
    let mut gate = gate(&li_output(&emu, ""), "");
    for i in 0..5 {
        send(&gate, &[cef(i, "")]);
        emu.wait_rows("Custom-CefGate_CommonSecurityLog", i + 1);
        std::thread::sleep(Duration::from_millis(700)); // spread the sends over ~3.5 s
    }
    let counts = emu.counts();
    assert!(counts["tokens_issued"].as_u64().unwrap() >= 2, "{counts}");
    assert!(
        counts["requests"].get("logs-ingestion 401").is_none(),
        "no expired token was used: {counts}"
    );
    gate.stop();
}

#[test]
fn managed_and_workload_identity_get_tokens() {
    let emu = emulator(&[]);
    let mi = li_output(&emu, &format!("credential = \"managed-identity\"\nmanaged_identity_endpoint = \"{}/metadata/identity/oauth2/token\"", emu.url))
        .replace("client_secret_env = \"CEFGATE_CLIENT_SECRET\"\n", "")
        .replace("tenant_id = \"00000000-0000-0000-0000-000000000000\"\n", "");
    let mut gate_mi = gate(&mi, "");
    send(&gate_mi, &[cef(1, "msg=managed")]);
    emu.wait_rows("Custom-CefGate_CommonSecurityLog", 1);
    gate_mi.stop();

    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("token");
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.federated.assertion").unwrap();
    let wi = li_output(
        &emu,
        &format!(
            "credential = \"workload-identity\"\nfederated_token_file = \"{}\"",
            token_file.display()
        ),
    )
    .replace("client_secret_env = \"CEFGATE_CLIENT_SECRET\"\n", "");
    let mut gate_wi = gate(&wi, "");
    send(&gate_wi, &[cef(2, "msg=workload")]);
    let rows = emu.wait_rows("Custom-CefGate_CommonSecurityLog", 2);
    assert_eq!(rows[1]["Message"], "workload");
    gate_wi.stop();
    assert_eq!(emu.counts()["tokens_issued"], 2);
}

#[test]
fn a_wrong_dcr_stops_the_route_loudly_and_keeps_the_rows() {
    let emu = emulator(&[]);
    let config = li_output(&emu, "").replace(
        "dcr-00000000000000000000000000000000",
        "dcr-ffffffffffffffffffffffffffffffff",
    );
    let mut gate = gate(&config, "[metrics]\naddress = \"127.0.0.1:0\"\n");
    let monitor = gate.metrics.expect("the metrics address is logged");
    assert_eq!(common::http_get(monitor, "/ready"), (200, "ready\n".into()));
    send(&gate, &[cef(1, ""), cef(2, "")]);
    common::wait_for("the route to stop", common::DEADLINE, || {
        gate.stderr().contains("route stopped").then_some(())
    });
    // An operator's probe sees it: /ready turns 503 and names the route; /metrics counts
    // the 404 by status and error code.
    let (status, body) = common::http_get(monitor, "/ready");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("route Custom-CefGate_CommonSecurityLog is stopped"),
        "{body}"
    );
    assert_eq!(common::http_get(monitor, "/health").0, 200);
    let (_, metrics) = common::http_get(monitor, "/metrics");
    assert!(
        metrics.contains("cefgate_http_responses_total{output=\"logs-ingestion\",route=\"Custom-CefGate_CommonSecurityLog\",status=\"404\""),
        "{metrics}"
    );
    assert!(metrics.contains("cefgate_ready 0\n"), "{metrics}");
    let c = gate.stop();
    assert_eq!(c.get("rows_dead_lettered"), 2);
    let stderr = gate.stderr();
    assert!(stderr.contains("check endpoint, dcr_id"), "{stderr}");
}

#[test]
fn secrets_never_appear_in_logs_or_errors() {
    // A wrong client secret: the token endpoint refuses; cefgate says so without the secret.
    let emu = Emulator::start(&["--client-secret", "the-right-one"]);
    // Rows that cannot be delivered are held until the shutdown deadline, then dead-lettered.
    let mut gate = gate(
        &li_output(&emu, ""),
        "[pipeline]\nshutdown_timeout_secs = 2\n",
    );
    send(&gate, &[cef(1, "")]);
    common::wait_for("the refusal to be reported", common::DEADLINE, || {
        gate.stderr().contains("AADSTS7000215").then_some(())
    });
    let c = gate.stop();
    assert_eq!(c.get("rows_delivered"), 0);
    assert_eq!(
        c.get("rows_dead_lettered"),
        1,
        "held, then kept at shutdown"
    );
    let mut all = gate.stderr();
    all.push_str(&emu.stderr());
    assert!(all.contains("invalid_client"), "{all}");
    assert!(!all.contains(SECRET), "the client secret leaked:\n{all}");

    // A wrong shared key: 403 from the emulator, reported as a key or clock problem.
    let emu = emulator(&[]);
    let config = dc_output(&emu, "").replace("CEFGATE_SHARED_KEY", "CEFGATE_OTHER_KEY");
    let dir = tempfile::tempdir().unwrap();
    let dlq = dir.path().join("dlq.ndjson");
    let full = format!(
        "[[listener]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n{config}\ndead_letter_path = \"{}\"\n[batch]\nmax_age_ms = 50\n[pipeline]\nshutdown_timeout_secs = 2\n",
        dlq.display()
    );
    let wrong_key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    let mut gate = Cefgate::start_raw(dir, dlq, &full, &[("CEFGATE_OTHER_KEY", wrong_key)]);
    send(&gate, &[cef(1, "")]);
    common::wait_for("the 403 to be reported", common::DEADLINE, || {
        gate.stderr().contains("shared key").then_some(())
    });
    gate.stop();
    let all = gate.stderr();
    assert!(all.contains("HTTP 403") && all.contains("clock"), "{all}");
    assert!(
        !all.contains(wrong_key) && !all.contains(SHARED_KEY),
        "a shared key leaked:\n{all}"
    );
}

#[test]
fn logs_ingestion_values_over_64_kb_are_cut_with_a_marker_and_counted() {
    let emu = emulator(&[]);
    let mut gate = gate_with_listener(&li_output(&emu, ""), "max_message_bytes = 200000", "");
    let long = "y".repeat(70_000);
    send(&gate, &[cef(1, &format!("msg={long}")), cef(2, "")]);
    let rows = emu.wait_rows("Custom-CefGate_CommonSecurityLog", 2);
    let message = rows
        .iter()
        .find(|r| r["FieldDeviceCustomNumber1"] == 1)
        .unwrap()["Message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.len() <= 65_536, "{} bytes", message.len());
    assert!(message.ends_with("...[truncated by cefgate]"));
    let c = gate.stop();
    assert_eq!(c.get("values_truncated"), 1);
    assert_eq!(c.get("rows_delivered"), 2);
}

/// Four rows of about 30 KB, sent at once so that they travel in one request (with one
/// decode thread, so that they end in one batch).
const ONE_DECODE_THREAD: &str = "[pipeline]\nworkers = 1\n";

fn four_large_rows() -> Vec<String> {
    (0..4)
        .map(|i| cef(i, &format!("msg={}", "z".repeat(30_000))))
        .collect()
}

#[test]
fn a_data_collector_404_on_a_large_request_is_split_once_and_delivered() {
    let emu = emulator(&["--data-collector-max-bytes", "100000"]);
    let mut gate = gate_with_listener(
        &dc_output(&emu, ""),
        "max_message_bytes = 200000",
        ONE_DECODE_THREAD,
    );
    send(&gate, &four_large_rows());
    let rows = emu.wait_rows("CommonSecurityLog_CL", 4);
    assert_eq!(rows.len(), 4);
    let counts = emu.counts();
    assert!(
        counts["requests"]["data-collector 404"].as_u64().unwrap() >= 1,
        "{counts}"
    );
    let c = gate.stop();
    assert_eq!(c.get("requests_split"), 1);
    assert_eq!(c.get("rows_dead_lettered"), 0);
}

#[test]
fn a_data_collector_404_after_the_split_stops_the_route() {
    let emu = emulator(&["--data-collector-max-bytes", "20000"]);
    let mut gate = gate_with_listener(
        &dc_output(&emu, ""),
        "max_message_bytes = 200000",
        ONE_DECODE_THREAD,
    );
    send(&gate, &four_large_rows());
    common::wait_for("the route to stop", common::DEADLINE, || {
        gate.stderr().contains("route stopped").then_some(())
    });
    let c = gate.stop();
    assert_eq!(
        c.get("requests_split"),
        1,
        "split once, not down to single rows"
    );
    assert_eq!(c.get("rows_dead_lettered"), 4);
    assert!(emu.rows("CommonSecurityLog_CL").is_empty());
}

#[test]
fn a_time_azure_would_replace_is_kept_in_cefgate_received_time() {
    let emu = emulator(&[]);
    let mut gate = gate(
        &li_output(&emu, ""),
        "time_generated = [\"rt\", \"received\"]",
    );
    // 2020-01-01T00:00:00Z, years outside the 2-day window; and a row on time.
    send(&gate, &[cef(1, "rt=1577836800000"), cef(2, "")]);
    let rows = emu.wait_rows("Custom-CefGate_CommonSecurityLog", 2);
    let row = |n: i64| {
        rows.iter()
            .find(|r| r["FieldDeviceCustomNumber1"] == n)
            .unwrap()
            .clone()
    };
    let old = row(1);
    assert!(
        old["CefgateTimeGenerated"]
            .as_str()
            .unwrap()
            .starts_with("2020-01-01T00:00:00"),
        "{old}"
    );
    assert!(
        !old["TimeGenerated"].as_str().unwrap().starts_with("2020"),
        "the emulator replaced it, as Azure does: {old}"
    );
    assert!(row(2).get("CefgateTimeGenerated").is_none());
    assert_eq!(emu.counts()["time_generated_replaced"], 1);
    let c = gate.stop();
    assert_eq!(c.get("rows_time_outside_window"), 1);
    assert!(
        gate.stderr()
            .contains("Azure replaces with the ingestion time")
    );
}
