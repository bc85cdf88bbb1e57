//! Golden response vectors: every `responses/*.bin` decodes (whole and byte by byte) to its
//! manifest's `decoded` or fails with its `decode_error`, and the encoder rebuilds every
//! positive vector byte for byte from the decoded parts.

use std::path::PathBuf;

use cups_core::crc::crc32;
use cups_core::response::{
    CredKind, DecodeError, Decoder, EncodeError, Event, ResponseParts, SigRef, encode_full,
    encode_head,
};
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};

fn vectors_dir() -> PathBuf {
    match std::env::var("CUPS_VECTORS") {
        Ok(d) => d.into(),
        Err(_) => concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors").into(),
    }
}

struct Vector {
    name: String,
    bin: Vec<u8>,
    manifest: Value,
}

fn vectors() -> Vec<Vector> {
    let dir = vectors_dir().join("responses");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "response vectors at {}: {e} (set CUPS_VECTORS)",
            dir.display()
        )
    }) {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "bin") {
            continue;
        }
        let json = path.with_extension("json");
        let manifest: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        out.push(Vector {
            name: path.file_stem().unwrap().to_string_lossy().into_owned(),
            bin: std::fs::read(&path).unwrap(),
            manifest,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = out.iter().map(|v| v.name.as_str()).collect();
    for must in [
        "full",
        "nochange",
        "token-tc",
        "server-auth-tc",
        "badsig",
        "sig1-signed",
        "sig-sha256",
        "sig-raw-rs",
        "pkcs8-key",
        "two-trust-certs",
        "sig-too-long",
        "truncated-10",
    ] {
        assert!(
            names.contains(&must),
            "vector {must} missing in {}",
            dir.display()
        );
    }
    out
}

/// Everything a body decodes to, with chunks reassembled.
#[derive(Debug, Default, PartialEq)]
struct Decoded {
    cups_uri: Option<Vec<u8>>,
    tc_uri: Option<Vec<u8>>,
    cups_cred: Option<Vec<u8>>,
    tc_cred: Option<Vec<u8>>,
    sig: Option<(u32, Vec<u8>)>,
    update: Option<Vec<u8>>,
    done: bool,
    result: Option<Result<(), DecodeError>>,
}

fn decode(body: &[u8], chunk: usize) -> Decoded {
    let mut d = Decoded::default();
    let mut dec = Decoder::new();
    let mut open_cred: Option<(CredKind, u16, Vec<u8>)> = None;
    let mut open_update: Option<(u32, Vec<u8>)> = None;
    for piece in body.chunks(chunk) {
        let mut rest = piece;
        loop {
            let step = match dec.decode(rest) {
                Ok(s) => s,
                Err(e) => {
                    d.result = Some(Err(e));
                    return d;
                }
            };
            rest = &rest[step.consumed..];
            let Some(ev) = step.event else {
                assert!(rest.is_empty());
                break;
            };
            match ev {
                Event::CupsUri(u) => d.cups_uri = Some(u.to_vec()),
                Event::TcUri(u) => d.tc_uri = Some(u.to_vec()),
                Event::CredStart { kind, len } => {
                    assert!(open_cred.is_none());
                    open_cred = Some((kind, len, Vec::new()));
                }
                Event::CredChunk { kind, offset, data } => {
                    let (k, _, buf) = open_cred.as_mut().unwrap();
                    assert_eq!(*k, kind);
                    assert_eq!(usize::from(offset), buf.len());
                    buf.extend_from_slice(data);
                }
                Event::CredEnd { kind } => {
                    let (k, len, buf) = open_cred.take().unwrap();
                    assert_eq!(k, kind);
                    assert_eq!(usize::from(len), buf.len());
                    match kind {
                        CredKind::Cups => d.cups_cred = Some(buf),
                        CredKind::Tc => d.tc_cred = Some(buf),
                    }
                }
                Event::Signature { key_crc, der } => d.sig = Some((key_crc, der.to_vec())),
                Event::UpdateStart { len } => open_update = Some((len, Vec::new())),
                Event::UpdateChunk { offset, data } => {
                    let (_, buf) = open_update.as_mut().unwrap();
                    assert_eq!(offset as usize, buf.len());
                    buf.extend_from_slice(data);
                }
                Event::UpdateEnd => {
                    let (len, buf) = open_update.take().unwrap();
                    assert_eq!(len as usize, buf.len());
                    d.update = Some(buf);
                }
                Event::Done => d.done = true,
            }
        }
    }
    d.result = Some(dec.finish());
    d
}

fn hex_sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn hex_sha512(b: &[u8]) -> String {
    hex::encode(Sha512::digest(b))
}

fn check_uri(name: &str, field: &str, expect: Option<&Value>, got: &Option<Vec<u8>>) {
    let Some(expect) = expect else { return };
    match expect {
        Value::Null => assert_eq!(got, &None, "{name} {field}"),
        Value::String(s) => assert_eq!(got.as_deref(), Some(s.as_bytes()), "{name} {field}"),
        other => panic!("{name} {field}: {other}"),
    }
}

fn check_cred(name: &str, field: &str, expect: Option<&Value>, got: &Option<Vec<u8>>) {
    let Some(expect) = expect else { return };
    if expect.is_null() {
        assert_eq!(got, &None, "{name} {field}");
        return;
    }
    let blob = got
        .as_ref()
        .unwrap_or_else(|| panic!("{name} {field} missing"));
    assert_eq!(
        blob.len() as u64,
        expect["len"].as_u64().unwrap(),
        "{name} {field} len"
    );
    assert_eq!(
        u64::from(crc32(blob)),
        expect["crc32"].as_u64().unwrap(),
        "{name} {field} crc32"
    );
    assert_eq!(
        hex_sha256(blob),
        expect["sha256"].as_str().unwrap(),
        "{name} {field} sha256"
    );
}

/// Compare a decoding against the manifest's `decoded` (only the keys it lists).
fn check_decoded(v: &Vector, d: &Decoded) {
    let name = &v.name;
    let m = &v.manifest["decoded"];
    check_uri(name, "cupsUri", m.get("cupsUri"), &d.cups_uri);
    check_uri(name, "tcUri", m.get("tcUri"), &d.tc_uri);
    check_cred(name, "cupsCred", m.get("cupsCred"), &d.cups_cred);
    check_cred(name, "tcCred", m.get("tcCred"), &d.tc_cred);
    match m.get("sig") {
        None => {}
        Some(Value::Null) => assert_eq!(d.sig, None, "{name} sig"),
        Some(sig) => {
            let (key_crc, der) = d
                .sig
                .as_ref()
                .unwrap_or_else(|| panic!("{name} sig missing"));
            assert_eq!(
                u64::from(*key_crc),
                sig["keyCRC"].as_u64().unwrap(),
                "{name} keyCRC"
            );
            assert_eq!(
                format!("{key_crc:08X}"),
                sig["keyCRC_station_log"].as_str().unwrap()
            );
            assert_eq!(
                hex::encode(der),
                sig["signature_hex"].as_str().unwrap(),
                "{name} der"
            );
            assert_eq!(der.len() as u64, sig["der_len"].as_u64().unwrap());
            assert_eq!(der.len() as u64 + 4, sig["segment_len"].as_u64().unwrap());
        }
    }
    match m.get("update") {
        None => {}
        Some(Value::Null) => assert_eq!(d.update, None, "{name} update"),
        Some(u) => {
            let upd = d
                .update
                .as_ref()
                .unwrap_or_else(|| panic!("{name} update missing"));
            assert_eq!(upd.len() as u64, u["len"].as_u64().unwrap());
            assert_eq!(
                hex_sha512(upd),
                u["sha512"].as_str().unwrap(),
                "{name} update sha512"
            );
            if let Some(text) = u.get("text").and_then(Value::as_str) {
                assert_eq!(upd, text.as_bytes());
            }
        }
    }
}

/// The manifest's layout: offsets are consistent with the lengths and the bytes.
fn check_layout(v: &Vector) {
    let mut at = 0u64;
    for (entry, size) in v.manifest["layout"]
        .as_array()
        .unwrap()
        .iter()
        .zip([1u64, 1, 2, 2, 4, 4])
    {
        let off = entry["length_field_offset"].as_u64().unwrap();
        assert_eq!(off, at, "{} layout {entry}", v.name);
        let len = entry["length"].as_u64().unwrap();
        let field = &v.bin[off as usize..(off + size) as usize];
        let mut le = [0u8; 8];
        le[..field.len()].copy_from_slice(field);
        assert_eq!(u64::from_le_bytes(le), len, "{} layout {entry}", v.name);
        at = off + size + len;
    }
}

#[test]
fn every_vector_decodes_to_its_manifest() {
    for v in vectors() {
        assert_eq!(
            v.bin.len() as u64,
            v.manifest["length"].as_u64().unwrap(),
            "{}",
            v.name
        );
        assert_eq!(
            hex_sha256(&v.bin),
            v.manifest["sha256"].as_str().unwrap(),
            "{}",
            v.name
        );
        check_layout(&v);
        let whole = decode(&v.bin, v.bin.len().max(1));
        let bytewise = decode(&v.bin, 1);
        assert_eq!(whole, bytewise, "{}: whole vs byte by byte", v.name);
        for chunk in [2, 3, 5, 64, 1000] {
            assert_eq!(
                decode(&v.bin, chunk),
                whole,
                "{}: chunks of {chunk}",
                v.name
            );
        }
        check_decoded(&v, &whole);
        match v.manifest["decode_error"].as_str() {
            None => {
                assert_eq!(whole.result, Some(Ok(())), "{}", v.name);
                assert!(whole.done, "{}: no Done", v.name);
            }
            Some(text) => {
                let err = whole.result.unwrap().expect_err(&v.name);
                assert_eq!(err.to_string(), text, "{}", v.name);
                assert!(!whole.done);
            }
        }
    }
}

#[test]
fn negative_vectors_errors() {
    let all = vectors();
    let get = |n: &str| all.iter().find(|v| v.name == n).unwrap();
    let d = decode(&get("sig-too-long").bin, 1);
    assert_eq!(
        d.result,
        Some(Err(DecodeError::SigLength { len: 133, at: 6 }))
    );
    let d = decode(&get("truncated-10").bin, 3);
    let e = d.result.unwrap().unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::Truncated {
                at: 10,
                needed: 4,
                have: 0,
                ..
            }
        ),
        "{e:?}"
    );
}

