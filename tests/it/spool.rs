//! No data loss, with faults injected by `cefgate emulate`: throttling and server errors, an
//! outage, `kill -9` with a full spool, a corrupted chunk, and a spool that fills up.
#![cfg(feature = "emulator")]

use crate::support as common;

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
            // A chunk listed but gone by now was delivered and removed: it holds no rows.
            let Ok(data) = std::fs::read(&path) else {
                continue;
            };
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

/// Runs `cefgate ARGS` to its end (at most 60 s: a process still running then is killed and
/// the test fails): its exit status and stderr.
fn run_to_exit(args: &[&std::ffi::OsStr]) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cefgate"))
        .args(args)
        .env("CEFGATE_CLIENT_SECRET", "emulator-client-secret")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cefgate {args:?} was still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stderr)
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// The chunk files of a spool folder, in order.
fn chunk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut chunks: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "chunk"))
        .collect();
    chunks.sort();
    chunks
}

/// Two instances on one spool numbered their chunks alike and replaced each other's
/// (4,859 of 10,000 rows lost). The second one now fails to start, and so does a drain.
#[test]
fn a_second_instance_on_the_same_spool_is_refused_and_the_first_keeps_every_row() {
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let spool = tempfile::tempdir().unwrap();
    let mut first = gate(&endpoint, spool.path(), "");
    send(&first, 0, 10_000);
    wait_for("10,000 rows in the spool", LONG, || {
        (spooled_rows(spool.path()).1 == 10_000).then_some(())
    });
    let config = first.dir.path().join("cefgate.toml");
    let in_use = format!(
        "spool {} is in use by another cefgate (pid {})",
        spool.path().display(),
        first.pid()
    );
    let (status, stderr) = run_to_exit(&[os("run"), os("--config"), config.as_os_str()]);
    assert!(!status.success(), "the second instance ran:\n{stderr}");
    assert!(stderr.contains(&in_use), "{stderr}");
    assert!(!stderr.contains(" ready"), "{stderr}");
    let (status, stderr) = run_to_exit(&[
        os("spool"),
        os("drain"),
        os("--timeout-secs"),
        os("5"),
        os("--config"),
        config.as_os_str(),
    ]);
    assert!(!status.success(), "the drain ran:\n{stderr}");
    assert!(stderr.contains(&in_use), "{stderr}");

    let emu = Emulator::start_at(&format!("127.0.0.1:{port}"), &[]);
    let got = wait_delivered(&[&emu], 10_000);
    assert!(
        (0..10_000).all(|n| got.contains(&n)),
        "every row, by number"
    );
    let c = first.stop();
    assert_eq!(c.get("rows_delivered"), 10_000);
    assert_eq!(c.get("rows_lost"), 0);
}

/// A stray `ffffffffffffffff.chunk` made the counter wrap, and new chunks replaced
/// undelivered ones (3,000 of 20,000 lost, "0 damaged").
#[test]
fn a_stray_last_numbered_chunk_does_not_make_new_chunks_replace_undelivered_ones() {
    let (port, endpoint, spool) = spool_left_by_a_killed_run(10_000);
    let stray = spool.path().join("ffffffffffffffff.chunk");
    std::fs::copy(&chunk_files(spool.path())[0], &stray).unwrap();
    // Still no endpoint: 10,000 more rows join the 10,000 waiting.
    let mut second = gate(&endpoint, spool.path(), "");
    send(&second, 10_000, 10_000);
    wait_for("20,000 rows in the spool", LONG, || {
        (spooled_rows(spool.path()).1 == 20_000).then_some(())
    });
    let c = second.stop();
    assert_eq!(c.get("chunks_quarantined"), 1, "the stray");

    let emu = Emulator::start_at(&format!("127.0.0.1:{port}"), &[]);
    let mut third = gate(&endpoint, spool.path(), "");
    let got = wait_delivered(&[&emu], 20_000);
    assert!(
        (0..20_000).all(|n| got.contains(&n)),
        "every row, by number"
    );
    let c = third.stop();
    assert_eq!(c.get("rows_delivered"), 20_000, "each row once");
    assert!(
        spool
            .path()
            .join("quarantine/ffffffffffffffff.chunk")
            .exists()
    );
}

