//! The `CommonSecurityLog` row of a Cisco ASA/FTD message, as Microsoft's agent stores it.

use std::borrow::Cow;

use super::{CiscoMessage, Fields, log_severity};
use crate::decode::cef::action;
use crate::decode::syslog::SyslogHeader;
use crate::row::{MapContext, Problem, Row, Table, TimeSources, Value, columns as col, str_value};

/// The Cisco levels as `OriginalLogSeverity` text, without formatting per row.
const LEVEL_DIGITS: [&str; 8] = ["0", "1", "2", "3", "4", "5", "6", "7"];

/// A Cisco ASA/FTD message as Microsoft's agent stores it in `CommonSecurityLog`: the
/// tag's vendor, product, ID and level, the message from its tag on, the sending device,
/// and the network fields of the messages in `grammars/cisco-asa-messages.tsv`. The
/// sources of each choice are in fixtures/README.md ("Cisco ASA and FTD").
pub fn row<'a>(
    header: &SyslogHeader<'a>,
    message: CiscoMessage<'a>,
    cx: &MapContext<'a>,
) -> Row<'a> {
    let mut columns: Vec<(&'static str, Value<'a>)> = Vec::with_capacity(24);
    let mut problems = Vec::new();
    let time = cx.time_generated(TimeSources {
        syslog: header.timestamp,
        ..TimeSources::default()
    });
    columns.push((col::TIME_GENERATED, Value::Time(time)));
    let device = header.hostname.or(cx.rx.peer);
    if let Some(host) = device {
        columns.push((col::COMPUTER, str_value(host)));
    }
    columns.push((col::COLLECTOR_HOST_NAME, cx.collector()));
    columns.push((col::DEVICE_VENDOR, str_value("Cisco")));
    columns.push((col::DEVICE_PRODUCT, str_value(message.product.name())));
    columns.push((col::DEVICE_EVENT_CLASS_ID, str_value(message.id)));
    columns.push((col::LOG_SEVERITY, str_value(log_severity(message.level))));
    columns.push((
        col::ORIGINAL_LOG_SEVERITY,
        str_value(LEVEL_DIGITS[message.level as usize]),
    ));
    // The device's address: the sender's, else a header host that is an IP address.
    let address = cx.rx.peer.or(header
        .hostname
        .filter(|h| h.parse::<std::net::IpAddr>().is_ok()));
    if let Some(address) = address {
        columns.push(("DeviceAddress", str_value(address)));
    }
    if let Some(host) = device {
        columns.push(("DeviceName", str_value(host)));
    }
    if let Some(facility) = header.facility {
        columns.push(("DeviceFacility", str_value(facility)));
    }
    match message.fields {
        Fields::NotListed => {}
        Fields::Unread => problems.push(Problem {
            kind: super::FIELDS_UNREAD,
            detail: Some(format!("{} is not in its documented shape", message.id)),
        }),
        Fields::Read(f) => {
            if let Some(action) = f.action {
                columns.push(("DeviceAction", str_value(action)));
                columns.push((
                    col::SIMPLIFIED_DEVICE_ACTION,
                    Value::Str(action::simplified(Cow::Borrowed(action))),
                ));
            }
            if let Some(direction) = f.direction {
                columns.push(("CommunicationDirection", str_value(direction.name())));
            }
            if let Some(protocol) = f.protocol {
                columns.push(("Protocol", Value::Str(protocol)));
            }
            let endpoints = [
                (f.source, "SourceIP", "SourcePort"),
                (f.destination, "DestinationIP", "DestinationPort"),
                (
                    f.source_translated,
                    "SourceTranslatedAddress",
                    "SourceTranslatedPort",
                ),
                (
                    f.destination_translated,
                    "DestinationTranslatedAddress",
                    "DestinationTranslatedPort",
                ),
            ];
            for (endpoint, address, port) in endpoints {
                let Some(endpoint) = endpoint else { continue };
                columns.push((address, str_value(endpoint.address)));
                if let Some(p) = endpoint.port {
                    columns.push((port, Value::Int(p.into())));
                }
            }
            if let Some(acl) = f.access_list {
                columns.push(("DeviceCustomString2", str_value(acl)));
            }
        }
    }
    columns.push(("Message", str_value(message.text)));
    Row {
        table: Table::CommonSecurityLog,
        columns,
        problems,
    }
}
