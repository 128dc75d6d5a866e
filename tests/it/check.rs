//! `cefgate check` validates a configuration and `cefgate run` refuses an invalid one with
//! the same report.

use std::process::Command;

fn cefgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cefgate"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn check_accepts_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.toml");
    std::fs::write(
        &path,
        "[[listener]]\nprotocol = \"udp\"\naddress = \"0.0.0.0:514\"\n\n[output]\ntype = \"file\"\npath = \"/tmp/rows.ndjson\"\n",
    )
    .unwrap();
    let out = cefgate(&["check", "--config", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("valid (1 listener)")
    );
}

#[test]
fn check_and_run_report_every_problem_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[listener]]\nprotocol = \"tcp\"\naddress = \"localhost:514\"\nframing = \"auto\"\n\n[[listener]]\nprotocol = \"tls\"\naddress = \"0.0.0.0:6514\"\n\n[output]\ntype = \"file\"\npath = \"/nonexistent-dir/rows.ndjson\"\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    for args in [vec!["check", "--config", p], vec!["run", "--config", p]] {
        let out = cefgate(&args);
        assert!(!out.status.success(), "{args:?} accepted an invalid file");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains(&format!(
                "{p}:3:11: address \"localhost:514\" is not IP:PORT"
            )),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("{p}:6:1: a tls listener needs `cert`")),
            "{stderr}"
        );
        assert!(stderr.contains("a tls listener needs `key`"), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "{p}:12:8: directory /nonexistent-dir does not exist"
            )),
            "{stderr}"
        );
    }
}

