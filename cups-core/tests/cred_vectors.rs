//! The credential blobs of the golden response vectors: split exactly as the real station did,
//! checked for station safety, and rebuilt byte-identically from the test PKI.

use std::path::PathBuf;

use cups_core::cred::{
    self, BlobForm, BlobParts, Cuts, StationSplit, StationSplitError, UnsafeBlob,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn vectors_dir() -> PathBuf {
    match std::env::var("CUPS_VECTORS") {
        Ok(dir) => dir.into(),
        Err(_) => concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors").into(),
    }
}

fn read(rel: &str) -> Vec<u8> {
    let path = vectors_dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("vector {} missing: {e}", path.display()))
}

fn manifest(name: &str) -> Value {
    serde_json::from_slice(&read(&format!("responses/{name}.json"))).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn as_usize(v: &Value) -> usize {
    usize::try_from(v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))).unwrap()
}

/// One credential segment of a response vector.
struct CredVector {
    name: String,
    segment: &'static str,
    blob: Vec<u8>,
    decoded: Value,
}

/// Every cupsCred/tcCred present in a response manifest, blob taken from the .bin at the
/// layout offset (u16 length prefix).
fn cred_vectors() -> Vec<CredVector> {
    let mut names: Vec<String> = std::fs::read_dir(vectors_dir().join("responses"))
        .expect("responses/ missing")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|f| f.strip_suffix(".json").map(str::to_owned))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let m = manifest(&name);
        let bin = read(&format!("responses/{}", m["file"].as_str().unwrap()));
        for segment in ["cupsCred", "tcCred"] {
            let decoded = &m["decoded"][segment];
            if decoded.is_null() {
                continue;
            }
            let layout = m["layout"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["segment"] == segment)
                .unwrap();
            let off = as_usize(&layout["length_field_offset"]);
            let len = usize::from(u16::from_le_bytes([bin[off], bin[off + 1]]));
            assert_eq!(len, as_usize(&layout["length"]), "{name} {segment}");
            assert_eq!(len, as_usize(&decoded["len"]), "{name} {segment}");
            let blob = bin[off + 2..off + 2 + len].to_vec();
            assert_eq!(
                sha256_hex(&blob),
                decoded["sha256"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(
                u64::from(cups_core::crc::crc32(&blob)),
                decoded["crc32"].as_u64().unwrap(),
                "{name} {segment}"
            );
            out.push(CredVector {
                name: name.clone(),
                segment,
                blob,
                decoded: decoded.clone(),
            });
        }
    }
    out
}

fn range(part: &Value) -> std::ops::Range<usize> {
    let off = as_usize(&part["offset"]);
    off..off + as_usize(&part["len"])
}

