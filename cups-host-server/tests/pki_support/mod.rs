//! Shared helpers of the `pki_*` integration tests.
#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::path::{Path, PathBuf};

use cups_host_server::pki::{InitOptions, Pki, PkiPaths, init};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use tempfile::TempDir;

/// The golden vectors: `$CUPS_VECTORS`, else `../../shared/vectors` from the crate. Missing
/// vectors fail the test.
pub fn vectors_dir() -> PathBuf {
    let dir = std::env::var_os("CUPS_VECTORS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"),
        PathBuf::from,
    );
    assert!(
        dir.join("pki").is_dir(),
        "golden vectors not found at {} (set CUPS_VECTORS)",
        dir.display()
    );
    dir
}

/// A fresh PKI made by `init` with default options (one signing key).
pub fn fresh() -> (TempDir, PkiPaths, Pki) {
    fresh_with(&InitOptions::default())
}

/// A fresh PKI made by `init` with `opts`.
pub fn fresh_with(opts: &InitOptions) -> (TempDir, PkiPaths, Pki) {
    let tmp = TempDir::new().expect("tempdir");
    let paths = PkiPaths::new(tmp.path().join("certs"));
    init(&paths, opts).expect("init");
    let pki = Pki::load(&paths).expect("load");
    (tmp, paths, pki)
}

/// A PKI directory built from the golden vectors' files (OpenSSL-made, SEC1 PEM keys).
pub fn vector_dir() -> (TempDir, PkiPaths) {
    let v = vectors_dir().join("pki");
    let tmp = TempDir::new().expect("tempdir");
    let paths = PkiPaths::new(tmp.path());
    for (from, to) in [
        ("ca.crt.pem", "ca.crt"),
        ("ca.key.pem", "ca.key"),
        ("server.crt.pem", "cups.crt"),
        ("server.key.pem", "cups.key"),
        ("sig-0.pem", "sig-0.pem"),
        ("sig-0.key", "sig-0.key"),
        ("sig-1.pem", "sig-1.pem"),
        ("sig-1.key", "sig-1.key"),
    ] {
        fs::copy(v.join(from), paths.dir.join(to)).expect("copy vector");
    }
    (tmp, paths)
}

/// A test CA made with rcgen alone (not the PKI under test).
pub struct TestCa {
    pub issuer: Issuer<'static, KeyPair>,
    pub der: Vec<u8>,
    pub pem: String,
}

pub fn test_ca(cn: &str) -> TestCa {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("self-signed");
    TestCa {
        der: cert.der().to_vec(),
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A leaf with the given CNs and SANs, signed by `ca`; returns (cert DER, key).
pub fn leaf(ca: &TestCa, cns: &[&str], sans: Vec<SanType>) -> (Vec<u8>, KeyPair) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    for cn in cns {
        dn.push(DnType::CommonName, *cn);
    }
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &ca.issuer).expect("leaf");
    (cert.der().to_vec(), key)
}

/// A URI SAN.
pub fn uri(text: &str) -> SanType {
    SanType::URI(rcgen::string::Ia5String::try_from(text).expect("ia5"))
}
