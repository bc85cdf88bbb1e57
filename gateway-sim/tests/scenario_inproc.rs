//! Scenarios against the in-process server (`InProcessAdmin`, what `demo` runs): every
//! scenario with TC, and the server outage without TC (1-minute CUPS retries).

use gateway_sim::factory::FactoryCa;
use gateway_sim::scenario::inproc::INPROC_TC_URI;
use gateway_sim::scenario::{
    InProcessAdmin, OUTAGE_SPAN, OutageMode, Runner, RunnerConfig, Scenario,
};

const GATEWAYS: u32 = 12;

#[test]
fn every_scenario_in_process_with_tc() {
    let factory = FactoryCa::generate().unwrap();
    let admin = InProcessAdmin::start(&factory, Some(INPROC_TC_URI.into())).unwrap();
    let mut config = RunnerConfig::new(GATEWAYS, 7);
    config.tc_token_gateways = 3;
    let mut runner = Runner::new(admin, &factory, config).unwrap();
    assert!(runner.tc_enabled());
    runner.run(Scenario::All).unwrap();
    let report = runner.report(Scenario::All);
    let table = report.summary_table();
    println!("{table}");
    assert!(report.passed(), "{table}");
    assert_eq!(report.outage_mode, OutageMode::StopServer);
    assert_eq!(report.phases.len(), Scenario::SEQUENCE.len());
    for p in &report.phases {
        assert_eq!(p.skipped, None, "{table}");
        assert_eq!(
            (p.gateways_done, p.gateways_failed),
            (GATEWAYS, 0),
            "{table}"
        );
        assert_eq!(p.tc_connected, GATEWAYS, "{}: {table}", p.name);
    }
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["phases"][7]["name"], "lns-outage");
    // Running a scenario again does not repeat first boot.
    runner.run(Scenario::SteadyState).unwrap();
    let names: Vec<&str> = runner.phases().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names.iter().filter(|n| **n == "first-boot").count(), 1);
}

#[test]
fn server_outage_without_tc_retries_every_minute() {
    let factory = FactoryCa::generate().unwrap();
    let admin = InProcessAdmin::start(&factory, None).unwrap();
    let mut runner = Runner::new(admin, &factory, RunnerConfig::new(GATEWAYS, 8)).unwrap();
    assert!(!runner.tc_enabled());
    runner.run(Scenario::ServerOutage).unwrap();
    runner.run(Scenario::LnsOutage).unwrap();
    let report = runner.report(Scenario::ServerOutage);
    let table = report.summary_table();
    println!("{table}");
    assert!(report.passed(), "{table}");
    let outage = &report.phases[1];
    assert_eq!(outage.name, "server-outage");
    // Without an LNS the station retries CUPS on its 1-minute resync interval.
    let minutes = OUTAGE_SPAN.as_secs() / 60;
    let per_gateway = outage.requests_failed / u64::from(GATEWAYS);
    assert!(
        per_gateway + 2 >= minutes,
        "{per_gateway} failures per gateway in {minutes} minutes: {table}"
    );
    assert!(outage.retries > 0 && outage.fallbacks_backup > 0, "{table}");
    assert!(report.phases[2].skipped.is_some(), "{table}");
}

/// Each gateway's final state after every scenario: what it holds and what happened to it,
/// without the number of routine polls (virtual time advances with real time while an
/// interaction is in flight, so a 24 h poll that falls within milliseconds of a phase's end
/// may land on either side of it) and without credential CRCs (every run mints fresh keys).
fn final_states(report: &gateway_sim::Report) -> Vec<String> {
    report
        .gateways
        .iter()
        .map(|o| {
            format!(
                "{} {} {:?} set={} pkg={:?} tcuri={:?} creds={}/{} upd={}/{}/{} boot={} bak={} \
                 backups={} tc_up={} tc_restarts={}",
                o.index,
                o.eui,
                o.status,
                o.credset,
                o.package,
                o.tc_uri,
                o.creds_stored,
                o.creds_rejected,
                o.updates_run,
                o.updates_applied,
                o.updates_rejected,
                o.on_boot,
                o.on_backup,
                o.backups,
                o.tc_connected,
                o.tc_restarts,
            )
        })
        .collect()
}

fn every_scenario_final_states(seed: u64) -> Vec<String> {
    let factory = FactoryCa::generate().unwrap();
    let admin = InProcessAdmin::start(&factory, Some(INPROC_TC_URI.into())).unwrap();
    let mut runner = Runner::new(admin, &factory, RunnerConfig::new(GATEWAYS, seed)).unwrap();
    runner.run(Scenario::All).unwrap();
    let report = runner.report(Scenario::All);
    assert!(report.passed(), "{}", report.summary_table());
    final_states(&report.report)
}

#[test]
fn same_seed_same_final_state_through_every_scenario() {
    // Fresh server, PKI and factory each time: every gateway ends in the same state.
    let first = every_scenario_final_states(11);
    let second = every_scenario_final_states(11);
    assert_eq!(first.len(), GATEWAYS as usize);
    assert_eq!(first, second);
}

#[test]
fn a_range_registered_before_is_refused_with_a_hint() {
    use gateway_sim::scenario::{Admin, ScenarioError};
    let factory = FactoryCa::generate().unwrap();
    let mut admin = InProcessAdmin::start(&factory, None).unwrap();
    let config = RunnerConfig::new(GATEWAYS, 1);
    // Two EUIs of the fleet's range exist already (an earlier run).
    admin.register(config.first_eui, 2, false).unwrap();
    let err = Runner::new(admin, &factory, config).unwrap_err();
    assert!(
        matches!(err, ScenarioError::AlreadyRegistered { existing: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("--first-eui"), "{err}");
}
