//! Minting gateway credentials: certificate fields, SEC1 key, station-safe blobs, tokens.

mod pki_support;

use cups_core::Eui64;
use cups_core::cred::{BlobForm, check_header_lines, check_station_safe, station_split};
use cups_host_server::pki::{
    CLOCK_SKEW, ClientUsage, EUI_URN_PREFIX, Pki, PkiError, SEC1_P256_LEN, SERIAL_LEN, TOKEN_BYTES,
    bearer_header_lines, identity_from_cert, new_token, token_sha256_hex,
};
use pki_support::{fresh, vector_dir};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

fn eui() -> Eui64 {
    Eui64::parse("0016c001ff10a235").expect("eui")
}

#[test]
fn minted_blob_is_station_safe_and_splits_into_cert_and_key() {
    let (_tmp, _paths, pki) = fresh();
    let now = OffsetDateTime::now_utc();
    for usage in [ClientUsage::Cups, ClientUsage::Tc] {
        let m = pki
            .mint_client(eui(), usage, Duration::days(365), now)
            .expect("mint");
        assert_eq!(m.usage, usage);
        assert_eq!(m.key_sec1_der.len(), SEC1_P256_LEN);
        assert_eq!(m.key_sec1_der[..2], [0x30, 0x77]);
        assert_eq!(m.blob, pki.mtls_blob(&m).expect("blob"));
        assert_eq!(m.crc, cups_core::crc::crc32(&m.blob));

        let info = check_station_safe(&m.blob).expect("station-safe");
        assert_eq!(info.form, BlobForm::Mtls);
        let split = station_split(&m.blob).expect("station splits it");
        let (trust, cert, key) = split.slices(&m.blob).expect("in range");
        assert_eq!(trust, pki.trust_der(usage));
        assert_eq!(
            trust,
            pki.ca_cert_der(),
            "init's server cert is anchored by the CA"
        );
        assert_eq!(cert, m.cert_der.as_slice());
        assert_eq!(key, m.key_sec1_der.as_slice());
        assert_eq!(split.stored_crc(&m.blob), Some(m.crc));

        // The record form.
        let rec = m.issued_cred(now);
        assert_eq!(
            (rec.crc, rec.serial.as_deref(), rec.not_after),
            (m.crc, Some(m.serial_hex.as_str()), Some(m.not_after))
        );
        // Debug never shows the key.
        let dbg = format!("{m:?}");
        assert!(!dbg.contains(&hex::encode(&m.key_sec1_der[7..39])));
        assert!(!dbg.contains("key_sec1_der"));
    }
}

