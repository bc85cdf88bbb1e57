//! Table tests of the planner: one row per rule and edge, fed with the real station request
//! bodies from the golden vectors (decoded with `UpdateInfo::decode`) and the vectors' blobs,
//! signatures and key CRCs.
//!
//! Run in a worktree with `CUPS_VECTORS=/work/shared/vectors`; missing vectors fail.

use std::path::PathBuf;

use cups_core::Eui64;
use cups_core::crc::{EMPTY_SET_CRC, crc32};
use cups_core::request::UpdateInfo;
use cups_core::response::{CredKind, NO_CHANGE, ResponseParts, Segment, encode_full};
use cups_host_server::model::{
    CredSlot, CupsAuth, FirmwareMeta, FirmwareSignature, GatewayRecord, IssuedCred, PreviousCred,
    TcMode,
};
use cups_host_server::planner::{
    Action, Defaults, KeepReason, MAX_URI_INPUT_LEN, Note, PartsError, Plan, Policy, Reason,
    UriError, WithheldReason, canonical_cups_uri, canonical_tc_uri, canonical_uri, plan,
    plan_summary_json,
};
use serde_json::{Value, json};
use time::OffsetDateTime;

// ---------------------------------------------------------------------------------------------
// Fixtures from the golden vectors
// ---------------------------------------------------------------------------------------------

const EUI: u64 = 0x0016_c001_ff10_a235;
const SIG0: u32 = 1_238_727_903;
const SIG1: u32 = 670_110_180;
const CUPS_BLOB_CRC: u32 = 2_154_168_768;
const TC_BLOB_CRC: u32 = 1_976_249_288;
const PEM_CUPS_CRC: u32 = 122_040_733;
const CUPS_URI: &str = "https://localhost:16140";
const TC_URI: &str = "wss://localhost:16138";

fn vectors_dir() -> PathBuf {
    std::env::var_os("CUPS_VECTORS").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors")),
        PathBuf::from,
    )
}

fn vector(rel: &str) -> Vec<u8> {
    let path = vectors_dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "missing golden vector {} ({e}); set CUPS_VECTORS",
            path.display()
        )
    })
}

fn vector_json(rel: &str) -> Value {
    serde_json::from_slice(&vector(rel)).expect("vector manifest is JSON")
}

fn request_body(name: &str) -> Vec<u8> {
    vector(&format!("requests/{name}.json"))
}

/// A request body: a vector's, with fields replaced.
fn request_with(name: &str, changes: Value) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&request_body(name)).expect("request JSON");
    for (k, val) in changes.as_object().expect("object").clone() {
        v[k] = val;
    }
    serde_json::to_vec(&v).expect("encode")
}

fn mtls_blob(usage: &str) -> Vec<u8> {
    let ca = vector("pki/ca.crt.der");
    let cert = vector(&format!("pki/{usage}-0016c001ff10a235.crt.der"));
    let key = vector(&format!("pki/{usage}-0016c001ff10a235.key.der"));
    let mut out = vec![0; ca.len() + cert.len() + key.len()];
    let n = cups_core::cred::build_mtls(&ca, &cert, &key, &mut out).expect("build");
    out.truncate(n);
    out
}

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).expect("time")
}

fn issued(blob: Vec<u8>) -> IssuedCred {
    IssuedCred {
        crc: crc32(&blob),
        blob,
        not_after: None,
        serial: None,
        token_sha256: None,
        issued_at: at(0),
        confirmed_at: None,
    }
}

fn slot(blob: Vec<u8>) -> Option<CredSlot> {
    Some(CredSlot {
        current: issued(blob),
        previous: None,
        renew_requested: false,
    })
}

/// The vectors' gateway with the vectors' two mTLS blobs (CRCs 2154168768 / 1976249288).
fn record() -> GatewayRecord {
    let eui = Eui64::new(EUI).expect("eui");
    let mut r = GatewayRecord::new(eui, CupsAuth::ClientCert, TcMode::ClientCert, at(0));
    r.cups_cred = slot(mtls_blob("cups"));
    r.tc_cred = slot(mtls_blob("tc"));
    r
}

fn defaults() -> Defaults {
    Defaults {
        cups_uri: CUPS_URI.to_owned(),
        tc_uri: TC_URI.to_owned(),
    }
}

/// full.bin's signature by sig-0 over full.bin's update script.
fn sig0_der_hex() -> String {
    vector_json("responses/full.json")["decoded"]["sig"]["signature_hex"]
        .as_str()
        .expect("signature_hex")
        .to_owned()
}

/// sig1-signed.bin's signature by sig-1.
fn sig1_der_hex() -> String {
    vector_json("responses/sig1-signed.json")["decoded"]["sig"]["signature_hex"]
        .as_str()
        .expect("signature_hex")
        .to_owned()
}

fn fw(id: &str, model: &str, version: &str, from: &[&str], created: i64) -> FirmwareMeta {
    FirmwareMeta {
        id: id.to_owned(),
        model: model.to_owned(),
        version: version.to_owned(),
        from_versions: from.iter().map(|s| (*s).to_owned()).collect(),
        len: 114,
        sha512_hex: String::new(),
        signatures: vec![FirmwareSignature {
            key_crc: SIG0,
            der_hex: sig0_der_hex(),
        }],
        created_at: at(created),
    }
}

fn with_sigs(mut f: FirmwareMeta, sigs: &[(u32, String)]) -> FirmwareMeta {
    f.signatures = sigs
        .iter()
        .map(|(key_crc, der_hex)| FirmwareSignature {
            key_crc: *key_crc,
            der_hex: der_hex.clone(),
        })
        .collect();
    f
}

