//! Fuzz target `hil_audit_line`: see `hil::audit::fuzz_audit_lines` (the parser of
//! `cups-server --log-format json` audit lines in the hardware-in-the-loop harness).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hil::audit::fuzz_audit_lines(data));
