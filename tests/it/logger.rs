//! util-linux `logger` -> `cefgate run` over real sockets: each way users test a syslog
//! target lands as the right row.

use crate::support as common;

use std::process::Command;

use common::{Cefgate, UDP_AND_TCP};
use serde_json::Value;

fn logger(args: &[&str]) {
    let status = Command::new("logger")
        .args(args)
        .status()
        .expect("util-linux logger is installed");
    assert!(status.success(), "logger {args:?}");
}

fn find<'a>(rows: &'a [Value], text: &str) -> &'a Value {
    rows.iter()
        .find(|r| r.to_string().contains(text))
        .unwrap_or_else(|| panic!("no row with {text:?} in {rows:#?}"))
}

#[test]
fn logger_over_udp_tcp_and_octet_counting() {
    let mut gate = Cefgate::start(UDP_AND_TCP);
    let (udp, tcp) = (gate.udp.unwrap(), gate.tcp.unwrap());
    let (uh, up, th, tp) = (
        udp.ip().to_string(),
        udp.port().to_string(),
        tcp.ip().to_string(),
        tcp.port().to_string(),
    );

    logger(&[
        "-n",
        &uh,
        "-P",
        &up,
        "--udp",
        "--rfc3164",
        "-p",
        "local4.info",
        "-t",
        "fw",
        r"CEF:0|Acme|FW|1.0|100|Port scan|7|src=10.0.0.1 dst=10.0.0.2 msg=a \= b udp3164",
    ]);
    logger(&[
        "-n",
        &th,
        "-P",
        &tp,
        "--tcp",
        "--rfc5424",
        "-p",
        "auth.notice",
        "-t",
        "sshd",
        "--id=4242",
        "plain tcp5424 message",
    ]);
    logger(&[
        "-n",
        &th,
        "-P",
        &tp,
        "--tcp",
        "--octet-count",
        "--rfc5424",
        "-p",
        "daemon.err",
        "-t",
        "app",
        "CEF:0|Acme|FW|1.0|200|Octet|3|spt=1234 cs1=octet5424",
    ]);
    logger(&[
        "-n",
        &th,
        "-P",
        &tp,
        "--tcp",
        "--rfc3164",
        "-p",
        "local7.debug",
        "-t",
        "tag3164",
        "plain tcp3164 message",
    ]);

    let rows = gate.wait_rows(4);
    let host = gethostname();

    let cef = find(&rows, "10.0.0.2");
    assert_eq!(cef["DeviceVendor"], "Acme");
    assert_eq!(cef["Activity"], "Port scan");
    assert_eq!(cef["Message"], "a = b udp3164");
    assert_eq!(cef["Computer"], host.as_str());
    assert_eq!(cef["CollectorHostName"], "cefgate-test");

    let plain = find(&rows, "plain tcp5424");
    assert_eq!(plain["Facility"], "auth");
    assert_eq!(plain["SeverityLevel"], "notice");
    assert_eq!(plain["ProcessName"], "sshd");
    assert_eq!(plain["HostIP"], "127.0.0.1");
    assert_eq!(plain["HostName"], host.as_str());
    assert_eq!(plain["ProcessID"], 4242);
    assert!(
        plain["SyslogMessage"]
            .as_str()
            .unwrap()
            .ends_with("plain tcp5424 message")
    );

    let octet = find(&rows, "octet5424");
    assert_eq!(octet["DeviceEventClassID"], "200");
    assert_eq!(octet["SourcePort"], 1234);

    let bsd = find(&rows, "plain tcp3164");
    assert_eq!(bsd["Facility"], "local7");
    assert_eq!(bsd["SeverityLevel"], "debug");
    assert_eq!(bsd["ProcessName"], "tag3164");
    assert_eq!(bsd["SyslogMessage"], "plain tcp3164 message");

    let counters = gate.stop();
    assert_eq!(counters.get("rows_total"), 4);
    assert_eq!(counters.get("udp_datagrams"), 1);
    assert_eq!(counters.get("tcp_frames"), 3);
}

