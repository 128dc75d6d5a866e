//! Stopping `cefgate run`: what a sender had not finished, listeners that cannot bind, and
//! a shutdown that has nowhere to put what it holds. Each ends in bounded time and says
//! what happened to every row.

use crate::support as common;

use std::io::Write;
use std::net::TcpStream;

use common::{Cefgate, DEADLINE, http_get, wait_for};

const TCP: &str = "[[listener]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:0\"\n";
const METRICS: &str = "\n[metrics]\naddress = \"127.0.0.1:0\"\n";

/// The value of one series in a Prometheus text exposition, if there.
fn series(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// A frame the sender was still writing when SIGTERM stopped the reading becomes a row
/// marked `message-truncated`, not a row that looks whole; the frames before it are whole.
#[test]
fn a_frame_cut_off_by_shutdown_is_marked_truncated() {
    let mut gate = Cefgate::start_with(TCP, METRICS);
    let monitor = gate.metrics.unwrap();
    let mut s = TcpStream::connect(gate.tcp.unwrap()).unwrap();
    let sent = b"<14>host app: whole-1\n<14>host app: half cs1=ful";
    s.write_all(sent).unwrap();
    s.flush().unwrap();
    // Every byte read by cefgate before the signal.
    wait_for("the bytes to be read", DEADLINE, || {
        let (_, text) = http_get(monitor, "/metrics");
        (series(&text, "cefgate_tcp_bytes_total") == Some(sent.len() as u64)).then_some(())
    });
    let c = gate.stop();
    drop(s);
    let rows = gate.rows();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let find = |m: &str| {
        rows.iter()
            .find(|r| r["SyslogMessage"] == m)
            .unwrap_or_else(|| panic!("no row {m:?} in {rows:?}"))
    };
    let whole = find("whole-1");
    assert!(whole.get("CefgateDiagnostics").is_none_or(|d| d.is_null()));
    assert_eq!(
        find("half cs1=ful")["CefgateDiagnostics"],
        "message-truncated"
    );
    assert_eq!(c.get("frames_cut_at_shutdown"), 1);
}

/// A sender that closes its side ends its last frame: that one is whole.
#[test]
fn a_last_line_without_a_line_feed_is_whole_when_the_sender_closes() {
    let mut gate = Cefgate::start(TCP);
    let mut s = TcpStream::connect(gate.tcp.unwrap()).unwrap();
    s.write_all(b"<14>host app: last").unwrap();
    drop(s);
    let rows = gate.wait_rows(1);
    assert_eq!(rows[0]["SyslogMessage"], "last");
    assert!(
        rows[0]
            .get("CefgateDiagnostics")
            .is_none_or(|d| d.is_null())
    );
    assert_eq!(gate.stop().get("frames_cut_at_shutdown"), 0);
}

/// The spool's disk refuses every write and the output is down: SIGTERM still ends within
/// `shutdown_timeout_secs` (it retried for ever, until the service manager's SIGKILL lost
/// the rows uncounted), exits with an error, and `rows_lost` counts every row it could not
/// save.
#[test]
fn sigterm_with_the_disk_refusing_and_the_output_down_ends_in_time_and_counts_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let config = format!(
        "{TCP}\n[output]\ntype = \"logs-ingestion\"\nendpoint = \"http://127.0.0.1:1\"\nauthority_host = \"http://127.0.0.1:1\"\ndcr_id = \"dcr-00000000000000000000000000000000\"\ntenant_id = \"00000000-0000-0000-0000-000000000000\"\nclient_id = \"00000000-0000-0000-0000-000000000000\"\nclient_secret_env = \"CEFGATE_CLIENT_SECRET\"\n\n[batch]\nmax_age_ms = 20\n\n[pipeline]\nworkers = 1\nshutdown_timeout_secs = 3\n\n[spool]\npath = \"{}\"\n",
        spool.display()
    );
    let out = dir.path().join("unused");
    let mut gate = Cefgate::start_raw(
        dir,
        out,
        &config,
        &[("CEFGATE_CLIENT_SECRET", "not-used-anywhere")],
    );
    // Every chunk's temporary name is taken by a folder (made after the start, which would
    // move them to quarantine): each write fails, as on a full disk.
    for seq in 0..64u64 {
        std::fs::create_dir(spool.join(format!("{seq:016x}.tmp"))).unwrap();
    }
    let mut s = TcpStream::connect(gate.tcp.unwrap()).unwrap();
    for i in 0..1_000 {
        writeln!(s, "<14>host app: lost-{i}").unwrap();
    }
    drop(s);
    wait_for("the spool to refuse", DEADLINE, || {
        gate.stderr()
            .contains("spool: cannot write a chunk")
            .then_some(())
    });
    let started = std::time::Instant::now();
    let (status, c) = gate.stop_within(std::time::Duration::from_secs(20));
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    assert!(!status.success(), "rows were lost: the exit says so");
    assert_eq!(c.get("rows_total"), 1_000);
    assert_eq!(c.get("rows_lost"), 1_000, "{}", c.0);
    let stderr = gate.stderr();
    assert!(
        stderr.contains("the shutdown deadline has passed, so its"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1000 row(s) could not be written anywhere"),
        "{stderr}"
    );
}
