//! Table tests of the station's behaviour: rotation, failure threshold, timers, backups,
//! LNS override, triggers, non-atomic commit, the signature policy, token auth, limits.

use std::time::Duration;

use cups_core::Eui64;
use cups_core::crc::EMPTY_SET_CRC;
use cups_core::response::{ResponseParts, SigRef, encode_full};
use cups_core::sig::{RustCryptoVerifier, UpdateSigner};
use cups_core::station::{
    Action, AuthMode, CUPS_CONN_TIMEOUT, CredFile, CredKind, CredSet, EVENT_QUEUE_LEN,
    FAIL_CNT_THRES, FailReason, FileId, FileSet, Instant, MAX_PORT_LEN, MAX_URI_LEN, MemStore,
    Station, StationConfig, StationEvent, TransportError, UpdateReject, WriteRequestError,
};

const RESYNC: Duration = Duration::from_secs(60);
const OKSYNC: Duration = Duration::from_secs(24 * 3600);

type St = Station<'static, MemStore, RustCryptoVerifier>;

fn config() -> StationConfig<'static> {
    StationConfig::new(
        Eui64::new(0x0016_c001_ff10_a235).unwrap(),
        "2.0.6(test)",
        "linux",
    )
}

fn cups(set: FileSet, f: CredFile) -> FileId {
    FileId::cred(CredKind::Cups, set, f)
}

fn tc(set: FileSet, f: CredFile) -> FileId {
    FileId::cred(CredKind::Tc, set, f)
}

/// A home with plain-http CUPS URIs in all three sets.
fn home() -> MemStore {
    MemStore::new()
        .with(cups(FileSet::Reg, CredFile::Uri), "http://reg:1")
        .with(cups(FileSet::Bak, CredFile::Uri), "http://bak:2")
        .with(cups(FileSet::Boot, CredFile::Uri), "http://boot:3")
        .with(cups(FileSet::Reg, CredFile::Trust), "REG-TRUST")
        .with(FileId::Version, "1.0.0")
}

fn station(store: MemStore) -> St {
    Station::new(store, RustCryptoVerifier, config(), Instant::from_millis(0))
}

fn drain(st: &mut St) -> Vec<StationEvent> {
    std::iter::from_fn(|| st.poll_event()).collect()
}

/// Poll at the next deadline; returns (now, set used) if a connection is wanted.
fn connect(st: &mut St) -> (Instant, Option<CredSet>) {
    let now = st.poll_timeout().expect("a deadline");
    let set = match st.poll(now) {
        Action::Connect(t) => Some(t.set),
        Action::Wait => None,
    };
    (now, set)
}

