//! What the server stores: one record per gateway, the token index, firmware metadata.
//! All records are JSON in the store (see [`crate::store::keys`] for the key layout).
//!
//! Records hold credential blobs, which contain private keys and tokens: the filesystem store
//! writes every object with mode 0600 and nothing here is ever logged.

use std::collections::BTreeMap;

use cups_core::Eui64;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// How a gateway authenticates to this CUPS server.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CupsAuth {
    /// A client certificate issued by the gateway CA (CN/SAN = the EUI).
    ClientCert,
    /// An `Authorization: Bearer` token (stored here only as a hash in the token index).
    Token,
}

/// What credentials a gateway gets for its LNS (TC) connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TcMode {
    /// Client certificate + key issued by the gateway CA.
    ClientCert,
    /// A bearer token sent as `Authorization: Bearer ...`.
    Token,
    /// Server authentication only (trust certificate, nothing else).
    ServerAuth,
}

/// One credential blob issued to a gateway, with what the server needs to decide resends and
/// rotation.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct IssuedCred {
    /// The blob exactly as sent (base64 in JSON). Passed `cups_core::cred::check_station_safe`.
    #[serde(with = "b64")]
    pub blob: Vec<u8>,
    /// `crc32(blob)`: what the station reports once it stored the blob.
    pub crc: u32,
    /// Client certificate expiry (None for token / server-auth forms).
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub not_after: Option<OffsetDateTime>,
    /// Client certificate serial, hex (None for token / server-auth forms).
    #[serde(default)]
    pub serial: Option<String>,
    /// For token forms: SHA-256 hex of the token (the index key); the token itself is only in
    /// the blob.
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// When this blob was minted.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// When the gateway first reported `crc` (rotation confirmed); None until then.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub confirmed_at: Option<OffsetDateTime>,
}

/// The credential set previously sent, kept until the gateway reports the new CRC.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PreviousCred {
    /// CRC of the previous blob.
    pub crc: u32,
    /// Serial of the previous client certificate (still accepted for authentication until
    /// the rotation is confirmed).
    #[serde(default)]
    pub serial: Option<String>,
    /// Previous token hash (still accepted until the rotation is confirmed).
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// Its expiry.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub not_after: Option<OffsetDateTime>,
}

/// The credentials of one category (CUPS or TC) of a gateway.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CredSlot {
    /// What is (to be) on the gateway now.
    pub current: IssuedCred,
    /// What was there before the last rotation, until it is confirmed.
    #[serde(default)]
    pub previous: Option<PreviousCred>,
    /// An operator asked for fresh credentials (`cups-server gateway renew`): the gateway's
    /// next request mints a new `current` (the old one kept as `previous`), which clears
    /// this. Records written before the field existed read as `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub renew_requested: bool,
}

/// One registered gateway.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct GatewayRecord {
    /// The gateway EUI (stored as 16 lowercase hex digits).
    #[serde(with = "eui_hex")]
    pub eui: Eui64,
    /// How it authenticates to CUPS.
    pub cups_auth: CupsAuth,
    /// What it gets for the LNS.
    pub tc_mode: TcMode,
    /// CUPS URI to send it (None: the server's configured `CUPS_URI`).
    #[serde(default)]
    pub cups_uri: Option<String>,
    /// TC URI to send it (None: the server's configured `TC_URI`).
    #[serde(default)]
    pub tc_uri: Option<String>,
    /// Free-form labels (operator's).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Issued CUPS credentials (None until first minted).
    #[serde(default)]
    pub cups_cred: Option<CredSlot>,
    /// Issued TC credentials (None until first minted).
    #[serde(default)]
    pub tc_cred: Option<CredSlot>,
    /// When the gateway first authenticated with its own (non-bootstrap) credentials: from
    /// then on, bootstrap access for this EUI is closed.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub own_creds_used_at: Option<OffsetDateTime>,
    /// Registration time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl GatewayRecord {
    /// A freshly registered gateway with no credentials yet.
    #[must_use]
    pub fn new(eui: Eui64, cups_auth: CupsAuth, tc_mode: TcMode, now: OffsetDateTime) -> Self {
        Self {
            eui,
            cups_auth,
            tc_mode,
            cups_uri: None,
            tc_uri: None,
            labels: BTreeMap::new(),
            cups_cred: None,
            tc_cred: None,
            own_creds_used_at: None,
            created_at: now,
        }
    }

    /// Whether bootstrap credentials may still be honoured for this gateway.
    #[must_use]
    pub fn bootstrap_open(&self) -> bool {
        self.own_creds_used_at.is_none()
    }
}

/// Token index entry: `tokens/<sha256 hex>` → which gateway (and which use) it belongs to.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct TokenEntry {
    /// The gateway the token belongs to.
    #[serde(with = "eui_hex")]
    pub eui: Eui64,
    /// Whether it authenticates to CUPS or is the LNS token.
    pub usage: TokenUsage,
}

/// What a token is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenUsage {
    /// Authenticates the gateway to CUPS.
    Cups,
    /// Sent to the LNS (not accepted by CUPS).
    Tc,
}

/// One signature over a firmware image.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct FirmwareSignature {
    /// crc32 of the signing key's raw 64-byte public key.
    pub key_crc: u32,
    /// DER ECDSA signature over SHA-512(image), hex.
    pub der_hex: String,
}

/// A registered update image (`firmware/<id>/meta.json`; the bytes at `firmware/<id>/image`).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct FirmwareMeta {
    /// Identifier (`<model>-<version>` unless given).
    pub id: String,
    /// Station `model` it is for (`linux`, `rpi`, `corecell`, ...).
    pub model: String,
    /// The `package` version the gateway reports after applying it.
    pub version: String,
    /// Only offered to gateways reporting one of these packages (empty: any other version).
    #[serde(default)]
    pub from_versions: Vec<String>,
    /// Image length in bytes (< 2^31).
    pub len: u64,
    /// SHA-512 of the image, hex.
    pub sha512_hex: String,
    /// One signature per configured signing key, made once at upload.
    pub signatures: Vec<FirmwareSignature>,
    /// Upload time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Serde for an EUI as 16 lowercase hex digits (reads any form `Eui64::parse` accepts).
pub mod eui_hex {
    use cups_core::Eui64;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// Serialize as 16 lowercase hex digits.
    pub fn serialize<S: Serializer>(eui: &Eui64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&eui.canonical())
    }

    /// Deserialize any EUI text form.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Eui64, D::Error> {
        let text = String::deserialize(d)?;
        Eui64::parse(&text).map_err(D::Error::custom)
    }
}

/// Serde for bytes as standard base64.
pub mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// Serialize as base64.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    /// Deserialize from base64.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(D::Error::custom)
    }
}
