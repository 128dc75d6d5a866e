//! Compressing one Logs Ingestion request body: a ~1 MiB JSON array of firewall rows (the
//! default `[batch] max_bytes`), at the levels worth choosing from.
//!
//! `cargo bench --bench gzip` measures the backend cefgate ships (zlib-rs);
//! `cargo bench --bench gzip --no-default-features --features emulator` measures flate2's
//! other pure-Rust backend (miniz_oxide). Each level's compressed size is printed once, since
//! the choice trades CPU against bytes on the wire.

use std::hint::black_box;
use std::io::Write;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flate2::Compression;
use flate2::write::GzEncoder;

use cefgate::record::write_json;

mod common;

/// Rows that differ the way a firewall's do: addresses, ports, counters, users.
fn body(max_bytes: usize) -> Vec<u8> {
    let builder = common::builder();
    let rx = common::reception();
    let mut seed: u64 = 7;
    let mut next = |below: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % below
    };
    let mut out = vec![b'['];
    let mut i = 0u64;
    while out.len() < max_bytes {
        let line = format!(
            "<134>Nov 26 09:{:02}:{:02} fw-edge-{:02} CEF:0|Palo Alto Networks|PAN-OS|10.2.4|end|TRAFFIC|3|rt=Nov 26 2026 09:59:58 GMT deviceExternalId=0132010{i:05} src=10.1.{}.{} dst=142.250.{}.{} sourceTranslatedAddress=203.0.113.{} spt={} dpt=443 sourceTranslatedPort={} proto=TCP act=allow in={} out={} suser=corp\\\\user{i} cs1Label=Rule cs1=allow-web cs3Label=Virtual System cs3=vsys1 cn1Label=SessionID cn1={} app=ssl",
            i % 60,
            i * 7 % 60,
            i % 4,
            next(250),
            next(250),
            next(200),
            next(250),
            next(250),
            1024 + next(60000),
            2000 + i,
            100 + next(99900),
            100 + next(99900),
            880000 + i,
        );
        if i > 0 {
            out.push(b',');
        }
        let row = builder.build(&line, false, &rx);
        write_json(&row, &mut out);
        i += 1;
    }
    out.push(b']');
    out
}

fn gzip(json: &[u8], level: u32) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::new(level));
    gz.write_all(json).unwrap();
    gz.finish().unwrap()
}

fn bench(c: &mut Criterion) {
    let json = body(1024 * 1024);
    let mut group = c.benchmark_group("gzip_1MiB_body");
    group.throughput(Throughput::Bytes(json.len() as u64));
    group.sample_size(30);
    for level in [1, 2, 3, 6] {
        let size = gzip(&json, level).len();
        eprintln!(
            "level {level}: {} bytes -> {size} bytes ({:.1}x)",
            json.len(),
            json.len() as f64 / size as f64
        );
        group.bench_function(format!("level_{level}"), |b| {
            b.iter(|| black_box(gzip(black_box(&json), level).len()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
