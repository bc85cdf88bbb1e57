//! Shared harness of the end-to-end scenario tests: the real `cups-server` binary (built from
//! the test with `cargo build -p cups-host-server --bin cups-server`), a fleet run through
//! every scenario, and the final-state assertions.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use cups_core::Eui64;
use cups_core::crc::cred_set_crc;
use cups_core::station::{CredFile, CredKind, FileId, FileSet};
use gateway_sim::factory::FactoryCa;
use gateway_sim::lns::LnsAuth;
use gateway_sim::scenario::cli_admin::find_cups_server_near;
use gateway_sim::scenario::inproc::INPROC_CUPS_URI;
use gateway_sim::scenario::{
    Admin, CliAdmin, CliSettings, ROLLOUT_VERSION, Runner, RunnerConfig, Scenario, StoreSpec,
};

/// Gateways in every end-to-end fleet.
pub const GATEWAYS: u32 = 50;
/// The fleet seed.
pub const SEED: u64 = 42;
/// Gateways (the last ones) registered with a TC token instead of a TC client certificate.
pub const TC_TOKEN_GATEWAYS: u32 = 10;
/// TC URI the server sends by default.
pub const TC_URI: &str = "wss://localhost:6887";
/// TC URI the migration moves gateways to (`RunnerConfig` default).
pub const MIGRATED_TC_URI: &str = "wss://localhost:6897";

/// The `cups-server` binary, built once per test process.
pub fn cups_server() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let mut cmd = Command::new(&cargo);
        cmd.args([
            "build",
            "-q",
            "-p",
            "cups-host-server",
            "--bin",
            "cups-server",
        ])
        .current_dir(root);
        // The variables cargo sets for a running test would make build scripts rerun (and
        // the next `cargo build` from a shell rebuild everything again).
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            let keep = matches!(k.as_ref(), "CARGO_HOME" | "CARGO_TARGET_DIR");
            if !keep && (k.starts_with("CARGO_") || k == "OUT_DIR" || k.starts_with("RUST_TEST")) {
                cmd.env_remove(k.as_ref());
            }
        }
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("cannot run {cargo:?} to build cups-server: {e}"));
        assert!(status.success(), "building cups-server failed: {status}");
        let exe = std::env::current_exe().expect("test executable path");
        find_cups_server_near(&exe).unwrap_or_else(|| {
            panic!(
                "cups-server was built but is not next to {} (a different target dir?)",
                exe.display()
            )
        })
    })
    .clone()
}

