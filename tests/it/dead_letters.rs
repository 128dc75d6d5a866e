//! The dead-letter queue under real operations: `cefgate dlq replay` while the service keeps
//! dead-lettering, a dead-letter file that cannot be written, and files `dlq` must never
//! lose a line of (an unknown table, an invalid byte, a replay that was interrupted). Every
//! row carries a sequence number (`cn1`), and every number is counted.
#![cfg(feature = "emulator")]

use crate::support as common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Cefgate, DEADLINE, Emulator, http_get, wait_for};

const SECRET: (&str, &str) = ("CEFGATE_CLIENT_SECRET", "emulator-client-secret");
const STREAM: &str = "Custom-CefGate_CommonSecurityLog";

/// A Logs Ingestion `[output]` at the emulator `endpoint`, dead-lettering to `dlq`.
fn output(endpoint: &str, dlq: &Path) -> String {
    format!(
        r#"[output]
type = "logs-ingestion"
endpoint = "{endpoint}"
authority_host = "{endpoint}"
dcr_id = "dcr-00000000000000000000000000000000"
tenant_id = "00000000-0000-0000-0000-000000000000"
client_id = "00000000-0000-0000-0000-000000000000"
client_secret_env = "CEFGATE_CLIENT_SECRET"
retry_max_secs = 1
timeout_secs = 5
dead_letter_path = "{}"
"#,
        dlq.display()
    )
}

/// `cefgate run` with a TCP listener, the metrics endpoint, `output` and `extra`.
fn gate(output: &str, extra: &str) -> Cefgate {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[[listener]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n{output}\n[batch]\nmax_age_ms = 20\n\n[metrics]\naddress = \"127.0.0.1:0\"\n\n[pipeline]\nshutdown_timeout_secs = 2\n{extra}"
    );
    let unused = dir.path().join("unused");
    Cefgate::start_raw(dir, unused, &config, &[SECRET])
}

/// A configuration for `cefgate dlq` with `output` (the listener is never opened).
fn dlq_config(dir: &Path, output: &str) -> PathBuf {
    let path = dir.join("dlq.toml");
    std::fs::write(
        &path,
        format!("[[listener]]\nprotocol = \"udp\"\naddress = \"127.0.0.1:0\"\n\n{output}"),
    )
    .unwrap();
    path
}

/// Runs `cefgate ARGS`: success, and stdout then stderr.
fn cli(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cefgate"))
        .args(args)
        .env(SECRET.0, SECRET.1)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn dlq(action: &[&str], config: &Path) -> (bool, String) {
    let mut args = vec!["dlq"];
    args.extend_from_slice(action);
    args.extend_from_slice(&["--config", config.to_str().unwrap()]);
    cli(&args)
}

/// A CEF line numbered `i`; `POISON` makes the first emulator refuse it for good.
fn cef(i: u64) -> String {
    format!("<134>Nov 26 09:00:00 fw CEF:0|Acme|FW|1.0|100|Event|5|src=10.0.0.1 cn1={i} msg=POISON")
}

fn send(gate: &Cefgate, from: u64, n: u64) {
    let mut s = TcpStream::connect(gate.tcp.unwrap()).unwrap();
    let mut buf = Vec::new();
    for i in from..from + n {
        writeln!(buf, "{}", cef(i)).unwrap();
    }
    s.write_all(&buf).unwrap();
}

/// A counter on `/metrics` (`cefgate_NAME_total`).
fn metric(gate: &Cefgate, name: &str) -> u64 {
    let (status, body) = http_get(gate.metrics.unwrap(), "/metrics");
    assert_eq!(status, 200, "{body}");
    let prefix = format!("cefgate_{name}_total ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in:\n{body}"))
        .trim()
        .parse()
        .unwrap()
}

/// How many times each sequence number is in the dead-letter file (whole lines only).
fn dead_lettered(path: &Path) -> BTreeMap<u64, usize> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut seen = BTreeMap::new();
    for line in bytes.split(|b| *b == b'\n') {
        if let Ok(entry) = serde_json::from_slice::<serde_json::Value>(line)
            && let Some(n) = entry["row"]["FieldDeviceCustomNumber1"].as_u64()
        {
            *seen.entry(n).or_default() += 1;
        }
    }
    seen
}

