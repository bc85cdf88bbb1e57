//! Throughput smoke check of the decoder hot path (the real benchmark is `benches/decode.rs`).
//! Run with `cargo test --release -p cups-core --test codec_perf -- --ignored --nocapture`.

use std::hint::black_box;
use std::time::Instant;

use cups_core::response::{Decoder, Event, ResponseParts, encode_head};

#[test]
#[ignore = "timing; run in release"]
fn sixteen_mib_in_64k_chunks() {
    const UPDATE: usize = 16 << 20;
    let parts = ResponseParts {
        update_len: UPDATE as u32,
        ..Default::default()
    };
    let mut body = vec![0u8; 14 + UPDATE];
    encode_head(&parts, &mut body).unwrap();
    let rounds = 200;
    let start = Instant::now();
    for _ in 0..rounds {
        let mut dec = Decoder::new();
        let mut seen = 0usize;
        for piece in black_box(&body[..]).chunks(64 * 1024) {
            let mut rest = piece;
            loop {
                let step = dec.decode(rest).unwrap();
                rest = &rest[step.consumed..];
                match step.event {
                    Some(Event::UpdateChunk { data, .. }) => seen += data.len(),
                    Some(_) => {}
                    None => break,
                }
            }
        }
        assert_eq!(black_box(seen), UPDATE);
        assert!(dec.finish().is_ok());
    }
    let secs = start.elapsed().as_secs_f64();
    let gib_s = (rounds * body.len()) as f64 / secs / f64::from(1u32 << 30);
    println!(
        "decode: {gib_s:.1} GiB/s ({:.1} ns per 64 KiB call)",
        secs * 1e9 / (rounds * 256) as f64
    );
    assert!(gib_s >= 2.0, "{gib_s} GiB/s");
}
