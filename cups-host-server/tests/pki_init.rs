//! `init` (creates what is missing, never overwrites, key files 0600), `load` errors that name
//! the file, `inspect`.

mod pki_support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use cups_host_server::pki::{
    ClientUsage, CupsTrustSource, InitOptions, KeyProblem, Pki, PkiError, PkiPaths, files, init,
    inspect,
};
use pki_support::{test_ca, vector_dir};
use tempfile::TempDir;
use x509_parser::prelude::{FromDer, X509Certificate};

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime, u32)> {
    fs::read_dir(dir)
        .expect("dir")
        .map(|e| {
            let path = e.expect("entry").path();
            let meta = fs::metadata(&path).expect("meta");
            let content = fs::read(&path).expect("read");
            (
                path,
                (
                    content,
                    meta.modified().expect("mtime"),
                    meta.permissions().mode() & 0o777,
                ),
            )
        })
        .collect()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("meta").permissions().mode() & 0o777
}

fn new_dir() -> (TempDir, PkiPaths) {
    let tmp = TempDir::new().expect("tmp");
    let paths = PkiPaths::new(tmp.path().join("certs"));
    (tmp, paths)
}

fn opts() -> InitOptions {
    InitOptions {
        server_dns_names: vec!["cups.example.org".into(), "127.0.0.1".into()],
        ..InitOptions::default()
    }
}

#[test]
fn init_creates_everything_with_private_modes() {
    let (_tmp, paths) = new_dir();
    let report = init(&paths, &opts()).expect("init");
    let created: Vec<_> = report.created.iter().collect();
    assert_eq!(created.len(), 6, "{report}");
    assert!(report.kept.is_empty());
    assert_eq!(mode(&paths.dir), 0o700);
    for key in [paths.ca_key(), paths.server_key(), paths.sig_private(0)] {
        assert!(report.created.contains(&key));
        assert_eq!(mode(&key), 0o600, "{}", key.display());
        let text = fs::read_to_string(&key).expect("pem");
        assert!(
            text.starts_with("-----BEGIN EC PRIVATE KEY-----\n"),
            "SEC1 PEM"
        );
    }
    for public in [paths.ca_cert(), paths.server_cert(), paths.sig_public(0)] {
        assert!(report.created.contains(&public));
        assert_eq!(mode(&public), 0o644, "{}", public.display());
    }
    assert_eq!(fs::read(paths.sig_public(0)).expect("sig").len(), 64);

    let pki = Pki::load(&paths).expect("load");
    assert_eq!(pki.cups_trust_source(), CupsTrustSource::GatewayCa);
    assert_eq!(pki.key_crcs().len(), 1);
    assert_eq!(pki.gateway_roots().len(), 1);
    assert!(pki.bootstrap_roots().is_empty());

    // The CA: a P-256 CA that can sign, big enough to be a blob trust (> 255 bytes content).
    let (_, ca) = X509Certificate::from_der(pki.ca_cert_der()).expect("ca");
    assert!(ca.is_ca());
    assert!(
        ca.key_usage()
            .expect("ku")
            .expect("ku")
            .value
            .key_cert_sign()
    );
    assert!(pki.ca_cert_der().len() > 259, "{}", pki.ca_cert_der().len());
    assert_eq!(pki.ca_cert_der()[1], 0x82);
    assert!(ca.subject().to_string().contains("CUPS gateway CA"));

    // The server certificate: localhost + given names, serverAuth, issued by the CA.
    let chain = pki.server_cert_chain();
    assert_eq!(chain.len(), 1);
    let (_, server) = X509Certificate::from_der(&chain[0]).expect("server");
    let sans: Vec<String> = server
        .subject_alternative_name()
        .expect("san")
        .expect("san")
        .value
        .general_names
        .iter()
        .map(|n| format!("{n}"))
        .collect();
    assert_eq!(
        sans,
        [
            "DNSName(localhost)",
            "DNSName(cups.example.org)",
            "IPAddress(7f:00:00:01)"
        ]
    );
    let eku = server.extended_key_usage().expect("eku").expect("eku");
    assert!(eku.value.server_auth && !eku.value.client_auth);
    assert!(!server.is_ca());
    assert!(pki.issued_by_gateway_ca(&chain[0]));
    let validity =
        server.validity().not_after.to_datetime() - server.validity().not_before.to_datetime();
    assert_eq!(
        validity,
        cups_host_server::pki::DEFAULT_SERVER_VALIDITY + cups_host_server::pki::CLOCK_SKEW
    );
}

