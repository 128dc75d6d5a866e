//! No data loss, with faults injected by `cefgate emulate`: throttling and server errors, an
//! outage, `kill -9` with a full spool, a corrupted chunk, and a spool that fills up.
#![cfg(feature = "emulator")]

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{Cefgate, Emulator, free_port, wait_for};

const LONG: Duration = Duration::from_secs(120);

/// cefgate with a TCP listener, the Logs Ingestion output at `endpoint`, and a spool in
/// `spool_dir` (which outlives restarts).
fn gate(endpoint: &str, spool_dir: &Path, extra: &str) -> Cefgate {
    gate_with(endpoint, spool_dir, extra, "")
}

fn gate_with(endpoint: &str, spool_dir: &Path, extra: &str, pipeline: &str) -> Cefgate {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"[[listener]]
protocol = "tcp"
address = "127.0.0.1:0"

[output]
type = "logs-ingestion"
endpoint = "{endpoint}"
authority_host = "{endpoint}"
dcr_id = "dcr-00000000000000000000000000000000"
tenant_id = "00000000-0000-0000-0000-000000000000"
client_id = "00000000-0000-0000-0000-000000000000"
client_secret_env = "CEFGATE_CLIENT_SECRET"
retry_max_secs = 2
timeout_secs = 5

[batch]
max_rows = 1000
max_age_ms = 50

[pipeline]
shutdown_timeout_secs = 5
{pipeline}

[spool]
path = "{}"
{extra}
"#,
        spool_dir.display()
    );
    let out = dir.path().join("unused");
    Cefgate::start_raw(
        dir,
        out,
        &config,
        &[("CEFGATE_CLIENT_SECRET", "emulator-client-secret")],
    )
}

fn lines(from: usize, n: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    for i in from..from + n {
        writeln!(
            buf,
            "<134>Nov 26 09:00:00 fw CEF:0|Acme|FW|1.0|100|Event|5|src=10.0.0.1 cn1={i}"
        )
        .unwrap();
    }
    buf
}

fn send(gate: &Cefgate, from: usize, n: usize) {
    let mut s = TcpStream::connect(gate.tcp.unwrap()).unwrap();
    s.write_all(&lines(from, n)).unwrap();
}

/// The distinct message numbers (cn1) the emulator stored (a message cut short by a
/// shutdown may have lost its number).
fn delivered(emu: &Emulator) -> HashSet<i64> {
    emu.rows("Custom-CefGate_CommonSecurityLog")
        .iter()
        .filter_map(|r| r["FieldDeviceCustomNumber1"].as_i64())
        .collect()
}

fn wait_delivered(emus: &[&Emulator], n: usize) -> HashSet<i64> {
    wait_for(&format!("{n} distinct rows"), LONG, || {
        let all: HashSet<i64> = emus.iter().flat_map(|e| delivered(e)).collect();
        (all.len() >= n).then_some(all)
    })
}

/// Rows in the spool's chunk files (from their headers).
fn spooled_rows(dir: &Path) -> (usize, usize) {
    let mut chunks = 0;
    let mut rows = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "chunk") {
            let data = std::fs::read(&path).unwrap();
            let header: serde_json::Value =
                serde_json::from_slice(&data[..data.iter().position(|b| *b == b'\n').unwrap()])
                    .unwrap();
            rows += header["rows"].as_u64().unwrap() as usize;
            chunks += 1;
        }
    }
    (chunks, rows)
}

#[test]
fn thirty_percent_faults_lose_nothing() {
    let emu = Emulator::start(&[
        "--fault-rate",
        "0.3",
        "--fault-statuses",
        "429,500,503",
        "--retry-after-secs",
        "0.2",
    ]);
    let spool = tempfile::tempdir().unwrap();
    let mut gate = gate(&emu.url, spool.path(), "");
    send(&gate, 0, 100_000);
    let got = wait_delivered(&[&emu], 100_000);
    assert_eq!(got.len(), 100_000);
    let c = gate.stop();
    assert!(
        c.get("requests_throttled") + c.get("requests_failed") > 0,
        "faults were injected"
    );
    assert_eq!(c.get("rows_dead_lettered"), 0);
    assert_eq!(spooled_rows(spool.path()).0, 0, "the spool is empty again");
}