fn request(st: &mut St) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let n = st.write_request(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn body_json(req: &[u8]) -> serde_json::Value {
    let at = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    serde_json::from_slice(&req[at..]).unwrap()
}

/// One full interaction with status and body; returns the events.
fn interact(st: &mut St, status: u16, body: &[u8]) -> (Option<CredSet>, Vec<StationEvent>) {
    let (now, set) = connect(st);
    if set.is_some() {
        let _ = request(st);
        st.on_response_status(now, status);
        if status == 200 {
            st.on_response_body(now, body);
            st.on_response_end(now);
        }
    }
    (set, drain(st))
}

fn outcome(events: &[StationEvent]) -> StationEvent {
    *events
        .iter()
        .rev()
        .find(|e| {
            matches!(
                e,
                StationEvent::InteractionDone { .. } | StationEvent::InteractionFailed { .. }
            )
        })
        .expect("an outcome")
}

fn has(events: &[StationEvent], e: StationEvent) -> bool {
    events.contains(&e)
}

const NOCHANGE: [u8; 14] = [0; 14];

fn body(parts: &ResponseParts<'_>, update: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 70_000];
    let n = encode_full(parts, update, &mut out).unwrap();
    out.truncate(n);
    out
}

fn signer(seed: u8) -> UpdateSigner {
    UpdateSigner::from_scalar(&[seed; 32]).unwrap()
}

/// A DER element of `len` content bytes.
fn der(len: usize, fill: u8) -> Vec<u8> {
    let mut v = vec![0x30];
    if len < 128 {
        v.push(len as u8);
    } else {
        v.push(0x82);
        v.extend_from_slice(&(len as u16).to_be_bytes());
    }
    v.extend(std::iter::repeat_n(fill, len));
    v
}

fn mtls_blob(fill: u8) -> Vec<u8> {
    [
        der(300, fill),
        der(200, fill.wrapping_add(1)),
        der(119, fill.wrapping_add(2)),
    ]
    .concat()
}

#[test]
fn rejected_rotates_reg_bak_boot_reg() {
    let mut st = station(home());
    let mut sets = vec![];
    for i in 0..4 {
        let (set, ev) = interact(&mut st, 403, &[]);
        sets.push(set.unwrap());
        let expect_next = [CredSet::Bak, CredSet::Boot, CredSet::Reg, CredSet::Bak][i];
        assert_eq!(
            outcome(&ev),
            StationEvent::InteractionFailed {
                reason: FailReason::Rejected { status: 403 },
                next_in: RESYNC,
                rotated_to: Some(expect_next),
            }
        );
    }
    assert_eq!(
        sets,
        [CredSet::Reg, CredSet::Bak, CredSet::Boot, CredSet::Reg]
    );
    // A success goes back to REG and clears the count.
    let (set, ev) = interact(&mut st, 200, &NOCHANGE);
    assert_eq!(set, Some(CredSet::Bak));
    assert_eq!(
        outcome(&ev),
        StationEvent::InteractionDone {
            next_in: OKSYNC,
            cups_changed: false
        }
    );
    assert_eq!((st.credset(), st.fail_count()), (CredSet::Reg, 0));
}

#[test]
fn timeouts_rotate_only_after_the_threshold() {
    let mut st = station(home());
    let mut sets = vec![];
    for n in 1..=10u32 {
        let (now, set) = connect(&mut st);
        sets.push(set.unwrap());
        // No response: the connection timeout fires.
        assert_eq!(
            st.poll_timeout(),
            Some(now.saturating_add(CUPS_CONN_TIMEOUT))
        );
        assert!(matches!(
            st.poll(now.saturating_add(CUPS_CONN_TIMEOUT)),
            Action::Wait
        ));
        let ev = drain(&mut st);
        let rotated = n > FAIL_CNT_THRES + 1;
        match outcome(&ev) {
            StationEvent::InteractionFailed {
                reason,
                next_in,
                rotated_to,
            } => {
                assert_eq!(reason, FailReason::Transport(TransportError::TimedOut));
                assert_eq!(next_in, RESYNC);
                assert_eq!(rotated_to.is_some(), rotated, "failure #{n}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(st.fail_count(), n);
    }
    use CredSet::*;
    assert_eq!(sets, [Reg, Reg, Reg, Reg, Reg, Reg, Reg, Reg, Bak, Boot]);
}

#[test]
fn transport_errors_and_early_close() {
    for (err, status) in [
        (Some(TransportError::ConnectFailed), None),
        (Some(TransportError::TlsFailed), None),
        (Some(TransportError::Closed), Some(200)),
        (None, None), // closed before the status
    ] {
        let mut st = station(home());
        let (now, _) = connect(&mut st);
        if let Some(s) = status {
            st.on_response_status(now, s);
        }
        match err {
            Some(e) => st.on_error(now, e),
            None => st.on_response_end(now),
        }
        let expect = err.unwrap_or(TransportError::Closed);
        assert_eq!(
            outcome(&drain(&mut st)),
            StationEvent::InteractionFailed {
                reason: FailReason::Transport(expect),
                next_in: RESYNC,
                rotated_to: None
            }
        );
        assert_eq!(st.credset(), CredSet::Reg);
    }
}

#[test]
fn missing_uri_rotates_without_connecting() {
    let store = home().with(
        cups(FileSet::Reg, CredFile::Uri),
        "x".repeat(MAX_URI_LEN + 1),
    );
    let mut st = station(store);
    let (_, set) = connect(&mut st);
    assert_eq!(set, None);
    assert_eq!(
        outcome(&drain(&mut st)),
        StationEvent::InteractionFailed {
            reason: FailReason::NoUri,
            next_in: RESYNC,
            rotated_to: Some(CredSet::Bak)
        }
    );
    let (_, set) = connect(&mut st);
    assert_eq!(set, Some(CredSet::Bak));
}

#[test]
fn uri_limits() {
    // 127 bytes is used, 128 is "no URI"; trailing blanks are trimmed first.
    let host = |n: usize| format!("http://{}:1", "h".repeat(n - "http://:1".len()));
    for (uri, ok) in [
        (host(MAX_URI_LEN), true),
        (host(MAX_URI_LEN) + "\n \t", true),
        (host(MAX_URI_LEN + 1), false),
        (format!("http://h:{}", "1".repeat(MAX_PORT_LEN)), true),
        (format!("http://h:{}", "1".repeat(MAX_PORT_LEN + 1)), false),
        ("http://h".to_string(), false),
        ("https://h:1/path".to_string(), false),
    ] {
        let store = MemStore::new().with(cups(FileSet::Reg, CredFile::Uri), uri.clone());
        let mut st = station(store);
        let (_, set) = connect(&mut st);
        assert_eq!(set.is_some(), ok, "{uri:?}");
        if !ok {
            let reason = match outcome(&drain(&mut st)) {
                StationEvent::InteractionFailed { reason, .. } => reason,
                other => panic!("{other:?}"),
            };
            assert!(
                matches!(reason, FailReason::NoUri | FailReason::BadUri),
                "{uri:?}"
            );
        }
    }
}

#[test]
fn https_needs_trust_and_token_goes_into_the_head() {
    let uri = cups(FileSet::Reg, CredFile::Uri);
    // No trust: TLS cannot be set up, nothing is connected.
    let mut st = station(MemStore::new().with(uri, "https://h:443"));
    assert_eq!(connect(&mut st).1, None);
    assert!(matches!(
        outcome(&drain(&mut st)),
        StationEvent::InteractionFailed {
            reason: FailReason::TlsSetup,
            rotated_to: None,
            ..
        }
    ));

    // Token mode: trust + key, no cert. Bare \n lines are normalised.
    let store = MemStore::new()
        .with(uri, "https://h:443")
        .with(cups(FileSet::Reg, CredFile::Trust), "T")
        .with(cups(FileSet::Reg, CredFile::Cert), "")
        .with(
            cups(FileSet::Reg, CredFile::Key),
            "Authorization: Bearer abc\nX-A: b\n",
        );
    let mut st = station(store.clone());
    let now = st.poll_timeout().unwrap();
    match st.poll(now) {
        Action::Connect(t) => assert_eq!(t.tls, Some(AuthMode::Token)),
        Action::Wait => panic!(),
    }
    let req = request(&mut st);
    let head =
        std::str::from_utf8(&req[..req.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4])
            .unwrap();
    assert!(head.starts_with("POST /update-info HTTP/1.1\r\nHost: h:443\r\n"));
    assert!(
        head.ends_with("\r\nAuthorization: Bearer abc\r\nX-A: b\r\n\r\n"),
        "{head:?}"
    );
    let cl: usize = head
        .split("Content-Length:")
        .nth(1)
        .unwrap()
        .split("\r\n")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(cl, req.len() - head.len());
    // A too-small buffer is reported with the size needed, and nothing else changes.
    for len in [10, req.len() - 1] {
        let mut small = vec![0u8; len];
        assert_eq!(
            st.write_request(&mut small),
            Err(WriteRequestError::BufferTooSmall { needed: req.len() }),
            "{len}"
        );
    }
    let mut exact = vec![0u8; req.len()];
    assert_eq!(st.write_request(&mut exact), Ok(req.len()));
    assert_eq!(exact, req);

    // The same files over plain http: no token.
    let mut store = store;
    store.insert(uri, "http://h:80");
    let mut st = station(store);
    let now = st.poll_timeout().unwrap();
    match st.poll(now) {
        Action::Connect(t) => assert_eq!(t.tls, None),
        Action::Wait => panic!(),
    }
    let req = request(&mut st);
    assert!(!req.windows(13).any(|w| w == b"Authorization"));

    // A malformed token fails TLS setup.
    let store = MemStore::new()
        .with(uri, "https://h:443")
        .with(cups(FileSet::Reg, CredFile::Trust), "T")
        .with(cups(FileSet::Reg, CredFile::Key), "Bearer abc");
    let mut st = station(store);
    assert_eq!(connect(&mut st).1, None);
}

#[test]
fn backup_once_ever_and_only_on_reg() {
    let mut st = station(home());
    let (_, ev) = interact(&mut st, 200, &NOCHANGE);
    assert!(has(
        &ev,
        StationEvent::BackupCreated {
            kind: CredKind::Cups
        }
    ));
    let s = st.store();
    assert_eq!(
        s.get(cups(FileSet::Bak, CredFile::Uri)),
        Some(&b"http://reg:1"[..])
    );
    assert_eq!(
        s.get(cups(FileSet::Bak, CredFile::Trust)),
        Some(&b"REG-TRUST"[..])
    );
    assert!(s.contains(FileId::BackupDone(CredKind::Cups)));
    assert!(!s.contains(FileId::CopyMarker(CredKind::Cups)));
    // Change the regular set: no second backup, not even after a restart.
    st.store_mut()
        .insert(cups(FileSet::Reg, CredFile::Trust), "NEW");
    let (_, ev) = interact(&mut st, 200, &NOCHANGE);
    assert!(
        !ev.iter()
            .any(|e| matches!(e, StationEvent::BackupCreated { .. }))
    );
    let (store, v) = st.into_parts();
    let mut st = Station::new(store, v, config(), Instant::from_millis(0));
    let (_, ev) = interact(&mut st, 200, &NOCHANGE);
    assert!(
        !ev.iter()
            .any(|e| matches!(e, StationEvent::BackupCreated { .. }))
    );
    assert_eq!(
        st.store().get(cups(FileSet::Bak, CredFile::Trust)),
        Some(&b"REG-TRUST"[..])
    );

    // A 200 on the backup set does not back up.
    let mut st = station(home());
    let _ = interact(&mut st, 500, &[]);
    let (set, ev) = interact(&mut st, 200, &NOCHANGE);
    assert_eq!(set, Some(CredSet::Bak));
    assert!(
        !ev.iter()
            .any(|e| matches!(e, StationEvent::BackupCreated { .. }))
    );
    assert!(!st.store().contains(FileId::BackupDone(CredKind::Cups)));
}

#[test]
fn interrupted_commit_and_backup_roll_forward_at_start() {
    let store = home()
        .with(FileId::CommitMarker(CredKind::Tc), "")
        .with(tc(FileSet::Temp, CredFile::Uri), "wss://lns:1")
        .with(FileId::CopyMarker(CredKind::Cups), "")
        .with(cups(FileSet::Bak, CredFile::Uri), "half-copied");
    let mut st = station(store);
    let s = st.store();
    assert_eq!(
        s.get(tc(FileSet::Reg, CredFile::Uri)),
        Some(&b"wss://lns:1"[..])
    );
    assert!(!s.contains(tc(FileSet::Temp, CredFile::Uri)));
    assert!(!s.contains(FileId::CommitMarker(CredKind::Tc)));
    assert_eq!(
        s.get(cups(FileSet::Bak, CredFile::Uri)),
        Some(&b"http://reg:1"[..])
    );
    assert!(s.contains(FileId::BackupDone(CredKind::Cups)));
    assert!(!s.contains(FileId::CopyMarker(CredKind::Cups)));
    assert_eq!(
        drain(&mut st),
        [StationEvent::BackupCreated {
            kind: CredKind::Cups
        }]
    );
}

#[test]
fn lns_connected_means_oksync_and_tc_backup() {
    let mut st = station(home().with(tc(FileSet::Reg, CredFile::Uri), "wss://lns:1"));
    st.set_tc_connected(Instant::from_millis(0), true);
    assert!(has(
        &drain(&mut st),
        StationEvent::BackupCreated { kind: CredKind::Tc }
    ));
    assert_eq!(
        st.store().get(tc(FileSet::Bak, CredFile::Uri)),
        Some(&b"wss://lns:1"[..])
    );
    // Failure with the LNS up: long interval.
    let (_, ev) = interact(&mut st, 500, &[]);
    assert!(matches!(
        outcome(&ev),
        StationEvent::InteractionFailed {
            next_in: OKSYNC,
            ..
        }
    ));
    // CUPS URI change with the LNS up: long interval too.
    let b = body(
        &ResponseParts {
            cups_uri: Some("http://new:9"),
            ..Default::default()
        },
        &[],
    );
    let (_, ev) = interact(&mut st, 200, &b);
    assert_eq!(
        outcome(&ev),
        StationEvent::InteractionDone {
            next_in: OKSYNC,
            cups_changed: true
        }
    );
    // A TC change restarts the LNS connection: it is down now, so a CUPS change is RESYNC.
    let b = body(
        &ResponseParts {
            cups_uri: Some("http://new:9"),
            tc_uri: Some("wss://x:1"),
            ..Default::default()
        },
        &[],
    );
    let (_, ev) = interact(&mut st, 200, &b);
    assert!(has(
        &ev,
        StationEvent::TcRestart {
            uri: true,
            cred: false
        }
    ));
    assert!(!st.tc_connected());
    assert_eq!(
        outcome(&ev),
        StationEvent::InteractionDone {
            next_in: RESYNC,
            cups_changed: true
        }
    );
}

#[test]
fn lns_connecting_after_a_failure_delays_cups() {
    let mut st = station(home());
    let (now, _) = connect(&mut st);
    st.on_error(now, TransportError::ConnectFailed);
    let _ = drain(&mut st);
    assert_eq!(st.poll_timeout(), Some(now.saturating_add(RESYNC)));
    let later = now.saturating_add(Duration::from_secs(10));
    st.set_tc_connected(later, true);
    assert_eq!(st.poll_timeout(), Some(later.saturating_add(OKSYNC)));
    // After a success the timer is left alone.
    let mut st = station(home());
    let _ = interact(&mut st, 200, &NOCHANGE);
    let at = st.poll_timeout();
    st.set_tc_connected(Instant::from_millis(5), true);
    assert_eq!(st.poll_timeout(), at);
}

#[test]
fn trigger_moves_the_regular_timer_once() {
    let mut st = station(home());
    let _ = interact(&mut st, 200, &NOCHANGE);
    let t = Instant::from_millis(100_000);
    st.trigger(t, None);
    assert_eq!(st.poll_timeout(), Some(t.saturating_add(RESYNC)));
    // A pending session is not moved again.
    st.trigger(
        t.saturating_add(Duration::from_secs(1)),
        Some(Duration::ZERO),
    );
    assert_eq!(st.poll_timeout(), Some(t.saturating_add(RESYNC)));
    // Nor is an interaction in progress.
    let (now, set) = connect(&mut st);
    assert!(set.is_some());
    st.trigger(now, Some(Duration::ZERO));
    assert!(st.is_interacting());
}

#[test]
fn no_cups_uri_anywhere_disables_cups() {
    let mut st = station(MemStore::new().with(FileId::Version, "1"));
    assert!(st.is_disabled());
    assert_eq!(st.poll_timeout(), None);
    assert!(matches!(
        st.poll(Instant::from_millis(u64::MAX)),
        Action::Wait
    ));
    st.trigger(Instant::from_millis(0), None);
    assert_eq!(st.poll_timeout(), None);
}

#[test]
fn pending_update_runs_at_start() {
    let mut st = station(home().with(FileId::Update, "#!/bin/sh"));
    assert_eq!(drain(&mut st), [StationEvent::RunUpdate { at_start: true }]);
}

#[test]
fn commit_is_not_atomic() {
    // TC URI + creds, a bad signature and an update: the TC files stay committed.
    let blob = mtls_blob(1);
    let good = signer(0x11);
    let update = b"update-bytes";
    let sig = good.sign_update(b"something else");
    let b = body(
        &ResponseParts {
            tc_uri: Some("wss://lns:7"),
            tc_cred: Some(&blob),
            sig: Some(SigRef {
                key_crc: sig.key_crc(),
                der: sig.der(),
            }),
            update_len: update.len() as u32,
            ..Default::default()
        },
        update,
    );
    let store = home().with(FileId::SigKey(0), good.public_key().0.to_vec());
    let mut st = station(store);
    let (_, ev) = interact(&mut st, 200, &b);
    assert!(has(
        &ev,
        StationEvent::ConfigCommitted {
            cups: false,
            tc: true
        }
    ));
    assert!(has(
        &ev,
        StationEvent::UpdateRejected {
            reason: UpdateReject::NotVerified { tried: 1 }
        }
    ));
    assert!(has(
        &ev,
        StationEvent::TcRestart {
            uri: true,
            cred: true
        }
    ));
    assert_eq!(
        st.store().get(tc(FileSet::Reg, CredFile::Uri)),
        Some(&b"wss://lns:7"[..])
    );
    assert_eq!(st.cred_crc(CredKind::Tc), cups_core::crc::crc32(&blob));
    assert!(!st.store().contains(FileId::Update));

    // The same segments, but the body breaks at the signature length: nothing committed.
    let mut broken = b.clone();
    let sig_len_at = 1 + 1 + 11 + 2 + 2 + blob.len();
    broken[sig_len_at..sig_len_at + 4].copy_from_slice(&133u32.to_le_bytes());
    let mut st = station(home());
    let (_, ev) = interact(&mut st, 200, &broken);
    assert!(matches!(
        outcome(&ev),
        StationEvent::InteractionFailed {
            reason: FailReason::Protocol,
            ..
        }
    ));
    assert!(!ev.iter().any(|e| matches!(
        e,
        StationEvent::ConfigCommitted { .. } | StationEvent::TcRestart { .. }
    )));
    assert!(!st.store().contains(tc(FileSet::Reg, CredFile::Uri)));
    assert_eq!(st.cred_crc(CredKind::Tc), EMPTY_SET_CRC);

    // Cut inside the update: committed at the update start, update not received, failure.
    let cut = &b[..b.len() - 3];
    let mut st = station(home());
    let (_, ev) = interact(&mut st, 200, cut);
    assert!(has(
        &ev,
        StationEvent::ConfigCommitted {
            cups: false,
            tc: true
        }
    ));
    assert!(matches!(
        outcome(&ev),
        StationEvent::InteractionFailed {
            reason: FailReason::Protocol,
            ..
        }
    ));
    assert_eq!(
        st.store().get(tc(FileSet::Reg, CredFile::Uri)),
        Some(&b"wss://lns:7"[..])
    );
    assert!(!st.store().contains(FileId::Update));
}

/// Signature policy: (keys on the station, signature by, expected).
#[test]
fn signature_policy_table() {
    let k0 = signer(0x11);
    let k1 = signer(0x22);
    let update = b"#!/bin/sh\necho hi\n";
    enum Keys {
        None,
        K0,
        K0K1,
        Short0K1,
        Empty0,
    }
    #[derive(Debug, PartialEq)]
    enum Want {
        Run(Option<u8>),
        Reject(UpdateReject),
    }
    let cases: [(Keys, Option<&UpdateSigner>, Want); 8] = [
        (Keys::None, None, Want::Run(None)),
        (
            Keys::K0,
            None,
            Want::Reject(UpdateReject::KeyWithoutSignature),
        ),
        (
            Keys::Empty0,
            None,
            Want::Reject(UpdateReject::KeyWithoutSignature),
        ),
        (Keys::K0, Some(&k0), Want::Run(Some(0))),
        (
            Keys::K0,
            Some(&k1),
            Want::Reject(UpdateReject::NotVerified { tried: 1 }),
        ),
        (Keys::K0K1, Some(&k1), Want::Run(Some(1))),
        (Keys::Short0K1, Some(&k1), Want::Run(Some(1))),
        (
            Keys::None,
            Some(&k0),
            Want::Reject(UpdateReject::NotVerified { tried: 0 }),
        ),
    ];
    for (i, (keys, by, want)) in cases.into_iter().enumerate() {
        let mut store = home();
        match keys {
            Keys::None => {}
            Keys::K0 => store.insert(FileId::SigKey(0), k0.public_key().0.to_vec()),
            Keys::K0K1 => {
                store.insert(FileId::SigKey(0), k0.public_key().0.to_vec());
                store.insert(FileId::SigKey(1), k1.public_key().0.to_vec());
            }
            Keys::Short0K1 => {
                store.insert(FileId::SigKey(0), k1.public_key().0[..32].to_vec());
                store.insert(FileId::SigKey(1), k1.public_key().0.to_vec());
            }
            Keys::Empty0 => store.insert(FileId::SigKey(0), Vec::new()),
        }
        let seg = by.map(|s| s.sign_update(update));
        let b = body(
            &ResponseParts {
                sig: seg.as_ref().map(|s| SigRef {
                    key_crc: s.key_crc(),
                    der: s.der(),
                }),
                update_len: update.len() as u32,
                ..Default::default()
            },
            update,
        );
        let mut st = station(store);
        let (_, ev) = interact(&mut st, 200, &b);
        assert!(
            has(
                &ev,
                StationEvent::UpdateReceived {
                    len: update.len() as u32
                }
            ),
            "case {i}"
        );
        let ran = has(&ev, StationEvent::RunUpdate { at_start: false });
        let got = if ran {
            let idx = ev.iter().find_map(|e| match e {
                StationEvent::UpdateVerified { key_index } => Some(*key_index),
                _ => None,
            });
            if idx.is_none() {
                assert!(has(&ev, StationEvent::UpdateUnsigned), "case {i}");
            }
            Want::Run(idx)
        } else {
            Want::Reject(
                ev.iter()
                    .find_map(|e| match e {
                        StationEvent::UpdateRejected { reason } => Some(*reason),
                        _ => None,
                    })
                    .expect("a rejection"),
            )
        };
        assert_eq!(got, want, "case {i}");
        assert_eq!(
            st.store().contains(FileId::Update),
            ran,
            "case {i}: abort deletes"
        );
        assert_eq!(
            outcome(&ev),
            StationEvent::InteractionDone {
                next_in: OKSYNC,
                cups_changed: false
            },
            "case {i}"
        );
    }
}

#[test]
fn request_reports_keys_until_a_missing_one() {
    let store = home()
        .with(FileId::SigKey(0), vec![1u8; 64])
        .with(FileId::SigKey(1), vec![2u8; 10]) // any length is reported
        .with(FileId::SigKey(3), vec![3u8; 64]); // after a gap: not reported
    let mut st = station(store);
    let _ = connect(&mut st);
    let j = body_json(&request(&mut st));
    let crc = cups_core::crc::crc32;
    assert_eq!(
        j["keys"],
        serde_json::json!([crc(&[1u8; 64]), crc(&[2u8; 10])])
    );
    assert_eq!(j["package"], "1.0.0");
    assert_eq!(j["cupsUri"], "http://reg:1");
    assert_eq!(j["tcUri"], serde_json::Value::Null);
}

#[test]
fn version_limit() {
    let max = cups_core::request::MAX_PACKAGE_LEN;
    for (len, ok) in [(max - 1, true), (max, true), (max + 1, false)] {
        let mut st = station(home().with(FileId::Version, "v".repeat(len) + "\n"));
        let _ = connect(&mut st);
        let mut buf = vec![0u8; 8192];
        let r = st.write_request(&mut buf);
        assert_eq!(r.is_ok(), ok, "{len}");
        if !ok {
            assert_eq!(r, Err(WriteRequestError::PackageTooLong));
            let now = st.poll_timeout().unwrap();
            st.on_error(now, TransportError::Closed);
            assert!(matches!(
                outcome(&drain(&mut st)),
                StationEvent::InteractionFailed {
                    reason: FailReason::Request,
                    ..
                }
            ));
        }
    }
}

#[test]
fn event_queue_limit() {
    // Never drained: the queue holds EVENT_QUEUE_LEN events and counts the rest.
    let mut st = station(home());
    for _ in 0..EVENT_QUEUE_LEN + 3 {
        let (now, _) = connect(&mut st);
        st.on_error(now, TransportError::ConnectFailed);
    }
    assert_eq!(st.dropped_events(), 3);
    assert_eq!(drain(&mut st).len(), EVENT_QUEUE_LEN);
}

#[test]
fn store_failures_are_reported_and_contained() {
    // The temp TC URI cannot be written: nothing is committed at all (UPD_ERROR).
    let mut store = home();
    store.fail(tc(FileSet::Temp, CredFile::Uri), true);
    let b = body(
        &ResponseParts {
            cups_uri: Some("http://n:1"),
            tc_uri: Some("wss://t:1"),
            ..Default::default()
        },
        &[],
    );
    let mut st = station(store);
    let (_, ev) = interact(&mut st, 200, &b);
    assert!(
        ev.iter()
            .any(|e| matches!(e, StationEvent::StoreFailed { .. }))
    );
    assert!(
        !ev.iter()
            .any(|e| matches!(e, StationEvent::ConfigCommitted { .. }))
    );
    assert_eq!(
        st.store().get(cups(FileSet::Reg, CredFile::Uri)),
        Some(&b"http://reg:1"[..])
    );

    // A temp credential file cannot be written: the blob is rejected.
    let mut store = home();
    store.fail(tc(FileSet::Temp, CredFile::Key), true);
    let blob = mtls_blob(5);
    let b = body(
        &ResponseParts {
            tc_cred: Some(&blob),
            ..Default::default()
        },
        &[],
    );
    let mut st = station(store);
    let (_, ev) = interact(&mut st, 200, &b);
    assert!(ev.iter().any(|e| matches!(
        e,
        StationEvent::CredsRejected {
            reason: cups_core::station::CredReject::Store,
            ..
        }
    )));
    assert_eq!(st.cred_crc(CredKind::Tc), EMPTY_SET_CRC);
}

#[test]
fn sig_key_limits() {
    // Keys are tried up to MAX_SIG_KEY_INDEX; the request reports at most MAX_KEYS CRCs.
    use cups_core::request::MAX_KEYS;
    use cups_core::station::MAX_SIG_KEY_INDEX;
    let k = signer(0x33);
    let update = b"u";
    let seg = k.sign_update(update);
    let b = body(
        &ResponseParts {
            sig: Some(SigRef {
                key_crc: seg.key_crc(),
                der: seg.der(),
            }),
            update_len: 1,
            ..Default::default()
        },
        update,
    );
    let mut store = home();
    for i in 0..MAX_SIG_KEY_INDEX {
        store.insert(FileId::SigKey(i), vec![i; 64]);
    }
    store.insert(FileId::SigKey(MAX_SIG_KEY_INDEX), k.public_key().0.to_vec());
    let mut st = station(store.clone());
    let (_, ev) = interact(&mut st, 200, &b);
    assert!(has(
        &ev,
        StationEvent::UpdateVerified {
            key_index: MAX_SIG_KEY_INDEX
        }
    ));

    for (n, reported) in [
        (MAX_KEYS - 1, MAX_KEYS - 1),
        (MAX_KEYS, MAX_KEYS),
        (MAX_KEYS + 1, MAX_KEYS),
    ] {
        let mut store = home();
        for i in 0..n {
            store.insert(FileId::SigKey(i as u8), vec![i as u8 + 1; 64]);
        }
        let mut st = station(store);
        let _ = connect(&mut st);
        let j = body_json(&request(&mut st));
        assert_eq!(j["keys"].as_array().unwrap().len(), reported, "{n} keys");
    }
}
