//! Fuzz target `eui`: see `cups_core::fuzzing::eui`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cups_core::fuzzing::eui(data));
