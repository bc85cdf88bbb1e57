//! `cups-server init`: creates the PKI once, never overwrites, inspects.

mod cli_support;

use std::collections::BTreeMap;
use std::fs;

use cli_support::{fails, mode, ok, workdir};

fn snapshot(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .expect("certs dir")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).expect("read"),
            )
        })
        .collect()
}

#[test]
fn init_twice_never_overwrites() {
    let dir = workdir();
    let first = ok(
        dir.path(),
        &["init", "--dns", "cups.example.org", "--signing-keys", "2"],
    );
    for f in [
        "ca.crt",
        "ca.key",
        "cups.crt",
        "cups.key",
        "sig-0.pem",
        "sig-0.key",
        "sig-1.pem",
        "sig-1.key",
    ] {
        assert!(first.contains(&format!("created certs/{f}")), "{first}");
    }
    let certs = dir.path().join("certs");
    for key in ["ca.key", "cups.key", "sig-0.pem", "sig-1.pem"] {
        assert_eq!(mode(&certs.join(key)), 0o600, "{key}");
    }
    assert_eq!(fs::read(certs.join("sig-1.key")).expect("sig").len(), 64);
    let before = snapshot(&certs);

    let second = ok(dir.path(), &["init", "--dns", "other.example.org"]);
    assert!(!second.contains("created certs"), "{second}");
    assert!(second.contains("kept    certs/ca.key"), "{second}");
    assert!(second.contains("nothing created"), "{second}");
    assert_eq!(snapshot(&certs), before, "init changed existing files");

    // More signing keys: only the new ones are created.
    let third = ok(dir.path(), &["init", "--signing-keys", "3"]);
    assert!(third.contains("created certs/sig-2.pem"), "{third}");
    let after = snapshot(&certs);
    for (name, bytes) in &before {
        assert_eq!(after.get(name), Some(bytes), "{name} changed");
    }
}

#[test]
fn inspect_changes_nothing() {
    let dir = workdir();
    let err = fails(dir.path(), &["init", "--inspect"]);
    assert!(err.contains("not usable"), "{err}");
    assert!(
        !dir.path().join("certs").exists(),
        "inspect created the directory"
    );

    ok(dir.path(), &["--cert-path", "pki", "init"]);
    let shown = ok(dir.path(), &["--cert-path", "pki", "init", "--inspect"]);
    assert!(shown.contains("status: OK"), "{shown}");
    assert!(shown.contains("DNS:localhost"), "{shown}");
    assert!(shown.contains("sig-0.key  keyCRC"), "{shown}");
}

#[test]
fn cert_path_from_env_and_dotenv() {
    let dir = workdir();
    fs::write(dir.path().join(".env"), "CERT_PATH=from-dotenv\n").expect(".env");
    ok(dir.path(), &["init"]);
    assert!(dir.path().join("from-dotenv/ca.crt").exists());
    cli_support::ok_env(dir.path(), &["init"], &[("CERT_PATH", "from-env")]);
    assert!(dir.path().join("from-env/ca.crt").exists());
    ok(dir.path(), &["init", "--cert-path", "from-flag"]);
    assert!(dir.path().join("from-flag/ca.crt").exists());
}
