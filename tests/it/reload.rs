//! SIGHUP under real operations: a renewed TLS certificate, a changed timeout, a changed UDP
//! setting. Sessions open at the reload go on; new ones get the new settings; every row sent
//! is counted by its sequence number.

use crate::support as common;

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::sync::Arc;

use common::{Cefgate, DEADLINE, signal, wait_for};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::Value;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// Every `tag-0` .. `tag-{n-1}` exactly once in `rows`.
fn each_once(rows: &[Value], tag: &str, n: usize) {
    let mut seen = vec![0u32; n];
    for r in rows {
        if let Some(i) = r["SyslogMessage"].as_str().and_then(|m| {
            m.strip_prefix(tag)?
                .strip_prefix('-')?
                .parse::<usize>()
                .ok()
        }) && i < n
        {
            seen[i] += 1;
        }
    }
    let wrong: Vec<_> = seen
        .iter()
        .enumerate()
        .filter(|(_, c)| **c != 1)
        .map(|(i, c)| format!("{tag}-{i} x{c}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} wrong: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
}

/// Rewrites the configuration and waits for the reload to finish.
fn reload(gate: &Cefgate, config: &str) {
    let done = gate.stderr().matches("SIGHUP: reload done").count();
    std::fs::write(gate.dir.path().join("cefgate.toml"), config).unwrap();
    signal(gate.pid(), "HUP");
    wait_for("the reload", DEADLINE, || {
        (gate.stderr().matches("SIGHUP: reload done").count() > done).then_some(())
    });
    assert!(
        !gate.stderr().contains("reload done with errors"),
        "{}",
        gate.stderr()
    );
}

fn config(gate_dir: &Path, listeners: &str) -> String {
    format!(
        "{listeners}\n[output]\ntype = \"file\"\npath = \"{}\"\n\n[batch]\nmax_age_ms = 20\n",
        gate_dir.join("rows.ndjson").display()
    )
}

/// A CA, and a server certificate for localhost signed by it, written as server.pem/.key.
fn server_certificate(dir: &Path, ca: &CertifiedIssuer<'_, KeyPair>) -> CertificateDer<'static> {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, ca)
        .unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    cert.der().clone()
}

fn tls_client(
    ca: &CertifiedIssuer<'_, KeyPair>,
    address: std::net::SocketAddr,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(address).unwrap());
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

/// A certificate renewal (new files, SIGHUP) while a TLS session streams: the session goes
/// on, every row lands once, and the next handshake presents the new certificate.
#[test]
fn a_certificate_renewal_keeps_the_open_tls_session() {
    let certs = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let first = server_certificate(certs.path(), &ca);
    let listener = format!(
        "[[listener]]\nprotocol = \"tls\"\naddress = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n",
        certs.path().join("server.pem").display(),
        certs.path().join("server.key").display()
    );
    let mut gate = Cefgate::start(&listener);
    let address = gate.tls.unwrap();
    let mut session = tls_client(&ca, address);
    assert_eq!(session.conn.peer_certificates().unwrap()[0], first);
    let send = |tls: &mut rustls::StreamOwned<_, _>, from: usize, to: usize| {
        for i in from..to {
            let m = format!("<14>host app: tls-{i}");
            write!(tls, "{} {m}", m.len()).unwrap();
        }
        tls.flush().unwrap();
    };
    send(&mut session, 0, 5_000);
    wait_for("the first rows", DEADLINE, || {
        (!gate.rows().is_empty()).then_some(())
    });

    let renewed = server_certificate(certs.path(), &ca);
    assert_ne!(first, renewed);
    reload(&gate, &config(gate.dir.path(), &listener));
    // The session opened before the renewal still carries rows.
    send(&mut session, 5_000, 10_000);
    session.conn.send_close_notify();
    session.flush().unwrap();
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut session, &mut rest).unwrap();
    // A new handshake gets the new certificate, on the same port.
    let mut next = tls_client(&ca, address);
    assert_eq!(next.conn.peer_certificates().unwrap()[0], renewed);
    send(&mut next, 10_000, 10_100);
    next.conn.send_close_notify();
    next.flush().unwrap();
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut next, &mut rest).unwrap();
    let until = std::time::Instant::now() + DEADLINE;
    while gate.rows().len() < 10_100 && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let all = gate.rows();
    if all.len() != 10_100 {
        each_once(&all, "tls", 10_100);
        panic!("{} rows\n{}", all.len(), gate.stderr());
    }
    let counters = gate.stop();
    each_once(&gate.rows(), "tls", 10_100);
    assert_eq!(counters.get("connections_accepted"), 2);
    assert_eq!(counters.get("rows_total"), 10_100);
}

