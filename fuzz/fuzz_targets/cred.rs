//! Fuzz target `cred`: see `cups_core::fuzzing::cred`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cups_core::fuzzing::cred(data));
