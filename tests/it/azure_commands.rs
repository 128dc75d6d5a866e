//! End to end against the emulator, continued: the credentials that need more than a
//! secret (Azure Arc's key-file challenge, a client certificate), and the commands that
//! talk to Azure outside `run` (`check --live`, `dlq`), with what `run` leaves on disk.
#![cfg(feature = "emulator")]

use crate::support as common;

use common::Cefgate;

use crate::azure::*;

#[test]
fn an_azure_arc_identity_answers_the_key_file_challenge() {
    let emu = emulator(&[]);
    let arc = li_output(
        &emu,
        &format!(
            "credential = \"arc-managed-identity\"\nmanaged_identity_endpoint = \"{}/arc/metadata/identity/oauth2/token\"\narc_key_folder = \"{}\"",
            emu.url,
            emu.data.path().join("arc-tokens").display()
        ),
    )
    .replace("client_secret_env = \"CEFGATE_CLIENT_SECRET\"\n", "")
    .replace("tenant_id = \"00000000-0000-0000-0000-000000000000\"\n", "")
    .replace("client_id = \"00000000-0000-0000-0000-000000000000\"\n", "");
    let mut first = gate(&arc, "");
    send(&first, &[cef(1, "msg=arc")]);
    let rows = emu.wait_rows("Custom-CefGate_CommonSecurityLog", 1);
    assert_eq!(rows[0]["Message"], "arc");
    let counts = emu.counts();
    assert_eq!(counts["tokens_issued"], 1, "{counts}");
    first.stop();

    // A key folder that is not the one the agent names: refused, nothing read, rows held.
    let elsewhere = arc.replace(
        &emu.data.path().join("arc-tokens").display().to_string(),
        "/var/opt/azcmagent/tokens",
    );
    let mut gate = gate(&elsewhere, "\n[pipeline]\nshutdown_timeout_secs = 1");
    send(&gate, &[cef(2, "msg=held")]);
    common::wait_for("the refusal", common::DEADLINE, || {
        gate.stderr()
            .contains("is not a .key file in /var/opt/azcmagent/tokens")
            .then_some(())
    });
    assert_eq!(emu.counts()["tokens_issued"], 1);
    let c = gate.stop();
    assert_eq!(
        c.get("rows_dead_lettered"),
        1,
        "held, then dead-lettered at shutdown"
    );
}

/// An RSA key and a self-signed certificate for it, made with `openssl` (installed by
/// .ci/run), in `dir` as `<name>.key` and `<name>.pem`.
fn rsa_certificate(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (key, cert) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pem")),
    );
    let ok = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
        ])
        .arg(format!("/CN={name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    (key, cert)
}

#[test]
fn a_client_certificate_signs_an_assertion_the_emulator_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = rsa_certificate(dir.path(), "registered");
    let (other_key, other_cert) = rsa_certificate(dir.path(), "unknown");
    let emu = emulator(&["--client-certificate", cert.to_str().unwrap()]);
    let output = |cert: &std::path::Path, key: &std::path::Path| {
        li_output(
            &emu,
            &format!(
                "credential = \"client-certificate\"\nclient_certificate_file = \"{}\"\nclient_key_file = \"{}\"",
                cert.display(),
                key.display()
            ),
        )
        .replace("client_secret_env = \"CEFGATE_CLIENT_SECRET\"\n", "")
    };
    let mut first = gate(&output(&cert, &key), "");
    send(&first, &[cef(1, "msg=certificate")]);
    let rows = emu.wait_rows("Custom-CefGate_CommonSecurityLog", 1);
    assert_eq!(rows[0]["Message"], "certificate");
    assert_eq!(emu.counts()["tokens_issued"], 1);
    first.stop();

    // A certificate the app does not know: refused, rows held, no token.
    let mut second = gate(
        &output(&other_cert, &other_key),
        "\n[pipeline]\nshutdown_timeout_secs = 1",
    );
    send(&second, &[cef(2, "msg=held")]);
    common::wait_for("the refusal", common::DEADLINE, || {
        second.stderr().contains("AADSTS700027").then_some(())
    });
    assert_eq!(emu.counts()["tokens_issued"], 1);
    second.stop();
    let key_text = std::fs::read_to_string(&key).unwrap();
    let secret_line = key_text.lines().nth(1).unwrap();
    assert!(
        !second.stderr().contains(secret_line),
        "no key material in logs"
    );
}

