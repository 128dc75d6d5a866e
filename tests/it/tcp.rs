//! TCP framing and limits against the real binary: split frames, garbage, volume, oversize,
//! hostile octet counts, many connections, connection limits, allowlists, and SIGTERM.

use crate::support as common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use common::{Cefgate, DEADLINE, UDP_AND_TCP, wait_for};

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn tcp_listener(extra: &str) -> String {
    format!("[[listener]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:0\"\n{extra}\n")
}

#[test]
fn frames_split_across_writes_and_garbage_between_frames() {
    let mut gate = Cefgate::start(&tcp_listener("framing = \"octet-counting\""));
    let mut s = connect(gate.tcp.unwrap());
    let stream = b"28 <13>Nov 26 09:00:00 h a: one26 <13>Nov 26 09:00:01 h a: 2garbage here\n28 <13>Nov 26 09:00:02 h a: two";
    for chunk in stream.chunks(3) {
        s.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(s);
    let rows = gate.wait_rows(4);
    // Two decode threads: the rows may be written in any order.
    let mut messages: Vec<&str> = rows
        .iter()
        .map(|r| r["SyslogMessage"].as_str().unwrap())
        .collect();
    messages.sort();
    assert_eq!(messages, ["2", "garbage here", "one", "two"], "{rows:#?}");
    let garbage = rows
        .iter()
        .find(|r| r["SyslogMessage"] == "garbage here")
        .unwrap();
    assert_eq!(garbage["CefgateDiagnostics"], "no-syslog-header");
    let counters = gate.stop();
    assert_eq!(counters.get("framing_errors"), 1);
}

#[test]
fn hundred_thousand_messages_on_one_connection() {
    let mut gate = Cefgate::start(&tcp_listener(""));
    let mut s = connect(gate.tcp.unwrap());
    let mut buf = Vec::with_capacity(8 << 20);
    for i in 0..100_000 {
        writeln!(
            buf,
            "<134>Nov 26 09:00:00 fw CEF:0|V|P|1|{i}|n|3|src=10.0.0.1 cn1={i}"
        )
        .unwrap();
    }
    s.write_all(&buf).unwrap();
    drop(s);
    let rows = gate.wait_rows(100_000);
    assert_eq!(rows.len(), 100_000);
    let mut ids: Vec<i64> = rows
        .iter()
        .map(|r| r["FieldDeviceCustomNumber1"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    assert!(
        ids.iter().enumerate().all(|(i, id)| *id == i as i64),
        "every message exactly once"
    );
    assert_eq!(gate.stop().get("tcp_frames"), 100_000);
}

#[test]
fn oversize_frames_are_truncated_and_flagged_then_the_stream_goes_on() {
    let mut gate = Cefgate::start(&tcp_listener("max_message_bytes = 1024"));
    let mut s = connect(gate.tcp.unwrap());
    let long = "x".repeat(5000);
    write!(
        s,
        "<13>Nov 26 09:00:00 h a: {long}\n<13>Nov 26 09:00:01 h a: after\n"
    )
    .unwrap();
    drop(s);
    let rows = gate.wait_rows(2);
    // Two decode threads may hand the two frames on in either order.
    let truncated = rows.iter().find(|r| r["SyslogMessage"] != "after").unwrap();
    assert_eq!(truncated["CefgateDiagnostics"], "message-truncated");
    assert_eq!(
        truncated["SyslogMessage"].as_str().unwrap().len(),
        1024 - 25
    );
    assert!(rows.iter().any(|r| r["SyslogMessage"] == "after"));
    assert_eq!(gate.stop().get("oversize_truncated"), 1);
}

#[test]
fn oversize_frames_can_be_dropped_and_are_counted() {
    let mut gate = Cefgate::start(&tcp_listener(
        "max_message_bytes = 1024\noversize = \"drop\"",
    ));
    let mut s = connect(gate.tcp.unwrap());
    let long = "x".repeat(5000);
    write!(
        s,
        "<13>Nov 26 09:00:00 h a: {long}\n<13>Nov 26 09:00:01 h a: after\n"
    )
    .unwrap();
    drop(s);
    let rows = gate.wait_rows(1);
    assert_eq!(rows[0]["SyslogMessage"], "after");
    let counters = gate.stop();
    assert_eq!(counters.get("oversize_dropped"), 1);
    assert_eq!(counters.get("rows_total"), 1);
}

/// Bytes waiting in the receive queue of the UDP socket bound to `port` (/proc/net/udp).
fn udp_receive_queue(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    let local = format!(":{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !fields.get(1)?.ends_with(&local) {
            return None;
        }
        let (_, rx) = fields.get(4)?.split_once(':')?;
        u64::from_str_radix(rx, 16).ok()
    })
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_huge_octet_count_allocates_nothing_of_its_size() {
    let mut gate = Cefgate::start(&tcp_listener(
        "framing = \"octet-counting\"\nmax_message_bytes = 4096",
    ));
    let mut s = connect(gate.tcp.unwrap());
    // Claims 999,999,999 bytes, then sends 64 MiB of it.
    s.write_all(b"999999999 <13>Nov 26 09:00:00 h a: ").unwrap();
    let chunk = vec![b'A'; 1 << 20];
    for _ in 0..64 {
        s.write_all(&chunk).unwrap();
    }
    let rows = gate.wait_rows(1);
    assert_eq!(rows[0]["CefgateDiagnostics"], "message-truncated");
    let rss = rss_kib(gate.pid());
    assert!(rss < 100 * 1024, "RSS {rss} KiB after a 1 GB claim");
    drop(s);
    // The listener still serves others.
    let mut t = connect(gate.tcp.unwrap());
    t.write_all(b"30 <13>Nov 26 09:00:01 h a: still").unwrap();
    drop(t);
    gate.wait_rows(2);
    gate.stop();
}

#[test]
fn fifty_concurrent_connections() {
    let mut gate = Cefgate::start(&tcp_listener(""));
    let addr = gate.tcp.unwrap();
    let senders: Vec<_> = (0..50)
        .map(|c| {
            std::thread::spawn(move || {
                let mut s = connect(addr);
                let mut buf = Vec::new();
                for i in 0..200 {
                    writeln!(buf, "<13>Nov 26 09:00:00 h a[{c}]: message {i}").unwrap();
                }
                s.write_all(&buf).unwrap();
            })
        })
        .collect();
    senders.into_iter().for_each(|t| t.join().unwrap());
    let rows = gate.wait_rows(10_000);
    assert_eq!(rows.len(), 10_000);
    let counters = gate.stop();
    assert_eq!(counters.get("connections_accepted"), 50);
    assert_eq!(counters.get("connections_refused"), 0);
}

#[test]
fn connections_over_the_limit_are_refused_and_counted() {
    let mut gate = Cefgate::start(&tcp_listener("max_connections = 2"));
    let addr = gate.tcp.unwrap();
    let mut a = connect(addr);
    let mut b = connect(addr);
    a.write_all(b"<13>Nov 26 09:00:00 h a: a\n").unwrap();
    b.write_all(b"<13>Nov 26 09:00:00 h a: b\n").unwrap();
    gate.wait_rows(2);
    let mut c = connect(addr);
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut byte = [0u8; 1];
    // The third connection is closed by cefgate without being read.
    let n = c.read(&mut byte).unwrap_or(0);
    assert_eq!(n, 0);
    drop((a, b));
    let counters = gate.stop();
    assert_eq!(counters.get("connections_refused"), 1);
}

#[test]
fn senders_outside_the_allowlist_are_refused() {
    let listeners = r#"
[[listener]]
protocol = "udp"
address = "127.0.0.1:0"
allow = ["10.0.0.0/8"]

[[listener]]
protocol = "tcp"
address = "127.0.0.1:0"
allow = ["10.0.0.0/8"]
"#;
    let mut gate = Cefgate::start(listeners);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"<13>Nov 26 09:00:00 h a: denied", gate.udp.unwrap())
        .unwrap();
    let mut c = connect(gate.tcp.unwrap());
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    let _ = c.write_all(b"<13>Nov 26 09:00:00 h a: denied\n");
    let mut byte = [0u8; 1];
    assert_eq!(c.read(&mut byte).unwrap_or(0), 0, "closed by cefgate");
    // The datagram counts as soon as cefgate has taken it off the socket.
    wait_for("cefgate to read the datagram", DEADLINE, || {
        udp_receive_queue(gate.udp.unwrap().port())
            .is_some_and(|q| q == 0)
            .then_some(())
    });
    let counters = gate.stop();
    assert_eq!(counters.get("udp_denied"), 1);
    assert_eq!(counters.get("connections_refused"), 1);
    assert_eq!(counters.get("rows_total"), 0);
    assert!(gate.rows().is_empty());
}

#[test]
fn udp_datagrams_become_rows_with_the_sender_address() {
    let mut gate = Cefgate::start(UDP_AND_TCP);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..100 {
        let msg = format!("<14>Nov 26 09:00:00 dev app: datagram {i}\n");
        udp.send_to(msg.as_bytes(), gate.udp.unwrap()).unwrap();
    }
    let rows = gate.wait_rows(100);
    assert!(rows.iter().all(|r| r["HostIP"] == "127.0.0.1"));
    assert!(
        rows.iter().any(|r| r["SyslogMessage"] == "datagram 99"),
        "trailing LF stripped"
    );
    gate.stop();
}

#[test]
fn sigterm_while_sending_loses_nothing_that_was_read() {
    let mut gate = Cefgate::start(&tcp_listener(""));
    let addr = gate.tcp.unwrap();
    let sender = std::thread::spawn(move || {
        let mut s = connect(addr);
        let mut sent = 0u64;
        let mut buf = Vec::new();
        'outer: for round in 0..200 {
            buf.clear();
            for i in 0..5_000 {
                writeln!(buf, "<13>Nov 26 09:00:00 h a: r{round} m{i}").unwrap();
            }
            for chunk in buf.chunks(4096) {
                if s.write_all(chunk).is_err() {
                    break 'outer;
                }
            }
            sent += 5_000;
        }
        sent
    });
    gate.wait_rows(20_000);
    let counters = gate.stop();
    let sent = sender.join().unwrap();
    let read = counters.get("tcp_frames");
    let rows = gate.rows().len() as u64;
    assert!(read >= 20_000, "read {read}");
    assert_eq!(
        rows, read,
        "every frame read was written (sent at least {sent})"
    );
    assert_eq!(counters.get("rows_total"), read);
}

