//! Every administration command against the S3 store (moto on loopback): selected by
//! `S3_BUCKET_NAME` alone, the replaced system's way; nothing goes to the filesystem store.

mod cli_support;

use std::fs;

use cli_support::{ok_env, run_env, s3_bucket, s3_endpoint, workdir};
use serde_json::Value;

#[test]
fn gateway_and_firmware_commands_on_s3() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let bucket = s3_bucket(&endpoint, "cli");
    let env = [
        ("S3_BUCKET_NAME", bucket.as_str()),
        ("S3_BUCKET_REGION", "us-east-1"),
        ("S3_BUCKET_ENDPOINT", endpoint.as_str()),
        ("S3_ACCESS_KEY_ID", "test"),
        ("S3_SECRET_ACCESS_KEY", "test"),
    ];
    let dir = workdir();
    let d = dir.path();
    let config = ok_env(d, &["config"], &env);
    assert!(config.contains("s3"), "{config}");
    assert!(!config.contains("S3_SECRET_ACCESS_KEY=test"), "{config}");

    ok_env(d, &["init"], &env);
    ok_env(d, &["gateway", "add", "0016c001ff10a235"], &env);
    ok_env(
        d,
        &[
            "gateway",
            "add",
            "::2",
            "--cups-auth",
            "token",
            "--tc",
            "server-auth",
        ],
        &env,
    );
    let list: Value =
        serde_json::from_str(&ok_env(d, &["gateway", "list", "--json"], &env)).expect("json");
    assert_eq!(list.as_array().expect("array").len(), 2);
    ok_env(
        d,
        &[
            "gateway",
            "export",
            "0016c001ff10a235",
            "--station-home",
            "gw",
        ],
        &env,
    );
    let key = fs::read(d.join("gw/cups.key")).expect("key");
    assert_eq!(key.len(), 121);
    let shown: Value = serde_json::from_str(&ok_env(
        d,
        &["gateway", "show", "0016c001ff10a235", "--json"],
        &env,
    ))
    .expect("json");
    assert_eq!(shown["cups_cred"]["form"], "client-cert");

    fs::write(d.join("img.sh"), b"#!/bin/sh\n").expect("image");
    ok_env(
        d,
        &[
            "firmware",
            "add",
            "--model",
            "linux",
            "--version",
            "9",
            "img.sh",
        ],
        &env,
    );
    let fw: Value =
        serde_json::from_str(&ok_env(d, &["firmware", "list", "--json"], &env)).expect("json");
    assert_eq!(fw[0]["id"], "linux-9");
    ok_env(d, &["plan", "0016c001ff10a235", "--json"], &env);
    ok_env(d, &["firmware", "remove", "linux-9"], &env);
    ok_env(d, &["gateway", "remove", "::2"], &env);
    ok_env(d, &["gateway", "remove", "0016c001ff10a235"], &env);
    assert!(!d.join("data").exists(), "the filesystem store was used");

    // The same bucket, forced back to the filesystem store: empty there.
    let mut fs_env = env.to_vec();
    fs_env.push(("CUPS_STORE", "fs"));
    let list = ok_env(d, &["gateway", "list", "--json"], &fs_env);
    assert_eq!(list.trim(), "[]");

    // An unreachable S3 endpoint is an error, not a hang.
    let bad = [
        ("S3_BUCKET_NAME", "nope"),
        ("S3_BUCKET_ENDPOINT", "http://127.0.0.1:9"),
    ];
    let out = run_env(d, &["gateway", "list"], &bad);
    assert_eq!(out.status.code(), Some(1));
}
