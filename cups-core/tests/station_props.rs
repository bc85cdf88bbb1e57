//! Property tests: the streaming credential split equals `cred::station_split`, and feeding a
//! response body in any split leaves the same files and events as feeding it whole.

use std::path::PathBuf;
use std::sync::OnceLock;

use cups_core::Eui64;
use cups_core::cred::{StationSplitError, station_split};
use cups_core::sig::RustCryptoVerifier;
use cups_core::station::{
    Action, CredCuts, CredFile, CredKind, CredPart, CredReject, CredSplitter, FileId, FileSet,
    Instant, MemStore, Station, StationConfig, StationEvent,
};
use proptest::prelude::*;

// ------------------------------------------------------------------------------ blobs

/// One piece of a credential blob, as servers (and broken servers) build them.
fn element() -> impl Strategy<Value = Vec<u8>> {
    let der = |hdr: Vec<u8>, n: usize, fill: u8| {
        let mut v = hdr;
        v.extend(std::iter::repeat_n(fill, n));
        v
    };
    prop_oneof![
        // Short-form DER element.
        (0usize..128, any::<u8>()).prop_map(move |(n, f)| der(vec![0x30, n as u8], n, f)),
        // Two-byte long form.
        (0usize..400, any::<u8>())
            .prop_map(move |(n, f)| { der(vec![0x30, 0x82, (n >> 8) as u8, n as u8], n, f) }),
        // One-byte long form (mis-read by the station).
        (128usize..256, any::<u8>()).prop_map(move |(n, f)| der(vec![0x30, 0x81, n as u8], n, f)),
        // Absent cert / key.
        Just(vec![0, 0, 0, 0]),
        Just(vec![0]),
        // Token lines.
        proptest::collection::vec(0x20u8..0x7f, 1..60).prop_map(|mut v| {
            v.extend_from_slice(b"\r\n");
            v
        }),
        // Noise and bare headers.
        proptest::collection::vec(any::<u8>(), 0..6),
        Just(vec![0x30]),
        Just(vec![0x30, 0x82]),
        Just(vec![0x30, 0x82, 0x00]),
    ]
}

fn blob() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(element(), 1..5),
        0usize..6,
        proptest::collection::vec(any::<u8>(), 0..3),
    )
        .prop_map(|(parts, cut, extra)| {
            let mut b = parts.concat();
            b.truncate(b.len().saturating_sub(cut));
            b.extend_from_slice(&extra);
            b.truncate(65_535);
            if b.is_empty() {
                b.push(0x30);
            }
            b
        })
}

/// Split `blob` streaming in `chunks`; the three files and the outcome.
fn stream_split(blob: &[u8], chunks: &[usize]) -> (Result<CredCuts, CredReject>, [Vec<u8>; 3]) {
    let mut files: [Vec<u8>; 3] = Default::default();
    let mut sink = |part: CredPart, off: u32, data: &[u8]| {
        let f = &mut files[part as usize];
        assert_eq!(f.len(), off as usize, "sequential writes");
        f.extend_from_slice(data);
    };
    let mut s = CredSplitter::new(blob.len() as u16);
    let mut rest = blob;
    let mut i = 0;
    while !rest.is_empty() {
        let n = chunks
            .get(i)
            .copied()
            .unwrap_or(usize::MAX)
            .clamp(1, rest.len());
        s.feed(&rest[..n], &mut sink);
        rest = &rest[n..];
        i += 1;
    }
    let r = s.finish(&mut sink);
    (r, files)
}

fn expected_reject(e: StationSplitError) -> CredReject {
    match e {
        StationSplitError::TrustNotSequence { found } => CredReject::TrustNotSequence { found },
        StationSplitError::ReadsPastEnd { at, .. } => CredReject::ReadsPastEnd { at: at as u32 },
        StationSplitError::CertNotSequence { offset, found } => CredReject::CertNotSequence {
            offset: offset as u32,
            found,
        },
        StationSplitError::KeyOffsetBeyondEnd { key_offset, .. } => {
            CredReject::KeyOffsetBeyondEnd {
                key_offset: key_offset as u32,
            }
        }
        StationSplitError::LogReadsBeforeStart { cert_offset } => CredReject::LogReadsBeforeStart {
            cert_offset: cert_offset as u32,
        },
        StationSplitError::LengthsDoNotAlign { parsed_len, .. } => CredReject::LengthsDoNotAlign {
            parsed_len: parsed_len as u32,
        },
        StationSplitError::KeyBeyondEnd { cuts, .. } => CredReject::KeyBeyondEnd {
            key_end: (cuts.key_offset + cuts.key_len) as u32,
        },
        other => panic!("unexpected {other:?}"),
    }
}

