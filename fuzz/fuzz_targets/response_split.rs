//! Fuzz target `response_split`: see `cups_core::fuzzing::response_split`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cups_core::fuzzing::response_split(data));
