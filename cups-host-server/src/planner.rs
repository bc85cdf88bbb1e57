//! The planner: a pure function from (what the gateway reports, what the server holds) to which
//! response segments to send, each with its reason. No I/O, no clock: table-tested, and shown to
//! operators as a dry run (`cups-server plan`).
//!
//! [`plan`] decides, for each of the six response segments, [`Action::Keep`] or
//! [`Action::Send`], with a typed reason, plus [`Note`]s for what was deliberately not sent.
//! The rules (protocol doc §1–4, architecture "Decisions"):
//!
//! * **URIs** are compared in canonical form ([`canonical_uri`]): scheme and host lowercase,
//!   port without leading zeros, one trailing `/` dropped, IPv6 literals in RFC 5952 form inside
//!   their brackets. Equal canonical forms are never resent (a spurious URI segment reconnects
//!   the gateway on every poll); a reported `null` differs from any target. The target is the
//!   record's URI, else the server default; an empty target means "not configured" (keep), a
//!   target that is not sendable is kept and noted.
//! * **Credentials** are sent iff the reported CRC differs from `crc32(blob)` of the record's
//!   current blob. The planner never mints: a record without credentials keeps (and notes it).
//! * **Update**: among the catalogue entries for the gateway's `model` that apply to its
//!   `package` (`from_versions` empty or containing it), the newest (`created_at`, then `id`)
//!   is the target. It is offered iff its version differs from `package` (a `null` package
//!   differs) and it can be verified: signed with the first key, in the order of the request's
//!   `keys`, that is also one of the server's signing keys; a gateway without keys gets an
//!   unsigned update only when [`Policy::allow_unsigned`]. Otherwise it is withheld
//!   ([`Note::UpdateWithheld`]). Choosing the target before comparing versions means an older
//!   entry is never offered to a gateway already on the target (no upgrade/downgrade loops).
//!
//! Nothing here holds or prints a credential blob or a token: a [`Plan`] carries CRCs, URIs,
//! firmware ids and key CRCs, and [`Plan::response_parts`] borrows the blobs from the record
//! only when the response is built.

use std::fmt;
use std::net::Ipv6Addr;

use cups_core::Eui64;
use cups_core::crc::{EMPTY_SET_CRC, crc32};
use cups_core::request::UpdateInfo;
use cups_core::response::encoder::{CUPS_SCHEMES, TC_SCHEMES, check_cups_uri, check_tc_uri};
use cups_core::response::{
    CredKind, KEY_CRC_LEN, MAX_CRED_LEN, MAX_SIG_SEGMENT_LEN, MAX_UPDATE_LEN, MAX_URI_SEGMENT_LEN,
    MIN_SIG_SEGMENT_LEN, ResponseParts, Segment, SigRef,
};
use serde::{Serialize, Serializer};

use crate::model::{CredSlot, FirmwareMeta, GatewayRecord};

pub use cups_core::response::UriError;

/// Longest text [`canonical_uri`] looks at: the longest URI segment the wire format can carry.
/// Anything longer is [`UriError::TooLong`] before any work (the canonical form itself must
/// also fit the station's [`cups_core::response::MAX_URI_LEN`]).
pub const MAX_URI_INPUT_LEN: usize = MAX_URI_SEGMENT_LEN;

/// Separator between scheme and authority.
const SCHEME_SEP: &str = "://";

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

/// The server's configured URIs, used when a gateway record has none of its own.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Defaults {
    /// `CUPS_URI` (`https://host:port`); empty: not configured.
    pub cups_uri: String,
    /// `TC_URI` (`wss://host:port`); empty: not configured.
    pub tc_uri: String,
}

/// Operator policy for updates.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Policy {
    /// Offer unsigned updates to gateways that hold no signing key (they run them unverified).
    /// Off by default.
    pub allow_unsigned: bool,
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/// Why a segment is sent.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Reason {
    /// The gateway reports no URI (`null`); `target` (canonical) is sent.
    UriUnknown {
        /// The canonical URI sent.
        target: String,
    },
    /// The reported URI's canonical form differs from the target's (or the reported URI has
    /// no canonical form).
    UriDiffers {
        /// What the gateway reports, as reported.
        reported: String,
        /// The canonical URI sent.
        target: String,
    },
    /// The reported credential CRC is not `crc32` of the record's current blob.
    CredCrcDiffers {
        /// `cupsCredCrc`/`tcCredCrc` as reported.
        reported: u32,
        /// `crc32(blob)` of the blob sent.
        target: u32,
    },
    /// The gateway still reports the previous blob's CRC: a rotation not yet confirmed.
    CredRotationPending {
        /// The reported CRC (= the previous blob's).
        reported: u32,
        /// `crc32(blob)` of the new blob sent.
        target: u32,
    },
    /// The signature of the update sent.
    Signature {
        /// crc32 of the signing key's raw public key (in the request's `keys`).
        key_crc: u32,
        /// The firmware signed.
        firmware_id: String,
    },
    /// An update is available for the gateway.
    UpdateAvailable {
        /// The reported `package` (`None`: `null`).
        from: Option<String>,
        /// The version the gateway reports after applying it.
        to: String,
        /// The catalogue entry.
        firmware_id: String,
        /// The signing key used (`None`: unsigned, allowed by policy).
        key_crc: Option<u32>,
    },
}