fn check_split(blob: &[u8], chunks: &[usize]) {
    let (got, files) = stream_split(blob, chunks);
    match station_split(blob) {
        Ok(s) => {
            let cuts =
                got.unwrap_or_else(|e| panic!("streaming rejected {e:?}, station_split {s:?}"));
            assert_eq!(cuts.trust_len as usize, s.trust.len());
            assert_eq!(
                (cuts.cert_offset as usize, cuts.key_offset as usize),
                (s.cert.start, s.key.start)
            );
            assert_eq!(files[0], &blob[s.trust.clone()]);
            assert_eq!(files[1], &blob[s.cert.clone()]);
            assert_eq!(files[2], &blob[s.key.clone()]);
        }
        Err(e) => assert_eq!(
            got,
            Err(expected_reject(e)),
            "blob {:02x?}",
            &blob[..blob.len().min(16)]
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn streaming_split_equals_station_split(
        b in blob(),
        chunks in proptest::collection::vec(1usize..40, 0..64),
    ) {
        check_split(&b, &chunks);
        check_split(&b, &[]);
        check_split(&b, &[1; 64]);
    }

    #[test]
    fn streaming_split_on_noise(b in proptest::collection::vec(any::<u8>(), 1..64), c in 1usize..8) {
        let mut b = b;
        b[0] = 0x30;
        check_split(&b, &[c; 64]);
    }
}

#[test]
fn split_vectors_and_edges() {
    for name in [
        "full",
        "token-tc",
        "server-auth-tc",
        "pkcs8-key",
        "two-trust-certs",
    ] {
        let bin = read(&format!("responses/{name}.bin"));
        let m: serde_json::Value =
            serde_json::from_slice(&read(&format!("responses/{name}.json"))).unwrap();
        for l in m["layout"].as_array().unwrap() {
            let seg = l["segment"].as_str().unwrap();
            let len = l["length"].as_u64().unwrap() as usize;
            if (seg == "cupsCred" || seg == "tcCred") && len > 0 {
                let off = l["length_field_offset"].as_u64().unwrap() as usize + 2;
                let blob = &bin[off..off + len];
                for c in [1, 2, 3, 4, 5, 100, 10_000] {
                    check_split(blob, &[c; 2000]);
                }
            }
        }
    }
    // Exhaustive small blobs over the interesting bytes.
    let alphabet = [0x00u8, 0x01, 0x02, 0x04, 0x30, 0x80, 0x82, 0x41];
    for len in 1..=6usize {
        let total = alphabet.len().pow(len as u32);
        for mut k in 0..total {
            let mut b = Vec::with_capacity(len);
            for _ in 0..len {
                b.push(alphabet[k % alphabet.len()]);
                k /= alphabet.len();
            }
            check_split(&b, &[]);
            check_split(&b, &[1; 8]);
        }
    }
}

// ------------------------------------------------------------------------------ bodies

fn vectors_dir() -> PathBuf {
    match std::env::var("CUPS_VECTORS") {
        Ok(d) => d.into(),
        Err(_) => concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors").into(),
    }
}

fn read(rel: &str) -> Vec<u8> {
    let p = vectors_dir().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e} (set CUPS_VECTORS)", p.display()))
}

fn home() -> &'static MemStore {
    static HOME: OnceLock<MemStore> = OnceLock::new();
    HOME.get_or_init(|| {
        let c = |f| FileId::cred(CredKind::Cups, FileSet::Reg, f);
        MemStore::new()
            .with(c(CredFile::Uri), "https://localhost:16140")
            .with(c(CredFile::Trust), read("pki/ca.crt.pem"))
            .with(c(CredFile::Cert), read("pki/cups-0016c001ff10a235.crt.pem"))
            .with(c(CredFile::Key), read("pki/cups-0016c001ff10a235.key.pem"))
            .with(FileId::Version, "1.0.0")
            .with(FileId::SigKey(0), read("pki/sig-0.key"))
            .with(FileId::SigKey(1), read("pki/sig-1.key"))
    })
}