/// `segment_len=1039 parsed_len=35467` out of the station's log line.
fn logged_number(text: &str, key: &str) -> usize {
    let rest = &text[text.find(key).unwrap() + key.len()..];
    rest.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
fn station_split_matches_every_vector() {
    let vectors = cred_vectors();
    // full.bin (2), token-tc, server-auth-tc, pkcs8-key, two-trust-certs.
    assert_eq!(vectors.len(), 6, "credential vectors found");
    for v in &vectors {
        let expect = &v.decoded["station_split"];
        let ranges = StationSplit {
            trust: range(&expect["trust"]),
            cert: range(&expect["cert"]),
            key: range(&expect["key"]),
        };
        let got = cred::station_split(&v.blob);
        if let Some(error) = expect["error"].as_str() {
            let cuts = Cuts {
                trust_len: ranges.trust.len(),
                cert_offset: ranges.cert.start,
                cert_len: ranges.cert.len(),
                key_offset: ranges.key.start,
                key_len: ranges.key.len(),
            };
            let want = StationSplitError::LengthsDoNotAlign {
                segment_len: logged_number(error, "segment_len="),
                parsed_len: logged_number(error, "parsed_len="),
                cuts,
            };
            assert_eq!(got, Err(want), "{} {}", v.name, v.segment);
            assert!(format!("{want}").contains(error), "{} display", v.name);
            continue;
        }
        let split = got.unwrap_or_else(|e| panic!("{} {}: {e}", v.name, v.segment));
        assert_eq!(split, ranges, "{} {}", v.name, v.segment);
        for (part, r) in [
            ("trust", &split.trust),
            ("cert", &split.cert),
            ("key", &split.key),
        ] {
            if let Some(sha) = expect[part]["sha256"].as_str() {
                assert_eq!(
                    sha256_hex(&v.blob[r.clone()]),
                    sha,
                    "{} {} {part}",
                    v.name,
                    v.segment
                );
            }
        }
        // What the station reported next = CRC of the files it stored from this split.
        if let Some(next) = v.decoded["station_next_crc"].as_u64() {
            assert_eq!(
                u64::from(split.stored_crc(&v.blob).unwrap()),
                next,
                "{}",
                v.name
            );
        }
    }
}

#[test]
fn pkcs8_key_vector_fails_like_the_station() {
    let v = cred_vectors()
        .into_iter()
        .find(|v| v.name == "pkcs8-key")
        .unwrap();
    match cred::station_split(&v.blob) {
        Err(StationSplitError::LengthsDoNotAlign {
            segment_len: 1039,
            parsed_len: 35467,
            cuts,
        }) => {
            assert_eq!(cuts.key_offset, 901);
            assert_eq!(cuts.key_len, 34566);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn two_trust_certs_vector_succeeds_with_wrong_slices() {
    let v = cred_vectors()
        .into_iter()
        .find(|v| v.name == "two-trust-certs")
        .unwrap();
    let split = cred::station_split(&v.blob).unwrap();
    assert_eq!(
        (split.trust, split.cert, split.key),
        (0..438, 438..882, 882..1345)
    );
    assert_eq!(&v.blob[438..882], read("pki/alt-ca.crt.der").as_slice());
    assert_eq!(
        &v.blob[882..1345],
        read("pki/tc-0016c001ff10a235.crt.der").as_slice()
    );
}

#[test]
fn station_safety_of_every_vector() {
    for v in cred_vectors() {
        let got = cred::check_station_safe(&v.blob);
        let form = v.decoded["form"].as_str().unwrap();
        match (v.name.as_str(), form) {
            (_, "mtls") => assert_eq!(got.unwrap().form, BlobForm::Mtls, "{}", v.name),
            (_, "token") => assert_eq!(got.unwrap().form, BlobForm::Token, "{}", v.name),
            (_, "server-auth") => assert_eq!(got.unwrap().form, BlobForm::ServerAuth, "{}", v.name),
            ("pkcs8-key", _) => assert_eq!(got, Err(UnsafeBlob::Pkcs8Key { offset: 901 })),
            ("two-trust-certs", _) => {
                assert_eq!(got, Err(UnsafeBlob::CertificateAsKey { offset: 882 }));
            }
            other => panic!("unexpected credential vector {other:?}"),
        }
        if let Ok(info) = cred::check_station_safe(&v.blob) {
            assert_eq!(Ok(info.split.clone()), cred::station_split(&v.blob));
            assert_eq!(
                info.split.stored_crc(&v.blob),
                Some(cups_core::crc::crc32(&v.blob))
            );
        }
    }
}

fn vector_blob(name: &str, segment: &str) -> (Vec<u8>, u32) {
    let v = cred_vectors()
        .into_iter()
        .find(|v| v.name == name && v.segment == segment)
        .unwrap();
    let crc = u32::try_from(v.decoded["crc32"].as_u64().unwrap()).unwrap();
    (v.blob, crc)
}

#[test]
fn builders_reproduce_the_vectors() {
    let ca = read("pki/ca.crt.der");
    let mut out = vec![0u8; cred::MAX_BLOB_LEN];

    for (segment, who) in [("cupsCred", "cups"), ("tcCred", "tc")] {
        let cert = read(&format!("pki/{who}-0016c001ff10a235.crt.der"));
        let key = read(&format!("pki/{who}-0016c001ff10a235.key.der"));
        let (want, crc) = vector_blob("full", segment);
        assert_eq!(cred::mtls_len(&ca, &cert, &key), want.len());
        let n = cred::build_mtls(&ca, &cert, &key, &mut out).unwrap();
        assert_eq!(&out[..n], want.as_slice(), "{segment}");
        assert_eq!(cups_core::crc::crc32(&out[..n]), crc);
        let info = BlobParts::Mtls {
            trust: &ca,
            cert: &cert,
            key: &key,
        }
        .write_checked(&mut out)
        .unwrap();
        assert_eq!(info.len, want.len());
    }

    let (want, crc) = vector_blob("token-tc", "tcCred");
    let line = &want[ca.len() + 4..];
    assert_eq!(
        line,
        b"Authorization: Bearer cups-golden-token-0016c001ff10a235\r\n"
    );
    assert_eq!(cred::token_len(&ca, line), want.len());
    let n = cred::build_token(&ca, line, &mut out).unwrap();
    assert_eq!(&out[..n], want.as_slice());
    assert_eq!(cups_core::crc::crc32(&out[..n]), crc);
    let info = BlobParts::Token {
        trust: &ca,
        header_lines: line,
    }
    .write_checked(&mut out)
    .unwrap();
    assert_eq!(info.form, BlobForm::Token);

    let (want, crc) = vector_blob("server-auth-tc", "tcCred");
    assert_eq!(cred::server_auth_len(&ca), want.len());
    let n = cred::build_server_auth(&ca, &mut out).unwrap();
    assert_eq!(&out[..n], want.as_slice());
    assert_eq!(cups_core::crc::crc32(&out[..n]), crc);

    // The two-trust-certs mistake, built the way a server would make it (a chain as trust):
    // byte-identical to the vector, and refused by the checked builder.
    let chain = [ca.as_slice(), &read("pki/alt-ca.crt.der")].concat();
    let cert = read("pki/tc-0016c001ff10a235.crt.der");
    let key = read("pki/tc-0016c001ff10a235.key.der");
    let (want, crc) = vector_blob("two-trust-certs", "tcCred");
    let parts = BlobParts::Mtls {
        trust: &chain,
        cert: &cert,
        key: &key,
    };
    let n = parts.write(&mut out).unwrap();
    assert_eq!(&out[..n], want.as_slice());
    assert_eq!(cups_core::crc::crc32(&out[..n]), crc);
    assert_eq!(
        parts.write_checked(&mut out),
        Err(cred::BuildCheckedError::Unsafe(
            UnsafeBlob::CertificateAsKey { offset: 882 }
        ))
    );
}