/// Why a segment is kept (length 0 on the wire).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum KeepReason {
    /// Reported and target URIs have the same canonical form.
    UriSame {
        /// The canonical form.
        uri: String,
    },
    /// No target URI configured (record and server default empty).
    NoTarget,
    /// The target URI cannot be sent (see [`Note::TargetUriInvalid`]).
    TargetInvalid,
    /// The reported CRC equals `crc32(blob)`: the gateway has the credentials.
    CredSame {
        /// The CRC.
        crc: u32,
    },
    /// The record holds no credentials of this category (see [`Note::CredentialsMissing`]).
    NoCredentials,
    /// The record's blob cannot be sent (see [`Note::CredentialUnsendable`]).
    CredUnsendable,
    /// No update is sent, so no signature either.
    NoUpdate,
    /// The update is sent unsigned (gateway without keys, allowed by policy).
    Unsigned,
    /// No catalogue entry applies to the gateway's model and package.
    NoFirmware,
    /// The target firmware's version is what the gateway reports.
    UpToDate {
        /// That version.
        version: String,
    },
    /// An update exists but is withheld (see [`Note::UpdateWithheld`]).
    Withheld,
    /// The request's `router` is not the record's EUI: nothing is sent (see
    /// [`Note::RouterMismatch`]).
    RouterMismatch,
}

/// What to do with one segment.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Length 0: the gateway keeps what it has.
    Keep(KeepReason),
    /// The segment is sent.
    Send(Reason),
}

impl Action {
    /// Whether the segment is sent.
    #[must_use]
    pub fn is_send(&self) -> bool {
        matches!(self, Self::Send(_))
    }
}

/// One segment of the plan.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct SegmentPlan {
    /// Which segment.
    #[serde(serialize_with = "ser_segment")]
    pub segment: Segment,
    /// Keep or send, and why.
    #[serde(flatten)]
    pub action: Action,
}

/// Why an update is withheld.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum WithheldReason {
    /// The gateway holds signing keys, but none of them signed this image with a key the
    /// server has (it would abort the update).
    NoMatchingKey {
        /// The request's `keys`.
        gateway_keys: Vec<u32>,
        /// Keys of the image's signatures that are among the server's signing keys.
        signed_with: Vec<u32>,
    },
    /// The gateway holds no signing key and the policy forbids unsigned updates.
    UnsignedNotAllowed,
    /// No entry for the gateway's model; this one looks meant for it (its model differs only
    /// in case, or it names the gateway's package in `from_versions`).
    ModelMismatch {
        /// The gateway's model.
        gateway_model: String,
        /// The entry's model.
        firmware_model: String,
    },
    /// The newest entry for the model is offered only from other versions.
    NotFromVersion {
        /// The entry's `from_versions`.
        from_versions: Vec<String>,
    },
    /// The only signature usable for the gateway is not a DER signature of sendable length.
    BadSignature {
        /// Its key.
        key_crc: u32,
    },
    /// The image is too long for the station (2^31 bytes or more).
    ImageTooLarge {
        /// Its length.
        len: u64,
    },
    /// The image is empty (length 0 means "no update" on the wire).
    EmptyImage,
}

/// Something deliberately not sent, or a record problem, for operators and the audit log.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
#[serde(tag = "note", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Note {
    /// A firmware entry that might have been offered was not.
    UpdateWithheld {
        /// The catalogue entry.
        firmware_id: String,
        /// Its version.
        version: String,
        /// Why.
        reason: WithheldReason,
    },
    /// The record has no credentials of this category (the caller mints before planning).
    CredentialsMissing {
        /// Which category.
        #[serde(serialize_with = "ser_cred_kind")]
        kind: CredKind,
    },
    /// The record's blob is empty or longer than the u16 length prefix allows.
    CredentialUnsendable {
        /// Which category.
        #[serde(serialize_with = "ser_cred_kind")]
        kind: CredKind,
        /// The blob length.
        len: usize,
    },
    /// The record's stored CRC is not `crc32(blob)`; the planner used `crc32(blob)`.
    StoredCrcMismatch {
        /// Which category.
        #[serde(serialize_with = "ser_cred_kind")]
        kind: CredKind,
        /// `IssuedCred::crc`.
        stored: u32,
        /// `crc32(blob)`.
        actual: u32,
    },
    /// The target URI (record or server default) cannot be sent.
    TargetUriInvalid {
        /// `cupsUri` or `tcUri`.
        #[serde(serialize_with = "ser_segment")]
        segment: Segment,
        /// The configured target.
        target: String,
        /// Why it cannot be sent.
        #[serde(serialize_with = "ser_display")]
        error: UriError,
    },
    /// The request's `router` is not the record's EUI; nothing was planned.
    RouterMismatch {
        /// The request's `router`.
        #[serde(serialize_with = "ser_eui")]
        reported: Eui64,
    },
}

/// The signature chosen for an update.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PlannedSig {
    /// crc32 of the signing key's raw public key.
    pub key_crc: u32,
    /// DER ECDSA signature (length checked against the signature segment limits).
    pub der: Vec<u8>,
}

