//! `cups-server gateway export`: a ready-to-run station home with the right files, modes and
//! contents.

mod cli_support;

use std::fs;
use std::path::Path;

use cli_support::{fails, mode, ok, workdir};
use serde_json::Value;

fn read(p: &Path) -> Vec<u8> {
    fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn shown(d: &Path, eui: &str) -> Value {
    serde_json::from_str(&ok(d, &["gateway", "show", eui, "--json"])).expect("json")
}

#[test]
fn export_client_cert_home() {
    let dir = workdir();
    let d = dir.path();
    ok(d, &["init", "--signing-keys", "2"]);
    ok(
        d,
        &[
            "gateway",
            "add",
            "0016c001ff10a235",
            "--cups-uri",
            "https://cups.example.org:443",
        ],
    );
    let out = ok(
        d,
        &[
            "gateway",
            "export",
            "16:c001:ff10:a235",
            "--station-home",
            "gw",
            "--cups-resync-intv",
            "5s",
        ],
    );
    let home = d.join("gw");
    assert_eq!(
        names(&home),
        [
            "cups.crt",
            "cups.key",
            "cups.trust",
            "cups.uri",
            "sig-0.key",
            "sig-1.key",
            "station.conf"
        ]
    );
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&home.join("cups.key")), 0o600);
    for f in [
        "cups.crt",
        "cups.trust",
        "cups.uri",
        "sig-0.key",
        "station.conf",
    ] {
        assert_eq!(mode(&home.join(f)), 0o644, "{f}");
    }

    let conf: Value = serde_json::from_slice(&read(&home.join("station.conf"))).expect("JSON");
    assert_eq!(conf["station_conf"]["routerid"], "0016c001ff10a235");
    assert_eq!(conf["station_conf"]["log_level"], "INFO");
    assert_eq!(conf["station_conf"]["CUPS_RESYNC_INTV"], "5s");
    assert_eq!(
        read(&home.join("cups.uri")),
        b"https://cups.example.org:443"
    );

    // SEC1 P-256 DER key (30 77, 121 bytes); DER certificates.
    let key = read(&home.join("cups.key"));
    assert_eq!((key.len(), key[0], key[1]), (121, 0x30, 0x77));
    let trust = read(&home.join("cups.trust"));
    let crt = read(&home.join("cups.crt"));
    assert_eq!((trust[0], crt[0]), (0x30, 0x30));
    // The trust is the CA that issued the server certificate (what `init` creates).
    let ca_pem = read(&d.join("certs/ca.crt"));
    let ca = pem::parse(&ca_pem).expect("PEM");
    assert_eq!(ca.contents(), &trust[..]);

    // Signing keys: the raw 64-byte public keys of the PKI.
    for n in 0..2 {
        let k = read(&home.join(format!("sig-{n}.key")));
        assert_eq!(k.len(), 64);
        assert_eq!(k, read(&d.join(format!("certs/sig-{n}.key"))));
    }

    // The station's CRC over these files equals the stored blob's: no resend on first contact.
    let crc = cups_core::crc::cred_set_crc(&trust, &crt, &key);
    let record = shown(d, "0016c001ff10a235");
    assert_eq!(record["cups_cred"]["crc"], u64::from(crc));
    assert!(
        out.contains("the first contact sends no CUPS credentials"),
        "{out}"
    );

    // The certificate names the gateway.
    let id = cups_host_server::pki::identity_from_cert(&crt).expect("identity");
    assert_eq!(id.eui.canonical().to_string(), "0016c001ff10a235");
    assert_eq!(record["cups_cred"]["serial"], id.serial_hex.as_str());

    // Exporting again: refused into a non-empty directory, same credentials with --force.
    let err = fails(
        d,
        &[
            "gateway",
            "export",
            "0016c001ff10a235",
            "--station-home",
            "gw",
        ],
    );
    assert!(err.contains("not empty"), "{err}");
    ok(
        d,
        &[
            "gateway",
            "export",
            "0016c001ff10a235",
            "--station-home",
            "gw",
            "--force",
        ],
    );
    assert_eq!(
        read(&home.join("cups.key")),
        key,
        "re-export keeps the issued key"
    );
}

