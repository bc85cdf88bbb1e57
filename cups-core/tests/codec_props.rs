//! Property tests: encode → decode gives back the parts, and any split of any input (valid or
//! garbage) gives the same normalized events and the same final result as one piece.

use cups_core::response::{
    CredKind, DecodeError, Decoder, Event, MAX_SIG_DER_LEN, MAX_URI_LEN, ResponseParts, SigRef,
    encode_full, head_len,
};
use proptest::prelude::*;

/// A normalized event: chunks of one segment are merged.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    CupsUri(Vec<u8>),
    TcUri(Vec<u8>),
    CredStart(CredKind, u16),
    CredData(CredKind, Vec<u8>),
    CredEnd(CredKind),
    Sig(u32, Vec<u8>),
    UpdateStart(u32),
    UpdateData(Vec<u8>),
    UpdateEnd,
    Done,
}

/// Decode `body` cut at `cuts` (sorted or not; clamped); normalized events + final result.
fn decode_split(body: &[u8], cuts: &[usize]) -> (Vec<Ev>, Result<(), DecodeError>) {
    let mut points: Vec<usize> = cuts.iter().map(|&c| c.min(body.len())).collect();
    points.push(0);
    points.push(body.len());
    points.sort_unstable();
    let mut dec = Decoder::new();
    let mut evs: Vec<Ev> = Vec::new();
    for w in points.windows(2) {
        let mut rest = &body[w[0]..w[1]];
        loop {
            let step = match dec.decode(rest) {
                Ok(s) => s,
                Err(e) => return (evs, Err(e)),
            };
            rest = &rest[step.consumed..];
            let Some(ev) = step.event else {
                assert!(rest.is_empty(), "no event but input left");
                break;
            };
            match ev {
                Event::CredChunk { kind, offset, data } => {
                    assert!(!data.is_empty());
                    match evs.last_mut() {
                        Some(Ev::CredData(k, buf)) if *k == kind => {
                            assert_eq!(usize::from(offset), buf.len());
                            buf.extend_from_slice(data);
                        }
                        _ => {
                            assert_eq!(offset, 0);
                            evs.push(Ev::CredData(kind, data.to_vec()));
                        }
                    }
                }
                Event::UpdateChunk { offset, data } => {
                    assert!(!data.is_empty());
                    match evs.last_mut() {
                        Some(Ev::UpdateData(buf)) => {
                            assert_eq!(offset as usize, buf.len());
                            buf.extend_from_slice(data);
                        }
                        _ => {
                            assert_eq!(offset, 0);
                            evs.push(Ev::UpdateData(data.to_vec()));
                        }
                    }
                }
                Event::CupsUri(u) => evs.push(Ev::CupsUri(u.to_vec())),
                Event::TcUri(u) => evs.push(Ev::TcUri(u.to_vec())),
                Event::CredStart { kind, len } => evs.push(Ev::CredStart(kind, len)),
                Event::CredEnd { kind } => evs.push(Ev::CredEnd(kind)),
                Event::Signature { key_crc, der } => evs.push(Ev::Sig(key_crc, der.to_vec())),
                Event::UpdateStart { len } => evs.push(Ev::UpdateStart(len)),
                Event::UpdateEnd => evs.push(Ev::UpdateEnd),
                Event::Done => evs.push(Ev::Done),
            }
        }
    }
    let r = dec.finish();
    (evs, r)
}

/// Owned parts, so proptest can generate them.
#[derive(Clone, Debug)]
struct Owned {
    cups_uri: Option<String>,
    tc_uri: Option<String>,
    cups_cred: Option<Vec<u8>>,
    tc_cred: Option<Vec<u8>>,
    sig: Option<(u32, Vec<u8>)>,
    update: Vec<u8>,
}

impl Owned {
    fn parts(&self) -> ResponseParts<'_> {
        ResponseParts {
            cups_uri: self.cups_uri.as_deref(),
            tc_uri: self.tc_uri.as_deref(),
            cups_cred: self.cups_cred.as_deref(),
            tc_cred: self.tc_cred.as_deref(),
            sig: self.sig.as_ref().map(|(key_crc, der)| SigRef {
                key_crc: *key_crc,
                der,
            }),
            update_len: self.update.len() as u32,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let parts = self.parts();
        let mut out = vec![0u8; head_len(&parts).unwrap() + self.update.len()];
        let n = encode_full(&parts, &self.update, &mut out).unwrap();
        assert_eq!(n, out.len());
        out
    }

