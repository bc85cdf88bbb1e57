//! The decoder never allocates: a counting global allocator watches full.bin and a 1 MiB
//! update body being decoded in random splits.
//!
//! `GlobalAlloc` is an unsafe trait: unsafe code is allowed in this test file only (the
//! workspace lint is `deny`, and the library keeps its own `#![forbid(unsafe_code)]`).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use cups_core::response::{Decoder, Event, ResponseParts, encode_full, head_len};

/// Counts allocations made by threads that have switched counting on (so the test harness
/// and other tests running in parallel do not interfere).
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNT_THIS_THREAD: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if COUNT_THIS_THREAD.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations_in<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    COUNT_THIS_THREAD.with(|c| c.set(true));
    let r = f();
    COUNT_THIS_THREAD.with(|c| c.set(false));
    (ALLOCATIONS.load(Ordering::SeqCst) - before, r)
}

/// Decode `body` in pieces of `sizes` (cycled); returns (update bytes seen, done, checksum).
/// Allocation-free by construction: no formatting, no collections.
fn decode_in_pieces(body: &[u8], sizes: &[usize]) -> (u64, bool, u64) {
    let mut dec = Decoder::new();
    let mut pos = 0;
    let mut i = 0;
    let mut update_bytes = 0u64;
    let mut sum = 0u64;
    let mut done = false;
    while pos < body.len() {
        let end = (pos + sizes[i % sizes.len()]).min(body.len());
        i += 1;
        let mut rest = &body[pos..end];
        pos = end;
        loop {
            let step = dec.decode(rest).unwrap_or_else(|_| std::process::abort());
            rest = &rest[step.consumed..];
            match step.event {
                None => break,
                Some(Event::UpdateChunk { data, .. }) => {
                    update_bytes += data.len() as u64;
                    sum = sum.wrapping_add(u64::from(data[0]));
                }
                Some(Event::CredChunk { data, .. }) => sum = sum.wrapping_add(data.len() as u64),
                Some(Event::CupsUri(u) | Event::TcUri(u)) => sum = sum.wrapping_add(u.len() as u64),
                Some(Event::Signature { key_crc, der }) => {
                    sum = sum.wrapping_add(u64::from(key_crc) + der.len() as u64)
                }
                Some(Event::Done) => done = true,
                Some(_) => {}
            }
        }
    }
    if dec.finish().is_err() {
        std::process::abort();
    }
    (update_bytes, done, sum)
}

/// Deterministic random split sizes (xorshift), 1..=max.
fn random_sizes(seed: u64, n: usize, max: usize) -> Vec<usize> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % max as u64) as usize + 1
        })
        .collect()
}

fn vectors_dir() -> std::path::PathBuf {
    match std::env::var("CUPS_VECTORS") {
        Ok(d) => d.into(),
        Err(_) => concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors").into(),
    }
}

#[test]
fn decoding_never_allocates() {
    // Sanity: the counter sees allocations at all.
    let (n, v) = allocations_in(|| vec![1u8; 10]);
    assert!(n >= 1 && v.len() == 10, "counting allocator not active");

    let path = vectors_dir().join("responses/full.bin");
    let full = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set CUPS_VECTORS)", path.display()));

    let update: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(31) + 7) as u8)
        .collect();
    let parts = ResponseParts {
        update_len: update.len() as u32,
        ..Default::default()
    };
    let mut big = vec![0u8; head_len(&parts).unwrap() + update.len()];
    encode_full(&parts, &update, &mut big).unwrap();

    let mut splits: Vec<Vec<usize>> = vec![vec![1], vec![usize::MAX >> 1], vec![64 * 1024]];
    for seed in 1..8u64 {
        splits.push(random_sizes(
            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            257,
            300,
        ));
        splits.push(random_sizes(seed, 64, 200_000));
    }

    for sizes in &splits {
        let (n, (_, done, _)) = allocations_in(|| decode_in_pieces(&full, sizes));
        assert_eq!(n, 0, "full.bin allocated {n} times");
        assert!(done);
        if sizes == &[1] {
            continue; // 1 MiB byte by byte is slow in debug builds; covered by the random splits
        }
        let (n, (seen, done, _)) = allocations_in(|| decode_in_pieces(&big, sizes));
        assert_eq!(n, 0, "1 MiB body allocated {n} times");
        assert_eq!(seen, 1 << 20);
        assert!(done);
    }
}