#[test]
fn an_outage_spools_the_backlog_and_drains_when_the_endpoint_returns() {
    // Down from 1 s after start for 60 s.
    let emu = Emulator::start(&["--outage", "1:60"]);
    let spool = tempfile::tempdir().unwrap();
    let mut gate = gate(&emu.url, spool.path(), "");
    send(&gate, 0, 1_000);
    wait_delivered(&[&emu], 1_000);
    // The outage begins: what follows waits in the spool.
    std::thread::sleep(Duration::from_secs(2));
    for round in 1..=10 {
        send(&gate, round * 1_000, 1_000);
    }
    wait_for("the backlog to be spooled", LONG, || {
        (spooled_rows(spool.path()).1 >= 10_000).then_some(())
    });
    let got = wait_delivered(&[&emu], 11_000);
    assert_eq!(got.len(), 11_000);
    let c = gate.stop();
    assert_eq!(c.get("rows_dead_lettered"), 0);
    assert!(c.get("requests_failed") > 0, "the outage was seen");
}

/// A run whose endpoint never answered (nothing listens on its port), killed with `kill -9`
/// once its spool held `n` rows: the endpoint and the spool it left behind.
fn spool_left_by_a_killed_run(n: usize) -> (u16, String, tempfile::TempDir) {
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let spool = tempfile::tempdir().unwrap();
    let mut first = gate(&endpoint, spool.path(), "");
    send(&first, 0, n);
    wait_for(&format!("{n} rows in the spool"), LONG, || {
        (spooled_rows(spool.path()).1 == n).then_some(())
    });
    first.kill9();
    (port, endpoint, spool)
}

#[test]
fn kill_9_with_a_full_spool_then_restart_delivers_every_spooled_row() {
    // The endpoint is down (nothing listens): batches pile up in the spool.
    let (port, endpoint, spool) = spool_left_by_a_killed_run(10_000);
    let (chunks, _) = spooled_rows(spool.path());
    assert!(chunks >= 10, "{chunks} chunks");

    let emu = Emulator::start_at(&format!("127.0.0.1:{port}"), &[]);
    let mut second = gate(&endpoint, spool.path(), "");
    let got = wait_delivered(&[&emu], 10_000);
    assert_eq!(got.len(), 10_000);
    let c = second.stop();
    assert_eq!(
        c.get("rows_recovered"),
        10_000,
        "counted as possible duplicates"
    );
    assert_eq!(spooled_rows(spool.path()).0, 0);
}

#[test]
fn a_corrupted_chunk_is_quarantined_and_every_other_row_delivered() {
    let (port, endpoint, spool) = spool_left_by_a_killed_run(5_000);

    // Flip one byte in the body of the first chunk.
    let mut chunks: Vec<_> = std::fs::read_dir(spool.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "chunk"))
        .collect();
    chunks.sort();
    let victim = &chunks[0];
    let mut data = std::fs::read(victim).unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(&data[..data.iter().position(|b| *b == b'\n').unwrap()]).unwrap();
    let lost = header["rows"].as_u64().unwrap() as usize;
    let at = data.len() - 10;
    data[at] ^= 0x20;
    std::fs::write(victim, data).unwrap();

    let emu = Emulator::start_at(&format!("127.0.0.1:{port}"), &[]);
    let mut second = gate(&endpoint, spool.path(), "");
    let got = wait_delivered(&[&emu], 5_000 - lost);
    let c = second.stop();
    assert_eq!(got.len(), 5_000 - lost);
    assert_eq!(c.get("chunks_quarantined"), 1);
    assert!(
        spool
            .path()
            .join("quarantine")
            .join(victim.file_name().unwrap())
            .exists()
    );
}

