//! Every scenario against a real Basics Station. Skips (printing why) unless a station is
//! configured: `CUPS_HIL_STATION=/path/to/station`, or `CUPS_HIL_SSH=user@host` with
//! `CUPS_HIL_SSH_HOME=/abs/dir`.

mod support;

use hil::{Scenario, run_scenario};

fn scenario(s: Scenario) {
    let Some(cfg) = support::station_config() else {
        return;
    };
    let report = run_scenario(&cfg, s).unwrap_or_else(|e| panic!("{s}: {e}"));
    println!("{report}");
    assert!(report.passed(), "{report}");
}

#[test]
fn first_boot() {
    scenario(Scenario::FirstBoot);
}

#[test]
fn steady_state() {
    scenario(Scenario::SteadyState);
}

#[test]
fn renewal() {
    scenario(Scenario::Renewal);
}

#[test]
fn uri_migration() {
    scenario(Scenario::UriMigration);
}

#[test]
fn update() {
    scenario(Scenario::Update);
}

#[test]
fn bad_signature() {
    scenario(Scenario::BadSignature);
}

#[test]
fn server_outage() {
    scenario(Scenario::ServerOutage);
}

#[test]
fn lns_outage() {
    scenario(Scenario::LnsOutage);
}
