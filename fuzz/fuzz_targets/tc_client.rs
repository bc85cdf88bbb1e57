//! Fuzz target `tc_client`: see `gateway_sim::tc::fuzz_tc`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gateway_sim::tc::fuzz_tc(data));
