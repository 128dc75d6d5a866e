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

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!("[[listener]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n\n[output]\ntype = \"stdout\"\n"),
    )
    .unwrap();
    let out = cefgate(&["run", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!("cannot bind tcp 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("another process already listens there"),
        "{stderr}"
    );
}