#[test]
fn export_token_home_and_bootstrap() {
    let dir = workdir();
    let d = dir.path();
    ok(d, &["init"]);
    let added = ok(
        d,
        &[
            "gateway",
            "add",
            "::1",
            "--cups-auth",
            "token",
            "--tc",
            "token",
        ],
    );
    let token = added
        .lines()
        .find_map(|l| l.strip_prefix("CUPS token (shown once; only its hash is indexed): "))
        .expect("token line")
        .to_owned();
    let out = cli_support::run_env(
        d,
        &[
            "gateway",
            "export",
            "0000000000000001",
            "--station-home",
            "boot",
            "--bootstrap",
        ],
        &[],
    );
    assert!(out.status.success());
    // CUPS_URI unset: localhost is written, with a warning.
    assert!(String::from_utf8_lossy(&out.stderr).contains("CUPS_URI is not set"));
    let home = d.join("boot");
    assert_eq!(
        names(&home),
        [
            "cups-boot.crt",
            "cups-boot.key",
            "cups-boot.trust",
            "cups-boot.uri",
            "sig-0.key",
            "station.conf"
        ]
    );
    assert_eq!(read(&home.join("cups-boot.crt")), b"");
    assert_eq!(
        read(&home.join("cups-boot.key")),
        format!("Authorization: Bearer {token}\r\n").as_bytes()
    );
    assert_eq!(mode(&home.join("cups-boot.key")), 0o600);
    assert_eq!(
        read(&home.join("cups-boot.uri")),
        b"https://localhost:16050"
    );
    let conf: Value = serde_json::from_slice(&read(&home.join("station.conf"))).expect("JSON");
    assert_eq!(conf["station_conf"]["routerid"], "0000000000000001");

    // PEM variant of the regular set.
    ok(
        d,
        &[
            "gateway",
            "export",
            "::1",
            "--station-home",
            "pem",
            "--format",
            "pem",
            "--set",
            "TLS_SNI=false",
            "--set",
            "log_level=DEBUG",
        ],
    );
    let trust = String::from_utf8(read(&d.join("pem/cups.trust"))).expect("text");
    assert!(
        trust.starts_with("-----BEGIN CERTIFICATE-----\n"),
        "{trust}"
    );
    assert_eq!(read(&d.join("pem/cups.crt")), b"");
    let conf: Value = serde_json::from_slice(&read(&d.join("pem/station.conf"))).expect("JSON");
    assert_eq!(conf["station_conf"]["TLS_SNI"], false);
    assert_eq!(conf["station_conf"]["log_level"], "DEBUG");
}

#[test]
fn export_pem_key_is_sec1_and_ip_uri_disables_sni() {
    let dir = workdir();
    let d = dir.path();
    ok(d, &["init"]);
    ok(
        d,
        &[
            "gateway",
            "add",
            "0016c001ff10a235",
            "--cups-uri",
            "https://127.0.0.1:16050",
        ],
    );
    ok(
        d,
        &[
            "gateway",
            "export",
            "0016c001ff10a235",
            "--station-home",
            "gw",
            "--format",
            "pem",
        ],
    );
    let key = String::from_utf8(read(&d.join("gw/cups.key"))).expect("text");
    assert!(key.starts_with("-----BEGIN EC PRIVATE KEY-----\n"), "{key}");
    let conf: Value = serde_json::from_slice(&read(&d.join("gw/station.conf"))).expect("JSON");
    assert_eq!(conf["station_conf"]["TLS_SNI"], false);
}

#[test]
fn export_refusals() {
    let dir = workdir();
    let d = dir.path();
    ok(d, &["init"]);
    let err = fails(
        d,
        &[
            "gateway",
            "export",
            "0016c001ff10a235",
            "--station-home",
            "x",
        ],
    );
    assert!(err.contains("not registered"), "{err}");
    assert!(!d.join("x").exists());
    ok(d, &["gateway", "add", "0016c001ff10a235"]);
    fs::create_dir(d.join("full")).expect("dir");
    fs::write(d.join("full/keep.txt"), b"mine").expect("file");
    let err = fails(
        d,
        &[
            "gateway",
            "export",
            "0016c001ff10a235",
            "--station-home",
            "full",
        ],
    );
    assert!(err.contains("not empty"), "{err}");
    // Nothing was minted by the refused export.
    assert!(shown(d, "0016c001ff10a235")["cups_cred"].is_null());
    let err = fails(
        d,
        &[
            "gateway",
            "export",
            "0016c001ff10a235",
            "--station-home",
            "y",
            "--set",
            "routerid=::2",
        ],
    );
    assert!(err.contains("routerid"), "{err}");
    ok(
        d,
        &[
            "gateway",
            "export",
            "0016c001ff10a235",
            "--station-home",
            "full",
            "--force",
        ],
    );
    assert_eq!(
        read(&d.join("full/keep.txt")),
        b"mine",
        "--force touches only station files"
    );
}
