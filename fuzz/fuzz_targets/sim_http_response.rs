//! Fuzz target `sim_http_response`: see `gateway_sim::http::fuzz_response`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gateway_sim::http::fuzz_response(data));