#[test]
fn a_full_spool_slows_the_sender_and_loses_nothing() {
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let spool = tempfile::tempdir().unwrap();
    // A short frame queue, so that memory does not hide the back-pressure from the sender.
    let mut gate = gate_with(
        &endpoint,
        spool.path(),
        "max_bytes = 1048576",
        "queue_batches = 4",
    );
    let total = 300_000;
    let written = Arc::new(AtomicU64::new(0));
    let sender = {
        let (addr, written) = (gate.tcp.unwrap(), written.clone());
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            for chunk in lines(0, total).chunks(16 * 1024) {
                s.write_all(chunk).unwrap();
                written.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        })
    };
    let all = lines(0, total).len() as u64;
    // Back-pressure: the sender stalls short of the end while the endpoint is down.
    wait_for("the sender to stall", LONG, || {
        let before = written.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(500));
        let after = written.load(Ordering::Relaxed);
        (after == before && after < all).then_some(())
    });
    let spool_bytes: u64 = std::fs::read_dir(spool.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        spool_bytes <= 1_048_576 + 256 * 1024,
        "spool {spool_bytes} bytes over its bound"
    );

    let emu = Emulator::start_at(&format!("127.0.0.1:{port}"), &[]);
    sender.join().unwrap();
    let got = wait_delivered(&[&emu], total);
    assert_eq!(got.len(), total);
    let c = gate.stop();
    assert!(c.get("spool_full_waits") >= 1);
    assert_eq!(c.get("rows_dead_lettered"), 0);
}

#[test]
fn dead_letters_can_be_listed_and_replayed() {
    let emu = Emulator::start(&["--poison", "POISON"]);
    let spool = tempfile::tempdir().unwrap();
    let mut gate = gate(&emu.url, spool.path(), "");
    let mut s = TcpStream::connect(gate.tcp.unwrap()).unwrap();
    writeln!(
        s,
        "<134>Nov 26 09:00:00 fw CEF:0|Acme|FW|1.0|100|Event|5|cn1=1 msg=POISON"
    )
    .unwrap();
    writeln!(
        s,
        "<134>Nov 26 09:00:00 fw CEF:0|Acme|FW|1.0|100|Event|5|cn1=2 msg=fine"
    )
    .unwrap();
    drop(s);
    wait_delivered(&[&emu], 1);
    gate.stop();
    let config = gate.dir.path().join("cefgate.toml");
    let cefgate = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cefgate"))
            .args(args)
            .env("CEFGATE_CLIENT_SECRET", "emulator-client-secret")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let listed = cefgate(&["dlq", "list", "--config", config.to_str().unwrap()]);
    assert!(listed.contains("1 dead-lettered row(s)"), "{listed}");
    assert!(
        listed.contains("Custom-CefGate_CommonSecurityLog") && listed.contains("HTTP 400"),
        "{listed}"
    );

    // The poison is still refused: replay puts it back in the queue.
    let replayed = cefgate(&["dlq", "replay", "--config", config.to_str().unwrap()]);
    assert!(
        replayed.contains("replayed 1 row(s): 0 delivered, 1 dead-lettered again"),
        "{replayed}"
    );
    drop(emu);
    // Once the cause is gone (an emulator without the poison rule), replay delivers it.
    let fixed = Emulator::start_at(&gate_endpoint_address(&config), &[]);
    let replayed = cefgate(&["dlq", "replay", "--config", config.to_str().unwrap()]);
    assert!(
        replayed.contains("replayed 1 row(s): 1 delivered, 0 dead-lettered again"),
        "{replayed}"
    );
    assert_eq!(delivered(&fixed), HashSet::from([1]));
    let listed = cefgate(&["dlq", "list", "--config", config.to_str().unwrap()]);
    assert!(listed.contains("0 dead-lettered row(s)"), "{listed}");
}

/// The emulator address the config points at.
fn gate_endpoint_address(config: &Path) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    let line = text.lines().find(|l| l.starts_with("endpoint")).unwrap();
    line.split("http://")
        .nth(1)
        .unwrap()
        .trim_end_matches('"')
        .to_string()
}

/// Peak resident memory of a process, from /proc (kB -> bytes).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