/// The update chosen for the gateway.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PlannedUpdate {
    /// Catalogue entry (`firmware/<id>/image` holds the bytes).
    pub firmware_id: String,
    /// Image length (1..=[`MAX_UPDATE_LEN`]): the `update_len` of the response.
    pub len: u32,
    /// Its signature (`None`: unsigned, allowed by policy).
    pub sig: Option<PlannedSig>,
}

/// Why [`Plan::response_parts`] could not borrow what the plan sends from a record.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartsError {
    /// The plan sends credentials the record no longer holds.
    #[error("the record has no {kind} credentials the plan sends")]
    CredentialsMissing {
        /// Which category.
        kind: CredKind,
    },
    /// The record's blob is not the one planned (its CRC differs).
    #[error("the record's {kind} blob (crc {actual}) is not the planned one (crc {planned})")]
    CredentialsChanged {
        /// Which category.
        kind: CredKind,
        /// CRC planned.
        planned: u32,
        /// `crc32` of the record's blob.
        actual: u32,
    },
}

/// Which segments a gateway receives now, and why. Built by [`plan`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Plan {
    router: Eui64,
    segments: [SegmentPlan; 6],
    notes: Vec<Note>,
    update: Option<PlannedUpdate>,
}

impl Plan {
    /// The gateway planned for (the record's EUI).
    #[must_use]
    pub fn router(&self) -> Eui64 {
        self.router
    }

    /// The six segments in body order.
    #[must_use]
    pub fn segments(&self) -> &[SegmentPlan; 6] {
        &self.segments
    }

    /// The decision for one segment.
    #[must_use]
    pub fn action(&self, segment: Segment) -> &Action {
        // `segments` is in body order, so a segment's position is its index.
        let i = match segment {
            Segment::CupsUri => 0,
            Segment::TcUri => 1,
            Segment::CupsCred => 2,
            Segment::TcCred => 3,
            Segment::Sig => 4,
            Segment::Update => 5,
        };
        &self.segments[i].action
    }

    /// The segments sent, in body order.
    pub fn sent(&self) -> impl Iterator<Item = Segment> + '_ {
        self.segments
            .iter()
            .filter(|s| s.action.is_send())
            .map(|s| s.segment)
    }

    /// Whether nothing is sent: the response is the 14-byte `NO_CHANGE` body.
    #[must_use]
    pub fn is_nothing(&self) -> bool {
        self.segments.iter().all(|s| !s.action.is_send())
    }

    /// Things deliberately not sent, and record problems.
    #[must_use]
    pub fn notes(&self) -> &[Note] {
        &self.notes
    }

    /// The update to stream, if one is sent.
    #[must_use]
    pub fn update(&self) -> Option<&PlannedUpdate> {
        self.update.as_ref()
    }

    /// The canonical URI sent in `segment` (`CupsUri` or `TcUri`), if it is sent.
    #[must_use]
    pub fn uri(&self, segment: Segment) -> Option<&str> {
        match self.action(segment) {
            Action::Send(Reason::UriUnknown { target } | Reason::UriDiffers { target, .. }) => {
                Some(target)
            }
            _ => None,
        }
    }

    /// The CRC of the blob sent in the credential segment of `kind`, if it is sent.
    #[must_use]
    pub fn cred_crc(&self, kind: CredKind) -> Option<u32> {
        match self.action(kind.segment()) {
            Action::Send(
                Reason::CredCrcDiffers { target, .. } | Reason::CredRotationPending { target, .. },
            ) => Some(*target),
            _ => None,
        }
    }

    /// The response to encode with `cups_core::response::encode_head`, borrowing the
    /// credential blobs from `record` (the record planned with: each blob sent is checked to
    /// still have the planned CRC). The update bytes (`update_len` of them, from
    /// [`update`](Self::update)) are streamed after the head. For [`is_nothing`](Self::is_nothing)
    /// plans this is `ResponseParts::default()`, which encodes to the 14-byte `NO_CHANGE`.
    ///
    /// # Errors
    /// [`PartsError`] when the record no longer holds the planned blobs.
    pub fn response_parts<'a>(
        &'a self,
        record: &'a GatewayRecord,
    ) -> Result<ResponseParts<'a>, PartsError> {
        let cred = |kind: CredKind, slot: Option<&'a CredSlot>| -> Result<_, PartsError> {
            let Some(planned) = self.cred_crc(kind) else {
                return Ok(None);
            };
            let slot = slot.ok_or(PartsError::CredentialsMissing { kind })?;
            let blob = slot.current.blob.as_slice();
            let actual = crc32(blob);
            if actual != planned {
                return Err(PartsError::CredentialsChanged {
                    kind,
                    planned,
                    actual,
                });
            }
            Ok(Some(blob))
        };
        Ok(ResponseParts {
            cups_uri: self.uri(Segment::CupsUri),
            tc_uri: self.uri(Segment::TcUri),
            cups_cred: cred(CredKind::Cups, record.cups_cred.as_ref())?,
            tc_cred: cred(CredKind::Tc, record.tc_cred.as_ref())?,
            sig: self
                .update
                .as_ref()
                .and_then(|u| u.sig.as_ref())
                .map(|s| SigRef {
                    key_crc: s.key_crc,
                    der: &s.der,
                }),
            update_len: self.update.as_ref().map_or(0, |u| u.len),
        })
    }
}

