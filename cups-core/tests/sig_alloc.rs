//! Proves that hashing a 1 MiB update and verifying its signature against two keys with
//! [`RustCryptoVerifier`] allocates nothing, using a counting global allocator.
//!
//! The counting allocator needs `unsafe impl GlobalAlloc`: allowed in this test file only
//! (the library itself is `#![forbid(unsafe_code)]`).
#![cfg(feature = "signer")]
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use cups_core::sig::{
    RustCryptoVerifier, SigKey, UpdateHasher, UpdateSigner, Verification, verify_with_keys,
};

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// `System`, counting allocations made by the current thread while `COUNTING` is set.
struct Counting;

// SAFETY: every call is forwarded unchanged to `System`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn note() {
    // `try_with`: the thread-locals may be gone while a thread shuts down.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in<T>(f: impl FnOnce() -> T) -> (T, usize) {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    let out = f();
    COUNTING.with(|on| on.set(false));
    (out, ALLOCATIONS.with(Cell::get))
}

#[test]
fn hashing_and_verifying_allocate_nothing() {
    // Setup may allocate: the update, the signers.
    let update: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut d = [0u8; 32];
    d[31] = 7;
    let signer = UpdateSigner::from_scalar(&d).unwrap();
    d[31] = 9;
    let other = UpdateSigner::from_scalar(&d).unwrap().public_key();
    let keys: [SigKey; 2] = [other, signer.public_key()];
    let seg = signer.sign_update(&update);

    // Sanity: the counter sees allocations.
    let (_, n) = allocations_in(|| Box::new(1u8));
    assert_eq!(n, 1);

    let (result, n) = allocations_in(|| {
        let mut h = UpdateHasher::new();
        for chunk in update.chunks(1460) {
            h.update(chunk);
        }
        let digest = h.finish();
        verify_with_keys(&RustCryptoVerifier, &keys, &digest, seg.der())
    });
    assert_eq!(result, Verification::Verified { index: 1 });
    assert_eq!(n, 0, "hash + verify allocated {n} times");

    // Signing allocates nothing either.
    let (_, n) = allocations_in(|| signer.sign_update(&update));
    assert_eq!(n, 0, "signing allocated {n} times");
}
