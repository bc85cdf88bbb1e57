//! The `hil` binary: help, listing, and clear errors without a station.

mod support;

use std::process::Command;

fn hil(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hil"))
        .args(args)
        .env_remove("CUPS_HIL_STATION")
        .output()
        .expect("run hil")
}

#[test]
fn help_list_and_errors() {
    for args in [&["--help"][..], &["run", "--help"]] {
        let out = hil(args);
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Examples:"), "{text}");
        assert!(text.contains("--ssh") || args.len() == 1, "{text}");
    }
    let out = hil(&["list"]);
    assert!(out.status.success());
    let list = String::from_utf8_lossy(&out.stdout);
    for s in hil::Scenario::ALL {
        assert!(list.lines().any(|l| l == s.name()), "{list}");
    }

    let out = hil(&["run", "first-boot"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no station configured"), "{err}");

    let out = hil(&["run", "nope", "--station", "/nonexistent/station"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scenario"));

    let out = hil(&["run", "first-boot", "--station", "/nonexistent/station"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));

    // Usage errors exit 2: --ssh needs --home; --station and --ssh exclude each other.
    for args in [
        &["run", "first-boot", "--ssh", "root@gw"][..],
        &["run", "x", "--station", "s", "--ssh", "a@b", "--home", "/h"],
        &["frobnicate"],
    ] {
        assert_eq!(hil(args).status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn runs_a_scenario_with_a_relative_station_path_and_json_output() {
    let python = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !python {
        eprintln!("skipped: python3 is not available for the stand-in station");
        return;
    }
    let cups_server = support::cups_server();
    let out = Command::new(env!("CARGO_BIN_EXE_hil"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "run",
            "steady-state",
            "--station",
            "tests/standin/station.py",
            "--resync-secs",
            "1",
            "--oksync-secs",
            "2",
            "--step-timeout",
            "20",
            "--json",
        ])
        .arg("--cups-server")
        .arg(&cups_server)
        .env_remove("CUPS_HIL_STATION")
        .output()
        .expect("run hil");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let r = &reports[0];
    assert_eq!(r["scenario"], "SteadyState");
    assert_eq!(r["eui"], "0016c0fffe000001");
    assert!(r["checks"].as_array().is_some_and(|c| !c.is_empty()));
    assert!(
        r["station_events"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
    );
}
