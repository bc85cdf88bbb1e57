//! Property tests of the planner: over random requests, records, catalogues, server keys and
//! policies, the plan never sends a URI whose canonical form equals the reported one, never
//! sends credentials whose CRC equals the reported one, `is_nothing()` holds iff no segment is
//! sent, and every plan encodes.

use cups_core::Eui64;
use cups_core::crc::{EMPTY_SET_CRC, crc32};
use cups_core::request::UpdateInfo;
use cups_core::response::{CredKind, NO_CHANGE, Segment, encode_head};
use cups_host_server::model::{
    CredSlot, CupsAuth, FirmwareMeta, FirmwareSignature, GatewayRecord, IssuedCred, PreviousCred,
    TcMode,
};
use cups_host_server::planner::{
    Action, Defaults, Policy, Reason, canonical_uri, plan, plan_summary_json,
};
use proptest::prelude::*;
use serde_json::{Value, json};
use time::OffsetDateTime;

const EUI: u64 = 0x0016_c001_ff10_a235;
/// Key CRCs drawn from (three "real" ones and noise).
const KEYS: [u32; 4] = [1_238_727_903, 670_110_180, 42, 7];

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).expect("time")
}

/// A URI drawn from a few servers, written in equivalent and different ways, or junk.
fn uri(schemes: &'static [&'static str]) -> impl Strategy<Value = String> {
    let host = prop::sample::select(vec![
        "localhost",
        "LocalHost",
        "cups.example.com",
        "[::1]",
        "[0::1]",
        "10.0.0.1",
    ]);
    let port = prop::sample::select(vec!["16140", "016140", "443", "0443", "1", "0", ""]);
    let slash = prop::sample::select(vec!["", "", "/", "/path"]);
    let scheme = prop::sample::select(schemes.to_vec());
    let upper = any::<bool>();
    prop_oneof![
        8 => (scheme, upper, host, port, slash).prop_map(|(s, up, h, p, sl)| {
            let s = if up { s.to_uppercase() } else { s.to_owned() };
            if p.is_empty() { format!("{s}://{h}{sl}") } else { format!("{s}://{h}:{p}{sl}") }
        }),
        1 => "[ -~]{0,40}",
        1 => Just(String::new()),
    ]
}

fn opt_uri(schemes: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    prop_oneof![3 => uri(schemes).prop_map(Some), 1 => Just(None)]
}

const CUPS: &[&str] = &["https", "http", "wss"];
const TC: &[&str] = &["wss", "ws", "https"];

fn blob() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        10 => prop::collection::vec(any::<u8>(), 1..48),
        1 => Just(Vec::new()),
    ]
}

fn cred_slot() -> impl Strategy<Value = Option<CredSlot>> {
    let slot = (blob(), any::<bool>(), prop::option::of(any::<u32>())).prop_map(
        |(blob, stored_ok, previous)| CredSlot {
            current: IssuedCred {
                crc: if stored_ok { crc32(&blob) } else { 0 },
                blob,
                not_after: None,
                serial: None,
                token_sha256: None,
                issued_at: at(0),
                confirmed_at: None,
            },
            previous: previous.map(|crc| PreviousCred {
                crc,
                serial: None,
                token_sha256: None,
                not_after: None,
            }),
            renew_requested: false,
        },
    );
    prop_oneof![5 => slot.prop_map(Some), 1 => Just(None)]
}

/// A reported CRC: the blob's, the previous blob's, the empty set's, or anything.
fn reported_crc(slot: &Option<CredSlot>, pick: u8, noise: u32) -> u32 {
    match (pick % 4, slot) {
        (0, Some(s)) => crc32(&s.current.blob),
        (
            1,
            Some(CredSlot {
                previous: Some(p), ..
            }),
        ) => p.crc,
        (2, _) => EMPTY_SET_CRC,
        _ => noise,
    }
}

/// A key CRC, mostly one of the two "real" ones.
fn key() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => prop::sample::select(KEYS[..2].to_vec()),
        1 => prop::sample::select(KEYS.to_vec()),
    ]
}

fn version() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["1.0.0", "2.0.0", "3.0.0"]).prop_map(str::to_owned)
}

