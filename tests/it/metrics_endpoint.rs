//! The metrics endpoint (`[metrics] address`) under hostile clients, with the real binary
//! over loopback sockets: its connection cap, its timeouts, its bearer token, and the
//! labels of what it serves.

use crate::support as common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Cefgate, DEADLINE, UDP_AND_TCP, wait_for};

const METRICS: &str = "\n[metrics]\naddress = \"127.0.0.1:0\"\n";

/// One HTTP/1.1 request (`Connection: close`) with extra header lines; the status, the
/// header block and the body. Panics when no answer comes within `within`.
fn request(
    address: SocketAddr,
    path: &str,
    headers: &[&str],
    within: Duration,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect_timeout(&address, within)
        .unwrap_or_else(|e| panic!("GET {path}: no connection within {within:?}: {e}"));
    stream.set_read_timeout(Some(within)).unwrap();
    let mut text = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for h in headers {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes()).unwrap();
    let mut answer = Vec::new();
    if let Err(e) = stream.read_to_end(&mut answer) {
        panic!(
            "no whole answer to GET {path} within {within:?}: {e} (read {:?})",
            String::from_utf8_lossy(&answer)
        );
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// `cefgate_<name> <value>` from a Prometheus text page.
fn metric(page: &str, name: &str) -> Option<u64> {
    let prefix = format!("cefgate_{name} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// Descriptors the process holds now.
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Lets this test process open as many sockets as its hard limit allows.
fn raise_own_file_limit() {
    // SAFETY: plain libc calls on a struct we own.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Whether the peer closed `stream` (EOF or reset) within `within`; `false` when it is
/// still open at the end or it answered something.
fn closed_by_peer(stream: &mut TcpStream, within: Duration) -> Result<(), String> {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    match stream.read(&mut buf) {
        Ok(0) => Ok(()),
        Ok(n) => Err(format!(
            "answered instead: {:?}",
            String::from_utf8_lossy(&buf[..n])
        )),
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => Ok(()),
        Err(e) => Err(format!("still open after {within:?} ({e})")),
    }
}

fn config_with_file_output(dir: &tempfile::TempDir, listeners: &str, metrics: &str) -> String {
    format!(
        "{listeners}\n[output]\ntype = \"file\"\npath = \"{}\"\n\n[batch]\nmax_age_ms = 20\n\n[record]\ncollector_host = \"cefgate-test\"\n{metrics}",
        dir.path().join("rows.ndjson").display()
    )
}

#[test]
fn a_thousand_idle_metrics_connections_leave_syslog_and_health_working() {
    raise_own_file_limit();
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("rows.ndjson");
    let config = config_with_file_output(&dir, UDP_AND_TCP, METRICS);
    // 256 descriptors: what 1,000 idle clients would take several times over.
    let gate = Cefgate::start_with_file_limit(dir, output, &config, 256);
    let metrics = gate.metrics.unwrap();
    let before = open_descriptors(gate.pid());

    let mut idle = Vec::new();
    for _ in 0..1000 {
        // A burst overflows the kernel's accept queue now and then, and that SYN is sent
        // again after a second: 5 s is time enough for that, not for a port that is stuck.
        match TcpStream::connect_timeout(&metrics, Duration::from_secs(5)) {
            Ok(s) => idle.push(s),
            Err(e) => {
                eprintln!(
                    "the metrics port took {} connections, then: {e}",
                    idle.len()
                );
                break;
            }
        }
    }
    let during = open_descriptors(gate.pid());

    // /health, asked after the 1,000 (the kernel hands connections over in order).
    eprintln!(
        "{} idle metrics connections; cefgate holds {during} descriptors (from {before})",
        idle.len()
    );
    let started = Instant::now();
    let (status, _, body) = request(metrics, "/health", &[], Duration::from_secs(1));
    let health = started.elapsed();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert!(health < Duration::from_secs(1), "/health took {health:?}");

    // Syslog over TCP is still accepted, and its row written.
    let started = Instant::now();
    let mut syslog = TcpStream::connect(gate.tcp.unwrap()).unwrap();
    syslog
        .write_all(b"<134>Jan  1 00:00:00 fw app: after the flood\n")
        .unwrap();
    let rows = wait_for(
        "the row sent during the flood",
        Duration::from_secs(5),
        || {
            let rows = gate.rows();
            (!rows.is_empty()).then_some(rows)
        },
    );
    let syslog_time = started.elapsed();
    assert!(
        rows[0]["SyslogMessage"]
            .as_str()
            .unwrap()
            .contains("after the flood")
    );

    let (status, _, page) = request(metrics, "/metrics", &[], Duration::from_secs(1));
    assert_eq!(status, 200);
    let refused = metric(&page, "metrics_connections_refused_total").unwrap();
    let active = metric(&page, "metrics_connections_active").unwrap();
    eprintln!(
        "with 1,000 idle metrics connections: /health {health:?}, syslog row {syslog_time:?}, \
         descriptors {before} before and {during} during, {refused} refused, {active} active"
    );
    assert_eq!(idle.len(), 1000, "not every idle connection was taken");
    assert!(refused >= 1000 - 32, "{refused} refused");
    assert!(active <= 32, "{active} active");
    assert!(
        during <= before + 34,
        "{during} descriptors open (from {before})"
    );
    drop(idle);
}

#[test]
fn a_client_sending_headers_one_byte_a_second_is_dropped() {
    let gate = Cefgate::start_with(UDP_AND_TCP, METRICS);
    let metrics = gate.metrics.unwrap();
    let mut slow = TcpStream::connect(metrics).unwrap();
    let mut writer = slow.try_clone().unwrap();
    // 60 bytes: a minute at one byte a second, far more than the limits allow.
    let request = b"GET /health HTTP/1.1\r\nHost: cefgate\r\nX-Slow: aaaaaaaaaaaaaaaa\r\n\r\n";
    let sender = std::thread::spawn(move || {
        let started = Instant::now();
        for byte in request {
            if writer.write_all(&[*byte]).is_err() {
                return Some(started.elapsed());
            }
            // The pace under test, not a wait for something.
            std::thread::sleep(Duration::from_secs(1));
        }
        None
    });
    let started = Instant::now();
    let verdict = closed_by_peer(&mut slow, Duration::from_secs(15));
    let dropped_after = started.elapsed();
    eprintln!("a one-byte-a-second client: {verdict:?} after {dropped_after:?}");
    verdict.unwrap();
    assert!(dropped_after < Duration::from_secs(12), "{dropped_after:?}");
    let _ = slow.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    // The endpoint still answers.
    assert_eq!(request_status(metrics, "/health"), 200);
}

fn request_status(address: SocketAddr, path: &str) -> u16 {
    request(address, path, &[], Duration::from_secs(5)).0
}

#[test]
fn idle_and_kept_alive_connections_are_closed_within_seconds() {
    let gate = Cefgate::start_with(UDP_AND_TCP, METRICS);
    let metrics = gate.metrics.unwrap();
    // Connected, never a byte.
    let mut silent = TcpStream::connect(metrics).unwrap();
    // One answered request, then kept alive and idle.
    let mut kept = TcpStream::connect(metrics).unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: cefgate\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let answer = wait_for("the kept-alive answer", DEADLINE, || {
        let mut buf = [0u8; 1024];
        kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = kept.read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
        String::from_utf8_lossy(&got)
            .ends_with("ok\n")
            .then(|| String::from_utf8_lossy(&got).into_owned())
    });
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let started = Instant::now();
    closed_by_peer(&mut silent, Duration::from_secs(15)).unwrap();
    closed_by_peer(&mut kept, Duration::from_secs(15)).unwrap();
    let closed = started.elapsed();
    eprintln!("idle connections closed after {closed:?}");
    assert!(closed < Duration::from_secs(12), "{closed:?}");
}

/// Writes a file only its owner can read (as a secret file should be: no warning).
fn write_secret(path: &std::path::Path, contents: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A token file, and the `[metrics]` section that names it.
fn token_section(dir: &std::path::Path, token: &str) -> String {
    let path = dir.join("metrics-token");
    write_secret(&path, token);
    format!(
        "\n[metrics]\naddress = \"127.0.0.1:0\"\nbearer_token_file = \"{}\"\n",
        path.display()
    )
}

#[test]
fn a_bearer_token_guards_every_endpoint_but_health() {
    const TOKEN: &str = "mT0k-3n.Secret_value~42";
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("rows.ndjson");
    let metrics_section = token_section(dir.path(), &format!("{TOKEN}\n"));
    let config = config_with_file_output(&dir, UDP_AND_TCP, &metrics_section);
    let gate = Cefgate::start_raw(dir, output, &config, &[]);
    let metrics = gate.metrics.unwrap();
    let within = Duration::from_secs(5);
    let right = format!("Authorization: Bearer {TOKEN}");
    let lower = format!("authorization: bearer {TOKEN}");

    for path in ["/metrics", "/ready", "/nowhere"] {
        for headers in [
            vec![],
            vec!["Authorization: Bearer wrong-token"],
            vec!["Authorization: Bearer "],
            vec!["Authorization: Basic dXNlcjpwYXNz"],
        ] {
            let (status, head, body) = request(metrics, path, &headers, within);
            assert_eq!(status, 401, "{path} with {headers:?}: {head}\n{body}");
            assert!(
                head.to_ascii_lowercase()
                    .contains("\r\nwww-authenticate: bearer"),
                "{head}"
            );
            assert!(!body.contains(TOKEN) && !head.contains(TOKEN));
        }
    }
    let (status, _, page) = request(metrics, "/metrics", &[&right], within);
    assert_eq!(status, 200);
    assert!(
        page.contains("# TYPE cefgate_rows_delivered_total counter"),
        "{page}"
    );
    assert!(!page.contains(TOKEN));
    assert_eq!(request(metrics, "/metrics", &[&lower], within).0, 200);
    assert_eq!(request(metrics, "/ready", &[&right], within).0, 200);
    assert_eq!(request(metrics, "/nowhere", &[&right], within).0, 404);
    for headers in [vec![], vec!["Authorization: Bearer wrong-token"]] {
        let (status, _, body) = request(metrics, "/health", &headers, within);
        assert_eq!((status, body.as_str()), (200, "ok\n"));
    }
    let (_, _, page) = request(metrics, "/metrics", &[&right], within);
    assert!(
        metric(&page, "metrics_requests_unauthorized_total").unwrap() >= 12,
        "{page}"
    );
    assert!(!gate.stderr().contains(TOKEN), "{}", gate.stderr());
}

fn check(config: &str, dir: &std::path::Path) -> (bool, String) {
    let path = dir.join("cefgate.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cefgate"))
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const BASE: &str =
    "[[listener]]\nprotocol = \"udp\"\naddress = \"127.0.0.1:0\"\n\n[output]\ntype = \"stdout\"\n";

#[test]
fn an_empty_or_unreadable_token_file_is_reported_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cefgate.toml");
    for (contents, expect) in [
        (Some("\n"), "is empty"),
        (Some(""), "is empty"),
        (None, "No such file"),
        (Some("two words\n"), "visible"),
    ] {
        let token = dir.path().join("token");
        let _ = std::fs::remove_file(&token);
        if let Some(c) = contents {
            std::fs::write(&token, c).unwrap();
        }
        let config = format!(
            "{BASE}\n[metrics]\naddress = \"127.0.0.1:9464\"\nbearer_token_file = \"{}\"\n",
            token.display()
        );
        let (ok, stderr) = check(&config, dir.path());
        assert!(!ok, "{contents:?} was accepted");
        // Line 10, column 21: the value of bearer_token_file.
        let place = format!("{}:10:21: ", file.display());
        assert!(stderr.contains(&place), "{contents:?}: {stderr}");
        assert!(stderr.contains("bearer_token_file"), "{stderr}");
        assert!(stderr.contains(expect), "{contents:?}: {stderr}");
        if let Some(c) = contents {
            let c = c.trim();
            assert!(c.is_empty() || !stderr.contains(c), "{stderr}");
        }
    }
    // A folder is no token file either.
    let config = format!(
        "{BASE}\n[metrics]\naddress = \"127.0.0.1:9464\"\nbearer_token_file = \"{}\"\n",
        dir.path().display()
    );
    let (ok, stderr) = check(&config, dir.path());
    assert!(!ok && stderr.contains(":10:21: "), "{stderr}");
}

#[test]
fn check_warns_when_metrics_bind_beyond_loopback_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    write_secret(&token, "abc\n");
    let with = |address: &str, token_line: &str| {
        format!("{BASE}\n[metrics]\naddress = \"{address}\"\n{token_line}")
    };
    let token_line = format!("bearer_token_file = \"{}\"\n", token.display());
    for address in ["0.0.0.0:9464", "[::]:9464", "192.0.2.10:9464"] {
        let (ok, stderr) = check(&with(address, ""), dir.path());
        assert!(ok, "{stderr}");
        assert!(
            stderr.contains("warning: the metrics endpoint")
                && stderr.contains("bearer_token_file"),
            "{address}: {stderr}"
        );
        // Line 9, column 11: the value of address.
        assert!(stderr.contains(":9:11: "), "{stderr}");
        let (ok, stderr) = check(&with(address, &token_line), dir.path());
        assert!(ok && !stderr.contains("warning"), "{address}: {stderr}");
    }
    for address in ["127.0.0.1:9464", "[::1]:9464", "127.0.0.5:9464"] {
        let (ok, stderr) = check(&with(address, ""), dir.path());
        assert!(ok && !stderr.contains("warning"), "{address}: {stderr}");
    }
}

/// The Logs Ingestion output named `primary`: its HTTP answers are counted under that name.
#[cfg(feature = "emulator")]
#[test]
fn http_responses_carry_the_output_name() {
    const SECRET: &str = "s3cret-Client-Value-9f8e7d";
    let emu = common::Emulator::start(&["--client-secret", SECRET]);
    let dir = tempfile::tempdir().unwrap();
    let dlq = dir.path().join("dead-letters.ndjson");
    let config = format!(
        r#"[[listener]]
protocol = "tcp"
address = "127.0.0.1:0"

[output]
name = "primary"
type = "logs-ingestion"
endpoint = "{url}"
dcr_id = "dcr-00000000000000000000000000000000"
cef_stream = "Custom-CefGate_CommonSecurityLog"
syslog_stream = "Custom-CefGate_Syslog"
tenant_id = "00000000-0000-0000-0000-000000000000"
client_id = "00000000-0000-0000-0000-000000000000"
client_secret_env = "CEFGATE_CLIENT_SECRET"
authority_host = "{url}"
dead_letter_path = "{dlq}"

[batch]
max_age_ms = 50
{METRICS}"#,
        url = emu.url,
        dlq = dlq.display()
    );
    let gate = Cefgate::start_raw(dir, dlq, &config, &[("CEFGATE_CLIENT_SECRET", SECRET)]);
    let mut s = TcpStream::connect(gate.tcp.unwrap()).unwrap();
    s.write_all(b"<134>Jan  1 00:00:00 fw app: one row\n")
        .unwrap();
    emu.wait_rows("Custom-CefGate_Syslog", 1);
    let metrics = gate.metrics.unwrap();
    let page = wait_for("the answer counted", DEADLINE, || {
        let (_, _, page) = request(metrics, "/metrics", &[], Duration::from_secs(5));
        page.contains("cefgate_http_responses_total{")
            .then_some(page)
    });
    assert!(
        page.contains(
            "cefgate_http_responses_total{output=\"primary\",route=\"Custom-CefGate_Syslog\",status=\"204\",error_code=\"\"} 1\n"
        ),
        "{page}"
    );
    assert!(!page.contains("output=\"logs-ingestion\""), "{page}");
}