#[test]
fn certificate_fields() {
    let (_tmp, _paths, pki) = fresh();
    let now = OffsetDateTime::now_utc();
    let validity = Duration::days(30);
    let m = pki
        .mint_client(eui(), ClientUsage::Tc, validity, now)
        .expect("mint");
    let (rest, cert) = X509Certificate::from_der(&m.cert_der).expect("parses");
    assert!(rest.is_empty());
    let (_, ca) = X509Certificate::from_der(pki.ca_cert_der()).expect("ca");

    let cns: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|a| a.as_str().expect("utf8"))
        .collect();
    assert_eq!(cns, ["0016c001ff10a235"]);
    let ous: Vec<_> = cert
        .subject()
        .iter_organizational_unit()
        .map(|a| a.as_str().expect("utf8"))
        .collect();
    assert_eq!(ous, ["tc-client"]);
    let san = cert
        .subject_alternative_name()
        .expect("one SAN ext")
        .expect("SAN");
    assert_eq!(
        san.value.general_names,
        [GeneralName::URI(&format!(
            "{EUI_URN_PREFIX}0016c001ff10a235"
        ))]
    );
    let eku = cert.extended_key_usage().expect("eku").expect("eku");
    assert!(eku.value.client_auth && !eku.value.server_auth && !eku.value.any);
    let ku = cert.key_usage().expect("ku").expect("ku");
    assert!(ku.critical && ku.value.digital_signature() && !ku.value.key_cert_sign());
    let bc = cert.basic_constraints().expect("bc").expect("bc");
    assert!(!bc.value.ca);
    assert!(!cert.is_ca());

    // Serial: 16 random bytes, positive.
    assert_eq!(cert.raw_serial().len(), SERIAL_LEN);
    assert_eq!(cert.raw_serial()[0] & 0x80, 0);
    assert_eq!(m.serial_hex, hex::encode(cert.raw_serial()));

    // Validity: now - skew .. now + validity, whole seconds.
    let now_s = now.replace_nanosecond(0).expect("ns");
    assert_eq!(m.not_before, now_s - CLOCK_SKEW);
    assert_eq!(m.not_after, now_s + validity);
    assert_eq!(cert.validity().not_before.to_datetime(), m.not_before);
    assert_eq!(cert.validity().not_after.to_datetime(), m.not_after);

    // Signed by the CA, AKI = CA's SKI.
    assert_eq!(cert.issuer().as_raw(), ca.subject().as_raw());
    cert.verify_signature(Some(ca.public_key()))
        .expect("CA signature");
    let aki = cert
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .expect("AKI");
    let ski = ca
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
        .expect("CA SKI");
    assert_eq!(aki, ski);
    assert!(pki.issued_by_gateway_ca(&m.cert_der));
    assert!(!pki.issued_by_bootstrap(&m.cert_der));
}

#[test]
fn identity_round_trips_for_minted_certs() {
    let (_tmp, _paths, pki) = fresh();
    let now = OffsetDateTime::now_utc();
    for text in [
        "0016c001ff10a235",
        "1",
        "ffffffffffffffff",
        "0100000000000000",
    ] {
        let eui = if text.len() == 16 {
            Eui64::parse(text).expect("eui")
        } else {
            Eui64::new(1).expect("eui")
        };
        let m = pki
            .mint_client(eui, ClientUsage::Cups, Duration::days(1), now)
            .expect("mint");
        let id = identity_from_cert(&m.cert_der).expect("identity");
        assert_eq!(id.eui, eui);
        assert_eq!(id.serial_hex, m.serial_hex);
        assert_eq!(id.not_after, m.not_after);
    }
}

#[test]
fn every_mint_is_fresh() {
    let (_tmp, _paths, pki) = fresh();
    let now = OffsetDateTime::now_utc();
    let a = pki
        .mint_client(eui(), ClientUsage::Cups, Duration::days(1), now)
        .expect("mint");
    let b = pki
        .mint_client(eui(), ClientUsage::Cups, Duration::days(1), now)
        .expect("mint");
    assert_ne!(a.serial_hex, b.serial_hex);
    assert_ne!(a.key_sec1_der, b.key_sec1_der);
    assert_ne!(a.crc, b.crc);
}

#[test]
fn validity_must_be_positive() {
    let (_tmp, _paths, pki) = fresh();
    let now = OffsetDateTime::now_utc();
    for validity in [Duration::ZERO, Duration::seconds(-1), Duration::days(-30)] {
        assert!(matches!(
            pki.mint_client(eui(), ClientUsage::Cups, validity, now),
            Err(PkiError::InvalidValidity { .. })
        ));
    }
    // One second is enough; far future beyond year 9999 is not.
    pki.mint_client(eui(), ClientUsage::Cups, Duration::seconds(1), now)
        .expect("1 s");
    assert!(matches!(
        pki.mint_client(eui(), ClientUsage::Cups, Duration::days(3_000_000), now),
        Err(PkiError::ValidityOutOfRange)
    ));
    // Dates past 2049 are GeneralizedTime; still parsed back exactly.
    let m = pki
        .mint_client(eui(), ClientUsage::Cups, Duration::days(365 * 40), now)
        .expect("40 years");
    assert_eq!(
        identity_from_cert(&m.cert_der).expect("id").not_after,
        m.not_after
    );
}

