//! The freestanding skeleton with no cups-core code: its size is subtracted from `parts`.
#![no_std]
#![no_main]

use nostd_check as _;

/// C entry point (the host's C runtime calls it; no Rust std is linked).
#[unsafe(no_mangle)]
pub extern "C" fn main(argc: i32, _argv: *const *const u8) -> i32 {
    core::hint::black_box(argc) & 1
}
