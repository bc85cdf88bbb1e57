//! `cups-server gateway add|list|show|remove` on the filesystem store, and `plan`.

mod cli_support;

use std::fs;

use cli_support::{fails, ok, vectors_dir, workdir};
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn add_list_show_remove_round_trip() {
    let dir = workdir();
    let d = dir.path();
    ok(d, &["init"]);
    assert_eq!(json(&ok(d, &["gateway", "list", "--json"])), json("[]"));

    // Any EUI form; labels; per-gateway URIs.
    let added = ok(
        d,
        &[
            "gateway",
            "add",
            "00-16-C0-01-FF-10-A2-35",
            "--label",
            "site=berlin",
            "--label",
            "rack=3",
            "--tc-uri",
            "wss://lns.example.org:8887",
        ],
    );
    assert!(
        added.contains("registered gateway 0016c001ff10a235"),
        "{added}"
    );
    assert!(added.contains("16:c001:ff10:a235"), "{added}");
    assert!(!added.contains("token"), "{added}");

    // Token mode prints the token once.
    let added = ok(
        d,
        &[
            "gateway",
            "add",
            "::1",
            "--cups-auth",
            "token",
            "--tc",
            "server-auth",
        ],
    );
    let token = added
        .lines()
        .find_map(|l| l.strip_prefix("CUPS token (shown once; only its hash is indexed): "))
        .expect("token line")
        .to_owned();
    assert_eq!(token.len(), 43, "{token}");

    // Registering twice fails; a bad EUI fails with a one-line reason.
    let err = fails(d, &["gateway", "add", "0000000000000001"]);
    assert!(err.contains("already registered"), "{err}");
    let err = fails(d, &["gateway", "add", "not-an-eui"]);
    assert!(err.starts_with("error: invalid EUI"), "{err}");
    let err = fails(
        d,
        &["gateway", "add", "0016c001ff10a236", "--label", "novalue"],
    );
    assert!(err.contains("--label"), "{err}");

    let list = json(&ok(d, &["gateway", "list", "--json"]));
    let euis: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|g| g["eui"].as_str().expect("eui"))
        .collect();
    assert_eq!(euis, ["0000000000000001", "0016c001ff10a235"]);
    let table = ok(d, &["gateway", "list"]);
    assert!(table.contains("site=berlin"), "{table}");
    assert!(table.contains("2 gateway(s)"), "{table}");

    let shown = json(&ok(d, &["gateway", "show", "16:c001:ff10:a235", "--json"]));
    assert_eq!(shown["eui"], "0016c001ff10a235");
    assert_eq!(shown["id6"], "16:c001:ff10:a235");
    assert_eq!(shown["cups_auth"], "client-cert");
    assert_eq!(shown["tc_mode"], "client-cert");
    assert_eq!(shown["tc_uri"], "wss://lns.example.org:8887");
    assert_eq!(shown["labels"]["rack"], "3");
    assert_eq!(shown["bootstrap_open"], true);
    assert!(
        shown["cups_cred"].is_null(),
        "minted on first contact or export"
    );

    // No secret in `show`: the token's record shows a hash prefix only.
    for args in [
        &["gateway", "show", "::1", "--json"][..],
        &["gateway", "show", "::1"],
        &["gateway", "list", "--json"],
    ] {
        let out = ok(d, args);
        assert!(!out.contains(&token), "{args:?} shows the token");
        assert!(!out.contains("PRIVATE"), "{args:?}");
    }
    let tok = json(&ok(d, &["gateway", "show", "::1", "--json"]));
    assert_eq!(tok["cups_cred"]["form"], "token");
    assert_eq!(
        tok["cups_cred"]["token_sha256_prefix"]
            .as_str()
            .expect("prefix")
            .len(),
        12
    );

    let removed = ok(d, &["gateway", "remove", "0016C001FF10A235"]);
    assert!(
        removed.contains("removed gateway 0016c001ff10a235"),
        "{removed}"
    );
    let err = fails(d, &["gateway", "show", "0016c001ff10a235"]);
    assert!(err.contains("not registered"), "{err}");
    let err = fails(d, &["gateway", "remove", "0016c001ff10a235"]);
    assert!(err.contains("not registered"), "{err}");
    ok(d, &["gateway", "remove", "::1"]);
    assert_eq!(json(&ok(d, &["gateway", "list", "--json"])), json("[]"));
}

