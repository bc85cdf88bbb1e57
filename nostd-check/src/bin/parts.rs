//! Decoder + verifier + request codec, driven from inputs the compiler cannot see, so none of
//! it is optimised away. `text(parts) - text(baseline)` is their code size.
#![no_std]
#![no_main]

use nostd_check::{decode, request, verify};

/// C entry point (the host's C runtime calls it; no Rust std is linked).
#[unsafe(no_mangle)]
pub extern "C" fn main(argc: i32, argv: *const *const u8) -> i32 {
    let input = nostd_check::opaque_input(argc, argv);
    decode(input) ^ verify(input) ^ request(input)
}