/// How many times each sequence number reached the emulator.
fn delivered(emu: &Emulator) -> BTreeMap<u64, usize> {
    let mut seen = BTreeMap::new();
    for row in emu.rows(STREAM) {
        if let Some(n) = row["FieldDeviceCustomNumber1"].as_u64() {
            *seen.entry(n).or_default() += 1;
        }
    }
    seen
}

/// Files a replay moved aside and left next to `dlq`.
fn aside(dlq: &Path) -> Vec<PathBuf> {
    let stem = dlq.file_stem().unwrap().to_str().unwrap().to_string();
    std::fs::read_dir(dlq.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(&format!("{stem}.replaying-"))
        })
        .collect()
}

/// Item 1: the README's fix-then-replay step, run while the service goes on dead-lettering.
/// Every row is either delivered by a replay or still in the dead-letter file, exactly once.
#[test]
fn replay_while_the_service_runs_loses_no_dead_letter() {
    const ROWS: u64 = 600;
    let refusing = Emulator::start(&["--poison", "POISON"]);
    let fixed = Emulator::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let dlq_path = state.path().join("dead-letters.ndjson");
    let mut gate = gate(&output(&refusing.url, &dlq_path), "");
    let replay_config = dlq_config(state.path(), &output(&fixed.url, &dlq_path));

    send(&gate, 0, 100);
    wait_for("100 dead letters", DEADLINE, || {
        (dead_lettered(&dlq_path).len() == 100).then_some(())
    });
    // The rest arrive a few at a time while replays run, so that writes and replays overlap.
    let done = Arc::new(AtomicBool::new(false));
    let sender = {
        let tcp = gate.tcp.unwrap();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(tcp).unwrap();
            for i in 100..ROWS {
                writeln!(s, "{}", cef(i)).unwrap();
                if i % 5 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            done.store(true, Ordering::Relaxed);
        })
    };
    let mut replays = 0;
    while !done.load(Ordering::Relaxed) || replays < 3 {
        let (ok, text) = dlq(&["replay"], &replay_config);
        assert!(ok, "{text}");
        assert!(text.contains("0 dead-lettered again"), "{text}");
        replays += 1;
    }
    sender.join().unwrap();
    wait_for("every row dead-lettered once", DEADLINE, || {
        (metric(&gate, "rows_dead_lettered") == ROWS).then_some(())
    });
    let c = gate.stop();
    assert_eq!(c.get("rows_lost"), 0);

    let mut seen = delivered(&fixed);
    for (n, times) in dead_lettered(&dlq_path) {
        *seen.entry(n).or_default() += times;
    }
    let lost: Vec<u64> = (0..ROWS).filter(|n| !seen.contains_key(n)).collect();
    assert!(
        lost.is_empty(),
        "{} of {ROWS} rows lost over {replays} replays: {lost:?}",
        lost.len()
    );
    let twice: Vec<_> = seen.iter().filter(|(_, t)| **t > 1).collect();
    assert!(twice.is_empty(), "rows counted twice: {twice:?}");
    assert!(aside(&dlq_path).is_empty(), "{:?}", aside(&dlq_path));
}

/// Rows (and chunks) in the spool's chunk files, from their headers.
fn spooled_rows(dir: &Path) -> (usize, u64) {
    let mut chunks = 0;
    let mut rows = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "chunk") {
            // A chunk listed but gone by now was delivered and removed: it holds no rows.
            let Ok(data) = std::fs::read(&path) else {
                continue;
            };
            let end = data.iter().position(|b| *b == b'\n').unwrap();
            let header: serde_json::Value = serde_json::from_slice(&data[..end]).unwrap();
            rows += header["rows"].as_u64().unwrap();
            chunks += 1;
        }
    }
    (chunks, rows)
}