#[test]
fn init_twice_never_overwrites() {
    let (_tmp, paths) = new_dir();
    init(&paths, &opts()).expect("init");
    let before = snapshot(&paths.dir);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let report = init(&paths, &opts()).expect("again");
    assert!(report.created.is_empty(), "{report}");
    assert_eq!(report.kept.len(), 6);
    assert_eq!(
        snapshot(&paths.dir),
        before,
        "contents, mtimes and modes unchanged"
    );

    // Asking for more signing keys adds sig-1 and sig-2 only.
    let more = InitOptions {
        signing_keys: 3,
        ..opts()
    };
    let report = init(&paths, &more).expect("more keys");
    assert_eq!(
        report.created,
        [
            paths.sig_private(1),
            paths.sig_public(1),
            paths.sig_private(2),
            paths.sig_public(2)
        ]
    );
    let after = snapshot(&paths.dir);
    for (path, state) in &before {
        assert_eq!(after.get(path), Some(state), "{}", path.display());
    }
    assert_eq!(Pki::load(&paths).expect("load").signers().len(), 3);
    // Fewer keys asked for: nothing is removed.
    let report = init(&paths, &opts()).expect("fewer");
    assert!(report.created.is_empty());
    assert_eq!(Pki::load(&paths).expect("load").signers().len(), 3);
}

#[test]
fn init_completes_missing_parts() {
    let (_tmp, paths) = new_dir();
    init(&paths, &opts()).expect("init");
    let sig0 = fs::read(paths.sig_public(0)).expect("sig");
    let ca = fs::read(paths.ca_cert()).expect("ca");
    fs::remove_file(paths.sig_public(0)).expect("rm");
    fs::remove_file(paths.server_cert()).expect("rm");
    fs::remove_file(paths.server_key()).expect("rm");
    let report = init(&paths, &opts()).expect("init");
    assert_eq!(
        report.created,
        [paths.server_cert(), paths.server_key(), paths.sig_public(0)]
    );
    assert_eq!(
        fs::read(paths.sig_public(0)).expect("sig"),
        sig0,
        "derived from sig-0.pem"
    );
    assert_eq!(fs::read(paths.ca_cert()).expect("ca"), ca);
    let pki = Pki::load(&paths).expect("load");
    assert!(pki.issued_by_gateway_ca(&pki.server_cert_chain()[0]));
}

#[test]
fn half_pairs_are_refused() {
    let (_tmp, paths) = new_dir();
    init(&paths, &opts()).expect("init");
    fs::remove_file(paths.ca_key()).expect("rm");
    let err = init(&paths, &opts()).expect_err("half CA");
    assert!(
        matches!(&err, PkiError::IncompletePair { present, missing } if *present == paths.ca_cert() && *missing == paths.ca_key()),
        "{err}"
    );
    let err = Pki::load(&paths).expect_err("load");
    assert!(
        matches!(&err, PkiError::Missing { path } if *path == paths.ca_key()),
        "{err}"
    );
    assert!(err.to_string().contains("ca.key"));

    let (_tmp, paths) = new_dir();
    init(&paths, &opts()).expect("init");
    fs::remove_file(paths.sig_private(0)).expect("rm");
    let err = init(&paths, &opts()).expect_err("half signing key");
    assert!(err.to_string().contains("sig-0.pem"), "{err}");
    let err = Pki::load(&paths).expect_err("load");
    assert!(err.to_string().contains("sig-0.key") && err.to_string().contains("sig-0.pem"));
}

/// Break a fresh PKI with `f`; `Pki::load` must fail with an error naming `file`.
fn load_fails(file: &str, f: impl FnOnce(&PkiPaths)) -> PkiError {
    let (_tmp, paths) = new_dir();
    init(
        &paths,
        &InitOptions {
            signing_keys: 2,
            ..opts()
        },
    )
    .expect("init");
    f(&paths);
    let err = Pki::load(&paths).expect_err("must fail");
    let text = err.to_string();
    assert!(
        text.contains(&paths.dir.join(file).display().to_string()),
        "error does not name {file}: {text}"
    );
    err
}