fn parts_of(d: &Decoded) -> (ResponseParts<'_>, &[u8]) {
    let update = d.update.as_deref().unwrap_or_default();
    let parts = ResponseParts {
        cups_uri: d
            .cups_uri
            .as_deref()
            .map(|u| std::str::from_utf8(u).unwrap()),
        tc_uri: d.tc_uri.as_deref().map(|u| std::str::from_utf8(u).unwrap()),
        cups_cred: d.cups_cred.as_deref(),
        tc_cred: d.tc_cred.as_deref(),
        sig: d.sig.as_ref().map(|(key_crc, der)| SigRef {
            key_crc: *key_crc,
            der,
        }),
        update_len: update.len() as u32,
    };
    (parts, update)
}

#[test]
fn encoder_rebuilds_every_positive_vector() {
    let mut rebuilt = 0;
    for v in vectors() {
        if !v.manifest["decode_error"].is_null() {
            continue;
        }
        let d = decode(&v.bin, v.bin.len());
        let (parts, update) = parts_of(&d);
        let mut out = vec![0u8; v.bin.len()];
        let n = encode_full(&parts, update, &mut out).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(n, v.bin.len(), "{}", v.name);
        assert_eq!(out, v.bin, "{}: encode_full", v.name);
        // Streaming form: head, then the update bytes.
        let mut head = vec![0u8; 3000];
        let h = encode_head(&parts, &mut head).unwrap();
        assert_eq!(h.body_len, v.bin.len() as u64);
        assert_eq!(&head[..h.head_len], &v.bin[..h.head_len]);
        assert_eq!(&v.bin[h.head_len..], update);
        // One byte short.
        let mut small = vec![0u8; v.bin.len() - 1];
        assert_eq!(
            encode_full(&parts, update, &mut small),
            Err(EncodeError::BufferTooSmall {
                needed: v.bin.len()
            })
        );
        rebuilt += 1;
    }
    assert_eq!(rebuilt, 10);
}

#[test]
fn encoder_refuses_sig_too_long() {
    let all = vectors();
    let v = all.iter().find(|v| v.name == "sig-too-long").unwrap();
    // The lenient layout: sig segment of 133 bytes at offset 6 (+4), update after it.
    let seg = &v.bin[10..10 + 133];
    let update = &v.bin[10 + 133 + 4..];
    let key_crc = u32::from_le_bytes(seg[..4].try_into().unwrap());
    assert_eq!(
        u64::from(key_crc),
        v.manifest["lenient_decoded"]["sig"]["keyCRC"]
            .as_u64()
            .unwrap()
    );
    let parts = ResponseParts {
        sig: Some(SigRef {
            key_crc,
            der: &seg[4..],
        }),
        update_len: update.len() as u32,
        ..Default::default()
    };
    let mut out = vec![0u8; 1024];
    assert_eq!(
        encode_full(&parts, update, &mut out),
        Err(EncodeError::SigLength { len: 133 })
    );
    // At the limit it encodes.
    let parts = ResponseParts {
        sig: Some(SigRef {
            key_crc,
            der: &seg[4..132],
        }),
        ..parts
    };
    assert!(encode_full(&parts, update, &mut out).is_ok());
}