/// The header was outside the checksum: a flipped `table` sent 1,000 CEF rows to the
/// Syslog stream.
#[test]
fn a_flipped_table_in_a_chunk_header_is_quarantined_not_sent_to_another_stream() {
    let (port, endpoint, spool) = spool_left_by_a_killed_run(5_000);
    let victim = chunk_files(spool.path())[0].clone();
    let data = std::fs::read(&victim).unwrap();
    let nl = data.iter().position(|b| *b == b'\n').unwrap();
    let header = std::str::from_utf8(&data[..nl]).unwrap();
    let lost = serde_json::from_str::<serde_json::Value>(header).unwrap()["rows"]
        .as_u64()
        .unwrap();
    let flipped = header.replacen("\"table\":\"CommonSecurityLog\"", "\"table\":\"Syslog\"", 1);
    assert_ne!(flipped, header);
    std::fs::write(&victim, [flipped.as_bytes(), &data[nl..]].concat()).unwrap();

    let emu = Emulator::start_at(&format!("127.0.0.1:{port}"), &[]);
    let mut second = gate(&endpoint, spool.path(), "");
    let got = wait_delivered(&[&emu], 5_000 - lost as usize);
    let c = second.stop();
    assert_eq!(got.len(), 5_000 - lost as usize);
    assert_eq!(c.get("chunks_quarantined"), 1);
    assert_eq!(
        c.get("rows_delivered"),
        5_000 - lost,
        "none to another stream"
    );
    assert!(emu.rows("Custom-CefGate_Syslog").is_empty());
    assert!(
        spool
            .path()
            .join("quarantine")
            .join(victim.file_name().unwrap())
            .exists()
    );
}

/// At start every `*.chunk` was read whole: a 1 GiB stray took RSS to 1 GB, and
/// `zzzz.chunk` was reported at every shutdown as "kept for delivery".
#[test]
fn a_huge_stray_file_is_not_read_into_memory_nor_reported_as_kept_for_delivery() {
    let emu = Emulator::start(&[]);
    let spool = tempfile::tempdir().unwrap();
    for name in ["zzzz.chunk", "0000000000000000.chunk"] {
        let f = std::fs::File::create(spool.path().join(name)).unwrap();
        f.set_len(1 << 30).unwrap(); // sparse: 1 GiB that takes no disk
    }
    let mut gate = gate(&emu.url, spool.path(), "");
    let rss = peak_rss(gate.pid());
    assert!(rss < 100 << 20, "peak RSS {rss} bytes after start");
    send(&gate, 0, 1_000);
    let got = wait_delivered(&[&emu], 1_000);
    assert_eq!(got.len(), 1_000);
    let c = gate.stop();
    assert_eq!(c.get("chunks_quarantined"), 2);
    let log = gate.stderr();
    assert_eq!(log.matches("zzzz.chunk is not a chunk").count(), 1, "{log}");
    assert!(!log.contains("kept for delivery"), "{log}");
    assert!(spool.path().join("quarantine/zzzz.chunk").exists());
}

/// `/ready` stayed 200 through a 12-minute disk-full stall with 0 rows accepted.
#[test]
fn ready_is_503_while_the_spool_cannot_write_and_200_once_it_can() {
    let emu = Emulator::start(&[]);
    let spool = tempfile::tempdir().unwrap();
    let mut gate = gate(
        &emu.url,
        spool.path(),
        "\n[metrics]\naddress = \"127.0.0.1:0\"",
    );
    let metrics = gate.metrics.unwrap();
    assert_eq!(common::http_get(metrics, "/ready").0, 200);
    // The first chunk's temporary name is taken by a folder: every write fails, as when
    // the disk is full.
    let blocker = spool.path().join("0000000000000000.tmp");
    std::fs::create_dir(&blocker).unwrap();
    send(&gate, 0, 100);
    let body = wait_for("/ready to say 503", LONG, || {
        let (status, body) = common::http_get(metrics, "/ready");
        (status == 503).then_some(body)
    });
    assert!(body.contains("the spool cannot write chunks"), "{body}");
    std::fs::remove_dir(&blocker).unwrap();
    wait_for("/ready to say 200 again", LONG, || {
        (common::http_get(metrics, "/ready").0 == 200).then_some(())
    });
    let got = wait_delivered(&[&emu], 100);
    assert_eq!(got.len(), 100);
    let c = gate.stop();
    assert!(c.get("spool_write_errors") >= 1);
}

/// `check` did not warn when `[spool] max_bytes` (default 10 GiB) is larger than the
/// filesystem.
#[test]
fn check_warns_when_spool_max_bytes_is_larger_than_its_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let check = |max_bytes: u64| {
        let config = dir.path().join("cefgate.toml");
        std::fs::write(
            &config,
            format!(
                "[[listener]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n[output]\ntype = \"stdout\"\n\n[spool]\npath = \"{}\"\nmax_bytes = {max_bytes}\n",
                dir.path().join("spool").display()
            ),
        )
        .unwrap();
        let (status, stderr) = run_to_exit(&[os("check"), config.as_os_str()]);
        assert!(status.success(), "a warning, not an error: {stderr}");
        stderr
    };
    // 1 PiB, the largest max_bytes accepted: more than this machine's disk.
    let stderr = check(1 << 50);
    assert!(
        stderr.contains(&format!(
            "warning: [spool] max_bytes ({} bytes) is more than the whole filesystem holding {}",
            1u64 << 50,
            dir.path().join("spool").display()
        )),
        "{stderr}"
    );
    assert!(!check(1 << 20).contains("max_bytes"));
}
