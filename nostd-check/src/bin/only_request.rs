//! Only `request` of the three parts (see `parts.rs`), to itemise the code size.
#![no_std]
#![no_main]

/// C entry point (the host's C runtime calls it; no Rust std is linked).
#[unsafe(no_mangle)]
pub extern "C" fn main(argc: i32, argv: *const *const u8) -> i32 {
    nostd_check::request(nostd_check::opaque_input(argc, argv))
}
