//! Response decoding throughput: a body carrying a 16 MiB signed update, decoded in 64 KiB
//! chunks without and with signature verification, against raw SHA-512 of the same bytes.
//!
//! `cargo bench -p cups-core --bench decode` — prints criterion's numbers, then the ratios
//! of this same run (decode+verify vs raw SHA-512; decode-only throughput).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use cups_core::response::{Decoder, Event, encode_head, encoder::ResponseParts, encoder::SigRef};
use cups_core::sig::{RustCryptoVerifier, SigKey, UpdateHasher, UpdateSigner, verify_with_keys};
use sha2::Digest as _;

/// Size of the update in the benchmarked body.
const UPDATE_LEN: usize = 16 << 20;
/// How the body is fed to the decoder: a typical socket read size.
const CHUNK: usize = 64 << 10;
/// A TCP segment's worth (MSS): the worst realistic feeding granularity.
const SMALL_CHUNK: usize = 1460;
/// Criterion group name (also the directory the ratios are read back from).
const GROUP: &str = "response-16MiB";

fn body() -> (Vec<u8>, SigKey) {
    let mut update = vec![0u8; UPDATE_LEN];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for b in &mut update {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    let signer = UpdateSigner::from_scalar(&[7u8; 32]).expect("valid scalar");
    let seg = signer.sign_update(&update);
    let parts = ResponseParts {
        cups_uri: Some("https://cups.example.net:443"),
        tc_uri: Some("wss://lns.example.net:8887"),
        sig: Some(SigRef {
            key_crc: seg.key_crc(),
            der: seg.der(),
        }),
        update_len: u32::try_from(UPDATE_LEN).expect("fits"),
        ..ResponseParts::default()
    };
    let mut out = vec![0u8; 512];
    let head = encode_head(&parts, &mut out).expect("encodes");
    out.truncate(head.head_len);
    out.extend_from_slice(&update);
    (out, signer.public_key())
}

/// Decode the whole body; with `verify`, hash the update and check the signature.
fn decode(body: &[u8], keys: &[SigKey], verify: bool, chunk: usize) -> usize {
    let mut dec = Decoder::new();
    let mut hasher = UpdateHasher::new();
    let mut sig = ([0u8; 128], 0usize, 0u32);
    let mut seen = 0usize;
    for piece in body.chunks(chunk) {
        let mut rest = piece;
        while !rest.is_empty() {
            let step = dec.decode(rest).expect("valid body");
            match step.event {
                Some(Event::UpdateChunk { data, .. }) => {
                    seen += data.len();
                    if verify {
                        hasher.update(data);
                    }
                }
                Some(Event::Signature { key_crc, der }) => {
                    sig.0[..der.len()].copy_from_slice(der);
                    sig.1 = der.len();
                    sig.2 = key_crc;
                }
                _ => {}
            }
            rest = &rest[step.consumed..];
        }
    }
    dec.finish().expect("complete");
    if verify {
        let digest = hasher.finish();
        let v = verify_with_keys(&RustCryptoVerifier, keys, &digest, &sig.0[..sig.1]);
        assert!(v.is_verified(), "signature must verify");
    }
    seen
}

fn bench(c: &mut Criterion, body: &[u8], keys: &[SigKey]) {
    let update = &body[body.len() - UPDATE_LEN..];
    let mut g = c.benchmark_group(GROUP);
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(6));
    g.bench_function("sha512-raw", |b| {
        b.iter(|| sha2::Sha512::digest(black_box(update)))
    });
    g.bench_function("decode", |b| {
        b.iter(|| decode(black_box(body), keys, false, CHUNK))
    });
    g.bench_function("decode-1460", |b| {
        b.iter(|| decode(black_box(body), keys, false, SMALL_CHUNK))
    });
    g.bench_function("decode+verify", |b| {
        b.iter(|| decode(black_box(body), keys, true, CHUNK))
    });
    g.finish();
}

/// Median time (ns) of one benchmark of this run, from criterion's estimates file.
fn median_ns(name: &str) -> Option<f64> {
    let dirs = [
        std::env::var("CARGO_TARGET_DIR")
            .map(|d| format!("{d}/criterion"))
            .unwrap_or_default(),
        "target/criterion".into(),
        "../target/criterion".into(),
    ];
    dirs.iter().filter(|d| !d.is_empty()).find_map(|d| {
        let text =
            std::fs::read_to_string(format!("{d}/{GROUP}/{name}/new/estimates.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["median"]["point_estimate"].as_f64()
    })
}

fn main() {
    let (body, key) = body();
    let keys = [key];
    assert_eq!(decode(&body, &keys, true, SMALL_CHUNK), UPDATE_LEN);
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &body, &keys);
    c.final_summary();
    if let (Some(sha), Some(dec), Some(small), Some(ver)) = (
        median_ns("sha512-raw"),
        median_ns("decode"),
        median_ns("decode-1460"),
        median_ns("decode+verify"),
    ) {
        let gib = |ns: f64| body.len() as f64 / ns * 1e9 / f64::from(1u32 << 30);
        println!("\nratios of this run (medians; {} byte body):", body.len());
        println!("  raw SHA-512                 {:10.3} GiB/s", gib(sha));
        println!(
            "  decode only, 64 KiB chunks  {:10.1} GiB/s (target >= 2 GiB/s)",
            gib(dec)
        );
        println!(
            "  decode only, 1460 B chunks  {:10.1} GiB/s (target >= 2 GiB/s)",
            gib(small)
        );
        println!(
            "  decode + verify, 64 KiB     {:10.3} GiB/s = {:.1} % of raw SHA-512 (target >= 90 %)",
            gib(ver),
            sha / ver * 100.0
        );
    }
}