/// Item 5: the dead-letter path turns into a folder while the service runs (root ignores
/// permission bits, a folder in the way does not). The chunk stays, nothing is counted as
/// dead-lettered or lost, and once the folder is gone the rows are dead-lettered.
#[test]
fn a_failed_dead_letter_write_keeps_the_chunk_until_the_path_is_fixed() {
    let refusing = Emulator::start(&["--poison", "POISON"]);
    let state = tempfile::tempdir().unwrap();
    let spool = state.path().join("spool");
    let dlq_path = state.path().join("dead-letters.ndjson");
    let mut gate = gate(
        &output(&refusing.url, &dlq_path),
        &format!("\n[spool]\npath = \"{}\"\n", spool.display()),
    );
    std::fs::create_dir(&dlq_path).unwrap();
    send(&gate, 0, 10);
    wait_for("the failed write to be reported", DEADLINE, || {
        gate.stderr()
            .contains("to the dead-letter queue")
            .then_some(())
    });
    // A second failed attempt: the write is retried, the rows are still held.
    wait_for("the write to be retried", DEADLINE, || {
        (metric(&gate, "dead_letter_write_errors") >= 2).then_some(())
    });
    assert_eq!(spooled_rows(&spool).1, 10, "the chunk stays on disk");
    assert_eq!(metric(&gate, "rows_dead_lettered"), 0);
    assert_eq!(metric(&gate, "rows_lost"), 0);
    assert!(
        gate.stderr()
            .contains("cannot write 1 row(s) to the dead-letter queue"),
        "{}",
        gate.stderr()
    );
    assert!(gate.stderr().contains("retried"), "{}", gate.stderr());

    std::fs::remove_dir(&dlq_path).unwrap();
    wait_for("the rows dead-lettered", DEADLINE, || {
        (dead_lettered(&dlq_path).len() == 10).then_some(())
    });
    wait_for("the chunk deleted", DEADLINE, || {
        (spooled_rows(&spool) == (0, 0)).then_some(())
    });
    let c = gate.stop();
    assert_eq!(c.get("rows_dead_lettered"), 10);
    assert_eq!(c.get("rows_lost"), 0);
    assert_eq!(dead_lettered(&dlq_path), (0..10).map(|n| (n, 1)).collect());
}

/// Item 5, across a restart: a dead-letter file on a full disk (/dev/full refuses every write
/// with ENOSPC) at shutdown. The rows stay in the spool, counted nowhere; the next start,
/// with space again, dead-letters them.
#[test]
fn rows_that_cannot_be_dead_lettered_stay_in_the_spool_for_the_next_start() {
    let refusing = Emulator::start(&["--poison", "POISON"]);
    let state = tempfile::tempdir().unwrap();
    let spool = state.path().join("spool");
    let dlq_path = state.path().join("dead-letters.ndjson");
    let spool_config = format!("\n[spool]\npath = \"{}\"\n", spool.display());
    let mut first = gate(&output(&refusing.url, &dlq_path), &spool_config);
    std::os::unix::fs::symlink("/dev/full", &dlq_path).unwrap();
    send(&first, 0, 10);
    wait_for("the failed write to be reported", DEADLINE, || {
        first
            .stderr()
            .contains("to the dead-letter queue")
            .then_some(())
    });
    let c = first.stop();
    assert_eq!(c.get("rows_dead_lettered"), 0);
    assert_eq!(c.get("rows_lost"), 0);
    assert_eq!(spooled_rows(&spool).1, 10, "kept for the next start");

    std::fs::remove_file(&dlq_path).unwrap();
    let mut second = gate(&output(&refusing.url, &dlq_path), &spool_config);
    wait_for("the rows dead-lettered", DEADLINE, || {
        (dead_lettered(&dlq_path).len() == 10).then_some(())
    });
    wait_for("the chunk deleted", DEADLINE, || {
        (spooled_rows(&spool) == (0, 0)).then_some(())
    });
    let c = second.stop();
    assert_eq!(c.get("rows_dead_lettered"), 10);
    assert_eq!(c.get("rows_lost"), 0);
    assert_eq!(dead_lettered(&dlq_path), (0..10).map(|n| (n, 1)).collect());
}

