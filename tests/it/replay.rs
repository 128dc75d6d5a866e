//! `cefgate replay` against `cefgate run`: text files over UDP, TCP and TLS, and a packet
//! capture made in the test (UDP datagrams plus a TCP stream split across packets, with a
//! retransmission) whose messages are sent on in order.

use crate::support as common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Cefgate, UDP_AND_TCP};
use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapPacket, PcapWriter};

fn replay(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cefgate"))
        .arg("replay")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "replay {args:?} failed: {stderr}");
    stderr
}

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn udp_packet(payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([192, 0, 2, 10], [192, 0, 2, 20], 64)
        .udp(40000, 514);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn tcp_packet(seq: u32, syn: bool, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([192, 0, 2, 11], [192, 0, 2, 20], 64)
        .tcp(40001, 514, seq, 64240);
    let b = if syn { b.syn() } else { b.ack(1).psh() };
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn write_pcap(path: &Path) {
    let stream = b"<13>Nov 26 09:00:02 fw a: tcp one\n36 <13>Nov 26 09:00:03 fw a: tcp two\n";
    let (first, second) = stream.split_at(20);
    let packets = [
        udp_packet(b"<13>Nov 26 09:00:00 fw a: udp one\n"),
        tcp_packet(1000, true, b""),
        tcp_packet(1001, false, first),
        tcp_packet(1001, false, first), // retransmitted
        udp_packet(b"<13>Nov 26 09:00:01 fw a: udp two"),
        tcp_packet(1001 + first.len() as u32, false, second),
    ];
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    for (i, p) in packets.iter().enumerate() {
        w.write_packet(&PcapPacket::new(
            Duration::from_millis(i as u64),
            p.len() as u32,
            p,
        ))
        .unwrap();
    }
}

fn write_pcapng(path: &Path) {
    use pcap_file::DataLink;
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
    let mut w = PcapNgWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    w.write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::ETHERNET, 65535))
        .unwrap();
    for (i, text) in [
        "<13>Nov 26 09:00:00 fw a: ng one",
        "<13>Nov 26 09:00:01 fw a: ng two",
    ]
    .iter()
    .enumerate()
    {
        let data = udp_packet(text.as_bytes());
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_millis(i as u64),
            original_len: data.len() as u32,
            data: data.into(),
            options: vec![],
        })
        .unwrap();
    }
}

fn messages(rows: &[serde_json::Value]) -> Vec<String> {
    let mut m: Vec<String> = rows
        .iter()
        .map(|r| r["SyslogMessage"].as_str().unwrap().to_string())
        .collect();
    m.sort();
    m
}

#[test]
fn a_packet_capture_is_replayed_message_by_message() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("capture.pcap");
    write_pcap(&pcap);
    let mut gate = Cefgate::start(UDP_AND_TCP);
    let to = format!("tcp://{}", gate.tcp.unwrap());
    let stderr = replay(&[
        "--to",
        &to,
        "--framing",
        "octet-counting",
        pcap.to_str().unwrap(),
    ]);
    assert!(stderr.contains("sent 4 messages"), "{stderr}");
    let rows = gate.wait_rows(4);
    assert_eq!(
        messages(&rows),
        ["tcp one", "tcp two", "udp one", "udp two"]
    );
    let counters = gate.stop();
    assert_eq!(
        counters.get("rows_total"),
        4,
        "the retransmission is not a message"
    );
}

#[test]
fn a_pcapng_capture_is_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let pcapng = dir.path().join("capture.pcapng");
    write_pcapng(&pcapng);
    let mut gate = Cefgate::start(UDP_AND_TCP);
    let to = format!("udp://{}", gate.udp.unwrap());
    replay(&["--to", &to, pcapng.to_str().unwrap()]);
    let rows = gate.wait_rows(2);
    assert_eq!(messages(&rows), ["ng one", "ng two"]);
    gate.stop();
}