#[test]
fn mints_with_an_openssl_made_ca() {
    let (_tmp, paths) = vector_dir();
    let pki = Pki::load(&paths).expect("vectors PKI loads (SEC1 PEM keys)");
    let m = pki
        .mint_client(
            eui(),
            ClientUsage::Cups,
            Duration::days(1),
            OffsetDateTime::now_utc(),
        )
        .expect("mint");
    check_station_safe(&m.blob).expect("safe");
    assert!(pki.issued_by_gateway_ca(&m.cert_der));
    let ca_der = std::fs::read(pki_support::vectors_dir().join("pki/ca.crt.der")).expect("ca");
    assert_eq!(pki.ca_cert_der(), ca_der.as_slice());
    // The vectors' own client certificate was issued by the same CA.
    let vec_cert =
        std::fs::read(pki_support::vectors_dir().join("pki/cups-0016c001ff10a235.crt.der"))
            .expect("cert");
    assert!(pki.issued_by_gateway_ca(&vec_cert));
    assert!(!pki.issued_by_bootstrap(&vec_cert));
}

#[test]
fn tokens() {
    let a = new_token().expect("rng");
    let b = new_token().expect("rng");
    assert_ne!(a, b);
    assert_eq!(a.len(), (TOKEN_BYTES * 4).div_ceil(3));
    assert!(
        a.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );
    assert_eq!(
        token_sha256_hex("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let lines = bearer_header_lines(&a);
    assert_eq!(lines, format!("Authorization: Bearer {a}\r\n").into_bytes());
    check_header_lines(&lines).expect("station-valid header line");

    let (_tmp, _paths, pki) = fresh();
    let blob = pki.token_blob(&lines).expect("token blob");
    let info = check_station_safe(&blob).expect("safe");
    assert_eq!(info.form, BlobForm::Token);
    assert_eq!(&blob[info.split.key.clone()], lines.as_slice());
    assert_eq!(
        &blob[info.split.trust.clone()],
        pki.trust_der(ClientUsage::Cups)
    );
    let tc = pki
        .token_blob_for(ClientUsage::Tc, &lines)
        .expect("tc token blob");
    assert_eq!(check_station_safe(&tc).expect("safe").form, BlobForm::Token);

    // Bad header lines never make it into a blob.
    for bad in [&b""[..], b"Authorization: Bearer x", b"0x: y\r\n", b"\r\n"] {
        assert!(
            matches!(pki.token_blob(bad), Err(PkiError::Blob(_))),
            "{bad:?}"
        );
    }

    let sa = pki.server_auth_blob().expect("server auth");
    assert_eq!(
        check_station_safe(&sa).expect("safe").form,
        BlobForm::ServerAuth
    );
    assert_eq!(sa.len(), pki.ca_cert_der().len() + 8);
    let sa_tc = pki.server_auth_blob_for(ClientUsage::Tc).expect("tc");
    assert_eq!(sa, sa_tc);
}

#[test]
fn signing_keys_match_their_files() {
    let (_tmp, paths) = vector_dir();
    let pki = Pki::load(&paths).expect("load");
    assert_eq!(pki.signers().len(), 2);
    let keys = pki.sig_keys();
    for (n, key) in keys.iter().enumerate() {
        let raw = std::fs::read(paths.sig_public(n)).expect("sig key");
        assert_eq!(key.0.as_slice(), raw.as_slice());
        assert_eq!(pki.key_crcs()[n], cups_core::crc::crc32(&raw));
        assert_eq!(pki.signers()[n].key_crc(), key.crc());
    }
    // A signature by sig-0 verifies against sig-0.key (and its CRC selects it).
    let seg = pki.signers()[0].sign_update(b"firmware");
    assert_eq!(seg.key_crc(), pki.key_crcs()[0]);
}
