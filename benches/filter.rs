//! The cost per row of a `where` predicate, on a row already built (what an output pays on
//! top of decoding): a 3-clause predicate that keeps the row, and one that drops it.
//!
//! `cargo bench --bench filter`; criterion's median is the time per row.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};

use cefgate::decode::TimeContext;
use cefgate::filter::Predicate;
use cefgate::record::{Reception, RecordSettings, RowBuilder, TimeSource};

const LINE: &str = "<134>Nov 26 09:59:58 fw-edge-01 CEF:0|Palo Alto Networks|PAN-OS|10.2.4|end|TRAFFIC|3|rt=Nov 26 2026 09:59:58 GMT deviceExternalId=013201001234 src=10.1.20.34 dst=142.250.74.110 sourceTranslatedAddress=203.0.113.7 spt=51544 dpt=443 sourceTranslatedPort=31022 proto=TCP act=allow in=5120 out=1894 suser=corp\\\\jdoe cs1Label=Rule cs1=allow-web cs3Label=Virtual System cs3=vsys1 cn1Label=SessionID cn1=884213 app=ssl";

fn bench(c: &mut Criterion) {
    let builder = RowBuilder::new(RecordSettings {
        collector_host: "collector".into(),
        time_generated: vec![TimeSource::Received],
        event_id: false,
        keep_structured_data: false,
    });
    let rx = Reception {
        time: TimeContext::new(
            Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap(),
            cefgate::decode::time::SenderZone::default(),
        ),
        peer: Some("192.0.2.1"),
        truncated: false,
    };
    let row = builder.build(LINE, false, &rx);
    let mut group = c.benchmark_group("where_3_clauses");
    for (name, text) in [
        (
            "drops_allowed_pan_traffic",
            r#"not(DeviceVendor == "Palo Alto Networks" and Activity == "TRAFFIC" and DeviceAction == "allow")"#,
        ),
        (
            "keeps_by_port_and_has",
            r#"DestinationPort in (443, 8443) and DeviceProduct has "pan" and SourceIP startswith "10.""#,
        ),
    ] {
        let p = Predicate::parse(text).expect("a valid predicate");
        group.bench_function(name, |b| b.iter(|| black_box(p.keeps(black_box(&row)))));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