#[test]
fn text_files_over_udp_and_tcp_with_loops() {
    let mut gate = Cefgate::start(UDP_AND_TCP);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/paloalto.log");
    let f = fixture.to_str().unwrap();
    replay(&[
        "--to",
        &format!("tcp://{}", gate.tcp.unwrap()),
        "--loop",
        "10",
        f,
    ]);
    replay(&[
        "--to",
        &format!("udp://{}", gate.udp.unwrap()),
        "--rate",
        "1000",
        f,
    ]);
    let rows = gate.wait_rows(33);
    assert!(
        rows.iter()
            .all(|r| r["DeviceVendor"] == "Palo Alto Networks")
    );
    assert_eq!(gate.stop().get("rows_total"), 33);
}

#[test]
fn tls_replay_needs_the_ca_and_delivers() {
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    std::fs::write(d.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(d.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(d.join("server.key"), key.serialize_pem()).unwrap();
    let listener = format!(
        "[[listener]]\nprotocol = \"tls\"\naddress = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n",
        d.join("server.pem").display(),
        d.join("server.key").display()
    );
    let mut gate = Cefgate::start(&listener);
    let to = format!("tls://localhost:{}", gate.tls.unwrap().port());
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fortinet.log");
    replay(&[
        "--to",
        &to,
        "--ca",
        d.join("ca.pem").to_str().unwrap(),
        fixture.to_str().unwrap(),
    ]);
    let rows = gate.wait_rows(3);
    assert!(rows.iter().all(|r| r["DeviceVendor"] == "Fortinet"));
    // A CA that did not sign the server's certificate (here the server's own certificate
    // given as the CA): the handshake fails, and replay says so before counting anything.
    let out = Command::new(env!("CARGO_BIN_EXE_cefgate"))
        .args(["replay", "--to", &to, "--ca"])
        .arg(d.join("server.pem"))
        .arg(&fixture)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the TLS handshake with"), "{stderr}");
    assert!(!stderr.contains("failed after"), "{stderr}");
    assert_eq!(gate.stop().get("rows_total"), 3);
}

#[test]
fn several_connections_share_the_messages_and_each_lands_once() {
    let mut gate = Cefgate::start(UDP_AND_TCP);
    // 200 numbered messages over 7 TCP connections, then 50 over 3 UDP sockets.
    let dir = tempfile::tempdir().unwrap();
    let tcp_lines: String = (0..200)
        .map(|i| format!("<13>Nov 26 09:00:00 fw app: tcp-{i}\n"))
        .collect();
    let udp_lines: String = (0..50)
        .map(|i| format!("<13>Nov 26 09:00:00 fw app: udp-{i}\n"))
        .collect();
    let (tcp_file, udp_file) = (dir.path().join("tcp.log"), dir.path().join("udp.log"));
    std::fs::write(&tcp_file, tcp_lines).unwrap();
    std::fs::write(&udp_file, udp_lines).unwrap();
    let said = replay(&[
        "--to",
        &format!("tcp://{}", gate.tcp.unwrap()),
        "--connections",
        "7",
        tcp_file.to_str().unwrap(),
    ]);
    assert!(said.contains("sent 200 messages"), "{said}");
    replay(&[
        "--to",
        &format!("udp://{}", gate.udp.unwrap()),
        "--connections",
        "3",
        "--rate",
        "500",
        udp_file.to_str().unwrap(),
    ]);
    let rows = gate.wait_rows(250);
    let mut seen: Vec<String> = messages(&rows);
    seen.sort();
    let mut want: Vec<String> = (0..200)
        .map(|i| format!("tcp-{i}"))
        .chain((0..50).map(|i| format!("udp-{i}")))
        .collect();
    want.sort();
    assert_eq!(seen, want);
    let counters = gate.stop();
    assert_eq!(counters.get("rows_total"), 250);
    assert_eq!(counters.get("connections_accepted"), 7);
}