fn cefgate_cli(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cefgate"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("CEFGATE_CLIENT_SECRET")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn check_live_tries_every_route_and_says_what_to_fix() {
    let emu = emulator(&[]);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, output: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!("[[listener]]\nprotocol = \"udp\"\naddress = \"127.0.0.1:0\"\n\n{output}\ndead_letter_path = \"{}\"\n", dir.path().join("dlq.ndjson").display()),
        )
        .unwrap();
        path.display().to_string()
    };
    let good = write("good.toml", &li_output(&emu, ""));
    let (ok, text) = cefgate_cli(
        &["check", "--live", &good],
        &[("CEFGATE_CLIENT_SECRET", SECRET)],
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("Custom-CefGate_CommonSecurityLog: ok"),
        "{text}"
    );
    assert!(text.contains("Custom-CefGate_Syslog: ok"), "{text}");
    assert!(
        emu.rows("Custom-CefGate_CommonSecurityLog").is_empty(),
        "no row is sent"
    );

    let wrong_dcr = write(
        "wrong-dcr.toml",
        &li_output(&emu, "").replace(
            "dcr-00000000000000000000000000000000",
            "dcr-ffffffffffffffffffffffffffffffff",
        ),
    );
    let (ok, text) = cefgate_cli(
        &["check", "--live", "--config", &wrong_dcr],
        &[("CEFGATE_CLIENT_SECRET", SECRET)],
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("Custom-CefGate_CommonSecurityLog: FAILED: HTTP 404"),
        "{text}"
    );
    assert!(
        text.contains("check endpoint, dcr_id (the DCR's immutable ID) and the stream name"),
        "{text}"
    );

    let (ok, text) = cefgate_cli(
        &["check", "--live", &good],
        &[("CEFGATE_CLIENT_SECRET", "not-the-secret")],
    );
    assert!(!ok, "{text}");
    assert!(text.contains("FAILED"), "{text}");
    assert!(
        !text.contains("not-the-secret"),
        "the secret is never shown: {text}"
    );
}

#[test]
fn dlq_list_and_a_dry_run_need_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let dlq = dir.path().join("dlq.ndjson");
    std::fs::write(
        &dlq,
        "{\"deadLetteredAt\":\"2026-11-26T10:00:00Z\",\"table\":\"CommonSecurityLog\",\"route\":\"Custom-CefGate_CommonSecurityLog\",\"error\":\"HTTP 400\",\"row\":{\"TimeGenerated\":\"2026-11-26T10:00:00Z\"}}\n",
    )
    .unwrap();
    let config = dir.path().join("cefgate.toml");
    std::fs::write(
        &config,
        format!(
            "[[listener]]\nprotocol = \"udp\"\naddress = \"127.0.0.1:0\"\n\n[output]\ntype = \"logs-ingestion\"\nendpoint = \"https://example.invalid\"\ndcr_id = \"dcr-00000000000000000000000000000000\"\ncef_stream = \"Custom-CefGate_CommonSecurityLog\"\nsyslog_stream = \"Custom-CefGate_Syslog\"\ntenant_id = \"00000000-0000-0000-0000-000000000000\"\nclient_id = \"00000000-0000-0000-0000-000000000000\"\nclient_secret_env = \"CEFGATE_UNSET_SECRET\"\ndead_letter_path = \"{}\"\n",
            dlq.display()
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let (ok, text) = cefgate_cli(&["dlq", "list", "--config", c], &[]);
    assert!(ok, "{text}");
    assert!(text.contains("1 dead-lettered row(s)"), "{text}");
    let (ok, text) = cefgate_cli(&["dlq", "replay", "--dry-run", "--config", c], &[]);
    assert!(ok, "{text}");
    assert!(text.contains("would send 1 row(s)"), "{text}");
    assert!(dlq.exists(), "a dry run moves nothing");
    // A real replay does need the secret, and says which.
    let (ok, text) = cefgate_cli(&["dlq", "replay", "--config", c], &[]);
    assert!(!ok);
    assert!(
        text.contains("CEFGATE_UNSET_SECRET (the client secret) is not set"),
        "{text}"
    );
}

/// Started from an empty folder with an Azure output and no dead-letter path, cefgate
/// creates nothing there, not even when a row is dead-lettered: that goes to the state
/// folder.
#[test]
fn nothing_is_created_in_the_working_directory() {
    let emu = emulator(&["--poison", "POISON"]);
    let cwd = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[[listener]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n{}\n[batch]\nmax_age_ms = 50\n",
        li_output(&emu, "")
    );
    let state_path = state.path().to_str().unwrap().to_string();
    let mut gate = Cefgate::start_in(
        dir,
        state.path().join("cefgate/dead-letters.ndjson"),
        &config,
        &[
            ("CEFGATE_CLIENT_SECRET", SECRET),
            ("XDG_STATE_HOME", &state_path),
            ("STATE_DIRECTORY", ""),
        ],
        Some(cwd.path()),
    );
    send(&gate, &[cef(1, ""), cef(2, "msg=POISON")]);
    emu.wait_rows("Custom-CefGate_CommonSecurityLog", 1);
    let dead = gate.wait_rows(1);
    assert!(dead[0].to_string().contains("POISON"));
    let c = gate.stop();
    assert_eq!(c.get("rows_dead_lettered"), 1);
    let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "cefgate created {left:?} in its working directory"
    );
}

#[test]
fn an_emulator_that_only_counts_checks_and_counts_rows_without_storing_them() {
    let emu = emulator(&["--count-only"]);
    let mut gate = gate(&li_output(&emu, ""), "");
    send(&gate, &(0..20).map(|i| cef(i, "")).collect::<Vec<_>>());
    common::wait_for("20 rows counted", common::DEADLINE, || {
        let counts = emu.counts();
        (counts["rows"]["Custom-CefGate_CommonSecurityLog"] == 20).then_some(())
    });
    assert!(emu.rows("Custom-CefGate_CommonSecurityLog").is_empty());
    assert_eq!(
        std::fs::read_dir(emu.data.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "ndjson"))
            .count(),
        0,
        "no row file"
    );
    gate.stop();
}