/// Microsoft's own test for a CEF collector, from its page on ingesting syslog and CEF with
/// the Azure Monitor Agent, run exactly as written (through bash, so `$common` expands to
/// nothing as it does for a user), with only the port changed: the row is expected in
/// `CommonSecurityLog`.
#[test]
fn microsofts_logger_test_command_lands_in_common_security_log() {
    let mut gate = Cefgate::start(UDP_AND_TCP);
    let udp = gate.udp.unwrap();
    let command = format!(
        r#"logger -p local4.warn -P {port} -n 127.0.0.1 --rfc3164 -t CEF "0|Mock-test|MOCK|common=event-format-test|end|TRAFFIC|1|rt=$common=event-formatted-receive_time""#,
        port = udp.port()
    );
    let status = Command::new("bash")
        .args(["-c", &command])
        .env_remove("common")
        .status()
        .expect("bash runs");
    assert!(status.success(), "{command}");

    let rows = gate.wait_rows(1);
    let row = &rows[0];
    assert_eq!(row["DeviceVendor"], "Mock-test", "{row}");
    assert_eq!(row["DeviceProduct"], "MOCK");
    assert_eq!(row["DeviceVersion"], "common=event-format-test");
    assert_eq!(row["DeviceEventClassID"], "end");
    assert_eq!(row["Activity"], "TRAFFIC");
    assert_eq!(row["LogSeverity"], "1");
    assert_eq!(row["ReceiptTime"], "=event-formatted-receive_time");
    assert_eq!(row["Computer"], gethostname().as_str());
    assert!(
        row.get("SyslogMessage").is_none(),
        "not a Syslog row: {row}"
    );
    assert!(row.get("ProcessName").is_none(), "{row}");

    let counters = gate.stop();
    assert_eq!(counters.get("rows_total"), 1);
    assert_eq!(counters.get("udp_datagrams"), 1);
}

fn gethostname() -> String {
    // logger writes the short host name (up to the first dot).
    let full = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    full.trim().split('.').next().unwrap().to_string()
}

/// A Cisco ASA's two usual shapes reach `CommonSecurityLog`: `logger` sending the tag as the
/// RFC 3164 TAG, and the ASA's own `timestamp:` form without a host, as a raw datagram.
#[test]
fn cisco_asa_messages_land_in_common_security_log() {
    let mut gate = Cefgate::start(UDP_AND_TCP);
    let udp = gate.udp.unwrap();
    let (uh, up) = (udp.ip().to_string(), udp.port().to_string());
    logger(&[
        "-n",
        &uh,
        "-P",
        &up,
        "--udp",
        "--rfc3164",
        "-p",
        "local4.info",
        "-t",
        "%ASA-6-302013",
        "Built inbound TCP connection 77 for outside:198.51.100.23/51514 (198.51.100.23/51514) to dmz:10.2.0.10/443 (203.0.113.10/443)",
    ]);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(
        b"<164>Nov 26 2026 09:52:09: %ASA-4-106023: Deny udp src outside:198.51.100.90/40000 dst inside:10.1.1.53/161 by access-group \"outside_access_in\" [0x0, 0x0]",
        udp,
    )
    .unwrap();

    let rows = gate.wait_rows(2);
    let built = find(&rows, "302013");
    assert_eq!(built["DeviceVendor"], "Cisco");
    assert_eq!(built["DeviceProduct"], "ASA");
    assert_eq!(built["LogSeverity"], "Low");
    assert_eq!(built["OriginalLogSeverity"], "6");
    assert_eq!(built["DeviceAddress"], "127.0.0.1");
    assert_eq!(built["DeviceName"], gethostname().as_str());
    assert_eq!(built["CommunicationDirection"], "Inbound");
    assert_eq!(built["SourceIP"], "198.51.100.23");
    assert_eq!(built["DestinationPort"], 443);
    assert!(
        built["Message"]
            .as_str()
            .unwrap()
            .starts_with("%ASA-6-302013: Built inbound TCP connection 77")
    );
    assert!(built.get("SyslogMessage").is_none(), "{built}");

    let denied = find(&rows, "106023");
    assert_eq!(denied["Computer"], "127.0.0.1", "no host: the sender");
    assert_eq!(denied["DeviceAddress"], "127.0.0.1");
    assert_eq!(denied["DeviceAction"], "Deny");
    assert_eq!(denied["Protocol"], "UDP");
    assert_eq!(denied["DeviceCustomString2"], "outside_access_in");
    assert_eq!(denied["LogSeverity"], "Medium");

    let counters = gate.stop();
    assert_eq!(counters.get("rows_total"), 2);
}
