//! Fuzz target `gateway_list`: the scenario runner's reader of `cups-server gateway list
//! --json` output; see `gateway_sim::scenario::cli_admin::fuzz_gateway_list`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gateway_sim::scenario::cli_admin::fuzz_gateway_list(data));
