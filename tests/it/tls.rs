//! TLS (RFC 5425) against the real binary, with certificates made in the test: a client with
//! a certificate from the configured CA gets through; one without is refused.

use crate::support as common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use common::Cefgate;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

struct Pki {
    ca: CertificateDer<'static>,
    client_chain: Vec<CertificateDer<'static>>,
    client_key: PrivateKeyDer<'static>,
}

/// Writes the server's certificate, key and the client CA into `dir`.
fn make_pki(dir: &std::path::Path) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["firewall-01".to_string()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &ca).unwrap();

    std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("clients.pem"), ca.pem()).unwrap();
    Pki {
        ca: ca.der().clone(),
        client_chain: vec![client.der().clone()],
        client_key: PrivateKeyDer::try_from(client_key.serialize_der()).unwrap(),
    }
}

fn client_config(pki: &Pki, with_certificate: bool) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = if with_certificate {
        builder
            .with_client_auth_cert(pki.client_chain.clone(), pki.client_key.clone_key())
            .unwrap()
    } else {
        builder.with_no_client_auth()
    };
    Arc::new(config)
}

/// Sends `messages` octet-counted over TLS; returns whether every write (and the close)
/// went through.
fn send(addr: SocketAddr, config: Arc<ClientConfig>, messages: &[&str]) -> Result<(), String> {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    for m in messages {
        write!(tls, "{} {m}", m.len()).map_err(|e| e.to_string())?;
    }
    tls.flush().map_err(|e| e.to_string())?;
    tls.conn.send_close_notify();
    tls.flush().map_err(|e| e.to_string())?;
    // Read to the end so a refusal (an alert after the handshake, in TLS 1.3) is seen.
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut tls, &mut rest).map_err(|e| e.to_string())?;
    Ok(())
}

fn tls_listener(dir: &std::path::Path, client_ca: bool) -> String {
    let mut l = format!(
        "[[listener]]\nprotocol = \"tls\"\naddress = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n",
        dir.join("server.pem").display(),
        dir.join("server.key").display()
    );
    if client_ca {
        l.push_str(&format!(
            "client_ca = \"{}\"\n",
            dir.join("clients.pem").display()
        ));
    }
    l
}

#[test]
fn mutual_tls_accepts_certified_clients_and_refuses_others() {
    let certs = tempfile::tempdir().unwrap();
    let pki = make_pki(certs.path());
    let mut gate = Cefgate::start(&tls_listener(certs.path(), true));
    let addr = gate.tls.unwrap();

    let refused = send(
        addr,
        client_config(&pki, false),
        &["<13>Nov 26 09:00:00 h a: no certificate"],
    );
    assert!(
        refused.is_err(),
        "a client without a certificate got through"
    );

    send(
        addr,
        client_config(&pki, true),
        &[
            "<134>1 2026-11-26T09:00:00Z fw01 CEF - - - CEF:0|Acme|FW|1.0|100|TLS test|5|src=10.0.0.1",
            "<13>Nov 26 09:00:01 fw01 app: second",
        ],
    )
    .expect("a certified client gets through");

    let rows = gate.wait_rows(2);
    // The two tables travel in separate batches, in either order.
    let cef = rows.iter().find(|r| r.get("Activity").is_some()).unwrap();
    assert_eq!(cef["Activity"], "TLS test");
    assert_eq!(cef["Computer"], "fw01");
    let syslog = rows
        .iter()
        .find(|r| r.get("SyslogMessage").is_some())
        .unwrap();
    assert_eq!(syslog["SyslogMessage"], "second");
    assert_eq!(syslog["HostIP"], "127.0.0.1");
    let counters = gate.stop();
    assert_eq!(counters.get("tls_handshake_failures"), 1);
    assert_eq!(
        counters.get("rows_total"),
        2,
        "nothing from the refused client"
    );
}

#[test]
fn server_only_tls_accepts_any_client() {
    let certs = tempfile::tempdir().unwrap();
    let pki = make_pki(certs.path());
    let mut gate = Cefgate::start(&tls_listener(certs.path(), false));
    send(
        gate.tls.unwrap(),
        client_config(&pki, false),
        &["<13>Nov 26 09:00:00 h a: anonymous"],
    )
    .unwrap();
    let rows = gate.wait_rows(1);
    assert_eq!(rows[0]["SyslogMessage"], "anonymous");
    gate.stop();
}

#[test]
fn plain_tcp_to_a_tls_port_is_a_handshake_failure_not_a_row() {
    let certs = tempfile::tempdir().unwrap();
    make_pki(certs.path());
    let mut gate = Cefgate::start(&tls_listener(certs.path(), false));
    let mut s = TcpStream::connect(gate.tls.unwrap()).unwrap();
    s.write_all(b"<13>Nov 26 09:00:00 h a: plaintext\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut buf);
    let counters = gate.stop();
    assert_eq!(counters.get("tls_handshake_failures"), 1);
    assert_eq!(counters.get("rows_total"), 0);
}

/// As [`send`], from the loopback address `from`.
fn send_from(
    from: &str,
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    messages: &[&str],
) -> Result<(), String> {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let tcp = common::connect_from(from, addr);
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    for m in messages {
        write!(tls, "{} {m}", m.len()).map_err(|e| e.to_string())?;
    }
    tls.flush().map_err(|e| e.to_string())?;
    tls.conn.send_close_notify();
    tls.flush().map_err(|e| e.to_string())?;
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut tls, &mut rest).map_err(|e| e.to_string())?;
    Ok(())
}

/// Connections that never finish their handshake hold no connection slot, and one host
/// cannot hold more than its share of handshakes: a real client still gets in.
#[test]
fn stalled_handshakes_do_not_lock_a_real_client_out() {
    let certs = tempfile::tempdir().unwrap();
    let pki = make_pki(certs.path());
    let listener = format!(
        "{}max_connections = 4\nhandshake_timeout_ms = 30000\n",
        tls_listener(certs.path(), false)
    );
    let mut gate = Cefgate::start(&listener);
    let addr = gate.tls.unwrap();
    // 100 connections from one host that say nothing: more than max_connections, and more
    // than one host's share (64).
    let stalled: Vec<TcpStream> = (0..100)
        .map(|_| common::connect_from("127.0.0.1", addr))
        .collect();
    common::wait_for("the refusals", common::DEADLINE, || {
        gate.stderr()
            .contains("max_connections_per_source (64)")
            .then_some(())
    });
    send_from(
        "127.0.0.2",
        addr,
        client_config(&pki, false),
        &["<13>host app: through"],
    )
    .expect("the real client's handshake and message");
    let rows = gate.wait_rows(1);
    assert_eq!(rows[0]["SyslogMessage"], "through");
    drop(stalled);
    let c = gate.stop();
    assert_eq!(c.get("connections_refused_per_source"), 36);
    assert_eq!(
        c.get("connections_accepted"),
        1,
        "only the finished handshake"
    );
}
