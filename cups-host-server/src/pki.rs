//! The server's PKI, in-process with rcgen (no OpenSSL forks):
//!
//! * the **gateway CA** (`ca.crt`/`ca.key`) that issues per-gateway client certificates
//!   (CUPS and TC); the layout of the system this replaces;
//! * the **server identity** (`cups.crt`/`cups.key`) for the HTTPS listener, with DNS SANs;
//! * **update-signing keys** (`sig-N.pem` private SEC1 PEM, `sig-N.key` raw 64-byte `X‖Y` for
//!   stations);
//! * optional **bootstrap CA** (`bootstrap-ca.crt`) whose certificates (factory credentials)
//!   are honoured only for registered gateways that never used their own credentials.
//!
//! Files holding private keys are created with mode 0600; existing files are never
//! overwritten.
//!
//! SKELETON: API fixed, bodies to be written.

use std::path::PathBuf;

use cups_core::Eui64;
use time::OffsetDateTime;

/// File names inside the PKI directory (`CERT_PATH`, default `certs/`).
pub mod files {
    /// Gateway CA certificate (PEM).
    pub const CA_CERT: &str = "ca.crt";
    /// Gateway CA private key (PEM).
    pub const CA_KEY: &str = "ca.key";
    /// Server certificate chain (PEM).
    pub const SERVER_CERT: &str = "cups.crt";
    /// Server private key (PEM).
    pub const SERVER_KEY: &str = "cups.key";
    /// Bootstrap CA certificate(s) (PEM), optional.
    pub const BOOTSTRAP_CA_CERT: &str = "bootstrap-ca.crt";
}

/// What a minted client certificate is for (goes into the certificate's OU).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ClientUsage {
    /// Authenticating the gateway to CUPS.
    Cups,
    /// Authenticating the gateway to the LNS (TC).
    Tc,
}

/// A freshly minted gateway client credential.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MintedClient {
    /// Client certificate, DER.
    pub cert_der: Vec<u8>,
    /// Client key, SEC1 DER (`30 77`, 121 bytes) — the only key form stations split right.
    pub key_sec1_der: Vec<u8>,
    /// Certificate serial, lowercase hex.
    pub serial_hex: String,
    /// Certificate expiry.
    pub not_after: OffsetDateTime,
}

/// The identity a verified client certificate proves.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CertIdentity {
    /// EUI from the CN or a SAN (16 hex, ID6, or with separators).
    pub eui: Eui64,
    /// Certificate serial, lowercase hex.
    pub serial_hex: String,
    /// Expiry.
    pub not_after: OffsetDateTime,
}

/// Where the PKI lives.
#[derive(Clone, Debug)]
pub struct PkiPaths {
    /// The directory (`CERT_PATH`).
    pub dir: PathBuf,
}
