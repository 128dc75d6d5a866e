//! Every capture in `fixtures/` converts to exactly its golden rows, through the real binary.
//! The goldens were checked by hand (fixtures/README.md); to see a difference after a
//! deliberate change, run `scripts/regenerate-goldens` and review `git diff fixtures/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ARGS: [&str; 5] = [
    "convert",
    "--received-at",
    "2026-11-26T10:00:00Z",
    "--collector-host",
    "cefgate-test",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn cefgate(extra: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cefgate"))
        .args(ARGS)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cefgate runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn every_fixture_matches_its_golden_rows() {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    assert!(logs.len() >= 15, "fixtures missing: {logs:?}");
    let mut failures = Vec::new();
    for log in &logs {
        let golden = log.with_extension("ndjson");
        let want = std::fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
        let out = cefgate(&[log.to_str().unwrap()], None);
        assert!(
            out.status.success(),
            "{}: {}",
            log.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let got = String::from_utf8(out.stdout).unwrap();
        let input_lines = std::fs::read(log).unwrap().split(|b| *b == b'\n').count() - 1;
        assert_eq!(
            got.lines().count(),
            input_lines,
            "{}: one row per line",
            log.display()
        );
        for (n, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            if g != w {
                failures.push(format!(
                    "{}:{}\n  got  {g}\n  want {w}",
                    log.display(),
                    n + 1
                ));
            }
        }
        if got.lines().count() != want.lines().count() {
            failures.push(format!(
                "{}: row count differs from the golden",
                log.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn stdin_and_several_files_keep_input_order() {
    let a = fixtures().join("cisco.log");
    let b = fixtures().join("fortinet.log");
    let both = cefgate(&[a.to_str().unwrap(), b.to_str().unwrap()], None);
    let mut want = std::fs::read_to_string(a.with_extension("ndjson")).unwrap();
    want.push_str(&std::fs::read_to_string(b.with_extension("ndjson")).unwrap());
    assert_eq!(String::from_utf8(both.stdout).unwrap(), want);

    let piped = cefgate(&[], Some(&std::fs::read(&a).unwrap()));
    assert_eq!(
        String::from_utf8(piped.stdout).unwrap(),
        std::fs::read_to_string(a.with_extension("ndjson")).unwrap()
    );
}

#[test]
fn last_line_without_newline_and_crlf_are_lines() {
    let out = cefgate(
        &[],
        Some(b"<13>Nov 26 09:00:00 h a: one\r\n<13>Nov 26 09:00:01 h a: two"),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 2);
    assert!(
        rows[0].ends_with(r#""SyslogMessage":"one"}"#),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].ends_with(r#""SyslogMessage":"two"}"#),
        "{}",
        rows[1]
    );
}

#[test]
fn malformed_lines_still_exit_zero_and_are_counted() {
    let out = cefgate(&[], Some(b"CEF:0|V|P\nno header\n"));
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 2);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("2 rows with problems"), "{stderr}");
    assert!(stderr.contains("cef-header-incomplete=1"), "{stderr}");
    assert!(stderr.contains("no-syslog-header=1"), "{stderr}");
}

#[test]
fn unreadable_input_is_a_clear_error() {
    let out = cefgate(&["/nonexistent/capture.log"], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("cannot open /nonexistent/capture.log"),
        "{stderr}"
    );
}

#[test]
fn bad_options_are_refused() {
    for (flag, value, says) in [
        ("--received-at", "yesterday", "not an RFC 3339 time"),
        ("--timezone", "Mars/Base", "is not UTC, local, an IANA zone"),
        ("--time-generated", "rt,bogus", "unknown source \"bogus\""),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_cefgate"))
            .args(["convert", flag, value])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} {value}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(says), "{flag}: {stderr}");
    }
}