/// The catalogue of the `full` scenario: linux 2.0.0 signed with sig-0.
fn catalogue() -> Vec<FirmwareMeta> {
    vec![fw("linux-2.0.0", "linux", "2.0.0", &[], 0)]
}

fn run(
    body: &[u8],
    record: &GatewayRecord,
    defaults: &Defaults,
    firmware: &[FirmwareMeta],
    keys: &[u32],
    policy: Policy,
) -> Plan {
    let req = UpdateInfo::decode(body).expect("request decodes");
    plan(&req, record, defaults, firmware, keys, policy)
}

/// The serde reason tag of each segment, in body order.
fn tags(plan: &Plan) -> Vec<String> {
    plan_summary_json(plan)["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|s| {
            let action = s["action"].as_str().expect("action");
            let reason = s["reason"].as_str().expect("reason");
            format!("{action}:{reason}")
        })
        .collect()
}

fn note_tags(plan: &Plan) -> Vec<String> {
    plan_summary_json(plan)["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .map(|n| {
            let note = n["note"].as_str().expect("note").to_owned();
            match n["reason"]["kind"].as_str() {
                Some(kind) => format!("{note}:{kind}"),
                None => note,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

struct Row {
    name: &'static str,
    body: Vec<u8>,
    record: GatewayRecord,
    defaults: Defaults,
    firmware: Vec<FirmwareMeta>,
    keys: Vec<u32>,
    policy: Policy,
    /// `action:reason` per segment: cupsUri, tcUri, cupsCred, tcCred, sig, update.
    expect: [&'static str; 6],
    /// `note[:kind]` of every note, in order.
    notes: &'static [&'static str],
    /// Extra typed checks.
    check: fn(&Plan),
}

fn row(name: &'static str, body: Vec<u8>, expect: [&'static str; 6]) -> Row {
    Row {
        name,
        body,
        record: record(),
        defaults: defaults(),
        firmware: catalogue(),
        keys: vec![SIG0, SIG1],
        policy: Policy::default(),
        expect,
        notes: &[],
        check: |_| {},
    }
}

const SAME: &str = "keep:uri-same";
const UNKNOWN: &str = "send:uri-unknown";
const DIFFERS: &str = "send:uri-differs";
const CRED_SAME: &str = "keep:cred-same";
const CRED_DIFFERS: &str = "send:cred-crc-differs";
const NO_UPDATE: &str = "keep:no-update";
const SIGNED: &str = "send:signature";
const UPDATE: &str = "send:update-available";
const UP_TO_DATE: &str = "keep:up-to-date";
const NO_FIRMWARE: &str = "keep:no-firmware";
const WITHHELD: &str = "keep:withheld";

fn update_of(plan: &Plan) -> (String, Option<u32>, Option<String>, String) {
    match plan.action(Segment::Update) {
        Action::Send(Reason::UpdateAvailable {
            from,
            to,
            firmware_id,
            key_crc,
        }) => (firmware_id.clone(), *key_crc, from.clone(), to.clone()),
        other => panic!("no update sent: {other:?}"),
    }
}

#[allow(clippy::too_many_lines)]
fn rows() -> Vec<Row> {
    let steady = || request_body("steady-state");
    vec![
        // --- the vectors as captured ---
        Row {
            notes: &["update-withheld:unsigned-not-allowed"],
            check: |p| {
                assert_eq!(
                    p.action(Segment::CupsCred),
                    &Action::Send(Reason::CredCrcDiffers {
                        reported: PEM_CUPS_CRC,
                        target: CUPS_BLOB_CRC
                    })
                );
                assert_eq!(
                    p.action(Segment::TcCred),
                    &Action::Send(Reason::CredCrcDiffers {
                        reported: EMPTY_SET_CRC,
                        target: TC_BLOB_CRC
                    })
                );
                assert_eq!(
                    p.action(Segment::TcUri),
                    &Action::Send(Reason::UriUnknown {
                        target: TC_URI.to_owned()
                    })
                );
            },
            ..row(
                "first-contact: PEM creds + empty TC set -> both blobs; null tcUri -> sent; no keys -> withheld",
                request_body("first-contact"),
                [
                    SAME,
                    UNKNOWN,
                    CRED_DIFFERS,
                    CRED_DIFFERS,
                    NO_UPDATE,
                    WITHHELD,
                ],
            )
        },
        Row {
            policy: Policy {
                allow_unsigned: true,
            },
            check: |p| {
                assert_eq!(
                    update_of(p),
                    ("linux-2.0.0".into(), None, None, "2.0.0".into())
                );
                assert!(p.update().is_some_and(|u| u.sig.is_none() && u.len == 114));
            },
            ..row(
                "first-contact, unsigned allowed: null package -> unsigned update",
                request_body("first-contact"),
                [
                    SAME,
                    UNKNOWN,
                    CRED_DIFFERS,
                    CRED_DIFFERS,
                    "keep:unsigned",
                    UPDATE,
                ],
            )
        },
        Row {
            check: |p| {
                assert_eq!(
                    update_of(p),
                    (
                        "linux-2.0.0".into(),
                        Some(SIG0),
                        Some("1.0.0".into()),
                        "2.0.0".into()
                    )
                );
            },
            ..row(
                "with-version-sigkey: 1.0.0 + sig-0 -> signed update 2.0.0",
                request_body("with-version-sigkey"),
                [SAME, UNKNOWN, CRED_DIFFERS, CRED_DIFFERS, SIGNED, UPDATE],
            )
        },
        Row {
            check: |p| {
                assert!(p.is_nothing());
                assert_eq!(
                    p.action(Segment::CupsCred),
                    &Action::Keep(KeepReason::CredSame { crc: CUPS_BLOB_CRC })
                );
            },
            ..row(
                "steady-state: everything reported -> nothing",
                steady(),
                [SAME, SAME, CRED_SAME, CRED_SAME, NO_UPDATE, UP_TO_DATE],
            )
        },
        Row {
            firmware: vec![],
            ..row(
                "steady-state, empty catalogue -> nothing",
                steady(),
                [SAME, SAME, CRED_SAME, CRED_SAME, NO_UPDATE, NO_FIRMWARE],
            )
        },
        // --- URIs ---
        row(
            "case, leading-zero port and trailing slash are the same URI",
            request_with(
                "steady-state",
                json!({"cupsUri": "HTTPS://LocalHost:016140/", "tcUri": "WSS://LOCALHOST:00016138"}),
            ),
            [SAME, SAME, CRED_SAME, CRED_SAME, NO_UPDATE, UP_TO_DATE],
        ),
        Row {
            defaults: Defaults {
                cups_uri: "HTTPS://LOCALHOST:016140".into(),
                tc_uri: "wss://LocalHost:16138/".into(),
            },
            ..row(
                "non-canonical targets equal the reported canonical URIs",
                steady(),
                [SAME, SAME, CRED_SAME, CRED_SAME, NO_UPDATE, UP_TO_DATE],
            )
        },
        Row {
            check: |p| {
                assert_eq!(
                    p.uri(Segment::CupsUri),
                    Some("https://cups.example.com:443")
                );
                assert_eq!(
                    p.action(Segment::CupsUri),
                    &Action::Send(Reason::UriDiffers {
                        reported: CUPS_URI.into(),
                        target: "https://cups.example.com:443".into()
                    })
                );
            },
            ..row(
                "record URI overrides the default; sent in canonical form",
                steady(),
                [DIFFERS, SAME, CRED_SAME, CRED_SAME, NO_UPDATE, UP_TO_DATE],
            )
        }
        .with_record(|r| r.cups_uri = Some("https://CUPS.example.com:0443".into())),
        row(
            "different port, host or scheme -> sent",
            request_with(
                "steady-state",
                json!({"cupsUri": "http://localhost:16140", "tcUri": "wss://localhost:16139"}),
            ),
            [
                DIFFERS, DIFFERS, CRED_SAME, CRED_SAME, NO_UPDATE, UP_TO_DATE,
            ],
        ),
        row(
            "null cupsUri -> sent",
            request_with("steady-state", json!({"cupsUri": null})),
            [UNKNOWN, SAME, CRED_SAME, CRED_SAME, NO_UPDATE, UP_TO_DATE],
        ),
        row(
            "reported URIs without canonical form (path, no port) -> sent",
            request_with(
                "steady-state",
                json!({"cupsUri": "https://localhost:16140/x", "tcUri": "wss://localhost"}),
            ),
            [
                DIFFERS, DIFFERS, CRED_SAME, CRED_SAME, NO_UPDATE, UP_TO_DATE,
            ],
        ),
        Row {
            defaults: Defaults {
                cups_uri: "https://[::1]:443".into(),
                tc_uri: "wss://[2001:DB8::0001]:6000".into(),
            },
            ..row(
                "IPv6 literals compare in RFC 5952 form, brackets kept",
                request_with(
                    "steady-state",
                    json!({"cupsUri": "https://[0:0:0::0001]:0443", "tcUri": "wss://[2001:db8:0:0::1]:6000/"}),
                ),
                [SAME, SAME, CRED_SAME, CRED_SAME, NO_UPDATE, UP_TO_DATE],
            )
        },
        Row {
            defaults: Defaults {
                cups_uri: String::new(),
                tc_uri: String::new(),
            },
            ..row(
                "no target configured -> keep, even for null",
                request_with("steady-state", json!({"tcUri": null})),
                [
                    "keep:no-target",
                    "keep:no-target",
                    CRED_SAME,
                    CRED_SAME,
                    NO_UPDATE,
                    UP_TO_DATE,
                ],
            )
        },
        Row {
            defaults: Defaults {
                cups_uri: "https://localhost".into(),
                tc_uri: "https://localhost:16138".into(),
            },
            notes: &["target-uri-invalid", "target-uri-invalid"],
            check: |p| {
                assert!(matches!(
                    p.notes(),
                    [
                        Note::TargetUriInvalid {
                            error: UriError::MissingPort,
                            ..
                        },
                        Note::TargetUriInvalid {
                            error: UriError::BadScheme,
                            ..
                        }
                    ]
                ));
            },
            ..row(
                "unsendable targets (no port; CUPS scheme for TC) -> keep + note",
                request_with("steady-state", json!({"tcUri": null})),
                [
                    "keep:target-invalid",
                    "keep:target-invalid",
                    CRED_SAME,
                    CRED_SAME,
                    NO_UPDATE,
                    UP_TO_DATE,
                ],
            )
        },
        // --- credentials ---
        row(
            "only the TC CRC differs -> only tcCred",
            request_with("steady-state", json!({"tcCredCrc": EMPTY_SET_CRC})),
            [SAME, SAME, CRED_SAME, CRED_DIFFERS, NO_UPDATE, UP_TO_DATE],
        ),
        Row {
            notes: &[
                "credentials-missing",
                "update-withheld:unsigned-not-allowed",
            ],
            ..row(
                "record without TC creds -> keep + note",
                request_body("first-contact"),
                [
                    SAME,
                    UNKNOWN,
                    CRED_DIFFERS,
                    "keep:no-credentials",
                    NO_UPDATE,
                    WITHHELD,
                ],
            )
        }
        .with_record(|r| r.tc_cred = None),
        Row {
            check: |p| {
                assert_eq!(
                    p.action(Segment::CupsCred),
                    &Action::Send(Reason::CredRotationPending {
                        reported: CUPS_BLOB_CRC,
                        target: crc32(b"renewed blob")
                    })
                );
            },
            ..row(
                "renewed blob, gateway still on the previous one -> rotation pending",
                steady(),
                [
                    SAME,
                    SAME,
                    "send:cred-rotation-pending",
                    CRED_SAME,
                    NO_UPDATE,
                    UP_TO_DATE,
                ],
            )
        }
        .with_record(|r| {
            let slot = r.cups_cred.as_mut().expect("slot");
            slot.previous = Some(PreviousCred {
                crc: slot.current.crc,
                serial: None,
                token_sha256: None,
                not_after: None,
            });
            slot.current = issued(b"renewed blob".to_vec());
        }),
        Row {
            notes: &["stored-crc-mismatch"],
            ..row(
                "stored CRC disagrees with the blob -> crc32(blob) decides, noted",
                steady(),
                [SAME, SAME, CRED_SAME, CRED_SAME, NO_UPDATE, UP_TO_DATE],
            )
        }
        .with_record(|r| r.cups_cred.as_mut().expect("slot").current.crc = 7),
        Row {
            notes: &["credential-unsendable"],
            ..row(
                "empty blob in the record -> keep + note",
                steady(),
                [
                    SAME,
                    SAME,
                    CRED_SAME,
                    "keep:cred-unsendable",
                    NO_UPDATE,
                    UP_TO_DATE,
                ],
            )
        }
        .with_record(|r| r.tc_cred.as_mut().expect("slot").current.blob.clear()),
        // --- updates: keys ---
        Row {
            firmware: vec![with_sigs(
                fw("linux-2.0.0", "linux", "2.0.0", &[], 0),
                &[(SIG0, sig0_der_hex()), (SIG1, sig1_der_hex())],
            )],
            check: |p| assert_eq!(update_of(p).1, Some(SIG0)),
            ..row(
                "two-sigkeys, both signatures -> first key in the request's order (sig-0)",
                request_body("two-sigkeys"),
                [SAME, UNKNOWN, CRED_DIFFERS, CRED_DIFFERS, SIGNED, UPDATE],
            )
        },
        Row {
            firmware: vec![with_sigs(
                fw("linux-2.0.0", "linux", "2.0.0", &[], 0),
                &[(SIG0, sig0_der_hex()), (SIG1, sig1_der_hex())],
            )],
            check: |p| {
                assert_eq!(update_of(p).1, Some(SIG1));
                assert_eq!(
                    p.action(Segment::Sig),
                    &Action::Send(Reason::Signature {
                        key_crc: SIG1,
                        firmware_id: "linux-2.0.0".into()
                    })
                );
            },
            ..row(
                "keys in reverse order -> sig-1",
                request_with("two-sigkeys", json!({"keys": [SIG1, SIG0]})),
                [SAME, UNKNOWN, CRED_DIFFERS, CRED_DIFFERS, SIGNED, UPDATE],
            )
        },
        Row {
            firmware: vec![with_sigs(
                fw("linux-2.0.0", "linux", "2.0.0", &[], 0),
                &[(SIG1, sig1_der_hex())],
            )],
            check: |p| assert_eq!(update_of(p).1, Some(SIG1)),
            ..row(
                "image signed only by sig-1 -> sig-1 (second key of the request)",
                request_body("two-sigkeys"),
                [SAME, UNKNOWN, CRED_DIFFERS, CRED_DIFFERS, SIGNED, UPDATE],
            )
        },
        Row {
            keys: vec![SIG1],
            firmware: vec![with_sigs(
                fw("linux-2.0.0", "linux", "2.0.0", &[], 0),
                &[(SIG0, sig0_der_hex()), (SIG1, sig1_der_hex())],
            )],
            check: |p| assert_eq!(update_of(p).1, Some(SIG1)),
            ..row(
                "server no longer has sig-0 -> sig-1",
                request_body("two-sigkeys"),
                [SAME, UNKNOWN, CRED_DIFFERS, CRED_DIFFERS, SIGNED, UPDATE],
            )
        },
        Row {
            notes: &["update-withheld:no-matching-key"],
            check: |p| {
                assert!(matches!(
                    &p.notes()[0],
                    Note::UpdateWithheld {
                        reason: WithheldReason::NoMatchingKey { gateway_keys, signed_with },
                        ..
                    } if gateway_keys == &[12345] && signed_with == &[SIG0]
                ));
            },
            ..row(
                "gateway keys unknown to the server -> withheld",
                request_with("with-version-sigkey", json!({"keys": [12345]})),
                [
                    SAME,
                    UNKNOWN,
                    CRED_DIFFERS,
                    CRED_DIFFERS,
                    NO_UPDATE,
                    WITHHELD,
                ],
            )
        },
        Row {
            policy: Policy {
                allow_unsigned: true,
            },
            firmware: vec![with_sigs(fw("linux-2.0.0", "linux", "2.0.0", &[], 0), &[])],
            notes: &["update-withheld:no-matching-key"],
            ..row(
                "unsigned image to a gateway with keys -> withheld (it would abort)",
                request_body("with-version-sigkey"),
                [
                    SAME,
                    UNKNOWN,
                    CRED_DIFFERS,
                    CRED_DIFFERS,
                    NO_UPDATE,
                    WITHHELD,
                ],
            )
        },
        Row {
            keys: vec![SIG1],
            notes: &["update-withheld:no-matching-key"],
            ..row(
                "gateway key is not a server signing key -> withheld",
                request_body("with-version-sigkey"),
                [
                    SAME,
                    UNKNOWN,
                    CRED_DIFFERS,
                    CRED_DIFFERS,
                    NO_UPDATE,
                    WITHHELD,
                ],
            )
        },
        Row {
            firmware: vec![with_sigs(
                fw("linux-2.0.0", "linux", "2.0.0", &[], 0),
                &[(SIG0, "zz".into()), (SIG1, sig1_der_hex())],
            )],
            check: |p| assert_eq!(update_of(p).1, Some(SIG1)),
            ..row(
                "a malformed stored signature is skipped for the next key",
                request_body("two-sigkeys"),
                [SAME, UNKNOWN, CRED_DIFFERS, CRED_DIFFERS, SIGNED, UPDATE],
            )
        },
        Row {
            firmware: vec![with_sigs(
                fw("linux-2.0.0", "linux", "2.0.0", &[], 0),
                &[(SIG0, "30".repeat(129))],
            )],
            notes: &["update-withheld:bad-signature"],
            ..row(
                "the only usable signature is too long for the segment -> withheld",
                request_body("with-version-sigkey"),
                [
                    SAME,
                    UNKNOWN,
                    CRED_DIFFERS,
                    CRED_DIFFERS,
                    NO_UPDATE,
                    WITHHELD,
                ],
            )
        },
        // --- updates: versions, models, catalogue ---
        Row {
            firmware: vec![
                fw("linux-1.0.0", "linux", "1.0.0", &[], 0),
                fw("linux-2.0.0", "linux", "2.0.0", &[], 10),
            ],
            ..row(
                "version equal to the newest -> nothing (older entry never offered)",
                steady(),
                [SAME, SAME, CRED_SAME, CRED_SAME, NO_UPDATE, UP_TO_DATE],
            )
        },
        Row {
            firmware: vec![
                fw("linux-2.0.0", "linux", "2.0.0", &[], 0),
                fw("linux-1.0.0", "linux", "1.0.0", &[], 10),
            ],
            check: |p| assert_eq!(update_of(p).3, "1.0.0"),
            ..row(
                "rollback: the newest entry is older software -> offered",
                steady(),
                [SAME, SAME, CRED_SAME, CRED_SAME, SIGNED, UPDATE],
            )
        },
        Row {
            firmware: vec![
                fw("linux-2.0.0", "linux", "2.0.0", &[], 0),
                fw("linux-3.0.0", "linux", "3.0.0", &[], 20),
                fw("linux-2.5.0", "linux", "2.5.0", &[], 10),
            ],
            check: |p| assert_eq!(update_of(p).0, "linux-3.0.0"),
            ..row(
                "several entries -> the newest created_at",
                request_body("with-version-sigkey"),
                [SAME, UNKNOWN, CRED_DIFFERS, CRED_DIFFERS, SIGNED, UPDATE],
            )
        },
        Row {
            firmware: vec![
                fw("linux-b", "linux", "3.0.0", &[], 10),
                fw("linux-c", "linux", "3.1.0", &[], 10),
                fw("linux-a", "linux", "2.0.0", &[], 10),
            ],
            check: |p| assert_eq!(update_of(p).0, "linux-c"),
            ..row(
                "same created_at -> the greatest id (deterministic)",
                request_body("with-version-sigkey"),
                [SAME, UNKNOWN, CRED_DIFFERS, CRED_DIFFERS, SIGNED, UPDATE],
            )
        },
        Row {
            firmware: vec![
                fw("linux-2.0.0", "linux", "2.0.0", &["1.0.0"], 0),
                fw("linux-3.0.0", "linux", "3.0.0", &["2.0.0"], 10),
            ],
            check: |p| assert_eq!(update_of(p).0, "linux-2.0.0"),
            ..row(
                "from_versions chain: 1.0.0 gets 2.0.0 (3.0.0 is only from 2.0.0)",
                request_body("with-version-sigkey"),
                [SAME, UNKNOWN, CRED_DIFFERS, CRED_DIFFERS, SIGNED, UPDATE],
            )
        },
        Row {
            firmware: vec![
                fw("linux-2.0.0", "linux", "2.0.0", &["1.0.0"], 0),
                fw("linux-3.0.0", "linux", "3.0.0", &["2.0.0"], 10),
            ],
            check: |p| assert_eq!(update_of(p).0, "linux-3.0.0"),
            ..row(
                "from_versions chain: 2.0.0 gets 3.0.0",
                steady(),
                [SAME, SAME, CRED_SAME, CRED_SAME, SIGNED, UPDATE],
            )
        },
        Row {
            firmware: vec![
                fw("linux-2.0.0", "linux", "2.0.0", &["1.0.0"], 0),
                fw("linux-3.0.0", "linux", "3.0.0", &["2.0.0"], 10),
            ],
            ..row(
                "from_versions chain: 3.0.0 (the newest) -> nothing, no note",
                request_with("steady-state", json!({"package": "3.0.0"})),
                [SAME, SAME, CRED_SAME, CRED_SAME, NO_UPDATE, NO_FIRMWARE],
            )
        },
        Row {
            firmware: vec![fw("linux-2.0.0", "linux", "2.0.0", &["1.5.0"], 0)],
            notes: &["update-withheld:not-from-version"],
            ..row(
                "from_versions excludes the reported package -> withheld note",
                request_body("with-version-sigkey"),
                [
                    SAME,
                    UNKNOWN,
                    CRED_DIFFERS,
                    CRED_DIFFERS,
                    NO_UPDATE,
                    NO_FIRMWARE,
                ],
            )
        },
        Row {
            firmware: vec![fw("linux-2.0.0", "linux", "2.0.0", &["1.0.0"], 0)],
            notes: &["update-withheld:not-from-version"],
            policy: Policy {
                allow_unsigned: true,
            },
            ..row(
                "from_versions never matches a null package",
                request_body("first-contact"),
                [
                    SAME,
                    UNKNOWN,
                    CRED_DIFFERS,
                    CRED_DIFFERS,
                    NO_UPDATE,
                    NO_FIRMWARE,
                ],
            )
        },
        row(
            "model mismatch -> no update, no note",
            request_with("with-version-sigkey", json!({"model": "rpi"})),
            [
                SAME,
                UNKNOWN,
                CRED_DIFFERS,
                CRED_DIFFERS,
                NO_UPDATE,
                NO_FIRMWARE,
            ],
        ),
        Row {
            notes: &["update-withheld:model-mismatch"],
            ..row(
                "model differing only in case -> no update, noted",
                request_with("with-version-sigkey", json!({"model": "Linux"})),
                [
                    SAME,
                    UNKNOWN,
                    CRED_DIFFERS,
                    CRED_DIFFERS,
                    NO_UPDATE,
                    NO_FIRMWARE,
                ],
            )
        },
        Row {
            firmware: vec![fw("x", "linux", "2.0.0", &[], 0).with_len(0)],
            notes: &["update-withheld:empty-image"],
            ..row(
                "empty image -> withheld",
                request_body("with-version-sigkey"),
                [
                    SAME,
                    UNKNOWN,
                    CRED_DIFFERS,
                    CRED_DIFFERS,
                    NO_UPDATE,
                    WITHHELD,
                ],
            )
        },
        Row {
            firmware: vec![fw("x", "linux", "2.0.0", &[], 0).with_len(1 << 31)],
            notes: &["update-withheld:image-too-large"],
            ..row(
                "image of 2^31 bytes -> withheld",
                request_body("with-version-sigkey"),
                [
                    SAME,
                    UNKNOWN,
                    CRED_DIFFERS,
                    CRED_DIFFERS,
                    NO_UPDATE,
                    WITHHELD,
                ],
            )
        },
        Row {
            firmware: vec![fw("x", "linux", "2.0.0", &[], 0).with_len((1 << 31) - 1)],
            ..row(
                "image of 2^31 - 1 bytes -> sent",
                request_body("with-version-sigkey"),
                [SAME, UNKNOWN, CRED_DIFFERS, CRED_DIFFERS, SIGNED, UPDATE],
            )
        },
        // --- identity ---
        Row {
            notes: &["router-mismatch"],
            ..row(
                "request router is another gateway -> nothing at all",
                request_with("first-contact", json!({"router": "::1"})),
                [
                    "keep:router-mismatch",
                    "keep:router-mismatch",
                    "keep:router-mismatch",
                    "keep:router-mismatch",
                    "keep:router-mismatch",
                    "keep:router-mismatch",
                ],
            )
        },
    ]
}

trait FwExt {
    fn with_len(self, len: u64) -> Self;
}

impl FwExt for FirmwareMeta {
    fn with_len(mut self, len: u64) -> Self {
        self.len = len;
        self
    }
}

impl Row {
    fn with_record(mut self, f: impl FnOnce(&mut GatewayRecord)) -> Self {
        f(&mut self.record);
        self
    }
}

#[test]
fn table() {
    let rows = rows();
    let mut failures = Vec::new();
    for r in &rows {
        let p = run(
            &r.body,
            &r.record,
            &r.defaults,
            &r.firmware,
            &r.keys,
            r.policy,
        );
        let got = tags(&p);
        let notes = note_tags(&p);
        if got != r.expect || notes != r.notes {
            failures.push(format!(
                "{}:\n  segments expected {:?}\n                got {:?}\n  notes expected {:?}\n             got {:?}\n{p}",
                r.name, r.expect, got, r.notes, notes
            ));
            continue;
        }
        // Invariants of every row.
        assert_eq!(p.is_nothing(), p.sent().next().is_none(), "{}", r.name);
        assert_eq!(
            p.action(Segment::Sig).is_send(),
            p.update().is_some_and(|u| u.sig.is_some()),
            "{}",
            r.name
        );
        let parts = p.response_parts(&r.record).expect(r.name);
        if p.is_nothing() {
            assert_eq!(parts, ResponseParts::default(), "{}", r.name);
        }
        let update = vec![0u8; parts.update_len.min(1 << 20) as usize];
        if update.len() == parts.update_len as usize {
            let mut out = vec![0u8; 8 * 1024 + update.len()];
            encode_full(&parts, &update, &mut out).expect(r.name);
        } else {
            cups_core::response::head_len(&parts).expect(r.name);
        }
        (r.check)(&p);
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------------
// End to end with the vectors' response bodies
// ---------------------------------------------------------------------------------------------

/// The `full` scenario: the planned response for `with-version-sigkey` is byte for byte
/// `full.bin` without its redundant cupsUri segment (full.bin resends the URI the station
/// already holds; the planner never does).
#[test]
fn with_version_sigkey_encodes_to_full_bin_minus_the_same_cups_uri() {
    let full = vector("responses/full.bin");
    let manifest = vector_json("responses/full.json");
    let update_layout = &manifest["layout"][5];
    let update_at = update_layout["length_field_offset"]
        .as_u64()
        .expect("offset") as usize
        + 4;
    let update = &full[update_at..];
    assert_eq!(update.len(), 114);

    let rec = record();
    let p = run(
        &request_body("with-version-sigkey"),
        &rec,
        &defaults(),
        &catalogue(),
        &[SIG0],
        Policy::default(),
    );
    let parts = p.response_parts(&rec).expect("parts");
    let mut out = vec![0u8; 4096];
    let n = encode_full(&parts, update, &mut out).expect("encode");

    let cups_uri_len = usize::from(full[0]);
    let mut expected = vec![0u8];
    expected.extend_from_slice(&full[1 + cups_uri_len..]);
    assert_eq!(&out[..n], expected.as_slice());
}

#[test]
fn steady_state_encodes_to_nochange_bin() {
    let rec = record();
    let p = run(
        &request_body("steady-state"),
        &rec,
        &defaults(),
        &catalogue(),
        &[SIG0],
        Policy::default(),
    );
    assert!(p.is_nothing());
    let parts = p.response_parts(&rec).expect("parts");
    let mut out = [0u8; 64];
    let n = encode_full(&parts, &[], &mut out).expect("encode");
    assert_eq!(&out[..n], NO_CHANGE.as_slice());
    assert_eq!(&out[..n], vector("responses/nochange.bin").as_slice());
}

#[test]
fn vector_blobs_have_the_vector_crcs() {
    assert_eq!(crc32(&mtls_blob("cups")), CUPS_BLOB_CRC);
    assert_eq!(crc32(&mtls_blob("tc")), TC_BLOB_CRC);
}

#[test]
fn response_parts_refuses_a_record_whose_blob_changed() {
    let rec = record();
    let p = run(
        &request_body("first-contact"),
        &rec,
        &defaults(),
        &catalogue(),
        &[SIG0],
        Policy::default(),
    );
    let mut changed = rec.clone();
    changed.tc_cred.as_mut().expect("slot").current = issued(b"other".to_vec());
    assert_eq!(
        p.response_parts(&changed),
        Err(PartsError::CredentialsChanged {
            kind: CredKind::Tc,
            planned: TC_BLOB_CRC,
            actual: crc32(b"other"),
        })
    );
    let mut gone = rec;
    gone.cups_cred = None;
    assert_eq!(
        p.response_parts(&gone),
        Err(PartsError::CredentialsMissing {
            kind: CredKind::Cups
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Display and JSON: operator text, no secrets
// ---------------------------------------------------------------------------------------------

#[test]
fn display_has_one_line_per_segment_and_no_secret() {
    let token = "cups-golden-token-0016c001ff10a235";
    let ca = vector("pki/ca.crt.der");
    let lines = format!("Authorization: Bearer {token}\r\n");
    let mut blob = vec![0u8; 2048];
    let n = cups_core::cred::build_token(&ca, lines.as_bytes(), &mut blob).expect("token blob");
    blob.truncate(n);
    // The token-tc.bin vector's blob: the station reported exactly this CRC after storing it.
    assert_eq!(crc32(&blob), 3_593_082_989);
    let mut rec = record();
    rec.tc_cred = slot(blob.clone());

    let p = run(
        &request_body("with-version-sigkey"),
        &rec,
        &defaults(),
        &catalogue(),
        &[SIG0],
        Policy::default(),
    );
    let text = p.to_string();
    let json = plan_summary_json(&p).to_string();
    eprintln!("{text}\n{json}");

    assert_eq!(text.lines().count(), 7, "{text}");
    assert!(text.starts_with("plan for 0016c001ff10a235: send 5 of 6 segments"));
    for seg in Segment::ALL {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(seg.name())),
            "{seg}"
        );
    }
    assert!(text.contains("0x49D57CDF"), "{text}");
    assert!(
        text.contains("2077607535 (0x7BD5C66F, empty set)"),
        "{text}"
    );
    assert!(text.contains("linux-2.0.0"), "{text}");

    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &blob);
    let sig_hex = sig0_der_hex();
    for out in [&text, &json] {
        assert!(!out.contains(token), "token leaked: {out}");
        assert!(!out.contains("Bearer"), "token leaked: {out}");
        assert!(!out.contains(&b64[..40]), "blob leaked: {out}");
        assert!(!out.contains(&sig_hex[..40]), "signature in output: {out}");
        assert!(
            !out.to_lowercase().contains(&hex::encode(&ca[..32])),
            "blob leaked"
        );
    }
}

#[test]
fn summary_json_shape() {
    let rec = record();
    let p = run(
        &request_body("with-version-sigkey"),
        &rec,
        &defaults(),
        &catalogue(),
        &[SIG0],
        Policy::default(),
    );
    let v = plan_summary_json(&p);
    assert_eq!(v["router"], "0016c001ff10a235");
    assert_eq!(v["nothing"], false);
    assert_eq!(
        v["sent"],
        json!(["tcUri", "cupsCred", "tcCred", "sig", "update"])
    );
    assert_eq!(
        v["segments"][0],
        json!({"segment": "cupsUri", "action": "keep", "reason": "uri-same", "uri": CUPS_URI})
    );
    assert_eq!(
        v["segments"][2],
        json!({"segment": "cupsCred", "action": "send", "reason": "cred-crc-differs",
               "reported": PEM_CUPS_CRC, "target": CUPS_BLOB_CRC})
    );
    assert_eq!(
        v["segments"][4],
        json!({"segment": "sig", "action": "send", "reason": "signature",
               "key_crc": SIG0, "firmware_id": "linux-2.0.0"})
    );
    assert_eq!(
        v["segments"][5],
        json!({"segment": "update", "action": "send", "reason": "update-available",
               "from": "1.0.0", "to": "2.0.0", "firmware_id": "linux-2.0.0", "key_crc": SIG0})
    );
    assert_eq!(v["notes"], json!([]));

    let first = run(
        &request_body("first-contact"),
        &rec,
        &defaults(),
        &catalogue(),
        &[SIG0],
        Policy::default(),
    );
    let v = plan_summary_json(&first);
    assert_eq!(
        v["notes"],
        json!([{"note": "update-withheld", "firmware_id": "linux-2.0.0", "version": "2.0.0",
                "reason": {"kind": "unsigned-not-allowed"}}])
    );

    let steady = run(
        &request_body("steady-state"),
        &rec,
        &defaults(),
        &catalogue(),
        &[SIG0],
        Policy::default(),
    );
    assert_eq!(plan_summary_json(&steady)["nothing"], true);
    assert_eq!(plan_summary_json(&steady)["sent"], json!([]));
    assert!(
        steady
            .to_string()
            .starts_with("plan for 0016c001ff10a235: nothing to send (14-byte no-change body)")
    );
}

// ---------------------------------------------------------------------------------------------
// canonical_uri
// ---------------------------------------------------------------------------------------------

#[test]
fn canonical_uri_table() {
    let ok: &[(&str, &str)] = &[
        ("https://localhost:16140", "https://localhost:16140"),
        ("HTTPS://LocalHost:16140", "https://localhost:16140"),
        ("https://localhost:016140", "https://localhost:16140"),
        (
            "https://localhost:00000000016140",
            "https://localhost:16140",
        ),
        ("https://localhost:16140/", "https://localhost:16140"),
        ("http://a:1", "http://a:1"),
        ("wss://LNS.Example.COM:65535", "wss://lns.example.com:65535"),
        ("WS://h_1-2.x:80/", "ws://h_1-2.x:80"),
        ("https://[::1]:443", "https://[::1]:443"),
        ("https://[0:0:0:0:0:0:0:1]:443", "https://[::1]:443"),
        ("https://[2001:DB8::A]:443", "https://[2001:db8::a]:443"),
        (
            "https://[::ffff:127.0.0.1]:443",
            "https://[::ffff:127.0.0.1]:443",
        ),
        ("https://127.0.0.1:443", "https://127.0.0.1:443"),
    ];
    for (input, want) in ok {
        assert_eq!(canonical_uri(input).as_deref(), Ok(*want), "{input}");
        // Idempotent.
        assert_eq!(canonical_uri(want).as_deref(), Ok(*want), "{want}");
    }
    let bad: &[(&str, UriError)] = &[
        ("", UriError::Empty),
        ("localhost:443", UriError::BadScheme),
        ("ftp://localhost:21", UriError::BadScheme),
        ("https:/localhost:443", UriError::BadScheme),
        ("https://:443", UriError::EmptyHost),
        ("https://[]:443", UriError::EmptyHost),
        ("https://localhost", UriError::MissingPort),
        ("https://localhost/", UriError::MissingPort),
        ("https://localhost:", UriError::BadPort),
        ("https://localhost:0", UriError::BadPort),
        ("https://localhost:000", UriError::BadPort),
        ("https://localhost:65536", UriError::BadPort),
        ("https://localhost:99999999999999999999", UriError::BadPort),
        ("https://localhost:+443", UriError::BadPort),
        ("https://localhost:443/x", UriError::HasPath { at: 21 }),
        ("https://localhost:443//", UriError::HasPath { at: 21 }),
        ("https://[::1:443", UriError::BadHost { at: 8 }),
        ("https://[::g]:443", UriError::BadHost { at: 9 }),
        ("https://[::1]443", UriError::MissingPort),
        ("https://user@host:443", UriError::BadHost { at: 12 }),
        (
            "https://local host:443",
            UriError::BadByte { at: 13, byte: b' ' },
        ),
        (
            "https://localhost:443\n",
            UriError::BadByte {
                at: 21,
                byte: b'\n',
            },
        ),
    ];
    for (input, want) in bad {
        assert_eq!(canonical_uri(input), Err(*want), "{input:?}");
    }
}

#[test]
fn canonical_uri_length_limits() {
    // The canonical form must fit the station's 127 bytes: at, below and above.
    let prefix = "https://";
    let suffix = ":1";
    let host = |n: usize| "a".repeat(n);
    let fill = 127 - prefix.len() - suffix.len();
    let at = format!("{prefix}{}{suffix}", host(fill));
    assert_eq!(at.len(), 127);
    assert_eq!(canonical_uri(&at).as_deref(), Ok(at.as_str()));
    let below = format!("{prefix}{}{suffix}", host(fill - 1));
    assert!(canonical_uri(&below).is_ok());
    let above = format!("{prefix}{}{suffix}", host(fill + 1));
    assert_eq!(canonical_uri(&above), Err(UriError::TooLong { len: 128 }));
    // Non-canonical input longer than 127 whose canonical form fits is accepted ...
    let padded = format!("{prefix}{}:{}1/", host(fill), "0".repeat(20));
    assert!(padded.len() > 127);
    assert_eq!(canonical_uri(&padded).as_deref(), Ok(at.as_str()));
    // ... up to MAX_URI_INPUT_LEN bytes of input.
    let pad = |n: usize| format!("{prefix}a:{}1", "0".repeat(n));
    let at_input = pad(MAX_URI_INPUT_LEN - "https://a:1".len());
    assert_eq!(at_input.len(), MAX_URI_INPUT_LEN);
    assert_eq!(canonical_uri(&at_input).as_deref(), Ok("https://a:1"));
    let above_input = pad(MAX_URI_INPUT_LEN + 1 - "https://a:1".len());
    assert_eq!(
        canonical_uri(&above_input),
        Err(UriError::TooLong {
            len: MAX_URI_INPUT_LEN + 1
        })
    );
}

#[test]
fn canonical_kind_checks() {
    assert_eq!(
        canonical_cups_uri("HTTPS://h:01").as_deref(),
        Ok("https://h:1")
    );
    assert_eq!(canonical_cups_uri("wss://h:1"), Err(UriError::BadScheme));
    assert_eq!(canonical_tc_uri("WSS://h:01/").as_deref(), Ok("wss://h:1"));
    assert_eq!(canonical_tc_uri("https://h:1"), Err(UriError::BadScheme));
}
