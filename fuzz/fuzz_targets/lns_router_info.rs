//! Fuzz target `lns_router_info`: see `gateway_sim::lns::fuzz_router_info`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gateway_sim::lns::fuzz_router_info(data));
