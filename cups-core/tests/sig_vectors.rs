//! Update signatures against the golden vectors served to a real Basics Station 2.0.6:
//! which keys verify which response, keyCRCs, high-S acceptance, and that the signer
//! reproduces the vectors' deterministic signatures byte for byte.
#![cfg(feature = "rustcrypto")]

use std::path::PathBuf;

use cups_core::sig::{
    DerError, EcdsaP256Verifier, EcdsaSignature, RustCryptoVerifier, SigKey, UpdateHasher,
    Verification, key_index_for_crc, sha512, verify_with_keys,
};
use serde_json::Value;

fn vectors_dir() -> PathBuf {
    match std::env::var("CUPS_VECTORS") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors")),
    }
}

fn read(rel: &str) -> Vec<u8> {
    let path = vectors_dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("vector {} missing: {e}", path.display()))
}

fn json(rel: &str) -> Value {
    serde_json::from_slice(&read(rel)).unwrap()
}

fn key(n: u8) -> SigKey {
    SigKey::from_slice(&read(&format!("pki/sig-{n}.key"))).unwrap()
}

/// A response vector cut at the manifest's layout: keyCRC, DER field, update bytes.
struct Signed {
    key_crc: u32,
    der: Vec<u8>,
    update: Vec<u8>,
}

fn signed(name: &str) -> Signed {
    let body = read(&format!("responses/{name}.bin"));
    let manifest = json(&format!("responses/{name}.json"));
    let layout = manifest
        .get("layout")
        .and_then(Value::as_array)
        .filter(|l| l.len() == 6)
        .or_else(|| manifest.get("lenient_layout").and_then(Value::as_array))
        .unwrap();
    let seg = |name: &str| {
        let e = layout.iter().find(|e| e["segment"] == name).unwrap();
        let off = usize::try_from(e["length_field_offset"].as_u64().unwrap()).unwrap();
        let len = usize::try_from(e["length"].as_u64().unwrap()).unwrap();
        body[off + 4..off + 4 + len].to_vec()
    };
    let sig = seg("sig");
    let update = seg("update");
    Signed {
        key_crc: u32::from_le_bytes(sig[..4].try_into().unwrap()),
        der: sig[4..].to_vec(),
        update,
    }
}

fn sig_hex(name: &str) -> Vec<u8> {
    let m = json(&format!("responses/{name}.json"));
    hex::decode(m["decoded"]["sig"]["signature_hex"].as_str().unwrap()).unwrap()
}

const P256_N: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

