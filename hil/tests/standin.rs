//! The harness end to end — real `cups-server`, real LNS endpoint (gateway-sim), provisioning,
//! process handling, log following and audit correlation — against
//! `tests/standin/station.py`, a scripted stand-in that speaks real CUPS and real router-info /
//! muxs WebSockets over real TLS with the credentials the server minted, and logs the
//! station's message texts; update signatures are verified with the `openssl` binary and the
//! update runs with `/bin/sh`. Every scenario also runs against a real station in
//! `tests/e2e.rs`. Skips when `python3` (or, for the update scenarios, `openssl`) is missing.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use hil::station_conf::Timers;
use hil::{CheckOutcome, HilConfig, Scenario, StationTarget, run_scenario};

fn standin() -> Option<HilConfig> {
    let python = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !python {
        eprintln!("skipped: python3 is not available for the stand-in station");
        return None;
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/standin/station.py");
    let mut cfg = HilConfig::new(StationTarget::Local { path });
    cfg.cups_server = Some(support::cups_server());
    cfg.timers = Timers {
        cups_resync: Duration::from_secs(1),
        cups_oksync: Duration::from_secs(2),
        ..Timers::default()
    };
    cfg.step_timeout = Duration::from_secs(20);
    Some(cfg)
}

fn run(s: Scenario) -> hil::HilReport {
    let cfg = standin().expect("stand-in");
    let report = run_scenario(&cfg, s).unwrap_or_else(|e| panic!("{s}: {e}"));
    println!("{report}");
    assert!(report.passed(), "{report}");
    report
}

#[test]
fn steady_state() {
    if standin().is_none() {
        return;
    }
    let r = run(Scenario::SteadyState);
    // Without the LNS endpoint the LNS checks are skipped, not passed.
    assert!(
        r.checks
            .iter()
            .any(|c| matches!(c.outcome, CheckOutcome::Skipped(_)))
            || hil::lns_glue::Lns::available()
    );
    assert!(
        r.audit
            .iter()
            .any(|a| a.outcome.as_deref() == Some("no_change"))
    );
}

#[test]
fn renewal() {
    if standin().is_none() {
        return;
    }
    let r = run(Scenario::Renewal);
    assert!(r.audit.iter().any(|a| a.has_event("renewed:tc")));
}

#[test]
fn server_outage() {
    if standin().is_none() {
        return;
    }
    run(Scenario::ServerOutage);
}

#[test]
fn first_boot() {
    if standin().is_none() {
        return;
    }
    let r = run(Scenario::FirstBoot);
    assert!(r.audit.iter().any(|a| a.has_event("confirmed:cups")));
}

#[test]
fn uri_migration() {
    if standin().is_none() {
        return;
    }
    run(Scenario::UriMigration);
}

#[test]
fn lns_outage() {
    if standin().is_none() {
        return;
    }
    run(Scenario::LnsOutage);
}

fn openssl() -> bool {
    let ok = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: the openssl binary is not available to the stand-in station");
    }
    ok
}

#[test]
fn update() {
    if standin().is_none() || !openssl() {
        return;
    }
    run(Scenario::Update);
}

#[test]
fn bad_signature() {
    if standin().is_none() || !openssl() {
        return;
    }
    run(Scenario::BadSignature);
}

/// The SSH path with `ssh`/`scp` shims that run the harness's real remote command lines on
/// this machine (there is no SSH server here): home preparation, copy, start, `--kill`.
#[test]
fn steady_state_over_the_ssh_path() {
    let Some(local) = standin() else {
        return;
    };
    let StationTarget::Local { path } = &local.target else {
        unreachable!("standin() is local")
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/standin");
    let remote = tempfile::tempdir().expect("remote home");
    let home = remote.path().join("gw");
    // Left over from an earlier run: must be gone before the station starts.
    std::fs::create_dir_all(&home).expect("home");
    std::fs::write(home.join("tc.uri"), "wss://stale:1").expect("stale");
    let mut cfg = HilConfig {
        target: StationTarget::Ssh {
            dest: "hil@gateway".into(),
            home: home.display().to_string(),
        },
        remote_station_bin: path.display().to_string(),
        ssh_command: dir.join("ssh-shim.sh"),
        scp_command: dir.join("scp-shim.sh"),
        ..local.clone()
    };
    cfg.step_timeout = Duration::from_secs(20);
    let report = run_scenario(&cfg, Scenario::SteadyState).expect("run");
    println!("{report}");
    assert!(report.passed(), "{report}");
    assert!(home.join("station.conf").is_file(), "copied by scp");
    assert_ne!(
        std::fs::read_to_string(home.join("tc.uri")).expect("tc.uri"),
        "wss://stale:1"
    );
}