impl Serialize for Plan {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let sent: Vec<&str> = self.sent().map(Segment::name).collect();
        let mut st = s.serialize_struct("Plan", 5)?;
        st.serialize_field("router", &self.router.canonical().to_string())?;
        st.serialize_field("nothing", &self.is_nothing())?;
        st.serialize_field("sent", &sent)?;
        st.serialize_field("segments", &self.segments)?;
        st.serialize_field("notes", &self.notes)?;
        st.end()
    }
}

/// The plan as JSON for `--json` CLI output and audit logs: router, whether nothing is sent,
/// the segments sent, each segment's action and reason (URIs, CRCs, firmware id, key CRC) and
/// the notes. Never a blob, a token or a signature.
#[must_use]
pub fn plan_summary_json(plan: &Plan) -> serde_json::Value {
    serde_json::to_value(plan)
        .unwrap_or_else(|e| serde_json::json!({ "error": format!("plan not serializable: {e}") }))
}

// ---------------------------------------------------------------------------------------------
// Canonical URIs
// ---------------------------------------------------------------------------------------------

/// The canonical form of a CUPS or TC URI, which is also the form sent: scheme and host
/// lowercase, IPv6 literals in RFC 5952 form (brackets kept), the port without leading zeros,
/// one trailing `/` dropped: URIs differing only in case, port zero-padding, a trailing `/`
/// or IPv6 notation have the same canonical form. The result passes `check_cups_uri` (`http`/`https`) or `check_tc_uri`
/// (`ws`/`wss`), so it is sendable.
///
/// # Errors
/// [`UriError`] when the URI has no sendable canonical form: not `scheme://host:port` with
/// one of the four schemes, a bad host or port, a path, non-printable bytes, or longer than
/// the station accepts (input above [`MAX_URI_INPUT_LEN`] bytes is refused outright).
pub fn canonical_uri(uri: &str) -> Result<String, UriError> {
    if uri.is_empty() {
        return Err(UriError::Empty);
    }
    if uri.len() > MAX_URI_INPUT_LEN {
        return Err(UriError::TooLong { len: uri.len() });
    }
    if let Some((at, byte)) = uri.bytes().enumerate().find(|(_, c)| !c.is_ascii_graphic()) {
        return Err(UriError::BadByte { at, byte });
    }
    // ASCII from here on: every byte index is a char boundary.
    let (scheme, authority) = uri.split_once(SCHEME_SEP).ok_or(UriError::BadScheme)?;
    let scheme = scheme.to_ascii_lowercase();
    let host_at = scheme.len().saturating_add(SCHEME_SEP.len());

    let (host, after_host) = if let Some(bracketed) = authority.strip_prefix('[') {
        let close = bracketed
            .find(']')
            .ok_or(UriError::BadHost { at: host_at })?;
        let (inner, rest) = bracketed.split_at_checked(close).unwrap_or((bracketed, ""));
        if inner.is_empty() {
            return Err(UriError::EmptyHost);
        }
        let addr: Ipv6Addr = inner.parse().map_err(|_| UriError::BadHost {
            at: host_at.saturating_add(1),
        })?;
        (format!("[{addr}]"), rest.strip_prefix(']').unwrap_or(rest))
    } else {
        let end = authority.find([':', '/']).unwrap_or(authority.len());
        let (host, rest) = authority.split_at_checked(end).unwrap_or((authority, ""));
        if host.is_empty() {
            return Err(UriError::EmptyHost);
        }
        (host.to_ascii_lowercase(), rest)
    };

    let port_text = after_host.strip_prefix(':').ok_or(UriError::MissingPort)?;
    let digits_end = port_text.find('/').unwrap_or(port_text.len());
    let (digits, tail) = port_text
        .split_at_checked(digits_end)
        .unwrap_or((port_text, ""));
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(UriError::BadPort);
    }
    let port: u16 = digits
        .trim_start_matches('0')
        .parse()
        .map_err(|_| UriError::BadPort)?;
    if port == 0 {
        return Err(UriError::BadPort);
    }
    if !(tail.is_empty() || tail == "/") {
        let at = uri.len().saturating_sub(tail.len());
        return Err(UriError::HasPath { at });
    }

    let canonical = format!("{scheme}{SCHEME_SEP}{host}:{port}");
    if CUPS_SCHEMES.contains(&scheme.as_str()) {
        check_cups_uri(&canonical)?;
    } else if TC_SCHEMES.contains(&scheme.as_str()) {
        check_tc_uri(&canonical)?;
    } else {
        return Err(UriError::BadScheme);
    }
    Ok(canonical)
}

/// [`canonical_uri`] of a CUPS URI: the scheme must be `http` or `https`.
///
/// # Errors
/// As [`canonical_uri`]; [`UriError::BadScheme`] for a TC scheme.
pub fn canonical_cups_uri(uri: &str) -> Result<String, UriError> {
    let canonical = canonical_uri(uri)?;
    check_cups_uri(&canonical)?;
    Ok(canonical)
}