fn vector_bodies() -> &'static Vec<Vec<u8>> {
    static B: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    B.get_or_init(|| {
        let mut v = Vec::new();
        for e in std::fs::read_dir(vectors_dir().join("responses")).expect("vectors") {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "bin") {
                v.push(std::fs::read(p).unwrap());
            }
        }
        assert!(v.len() >= 12);
        v
    })
}

/// Run one interaction; return the final files and every event.
fn run(body: &[u8], chunks: &[usize]) -> (MemStore, Vec<StationEvent>) {
    let cfg = StationConfig::new(Eui64::new(0x0016_c001_ff10_a235).unwrap(), "2.0.6", "linux");
    let t0 = Instant::from_millis(0);
    let mut st = Station::new(home().clone(), RustCryptoVerifier, cfg, t0);
    assert!(matches!(st.poll(t0), Action::Connect(_)));
    let mut buf = [0u8; 2048];
    st.write_request(&mut buf).unwrap();
    st.on_response_status(t0, 200);
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = chunks
            .get(i)
            .copied()
            .unwrap_or(usize::MAX)
            .clamp(1, rest.len());
        st.on_response_body(t0, &rest[..n]);
        rest = &rest[n..];
        i += 1;
    }
    st.on_response_end(t0);
    let events = std::iter::from_fn(|| st.poll_event()).collect();
    (st.into_parts().0, events)
}

/// A raw body from parts (no validation, so anything can be sent).
fn raw_body(
    uris: (Vec<u8>, Vec<u8>),
    creds: (Vec<u8>, Vec<u8>),
    sig: Vec<u8>,
    update: Vec<u8>,
) -> Vec<u8> {
    let mut b = vec![uris.0.len() as u8];
    b.extend_from_slice(&uris.0);
    b.push(uris.1.len() as u8);
    b.extend_from_slice(&uris.1);
    for c in [&creds.0, &creds.1] {
        b.extend_from_slice(&(c.len() as u16).to_le_bytes());
        b.extend_from_slice(c);
    }
    for s in [&sig, &update] {
        b.extend_from_slice(&(s.len() as u32).to_le_bytes());
        b.extend_from_slice(s);
    }
    b
}

fn generated_body() -> impl Strategy<Value = Vec<u8>> {
    let uri = prop_oneof![
        Just(Vec::new()),
        Just(b"https://localhost:16140".to_vec()),
        Just(b"wss://lns:1".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ];
    let cred = prop_oneof![Just(Vec::new()), blob()];
    let sig = prop_oneof![
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 8..80),
        proptest::collection::vec(any::<u8>(), 0..140),
    ];
    (
        (uri.clone(), uri),
        (cred.clone(), cred),
        sig,
        proptest::collection::vec(any::<u8>(), 0..200),
        0usize..4,
        any::<u16>(),
    )
        .prop_map(|(uris, creds, sig, update, mutate, at)| {
            let mut b = raw_body(uris, creds, sig, update);
            match mutate {
                // Cut somewhere.
                1 => b.truncate(usize::from(at) % (b.len() + 1)),
                // Trailing bytes.
                2 => b.extend_from_slice(&at.to_le_bytes()),
                // Flip one byte.
                3 if !b.is_empty() => {
                    let i = usize::from(at) % b.len();
                    b[i] ^= (at >> 8) as u8 | 1;
                }
                _ => {}
            }
            b
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn vector_bodies_in_any_split(
        which in 0usize..64,
        chunks in proptest::collection::vec(1usize..300, 0..40),
    ) {
        let bodies = vector_bodies();
        let body = &bodies[which % bodies.len()];
        prop_assert_eq!(run(body, &chunks), run(body, &[]));
    }

    #[test]
    fn generated_bodies_in_any_split(
        body in generated_body(),
        chunks in proptest::collection::vec(1usize..50, 0..80),
    ) {
        prop_assert_eq!(run(&body, &chunks), run(&body, &[]));
        prop_assert_eq!(run(&body, &[1; 4096]), run(&body, &[]));
    }
}
