//! Every response limit, tested at, below and above it, for the encoder and the decoder.

use cups_core::response::{
    CredKind, DecodeError, Decoder, EncodeError, Event, MAX_CRED_LEN, MAX_SIG_SEGMENT_LEN,
    MAX_UPDATE_LEN, MAX_URI_LEN, MAX_URI_SEGMENT_LEN, MIN_SIG_SEGMENT_LEN, ResponseParts, Segment,
    SigRef, UriError, encode_full, encode_head, head_len,
};

/// Decode a whole body; (number of events, final result).
fn decode(body: &[u8]) -> (Vec<String>, Result<(), DecodeError>) {
    let mut dec = Decoder::new();
    let mut rest = body;
    let mut evs = Vec::new();
    loop {
        match dec.decode(rest) {
            Err(e) => return (evs, Err(e)),
            Ok(step) => {
                rest = &rest[step.consumed..];
                match step.event {
                    Some(Event::CredChunk { kind, data, .. }) => {
                        evs.push(format!("chunk {kind} {}", data.len()))
                    }
                    Some(ev) => evs.push(format!("{ev:?}").chars().take(40).collect()),
                    None => break,
                }
            }
        }
    }
    let r = dec.finish();
    (evs, r)
}

fn uri(scheme: &str, len: usize) -> String {
    let host = len - scheme.len() - "://".len() - ":1".len();
    let u = format!("{scheme}://{}:1", "h".repeat(host));
    assert_eq!(u.len(), len);
    u
}

#[test]
fn uri_len_limit() {
    assert_eq!(MAX_URI_LEN, 127);
    for len in [MAX_URI_LEN - 1, MAX_URI_LEN, MAX_URI_LEN + 1] {
        let (c, t) = (uri("https", len), uri("wss", len));
        let parts = ResponseParts {
            cups_uri: Some(&c),
            tc_uri: Some(&t),
            ..Default::default()
        };
        let r = head_len(&parts);
        if len <= MAX_URI_LEN {
            assert_eq!(r, Ok(14 + 2 * len));
            let mut out = vec![0; 14 + 2 * len];
            encode_head(&parts, &mut out).unwrap();
            let (evs, r) = decode(&out);
            assert_eq!(r, Ok(()));
            assert_eq!(evs.len(), 3);
        } else {
            assert_eq!(
                r,
                Err(EncodeError::Uri {
                    segment: Segment::CupsUri,
                    error: UriError::TooLong { len }
                })
            );
        }
    }
    // The decoder accepts what the wire can carry (u8), like the station.
    let mut body = vec![MAX_URI_SEGMENT_LEN as u8];
    body.extend(std::iter::repeat_n(b'x', MAX_URI_SEGMENT_LEN));
    body.extend_from_slice(&[0; 13]);
    assert_eq!(decode(&body).1, Ok(()));
}

#[test]
fn cred_len_limit() {
    let blob = vec![0x30u8; MAX_CRED_LEN + 1];
    for len in [0, 1, MAX_CRED_LEN - 1, MAX_CRED_LEN, MAX_CRED_LEN + 1] {
        let parts = ResponseParts {
            cups_cred: Some(&blob[..len]),
            ..Default::default()
        };
        let mut out = vec![0u8; 14 + len];
        match len {
            0 => assert_eq!(
                encode_head(&parts, &mut out),
                Err(EncodeError::CredEmpty {
                    kind: CredKind::Cups
                })
            ),
            l if l > MAX_CRED_LEN => assert_eq!(
                encode_head(&parts, &mut out),
                Err(EncodeError::CredTooLong {
                    kind: CredKind::Cups,
                    len
                })
            ),
            _ => {
                let h = encode_head(&parts, &mut out).unwrap();
                assert_eq!(h.head_len, 14 + len);
                let (evs, r) = decode(&out);
                assert_eq!(r, Ok(()));
                assert_eq!(evs[1], format!("chunk CUPS {len}"));
            }
        }
    }
}

#[test]
fn sig_len_limit() {
    assert_eq!((MIN_SIG_SEGMENT_LEN, MAX_SIG_SEGMENT_LEN), (8, 132));
    let der = [0x30u8; 200];
    for seg in [7u32, 8, 9, 131, 132, 133] {
        let d = &der[..seg as usize - 4];
        let parts = ResponseParts {
            sig: Some(SigRef { key_crc: 7, der: d }),
            update_len: 1,
            ..Default::default()
        };
        let mut out = vec![0u8; 256];
        let ok = (MIN_SIG_SEGMENT_LEN..=MAX_SIG_SEGMENT_LEN).contains(&seg);
        let r = encode_full(&parts, &[1], &mut out);
        if ok {
            let n = r.unwrap();
            assert_eq!(n, 14 + seg as usize + 1);
            assert_eq!(decode(&out[..n]).1, Ok(()));
        } else {
            assert_eq!(r, Err(EncodeError::SigLength { len: seg as usize }));
        }
        // The decoder on a hand-made body with this segment length.
        let mut body = vec![0u8; 6];
        body.extend_from_slice(&seg.to_le_bytes());
        body.extend_from_slice(&7u32.to_le_bytes());
        body.extend_from_slice(d);
        body.extend_from_slice(&[1, 0, 0, 0, 1]);
        let r = decode(&body).1;
        if ok {
            assert_eq!(r, Ok(()));
        } else {
            assert_eq!(r, Err(DecodeError::SigLength { len: seg, at: 6 }));
        }
    }
}

#[test]
fn update_len_limit() {
    assert_eq!(MAX_UPDATE_LEN, (1 << 31) - 1);
    for len in [MAX_UPDATE_LEN - 1, MAX_UPDATE_LEN, MAX_UPDATE_LEN + 1] {
        let parts = ResponseParts {
            update_len: len,
            ..Default::default()
        };
        let mut out = [0u8; 14];
        let r = encode_head(&parts, &mut out);
        let mut body = vec![0u8; 10];
        body.extend_from_slice(&len.to_le_bytes());
        let (evs, d) = decode(&body);
        if len <= MAX_UPDATE_LEN {
            assert_eq!(r.unwrap().body_len, 14 + u64::from(len));
            assert_eq!(out[..], body[..]);
            assert_eq!(evs, [format!("UpdateStart {{ len: {len} }}")]);
            assert!(
                matches!(d, Err(DecodeError::Truncated { at: 14, needed, have: 0, .. }) if needed == len)
            );
        } else {
            assert_eq!(r, Err(EncodeError::UpdateTooLong { len }));
            assert_eq!(d, Err(DecodeError::UpdateTooLong { len, at: 10 }));
        }
    }
}