/// [`canonical_uri`] of a TC URI: the scheme must be `ws` or `wss`.
///
/// # Errors
/// As [`canonical_uri`]; [`UriError::BadScheme`] for a CUPS scheme.
pub fn canonical_tc_uri(uri: &str) -> Result<String, UriError> {
    let canonical = canonical_uri(uri)?;
    check_tc_uri(&canonical)?;
    Ok(canonical)
}

// ---------------------------------------------------------------------------------------------
// Planning
// ---------------------------------------------------------------------------------------------

/// Plan the response for one request.
///
/// * `req`: the decoded request body;
/// * `record`: the gateway's record, credentials already minted/renewed by the caller (the
///   planner never mints); its EUI must be `req.router`, else nothing is sent;
/// * `defaults`: server URIs for a record without its own;
/// * `firmware`: the update catalogue;
/// * `signing_keys`: CRCs of the server's update-signing keys (raw 64-byte public keys);
/// * `policy`: whether unsigned updates may go to gateways without keys.
#[must_use]
pub fn plan(
    req: &UpdateInfo<'_>,
    record: &GatewayRecord,
    defaults: &Defaults,
    firmware: &[FirmwareMeta],
    signing_keys: &[u32],
    policy: Policy,
) -> Plan {
    let mut notes = Vec::new();
    if req.router != record.eui {
        notes.push(Note::RouterMismatch {
            reported: req.router,
        });
        let keep = |segment| SegmentPlan {
            segment,
            action: Action::Keep(KeepReason::RouterMismatch),
        };
        return Plan {
            router: record.eui,
            segments: Segment::ALL.map(keep),
            notes,
            update: None,
        };
    }

    let cups_uri = plan_uri(
        Segment::CupsUri,
        req.cups_uri.map(|u| u.to_string()),
        record.cups_uri.as_deref().unwrap_or(&defaults.cups_uri),
        &mut notes,
    );
    let tc_uri = plan_uri(
        Segment::TcUri,
        req.tc_uri.map(|u| u.to_string()),
        record.tc_uri.as_deref().unwrap_or(&defaults.tc_uri),
        &mut notes,
    );
    let cups_cred = plan_cred(
        CredKind::Cups,
        req.cups_cred_crc,
        record.cups_cred.as_ref(),
        &mut notes,
    );
    let tc_cred = plan_cred(
        CredKind::Tc,
        req.tc_cred_crc,
        record.tc_cred.as_ref(),
        &mut notes,
    );
    let (sig, update_action, update) = plan_update(req, firmware, signing_keys, policy, &mut notes);

    let seg = |segment, action| SegmentPlan { segment, action };
    Plan {
        router: record.eui,
        segments: [
            seg(Segment::CupsUri, cups_uri),
            seg(Segment::TcUri, tc_uri),
            seg(Segment::CupsCred, cups_cred),
            seg(Segment::TcCred, tc_cred),
            seg(Segment::Sig, sig),
            seg(Segment::Update, update_action),
        ],
        notes,
        update,
    }
}

fn plan_uri(
    segment: Segment,
    reported: Option<String>,
    target: &str,
    notes: &mut Vec<Note>,
) -> Action {
    if target.is_empty() {
        return Action::Keep(KeepReason::NoTarget);
    }
    let checked = if segment == Segment::TcUri {
        canonical_tc_uri(target)
    } else {
        canonical_cups_uri(target)
    };
    let target_canonical = match checked {
        Ok(t) => t,
        Err(error) => {
            notes.push(Note::TargetUriInvalid {
                segment,
                target: target.to_owned(),
                error,
            });
            return Action::Keep(KeepReason::TargetInvalid);
        }
    };
    match reported {
        None => Action::Send(Reason::UriUnknown {
            target: target_canonical,
        }),
        Some(reported) => {
            // A reported URI without a canonical form (even of the other kind) differs.
            if canonical_uri(&reported).is_ok_and(|r| r == target_canonical) {
                Action::Keep(KeepReason::UriSame {
                    uri: target_canonical,
                })
            } else {
                Action::Send(Reason::UriDiffers {
                    reported,
                    target: target_canonical,
                })
            }
        }
    }
}

fn plan_cred(
    kind: CredKind,
    reported: u32,
    slot: Option<&CredSlot>,
    notes: &mut Vec<Note>,
) -> Action {
    let Some(slot) = slot else {
        notes.push(Note::CredentialsMissing { kind });
        return Action::Keep(KeepReason::NoCredentials);
    };
    let blob = &slot.current.blob;
    if blob.is_empty() || blob.len() > MAX_CRED_LEN {
        notes.push(Note::CredentialUnsendable {
            kind,
            len: blob.len(),
        });
        return Action::Keep(KeepReason::CredUnsendable);
    }
    let target = crc32(blob);
    if target != slot.current.crc {
        notes.push(Note::StoredCrcMismatch {
            kind,
            stored: slot.current.crc,
            actual: target,
        });
    }
    if reported == target {
        Action::Keep(KeepReason::CredSame { crc: target })
    } else if slot.previous.as_ref().is_some_and(|p| p.crc == reported) {
        Action::Send(Reason::CredRotationPending { reported, target })
    } else {
        Action::Send(Reason::CredCrcDiffers { reported, target })
    }
}

