//! Property: any header and extension values, escaped as `grammars/cef.abnf` says, parse back
//! unchanged. (Trailing white space is not part of a value by the grammar, so generated
//! values do not end in it.)

use cefgate::decode::TimeContext;
use cefgate::decode::cef::{escape_header, escape_value, parse};
use cefgate::record::{Reception, RecordSettings, RowBuilder, TimeSource, write_json};
use proptest::prelude::*;

fn key() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_][A-Za-z0-9_.]{0,15}"
}

fn value() -> impl Strategy<Value = String> {
    // Any text, including `=`, `\`, `|`, CR, LF, spaces and non-ASCII.
    any::<String>().prop_map(|s| s.trim_end_matches([' ', '\t']).to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn header_and_extension_round_trip(
        header in proptest::collection::vec(any::<String>(), 6),
        pairs in proptest::collection::vec((key(), value()), 0..8),
    ) {
        let mut line = String::from("CEF:0");
        for field in &header {
            line.push('|');
            line.push_str(&escape_header(field));
        }
        line.push('|');
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                line.push(' ');
            }
            line.push_str(k);
            line.push('=');
            line.push_str(&escape_value(v));
        }
        let ev = parse(&line).map_err(|e| TestCaseError::fail(format!("{e}: {line:?}")))?;
        let got = [
            &ev.device_vendor, &ev.device_product, &ev.device_version,
            &ev.device_event_class_id, &ev.name, &ev.severity,
        ];
        for (g, want) in got.iter().zip(&header) {
            prop_assert_eq!(g.as_ref(), want.as_str(), "line {:?}", line);
        }
        prop_assert!(ev.extension().take_unkeyed().is_none(), "line {:?}", line);
        let got: Vec<(String, String)> = ev
            .pairs()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        prop_assert_eq!(got, pairs, "line {:?}", line);
    }

    #[test]
    fn any_input_becomes_one_valid_json_row(
        prefix in prop::sample::select(vec!["", "<134>Nov 26 10:00:00 host ", "CEF:0|", "<13>1 2026-11-26T10:00:00Z h a - - - CEF:1|V|P|1|2|n|3|"]),
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut raw = prefix.as_bytes().to_vec();
        raw.extend_from_slice(&bytes);
        let text = String::from_utf8_lossy(&raw);
        let builder = RowBuilder::new(RecordSettings {
            collector_host: "c".into(),
            time_generated: vec![TimeSource::Rt, TimeSource::Start, TimeSource::Syslog, TimeSource::Received],
            event_id: false,
            keep_structured_data: false,
        });
        let rx = Reception {
            time: TimeContext::new(chrono::Utc::now(), cefgate::decode::time::SenderZone::default()),
            peer: None,
            truncated: false,
            format: None,
        };
        let row = builder.build(&text, false, &rx);
        let mut out = Vec::new();
        write_json(&row, &mut out);
        let parsed: serde_json::Value = serde_json::from_slice(&out)
            .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&out))))?;
        prop_assert!(parsed.get("TimeGenerated").is_some());
    }
}