/// n − s (big-endian, s < n).
fn negate(s: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(P256_N[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = u8::try_from(d).unwrap();
    }
    assert_eq!(borrow, 0);
    out
}

fn is_high(s: &[u8; 32]) -> bool {
    // s > n/2  <=>  s > n - s
    s > &negate(s)
}

#[test]
fn key_crcs_match_crc_json() {
    let crc = json("crc.json");
    for n in 0..2u8 {
        let k = key(n);
        let facts = &crc["sig_keys"][format!("sig-{n}.key")];
        assert_eq!(u64::from(k.crc()), facts["crc32"].as_u64().unwrap());
        assert_eq!(hex::encode(k.0), facts["raw_pubkey_hex"].as_str().unwrap());
    }
    assert_eq!(key(0).crc(), 1_238_727_903);
    assert_eq!(key(1).crc(), 670_110_180);
}

#[test]
fn sig_key_from_slice_limits() {
    let raw = read("pki/sig-0.key");
    assert_eq!(raw.len(), cups_core::sig::SIG_KEY_LEN);
    assert!(SigKey::from_slice(&raw).is_ok());
    assert_eq!(SigKey::from_slice(&raw[..63]).unwrap_err().len, 63);
    let mut long = raw.clone();
    long.push(0);
    assert_eq!(SigKey::from_slice(&long).unwrap_err().len, 65);
    assert_eq!(
        SigKey::from_slice(&long).unwrap_err().to_string(),
        "signing key is 65 bytes, expected 64"
    );
}

#[test]
fn full_bin_verifies_with_sig0() {
    let v = signed("full");
    assert_eq!(v.key_crc, key(0).crc());
    assert_eq!(v.der, sig_hex("full"));
    assert_eq!(v.der.len(), 72);
    let digest = sha512(&v.update);
    let m = json("responses/full.json");
    assert_eq!(
        hex::encode(digest),
        m["decoded"]["update"]["sha512"].as_str().unwrap()
    );
    let r = RustCryptoVerifier;
    assert!(r.verify_prehash(&key(0), &digest, &v.der));
    assert!(!r.verify_prehash(&key(1), &digest, &v.der));
    assert_eq!(
        verify_with_keys(&r, &[key(0)], &digest, &v.der),
        Verification::Verified { index: 0 }
    );
    assert_eq!(
        verify_with_keys(&r, &[key(1), key(0)], &digest, &v.der),
        Verification::Verified { index: 1 }
    );
    assert_eq!(
        verify_with_keys(&r, &[key(1)], &digest, &v.der),
        Verification::NotVerified { tried: 1 }
    );
}

#[test]
fn streaming_hash_matches_for_every_chunk_size() {
    let v = signed("full");
    let whole = sha512(&v.update);
    for chunk in [1, 3, 64, 113, 114, 8192] {
        let mut h = UpdateHasher::new();
        for c in v.update.chunks(chunk) {
            h.update(c);
        }
        assert_eq!(h.bytes_hashed(), 114);
        let digest = h.finish();
        assert_eq!(digest, whole);
        assert!(verify_with_keys(&RustCryptoVerifier, &[key(0)], &digest, &v.der).is_verified());
    }
}

#[test]
fn sig1_signed_verifies_only_with_sig1() {
    let v = signed("sig1-signed");
    let keys = [key(0), key(1)];
    assert_eq!(v.key_crc, 670_110_180);
    let digest = sha512(&v.update);
    let got = verify_with_keys(&RustCryptoVerifier, &keys, &digest, &v.der);
    assert_eq!(got, Verification::Verified { index: 1 });
    assert_eq!(got.key_index(), Some(1));
    assert_eq!(
        verify_with_keys(&RustCryptoVerifier, &keys[..1], &digest, &v.der),
        Verification::NotVerified { tried: 1 }
    );
    // A server selecting by CRC picks the same key; keyCRC is not needed to verify.
    assert_eq!(key_index_for_crc(&keys, v.key_crc), Some(1));
    assert_eq!(key_index_for_crc(&keys, 0), None);
}

#[test]
fn negative_vectors_do_not_verify() {
    let keys = [key(0), key(1)];
    for name in ["badsig", "sig-sha256", "sig-raw-rs"] {
        let v = signed(name);
        assert_eq!(v.key_crc, key(0).crc(), "{name}");
        let digest = sha512(&v.update);
        assert_eq!(
            verify_with_keys(&RustCryptoVerifier, &keys, &digest, &v.der),
            Verification::NotVerified { tried: 2 },
            "{name}"
        );
    }
}

#[test]
fn badsig_is_a_valid_signature_of_the_full_update() {
    let bad = signed("badsig");
    let full = signed("full");
    assert!(EcdsaSignature::from_der(&bad.der).is_ok());
    assert!(RustCryptoVerifier.verify_prehash(&key(0), &sha512(&full.update), &bad.der));
}

#[test]
fn sig_sha256_is_a_valid_ecdsa_over_sha256() {
    // The digest the station uses is SHA-512; this signature is over SHA-256. Feeding the
    // SHA-256 value in the leftmost 256 bits shows it is otherwise a correct signature.
    let v = signed("sig-sha256");
    use sha2::Digest as _;
    let mut digest = [0u8; 64];
    digest[..32].copy_from_slice(&sha2::Sha256::digest(&v.update));
    assert!(RustCryptoVerifier.verify_prehash(&key(0), &digest, &v.der));
    assert!(!RustCryptoVerifier.verify_prehash(&key(0), &sha512(&v.update), &v.der));
}

#[test]
fn sig_raw_rs_is_rejected_as_der_but_correct_as_scalars() {
    let v = signed("sig-raw-rs");
    assert_eq!(v.der.len(), 64);
    let err = EcdsaSignature::from_der(&v.der).unwrap_err();
    if v.der[0] != 0x30 {
        assert_eq!(
            err,
            DerError::UnexpectedTag {
                offset: 0,
                expected: 0x30,
                found: v.der[0]
            }
        );
    }
    let digest = sha512(&v.update);
    assert!(!RustCryptoVerifier.verify_prehash(&key(0), &digest, &v.der));
    let as_der = EcdsaSignature::from_scalars(
        v.der[..32].try_into().unwrap(),
        v.der[32..].try_into().unwrap(),
    )
    .to_der();
    assert!(RustCryptoVerifier.verify_prehash(&key(0), &digest, as_der.as_bytes()));
}

#[test]
fn sig_too_long_padding_is_rejected_by_the_parser() {
    let v = signed("sig-too-long");
    assert_eq!(v.der.len(), 129);
    assert_eq!(
        EcdsaSignature::from_der(&v.der),
        Err(DerError::TooLong { len: 129 })
    );
    let digest = sha512(&v.update);
    assert!(!RustCryptoVerifier.verify_prehash(&key(0), &digest, &v.der));
    // The unpadded DER inside it is a good signature.
    let der_len = usize::from(v.der[1]) + 2;
    assert!(RustCryptoVerifier.verify_prehash(&key(0), &digest, &v.der[..der_len]));
    assert!(v.der[der_len..].iter().all(|b| *b == 0));
}

#[test]
fn high_s_is_accepted_like_mbedtls() {
    // full.bin's signature (made by the `cryptography`/OpenSSL stack, which does not
    // normalize s) is high-S, and the station verified it; so must we. Its low-S twin
    // (n − s) is equally valid ECDSA.
    let v = signed("full");
    let digest = sha512(&v.update);
    let sig = EcdsaSignature::from_der(&v.der).unwrap();
    assert!(is_high(sig.s()), "full.bin's s is expected to be high");
    let low = EcdsaSignature::from_scalars(*sig.r(), negate(sig.s()));
    assert!(!is_high(low.s()));
    let low_der = low.to_der();
    assert!(RustCryptoVerifier.verify_prehash(&key(0), &digest, &v.der));
    assert!(RustCryptoVerifier.verify_prehash(&key(0), &digest, low_der.as_bytes()));
}

#[test]
fn out_of_range_scalars_and_keys_do_not_verify() {
    let v = signed("full");
    let digest = sha512(&v.update);
    let sig = EcdsaSignature::from_der(&v.der).unwrap();
    for (r, s) in [
        ([0u8; 32], *sig.s()),
        (*sig.r(), [0u8; 32]),
        (P256_N, *sig.s()),
        (*sig.r(), P256_N),
        ([0xFF; 32], *sig.s()),
    ] {
        let der = EcdsaSignature::from_scalars(r, s).to_der();
        assert!(!RustCryptoVerifier.verify_prehash(&key(0), &digest, der.as_bytes()));
    }
    // A point off the curve, the all-zero "key", and a flipped Y never verify.
    let mut off = key(0);
    off.0[63] ^= 1;
    for k in [off, SigKey([0; 64]), SigKey([0xFF; 64])] {
        assert!(!RustCryptoVerifier::is_valid_key(&k));
        assert!(!RustCryptoVerifier.verify_prehash(&k, &digest, &v.der));
    }
    assert!(RustCryptoVerifier::is_valid_key(&key(0)));
    assert!(RustCryptoVerifier::is_valid_key(&key(1)));
}

#[test]
fn digest_bits_beyond_256_do_not_matter() {
    // ECDSA uses the leftmost 256 bits of the SHA-512 digest.
    let v = signed("full");
    let mut digest = sha512(&v.update);
    digest[32..].fill(0xA5);
    assert!(RustCryptoVerifier.verify_prehash(&key(0), &digest, &v.der));
    digest[31] ^= 1;
    assert!(!RustCryptoVerifier.verify_prehash(&key(0), &digest, &v.der));
}

#[cfg(feature = "signer")]
mod signer {
    use super::*;
    use cups_core::sig::{SignerKeyError, UpdateSigner};

    fn base64(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0u32);
        for c in text.bytes() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => continue, // '=', newlines
            };
            acc = (acc << 6) | u32::from(v);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push(u8::try_from((acc >> bits) & 0xFF).unwrap());
            }
        }
        out
    }

    /// The SEC1 DER inside `pki/sig-N.pem`.
    fn sec1(n: u8) -> Vec<u8> {
        let pem = String::from_utf8(read(&format!("pki/sig-{n}.pem"))).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(pem.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        base64(&body)
    }

    fn signer(n: u8) -> UpdateSigner {
        UpdateSigner::from_sec1_der(&sec1(n)).unwrap()
    }

    #[test]
    fn sec1_keys_load_and_match_the_public_files() {
        for n in 0..2u8 {
            let der = sec1(n);
            assert_eq!(&der[..2], &[0x30, 0x77]);
            assert_eq!(der.len(), 121);
            let s = signer(n);
            assert_eq!(s.public_key(), key(n));
            assert_eq!(s.key_crc(), key(n).crc());
            // The raw scalar sits at bytes 7..39 (`30 77 02 01 01 04 20 d`).
            let raw = UpdateSigner::from_scalar(der[7..39].try_into().unwrap()).unwrap();
            assert_eq!(raw.public_key(), key(n));
            assert!(format!("{s:?}").contains(&format!("{:08X}", key(n).crc())));
        }
    }

    #[test]
    fn signer_reproduces_every_vector_signature() {
        // gen.py signs with `cryptography` ECDSA(SHA512, deterministic_signing=True):
        // RFC 6979 with HMAC-SHA-512, no low-S normalization.
        let full = signed("full");
        let seg = signer(0).sign_update(&full.update);
        assert_eq!(seg.der(), &full.der[..]);
        assert_eq!(seg.key_crc(), full.key_crc);
        let body = read("responses/full.bin");
        assert_eq!(seg.as_segment_bytes(), &body[2101..2101 + 76]);

        let s1 = signed("sig1-signed");
        assert_eq!(signer(1).sign_update(&s1.update).der(), &s1.der[..]);

        // badsig carries the signature of full.bin's update.
        let bad = signed("badsig");
        assert_eq!(signer(0).sign_update(&full.update).der(), &bad.der[..]);

        // sig-raw-rs is r‖s of the same deterministic signature.
        let raw = signed("sig-raw-rs");
        let sig = signer(0).sign_digest_raw(&sha512(&raw.update));
        assert_eq!([sig.r().as_slice(), sig.s().as_slice()].concat(), raw.der);

        // sig-too-long pads a real deterministic signature.
        let long = signed("sig-too-long");
        let seg = signer(0).sign_update(&long.update);
        assert_eq!(seg.der(), &long.der[..seg.der().len()]);
    }

    #[test]
    fn streaming_signing_equals_in_memory() {
        let data: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let s = signer(0);
        let mut h = UpdateHasher::new();
        for c in data.chunks(4096) {
            h.update(c);
        }
        let streamed = s.sign_hasher(h);
        assert_eq!(streamed, s.sign_update(&data));
        assert_eq!(streamed, s.sign_digest(&sha512(&data)));
        assert!(
            verify_with_keys(
                &RustCryptoVerifier,
                &[key(1), key(0)],
                &sha512(&data),
                streamed.der()
            )
            .is_verified()
        );
    }

    #[test]
    fn signatures_verify_and_are_strict_der() {
        let s0 = signer(0);
        let s1 = signer(1);
        for i in 0..64u32 {
            let update = i.to_le_bytes().repeat(usize::try_from(i).unwrap());
            let digest = sha512(&update);
            let seg = s0.sign_digest(&digest);
            assert!((8..=72).contains(&seg.der().len()));
            assert_eq!(seg.as_segment_bytes().len(), 4 + seg.der().len());
            assert_eq!(
                EcdsaSignature::from_der(seg.der())
                    .unwrap()
                    .to_der()
                    .as_bytes(),
                seg.der()
            );
            assert_eq!(
                verify_with_keys(&RustCryptoVerifier, &[key(1), key(0)], &digest, seg.der()),
                Verification::Verified { index: 1 }
            );
            let seg1 = s1.sign_digest(&digest);
            assert_eq!(
                verify_with_keys(&RustCryptoVerifier, &[key(0), key(1)], &digest, seg1.der()),
                Verification::Verified { index: 1 }
            );
            // deterministic
            assert_eq!(s0.sign_digest(&digest), seg);
        }
    }

    #[test]
    fn sig_ref_feeds_the_encoder() {
        let seg = signer(0).sign_update(b"#!/bin/sh\n");
        let r = seg.as_sig_ref();
        assert_eq!(r.key_crc, key(0).crc());
        assert_eq!(r.der, seg.der());
    }

    #[test]
    fn bad_private_keys_are_refused() {
        let good = sec1(0);
        let cases: Vec<(Vec<u8>, SignerKeyError)> = {
            let mut v = Vec::new();
            // trailing byte after the SEQUENCE
            let mut t = good.clone();
            t.push(0);
            v.push((
                t,
                SignerKeyError::Der(DerError::TrailingBytes {
                    offset: 121,
                    count: 1,
                }),
            ));
            // version 2
            let mut t = good.clone();
            t[4] = 2;
            v.push((t, SignerKeyError::UnsupportedVersion { version: 2 }));
            // another curve OID (last byte of prime256v1 changed)
            let mut t = good.clone();
            t[50] ^= 0x01;
            v.push((t, SignerKeyError::UnsupportedCurve));
            // sig-1's public key in sig-0's file
            let mut t = good.clone();
            t[57..121].copy_from_slice(&key(1).0);
            v.push((t, SignerKeyError::PublicKeyMismatch));
            // compressed-point marker
            let mut t = good.clone();
            t[56] = 0x02;
            v.push((t, SignerKeyError::UnsupportedPublicKey));
            // PKCS#8 wrapper (30 81 87) is not SEC1
            v.push((
                vec![0x30, 0x81, 0x87, 0x02, 0x01, 0x00],
                SignerKeyError::Der(DerError::LongFormLength { offset: 1 }),
            ));
            v
        };
        for (der, want) in cases {
            assert_eq!(UpdateSigner::from_sec1_der(&der).unwrap_err(), want);
        }
        // without the optional parameters and public key (RFC 5915 minimal form)
        let mut minimal = vec![0x30, 0x25];
        minimal.extend_from_slice(&good[2..39]);
        assert_eq!(
            UpdateSigner::from_sec1_der(&minimal).unwrap().public_key(),
            key(0)
        );
        // short private key
        let mut short = vec![0x30, 0x24, 0x02, 0x01, 0x01, 0x04, 0x1F];
        short.extend_from_slice(&good[8..39]);
        assert_eq!(
            UpdateSigner::from_sec1_der(&short).unwrap_err(),
            SignerKeyError::PrivateKeyLen { len: 31 }
        );
        assert_eq!(
            UpdateSigner::from_scalar(&[0; 32]).unwrap_err(),
            SignerKeyError::InvalidScalar
        );
        assert_eq!(
            UpdateSigner::from_scalar(&P256_N).unwrap_err(),
            SignerKeyError::InvalidScalar
        );
        let mut n_minus_1 = P256_N;
        n_minus_1[31] -= 1;
        assert!(UpdateSigner::from_scalar(&n_minus_1).is_ok());
        let mut one = [0u8; 32];
        one[31] = 1;
        let g = UpdateSigner::from_scalar(&one).unwrap().public_key();
        assert_eq!(hex::encode(&g.0[..4]), "6b17d1f2");
        assert!(!SignerKeyError::InvalidScalar.to_string().is_empty());
    }
}