/// Runs `cefgate run` with `listeners` and a stdout output, one of them on a port another
/// process holds; it must stop within 20 s, non-zero, naming the address and the reason.
fn run_with_a_port_in_use(listeners: impl Fn(u16) -> String) {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!("{}\n[output]\ntype = \"stdout\"\n", listeners(port)),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cefgate"))
        .args(["run", "--config", path.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > until {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("run did not stop within 20 s after a listener failed to bind");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains(&format!("cannot bind tcp 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("another process already listens there"),
        "{stderr}"
    );
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    run_with_a_port_in_use(|port| {
        format!("[[listener]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n")
    });
}

/// A listener after the first that cannot bind stops `run` at once (the listeners already
/// serving must not keep it waiting for ever).
#[test]
fn a_later_listener_that_cannot_bind_fails_the_run_at_once() {
    run_with_a_port_in_use(|port| {
        format!(
            "[[listener]]\nprotocol = \"udp\"\naddress = \"127.0.0.1:0\"\n\n[[listener]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n[[listener]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n"
        )
    });
}

/// `LINE:COL` of the first `needle` in `text` (both 1-based, columns in characters).
fn locate(text: &str, needle: &str) -> String {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in {text}"));
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap().chars().count() + 1;
    format!("{line}:{column}")
}

#[test]
fn settings_that_would_break_a_run_are_refused_by_check_and_run_with_their_location() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    std::fs::write(dir.path().join("a-file"), "x").unwrap();
    std::fs::write(dir.path().join("not.pem"), "hello, not a certificate\n").unwrap();
    std::fs::write(dir.path().join("key.txt"), "not base64!!\n").unwrap();
    std::fs::write(dir.path().join("good-key.txt"), "AAECAwQFBgcICQ==\n").unwrap();
    let tcp = "[[listener]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:0\"\n";
    let file_output = format!("[output]\ntype = \"file\"\npath = \"{d}/rows.ndjson\"\n");
    // (configuration, where the problem is, what it says)
    let cases: Vec<(String, String, &str)> = vec![
        (
            format!("{tcp}max_connections = 9223372036854775807\n{file_output}"),
            "9223372036854775807".into(),
            "max_connections = 9223372036854775807 is out of range",
        ),
        (
            format!(
                "{tcp}[output]\ntype = \"data-collector\"\nworkspace_id = \"00000000-0000-0000-0000-000000000000\"\nshared_key_file = \"{d}/good-key.txt\"\nconcurrency = 9223372036854775807\n"
            ),
            "9223372036854775807".into(),
            "concurrency = 9223372036854775807 is out of range",
        ),
        (
            format!(
                "{tcp}{file_output}\n[pipeline]\nshutdown_timeout_secs = 9223372036854775807\n"
            ),
            "9223372036854775807".into(),
            "shutdown_timeout_secs = 9223372036854775807 is out of range",
        ),
        (
            format!("{tcp}{file_output}\n[pipeline]\nworkers = 1000000\n"),
            "1000000".into(),
            "workers = 1000000 is out of range: use 0 to 256",
        ),
        (
            format!("{tcp}idle_timeout_secs = 0\n{file_output}"),
            "0\n[output]".into(),
            "idle_timeout_secs = 0 is out of range",
        ),
        (
            format!(
                "[[listener]]\nprotocol = \"tls\"\naddress = \"127.0.0.1:0\"\ncert = \"{d}/not.pem\"\nkey = \"{d}/not.pem\"\n{file_output}"
            ),
            format!("\"{d}/not.pem\""),
            "no certificate found",
        ),
        (
            format!("{tcp}{file_output}\n[spool]\npath = \"{d}/a-file\"\n"),
            format!("\"{d}/a-file\""),
            "exists and is not a directory",
        ),
        (
            format!("{tcp}[output]\ntype = \"file\"\npath = \"{d}\"\n"),
            format!("\"{d}\""),
            "is a directory",
        ),
        (
            format!("{tcp}{file_output}concurrency = 4\n"),
            "4\n".into(),
            "`concurrency` does not apply to a file output",
        ),
        (
            format!(
                "{tcp}[output]\ntype = \"data-collector\"\nworkspace_id = \"00000000-0000-0000-0000-000000000000\"\nshared_key_file = \"{d}/key.txt\"\n"
            ),
            format!("\"{d}/key.txt\""),
            "not valid base64",
        ),
    ];
    let mut cases = cases;
    let n = cases.len();
    cases.extend([
        (
            format!("{tcp}[output]\ntype = \"file\"\npath = \"\"\n"),
            "\"\"\n".into(),
            "the path is empty",
        ),
        (
            format!("{tcp}[output]\ntype = \"file\"\npath = \"{d}/a\\u0000b\"\n"),
            format!("\"{d}/a\\u0000b\""),
            "holds a NUL byte",
        ),
        (
            format!(
                "[[listener]]\nprotocol = \"tcp\"\naddress = \"0.0.0.0:5599\"\n{file_output}\n[metrics]\naddress = \"127.0.0.1:5599\"\n"
            ),
            "\"127.0.0.1:5599\"".into(),
            "takes the port of the tcp listener on 0.0.0.0:5599",
        ),
        (
            format!("{tcp}{file_output}\n[spool]\npath = \"/proc/cefgate-spool\"\n"),
            "\"/proc/cefgate-spool\"".into(),
            "is on the kernel's proc filesystem",
        ),
        (
            // The case's own file (case-N.toml) as the output.
            format!(
                "{tcp}[output]\ntype = \"file\"\npath = \"{d}/case-{}.toml\"\n",
                n + 4
            ),
            format!("\"{d}/case-{}.toml\"", n + 4),
            "is this configuration file",
        ),
        (
            format!(
                "[[listener]]\nprotocol = \"tcp\"\naddress = \"0.0.0.0:5598\"\n\n[[listener]]\nprotocol = \"tls\"\naddress = \"127.0.0.1:5598\"\n{file_output}"
            ),
            "\"127.0.0.1:5598\"".into(),
            "127.0.0.1:5598 is already used by another tls listener",
        ),
        (
            // 10,000 levels overflowed the stack of `check`; the error is at the 65th.
            format!(
                "{tcp}{file_output}where = \"{}DeviceVendor == 'x'{}\"\n",
                "(".repeat(10_000),
                ")".repeat(10_000)
            ),
            format!("{}DeviceVendor", "(".repeat(10_000 - 64)),
            "in `where`: nested more than 64 levels deep",
        ),
    ]);
    for (i, (text, at, message)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("case-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let p = path.to_str().unwrap();
        let expected = format!("{p}:{}: ", locate(text, at));
        for command in ["check", "run"] {
            let out = cefgate(&[command, "--config", p]);
            let stderr = String::from_utf8(out.stderr).unwrap();
            assert!(!out.status.success(), "{command} accepted:\n{text}");
            let line = stderr
                .lines()
                .find(|l| l.contains(message))
                .unwrap_or_else(|| panic!("{command}: no {message:?} in:\n{stderr}"));
            assert!(
                line.starts_with(&expected),
                "{command}: {line:?}, expected {expected}"
            );
            assert!(
                !stderr.contains("not base64!!"),
                "the key must not be shown"
            );
        }
    }
}

#[test]
fn a_secret_file_others_can_read_is_warned_about_never_shown() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("client-secret");
    std::fs::write(&secret, "the-client-secret-value\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = dir.path().join("li.toml");
    std::fs::write(
        &path,
        format!(
            "[[listener]]\nprotocol = \"udp\"\naddress = \"127.0.0.1:0\"\n\n[output]\ntype = \"logs-ingestion\"\nendpoint = \"https://example.invalid\"\ndcr_id = \"dcr-00000000000000000000000000000000\"\ntenant_id = \"00000000-0000-0000-0000-000000000000\"\nclient_id = \"00000000-0000-0000-0000-000000000000\"\nclient_secret_file = \"{}\"\ndead_letter_path = \"{}\"\n",
            secret.display(),
            dir.path().join("dlq.ndjson").display()
        ),
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let out = cefgate(&["check", p]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "a warning, not an error: {stderr}");
    assert!(
        stderr.contains(&format!(
            "{p}:11:22: warning: {} holds a secret that other users can read (mode 0644)",
            secret.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("the-client-secret-value"));
    // 0600 (or 0640) is quiet.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = cefgate(&["check", p]);
    assert!(!String::from_utf8(out.stderr).unwrap().contains("warning"));
}
