//! Attacks on a listener, against the real binary on loopback: slow senders, one host
//! taking every slot, a lying octet count, running out of descriptors. In each, honest
//! senders still get every message through.

use crate::support as common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Cefgate, DEADLINE, connect_from, wait_for};

const TCP: &str = "[[listener]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:0\"\n";

/// Counts rows whose SyslogMessage starts with `prefix`.
fn count(gate: &Cefgate, prefix: &str) -> usize {
    gate.rows()
        .iter()
        .filter(|r| {
            r["SyslogMessage"]
                .as_str()
                .is_some_and(|m| m.starts_with(prefix))
        })
        .count()
}

#[test]
fn one_host_dripping_on_200_connections_does_not_lock_another_out() {
    let mut gate = Cefgate::start_with(TCP, "");
    let tcp = gate.tcp.unwrap();
    // 200 connections from 127.0.0.1, each holding an unfinished frame and adding a byte
    // now and then (the attack that used to take every slot).
    let mut drips = Vec::new();
    for _ in 0..200 {
        let mut s = connect_from("127.0.0.1", tcp);
        let _ = s.write_all(b"<13>drip");
        drips.push(s);
    }
    let stop = Instant::now() + Duration::from_secs(2);
    let dripping = std::thread::spawn(move || {
        while Instant::now() < stop {
            for s in &mut drips {
                let _ = s.write_all(b"x");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        drips
    });
    // Meanwhile another host sends 100 messages; every one arrives.
    let mut honest = connect_from("127.0.0.2", tcp);
    for i in 0..100 {
        writeln!(honest, "<13>host app: honest-{i}").unwrap();
    }
    honest.flush().unwrap();
    drop(honest);
    wait_for("every honest message", DEADLINE, || {
        (count(&gate, "honest-") == 100).then_some(())
    });
    let drips = dripping.join().unwrap();
    drop(drips);
    let c = gate.stop();
    assert_eq!(c.get("connections_refused_per_source"), 200 - 64);
    assert_eq!(
        c.get("connections_accepted"),
        64 + 1,
        "64 from the dripping host, 1 honest"
    );
    let stderr = gate.stderr();
    let lines = stderr.matches("max_connections_per_source (64)").count();
    assert!(
        lines <= 2,
        "refusals are logged rate-limited: {lines} lines"
    );
}

#[test]
fn a_drip_fed_frame_is_cut_at_its_deadline() {
    let gate = Cefgate::start_with(
        &format!("{TCP}frame_timeout_secs = 1\nidle_timeout_secs = 60\n"),
        "",
    );
    let mut s = TcpStream::connect(gate.tcp.unwrap()).unwrap();
    s.write_all(b"<13>host app: partial ").unwrap();
    let started = Instant::now();
    // A byte every 200 ms keeps the idle timer from ever firing; the frame's deadline does.
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(10) {
        if s.write_all(b"x").is_err() {
            closed = true;
            break;
        }
        let mut byte = [0u8; 1];
        match s.read(&mut byte) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    let took = started.elapsed();
    assert!(closed, "the connection was never closed");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "closed after {took:?}, not at the 1 s deadline"
    );
    let rows = gate.wait_rows(1);
    let message = rows[0]["SyslogMessage"].as_str().unwrap();
    assert!(message.starts_with("partial x"), "{message}");
    assert_eq!(rows[0]["CefgateDiagnostics"], "message-truncated");
    let mut gate = gate;
    let c = gate.stop();
    assert_eq!(c.get("frames_timed_out"), 1);
    assert_eq!(c.get("connections_idle_closed"), 0);
}

#[test]
fn a_huge_count_does_not_swallow_the_frames_behind_it() {
    let gate = Cefgate::start(TCP);
    let mut s = TcpStream::connect(gate.tcp.unwrap()).unwrap();
    let mut stream = b"999999999 <\n".to_vec();
    for i in 0..1000 {
        stream.extend_from_slice(format!("<13>host app: after-{i}\n").as_bytes());
    }
    s.write_all(&stream).unwrap();
    drop(s);
    wait_for("1001 rows", DEADLINE, || {
        (gate.rows().len() == 1001).then_some(())
    });
    assert_eq!(count(&gate, "after-"), 1000);
    let mut gate = gate;
    let c = gate.stop();
    assert_eq!(c.get("framing_errors"), 1);
    assert_eq!(c.get("oversize_truncated"), 0);
}

#[test]
fn running_out_of_descriptors_backs_off_quietly_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("rows.ndjson");
    let config = format!(
        "{TCP}max_connections_per_source = 1000\n\n[output]\ntype = \"file\"\npath = \"{}\"\n\n[batch]\nmax_age_ms = 20\n",
        output.display()
    );
    let mut gate = Cefgate::start_with_file_limit(dir, output, &config, 64);
    assert!(
        gate.stderr().contains("the open-file limit is 64"),
        "a warning at start: {}",
        gate.stderr()
    );
    let tcp = gate.tcp.unwrap();
    // Far more connections than descriptors: the kernel queues them, accept fails.
    let storm: Vec<TcpStream> = (0..150)
        .filter_map(|_| TcpStream::connect(tcp).ok())
        .collect();
    wait_for("accept to fail", DEADLINE, || {
        gate.stderr().contains("accept failed").then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let lines = gate.stderr().matches("accept failed").count();
    assert!(lines <= 2, "{lines} accept failures logged in 2 s");
    drop(storm);
    // Once the storm is gone, an honest sender gets through.
    wait_for("an honest message", DEADLINE, || {
        if let Ok(mut s) = TcpStream::connect(tcp) {
            let _ = s.write_all(b"<13>host app: honest\n");
        }
        std::thread::sleep(Duration::from_millis(200));
        (count(&gate, "honest") > 0).then_some(())
    });
    let c = gate.stop();
    let errors = c.get("accept_errors");
    assert!(errors > 0, "no accept error counted");
    // Backing off (10 ms doubling to 1 s), not spinning: a handful per second at most.
    assert!(errors < 200, "{errors} accept errors: it spun");
}