fn der_hex() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => (4usize..=128).prop_map(|n| "30".repeat(n)),
        1 => (129usize..140).prop_map(|n| "30".repeat(n)),
        1 => Just("not hex".to_owned()),
        1 => Just(String::new()),
    ]
}

fn firmware() -> impl Strategy<Value = FirmwareMeta> {
    (
        "[a-z]{1,4}",
        prop::sample::select(vec!["linux", "linux", "linux", "linux", "rpi", "Linux"]),
        version(),
        prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(version(), 1..3)],
        prop_oneof![1 => Just(0u64), 10 => 1u64..1000, 1 => Just(1u64 << 31)],
        prop::collection::vec((key(), der_hex()), 0..4),
        0i64..5,
    )
        .prop_map(
            |(id, model, version, from, len, sigs, created)| FirmwareMeta {
                id,
                model: model.to_owned(),
                version,
                from_versions: from,
                len,
                sha512_hex: String::new(),
                signatures: sigs
                    .into_iter()
                    .map(|(key_crc, der_hex)| FirmwareSignature { key_crc, der_hex })
                    .collect(),
                created_at: at(created),
            },
        )
}

#[derive(Debug)]
struct Case {
    body: Vec<u8>,
    record: GatewayRecord,
    defaults: Defaults,
    firmware: Vec<FirmwareMeta>,
    server_keys: Vec<u32>,
    policy: Policy,
}

fn case() -> impl Strategy<Value = Case> {
    let request = (
        opt_uri(CUPS),
        opt_uri(TC),
        (any::<u8>(), any::<u32>(), any::<u8>(), any::<u32>()),
        prop::sample::select(vec!["linux", "linux", "linux", "rpi"]),
        prop::option::of(version()),
        prop::collection::vec(key(), 0..3),
        prop::sample::select(vec![EUI, EUI, EUI, 1]),
    );
    let record = (opt_uri(CUPS), opt_uri(TC), cred_slot(), cred_slot());
    let server = (
        (uri(CUPS), uri(TC)),
        prop::collection::vec(firmware(), 0..5),
        prop_oneof![4 => prop::collection::vec(key(), 1..3), 1 => Just(Vec::new())],
        any::<bool>(),
    );
    (request, record, server).prop_map(
        |(
            (cups_uri, tc_uri, (cpick, cnoise, tpick, tnoise), model, package, keys, router),
            (rec_cups_uri, rec_tc_uri, cups_cred, tc_cred),
            ((def_cups, def_tc), mut firmware, server_keys, allow_unsigned),
        )| {
            // Ids are unique in a catalogue (they are store keys); the id order is random.
            let n = firmware.len();
            for (i, f) in firmware.iter_mut().enumerate() {
                f.id = format!("{}-{}", f.id, (i * 7) % n.max(1));
            }
            let body = json!({
                "router": format!("{router:016x}"),
                "cupsUri": cups_uri,
                "tcUri": tc_uri,
                "cupsCredCrc": reported_crc(&cups_cred, cpick, cnoise),
                "tcCredCrc": reported_crc(&tc_cred, tpick, tnoise),
                "station": "2.0.6(linux/testsim) 2026-11-26 17:38:27",
                "model": model,
                "package": package,
                "keys": keys,
            });
            let eui = Eui64::new(EUI).expect("eui");
            let mut record =
                GatewayRecord::new(eui, CupsAuth::ClientCert, TcMode::ClientCert, at(0));
            record.cups_uri = rec_cups_uri;
            record.tc_uri = rec_tc_uri;
            record.cups_cred = cups_cred;
            record.tc_cred = tc_cred;
            Case {
                body: serde_json::to_vec(&body).expect("json"),
                record,
                defaults: Defaults {
                    cups_uri: def_cups,
                    tc_uri: def_tc,
                },
                firmware,
                server_keys,
                policy: Policy { allow_unsigned },
            }
        },
    )
}

