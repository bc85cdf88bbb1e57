//! Shared freestanding runtime for the no_std check binaries: a panic handler and the C entry
//! point glue. Deliberately no global allocator: if cups-core (default features off) pulled in
//! `alloc`, linking the binaries fails with "no global memory allocator found"; if it pulled in
//! `std`, the `#[panic_handler]` below collides with std's and the build fails.
#![no_std]

use core::panic::PanicInfo;

#[panic_handler]
fn panic(_info: &PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

// The host's C runtime (crt1.o) calls `main` through `__libc_start_main`; link libc for it.
// Nothing of Rust's std is linked.
#[link(name = "c")]
unsafe extern "C" {}

use cups_core::request::UpdateInfo;
use cups_core::response::{Decoder, Event};
use cups_core::sig::{RustCryptoVerifier, SigKey, UpdateHasher, verify_with_keys};

/// Bytes the optimiser cannot predict: the process arguments' pointer, hidden behind
/// `black_box`. Only its address is used (never dereferenced), to pick a static input.
pub fn opaque_input(argc: i32, argv: *const *const u8) -> &'static [u8] {
    static BODY: [u8; 64] = [0; 64];
    let n = core::hint::black_box(argv as usize) ^ core::hint::black_box(argc as usize);
    let len = n % BODY.len();
    BODY.get(..len).unwrap_or(&[])
}

/// Feed `input` to the response decoder; fold the events into a number.
pub fn decode(input: &[u8]) -> i32 {
    let mut dec = Decoder::new();
    let mut rest = input;
    let mut acc = 0i32;
    while !rest.is_empty() {
        let Ok(step) = dec.decode(rest) else {
            return -1;
        };
        if let Some(Event::UpdateChunk { data, .. }) = step.event {
            acc ^= data.len() as i32;
        }
        rest = rest.get(step.consumed..).unwrap_or(&[]);
        if step.consumed == 0 && step.event.is_none() {
            break;
        }
    }
    acc ^ i32::from(dec.finish().is_ok())
}

/// Hash `input` as an update and verify a signature (also taken from it) against one key.
pub fn verify(input: &[u8]) -> i32 {
    let mut h = UpdateHasher::new();
    h.update(input);
    let digest = h.finish();
    let mut key = [0u8; 64];
    for (k, b) in key.iter_mut().zip(input) {
        *k = *b;
    }
    let v = verify_with_keys(&RustCryptoVerifier, &[SigKey(key)], &digest, input);
    i32::from(v.is_verified())
}

/// Decode `input` as a station request and encode it again.
pub fn request(input: &[u8]) -> i32 {
    let Ok(info) = UpdateInfo::decode(input) else {
        return -2;
    };
    let mut out = [0u8; 512];
    match info.encode(&mut out) {
        Ok(n) => n as i32,
        Err(_) => -3,
    }
}
