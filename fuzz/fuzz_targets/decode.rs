//! Fuzzes the whole decode -> record -> JSON path with arbitrary bytes: it must never panic,
//! and every input must become one row that is valid JSON.
#![no_main]

use cefgate::decode::TimeContext;
use cefgate::record::{RecordSettings, Reception, RowBuilder, TimeSource, write_json};
use chrono::{FixedOffset, TimeZone, Utc};
use cefgate::decode::time::SenderZone;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let builder = RowBuilder::new(RecordSettings {
        collector_host: "fuzz".into(),
        time_generated: vec![TimeSource::Rt, TimeSource::End, TimeSource::Syslog],
        event_id: false,
        keep_structured_data: false,
    });
    let rx = Reception {
        time: TimeContext::new(
            Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap(),
            SenderZone::Fixed(FixedOffset::east_opt(3600).unwrap()),
        ),
        peer: Some("192.0.2.1"),
        truncated: false,
        format: None,
    };
    let row = builder.build(&text, matches!(text, std::borrow::Cow::Owned(_)), &rx);
    let mut out = Vec::new();
    write_json(&row, &mut out);
    assert!(out.starts_with(b"{\"TimeGenerated\":") && out.ends_with(b"}"));
    assert!(std::str::from_utf8(&out).is_ok());
});
