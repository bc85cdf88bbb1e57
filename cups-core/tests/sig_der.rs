//! The strict DER signature parser (tables, limits at/below/above) and the station's
//! try-every-key verification order, with test verifiers instead of real crypto.

use std::cell::RefCell;

use cups_core::sig::{
    DerError, EcdsaP256Verifier, EcdsaSignature, MAX_DER_INT_LEN, MAX_DER_SIG_LEN, MIN_DER_SIG_LEN,
    NoVerifier, SCALAR_LEN, SigKey, SignatureSegment, Verification, key_index_for_crc,
    verify_with_keys,
};
use proptest::prelude::*;

/// `30 len 02 rlen r 02 slen s` with the given raw INTEGER contents.
fn der(r: &[u8], s: &[u8]) -> Vec<u8> {
    let mut v = vec![0x30, u8::try_from(r.len() + s.len() + 4).unwrap()];
    v.extend_from_slice(&[0x02, u8::try_from(r.len()).unwrap()]);
    v.extend_from_slice(r);
    v.extend_from_slice(&[0x02, u8::try_from(s.len()).unwrap()]);
    v.extend_from_slice(s);
    v
}

/// A 33-byte INTEGER content with its sign byte: `00 80 ...`.
fn int33() -> Vec<u8> {
    let mut v = vec![0x00, 0x80];
    v.extend_from_slice(&[0x11; 31]);
    v
}

fn parse(bytes: &[u8]) -> Result<EcdsaSignature, DerError> {
    EcdsaSignature::from_der(bytes)
}

#[test]
fn valid_table() {
    let cases: Vec<Vec<u8>> = vec![
        der(&[0x01], &[0x01]),         // 8 bytes, the minimum
        der(&[0x00, 0x80], &[0x7F]),   // sign byte needed
        der(&[0x7F; 32], &[0x7F; 32]), // 70 bytes
        der(&int33(), &[0x7F; 32]),    // 71 bytes
        der(&int33(), &int33()),       // 72 bytes, the maximum
        der(&[0x00], &[0x01]),         // r = 0 is DER-valid (range is the backend's job)
        der(&[0x01, 0x00, 0x00], &[0x00, 0xFF]),
    ];
    for bytes in cases {
        let sig = parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", hex::encode(&bytes)));
        assert_eq!(
            sig.to_der().as_bytes(),
            &bytes[..],
            "round trip {}",
            hex::encode(&bytes)
        );
    }
    let sig = parse(&der(&[0x00, 0x80], &[0x7F])).unwrap();
    let mut r = [0u8; SCALAR_LEN];
    r[31] = 0x80;
    assert_eq!(sig.r(), &r);
    assert_eq!(sig.s()[31], 0x7F);
}

