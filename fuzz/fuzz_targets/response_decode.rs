//! Fuzz target `response_decode`: see `cups_core::fuzzing::response_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cups_core::fuzzing::response_decode(data));
