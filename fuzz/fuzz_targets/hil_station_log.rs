//! Fuzz target `hil_station_log`: see `hil::log::fuzz_parse_lines` (the Basics Station log
//! line parser of the hardware-in-the-loop harness).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hil::log::fuzz_parse_lines(data));
