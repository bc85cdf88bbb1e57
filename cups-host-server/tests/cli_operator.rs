//! `cups-server gateway add --count` / several EUIs, `gateway set`, `gateway renew` and what
//! `gateway show --json` reports about them, on the filesystem store (and on S3 when a test
//! endpoint is configured).

mod cli_support;

use std::path::Path;

use cli_support::{fails, ok, ok_env, run_env, s3_bucket, s3_endpoint, workdir};
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn euis(d: &Path, env: &[(&str, &str)]) -> Vec<String> {
    json(&ok_env(d, &["gateway", "list", "--json"], env))
        .as_array()
        .expect("array")
        .iter()
        .map(|g| g["eui"].as_str().expect("eui").to_owned())
        .collect()
}

#[test]
fn add_count_and_several_euis() {
    let dir = workdir();
    let d = dir.path();
    ok(d, &["init"]);
    let out = ok(d, &["gateway", "add", "0016c001ff10fffe", "--count", "3"]);
    assert!(out.contains("registered 3 gateways"), "{out}");
    assert!(out.contains("registered gateway 0016c001ff110000"), "{out}");
    let out = ok(d, &["gateway", "add", "::5", "00-00-00-00-00-00-00-07"]);
    assert!(out.contains("registered 2 gateways"), "{out}");
    assert_eq!(
        euis(d, &[]),
        [
            "0000000000000005",
            "0000000000000007",
            "0016c001ff10fffe",
            "0016c001ff10ffff",
            "0016c001ff110000"
        ]
    );

    // Token mode over a range prints every token once.
    let out = ok(
        d,
        &[
            "gateway",
            "add",
            "::100",
            "--count",
            "2",
            "--cups-auth",
            "token",
        ],
    );
    assert_eq!(out.matches("CUPS token (shown once").count(), 2, "{out}");

    // Limits: above MAX_ADD_COUNT, zero, past the top, --count with several EUIs.
    for (args, needle) in [
        (
            &["gateway", "add", "::1", "--count", "100001"][..],
            "100000",
        ),
        (&["gateway", "add", "::1", "--count", "0"], "--count"),
        (
            &["gateway", "add", "fffffffffffffffe", "--count", "3"],
            "ffffffffffffffff",
        ),
        (
            &["gateway", "add", "::1", "::2", "--count", "2"],
            "one starting EUI",
        ),
        (&["gateway", "add", "::1", "bogus"], "invalid EUI"),
    ] {
        let err = fails(d, args);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert_eq!(
        euis(d, &[]).len(),
        7,
        "nothing registered by a refused command"
    );

    // Stops at the first error and says how many were registered.
    let err = fails(d, &["gateway", "add", "0016c001ff10fffb", "--count", "5"]);
    assert!(err.contains("gateway 0016c001ff10fffe"), "{err}");
    assert!(err.contains("already registered"), "{err}");
    assert!(err.contains("3 of 5 gateways registered"), "{err}");
    assert_eq!(euis(d, &[]).len(), 10);
    // A single EUI keeps the plain error.
    let err = fails(d, &["gateway", "add", "::5"]);
    assert_eq!(
        err.trim(),
        "error: gateway 0000000000000005 is already registered"
    );
}

#[test]
fn add_count_reports_progress_for_large_batches() {
    let dir = workdir();
    let d = dir.path();
    ok(d, &["init"]);
    // PROGRESS_EVERY = 1000: a batch of that size reports once, at its end.
    let out = run_env(
        d,
        &["gateway", "add", "0016c00000000000", "--count", "1000"],
        &[],
    );
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim(), "registered 1000/1000 gateways", "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("registered 1000 gateways"));
    assert_eq!(euis(d, &[]).len(), 1000);
}

fn set_and_renew(d: &Path, env: &[(&str, &str)]) {
    ok_env(d, &["init"], env);
    ok_env(
        d,
        &["gateway", "add", "0016c001ff10a235", "--count", "2"],
        env,
    );
    ok_env(
        d,
        &[
            "gateway",
            "export",
            "0016c001ff10a235",
            "--station-home",
            "gw",
        ],
        env,
    );
    let shown = json(&ok_env(
        d,
        &["gateway", "show", "0016c001ff10a235", "--json"],
        env,
    ));
    let cups = &shown["cups_cred"];
    assert_eq!(cups["confirmed"], false);
    assert_eq!(cups["renew_requested"], false);
    assert!(cups["crc"].as_u64().is_some());
    assert!(cups["previous"].is_null());

    // set: both URIs on two gateways; then clear one.
    let out = ok_env(
        d,
        &[
            "gateway",
            "set",
            "0016c001ff10a235",
            "0016c001ff10a236",
            "--tc-uri",
            "wss://lns2.example.org:8887",
            "--cups-uri",
            "https://cups2.example.org:443",
        ],
        env,
    );
    assert!(out.contains("updated 2 gateways"), "{out}");
    let shown = json(&ok_env(
        d,
        &["gateway", "show", "16:c001:ff10:a236", "--json"],
        env,
    ));
    assert_eq!(shown["tc_uri"], "wss://lns2.example.org:8887");
    assert_eq!(shown["cups_uri"], "https://cups2.example.org:443");
    ok_env(
        d,
        &["gateway", "set", "0016c001ff10a236", "--clear-tc-uri"],
        env,
    );
    let shown = json(&ok_env(
        d,
        &["gateway", "show", "0016c001ff10a236", "--json"],
        env,
    ));
    assert!(shown["tc_uri"].is_null());
    assert_eq!(shown["cups_uri"], "https://cups2.example.org:443");
    let out = run_env(
        d,
        &[
            "gateway",
            "set",
            "0016c001ff10a235",
            "--tc-uri",
            "https://x:1",
        ],
        env,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid TC URI"));
    let out = run_env(d, &["gateway", "set", "::99", "--clear-tc-uri"], env);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not registered"));

    // renew: one slot on one gateway, then --all.
    let out = ok_env(d, &["gateway", "renew", "0016c001ff10a235", "--tc"], env);
    assert!(
        out.contains("renewal requested for the TC credentials"),
        "{out}"
    );
    let shown = json(&ok_env(
        d,
        &["gateway", "show", "0016c001ff10a235", "--json"],
        env,
    ));
    assert_eq!(shown["tc_cred"]["renew_requested"], true);
    assert_eq!(shown["cups_cred"]["renew_requested"], false);
    let text = ok_env(d, &["gateway", "show", "0016c001ff10a235"], env);
    assert!(text.contains("renewal requested"), "{text}");
    let out = ok_env(d, &["gateway", "renew", "--all"], env);
    assert!(
        out.contains("renewal requested for 1 of 2 gateways"),
        "{out}"
    );
    assert!(out.contains("0016c001ff10a236: nothing to renew"), "{out}");
    let shown = json(&ok_env(
        d,
        &["gateway", "show", "0016c001ff10a235", "--json"],
        env,
    ));
    assert_eq!(shown["cups_cred"]["renew_requested"], true);

    // Export mints the renewal (as a request would): previous kept, flag cleared.
    let old_crc = shown["cups_cred"]["crc"].as_u64().expect("crc");
    ok_env(
        d,
        &[
            "gateway",
            "export",
            "0016c001ff10a235",
            "--station-home",
            "gw2",
        ],
        env,
    );
    let shown = json(&ok_env(
        d,
        &["gateway", "show", "0016c001ff10a235", "--json"],
        env,
    ));
    assert_eq!(shown["cups_cred"]["renew_requested"], false);
    assert_eq!(
        shown["cups_cred"]["previous"]["crc"].as_u64(),
        Some(old_crc)
    );
    assert_ne!(shown["cups_cred"]["crc"].as_u64(), Some(old_crc));
    assert_eq!(shown["cups_cred"]["confirmed"], false);
}

#[test]
fn set_and_renew_on_the_filesystem_store() {
    let dir = workdir();
    set_and_renew(dir.path(), &[]);
}

#[test]
fn set_and_renew_on_s3() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let bucket = s3_bucket(&endpoint, "op");
    let env = [
        ("S3_BUCKET_NAME", bucket.as_str()),
        ("S3_BUCKET_REGION", "us-east-1"),
        ("S3_BUCKET_ENDPOINT", endpoint.as_str()),
        ("S3_ACCESS_KEY_ID", "test"),
        ("S3_SECRET_ACCESS_KEY", "test"),
    ];
    let dir = workdir();
    set_and_renew(dir.path(), &env);
    assert!(
        !dir.path().join("data").exists(),
        "nothing on the filesystem store"
    );
}
