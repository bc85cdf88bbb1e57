//! Property tests for credential blobs: any blob built from valid-shaped parts splits back into
//! the same parts, and the station-safety check agrees with the station emulation.

use cups_core::cred::{self, BlobForm, BlobParts, StationSplit};
use proptest::prelude::*;

/// A fake top-level DER element the station reads right: `30 <len> <content>` with a short
/// length (content ≤ 127, when `short`) or the two-byte form `82 hh ll`.
fn fake_element(min_content: usize) -> impl Strategy<Value = Vec<u8>> {
    (min_content..1500usize, any::<bool>(), any::<u8>()).prop_map(|(n, short, fill)| {
        let mut v = vec![0x30];
        if short && n <= 127 {
            v.push(n as u8);
        } else {
            v.push(0x82);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        }
        v.extend((0..n).map(|i| fill.wrapping_add(i as u8)));
        v
    })
}

/// One or more header lines that `check_header_lines` accepts.
fn header_lines() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(("[A-Za-z1-9_-][A-Za-z0-9_-]{0,20}", "[ -~\t]{1,60}"), 1..4).prop_map(
        |lines| {
            lines
                .iter()
                .flat_map(|(n, v)| format!("{n}: {v}\r\n").into_bytes())
                .collect()
        },
    )
}

fn build(parts: &BlobParts<'_>) -> Vec<u8> {
    let mut out = vec![0u8; parts.len()];
    assert_eq!(parts.write(&mut out), Ok(parts.len()));
    if !out.is_empty() {
        let mut small = vec![0u8; parts.len() - 1];
        assert!(matches!(
            parts.write(&mut small),
            Err(cred::BuildError::BufferTooSmall { .. })
        ));
    }
    out
}

proptest! {
    #[test]
    fn mtls_splits_back(trust in fake_element(2), cert in fake_element(0), key in fake_element(0)) {
        let blob = build(&BlobParts::Mtls { trust: &trust, cert: &cert, key: &key });
        prop_assert_eq!(blob.len(), cred::mtls_len(&trust, &cert, &key));
        let (t, c) = (trust.len(), cert.len());
        let want = StationSplit { trust: 0..t, cert: t..t + c, key: t + c..blob.len() };
        prop_assert_eq!(cred::station_split(&blob), Ok(want.clone()));
        prop_assert_eq!(want.stored_crc(&blob), Some(cups_core::crc::crc32(&blob)));
    }

    #[test]
    fn token_splits_back(trust in fake_element(2), lines in header_lines()) {
        prop_assert_eq!(cred::check_header_lines(&lines), Ok(()));
        let blob = build(&BlobParts::Token { trust: &trust, header_lines: &lines });
        let t = trust.len();
        let want = StationSplit { trust: 0..t, cert: t..t, key: t + 4..blob.len() };
        prop_assert_eq!(cred::station_split(&blob), Ok(want.clone()));
        prop_assert_eq!(want.stored_crc(&blob), Some(cups_core::crc::crc32(&blob)));
    }

    #[test]
    fn server_auth_splits_back(trust in fake_element(2)) {
        let blob = build(&BlobParts::ServerAuth { trust: &trust });
        let t = trust.len();
        let want = StationSplit { trust: 0..t, cert: t..t, key: t + 4..t + 4 };
        prop_assert_eq!(cred::station_split(&blob), Ok(want.clone()));
        prop_assert_eq!(want.stored_crc(&blob), Some(cups_core::crc::crc32(&blob)));
    }

    /// With the real test PKI, random header lines always give a station-safe token blob.
    #[test]
    fn real_trust_with_random_token_is_safe(lines in header_lines()) {
        let ca = std::fs::read(vectors_dir().join("pki/ca.crt.der")).expect("pki/ca.crt.der");
        let mut out = vec![0u8; cred::MAX_BLOB_LEN];
        let info = BlobParts::Token { trust: &ca, header_lines: &lines }.write_checked(&mut out);
        prop_assert_eq!(info.map(|i| i.form), Ok(BlobForm::Token));
    }

    /// Arbitrary bytes: no panic, and acceptance implies the station splits the same way.
    #[test]
    fn arbitrary_bytes(mut data in prop::collection::vec(any::<u8>(), 0..300), seq in any::<bool>()) {
        if seq && !data.is_empty() {
            data[0] = 0x30;
        }
        let split = cred::station_split(&data);
        if let Ok(s) = &split {
            prop_assert!(s.slices(&data).is_some());
        }
        if let Ok(info) = cred::check_station_safe(&data) {
            prop_assert_eq!(split, Ok(info.split));
        }
    }
}

fn vectors_dir() -> std::path::PathBuf {
    match std::env::var("CUPS_VECTORS") {
        Ok(dir) => dir.into(),
        Err(_) => concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors").into(),
    }
}
