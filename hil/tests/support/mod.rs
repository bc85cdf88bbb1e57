//! Shared by the hil integration tests: the real `cups-server` binary (built on demand) and
//! the station configuration (or the reason to skip).
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use hil::server::locate_cups_server;
use hil::{HilConfig, StationTarget};

/// The `cups-server` binary of this workspace: found next to the test binary, else built
/// with `$CARGO build -p cups-host-server --bin cups-server` (once per test binary).
pub fn cups_server() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = locate_cups_server(None) {
            return p;
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "-p", "cups-host-server", "--bin", "cups-server"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        // The variables cargo sets for this test would make the nested build differ from a
        // shell build (and rebuild back and forth); the target dir and toolchain stay.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
                "CARGO_PRIMARY_",
            ]
            .iter()
            .any(|p| k.starts_with(p))
            {
                build.env_remove(&k);
            }
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "building cups-server failed");
        locate_cups_server(None).expect("cups-server after building it")
    })
    .clone()
}

/// The station to run end-to-end scenarios against: `CUPS_HIL_STATION` (a local binary) or
/// `CUPS_HIL_SSH` + `CUPS_HIL_SSH_HOME`; `None` (with the reason printed) when neither is set.
pub fn station_config() -> Option<HilConfig> {
    let mut cfg = if let Some(cfg) = HilConfig::from_env() {
        cfg
    } else if let (Ok(dest), Ok(home)) = (
        std::env::var("CUPS_HIL_SSH"),
        std::env::var("CUPS_HIL_SSH_HOME"),
    ) {
        HilConfig::new(StationTarget::Ssh { dest, home })
    } else {
        eprintln!(
            "skipped: no station configured (set CUPS_HIL_STATION=/path/to/station, or \
             CUPS_HIL_SSH=user@host and CUPS_HIL_SSH_HOME=/abs/dir)"
        );
        return None;
    };
    cfg.cups_server = Some(cups_server());
    Some(cfg)
}