/// One dead-letter line for row `n` in `table`.
fn entry(n: u64, table: &str) -> String {
    format!(
        "{{\"deadLetteredAt\":\"2026-11-26T10:00:00Z\",\"table\":\"{table}\",\"route\":\"{STREAM}\",\"error\":\"HTTP 400\",\"row\":{{\"TimeGenerated\":\"2026-11-26T10:00:00Z\",\"FieldDeviceCustomNumber1\":{n}}}}}\n"
    )
}

/// Item 6: an entry whose table is not a known name is kept in the file, and reported with
/// its line number, never deleted unsent.
#[test]
fn replay_keeps_entries_with_an_unknown_table_and_says_which() {
    let emu = Emulator::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let dlq_path = state.path().join("dead-letters.ndjson");
    let unknown: Vec<u64> = (0..100).filter(|n| n % 17 == 5).collect();
    let mut text = String::new();
    for n in 0..100 {
        let table = if unknown.contains(&n) {
            "CommonSecurityLogs"
        } else {
            "CommonSecurityLog"
        };
        text.push_str(&entry(n, table));
    }
    std::fs::write(&dlq_path, &text).unwrap();
    let config = dlq_config(state.path(), &output(&emu.url, &dlq_path));

    let (ok, listed) = dlq(&["list"], &config);
    assert!(ok, "{listed}");
    assert!(listed.contains("100 dead-lettered row(s)"), "{listed}");
    let (ok, dry) = dlq(&["replay", "--dry-run"], &config);
    assert!(ok, "{dry}");
    assert!(dry.contains("would send 94 row(s)"), "{dry}");

    let (ok, replayed) = dlq(&["replay"], &config);
    assert!(ok, "{replayed}");
    assert!(
        replayed.contains("replayed 94 row(s): 94 delivered, 0 dead-lettered again"),
        "{replayed}"
    );
    let lines: Vec<String> = unknown.iter().map(|n| (n + 1).to_string()).collect();
    assert!(
        replayed.contains(&format!(
            "kept 6 entries whose table is not a known name (lines {})",
            lines.join(", ")
        )),
        "{replayed}"
    );
    let sent: Vec<u64> = delivered(&emu).into_keys().collect();
    assert_eq!(
        sent,
        (0..100)
            .filter(|n| !unknown.contains(n))
            .collect::<Vec<_>>()
    );
    let kept: String = unknown
        .iter()
        .map(|n| entry(*n, "CommonSecurityLogs"))
        .collect();
    assert_eq!(std::fs::read_to_string(&dlq_path).unwrap(), kept);
    assert!(aside(&dlq_path).is_empty(), "{:?}", aside(&dlq_path));
}

/// Item 6: one invalid UTF-8 byte makes its own line unreadable, not the file: `list`, the
/// dry run and the replay go on, and the line is kept byte for byte.
#[test]
fn one_invalid_byte_spoils_only_its_own_line() {
    let emu = Emulator::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let dlq_path = state.path().join("dead-letters.ndjson");
    let mut bytes = Vec::new();
    let mut bad = Vec::new();
    for n in 0..10 {
        if n == 3 {
            bad = entry(n, "CommonSecurityLog").into_bytes();
            let at = bad.iter().position(|b| *b == b'4').unwrap();
            bad[at] = 0xff;
            bytes.extend_from_slice(&bad);
        } else {
            bytes.extend_from_slice(entry(n, "CommonSecurityLog").as_bytes());
        }
    }
    std::fs::write(&dlq_path, &bytes).unwrap();
    let config = dlq_config(state.path(), &output(&emu.url, &dlq_path));

    let (ok, listed) = dlq(&["list"], &config);
    assert!(ok, "{listed}");
    assert!(listed.contains("9 dead-lettered row(s)"), "{listed}");
    assert!(listed.contains("unreadable lines: [4]"), "{listed}");
    let (ok, dry) = dlq(&["replay", "--dry-run"], &config);
    assert!(ok, "{dry}");
    assert!(dry.contains("would send 9 row(s)"), "{dry}");

    let (ok, replayed) = dlq(&["replay"], &config);
    assert!(ok, "{replayed}");
    assert!(
        replayed.contains("replayed 9 row(s): 9 delivered"),
        "{replayed}"
    );
    assert!(
        replayed.contains("kept 1 unreadable line (line 4)"),
        "{replayed}"
    );
    assert_eq!(
        delivered(&emu).into_keys().collect::<Vec<_>>(),
        [0, 1, 2, 4, 5, 6, 7, 8, 9]
    );
    assert_eq!(std::fs::read(&dlq_path).unwrap(), bad, "kept byte for byte");
    assert!(aside(&dlq_path).is_empty(), "{:?}", aside(&dlq_path));
}

