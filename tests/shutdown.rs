//! Stopping `cefgate run`: what a sender had not finished, listeners that cannot bind, and
//! a shutdown that has nowhere to put what it holds. Each ends in bounded time and says
//! what happened to every row.

mod common;

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
