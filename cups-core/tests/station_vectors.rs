//! Replays every golden response vector the way the real station saw it: the same home
//! directory, the first request byte for byte, the response body, and then the next request
//! and the stored files as the station's manifest records them.

use std::path::PathBuf;
use std::time::Duration;

use cups_core::Eui64;
use cups_core::crc::{EMPTY_SET_CRC, crc32};
use cups_core::response::Segment;
use cups_core::sig::RustCryptoVerifier;
use cups_core::station::{
    Action, AuthMode, CredFile, CredKind, CredReject, CredSet, FailReason, FileId, FileSet,
    Instant, MemStore, Station, StationConfig, StationEvent, UpdateReject,
};
use serde_json::Value;

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

fn json(rel: &str) -> Value {
    serde_json::from_slice(&read(rel)).unwrap()
}

const STATION: &str = "2.0.6(linux/testsim) 2026-11-26 17:38:27";
const RESYNC: Duration = Duration::from_secs(3);
const OKSYNC: Duration = Duration::from_secs(6);

fn config() -> StationConfig<'static> {
    let mut c = StationConfig::new(Eui64::new(0x0016_c001_ff10_a235).unwrap(), STATION, "linux");
    c.resync_intv = RESYNC;
    c.oksync_intv = OKSYNC;
    c
}

fn cups(set: FileSet, f: CredFile) -> FileId {
    FileId::cred(CredKind::Cups, set, f)
}

