//! Fuzz target `request_decode`: see `cups_core::fuzzing::request_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cups_core::fuzzing::request_decode(data));