#[test]
fn invalid_table() {
    use DerError::*;
    let mut trailing = der(&[0x01], &[0x01]);
    trailing.push(0x00);
    let mut inner_trailing = der(&[0x01], &[0x01]);
    inner_trailing.push(0x00);
    inner_trailing[1] += 1; // the extra byte is inside the SEQUENCE, after s
    let mut raw_rs = vec![0x5A; 64];
    raw_rs[0] = 0x9C;
    let mut seq_too_long = der(&[0x01], &[0x01]);
    seq_too_long[1] = 0x07;
    let mut seq_too_short = der(&[0x01], &[0x01, 0x01]);
    seq_too_short[1] = 0x06;
    let mut s_runs_over = der(&[0x01], &[0x01]);
    s_runs_over[6] = 0x02;
    let cases: Vec<(&str, Vec<u8>, DerError)> = vec![
        (
            "raw r||s",
            raw_rs,
            UnexpectedTag {
                offset: 0,
                expected: 0x30,
                found: 0x9C,
            },
        ),
        ("empty", vec![], TooShort { len: 0 }),
        (
            "7 bytes",
            vec![0x30, 0x05, 0x02, 0x01, 0x01, 0x02, 0x00],
            TooShort { len: 7 },
        ),
        (
            "73 bytes",
            {
                let mut v = der(&int33(), &int33());
                v.push(0);
                v
            },
            TooLong { len: 73 },
        ),
        (
            "trailing after SEQUENCE",
            trailing,
            TrailingBytes {
                offset: 8,
                count: 1,
            },
        ),
        (
            "trailing inside SEQUENCE",
            inner_trailing,
            TrailingBytes {
                offset: 8,
                count: 1,
            },
        ),
        (
            "SEQUENCE length past end",
            seq_too_long,
            Truncated {
                offset: 1,
                declared: 7,
                available: 6,
            },
        ),
        (
            "SEQUENCE shorter than content",
            seq_too_short,
            TrailingBytes {
                offset: 8,
                count: 1,
            },
        ),
        (
            "s length past end",
            s_runs_over,
            Truncated {
                offset: 6,
                declared: 2,
                available: 1,
            },
        ),
        (
            "SET instead of SEQUENCE",
            {
                let mut v = der(&[1], &[1]);
                v[0] = 0x31;
                v
            },
            UnexpectedTag {
                offset: 0,
                expected: 0x30,
                found: 0x31,
            },
        ),
        (
            "OCTET STRING r",
            {
                let mut v = der(&[1], &[1]);
                v[2] = 0x04;
                v
            },
            UnexpectedTag {
                offset: 2,
                expected: 0x02,
                found: 0x04,
            },
        ),
        (
            "BIT STRING s",
            {
                let mut v = der(&[1], &[1]);
                v[5] = 0x03;
                v
            },
            UnexpectedTag {
                offset: 5,
                expected: 0x02,
                found: 0x03,
            },
        ),
        (
            "long-form SEQUENCE length",
            {
                let mut v = vec![0x30, 0x81, 0x06];
                v.extend_from_slice(&der(&[1], &[1])[2..]);
                v
            },
            LongFormLength { offset: 1 },
        ),
        (
            "long-form INTEGER length",
            vec![0x30, 0x07, 0x02, 0x81, 0x01, 0x01, 0x02, 0x01, 0x01],
            LongFormLength { offset: 3 },
        ),
        (
            "indefinite length",
            vec![0x30, 0x80, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00, 0x00],
            LongFormLength { offset: 1 },
        ),
        (
            "empty r",
            der(&[], &[0x01, 0x01]),
            EmptyInteger { offset: 2 },
        ),
        (
            "empty s",
            der(&[0x01, 0x01], &[]),
            EmptyInteger { offset: 6 },
        ),
        (
            "negative r",
            der(&[0x80], &[0x01]),
            NegativeInteger { offset: 2 },
        ),
        (
            "negative s (missing sign byte)",
            der(&[0x01], &[0xFF; 32]),
            NegativeInteger { offset: 5 },
        ),
        (
            "non-minimal r 00 01",
            der(&[0x00, 0x01], &[0x01]),
            NonMinimalInteger { offset: 2 },
        ),
        (
            "non-minimal s 00 00 80",
            der(&[0x01], &[0x00, 0x00, 0x80]),
            NonMinimalInteger { offset: 5 },
        ),
        (
            "non-minimal zero 00 00",
            der(&[0x00, 0x00], &[0x01]),
            NonMinimalInteger { offset: 2 },
        ),
        (
            "33 bytes without sign byte",
            der(&[0x01; 33], &[0x01]),
            IntegerTooLarge { offset: 2, len: 33 },
        ),
        (
            "34-byte r",
            der(&[&[0x00, 0x80][..], &[0x11; 32]].concat(), &[0x01]),
            IntegerTooLarge { offset: 2, len: 34 },
        ),
    ];
    for (what, bytes, want) in cases {
        assert_eq!(parse(&bytes), Err(want), "{what}: {}", hex::encode(&bytes));
        assert!(!want.to_string().is_empty());
    }
}

#[test]
fn overall_length_limits() {
    assert_eq!(MIN_DER_SIG_LEN, 8);
    assert_eq!(MAX_DER_SIG_LEN, 72);
    // at / below / above the minimum
    assert!(parse(&der(&[1], &[1])).is_ok());
    assert_eq!(
        parse(&der(&[1], &[1])[..7]),
        Err(DerError::TooShort { len: 7 })
    );
    assert!(parse(&der(&[1, 2], &[1])).is_ok());
    // at / below / above the maximum
    let max = der(&int33(), &int33());
    assert_eq!(max.len(), MAX_DER_SIG_LEN);
    assert!(parse(&max).is_ok());
    assert!(parse(&der(&int33(), &[0x7F; 32])).is_ok());
    let mut above = max.clone();
    above.push(0);
    assert_eq!(parse(&above), Err(DerError::TooLong { len: 73 }));
}

#[test]
fn integer_length_limits() {
    assert_eq!(MAX_DER_INT_LEN, 33);
    // 32 bytes (no sign byte needed), 33 (sign byte), 34 (too large)
    assert!(parse(&der(&[0x7F; 32], &[1])).is_ok());
    assert!(parse(&der(&int33(), &[1])).is_ok());
    let int34 = [&[0x00, 0x80][..], &[0x11; 32]].concat();
    assert_eq!(int34.len(), 34);
    assert_eq!(
        parse(&der(&int34, &[1])),
        Err(DerError::IntegerTooLarge { offset: 2, len: 34 })
    );
}