fn tc(set: FileSet, f: CredFile) -> FileId {
    FileId::cred(CredKind::Tc, set, f)
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Home {
    /// PEM bootstrap creds only.
    FirstContact,
    /// + version.txt 1.0.0 + sig-0.key.
    VersionSigkey,
    /// + sig-1.key.
    TwoSigkeys,
}

fn home(h: Home) -> MemStore {
    let mut s = MemStore::new()
        .with(cups(FileSet::Reg, CredFile::Uri), "https://localhost:16140")
        .with(cups(FileSet::Reg, CredFile::Trust), read("pki/ca.crt.pem"))
        .with(
            cups(FileSet::Reg, CredFile::Cert),
            read("pki/cups-0016c001ff10a235.crt.pem"),
        )
        .with(
            cups(FileSet::Reg, CredFile::Key),
            read("pki/cups-0016c001ff10a235.key.pem"),
        );
    if h != Home::FirstContact {
        s.insert(FileId::Version, "1.0.0\n");
        s.insert(FileId::SigKey(0), read("pki/sig-0.key"));
    }
    if h == Home::TwoSigkeys {
        s.insert(FileId::SigKey(1), read("pki/sig-1.key"));
    }
    s
}

type St = Station<'static, MemStore, RustCryptoVerifier>;

fn drain(st: &mut St) -> Vec<StationEvent> {
    std::iter::from_fn(|| st.poll_event()).collect()
}

/// Poll at `now`, expect a connection to the regular CUPS URI, return the request.
fn request(st: &mut St, now: Instant) -> Vec<u8> {
    match st.poll(now) {
        Action::Connect(t) => {
            assert_eq!(t.uri, "https://localhost:16140");
            assert_eq!((t.host, t.port), ("localhost", "16140"));
            assert_eq!(t.set, CredSet::Reg);
            assert!(t.tls.is_some());
        }
        Action::Wait => panic!("no connection at {now:?}"),
    }
    let mut buf = vec![0u8; 4096];
    let n = st.write_request(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn body_of(req: &[u8]) -> &[u8] {
    let at = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    &req[at..]
}

/// Feed a whole response in `chunk`-byte pieces.
fn respond(st: &mut St, now: Instant, body: &[u8], chunk: usize) {
    st.on_response_status(now, 200);
    for c in body.chunks(chunk.max(1)) {
        st.on_response_body(now, c);
    }
    st.on_response_end(now);
}

/// What the update scripts of the vectors do: bump version.txt, delete the update.
fn run_update(st: &mut St) {
    let s = st.store_mut();
    assert!(
        s.contains(FileId::Update),
        "RunUpdate without /tmp/update.bin"
    );
    s.insert(FileId::Version, "2.0.0\n");
    s.take(FileId::Update);
}

fn next_request_matches(body: &[u8], expect: &Value, name: &str) {
    let got: Value = serde_json::from_slice(body).unwrap();
    for k in ["tcUri", "cupsCredCrc", "tcCredCrc", "package", "keys"] {
        assert_eq!(got[k], expect[k], "{name}: next request field {k}");
    }
}

fn manifest_validation(m: &Value) -> &Value {
    let sv = &m["station_validation"];
    if sv.is_array() { &sv[0] } else { sv }
}

/// One scenario: first request, response, events, next request.
struct Run {
    events: Vec<StationEvent>,
    first: Vec<u8>,
    next: Vec<u8>,
    next_at: Duration,
    decode_error: Option<cups_core::response::DecodeError>,
    st: St,
}

fn run(name: &str, h: Home, chunk: usize) -> Run {
    let bin = read(&format!("responses/{name}.bin"));
    let t0 = Instant::from_millis(1_000);
    let mut st = Station::new(home(h), RustCryptoVerifier, config(), t0);
    assert!(drain(&mut st).is_empty());
    let first = request(&mut st, t0);
    respond(&mut st, t0, &bin, chunk);
    let events = drain(&mut st);
    if events
        .iter()
        .any(|e| matches!(e, StationEvent::RunUpdate { .. }))
    {
        run_update(&mut st);
    }
    let decode_error = st.last_decode_error();
    let at = st.poll_timeout().unwrap();
    let next = request(&mut st, at);
    Run {
        events,
        first,
        next,
        next_at: at.saturating_duration_since(t0),
        decode_error,
        st,
    }
}

fn has(events: &[StationEvent], pred: impl Fn(&StationEvent) -> bool) -> bool {
    events.iter().any(pred)
}

#[test]
fn first_requests_are_byte_exact() {
    for (h, file) in [
        (Home::FirstContact, "first-contact"),
        (Home::VersionSigkey, "with-version-sigkey"),
        (Home::TwoSigkeys, "two-sigkeys"),
    ] {
        let t0 = Instant::from_millis(0);
        let mut st = Station::new(home(h), RustCryptoVerifier, config(), t0);
        let req = request(&mut st, t0);
        assert_eq!(
            String::from_utf8_lossy(body_of(&req)),
            String::from_utf8_lossy(&read(&format!("requests/{file}.json"))),
            "{file} body"
        );
        assert_eq!(
            req,
            read(&format!("requests/{file}.http")),
            "{file} head + body"
        );
    }
}

#[test]
fn nochange_first_contact() {
    let r = run("nochange", Home::FirstContact, usize::MAX);
    assert_eq!(
        r.events.last(),
        Some(&StationEvent::InteractionDone {
            next_in: OKSYNC,
            cups_changed: false
        })
    );
    assert_eq!(r.next_at, OKSYNC);
    assert_eq!(r.first, r.next, "nothing changed");
}

#[test]
fn full_applies_everything() {
    for chunk in [usize::MAX, 1, 7, 100] {
        let mut r = run("full", Home::VersionSigkey, chunk);
        let e = &r.events;
        assert!(has(e, |e| *e
            == StationEvent::BackupCreated {
                kind: CredKind::Cups
            }));
        assert!(has(e, |e| *e
            == StationEvent::SegmentApplied {
                segment: Segment::CupsUri
            }));
        assert!(has(e, |e| *e
            == StationEvent::SegmentApplied {
                segment: Segment::TcUri
            }));
        assert!(has(e, |e| *e
            == StationEvent::ConfigCommitted {
                cups: true,
                tc: true
            }));
        assert!(has(e, |e| *e == StationEvent::UpdateReceived { len: 114 }));
        assert!(has(e, |e| *e == StationEvent::UpdateVerified { key_index: 0 }));
        assert!(has(e, |e| *e == StationEvent::RunUpdate { at_start: false }));
        assert!(has(e, |e| *e
            == StationEvent::TcRestart {
                uri: true,
                cred: true
            }));
        assert_eq!(
            e.last(),
            Some(&StationEvent::InteractionDone {
                next_in: RESYNC,
                cups_changed: true
            })
        );
        assert_eq!(
            r.next_at, RESYNC,
            "CUPS URI segment present: reconnect after RESYNC"
        );
        // The next request is the steady-state one, byte for byte.
        assert_eq!(
            String::from_utf8_lossy(body_of(&r.next)),
            String::from_utf8_lossy(&read("requests/steady-state.json"))
        );
        assert_eq!(r.next, read("requests/steady-state.http"));
        // Stored files are the station's slices of each blob.
        let bin = read("responses/full.bin");
        let m = json("responses/full.json");
        for (seg, kind) in [("cupsCred", CredKind::Cups), ("tcCred", CredKind::Tc)] {
            let lay = m["layout"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["segment"] == seg)
                .unwrap();
            let off = lay["length_field_offset"].as_u64().unwrap() as usize + 2;
            let blob = &bin[off..off + lay["length"].as_u64().unwrap() as usize];
            let split = &m["decoded"][seg]["station_split"];
            for (part, f) in [
                ("trust", CredFile::Trust),
                ("cert", CredFile::Cert),
                ("key", CredFile::Key),
            ] {
                let o = split[part]["offset"].as_u64().unwrap() as usize;
                let l = split[part]["len"].as_u64().unwrap() as usize;
                let file = FileId::cred(kind, FileSet::Reg, f);
                assert_eq!(
                    r.st.store().get(file),
                    Some(&blob[o..o + l]),
                    "{seg} {part}"
                );
            }
            assert_eq!(r.st.cred_crc(kind), crc32(blob));
        }
        assert_eq!(
            r.st.store().get(tc(FileSet::Reg, CredFile::Uri)),
            Some(&b"wss://localhost:16138"[..])
        );
        // The backup holds the PEM bootstrap set; temp files are gone.
        assert_eq!(
            r.st.store().get(cups(FileSet::Bak, CredFile::Trust)),
            Some(&read("pki/ca.crt.pem")[..])
        );
        assert!(r.st.store().iter().all(|(f, _)| !matches!(
            f,
            FileId::Cred {
                set: FileSet::Temp,
                ..
            } | FileId::CommitMarker(_)
                | FileId::CopyMarker(_)
        )));
        assert!(!r.st.store().contains(FileId::UpdateTemp));
        // The next connection uses the stored DER set (mutual TLS).
        assert_eq!(r.st.connect_target().unwrap().tls, Some(AuthMode::Both));
    }
}

#[test]
fn every_vector_gives_the_recorded_next_request() {
    for (name, h) in [
        ("full", Home::VersionSigkey),
        ("token-tc", Home::VersionSigkey),
        ("server-auth-tc", Home::VersionSigkey),
        ("pkcs8-key", Home::VersionSigkey),
        ("badsig", Home::VersionSigkey),
        ("sig-too-long", Home::VersionSigkey),
        ("truncated-10", Home::VersionSigkey),
        ("two-trust-certs", Home::VersionSigkey),
        ("sig1-signed", Home::TwoSigkeys),
        ("sig-sha256", Home::VersionSigkey),
        ("sig-raw-rs", Home::VersionSigkey),
    ] {
        let m = json(&format!("responses/{name}.json"));
        let expect = &manifest_validation(&m)["next_request"];
        for chunk in [usize::MAX, 1, 13] {
            let r = run(name, h, chunk);
            next_request_matches(body_of(&r.next), expect, name);
        }
    }
}

#[test]
fn credential_vectors() {
    // token-tc: empty tc.crt, tc.key = the header line.
    let r = run("token-tc", Home::VersionSigkey, 5);
    let s = r.st.store();
    assert_eq!(s.get(tc(FileSet::Reg, CredFile::Cert)), Some(&b""[..]));
    assert_eq!(
        s.get(tc(FileSet::Reg, CredFile::Key)),
        Some(&b"Authorization: Bearer cups-golden-token-0016c001ff10a235\r\n"[..])
    );
    assert!(has(&r.events, |e| *e
        == StationEvent::TcRestart {
            uri: true,
            cred: true
        }));
    assert_eq!(r.next_at, OKSYNC, "only TC changed");

    // server-auth-tc: both empty.
    let r = run("server-auth-tc", Home::VersionSigkey, 5);
    let s = r.st.store();
    assert_eq!(s.get(tc(FileSet::Reg, CredFile::Cert)), Some(&b""[..]));
    assert_eq!(s.get(tc(FileSet::Reg, CredFile::Key)), Some(&b""[..]));

    // pkcs8-key: rejected, nothing stored, still a TC credential update and a success.
    let r = run("pkcs8-key", Home::VersionSigkey, 3);
    assert!(has(&r.events, |e| *e
        == StationEvent::CredsRejected {
            kind: CredKind::Tc,
            len: 1039,
            reason: CredReject::LengthsDoNotAlign { parsed_len: 35467 },
        }));
    assert!(has(&r.events, |e| *e
        == StationEvent::TcRestart {
            uri: false,
            cred: true
        }));
    assert!(has(&r.events, |e| matches!(
        e,
        StationEvent::InteractionDone { .. }
    )));
    assert!(r.st.store().iter().all(|(f, _)| !matches!(
        f,
        FileId::Cred {
            kind: CredKind::Tc,
            ..
        }
    )));
    let mut st = r.st;
    assert_eq!(st.cred_crc(CredKind::Tc), EMPTY_SET_CRC);

    // two-trust-certs: mis-split but stored.
    let mut r = run("two-trust-certs", Home::VersionSigkey, 64);
    assert_eq!(r.st.cred_crc(CredKind::Tc), 1_081_567_811);
}

#[test]
fn signature_vectors() {
    for name in ["badsig", "sig-sha256", "sig-raw-rs"] {
        let r = run(name, Home::VersionSigkey, 9);
        assert!(
            has(&r.events, |e| *e
                == StationEvent::UpdateRejected {
                    reason: UpdateReject::NotVerified { tried: 1 }
                }),
            "{name}: {:?}",
            r.events
        );
        assert!(
            !has(&r.events, |e| matches!(e, StationEvent::RunUpdate { .. })),
            "{name}"
        );
        assert!(
            !r.st.store().contains(FileId::Update),
            "{name}: aborting deletes the update"
        );
        assert_eq!(r.st.store().get(FileId::Version), Some(&b"1.0.0\n"[..]));
    }
    let r = run("sig1-signed", Home::TwoSigkeys, 9);
    assert!(has(&r.events, |e| *e
        == StationEvent::UpdateVerified { key_index: 1 }));
    assert!(has(&r.events, |e| *e
        == StationEvent::RunUpdate { at_start: false }));
}

#[test]
fn broken_bodies_fail_and_retry_identically() {
    for name in ["sig-too-long", "truncated-10"] {
        for chunk in [usize::MAX, 1, 4] {
            let r = run(name, Home::VersionSigkey, chunk);
            assert_eq!(
                r.events.last(),
                Some(&StationEvent::InteractionFailed {
                    reason: FailReason::Protocol,
                    next_in: RESYNC,
                    rotated_to: None
                }),
                "{name}"
            );
            assert_eq!(r.next_at, RESYNC);
            assert_eq!(r.first, r.next, "{name}: identical retry");
            let at = r.decode_error.expect("a decode error").at();
            assert_eq!(at, if name == "sig-too-long" { 6 } else { 10 }, "{name}");
            assert!(!r.st.store().contains(FileId::Update));
        }
    }
}
