//! `POST /update-info` body: decode (target <= 2 µs per request) and encode of the four golden
//! request bodies. Vectors come from `$CUPS_VECTORS` or `<crate>/../../shared/vectors`.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use cups_core::request::{MAX_BODY_LEN, UpdateInfo};

const NAMES: [&str; 4] = [
    "first-contact",
    "with-version-sigkey",
    "steady-state",
    "two-sigkeys",
];

fn vectors_dir() -> PathBuf {
    match std::env::var("CUPS_VECTORS") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors")),
    }
}

fn bodies() -> Vec<(&'static str, Vec<u8>)> {
    NAMES
        .iter()
        .map(|&n| {
            let p = vectors_dir().join("requests").join(format!("{n}.json"));
            let body = std::fs::read(&p).unwrap_or_else(|e| {
                panic!("request vector {}: {e} (set CUPS_VECTORS)", p.display())
            });
            (n, body)
        })
        .collect()
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("request decode");
    for (name, body) in bodies() {
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            b.iter(|| UpdateInfo::decode(black_box(&body)).unwrap());
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("request encode");
    for (name, body) in bodies() {
        let info = UpdateInfo::decode(&body).unwrap();
        let mut out = vec![0u8; MAX_BODY_LEN];
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            b.iter(|| black_box(&info).encode(black_box(&mut out)).unwrap());
        });
    }
    group.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
