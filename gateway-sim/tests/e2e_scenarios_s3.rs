//! End to end, S3 store (moto at `CUPS_TEST_S3_ENDPOINT`; skipped with a reason when unset,
//! failing under `CI`): the real `cups-server` binary with `--store s3` and the `S3_*`
//! variables, 50 simulated gateways through every scenario, each gateway's final state
//! asserted. The image corruption of the bad-signature scenario goes through the S3 store.

mod e2e_support;

use gateway_sim::scenario::StoreSpec;

#[test]
fn fifty_gateways_every_scenario_s3_store() {
    let Some(endpoint) = e2e_support::s3_endpoint() else {
        return;
    };
    let bucket = e2e_support::bucket_name("e2e");
    e2e_support::create_bucket(&endpoint, &bucket);
    let dir = tempfile::tempdir().expect("tempdir");
    e2e_support::every_scenario(
        StoreSpec::S3(e2e_support::s3_config(&endpoint, &bucket)),
        dir.path(),
    );
}
