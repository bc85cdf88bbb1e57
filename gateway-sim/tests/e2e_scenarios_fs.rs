//! End to end, filesystem store: the real `cups-server` binary (`init`, `gateway add`,
//! `gateway list --json`, `firmware add|remove`, `serve` as a child process that the outage
//! kills and restarts) and 50 simulated gateways through every scenario, each gateway's final
//! state asserted (CRCs = the server's blobs, confirmed, package = the rollout's target).

mod e2e_support;

use gateway_sim::scenario::StoreSpec;

#[test]
fn fifty_gateways_every_scenario_fs_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    e2e_support::every_scenario(StoreSpec::Fs(dir.path().join("data")), dir.path());
}