/// Whether `from_versions` lets the entry be offered to a gateway on `package`.
fn applies_from(entry: &FirmwareMeta, package: Option<&str>) -> bool {
    entry.from_versions.is_empty()
        || package.is_some_and(|p| entry.from_versions.iter().any(|v| v == p))
}

/// The newest entry (by `created_at`, then `id`).
fn newest<'a>(entries: impl Iterator<Item = &'a FirmwareMeta>) -> Option<&'a FirmwareMeta> {
    entries.max_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    })
}

/// `(sig, update, planned)` for the request.
fn plan_update(
    req: &UpdateInfo<'_>,
    firmware: &[FirmwareMeta],
    signing_keys: &[u32],
    policy: Policy,
    notes: &mut Vec<Note>,
) -> (Action, Action, Option<PlannedUpdate>) {
    let no_update = Action::Keep(KeepReason::NoUpdate);
    let model = req.model.to_string();
    let package = req.package.map(|p| p.to_string());
    let package = package.as_deref();

    let same_model = || firmware.iter().filter(|f| f.model == model);
    let Some(target) = newest(same_model().filter(|f| applies_from(f, package))) else {
        note_no_firmware(firmware, &model, package, notes);
        return (no_update, Action::Keep(KeepReason::NoFirmware), None);
    };
    if package == Some(target.version.as_str()) {
        let keep = KeepReason::UpToDate {
            version: target.version.clone(),
        };
        return (no_update, Action::Keep(keep), None);
    }

    let mut withhold = |reason| {
        notes.push(Note::UpdateWithheld {
            firmware_id: target.id.clone(),
            version: target.version.clone(),
            reason,
        });
        (
            Action::Keep(KeepReason::NoUpdate),
            Action::Keep(KeepReason::Withheld),
            None,
        )
    };

    let len = match u32::try_from(target.len) {
        Ok(0) => return withhold(WithheldReason::EmptyImage),
        Ok(len) if len <= MAX_UPDATE_LEN => len,
        _ => return withhold(WithheldReason::ImageTooLarge { len: target.len }),
    };

    let sig = if req.keys.is_empty() {
        if !policy.allow_unsigned {
            return withhold(WithheldReason::UnsignedNotAllowed);
        }
        None
    } else {
        match choose_signature(target, &req.keys, signing_keys) {
            Ok(sig) => Some(sig),
            Err(reason) => return withhold(reason),
        }
    };

    let key_crc = sig.as_ref().map(|s| s.key_crc);
    let sig_action = match key_crc {
        Some(key_crc) => Action::Send(Reason::Signature {
            key_crc,
            firmware_id: target.id.clone(),
        }),
        None => Action::Keep(KeepReason::Unsigned),
    };
    let update_action = Action::Send(Reason::UpdateAvailable {
        from: package.map(str::to_owned),
        to: target.version.clone(),
        firmware_id: target.id.clone(),
        key_crc,
    });
    let planned = PlannedUpdate {
        firmware_id: target.id.clone(),
        len,
        sig,
    };
    (sig_action, update_action, Some(planned))
}

/// The first key in the request's order that the server has and that signed `entry` with a
/// sendable DER signature.
fn choose_signature(
    entry: &FirmwareMeta,
    gateway_keys: &[u32],
    signing_keys: &[u32],
) -> Result<PlannedSig, WithheldReason> {
    let mut bad = None;
    for &key_crc in gateway_keys {
        if !signing_keys.contains(&key_crc) {
            continue;
        }
        // A catalogue may hold several signatures by one key (e.g. re-signed): the first
        // sendable one wins; only if none is sendable is the key's signature "bad".
        let mut by_key = entry
            .signatures
            .iter()
            .filter(|s| s.key_crc == key_crc)
            .peekable();
        if by_key.peek().is_none() {
            continue;
        }
        if let Some(der) = by_key
            .filter_map(|s| hex::decode(&s.der_hex).ok())
            .find(|der| sig_len_ok(der.len()))
        {
            return Ok(PlannedSig { key_crc, der });
        }
        bad = bad.or(Some(key_crc));
    }
    if let Some(key_crc) = bad {
        return Err(WithheldReason::BadSignature { key_crc });
    }
    Err(WithheldReason::NoMatchingKey {
        gateway_keys: gateway_keys.to_vec(),
        signed_with: entry
            .signatures
            .iter()
            .map(|s| s.key_crc)
            .filter(|k| signing_keys.contains(k))
            .collect(),
    })
}

/// Whether a DER signature of `der_len` bytes fits the signature segment limits.
fn sig_len_ok(der_len: usize) -> bool {
    u32::try_from(KEY_CRC_LEN.saturating_add(der_len))
        .is_ok_and(|l| (MIN_SIG_SEGMENT_LEN..=MAX_SIG_SEGMENT_LEN).contains(&l))
}

