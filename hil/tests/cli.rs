//! The `hil` binary: help, listing, and clear errors without a station.

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
