//! `identity_from_cert`: the EUI from the CN (every form) and/or the `urn:dev:mac:` SAN.

mod pki_support;

use cups_core::Eui64;
use cups_host_server::pki::{IdentityError, PkiError, identity_from_cert};
use pki_support::{leaf, test_ca, uri};
use rcgen::SanType;

const EUI: u64 = 0x0016_c001_ff10_a235;

fn eui() -> Eui64 {
    Eui64::new(EUI).expect("eui")
}

/// A certificate whose subject has two CNs (rcgen keeps one per type, so the second is an OU
/// whose attribute type is patched to CN; the signature no longer verifies, which
/// `identity_from_cert` does not look at).
fn two_cns(first: &str, second: &str) -> Vec<u8> {
    let ca = test_ca("identity test CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, first);
    dn.push(rcgen::DnType::OrganizationalUnitName, second);
    params.distinguished_name = dn;
    let mut der = params
        .signed_by(&key, &ca.issuer)
        .expect("cert")
        .der()
        .to_vec();
    let ou_type = [0x06, 0x03, 0x55, 0x04, 0x0b];
    let at = der
        .windows(ou_type.len())
        .position(|w| w == ou_type)
        .expect("OU attribute");
    der[at + 4] = 0x03; // id-at-organizationalUnitName -> id-at-commonName
    der
}

#[test]
fn cn_forms() {
    let ca = test_ca("identity test CA");
    for cn in [
        "0016c001ff10a235",
        "0016C001FF10A235",
        "16:c001:ff10:a235",
        "00-16-C0-01-FF-10-A2-35",
        "00:16:c0:01:ff:10:a2:35",
        "0016-c001-ff10-a235",
    ] {
        let (der, _) = leaf(&ca, &[cn], vec![]);
        let id = identity_from_cert(&der).unwrap_or_else(|e| panic!("{cn}: {e}"));
        assert_eq!(id.eui, eui(), "{cn}");
    }
    // ID6 with a zero run.
    let (der, _) = leaf(&ca, &["::1"], vec![]);
    assert_eq!(
        identity_from_cert(&der).expect("id6").eui,
        Eui64::new(1).expect("eui")
    );
}

#[test]
fn san_only_and_agreeing_cn() {
    let ca = test_ca("identity test CA");
    let (der, _) = leaf(&ca, &[], vec![uri("urn:dev:mac:0016c001ff10a235")]);
    assert_eq!(identity_from_cert(&der).expect("san").eui, eui());
    // A CN that is no EUI is ignored when the SAN names one.
    let (der, _) = leaf(
        &ca,
        &["Factory gateway"],
        vec![uri("URN:DEV:MAC:0016C001FF10A235")],
    );
    assert_eq!(identity_from_cert(&der).expect("san").eui, eui());
    // CN and SAN agree (in different forms).
    let (der, _) = leaf(
        &ca,
        &["16:c001:ff10:a235"],
        vec![
            SanType::DnsName("gw.example".try_into().expect("ia5")),
            uri("urn:dev:mac:0016c001ff10a235"),
            uri("urn:dev:mac:0016c001ff10"),
        ],
    );
    assert_eq!(identity_from_cert(&der).expect("both").eui, eui());
}

#[test]
fn disagreement_and_absence_are_errors() {
    let ca = test_ca("identity test CA");
    let (der, _) = leaf(
        &ca,
        &["0016c001ff10a235"],
        vec![uri("urn:dev:mac:0016c001ff10a236")],
    );
    assert!(matches!(
        identity_from_cert(&der),
        Err(PkiError::Identity(IdentityError::CnSanMismatch { .. }))
    ));
    assert!(matches!(
        identity_from_cert(&two_cns("0016c001ff10a235", "0016c001ff10a236")),
        Err(PkiError::Identity(IdentityError::Ambiguous {
            field: "CN",
            ..
        }))
    ));
    // Two CNs naming the same EUI are fine.
    assert_eq!(
        identity_from_cert(&two_cns("0016c001ff10a235", "16:c001:ff10:a235"))
            .expect("same EUI")
            .eui,
        eui()
    );
    let (der, _) = leaf(
        &ca,
        &[],
        vec![
            uri("urn:dev:mac:0016c001ff10a235"),
            uri("urn:dev:mac:0016c001ff10a236"),
        ],
    );
    assert!(matches!(
        identity_from_cert(&der),
        Err(PkiError::Identity(IdentityError::Ambiguous {
            field: "SAN",
            ..
        }))
    ));
    for (cns, sans) in [
        (vec!["gateway"], vec![]),
        (
            vec![],
            vec![SanType::DnsName(
                "0016c001ff10a235".try_into().expect("ia5"),
            )],
        ),
        (
            vec!["16c001ff10a235"],
            vec![uri("urn:dev:mac:0016c001ff10")],
        ),
        (
            vec!["0000000000000000"],
            vec![uri("https://example.org/0016c001ff10a235")],
        ),
    ] {
        let (der, _) = leaf(&ca, &cns, sans);
        assert!(matches!(
            identity_from_cert(&der),
            Err(PkiError::Identity(IdentityError::NoEui))
        ));
    }
}

#[test]
fn garbage_is_an_error() {
    for bad in [&b""[..], b"\x30\x03\x02\x01\x01", &[0xff; 300]] {
        assert!(matches!(
            identity_from_cert(bad),
            Err(PkiError::Identity(IdentityError::Parse(_)))
        ));
    }
    let ca = test_ca("identity test CA");
    let (mut der, _) = leaf(&ca, &["0016c001ff10a235"], vec![]);
    der.push(0);
    assert!(matches!(
        identity_from_cert(&der),
        Err(PkiError::Identity(IdentityError::TrailingData { count: 1 }))
    ));
}

#[test]
fn openssl_made_vector_certificates() {
    let dir = pki_support::vectors_dir().join("pki");
    for name in [
        "cups-0016c001ff10a235.crt.der",
        "tc-0016c001ff10a235.crt.der",
    ] {
        let der = std::fs::read(dir.join(name)).expect("vector");
        let id = identity_from_cert(&der).expect("identity");
        assert_eq!(id.eui, eui(), "{name}");
        assert!(!id.serial_hex.is_empty());
    }
}