/// Run every scenario with `GATEWAYS` gateways against a `cups-server serve` child process on
/// `store`, and assert each gateway's final state.
pub fn every_scenario(store: StoreSpec, dir: &std::path::Path) {
    let bin = cups_server();
    let factory = FactoryCa::generate().expect("factory CA");
    let settings = CliSettings {
        bin,
        cert_path: dir.join("certs"),
        store,
        cups_uri: INPROC_CUPS_URI.into(),
        tc_uri: Some(TC_URI.into()),
        work_dir: dir.to_owned(),
    };
    let admin = CliAdmin::new(settings, Some(factory.cert_pem()), true, None).expect("server");
    let mut config = RunnerConfig::new(GATEWAYS, SEED);
    config.tc_token_gateways = TC_TOKEN_GATEWAYS;
    let first = Eui64::new(0x0016_c001_ffe3_0000).unwrap();
    config.first_eui = first;
    let mut runner = Runner::new(admin, &factory, config).expect("runner");
    let t0 = Instant::now();
    runner.run(Scenario::All).expect("scenarios");
    let report = runner.report(Scenario::All);
    let table = report.summary_table();
    println!("{table}");
    println!(
        "every scenario, {GATEWAYS} gateways: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    assert!(report.passed(), "{table}");
    let ran: Vec<&str> = report.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        ran,
        Scenario::SEQUENCE.map(Scenario::name),
        "every scenario has its phase"
    );
    for p in &report.phases {
        assert_eq!(p.skipped, None, "{}: {table}", p.name);
        assert_eq!(p.gateways_done, GATEWAYS, "{}: {table}", p.name);
    }
    assert!(runner.tc_enabled(), "TC runs in the end-to-end tests");

    // The final state, checked here again from both sides.
    let euis = runner.euis().to_vec();
    let server = runner.admin_mut().gateways(&euis).expect("server view");
    for g in runner.fleet().gateways() {
        let eui = g.id().eui;
        let s = &server[&eui];
        let o = g.outcome();
        let set_crc = |kind| {
            let get = |f| {
                g.store()
                    .get(FileId::cred(kind, FileSet::Reg, f))
                    .unwrap_or(&[])
            };
            cred_set_crc(
                get(CredFile::Trust),
                get(CredFile::Cert),
                get(CredFile::Key),
            )
        };
        assert_eq!(Some(set_crc(CredKind::Cups)), s.cups_crc, "{eui} CUPS");
        assert_eq!(Some(set_crc(CredKind::Tc)), s.tc_crc, "{eui} TC");
        assert!(s.cups_confirmed && s.tc_confirmed, "{eui}: {s:?}");
        assert!(!s.bootstrap_open, "{eui}");
        assert_eq!(o.package.as_deref(), Some(ROLLOUT_VERSION), "{eui}");
        assert_eq!(o.credset, "REG", "{eui}");
        assert!(
            o.updates_rejected >= 1,
            "{eui}: the corrupted image was never rejected"
        );
        // TC: the session is up on the LNS the migration moved it to.
        assert!(o.tc_connected, "{eui}: {o:?}");
        let lns = runner.tc_side().expect("TC").gateways(1);
        assert!(
            lns.get(&eui).is_some_and(|s| s.muxs >= 1),
            "{eui}: {:?}",
            lns.get(&eui)
        );
        // The last TC_TOKEN_GATEWAYS hold a TC token (checked against the server's token
        // index by the LNS), the others a TC client certificate.
        let token = eui.as_u64() - first.as_u64() >= u64::from(GATEWAYS - TC_TOKEN_GATEWAYS);
        let want = if token {
            LnsAuth::Token
        } else {
            LnsAuth::ClientCert
        };
        assert_eq!(lns.get(&eui).and_then(|s| s.auth), Some(want), "{eui}");
        assert_eq!(s.tc_uri.as_deref(), Some(MIGRATED_TC_URI), "{eui}");
    }
}

/// The S3 test endpoint (`CUPS_TEST_S3_ENDPOINT`, moto), or `None` with a printed reason —
/// except under `CI`, where a missing endpoint fails (the cups-host-server S3 test rules).
pub fn s3_endpoint() -> Option<String> {
    match std::env::var("CUPS_TEST_S3_ENDPOINT") {
        Ok(e) if !e.is_empty() => Some(e.trim_end_matches('/').to_owned()),
        _ if std::env::var_os("CI").is_some() => {
            panic!("S3 tests need CUPS_TEST_S3_ENDPOINT (scripts/s3-test-server.sh start)")
        }
        _ => {
            eprintln!(
                "skipped: CUPS_TEST_S3_ENDPOINT is unset \
                 (run `scripts/s3-test-server.sh start` and export what it prints)"
            );
            None
        }
    }
}

/// A fresh bucket name.
pub fn bucket_name(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("gwsim-{tag}-{}-{nanos}", std::process::id())
}

/// Create `bucket` on the (plain-HTTP, loopback) endpoint.
pub fn create_bucket(endpoint: &str, bucket: &str) {
    use std::io::{Read as _, Write as _};
    let hostport = endpoint
        .strip_prefix("http://")
        .expect("an http:// endpoint")
        .trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(hostport).expect("connect to S3");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(
        resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200"),
        "create bucket {bucket}: {}",
        resp.lines().next().unwrap_or_default()
    );
}

/// The store config of `bucket` on `endpoint` (moto: any credentials, us-east-1).
pub fn s3_config(endpoint: &str, bucket: &str) -> cups_host_server::store::s3::S3Config {
    cups_host_server::store::s3::S3Config {
        bucket: bucket.to_owned(),
        region: "us-east-1".into(),
        endpoint: Some(endpoint.to_owned()),
        access_key_id: "test".into(),
        secret_access_key: "test".into(),
        allow_http: true,
        prefix: None,
    }
}