fn slot_of(record: &GatewayRecord, kind: CredKind) -> Option<&CredSlot> {
    match kind {
        CredKind::Cups => record.cups_cred.as_ref(),
        CredKind::Tc => record.tc_cred.as_ref(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn plan_invariants(c in case()) {
        let req = UpdateInfo::decode(&c.body).expect("generated request decodes");
        let p = plan(&req, &c.record, &c.defaults, &c.firmware, &c.server_keys, c.policy);

        // URIs: never one whose canonical form equals the reported one; always canonical.
        for (segment, reported) in [(Segment::CupsUri, req.cups_uri), (Segment::TcUri, req.tc_uri)] {
            if let Some(target) = p.uri(segment) {
                prop_assert_eq!(canonical_uri(target), Ok(target.to_owned()));
                if let Some(reported) = reported {
                    let reported = reported.to_string();
                    prop_assert_ne!(canonical_uri(&reported), Ok(target.to_owned()));
                }
            }
        }

        // Credentials: never a blob whose CRC the gateway reports; always the record's blob.
        for (kind, reported) in [(CredKind::Cups, req.cups_cred_crc), (CredKind::Tc, req.tc_cred_crc)] {
            if let Some(target) = p.cred_crc(kind) {
                prop_assert_ne!(target, reported);
                let slot = slot_of(&c.record, kind).expect("sent creds come from the record");
                prop_assert_eq!(target, crc32(&slot.current.blob));
            } else if req.router == c.record.eui
                && let Some(slot) = slot_of(&c.record, kind)
                && !slot.current.blob.is_empty()
            {
                prop_assert_eq!(reported, crc32(&slot.current.blob));
            }
        }

        // Updates: the model matches, the version differs, the key is shared.
        if let Action::Send(Reason::UpdateAvailable { to, firmware_id, key_crc, .. }) = p.action(Segment::Update) {
            let fw = c.firmware.iter().find(|f| &f.id == firmware_id).expect("from the catalogue");
            prop_assert!(req.model.eq_str(&fw.model));
            prop_assert_eq!(&fw.version, to);
            prop_assert!(req.package.is_none_or(|pkg| !pkg.eq_str(to)));
            match key_crc {
                Some(k) => {
                    prop_assert!(req.keys.contains(k) && c.server_keys.contains(k));
                    // The first usable key in the request's order.
                    let first = req.keys.iter().position(|x| x == k).expect("in keys");
                    for earlier in &req.keys[..first] {
                        let usable = c.server_keys.contains(earlier)
                            && fw.signatures.iter().any(|s| s.key_crc == *earlier
                                && hex::decode(&s.der_hex).is_ok_and(|d| (4..=128).contains(&d.len())));
                        prop_assert!(!usable, "key {earlier} comes first and is usable");
                    }
                }
                None => prop_assert!(req.keys.is_empty() && c.policy.allow_unsigned),
            }
        } else {
            prop_assert!(p.update().is_none());
        }
        prop_assert_eq!(
            p.action(Segment::Sig).is_send(),
            p.update().is_some_and(|u| u.sig.is_some())
        );

        // Nothing iff no segment is sent; then the response is NO_CHANGE.
        let sent = p.segments().iter().filter(|s| s.action.is_send()).count();
        prop_assert_eq!(p.is_nothing(), sent == 0);
        prop_assert_eq!(p.sent().count(), sent);
        if req.router != c.record.eui {
            prop_assert!(p.is_nothing());
        }

        // Every plan encodes.
        let parts = p.response_parts(&c.record).expect("parts from the planned record");
        let mut head = vec![0u8; 4096];
        let encoded = encode_head(&parts, &mut head).expect("plan encodes");
        if p.is_nothing() {
            prop_assert_eq!(&head[..encoded.head_len], NO_CHANGE.as_slice());
        }

        // Operator output never panics and matches.
        let json: Value = plan_summary_json(&p);
        prop_assert_eq!(json["nothing"].as_bool(), Some(p.is_nothing()));
        prop_assert_eq!(p.to_string().lines().count(), 1 + 6 + p.notes().len());
    }

    #[test]
    fn canonical_uri_is_idempotent_and_case_blind(s in "[ -~]{0,60}") {
        if let Ok(c) = canonical_uri(&s) {
            prop_assert!(c.len() <= 127);
            prop_assert_eq!(canonical_uri(&c), Ok(c.clone()));
            prop_assert_eq!(canonical_uri(&s.to_ascii_uppercase()), Ok(c.clone()));
        }
    }

    #[test]
    fn canonical_uri_never_panics(s in any::<String>()) {
        let _ = canonical_uri(&s);
    }
}
