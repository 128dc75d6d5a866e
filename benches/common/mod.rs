//! What the benchmarks share: the row builder and reception they decode with, and the
//! firewall line most of them measure.

#![allow(dead_code)]

use chrono::{TimeZone, Utc};

use cefgate::decode::TimeContext;
use cefgate::record::{Reception, RecordSettings, RowBuilder, TimeSource};

/// ~400 bytes: a firewall traffic event behind an RFC 3164 header.
pub const FIREWALL_LINE: &str = "<134>Nov 26 09:59:58 fw-edge-01 CEF:0|Palo Alto Networks|PAN-OS|10.2.4|end|TRAFFIC|3|rt=Nov 26 2026 09:59:58 GMT deviceExternalId=013201001234 src=10.1.20.34 dst=142.250.74.110 sourceTranslatedAddress=203.0.113.7 spt=51544 dpt=443 sourceTranslatedPort=31022 proto=TCP act=allow in=5120 out=1894 suser=corp\\\\jdoe cs1Label=Rule cs1=allow-web cs3Label=Virtual System cs3=vsys1 cn1Label=SessionID cn1=884213 app=ssl";

/// The builder with the defaults a deployment runs with.
pub fn builder() -> RowBuilder {
    RowBuilder::new(RecordSettings {
        collector_host: "collector".into(),
        time_generated: vec![TimeSource::Received],
        event_id: false,
        keep_structured_data: false,
    })
}

/// A message received at a fixed time from 192.0.2.1.
pub fn reception() -> Reception<'static> {
    Reception {
        time: TimeContext::new(
            Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap(),
            cefgate::decode::time::SenderZone::default(),
        ),
        peer: Some("192.0.2.1"),
        truncated: false,
        format: None,
    }
}