#[test]
fn commands_without_pki_say_what_is_missing() {
    let dir = workdir();
    let err = fails(dir.path(), &["gateway", "list"]);
    assert!(err.contains("PKI in certs"), "{err}");
    assert!(err.contains("cups-server init"), "{err}");
}

#[test]
fn plan_with_a_station_request() {
    let dir = workdir();
    let d = dir.path();
    ok(d, &["init"]);
    ok(d, &["gateway", "add", "0016c001ff10a235"]);
    ok(
        d,
        &[
            "gateway",
            "export",
            "0016c001ff10a235",
            "--station-home",
            "home",
        ],
    );
    // The real station's first request (PEM credentials: its CRC is not the blob's).
    let request = vectors_dir().join("requests/first-contact.json");
    let request = request.to_str().expect("path");
    let plan = json(&ok(
        d,
        &["plan", "16:c001:ff10:a235", "--request", request, "--json"],
    ));
    let seg = |name: &str| {
        plan["segments"]
            .as_array()
            .expect("segments")
            .iter()
            .find(|s| s["segment"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {plan}"))
    };
    assert_eq!(seg("cupsCred")["action"], "send", "{plan}");
    assert_eq!(seg("cupsCred")["reported"], 122_040_733, "{plan}");
    assert_eq!(seg("tcCred")["action"], "send", "{plan}");
    assert_eq!(seg("update")["action"], "keep", "{plan}");
    let text = ok(d, &["plan", "0016c001ff10a235", "--request", request]);
    assert!(text.contains("cupsCred  send"), "{text}");

    // Without a request: what it was last confirmed to hold.
    ok(d, &["plan", "0016c001ff10a235"]);
    let err = fails(d, &["plan", "0016c001ff10a236"]);
    assert!(err.contains("not registered"), "{err}");
    fs::write(d.join("bad.json"), b"{not json").expect("write");
    let err = fails(d, &["plan", "0016c001ff10a235", "--request", "bad.json"]);
    assert!(err.contains("malformed"), "{err}");
}

#[test]
fn firmware_add_list_remove() {
    let dir = workdir();
    let d = dir.path();
    ok(d, &["init"]);
    fs::write(d.join("update.sh"), b"#!/bin/sh\nrm -f /tmp/update.bin\n").expect("image");
    let added = ok(
        d,
        &[
            "firmware",
            "add",
            "--model",
            "linux",
            "--version",
            "2.0.7",
            "update.sh",
        ],
    );
    assert!(added.contains("added firmware linux-2.0.7"), "{added}");
    ok(
        d,
        &[
            "firmware",
            "add",
            "--model",
            "rpi",
            "--version",
            "2.0.8",
            "--from",
            "2.0.7",
            "--id",
            "rpi-208",
            "update.sh",
        ],
    );
    let list = json(&ok(d, &["firmware", "list", "--json"]));
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], "linux-2.0.7");
    assert_eq!(list[0]["signatures"].as_array().expect("sigs").len(), 1);
    assert_eq!(list[1]["from_versions"][0], "2.0.7");
    let err = fails(
        d,
        &[
            "firmware",
            "add",
            "--model",
            "linux",
            "--version",
            "2.0.7",
            "update.sh",
        ],
    );
    assert!(err.contains("exists"), "{err}");
    let err = fails(
        d,
        &[
            "firmware",
            "add",
            "--model",
            "linux",
            "--version",
            "3",
            "missing.bin",
        ],
    );
    assert!(err.contains("missing.bin"), "{err}");
    ok(d, &["firmware", "remove", "rpi-208"]);
    let table = ok(d, &["firmware", "list"]);
    assert!(table.contains("1 image(s)"), "{table}");
    let err = fails(d, &["firmware", "remove", "rpi-208"]);
    assert!(err.contains("not found"), "{err}");
}