#[test]
fn load_errors_name_the_file() {
    let e = load_fails(files::CA_CERT, |p| {
        fs::remove_file(p.ca_cert()).expect("rm")
    });
    assert!(matches!(e, PkiError::Missing { .. }));

    let e = load_fails(files::CA_CERT, |p| {
        fs::write(p.ca_cert(), "hello\n").expect("w")
    });
    assert!(matches!(
        e,
        PkiError::NotPem {
            looks_like_der: false,
            ..
        }
    ));

    let e = load_fails(files::CA_CERT, |p| {
        let der = pem::parse(fs::read(p.ca_cert()).expect("r")).expect("pem");
        fs::write(p.ca_cert(), der.contents()).expect("w");
    });
    assert!(
        matches!(
            e,
            PkiError::NotPem {
                looks_like_der: true,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("DER"));

    let e = load_fails(files::CA_CERT, |p| {
        fs::write(
            p.ca_cert(),
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .expect("w");
    });
    assert!(matches!(e, PkiError::BadPem { .. }), "{e}");

    let e = load_fails(files::CA_CERT, |p| {
        fs::write(
            p.ca_cert(),
            pem::encode(&pem::Pem::new("CERTIFICATE", vec![0x30, 0x00])),
        )
        .expect("w");
    });
    assert!(
        matches!(e, PkiError::BadCertificate { index: 0, .. }),
        "{e}"
    );

    let e = load_fails(files::CA_CERT, |p| {
        fs::write(
            p.ca_cert(),
            pem::encode(&pem::Pem::new("PRIVATE KEY", vec![1])),
        )
        .expect("w");
    });
    assert!(matches!(e, PkiError::NoCertificate { .. }), "{e}");

    let e = load_fails(files::CA_CERT, |p| {
        fs::copy(p.server_cert(), p.ca_cert()).expect("cp");
    });
    assert!(matches!(e, PkiError::NotCa { index: 0, .. }), "{e}");

    let e = load_fails(files::CA_CERT, |p| {
        let ca = fs::read_to_string(p.ca_cert()).expect("r");
        fs::write(p.ca_cert(), format!("{ca}{ca}")).expect("w");
    });
    assert!(
        matches!(e, PkiError::CertificateCount { count: 2, .. }),
        "{e}"
    );

    let e = load_fails(files::CA_KEY, |p| {
        fs::copy(p.sig_private(0), p.ca_key()).expect("cp");
    });
    assert!(matches!(e, PkiError::KeyMismatch { .. }), "{e}");
    assert!(e.to_string().contains("ca.crt"));

    let e = load_fails(files::CA_KEY, |p| {
        fs::write(
            p.ca_key(),
            pem::encode(&pem::Pem::new("ENCRYPTED PRIVATE KEY", vec![0x30, 0x00])),
        )
        .expect("w");
    });
    assert!(
        matches!(
            e,
            PkiError::BadKey {
                problem: KeyProblem::Encrypted,
                ..
            }
        ),
        "{e}"
    );

    let e = load_fails(files::CA_KEY, |p| {
        fs::write(
            p.ca_key(),
            pem::encode(&pem::Pem::new("EC PRIVATE KEY", vec![0x30, 0x00])),
        )
        .expect("w");
    });
    assert!(
        matches!(
            e,
            PkiError::BadKey {
                problem: KeyProblem::Malformed,
                ..
            }
        ),
        "{e}"
    );

    let e = load_fails(files::CA_KEY, |p| {
        fs::write(
            p.ca_key(),
            "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        )
        .expect("w");
    });
    assert!(
        matches!(
            e,
            PkiError::BadKey {
                problem: KeyProblem::NoKey,
                ..
            }
        ),
        "{e}"
    );

    let e = load_fails(files::SERVER_KEY, |p| {
        fs::copy(p.sig_private(0), p.server_key()).expect("cp");
    });
    assert!(matches!(e, PkiError::KeyMismatch { .. }), "{e}");
    assert!(e.to_string().contains("cups.crt"));

    let e = load_fails(files::SERVER_CERT, |p| {
        fs::remove_file(p.server_cert()).expect("rm")
    });
    assert!(matches!(e, PkiError::Missing { .. }), "{e}");

    let e = load_fails("sig-0.key", |p| {
        fs::copy(p.sig_public(1), p.sig_public(0)).expect("cp");
    });
    assert!(matches!(e, PkiError::SigningKeyMismatch { .. }), "{e}");
    assert!(e.to_string().contains("sig-0.pem"));

    let e = load_fails("sig-1.key", |p| {
        fs::write(p.sig_public(1), [0u8; 65]).expect("w");
    });
    assert!(
        matches!(e, PkiError::BadSigPublicKey { len: 65, .. }),
        "{e}"
    );

    let e = load_fails("sig-1.pem", |p| {
        fs::write(
            p.sig_private(1),
            "-----BEGIN EC PRIVATE KEY-----\nMAA=\n-----END EC PRIVATE KEY-----\n",
        )
        .expect("w");
    });
    assert!(matches!(e, PkiError::BadSigningKey { .. }), "{e}");

    let e = load_fails("sig-3.pem", |p| {
        fs::copy(p.sig_private(1), p.sig_private(3)).expect("cp");
        fs::copy(p.sig_public(1), p.sig_public(3)).expect("cp");
    });
    assert!(matches!(e, PkiError::SigningKeyGap { .. }), "{e}");
    assert!(e.to_string().contains("sig-2.pem"));

    let e = load_fails(files::BOOTSTRAP_CA_CERT, |p| {
        fs::copy(p.ca_cert(), p.bootstrap_ca()).expect("cp");
    });
    assert!(matches!(e, PkiError::BootstrapIsGatewayCa { .. }), "{e}");

    let e = load_fails(files::BOOTSTRAP_CA_CERT, |p| {
        let other = test_ca("factory CA");
        let server = fs::read_to_string(p.server_cert()).expect("r");
        fs::write(p.bootstrap_ca(), format!("{}{server}", other.pem)).expect("w");
    });
    assert!(matches!(e, PkiError::NotCa { index: 1, .. }), "{e}");
}

#[test]
fn foreign_server_chain_anchors_cups_blobs() {
    let (_tmp, paths) = new_dir();
    init(&paths, &opts()).expect("init");
    // A server certificate from elsewhere: self-signed, so it is its own anchor.
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    fs::remove_file(paths.server_cert()).expect("rm");
    fs::remove_file(paths.server_key()).expect("rm");
    fs::write(paths.server_cert(), cert.pem()).expect("w");
    fs::write(paths.server_key(), key.serialize_pem()).expect("w");
    let pki = Pki::load(&paths).expect("load PKCS#8 server key");
    assert_eq!(pki.cups_trust_source(), CupsTrustSource::ServerChain);
    assert_eq!(pki.trust_der(ClientUsage::Cups), cert.der().as_ref());
    assert_eq!(pki.trust_der(ClientUsage::Tc), pki.ca_cert_der());
    let sa = pki.server_auth_blob().expect("blob");
    assert!(sa.starts_with(cert.der()));
}

#[test]
fn a_trust_of_128_to_255_bytes_is_refused() {
    let (_tmp, paths) = new_dir();
    init(&paths, &opts()).expect("init");
    // A tiny self-signed certificate (empty names, no extensions): its DER content is
    // 128..=255 bytes, which only the `30 81 xx` length form can encode.
    let (cert, key) = loop {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[1]));
        let cert = params.self_signed(&key).expect("cert");
        if cert.der()[1] == 0x81 {
            break (cert, key);
        }
    };
    fs::remove_file(paths.server_cert()).expect("rm");
    fs::remove_file(paths.server_key()).expect("rm");
    fs::write(paths.server_cert(), cert.pem()).expect("w");
    fs::write(paths.server_key(), key.serialize_pem()).expect("w");
    let err = Pki::load(&paths).expect_err("unsendable trust");
    assert!(
        matches!(
            &err,
            PkiError::TrustNotSendable {
                path,
                problem: cups_core::cred::UnsafeBlob::OneByteLongForm { .. }
            } if *path == paths.server_cert()
        ),
        "{err}"
    );
}

#[test]
fn openssl_made_pki_loads() {
    let (_tmp, paths) = vector_dir();
    let pki = Pki::load(&paths).expect("load");
    assert_eq!(pki.cups_trust_source(), CupsTrustSource::GatewayCa);
    assert_eq!(pki.signers().len(), 2);
    // init on it keeps everything.
    let report = init(&paths, &InitOptions::default()).expect("init");
    assert!(report.created.is_empty(), "{report}");
}

#[test]
fn inspect_summarizes() {
    let (_tmp, paths) = new_dir();
    let empty = inspect(&paths);
    assert!(empty.load_error.is_some());
    assert_eq!(empty.missing.len(), 4);
    assert!(empty.to_string().contains("NOT USABLE"));

    init(&paths, &opts()).expect("init");
    let pki = Pki::load(&paths).expect("load");
    let s = inspect(&paths);
    assert!(s.load_error.is_none());
    assert!(s.missing.is_empty());
    assert_eq!(s.ca.len(), 1);
    assert!(s.ca[0].is_ca);
    assert_eq!(s.server_chain.len(), 1);
    assert_eq!(
        s.server_chain[0].sans,
        ["DNS:localhost", "DNS:cups.example.org", "IP:127.0.0.1"]
    );
    assert_eq!(s.signing_keys.len(), 1);
    assert_eq!(s.signing_keys[0].key_crc, pki.key_crcs()[0]);
    let text = s.to_string();
    assert!(text.contains("status: OK"), "{text}");
    assert!(text.contains("CUPS gateway CA"), "{text}");
    assert!(text.contains(&pki.key_crcs()[0].to_string()), "{text}");
    assert!(!text.contains("PRIVATE KEY"));
}

#[test]
fn bad_options_create_nothing() {
    for bad in [
        InitOptions {
            server_dns_names: vec!["not a name".into()],
            ..InitOptions::default()
        },
        InitOptions {
            signing_keys: cups_host_server::pki::MAX_SIGNING_KEYS + 1,
            ..InitOptions::default()
        },
        InitOptions {
            server_validity: time::Duration::ZERO,
            ..InitOptions::default()
        },
    ] {
        let (_tmp, paths) = new_dir();
        assert!(init(&paths, &bad).is_err());
        assert!(!paths.dir.exists() || fs::read_dir(&paths.dir).expect("dir").next().is_none());
    }
}
