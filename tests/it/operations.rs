//! Running cefgate as a service: `/metrics` and `/ready` while it runs, SIGHUP reloads, and
//! nothing created where it was started.

use crate::support as common;

use std::io::Write;
use std::net::{TcpStream, UdpSocket};

use common::{Cefgate, DEADLINE, UDP_AND_TCP, http_get, signal, wait_for};
use serde_json::Value;

const METRICS: &str = "\n[metrics]\naddress = \"127.0.0.1:0\"\n";

/// The value of one series in a Prometheus text exposition.
fn series(text: &str, name_and_labels: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name_and_labels} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn metrics_after_traffic_count_what_was_sent() {
    let gate = Cefgate::start_with(UDP_AND_TCP, METRICS);
    let (udp, tcp, monitor) = (gate.udp.unwrap(), gate.tcp.unwrap(), gate.metrics.unwrap());
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..5 {
        sock.send_to(format!("<14>udp message {i}").as_bytes(), udp)
            .unwrap();
    }
    let mut stream = TcpStream::connect(tcp).unwrap();
    for i in 0..7 {
        writeln!(stream, "<14>CEF:0|V|P|1|{i}|tcp|3|src=10.0.0.{i}").unwrap();
    }
    stream.flush().unwrap();
    gate.wait_rows(12);

    let text = wait_for("the counters to settle", DEADLINE, || {
        let (status, text) = http_get(monitor, "/metrics");
        assert_eq!(status, 200);
        (text.contains("cefgate_rows_total 12\n")
            && text.contains("cefgate_rows_delivered_total 12\n"))
        .then_some(text)
    });
    assert!(
        text.contains("# TYPE cefgate_rows_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE cefgate_connections_active gauge\n"),
        "{text}"
    );
    assert!(
        text.contains("# HELP cefgate_udp_datagrams_total "),
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            &format!("cefgate_listener_messages_total{{listener=\"udp {udp}\"}}")
        ),
        5
    );
    assert_eq!(
        series(
            &text,
            &format!("cefgate_listener_messages_total{{listener=\"tcp {tcp}\"}}")
        ),
        7
    );
    assert_eq!(
        series(
            &text,
            &format!("cefgate_listener_connections_active{{listener=\"tcp {tcp}\"}}")
        ),
        1
    );
    assert_eq!(series(&text, "cefgate_rows_cef_total"), 7);
    assert_eq!(series(&text, "cefgate_rows_syslog_total"), 5);
    assert_eq!(
        series(
            &text,
            "cefgate_route_rows_total{route=\"CommonSecurityLog\",outcome=\"delivered\"}"
        ),
        7
    );
    assert_eq!(series(&text, "cefgate_ready"), 1);
    assert_eq!(http_get(monitor, "/ready"), (200, "ready\n".to_string()));
    assert_eq!(http_get(monitor, "/health").0, 200);
    assert_eq!(http_get(monitor, "/nothing").0, 404);
}

fn rows_in(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every `n` of `tag-0` .. `tag-{n-1}` once across `rows`.
fn each_once(rows: &[Value], tag: &str, n: usize) {
    for i in 0..n {
        let want = format!("{tag}-{i}");
        let found = rows
            .iter()
            .filter(|r| r["SyslogMessage"].as_str() == Some(want.as_str()))
            .count();
        assert_eq!(found, 1, "{want} found {found} times");
    }
}

#[test]
fn sighup_moves_the_output_and_keeps_every_row_and_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (
        dir.path().join("first.ndjson"),
        dir.path().join("second.ndjson"),
    );
    let config = |path: &std::path::Path| {
        format!(
            "{UDP_AND_TCP}\n[output]\ntype = \"file\"\npath = \"{}\"\n\n[batch]\nmax_age_ms = 20\n",
            path.display()
        )
    };
    let config_path = dir.path().join("cefgate.toml");
    let gate = Cefgate::start_raw(dir, first.clone(), &config(&first), &[]);
    let mut stream = TcpStream::connect(gate.tcp.unwrap()).unwrap();
    for i in 0..200 {
        writeln!(stream, "<14>host app: before-{i}").unwrap();
    }
    stream.flush().unwrap();

    // An invalid file is refused and changes nothing.
    std::fs::write(&config_path, "[output\n").unwrap();
    signal(gate.pid(), "HUP");
    wait_for("the refusal", DEADLINE, || {
        gate.stderr()
            .contains("is not valid; the running configuration stays")
            .then_some(())
    });

    std::fs::write(&config_path, config(&second)).unwrap();
    signal(gate.pid(), "HUP");
    wait_for("the reload", DEADLINE, || {
        gate.stderr().contains("SIGHUP: reload done;").then_some(())
    });
    // The same connection still works: its listener did not change.
    for i in 0..200 {
        writeln!(stream, "<14>host app: after-{i}").unwrap();
    }
    stream.flush().unwrap();
    drop(stream);
    wait_for("the rows after the reload", DEADLINE, || {
        (rows_in(&second).len() >= 200).then_some(())
    });

    let mut gate = gate;
    let counters = gate.stop();
    let (a, b) = (rows_in(&first), rows_in(&second));
    let all: Vec<Value> = a.iter().chain(&b).cloned().collect();
    each_once(&all, "before", 200);
    each_once(&b, "after", 200);
    assert!(
        a.iter()
            .all(|r| r["SyslogMessage"].as_str().unwrap().starts_with("before-")),
        "a row sent after the reload went to the old file"
    );
    assert_eq!(counters.get("rows_total"), 400);
    assert_eq!(counters.get("rows_delivered"), 400);
    assert_eq!(counters.get("connections_accepted"), 1);
}

#[test]
fn sighup_reopens_a_rotated_file() {
    let gate = Cefgate::start(UDP_AND_TCP);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp = gate.udp.unwrap();
    sock.send_to(b"<14>host app: one", udp).unwrap();
    gate.wait_rows(1);
    // logrotate: move the file away, then HUP.
    let rotated = gate.output.with_extension("ndjson.1");
    std::fs::rename(&gate.output, &rotated).unwrap();
    signal(gate.pid(), "HUP");
    wait_for("the reload", DEADLINE, || {
        gate.stderr().contains("SIGHUP: reload done;").then_some(())
    });
    sock.send_to(b"<14>host app: two", udp).unwrap();
    let rows = gate.wait_rows(1);
    assert_eq!(rows[0]["SyslogMessage"], "two");
    assert_eq!(rows_in(&rotated).len(), 1);
}