#[test]
fn sigterm_with_the_endpoint_down_and_the_spool_full_loses_nothing_read() {
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let spool = tempfile::tempdir().unwrap();
    let mut first = gate_with(
        &endpoint,
        spool.path(),
        "max_bytes = 1048576",
        "max_memory_bytes = 8388608",
    );
    // One sender offers 1,000,000 messages; it ends when cefgate closes the connection.
    let offered = 1_000_000;
    let written = Arc::new(AtomicU64::new(0));
    let sender = {
        let (addr, written) = (first.tcp.unwrap(), written.clone());
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            for from in (0..offered).step_by(1000) {
                if s.write_all(&lines(from, 1000)).is_err() {
                    return;
                }
                written.fetch_add(1000, Ordering::Relaxed);
            }
        })
    };
    wait_for("the sender to stall", LONG, || {
        let before = written.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(500));
        let after = written.load(Ordering::Relaxed);
        (after == before && after > 0).then_some(())
    });
    let rss = peak_rss(first.pid());
    assert!(
        rss < 120 * 1024 * 1024,
        "peak RSS {rss} bytes while stalled with an 8 MiB budget"
    );

    let c = first.stop();
    sender.join().unwrap();
    let read = c.get("tcp_frames") as usize;
    assert!(read > 0);
    assert!(
        read < offered / 4,
        "{read} of {offered} messages read: the sender was not slowed"
    );
    assert_eq!(c.get("rows_dead_lettered"), 0);
    // Everything read is on disk, past the spool's bound.
    let (_, spooled) = spooled_rows(spool.path());
    assert_eq!(spooled, read, "rows in the spool against frames read");

    let emu = Emulator::start_at(&format!("127.0.0.1:{port}"), &[]);
    let mut restarted = gate(&endpoint, spool.path(), "max_bytes = 1048576");
    let got = wait_delivered(&[&emu], read - 1);
    // The last frame may be a partial message cut by the shutdown; every whole one is there.
    assert!((0..read as i64 - 1).all(|n| got.contains(&n)));
    let c = restarted.stop();
    assert_eq!(c.get("rows_recovered") as usize, read);
    assert_eq!(c.get("rows_delivered") as usize, read);
    // A partial last message may not be CEF any more and land in Syslog; the emulator's
    // files may trail its answers by a moment.
    let stored = wait_for("every row stored", LONG, || {
        let n = emu.rows("Custom-CefGate_CommonSecurityLog").len()
            + emu.rows("Custom-CefGate_Syslog").len();
        (n >= read).then_some(n)
    });
    assert_eq!(stored, read, "each row delivered exactly once");
}

/// A pod scaled away leaves its spool behind: `cefgate spool drain` delivers it through the
/// configured output and exits, without receiving anything.
#[test]
fn spool_drain_delivers_what_a_killed_run_left() {
    let (port, endpoint, spool) = spool_left_by_a_killed_run(2_000);

    let emu = Emulator::start_at(&format!("127.0.0.1:{port}"), &[]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("drain.toml");
    std::fs::write(
        &config,
        format!(
            "[[listener]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n[output]\ntype = \"logs-ingestion\"\nendpoint = \"{endpoint}\"\nauthority_host = \"{endpoint}\"\ndcr_id = \"dcr-00000000000000000000000000000000\"\ntenant_id = \"00000000-0000-0000-0000-000000000000\"\nclient_id = \"00000000-0000-0000-0000-000000000000\"\nclient_secret_env = \"CEFGATE_CLIENT_SECRET\"\n\n[spool]\npath = \"{}\"\n",
            spool.path().display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cefgate"))
        .args(["spool", "drain", "--timeout-secs", "60", "--config"])
        .arg(&config)
        .env("CEFGATE_CLIENT_SECRET", "emulator-client-secret")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("with 2000 row(s): 2000 delivered, 0 dead-lettered; 0 chunk(s) left"),
        "{stdout}"
    );
    assert_eq!(delivered(&emu).len(), 2_000);
    assert_eq!(spooled_rows(spool.path()).0, 0);
}