    /// The events decoding must produce.
    fn events(&self) -> Vec<Ev> {
        let mut e = Vec::new();
        if let Some(u) = &self.cups_uri {
            e.push(Ev::CupsUri(u.as_bytes().to_vec()));
        }
        if let Some(u) = &self.tc_uri {
            e.push(Ev::TcUri(u.as_bytes().to_vec()));
        }
        for (kind, cred) in [
            (CredKind::Cups, &self.cups_cred),
            (CredKind::Tc, &self.tc_cred),
        ] {
            if let Some(c) = cred {
                e.push(Ev::CredStart(kind, c.len() as u16));
                e.push(Ev::CredData(kind, c.clone()));
                e.push(Ev::CredEnd(kind));
            }
        }
        if let Some((crc, der)) = &self.sig {
            e.push(Ev::Sig(*crc, der.clone()));
        }
        if !self.update.is_empty() {
            e.push(Ev::UpdateStart(self.update.len() as u32));
            e.push(Ev::UpdateData(self.update.clone()));
            e.push(Ev::UpdateEnd);
        }
        e.push(Ev::Done);
        e
    }
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9][a-z0-9._-]{0,40}",
        1 => Just("[::1]".to_string()),
        1 => "\\[[0-9a-f]{1,4}(:[0-9a-f]{0,4}){2,7}\\]",
    ]
}

fn uri(schemes: [&'static str; 2]) -> impl Strategy<Value = String> {
    (
        prop::sample::select(schemes.to_vec()),
        host(),
        1u16..=u16::MAX,
    )
        .prop_map(|(s, h, p)| format!("{s}://{h}:{p}"))
        .prop_filter("URI too long", |u| u.len() <= MAX_URI_LEN)
}

fn owned() -> impl Strategy<Value = Owned> {
    (
        prop::option::of(uri(["http", "https"])),
        prop::option::of(uri(["ws", "wss"])),
        prop::option::of(prop::collection::vec(any::<u8>(), 1..2000)),
        prop::option::of(prop::collection::vec(any::<u8>(), 1..2000)),
        prop::option::of((
            any::<u32>(),
            prop::collection::vec(any::<u8>(), 4..=MAX_SIG_DER_LEN),
        )),
        prop::collection::vec(any::<u8>(), 0..4000),
    )
        .prop_map(|(cups_uri, tc_uri, cups_cred, tc_cred, sig, mut update)| {
            if sig.is_some() && update.is_empty() {
                update.push(0x42);
            }
            Owned {
                cups_uri,
                tc_uri,
                cups_cred,
                tc_cred,
                sig,
                update,
            }
        })
}

/// Valid bodies, mutated bodies and garbage.
fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => owned().prop_map(|o| o.encode()),
        2 => (owned(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(o, i, b)| {
            let mut body = o.encode();
            let i = i.index(body.len());
            body[i] = b;
            body
        }),
        1 => (owned(), any::<prop::sample::Index>()).prop_map(|(o, i)| {
            let body = o.encode();
            let cut = i.index(body.len() + 1);
            body[..cut].to_vec()
        }),
        1 => (owned(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(o, tail)| {
            let mut body = o.encode();
            body.extend_from_slice(&tail);
            body
        }),
        1 => prop::collection::vec(any::<u8>(), 0..400),
        1 => prop::collection::vec(prop_oneof![3 => Just(0u8), 1 => any::<u8>()], 0..400),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encode_then_decode_gives_the_parts(o in owned()) {
        let body = o.encode();
        let (evs, r) = decode_split(&body, &[]);
        prop_assert_eq!(r, Ok(()));
        prop_assert_eq!(evs, o.events());
    }

    #[test]
    fn every_split_gives_the_same_events(
        body in any_body(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let whole = decode_split(&body, &[]);
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
        prop_assert_eq!(&decode_split(&body, &cuts), &whole);
        if body.len() <= 3000 {
            let all: Vec<usize> = (0..=body.len()).collect();
            prop_assert_eq!(&decode_split(&body, &all), &whole, "byte by byte");
        }
    }

}
