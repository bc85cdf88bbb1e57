//! Fuzz target `ws_frame`: see `gateway_sim::ws::fuzz_frames`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gateway_sim::ws::fuzz_frames(data));