/// Item 6: a file moved aside by a replay that was killed is shown by `list` and sent by the
/// next replay; one that a running replay holds is shown as such and left to it.
#[test]
fn a_file_left_by_an_interrupted_replay_is_listed_and_sent_by_the_next_replay() {
    let emu = Emulator::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let dlq_path = state.path().join("dead-letters.ndjson");
    let left = state.path().join("dead-letters.replaying-4000001");
    let running = state.path().join("dead-letters.replaying-4000002");
    std::fs::write(
        &dlq_path,
        (0..3)
            .map(|n| entry(n, "CommonSecurityLog"))
            .collect::<String>(),
    )
    .unwrap();
    std::fs::write(
        &left,
        (3..8)
            .map(|n| entry(n, "CommonSecurityLog"))
            .collect::<String>(),
    )
    .unwrap();
    std::fs::write(&running, entry(8, "CommonSecurityLog")).unwrap();
    // A replay in progress holds the lock on its file for as long as it runs.
    let held = std::fs::File::open(&running).unwrap();
    held.lock().unwrap();
    let config = dlq_config(state.path(), &output(&emu.url, &dlq_path));

    let (ok, listed) = dlq(&["list"], &config);
    assert!(ok, "{listed}");
    assert!(listed.contains("3 dead-lettered row(s)"), "{listed}");
    assert!(
        listed.contains(&format!(
            "{}: 5 dead-lettered row(s) left by an interrupted replay",
            left.display()
        )),
        "{listed}"
    );
    assert!(
        listed.contains(&format!(
            "{}: 1 dead-lettered row(s) being sent by a running replay",
            running.display()
        )),
        "{listed}"
    );
    let (ok, dry) = dlq(&["replay", "--dry-run"], &config);
    assert!(ok, "{dry}");
    assert!(dry.contains("would send 8 row(s)"), "{dry}");

    let (ok, replayed) = dlq(&["replay"], &config);
    assert!(ok, "{replayed}");
    assert!(
        replayed.contains("replayed 8 row(s): 8 delivered, 0 dead-lettered again"),
        "{replayed}"
    );
    assert_eq!(
        delivered(&emu).into_keys().collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    assert!(!left.exists(), "the interrupted replay's file is taken");
    assert_eq!(
        aside(&dlq_path),
        std::slice::from_ref(&running),
        "the running one is left alone"
    );
    assert!(!dlq_path.exists() || dead_lettered(&dlq_path).is_empty());
    drop(held);
}

/// Item 6: entries of a route the configuration turns off (an empty stream) are not sent,
/// so they are kept, not counted as replayed and deleted.
#[test]
fn replay_keeps_entries_of_a_route_turned_off() {
    let emu = Emulator::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let dlq_path = state.path().join("dead-letters.ndjson");
    let syslog = entry(1, "Syslog").replace(STREAM, "Custom-CefGate_Syslog");
    std::fs::write(&dlq_path, entry(0, "CommonSecurityLog") + &syslog).unwrap();
    let config = dlq_config(
        state.path(),
        &(output(&emu.url, &dlq_path) + "syslog_stream = \"\"\n"),
    );
    let (ok, replayed) = dlq(&["replay"], &config);
    assert!(ok, "{replayed}");
    assert!(
        replayed.contains("replayed 1 row(s): 1 delivered, 0 dead-lettered again"),
        "{replayed}"
    );
    assert!(
        replayed.contains("kept 1 entry whose route this configuration turns off (line 2)"),
        "{replayed}"
    );
    assert_eq!(std::fs::read_to_string(&dlq_path).unwrap(), syslog);
    assert!(aside(&dlq_path).is_empty(), "{:?}", aside(&dlq_path));
}
