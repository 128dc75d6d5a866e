//! Behind a real load balancer: HAProxy spreads connections from 127.0.0.2 over two cefgate
//! instances, one fed PROXY v2 (`send-proxy-v2`) and one v1 (`send-proxy`). Every message
//! lands exactly once, both take a share, and each row names the real sender.

use crate::support as common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};

use common::{Cefgate, DEADLINE, connect_from, free_port, wait_for};

const PROXIED: &str =
    "[[listener]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:0\"\nproxy_protocol = true\n";

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn haproxy(dir: &std::path::Path, front: u16, a: SocketAddr, b: SocketAddr) -> Haproxy {
    let config = format!(
        "global\n  maxconn 256\n\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n\nfrontend syslog\n  bind 127.0.0.1:{front}\n  default_backend gates\n\nbackend gates\n  balance roundrobin\n  server a {a} send-proxy-v2\n  server b {b} send-proxy\n"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy is installed (.ci/run installs the Debian package)");
    let proxy = Haproxy(child);
    let address: SocketAddr = format!("127.0.0.1:{front}").parse().unwrap();
    wait_for("haproxy to listen", DEADLINE, || {
        TcpStream::connect(address).ok().map(drop)
    });
    proxy
}

#[test]
fn haproxy_spreads_senders_over_two_instances_and_each_row_names_the_sender() {
    let mut a = Cefgate::start(PROXIED);
    let mut b = Cefgate::start(PROXIED);
    let dir = tempfile::tempdir().unwrap();
    let front = free_port();
    let _haproxy = haproxy(dir.path(), front, a.tcp.unwrap(), b.tcp.unwrap());
    let address: SocketAddr = format!("127.0.0.1:{front}").parse().unwrap();
    let (connections, per) = (20, 25);
    for c in 0..connections {
        let mut s = connect_from("127.0.0.2", address);
        for i in 0..per {
            writeln!(s, "<13>host app: m-{c}-{i}").unwrap();
        }
        s.flush().unwrap();
    }
    let total = connections * per;
    let all = wait_for("every message", DEADLINE, || {
        let rows: Vec<_> = a.rows().into_iter().chain(b.rows()).collect();
        (rows.len() >= total).then_some(rows)
    });
    assert_eq!(all.len(), total, "no message twice");
    let mut seen: Vec<&str> = all
        .iter()
        .map(|r| r["SyslogMessage"].as_str().unwrap())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), total, "each message once");
    for row in &all {
        assert_eq!(row["HostIP"], "127.0.0.2", "{row}");
    }
    let (share_a, share_b) = (a.rows().len(), b.rows().len());
    assert!(
        share_a > 0 && share_b > 0,
        "both take a share: {share_a} / {share_b}"
    );
    // A connection that skips the balancer (no header) is refused and counted.
    let mut direct = TcpStream::connect(a.tcp.unwrap()).unwrap();
    writeln!(direct, "<13>host app: sneaky").unwrap();
    drop(direct);
    wait_for("the refusal", DEADLINE, || {
        a.stderr().contains("no PROXY header").then_some(())
    });
    let ca = a.stop();
    b.stop();
    assert_eq!(ca.get("proxy_headers_refused"), 1);
    assert!(a.rows().iter().all(|r| r["SyslogMessage"] != "sneaky"));
}

/// Only the balancers in `proxy_from` may name the sender. A host that connects directly
/// and claims an allowed address in a PROXY header is refused, by its real address, however
/// many connections it opens; the balancer's headers are believed.
#[test]
fn proxy_headers_are_believed_only_from_proxy_from() {
    use std::io::Read;
    let mut gate = Cefgate::start(
        "[[listener]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:0\"\nproxy_protocol = true\nproxy_from = [\"127.0.0.3\"]\nallow = [\"10.9.0.0/16\"]\nmax_connections_per_source = 4\n",
    );
    let address = gate.tcp.unwrap();
    let header = |i: usize| format!("PROXY TCP4 10.9.1.{} 127.0.0.1 5000 514\r\n", i % 250 + 1);
    for i in 0..100 {
        let mut s = connect_from("127.0.0.2", address);
        let _ = writeln!(s, "{}<13>host app: spoof-{i}", header(i));
        // Refused: the connection is closed without a byte read back.
        let mut byte = [0u8; 1];
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        assert!(matches!(s.read(&mut byte), Ok(0) | Err(_)));
    }
    let mut balancer = connect_from("127.0.0.3", address);
    writeln!(balancer, "{}<13>host app: real-0", header(0)).unwrap();
    drop(balancer);
    let rows = gate.wait_rows(1);
    assert_eq!(rows[0]["SyslogMessage"], "real-0");
    assert_eq!(rows[0]["HostIP"], "10.9.1.1");
    let c = gate.stop();
    assert_eq!(c.get("proxy_peers_refused"), 100);
    assert_eq!(c.get("connections_accepted"), 1);
    assert!(gate.rows().iter().all(|r| r["SyslogMessage"] != "spoof-0"));
    assert!(
        gate.stderr().contains("refused 127.0.0.2:"),
        "judged by its real address"
    );
}

/// `check` warns about a PROXY listener that believes every peer.
#[test]
fn check_warns_when_a_proxy_listener_has_no_proxy_from() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, format!("{PROXIED}\n[output]\ntype = \"stdout\"\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cefgate"))
        .args(["check", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(":4:18: warning: this listener believes a PROXY header from any peer"),
        "{stderr}"
    );
    std::fs::write(
        &path,
        format!("{PROXIED}proxy_from = [\"10.0.0.0/8\"]\n\n[output]\ntype = \"stdout\"\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cefgate"))
        .args(["check", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!String::from_utf8(out.stderr).unwrap().contains("warning"));
}