/// At most one note explaining why no entry applies: the newest entry for the model when
/// `from_versions` excludes it (and it is not what the gateway runs), else, when the catalogue
/// has nothing for the model, the newest entry that looks meant for this gateway but names
/// another model (differs only in case, or names the gateway's package in `from_versions`).
fn note_no_firmware(
    firmware: &[FirmwareMeta],
    model: &str,
    package: Option<&str>,
    notes: &mut Vec<Note>,
) {
    let differs = |f: &FirmwareMeta| package != Some(f.version.as_str());
    let withheld = |f: &FirmwareMeta, reason| Note::UpdateWithheld {
        firmware_id: f.id.clone(),
        version: f.version.clone(),
        reason,
    };
    if let Some(f) = newest(firmware.iter().filter(|f| f.model == model)) {
        if differs(f) {
            notes.push(withheld(
                f,
                WithheldReason::NotFromVersion {
                    from_versions: f.from_versions.clone(),
                },
            ));
        }
        return;
    }
    let meant = |f: &&FirmwareMeta| {
        differs(f)
            && (f.model.eq_ignore_ascii_case(model)
                || package.is_some_and(|p| f.from_versions.iter().any(|v| v == p)))
    };
    if let Some(f) = newest(firmware.iter().filter(meant)) {
        notes.push(withheld(
            f,
            WithheldReason::ModelMismatch {
                gateway_model: model.to_owned(),
                firmware_model: f.model.clone(),
            },
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Display
// ---------------------------------------------------------------------------------------------

/// A CRC as the request shows it, with the hex form stations log.
struct Crc(u32);

impl fmt::Display for Crc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == EMPTY_SET_CRC {
            write!(f, "{} (0x{:08X}, empty set)", self.0, self.0)
        } else {
            write!(f, "{} (0x{:08X})", self.0, self.0)
        }
    }
}

/// An optional reported string (escaped: it comes from the gateway), `null` for `None`.
struct OptStr<'a>(Option<&'a str>);

impl fmt::Display for OptStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, "{}", s.escape_debug()),
            None => f.write_str("null"),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UriUnknown { target } => write!(f, "gateway reports null; target {target}"),
            Self::UriDiffers { reported, target } => {
                // Reported text comes from the gateway: escaped, so it cannot forge log lines.
                write!(
                    f,
                    "reported {} differs from target {target}",
                    reported.escape_debug()
                )
            }
            Self::CredCrcDiffers { reported, target } => write!(
                f,
                "reported CRC {} differs from blob CRC {}",
                Crc(*reported),
                Crc(*target)
            ),
            Self::CredRotationPending { reported, target } => write!(
                f,
                "rotation pending: reported CRC {} is the previous blob's, new blob CRC {}",
                Crc(*reported),
                Crc(*target)
            ),
            Self::Signature {
                key_crc,
                firmware_id,
            } => write!(f, "key 0x{key_crc:08X} signs firmware {firmware_id}"),
            Self::UpdateAvailable {
                from,
                to,
                firmware_id,
                key_crc,
            } => {
                write!(
                    f,
                    "firmware {firmware_id}: package {} -> {to}, ",
                    OptStr(from.as_deref())
                )?;
                match key_crc {
                    Some(k) => write!(f, "signed with key 0x{k:08X}"),
                    None => f.write_str("unsigned (gateway has no keys; policy allows)"),
                }
            }
        }
    }
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UriSame { uri } => write!(f, "same as reported: {uri}"),
            Self::NoTarget => f.write_str("no target URI configured"),
            Self::TargetInvalid => f.write_str("target URI not sendable (see notes)"),
            Self::CredSame { crc } => write!(f, "reported CRC {} is the blob's", Crc(*crc)),
            Self::NoCredentials => f.write_str("no credentials in the record (see notes)"),
            Self::CredUnsendable => f.write_str("record blob not sendable (see notes)"),
            Self::NoUpdate => f.write_str("no update"),
            Self::Unsigned => f.write_str("update sent unsigned"),
            Self::NoFirmware => f.write_str("no firmware for this model and package"),
            Self::UpToDate { version } => write!(f, "up to date ({})", version.escape_debug()),
            Self::Withheld => f.write_str("update withheld (see notes)"),
            Self::RouterMismatch => f.write_str("router is not the record's EUI"),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Keep(r) => write!(f, "keep  {r}"),
            Self::Send(r) => write!(f, "send  {r}"),
        }
    }
}

impl fmt::Display for SegmentPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<9} {}", self.segment.name(), self.action)
    }
}

