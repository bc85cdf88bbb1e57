//! Fuzz target `ws_handshake`: see `gateway_sim::ws::fuzz_handshake`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gateway_sim::ws::fuzz_handshake(data));