#[test]
fn to_der_is_minimal_for_every_width() {
    for width in 0..=SCALAR_LEN {
        for top in [0x01u8, 0x7F, 0x80, 0xFF] {
            let mut r = [0u8; SCALAR_LEN];
            if width > 0 {
                r[SCALAR_LEN - width] = top;
            }
            let sig = EcdsaSignature::from_scalars(r, [0x42; SCALAR_LEN]);
            let d = sig.to_der();
            assert!(d.as_bytes().len() >= MIN_DER_SIG_LEN && d.as_bytes().len() <= MAX_DER_SIG_LEN);
            assert_eq!(parse(d.as_bytes()), Ok(sig));
        }
    }
}

#[test]
fn segment_bytes() {
    let sig = EcdsaSignature::from_scalars([0x80; 32], [0x80; 32]);
    let seg = SignatureSegment::new(0x27F1_11E4, &sig);
    assert_eq!(seg.der().len(), MAX_DER_SIG_LEN);
    assert_eq!(seg.as_segment_bytes().len(), 76);
    assert_eq!(&seg.as_segment_bytes()[..4], &0x27F1_11E4u32.to_le_bytes());
    assert_eq!(&seg.as_segment_bytes()[4..], seg.der());
    assert_eq!(seg.key_crc(), 0x27F1_11E4);
}

/// Verifies when the key's first byte equals `accept`; records every key it was asked about.
struct Recorder {
    accept: u8,
    calls: RefCell<Vec<u8>>,
}

impl EcdsaP256Verifier for Recorder {
    fn verify_prehash(&self, key: &SigKey, _: &[u8; 64], _: &[u8]) -> bool {
        self.calls.borrow_mut().push(key.0[0]);
        key.0[0] == self.accept
    }
}

fn keys(ids: &[u8]) -> Vec<SigKey> {
    ids.iter().map(|i| SigKey([*i; 64])).collect()
}

#[test]
fn tries_keys_in_order_and_stops_at_the_first() {
    let good = der(&[1], &[1]);
    let v = Recorder {
        accept: 3,
        calls: RefCell::default(),
    };
    let ks = keys(&[1, 2, 3, 4, 3]);
    assert_eq!(
        verify_with_keys(&v, &ks, &[0; 64], &good),
        Verification::Verified { index: 2 }
    );
    assert_eq!(*v.calls.borrow(), [1, 2, 3]);

    let v = Recorder {
        accept: 9,
        calls: RefCell::default(),
    };
    assert_eq!(
        verify_with_keys(&v, &ks, &[0; 64], &good),
        Verification::NotVerified { tried: 5 }
    );
    assert_eq!(*v.calls.borrow(), [1, 2, 3, 4, 3]);

    // any iterator of keys works, e.g. filtered
    let v = Recorder {
        accept: 4,
        calls: RefCell::default(),
    };
    let got = verify_with_keys(&v, ks.iter().filter(|k| k.0[0] != 1), &[0; 64], &good);
    assert_eq!(got, Verification::Verified { index: 2 });
}

#[test]
fn malformed_der_never_reaches_the_backend() {
    let v = Recorder {
        accept: 1,
        calls: RefCell::default(),
    };
    let ks = keys(&[1, 2]);
    for bad in [vec![0x42; 64], der(&[0x00, 0x01], &[1]), vec![]] {
        assert_eq!(
            verify_with_keys(&v, &ks, &[0; 64], &bad),
            Verification::NotVerified { tried: 2 }
        );
    }
    assert!(v.calls.borrow().is_empty());
}

#[test]
fn key_crc_does_not_select_but_can_be_looked_up() {
    let ks = keys(&[7, 8, 9]);
    assert_eq!(key_index_for_crc(&ks, ks[2].crc()), Some(2));
    assert_eq!(key_index_for_crc(&ks, ks[0].crc() ^ 1), None);
    assert_eq!(key_index_for_crc(&[], 0), None);
    assert_eq!(
        verify_with_keys(&NoVerifier, &ks, &[0; 64], &der(&[1], &[1])),
        Verification::NotVerified { tried: 3 }
    );
}

proptest! {
    #[test]
    fn scalars_round_trip(r in any::<[u8; 32]>(), s in any::<[u8; 32]>()) {
        let sig = EcdsaSignature::from_scalars(r, s);
        let d = sig.to_der();
        prop_assert!(d.as_bytes().len() <= MAX_DER_SIG_LEN);
        prop_assert_eq!(parse(d.as_bytes()), Ok(sig));
    }

    #[test]
    fn whatever_parses_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(sig) = parse(&bytes) {
            let d = sig.to_der();
            prop_assert_eq!(d.as_bytes(), &bytes[..]);
        }
    }

    #[test]
    fn framed_garbage_never_panics(r in proptest::collection::vec(any::<u8>(), 0..40),
                                   s in proptest::collection::vec(any::<u8>(), 0..40)) {
        let bytes = der(&r, &s);
        if let Ok(sig) = parse(&bytes) {
            let d = sig.to_der();
            prop_assert_eq!(d.as_bytes(), &bytes[..]);
        }
    }
}
