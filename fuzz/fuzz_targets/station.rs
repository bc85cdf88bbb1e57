//! Fuzz target `station`: see `cups_core::fuzzing::station`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cups_core::fuzzing::station(data));