/// A changed `idle_timeout_secs` applies to new connections; an open one goes on.
#[test]
fn a_changed_tcp_setting_keeps_the_open_connection() {
    let tcp = "[[listener]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:0\"\n";
    let mut gate = Cefgate::start(tcp);
    let address = gate.tcp.unwrap();
    let mut stream = TcpStream::connect(address).unwrap();
    for i in 0..2_000 {
        writeln!(stream, "<14>host app: tcp-{i}").unwrap();
    }
    stream.flush().unwrap();
    wait_for("the first rows", DEADLINE, || {
        (!gate.rows().is_empty()).then_some(())
    });
    reload(
        &gate,
        &config(gate.dir.path(), &format!("{tcp}idle_timeout_secs = 120\n")),
    );
    for i in 2_000..4_000 {
        writeln!(stream, "<14>host app: tcp-{i}").unwrap();
    }
    stream.flush().unwrap();
    drop(stream);
    // The port is the same one.
    let mut again = TcpStream::connect(address).unwrap();
    writeln!(again, "<14>host app: tcp-4000").unwrap();
    drop(again);
    wait_for("every row", DEADLINE, || {
        (gate.rows().len() >= 4_001).then_some(())
    });
    let counters = gate.stop();
    each_once(&gate.rows(), "tcp", 4_001);
    assert_eq!(counters.get("connections_accepted"), 2);
}

/// A changed UDP setting keeps the socket: the same port, nothing queued in it lost.
#[test]
fn a_changed_udp_setting_keeps_the_socket() {
    let udp = "[[listener]]\nprotocol = \"udp\"\naddress = \"127.0.0.1:0\"\n";
    let mut gate = Cefgate::start(udp);
    let address = gate.udp.unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..200 {
        sock.send_to(format!("<14>host app: udp-{i}").as_bytes(), address)
            .unwrap();
    }
    reload(
        &gate,
        &config(gate.dir.path(), &format!("{udp}max_message_bytes = 4096\n")),
    );
    for i in 200..400 {
        sock.send_to(format!("<14>host app: udp-{i}").as_bytes(), address)
            .unwrap();
    }
    wait_for("every row", DEADLINE, || {
        (gate.rows().len() >= 400).then_some(())
    });
    gate.stop();
    each_once(&gate.rows(), "udp", 400);
}

/// A `where` nested 10,000 deep is refused by a reload like any invalid file: the service
/// keeps running on its configuration.
#[test]
fn a_reload_with_a_too_deep_filter_is_refused_and_the_service_goes_on() {
    let tcp = "[[listener]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:0\"\n";
    let mut gate = Cefgate::start(tcp);
    let deep = format!(
        "{}\nwhere = \"{}Computer == 'x'{}\"\n",
        config(gate.dir.path(), tcp).trim_end_matches("\n\n[batch]\nmax_age_ms = 20\n"),
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    std::fs::write(gate.dir.path().join("cefgate.toml"), deep).unwrap();
    signal(gate.pid(), "HUP");
    wait_for("the refusal", DEADLINE, || {
        gate.stderr()
            .contains("is not valid; the running configuration stays")
            .then_some(())
    });
    assert!(gate.stderr().contains("nested more than 64 levels"));
    let mut s = TcpStream::connect(gate.tcp.unwrap()).unwrap();
    writeln!(s, "<14>host app: still-0").unwrap();
    drop(s);
    gate.wait_rows(1);
    gate.stop();
    each_once(&gate.rows(), "still", 1);
}

/// A rotated client secret (same file, new contents) is read again on SIGHUP: the output is
/// rebuilt with it, and the rows held while the old one was refused are delivered.
#[cfg(feature = "emulator")]
#[test]
fn a_rotated_secret_file_is_applied_on_sighup() {
    use std::os::unix::fs::PermissionsExt;
    let emu = common::Emulator::start(&["--client-secret", "the-new-secret-2"]);
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("client-secret");
    std::fs::write(&secret, "the-old-secret-1\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let dlq = dir.path().join("dead-letters.ndjson");
    let config = format!(
        "[[listener]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n[output]\ntype = \"logs-ingestion\"\nendpoint = \"{url}\"\nauthority_host = \"{url}\"\ndcr_id = \"dcr-00000000000000000000000000000000\"\ncef_stream = \"Custom-CefGate_CommonSecurityLog\"\nsyslog_stream = \"Custom-CefGate_Syslog\"\ntenant_id = \"00000000-0000-0000-0000-000000000000\"\nclient_id = \"00000000-0000-0000-0000-000000000000\"\nclient_secret_file = \"{}\"\ndead_letter_path = \"{}\"\nretry_max_secs = 1\n\n[batch]\nmax_age_ms = 20\n",
        secret.display(),
        dlq.display(),
        url = emu.url
    );
    let mut gate = Cefgate::start_raw(dir, dlq, &config, &[]);
    let send = |from: usize, to: usize| {
        let mut s = TcpStream::connect(gate.tcp.unwrap()).unwrap();
        for i in from..to {
            writeln!(s, "<14>host app: secret-{i}").unwrap();
        }
    };
    send(0, 100);
    wait_for("the refusal", DEADLINE, || {
        gate.stderr().contains("AADSTS7000215").then_some(())
    });
    std::fs::write(&secret, "the-new-secret-2\n").unwrap();
    reload(&gate, &config);
    send(100, 200);
    let until = std::time::Instant::now() + DEADLINE;
    while emu.rows("Custom-CefGate_Syslog").len() < 200 && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let rows = emu.rows("Custom-CefGate_Syslog");
    assert_eq!(rows.len(), 200, "{}", gate.stderr());
    let counters = gate.stop();
    each_once(&rows, "secret", 200);
    assert_eq!(counters.get("rows_dead_lettered"), 0);
    let all = format!("{}{}", gate.stderr(), emu.stderr());
    assert!(!all.contains("the-new-secret-2") && !all.contains("the-old-secret-1"));
}