fn keys_text(keys: &[u32]) -> String {
    if keys.is_empty() {
        return "none".to_owned();
    }
    keys.iter()
        .map(|k| format!("0x{k:08X}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for WithheldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoMatchingKey {
                gateway_keys,
                signed_with,
            } => write!(
                f,
                "no matching key: gateway holds {}, image signed with server keys {}",
                keys_text(gateway_keys),
                keys_text(signed_with)
            ),
            Self::UnsignedNotAllowed => {
                f.write_str("gateway holds no signing key and unsigned updates are not allowed")
            }
            Self::ModelMismatch {
                gateway_model,
                firmware_model,
            } => write!(
                f,
                "model mismatch: gateway is {gateway_model:?}, firmware is for {firmware_model:?}"
            ),
            Self::NotFromVersion { from_versions } => {
                write!(
                    f,
                    "only offered from versions [{}]",
                    from_versions.join(", ")
                )
            }
            Self::BadSignature { key_crc } => {
                write!(
                    f,
                    "stored signature for key 0x{key_crc:08X} is not sendable DER"
                )
            }
            Self::ImageTooLarge { len } => write!(f, "image of {len} bytes is too large"),
            Self::EmptyImage => f.write_str("image is empty"),
        }
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UpdateWithheld {
                firmware_id,
                version,
                reason,
            } => write!(f, "update {firmware_id} ({version}) withheld: {reason}"),
            Self::CredentialsMissing { kind } => {
                write!(
                    f,
                    "no {kind} credentials in the record (mint before planning)"
                )
            }
            Self::CredentialUnsendable { kind, len } => {
                write!(f, "{kind} blob of {len} bytes cannot be sent")
            }
            Self::StoredCrcMismatch {
                kind,
                stored,
                actual,
            } => write!(
                f,
                "{kind} record CRC {} is not crc32(blob) {}; used crc32(blob)",
                Crc(*stored),
                Crc(*actual)
            ),
            Self::TargetUriInvalid {
                segment,
                target,
                error,
            } => write!(f, "{segment} target {target:?} cannot be sent: {error}"),
            Self::RouterMismatch { reported } => write!(
                f,
                "request router {} is not this record's gateway; nothing sent",
                reported.canonical()
            ),
        }
    }
}

impl fmt::Display for Plan {
    /// One header line, one line per segment with its reason, one line per note. URIs, CRCs,
    /// firmware ids and key CRCs only: never a blob, a token or a signature.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sent = self.sent().count();
        write!(f, "plan for {}: ", self.router.canonical())?;
        if sent == 0 {
            f.write_str("nothing to send (14-byte no-change body)")?;
        } else {
            let names: Vec<&str> = self.sent().map(Segment::name).collect();
            write!(f, "send {sent} of 6 segments ({})", names.join(", "))?;
        }
        for s in &self.segments {
            write!(f, "\n  {s}")?;
        }
        for n in &self.notes {
            write!(f, "\n  note: {n}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Serde helpers
// ---------------------------------------------------------------------------------------------

fn ser_segment<S: Serializer>(segment: &Segment, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(segment.name())
}

fn ser_cred_kind<S: Serializer>(kind: &CredKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match kind {
        CredKind::Cups => "cups",
        CredKind::Tc => "tc",
    })
}

fn ser_display<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn ser_eui<S: Serializer>(eui: &Eui64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&eui.canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FirmwareSignature;

    /// Regression (found by `planner_prop`): two signatures by the same key, the first not
    /// sendable: the sendable one is used instead of withholding the update.
    #[test]
    fn duplicate_key_signatures_use_the_sendable_one() {
        let entry = FirmwareMeta {
            id: "fw".into(),
            model: "linux".into(),
            version: "2.0.0".into(),
            from_versions: Vec::new(),
            len: 10,
            sha512_hex: String::new(),
            signatures: vec![
                FirmwareSignature {
                    key_crc: 7,
                    der_hex: "zz".into(),
                },
                FirmwareSignature {
                    key_crc: 7,
                    der_hex: "30".repeat(70),
                },
            ],
            created_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let sig = choose_signature(&entry, &[7], &[7]).expect("the second signature is sendable");
        assert_eq!(sig.der.len(), 70);
        let only_bad = FirmwareMeta {
            signatures: vec![entry.signatures[0].clone()],
            ..entry
        };
        assert!(matches!(
            choose_signature(&only_bad, &[7], &[7]),
            Err(WithheldReason::BadSignature { key_crc: 7 })
        ));
    }

    #[test]
    fn sig_len_limits() {
        // keyCRC (4) + DER must be within 8..=132: DER 4..=128, tested at, below and above.
        assert!(!sig_len_ok(3));
        assert!(sig_len_ok(4));
        assert!(sig_len_ok(5));
        assert!(sig_len_ok(72));
        assert!(sig_len_ok(127));
        assert!(sig_len_ok(128));
        assert!(!sig_len_ok(129));
        assert!(!sig_len_ok(usize::MAX));
    }

    #[test]
    fn action_indexes_match_segments() {
        let keep = |segment| SegmentPlan {
            segment,
            action: Action::Keep(KeepReason::NoUpdate),
        };
        let p = Plan {
            router: Eui64::new(1).expect("eui"),
            segments: Segment::ALL.map(keep),
            notes: Vec::new(),
            update: None,
        };
        for (i, s) in Segment::ALL.into_iter().enumerate() {
            assert_eq!(p.segments()[i].segment, s);
            assert!(std::ptr::eq(p.action(s), &p.segments()[i].action));
        }
    }

    #[test]
    fn reported_text_is_escaped_in_display() {
        let r = Reason::UriDiffers {
            reported: "https://a:1\nplan for ffffffffffffffff: forged".into(),
            target: "https://b:1".into(),
        };
        let text = r.to_string();
        assert_eq!(text.lines().count(), 1, "{text}");
        let u = Reason::UpdateAvailable {
            from: Some("1.0\r\n".into()),
            to: "2.0".into(),
            firmware_id: "x".into(),
            key_crc: None,
        };
        assert_eq!(u.to_string().lines().count(), 1);
    }
}
