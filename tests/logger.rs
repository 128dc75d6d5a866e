//! util-linux `logger` -> `cefgate run` over real sockets: each way users test a syslog
//! target lands as the right row.

mod common;

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

fn gethostname() -> String {
    // logger writes the short host name (up to the first dot).
    let full = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    full.trim().split('.').next().unwrap().to_string()
}
