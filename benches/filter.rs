//! The cost per row of a `where` predicate, on a row already built (what an output pays on
//! top of decoding): a 3-clause predicate that keeps the row, and one that drops it.
//!
//! `cargo bench --bench filter`; criterion's median is the time per row.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

use cefgate::filter::Predicate;

mod common;

fn bench(c: &mut Criterion) {
    let builder = common::builder();
    let rx = common::reception();
    let row = builder.build(common::FIREWALL_LINE, false, &rx);
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
