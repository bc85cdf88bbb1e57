//! Fuzz target `sig_der`: see `cups_core::fuzzing::sig_der`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cups_core::fuzzing::sig_der(data));