#[test]
fn idle_connections_are_closed_and_counted() {
    let mut gate = Cefgate::start(&tcp_listener("idle_timeout_secs = 1"));
    let mut s = connect(gate.tcp.unwrap());
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(b"<13>Nov 26 09:00:00 h a: then silence\n")
        .unwrap();
    let mut byte = [0u8; 1];
    // cefgate closes the connection after a second of silence.
    assert_eq!(s.read(&mut byte).unwrap_or(0), 0);
    gate.wait_rows(1);
    let counters = gate.stop();
    assert_eq!(counters.get("connections_idle_closed"), 1);
}

#[test]
fn zones_per_listener_and_per_sender_follow_daylight_saving() {
    let listeners = r#"
[[listener]]
protocol = "tcp"
address = "127.0.0.1:0"
timezone = "Europe/Berlin"

[[listener]]
protocol = "udp"
address = "127.0.0.1:0"
timezone = "Asia/Tokyo"
sender_timezones = { "10.0.0.0/8" = "UTC", "127.0.0.0/8" = "America/New_York" }
"#;
    let mut gate = Cefgate::start(listeners);
    let mut tcp = TcpStream::connect(gate.tcp.unwrap()).unwrap();
    tcp.write_all(b"<13>Jul 15 12:00:00 host app: berlin-summer\n<13>Jan 15 12:00:00 host app: berlin-winter\n")
        .unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(
        b"<13>Jul 15 12:00:00 host app: new-york-summer",
        gate.udp.unwrap(),
    )
    .unwrap();
    let rows = gate.wait_rows(3);
    let time_of = |msg: &str| {
        let row = rows.iter().find(|r| r["SyslogMessage"] == msg).unwrap();
        row["EventTime"].as_str().unwrap()[5..19].to_string()
    };
    assert_eq!(time_of("berlin-summer"), "07-15T10:00:00");
    assert_eq!(time_of("berlin-winter"), "01-15T11:00:00");
    // The sender's range wins over the listener's Asia/Tokyo.
    assert_eq!(time_of("new-york-summer"), "07-15T16:00:00");
    gate.stop();
}
