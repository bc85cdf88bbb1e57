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
//! # Gateway client certificates
//!
//! [`Pki::mint_client`] issues, per gateway and use, an ECDSA P-256 certificate signed by the
//! gateway CA:
//!
//! | field | value |
//! |---|---|
//! | subject | `CN=<16 lowercase hex EUI>, OU=cups-client` (or `tc-client`) |
//! | subjectAltName | `URI:urn:dev:mac:<16 lowercase hex EUI>` — the RFC 9039 device URN for an EUI-64 |
//! | serial | 16 random bytes, positive |
//! | validity | `now - 5 min` ([`CLOCK_SKEW`]) .. `now + validity` |
//! | extensions | basicConstraints `CA:FALSE`, keyUsage `digitalSignature`, extendedKeyUsage `clientAuth`, subject and authority key identifiers |
//!
//! The SAN is a URI rather than a DNS name (a bare EUI is no host name) or an otherName (which
//! few tools display): `urn:dev:mac:` is the standard URN namespace for EUI-64 identifiers.
//! [`identity_from_cert`] reads the EUI from the CN (16 hex, ID6 or separated hex, anything
//! [`Eui64::parse`] accepts) and from `urn:dev:mac:` URI SANs with 16 hex digits; both must
//! agree when both are present.
//!
//! The key goes out as SEC1 DER (`30 77`, 121 bytes, with the curve `[0]` and public key
//! `[1]`): rcgen produces PKCS#8, which stations mis-split, so it is converted here. Every
//! blob is checked with [`cups_core::cred::check_station_safe`] before it is handed out.
//!
//! # Trust certificates in blobs
//!
//! * **TC** blobs carry the gateway CA certificate (`ca.crt`), as the replaced system did.
//! * **CUPS** blobs carry the certificate that anchors the server's own certificate: the
//!   gateway CA when the last certificate of `cups.crt` is the CA or is issued by it (what
//!   [`init`] creates), otherwise the last certificate of the `cups.crt` chain (put the root
//!   of a foreign server chain at its end). See [`CupsTrustSource`].
//!
//! A trust certificate whose DER content is 128..=255 bytes long cannot be sent at all (the
//! station mis-reads the `30 81 xx` length), so [`Pki::load`] refuses such a CA.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use cups_core::Eui64;
use cups_core::cred::{BlobParts, BuildCheckedError};
use cups_core::sig::{SigKey, SignerKeyError, UpdateSigner};
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, SignatureAlgorithm,
};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};
use sha2::Digest as _;
use time::{Duration, OffsetDateTime, UtcOffset};
use x509_parser::certificate::X509Certificate;
use x509_parser::error::X509Error;
use x509_parser::extensions::GeneralName;

use crate::model::IssuedCred;

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
    /// Prefix of the update-signing key files (`sig-0.pem`, `sig-0.key`, ...).
    pub const SIG_PREFIX: &str = "sig-";
    /// Extension of a private update-signing key (SEC1 PEM).
    pub const SIG_PRIVATE_EXT: &str = "pem";
    /// Extension of a public update-signing key (raw 64-byte `X‖Y`, as stations hold it).
    pub const SIG_PUBLIC_EXT: &str = "key";

    /// `sig-<n>.pem`.
    #[must_use]
    pub fn sig_private(n: usize) -> String {
        format!("{SIG_PREFIX}{n}.{SIG_PRIVATE_EXT}")
    }

    /// `sig-<n>.key`.
    #[must_use]
    pub fn sig_public(n: usize) -> String {
        format!("{SIG_PREFIX}{n}.{SIG_PUBLIC_EXT}")
    }
}

/// How far `notBefore` of minted certificates lies before `now` (gateway clock skew).
pub const CLOCK_SKEW: Duration = Duration::minutes(5);
/// Length of the random serial of every certificate created here (positive, 16 bytes).
pub const SERIAL_LEN: usize = 16;
/// Length of a P-256 SEC1 `ECPrivateKey` with curve `[0]` and public key `[1]` (`30 77 ...`).
pub const SEC1_P256_LEN: usize = 121;
/// Random bytes in a token from [`new_token`] (43 characters of base64url).
pub const TOKEN_BYTES: usize = 32;
/// Largest PKI file read (certificates, keys); anything bigger is refused.
pub const MAX_PKI_FILE_LEN: u64 = 1 << 20;
/// Most update-signing keys (`sig-0` .. `sig-15`) a PKI directory may hold.
pub const MAX_SIGNING_KEYS: usize = 16;
/// URI SAN prefix of gateway client certificates: the RFC 9039 device URN for an EUI-64.
pub const EUI_URN_PREFIX: &str = "urn:dev:mac:";
/// Organizational unit of CUPS client certificates.
pub const OU_CUPS_CLIENT: &str = "cups-client";
/// Organizational unit of TC (LNS) client certificates.
pub const OU_TC_CLIENT: &str = "tc-client";
/// Host name always in the server certificate [`init`] creates.
pub const LOCALHOST: &str = "localhost";
/// Common name of the gateway CA [`init`] creates by default.
pub const DEFAULT_CA_COMMON_NAME: &str = "CUPS gateway CA";
/// Default lifetime of a CA created by [`init`].
pub const DEFAULT_CA_VALIDITY: Duration = Duration::days(3650);
/// Default lifetime of a server certificate created by [`init`].
pub const DEFAULT_SERVER_VALIDITY: Duration = Duration::days(730);
/// Default number of update-signing keys [`init`] makes sure exist.
pub const DEFAULT_SIGNING_KEYS: usize = 1;
/// Mode of files holding private keys.
pub const KEY_FILE_MODE: u32 = 0o600;
/// Mode of certificate and public key files.
pub const CERT_FILE_MODE: u32 = 0o644;
/// Mode of a PKI directory [`init`] creates.
pub const DIR_MODE: u32 = 0o700;

/// PEM label of a certificate.
const PEM_CERTIFICATE: &str = "CERTIFICATE";
/// PEM label of a PKCS#8 private key.
const PEM_PKCS8: &str = "PRIVATE KEY";
/// PEM label of a SEC1 EC private key.
const PEM_SEC1: &str = "EC PRIVATE KEY";
/// PEM label of a PKCS#1 RSA private key.
const PEM_PKCS1: &str = "RSA PRIVATE KEY";
/// PEM label of an encrypted PKCS#8 private key (not supported).
const PEM_ENCRYPTED: &str = "ENCRYPTED PRIVATE KEY";

/// What a minted client certificate is for (goes into the certificate's OU).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum ClientUsage {
    /// Authenticating the gateway to CUPS.
    Cups,
    /// Authenticating the gateway to the LNS (TC).
    Tc,
}

impl ClientUsage {
    /// The certificate's OU: [`OU_CUPS_CLIENT`] or [`OU_TC_CLIENT`].
    #[must_use]
    pub fn organizational_unit(self) -> &'static str {
        match self {
            Self::Cups => OU_CUPS_CLIENT,
            Self::Tc => OU_TC_CLIENT,
        }
    }
}

/// A freshly minted gateway client credential. `Debug` never shows the key or the blob.
#[derive(Clone, PartialEq, Eq)]
pub struct MintedClient {
    /// Client certificate, DER.
    pub cert_der: Vec<u8>,
    /// Client key, SEC1 DER (`30 77`, 121 bytes) — the only key form stations split right.
    pub key_sec1_der: Vec<u8>,
    /// Certificate serial, lowercase hex.
    pub serial_hex: String,
    /// Certificate expiry.
    pub not_after: OffsetDateTime,
    /// Certificate start (`now` - [`CLOCK_SKEW`]).
    pub not_before: OffsetDateTime,
    /// What the certificate is for.
    pub usage: ClientUsage,
    /// The station-safe mTLS blob `trust ‖ cert ‖ key` (trust per [`Pki::trust_der`]).
    pub blob: Vec<u8>,
    /// `crc32(blob)`: what the station reports once it stored the blob.
    pub crc: u32,
}

impl fmt::Debug for MintedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedClient")
            .field("usage", &self.usage)
            .field("serial_hex", &self.serial_hex)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("cert_len", &self.cert_der.len())
            .field("crc", &format_args!("{:08x}", self.crc))
            .finish_non_exhaustive()
    }
}

impl MintedClient {
    /// The record of this credential as issued at `issued_at` (not yet confirmed).
    #[must_use]
    pub fn issued_cred(&self, issued_at: OffsetDateTime) -> IssuedCred {
        IssuedCred {
            blob: self.blob.clone(),
            crc: self.crc,
            not_after: Some(self.not_after),
            serial: Some(self.serial_hex.clone()),
            token_sha256: None,
            issued_at,
            confirmed_at: None,
        }
    }
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

impl PkiPaths {
    /// The PKI in `dir`.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `ca.crt`.
    #[must_use]
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join(files::CA_CERT)
    }

    /// `ca.key`.
    #[must_use]
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join(files::CA_KEY)
    }

    /// `cups.crt`.
    #[must_use]
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join(files::SERVER_CERT)
    }

    /// `cups.key`.
    #[must_use]
    pub fn server_key(&self) -> PathBuf {
        self.dir.join(files::SERVER_KEY)
    }

    /// `bootstrap-ca.crt`.
    #[must_use]
    pub fn bootstrap_ca(&self) -> PathBuf {
        self.dir.join(files::BOOTSTRAP_CA_CERT)
    }

    /// `sig-<n>.pem`.
    #[must_use]
    pub fn sig_private(&self, n: usize) -> PathBuf {
        self.dir.join(files::sig_private(n))
    }

    /// `sig-<n>.key`.
    #[must_use]
    pub fn sig_public(&self, n: usize) -> PathBuf {
        self.dir.join(files::sig_public(n))
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// What is wrong with a private key file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyProblem {
    /// No PEM block labelled `... PRIVATE KEY`.
    #[error("no private key (PEM `PRIVATE KEY`, `EC PRIVATE KEY` or `RSA PRIVATE KEY`)")]
    NoKey,
    /// More than one private key block.
    #[error("{count} private keys, expected one")]
    SeveralKeys {
        /// How many.
        count: usize,
    },
    /// An encrypted PKCS#8 key.
    #[error("encrypted private key: decrypt it first (`openssl pkey -in FILE -out FILE`)")]
    Encrypted,
    /// A PEM key label this server does not read.
    #[error("unsupported private key type `{label}`")]
    UnsupportedLabel {
        /// The PEM label.
        label: String,
    },
    /// The DER structure is not the key type its label says.
    #[error("malformed private key DER")]
    Malformed,
    /// An EC key on a curve other than P-256 / P-384.
    #[error("unsupported elliptic curve (P-256 or P-384 only)")]
    UnsupportedCurve,
    /// A SEC1 key without its public key, on a curve where it cannot be derived here.
    #[error("SEC1 key without its public key [1]")]
    NoPublicKey,
    /// The crypto backend refused the key.
    #[error("key rejected: {0}")]
    Rejected(rcgen::Error),
}

/// Why a certificate does not name a gateway.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Not a parseable X.509 certificate.
    #[error("client certificate: {0}")]
    Parse(X509Error),
    /// Bytes after the certificate.
    #[error("client certificate: {count} bytes after the certificate")]
    TrailingData {
        /// How many.
        count: usize,
    },
    /// Neither the CN nor a `urn:dev:mac:` URI SAN is an EUI.
    #[error("client certificate names no gateway EUI (CN or URI SAN urn:dev:mac:<16 hex>)")]
    NoEui,
    /// Two CNs or two SANs name different EUIs.
    #[error("client certificate names two EUIs in its {field}: {first} and {second}")]
    Ambiguous {
        /// `"CN"` or `"SAN"`.
        field: &'static str,
        /// The first EUI.
        first: Eui64,
        /// The other EUI.
        second: Eui64,
    },
    /// CN and SAN name different EUIs.
    #[error("client certificate CN names {cn} but its SAN names {san}")]
    CnSanMismatch {
        /// EUI in the CN.
        cn: Eui64,
        /// EUI in the SAN.
        san: Eui64,
    },
}

/// Everything that can go wrong in the PKI. File errors name the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A required file does not exist.
    #[error("{}: missing", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A file is larger than [`MAX_PKI_FILE_LEN`].
    #[error("{}: larger than {MAX_PKI_FILE_LEN} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A file holds no PEM block.
    #[error("{}: not PEM{}", path.display(), if *looks_like_der { " (looks like DER: convert it with `openssl x509 -inform DER` or `openssl pkey -inform DER`)" } else { "" })]
    NotPem {
        /// The file.
        path: PathBuf,
        /// Whether it starts like DER.
        looks_like_der: bool,
    },
    /// A PEM block is malformed.
    #[error("{}: bad PEM: {source}", path.display())]
    BadPem {
        /// The file.
        path: PathBuf,
        /// The PEM error.
        #[source]
        source: pem::PemError,
    },
    /// A certificate file holds no `CERTIFICATE` block.
    #[error("{}: no certificate (PEM `CERTIFICATE` block)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A file that must hold exactly one certificate holds several.
    #[error("{}: {count} certificates, expected exactly one", path.display())]
    CertificateCount {
        /// The file.
        path: PathBuf,
        /// How many it holds.
        count: usize,
    },
    /// A certificate does not parse.
    #[error("{}: certificate #{index}: {source}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// Position in the file, from 0.
        index: usize,
        /// The parse error.
        #[source]
        source: X509Error,
    },
    /// A private key is unusable.
    #[error("{}: {problem}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: KeyProblem,
    },
    /// A private key does not belong to its certificate.
    #[error("{}: private key does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },
    /// A CA certificate lacks `basicConstraints CA:TRUE`.
    #[error("{}: certificate #{index} is not a CA (basicConstraints CA:TRUE missing)", path.display())]
    NotCa {
        /// The file.
        path: PathBuf,
        /// Position in the file, from 0.
        index: usize,
    },
    /// The gateway CA's keyUsage forbids signing certificates.
    #[error("{}: the CA's keyUsage does not allow keyCertSign", path.display())]
    CaCannotSign {
        /// The file.
        path: PathBuf,
    },
    /// rcgen cannot issue with this CA.
    #[error("{}: cannot issue certificates with this CA: {source}", path.display())]
    CaUnusable {
        /// The CA certificate file.
        path: PathBuf,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// The gateway CA is also a bootstrap CA (every gateway certificate would be a factory
    /// certificate and the other way round).
    #[error("{}: lists the gateway CA ({}) as a bootstrap CA", path.display(), files::CA_CERT)]
    BootstrapIsGatewayCa {
        /// The bootstrap CA file.
        path: PathBuf,
    },
    /// A certificate cannot be the trust of a credential blob.
    #[error("{}: cannot be sent as a blob trust certificate: {problem}", path.display())]
    TrustNotSendable {
        /// The file.
        path: PathBuf,
        /// Why (a 128..=255-byte certificate content is mis-read by stations).
        problem: cups_core::cred::UnsafeBlob,
    },
    /// A certificate was refused as a TLS trust anchor.
    #[error("{}: not usable as a TLS trust anchor: {source}", path.display())]
    BadTrustAnchor {
        /// The file.
        path: PathBuf,
        /// rustls' error.
        #[source]
        source: rustls::Error,
    },
    /// The server certificate chain and key are unusable for TLS.
    #[error("{}: server key not usable for TLS: {source}", path.display())]
    ServerIdentity {
        /// The key file.
        path: PathBuf,
        /// rustls' error.
        #[source]
        source: rustls::Error,
    },
    /// An update-signing private key is unusable.
    #[error("{}: {source}", path.display())]
    BadSigningKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: SignerKeyError,
    },
    /// A `sig-N.key` is not a raw 64-byte public key.
    #[error("{}: {len} bytes, expected the raw 64-byte X‖Y public key", path.display())]
    BadSigPublicKey {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// `sig-N.key` is not the public key of `sig-N.pem`.
    #[error("{}: is not the public key of {}", public.display(), private.display())]
    SigningKeyMismatch {
        /// The public key file.
        public: PathBuf,
        /// The private key file.
        private: PathBuf,
    },
    /// Signing keys are not numbered consecutively from 0.
    #[error("{}: signing keys must be numbered consecutively from 0, but {} is missing", found.display(), missing.display())]
    SigningKeyGap {
        /// A key file with a higher number.
        found: PathBuf,
        /// The missing file.
        missing: PathBuf,
    },
    /// More than [`MAX_SIGNING_KEYS`] signing keys.
    #[error("{}: more than {MAX_SIGNING_KEYS} signing keys", path.display())]
    TooManySigningKeys {
        /// The first file beyond the limit.
        path: PathBuf,
    },
    /// Half of a certificate/key pair exists.
    #[error("{} exists but {} is missing: restore it, or remove both to create a new pair", present.display(), missing.display())]
    IncompletePair {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// A server name for the certificate is not a valid DNS name or IP address.
    #[error("invalid server DNS name {name:?}")]
    InvalidDnsName {
        /// The name.
        name: String,
    },
    /// rcgen failed to create a key or certificate.
    #[error("creating the {what}: {source}")]
    Generate {
        /// What was being created.
        what: &'static str,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// A key rcgen generated could not be converted to SEC1.
    #[error("converting the generated {what} key to SEC1: {problem}")]
    GeneratedKey {
        /// What the key is for.
        what: &'static str,
        /// What is wrong.
        problem: KeyProblem,
    },
    /// The operating system's random number generator failed.
    #[error("system random number generator failed: {0}")]
    Random(getrandom::Error),
    /// A certificate validity is zero or negative.
    #[error("certificate validity {validity} is not positive")]
    InvalidValidity {
        /// The validity asked for.
        validity: Duration,
    },
    /// A certificate's validity period falls outside the years 1..=9999.
    #[error("certificate validity period out of range")]
    ValidityOutOfRange,
    /// A credential blob could not be built, or is not station-safe.
    #[error(transparent)]
    Blob(BuildCheckedError),
    /// A certificate does not name a gateway.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The client certificate verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(VerifierBuilderError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// DER helpers (just enough to move keys between PKCS#8, SEC1 and PKCS#1)
// ---------------------------------------------------------------------------------------------

mod der {
    /// SEQUENCE.
    pub(super) const SEQUENCE: u8 = 0x30;
    /// INTEGER.
    pub(super) const INTEGER: u8 = 0x02;
    /// OCTET STRING.
    pub(super) const OCTET_STRING: u8 = 0x04;
    /// BIT STRING.
    pub(super) const BIT_STRING: u8 = 0x03;
    /// NULL.
    pub(super) const NULL: u8 = 0x05;
    /// OBJECT IDENTIFIER.
    pub(super) const OID: u8 = 0x06;
    /// `[0]` constructed.
    pub(super) const CTX0: u8 = 0xA0;
    /// `[1]` constructed.
    pub(super) const CTX1: u8 = 0xA1;
    /// Longest length field read (4 bytes: anything bigger is not a key).
    const MAX_LEN_OCTETS: usize = 4;

    /// OID 1.2.840.10045.2.1 id-ecPublicKey.
    pub(super) const OID_EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
    /// OID 1.2.840.10045.3.1.7 prime256v1.
    pub(super) const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
    /// OID 1.3.132.0.34 secp384r1.
    pub(super) const OID_P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
    /// OID 1.2.840.113549.1.1.1 rsaEncryption.
    pub(super) const OID_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];

    /// One element and what follows it.
    pub(super) struct Tlv<'a> {
        pub(super) tag: u8,
        pub(super) content: &'a [u8],
        pub(super) rest: &'a [u8],
    }

    /// Read one definite-length element.
    pub(super) fn read(input: &[u8]) -> Option<Tlv<'_>> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7F);
            if n == 0 || n > MAX_LEN_OCTETS {
                return None;
            }
            let (bytes, rest) = rest.split_at_checked(n)?;
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, rest)
        };
        let (content, rest) = rest.split_at_checked(len)?;
        Some(Tlv { tag, content, rest })
    }

    /// Read one element with tag `tag`.
    pub(super) fn expect(input: &[u8], tag: u8) -> Option<Tlv<'_>> {
        read(input).filter(|t| t.tag == tag)
    }

    /// Append `tag ‖ DER length ‖ content`.
    pub(super) fn push(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
        out.push(tag);
        let len = content.len();
        match u8::try_from(len) {
            Ok(short) if short < 0x80 => out.push(short),
            _ => {
                let bytes = len.to_be_bytes();
                let skip = bytes.iter().take_while(|b| **b == 0).count();
                let significant = bytes.get(skip..).unwrap_or_default();
                // At most size_of::<usize>() (8) octets: fits the low 7 bits.
                let n = u8::try_from(significant.len()).unwrap_or(0x7F);
                out.push(0x80 | n);
                out.extend_from_slice(significant);
            }
        }
        out.extend_from_slice(content);
    }

    /// `tag ‖ DER length ‖ content` as a new vector.
    pub(super) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(content.len().saturating_add(6));
        push(&mut out, tag, content);
        out
    }
}

/// The parts of a SEC1 `ECPrivateKey`.
struct EcKeyParts<'a> {
    /// The private scalar.
    d: &'a [u8],
    /// `[0]` curve OID content, if present.
    curve: Option<&'a [u8]>,
    /// `[1]` public point (BIT STRING content without the unused-bits byte), if present.
    point: Option<&'a [u8]>,
}

fn parse_ec_private_key(der_bytes: &[u8]) -> Result<EcKeyParts<'_>, KeyProblem> {
    let seq = der::expect(der_bytes, der::SEQUENCE).ok_or(KeyProblem::Malformed)?;
    if !seq.rest.is_empty() {
        return Err(KeyProblem::Malformed);
    }
    let version = der::expect(seq.content, der::INTEGER).ok_or(KeyProblem::Malformed)?;
    if version.content != [1] {
        return Err(KeyProblem::Malformed);
    }
    let d = der::expect(version.rest, der::OCTET_STRING).ok_or(KeyProblem::Malformed)?;
    let mut rest = d.rest;
    let mut curve = None;
    let mut point = None;
    if rest.first() == Some(&der::CTX0) {
        let params = der::expect(rest, der::CTX0).ok_or(KeyProblem::Malformed)?;
        let oid = der::expect(params.content, der::OID).ok_or(KeyProblem::Malformed)?;
        if !oid.rest.is_empty() {
            return Err(KeyProblem::Malformed);
        }
        curve = Some(oid.content);
        rest = params.rest;
    }
    if rest.first() == Some(&der::CTX1) {
        let wrapper = der::expect(rest, der::CTX1).ok_or(KeyProblem::Malformed)?;
        let bits = der::expect(wrapper.content, der::BIT_STRING).ok_or(KeyProblem::Malformed)?;
        let [0, p @ ..] = bits.content else {
            return Err(KeyProblem::Malformed);
        };
        if !bits.rest.is_empty() {
            return Err(KeyProblem::Malformed);
        }
        point = Some(p);
        rest = wrapper.rest;
    }
    if !rest.is_empty() {
        return Err(KeyProblem::Malformed);
    }
    Ok(EcKeyParts {
        d: d.content,
        curve,
        point,
    })
}

/// The uncompressed P-256 public point of a private scalar.
fn p256_point(d: &[u8]) -> Result<[u8; cups_core::cred::P256_POINT_LEN], KeyProblem> {
    let scalar = <[u8; cups_core::cred::P256_PRIVATE_KEY_LEN]>::try_from(d)
        .map_err(|_| KeyProblem::Malformed)?;
    let signer = UpdateSigner::from_scalar(&scalar).map_err(|_| KeyProblem::Malformed)?;
    Ok(signer.public_key().to_uncompressed())
}

/// The SEC1 DER of a P-256 key with curve `[0]` and public key `[1]`: `30 77`, 121 bytes.
fn sec1_p256(d: &[u8], point: &[u8]) -> Vec<u8> {
    let mut inner = Vec::with_capacity(SEC1_P256_LEN);
    der::push(&mut inner, der::INTEGER, &[1]);
    der::push(&mut inner, der::OCTET_STRING, d);
    der::push(&mut inner, der::CTX0, &der::tlv(der::OID, der::OID_P256));
    let mut bits = Vec::with_capacity(point.len().saturating_add(1));
    bits.push(0);
    bits.extend_from_slice(point);
    der::push(&mut inner, der::CTX1, &der::tlv(der::BIT_STRING, &bits));
    der::tlv(der::SEQUENCE, &inner)
}

/// Convert a PKCS#8 `PrivateKeyInfo` holding a P-256 key (what rcgen and ring produce) into
/// the SEC1 `ECPrivateKey` stations need: `30 77 02 01 01 04 20 <d> a0 0a <prime256v1>
/// a1 44 03 42 00 04 <X‖Y>`, 121 bytes. The public key is taken from the PKCS#8 when present,
/// derived from the scalar otherwise.
///
/// # Errors
/// [`KeyProblem::Malformed`] if the input is not such a PKCS#8 structure,
/// [`KeyProblem::UnsupportedCurve`] for curves other than P-256.
pub fn pkcs8_to_sec1_p256(pkcs8: &[u8]) -> Result<Vec<u8>, KeyProblem> {
    let outer = der::expect(pkcs8, der::SEQUENCE).ok_or(KeyProblem::Malformed)?;
    if !outer.rest.is_empty() {
        return Err(KeyProblem::Malformed);
    }
    let version = der::expect(outer.content, der::INTEGER).ok_or(KeyProblem::Malformed)?;
    if version.content != [0] && version.content != [1] {
        return Err(KeyProblem::Malformed);
    }
    let alg = der::expect(version.rest, der::SEQUENCE).ok_or(KeyProblem::Malformed)?;
    let alg_oid = der::expect(alg.content, der::OID).ok_or(KeyProblem::Malformed)?;
    if alg_oid.content != der::OID_EC_PUBLIC_KEY {
        return Err(KeyProblem::UnsupportedCurve);
    }
    let curve = der::expect(alg_oid.rest, der::OID).ok_or(KeyProblem::Malformed)?;
    if curve.content != der::OID_P256 {
        return Err(KeyProblem::UnsupportedCurve);
    }
    let private = der::expect(alg.rest, der::OCTET_STRING).ok_or(KeyProblem::Malformed)?;
    let parts = parse_ec_private_key(private.content)?;
    if parts.curve.is_some_and(|c| c != der::OID_P256) {
        return Err(KeyProblem::UnsupportedCurve);
    }
    if parts.d.len() != cups_core::cred::P256_PRIVATE_KEY_LEN {
        return Err(KeyProblem::Malformed);
    }
    let point = match parts.point {
        Some(p) if p.len() == cups_core::cred::P256_POINT_LEN && p.first() == Some(&0x04) => {
            p.to_vec()
        }
        Some(_) => return Err(KeyProblem::Malformed),
        None => p256_point(parts.d)?.to_vec(),
    };
    Ok(sec1_p256(parts.d, &point))
}

/// Wrap a SEC1 EC key as PKCS#8 (with its public key, which ring requires), for rcgen.
fn sec1_to_pkcs8(sec1: &[u8]) -> Result<(Vec<u8>, &'static SignatureAlgorithm), KeyProblem> {
    let parts = parse_ec_private_key(sec1)?;
    let curve = match parts.curve {
        Some(c) => c,
        None if parts.d.len() == cups_core::cred::P256_PRIVATE_KEY_LEN => der::OID_P256,
        None => return Err(KeyProblem::UnsupportedCurve),
    };
    let (alg, point) = if curve == der::OID_P256 {
        let point = match parts.point {
            Some(p) => p.to_vec(),
            None => p256_point(parts.d)?.to_vec(),
        };
        (&rcgen::PKCS_ECDSA_P256_SHA256, point)
    } else if curve == der::OID_P384 {
        let point = parts.point.ok_or(KeyProblem::NoPublicKey)?.to_vec();
        (&rcgen::PKCS_ECDSA_P384_SHA384, point)
    } else {
        return Err(KeyProblem::UnsupportedCurve);
    };
    let mut ec = Vec::new();
    der::push(&mut ec, der::INTEGER, &[1]);
    der::push(&mut ec, der::OCTET_STRING, parts.d);
    let mut bits = vec![0u8];
    bits.extend_from_slice(&point);
    der::push(&mut ec, der::CTX1, &der::tlv(der::BIT_STRING, &bits));
    let ec = der::tlv(der::SEQUENCE, &ec);
    let mut alg_id = der::tlv(der::OID, der::OID_EC_PUBLIC_KEY);
    der::push(&mut alg_id, der::OID, curve);
    let mut info = Vec::new();
    der::push(&mut info, der::INTEGER, &[0]);
    der::push(&mut info, der::SEQUENCE, &alg_id);
    der::push(&mut info, der::OCTET_STRING, &ec);
    Ok((der::tlv(der::SEQUENCE, &info), alg))
}

/// Wrap a PKCS#1 RSA key as PKCS#8, for rcgen.
fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Vec<u8> {
    let mut alg_id = der::tlv(der::OID, der::OID_RSA);
    der::push(&mut alg_id, der::NULL, &[]);
    let mut info = Vec::new();
    der::push(&mut info, der::INTEGER, &[0]);
    der::push(&mut info, der::SEQUENCE, &alg_id);
    der::push(&mut info, der::OCTET_STRING, pkcs1);
    der::tlv(der::SEQUENCE, &info)
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

fn read_file(path: &Path) -> Result<Vec<u8>, PkiError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(PkiError::Missing {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut buf = Vec::new();
    file.take(MAX_PKI_FILE_LEN.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(io_err(path))?;
    if u64::try_from(buf.len()).unwrap_or(u64::MAX) > MAX_PKI_FILE_LEN {
        return Err(PkiError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(buf)
}

fn read_pem(path: &Path) -> Result<Vec<pem::Pem>, PkiError> {
    let bytes = read_file(path)?;
    let blocks = pem::parse_many(&bytes).map_err(|source| PkiError::BadPem {
        path: path.to_path_buf(),
        source,
    })?;
    if blocks.is_empty() {
        return Err(PkiError::NotPem {
            path: path.to_path_buf(),
            looks_like_der: bytes.first() == Some(&der::SEQUENCE),
        });
    }
    Ok(blocks)
}

fn parse_cert(der_bytes: &[u8]) -> Result<X509Certificate<'_>, X509Error> {
    match x509_parser::parse_x509_certificate(der_bytes) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(X509Error::InvalidCertificate),
        Err(x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e)) => Err(e),
        Err(x509_parser::nom::Err::Incomplete(_)) => Err(X509Error::InvalidCertificate),
    }
}

/// All certificates of a PEM file, each checked to parse.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs: Vec<CertificateDer<'static>> = read_pem(path)?
        .into_iter()
        .filter(|b| b.tag() == PEM_CERTIFICATE)
        .map(|b| CertificateDer::from(b.into_contents()))
        .collect();
    if certs.is_empty() {
        return Err(PkiError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    for (index, cert) in certs.iter().enumerate() {
        parse_cert(cert).map_err(|source| PkiError::BadCertificate {
            path: path.to_path_buf(),
            index,
            source,
        })?;
    }
    Ok(certs)
}

/// The one private key block of a PEM file: (label, DER).
fn read_private_key(path: &Path) -> Result<(String, Vec<u8>), PkiError> {
    let bad = |problem| PkiError::BadKey {
        path: path.to_path_buf(),
        problem,
    };
    let mut keys: Vec<pem::Pem> = read_pem(path)?
        .into_iter()
        .filter(|b| b.tag().ends_with(PEM_PKCS8))
        .collect();
    let key = match keys.len() {
        0 => return Err(bad(KeyProblem::NoKey)),
        1 => keys.pop().ok_or_else(|| bad(KeyProblem::NoKey))?,
        count => return Err(bad(KeyProblem::SeveralKeys { count })),
    };
    let label = key.tag().to_owned();
    match label.as_str() {
        PEM_PKCS8 | PEM_SEC1 | PEM_PKCS1 => Ok((label, key.into_contents())),
        PEM_ENCRYPTED => Err(bad(KeyProblem::Encrypted)),
        _ => Err(bad(KeyProblem::UnsupportedLabel { label })),
    }
}

/// A private key file as an rcgen key pair (for signing certificates).
fn read_rcgen_key(path: &Path) -> Result<KeyPair, PkiError> {
    let bad = |problem| PkiError::BadKey {
        path: path.to_path_buf(),
        problem,
    };
    let (label, der_bytes) = read_private_key(path)?;
    let pair = match label.as_str() {
        PEM_SEC1 => {
            let (pkcs8, alg) = sec1_to_pkcs8(&der_bytes).map_err(bad)?;
            KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(pkcs8), alg)
        }
        PEM_PKCS1 => KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(pkcs1_to_pkcs8(&der_bytes)),
            &rcgen::PKCS_RSA_SHA256,
        ),
        _ => KeyPair::try_from(der_bytes.as_slice()),
    };
    pair.map_err(|e| bad(KeyProblem::Rejected(e)))
}

/// A private key file as a rustls key.
fn read_rustls_key(path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    let (label, der_bytes) = read_private_key(path)?;
    Ok(match label.as_str() {
        PEM_SEC1 => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der_bytes)),
        PEM_PKCS1 => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der_bytes)),
        _ => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der_bytes)),
    })
}

/// Log a warning when a private key file is readable by group or others.
fn warn_if_exposed(path: &Path) {
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{:o}", mode & 0o777),
                "private key file is readable by group or others; chmod 600 it"
            );
        }
    }
}

fn exists(path: &Path) -> Result<bool, PkiError> {
    path.try_exists().map_err(io_err(path))
}

/// Create `path` with `bytes` and `mode`; never overwrites (fails if it exists).
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_err(path))?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(e) = written {
        // Ours (create_new): do not leave a truncated key or certificate behind.
        let _ = fs::remove_file(path);
        return Err(io_err(path)(e));
    }
    Ok(())
}

fn pem_text(label: &str, der_bytes: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der_bytes.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

// ---------------------------------------------------------------------------------------------
// Certificate helpers
// ---------------------------------------------------------------------------------------------

/// Lowercase hex of a serial's magnitude (leading zero bytes dropped; `"00"` for zero).
fn serial_hex(raw: &[u8]) -> String {
    let skip = raw.iter().take_while(|b| **b == 0).count();
    match raw.get(skip..) {
        Some(magnitude) if !magnitude.is_empty() => hex::encode(magnitude),
        _ => "00".to_owned(),
    }
}

fn random_serial() -> Result<[u8; SERIAL_LEN], PkiError> {
    let mut serial = [0u8; SERIAL_LEN];
    getrandom::fill(&mut serial).map_err(PkiError::Random)?;
    if let Some(first) = serial.first_mut() {
        // Positive (top bit clear) and exactly SERIAL_LEN bytes long (no leading zero byte).
        *first = (*first & 0x7F) | 0x40;
    }
    Ok(serial)
}

/// `issuer_der` issued `cert`: issuer DN equals its subject DN and the signature verifies.
fn issued_by(cert: &X509Certificate<'_>, issuer_der: &[u8]) -> bool {
    let Ok(issuer) = parse_cert(issuer_der) else {
        return false;
    };
    cert.issuer().as_raw() == issuer.subject().as_raw()
        && cert.verify_signature(Some(issuer.public_key())).is_ok()
}

/// The validity period `[now - skew, now + validity]`, whole seconds, UTC.
fn validity_period(
    now: OffsetDateTime,
    validity: Duration,
) -> Result<(OffsetDateTime, OffsetDateTime), PkiError> {
    if !validity.is_positive() {
        return Err(PkiError::InvalidValidity { validity });
    }
    let now = now
        .to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .map_err(|_| PkiError::ValidityOutOfRange)?;
    let not_before = now
        .checked_sub(CLOCK_SKEW)
        .ok_or(PkiError::ValidityOutOfRange)?;
    let not_after = now
        .checked_add(validity)
        .ok_or(PkiError::ValidityOutOfRange)?;
    if not_before.year() < 1 || not_after.year() > 9999 {
        return Err(PkiError::ValidityOutOfRange);
    }
    Ok((not_before, not_after))
}

fn eui_urn(eui: Eui64) -> String {
    format!("{EUI_URN_PREFIX}{}", eui.canonical())
}

/// The EUI of a `urn:dev:mac:<16 hex>` URI (prefix case-insensitive); None for anything else.
fn eui_from_urn(uri: &str) -> Option<Eui64> {
    let prefix = uri.get(..EUI_URN_PREFIX.len())?;
    if !prefix.eq_ignore_ascii_case(EUI_URN_PREFIX) {
        return None;
    }
    let digits = uri.get(EUI_URN_PREFIX.len()..)?;
    if digits.len() != cups_core::eui::HEX_DIGITS || !digits.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    Eui64::parse(digits).ok()
}

/// A blob from `parts`, built and checked with [`cups_core::cred::check_station_safe`].
fn checked_blob(parts: BlobParts<'_>) -> Result<Vec<u8>, PkiError> {
    let mut out = vec![0u8; parts.len().min(cups_core::cred::MAX_BLOB_LEN)];
    let info = parts.write_checked(&mut out).map_err(PkiError::Blob)?;
    out.truncate(info.len);
    Ok(out)
}

/// Refuse a trust certificate that cannot be sent in a blob.
fn check_trust(path: &Path, der_bytes: &[u8]) -> Result<(), PkiError> {
    match checked_blob(BlobParts::ServerAuth { trust: der_bytes }) {
        Ok(_) => Ok(()),
        Err(PkiError::Blob(BuildCheckedError::Unsafe(problem))) => {
            Err(PkiError::TrustNotSendable {
                path: path.to_path_buf(),
                problem,
            })
        }
        Err(e) => Err(e),
    }
}

fn generate_p256(what: &'static str) -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|source| PkiError::Generate { what, source })
}

fn sec1_of(key: &KeyPair, what: &'static str) -> Result<Vec<u8>, PkiError> {
    pkcs8_to_sec1_p256(key.serialized_der())
        .map_err(|problem| PkiError::GeneratedKey { what, problem })
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

/// A new bearer token: [`TOKEN_BYTES`] random bytes from the OS, base64url without padding
/// (43 characters of `[A-Za-z0-9_-]`).
///
/// # Errors
/// [`PkiError::Random`] if the OS random number generator fails.
pub fn new_token() -> Result<String, PkiError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(PkiError::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of the token, lowercase hex: the only form in which tokens are stored.
#[must_use]
pub fn token_sha256_hex(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// The header lines of a token blob: `Authorization: Bearer <token>\r\n`.
#[must_use]
pub fn bearer_header_lines(token: &str) -> Vec<u8> {
    format!("Authorization: Bearer {token}\r\n").into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------------

/// The gateway a client certificate names: the EUI from its CN (anything [`Eui64::parse`]
/// accepts: 16 hex, ID6, separated hex) and/or from `urn:dev:mac:<16 hex>` URI SANs. CNs
/// and URIs that are no EUI are ignored; the certificate must name exactly one EUI.
/// Call this only for certificates rustls has verified.
///
/// # Errors
/// [`IdentityError`] (as [`PkiError::Identity`]): unparseable, no EUI, or two different EUIs.
pub fn identity_from_cert(der_bytes: &[u8]) -> Result<CertIdentity, PkiError> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der_bytes).map_err(|e| {
        IdentityError::Parse(match e {
            x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => e,
            x509_parser::nom::Err::Incomplete(_) => X509Error::InvalidCertificate,
        })
    })?;
    if !rest.is_empty() {
        return Err(IdentityError::TrailingData { count: rest.len() }.into());
    }
    let mut cn_eui: Option<Eui64> = None;
    for attr in cert.subject().iter_common_name() {
        let Some(eui) = attr.as_str().ok().and_then(|t| Eui64::parse(t).ok()) else {
            continue;
        };
        match cn_eui {
            Some(first) if first != eui => {
                return Err(IdentityError::Ambiguous {
                    field: "CN",
                    first,
                    second: eui,
                }
                .into());
            }
            _ => cn_eui = Some(eui),
        }
    }
    let mut san_eui: Option<Eui64> = None;
    let san = cert
        .subject_alternative_name()
        .map_err(IdentityError::Parse)?;
    for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
        let GeneralName::URI(uri) = name else {
            continue;
        };
        let Some(eui) = eui_from_urn(uri) else {
            continue;
        };
        match san_eui {
            Some(first) if first != eui => {
                return Err(IdentityError::Ambiguous {
                    field: "SAN",
                    first,
                    second: eui,
                }
                .into());
            }
            _ => san_eui = Some(eui),
        }
    }
    let eui = match (cn_eui, san_eui) {
        (Some(cn), Some(san)) if cn != san => {
            return Err(IdentityError::CnSanMismatch { cn, san }.into());
        }
        (Some(eui), _) | (None, Some(eui)) => eui,
        (None, None) => return Err(IdentityError::NoEui.into()),
    };
    Ok(CertIdentity {
        eui,
        serial_hex: serial_hex(cert.raw_serial()),
        not_after: cert.validity().not_after.to_datetime(),
    })
}

// ---------------------------------------------------------------------------------------------
// The loaded PKI
// ---------------------------------------------------------------------------------------------

/// Which certificate CUPS blobs carry as trust (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CupsTrustSource {
    /// The gateway CA (`ca.crt`) anchors the server certificate.
    GatewayCa,
    /// The last certificate of the `cups.crt` chain (a server chain from another CA).
    ServerChain,
}

/// The loaded, validated PKI. Build with [`Pki::load`]; cheap to share behind an `Arc`.
pub struct Pki {
    paths: PkiPaths,
    gateway_roots: Vec<CertificateDer<'static>>,
    ca_issuer: Issuer<'static, KeyPair>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
    cups_trust: CertificateDer<'static>,
    cups_trust_source: CupsTrustSource,
    bootstrap: Vec<CertificateDer<'static>>,
    client_roots: Arc<RootCertStore>,
    signers: Vec<UpdateSigner>,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.paths.dir)
            .field("server_chain_len", &self.server_chain.len())
            .field("cups_trust_source", &self.cups_trust_source)
            .field("bootstrap_cas", &self.bootstrap.len())
            .field("key_crcs", &self.key_crcs())
            .finish_non_exhaustive()
    }
}

/// The gateway CA: its certificate (the only one in `ca.crt`) and an rcgen issuer.
fn load_ca(
    paths: &PkiPaths,
) -> Result<(CertificateDer<'static>, Issuer<'static, KeyPair>), PkiError> {
    let cert_path = paths.ca_cert();
    let key_path = paths.ca_key();
    let mut certs = read_certs(&cert_path)?;
    if certs.len() != 1 {
        return Err(PkiError::CertificateCount {
            path: cert_path,
            count: certs.len(),
        });
    }
    let ca_der = certs.pop().ok_or_else(|| PkiError::NoCertificate {
        path: cert_path.clone(),
    })?;
    let key = read_rcgen_key(&key_path)?;
    warn_if_exposed(&key_path);
    {
        let cert = parse_cert(&ca_der).map_err(|source| PkiError::BadCertificate {
            path: cert_path.clone(),
            index: 0,
            source,
        })?;
        if !cert.is_ca() {
            return Err(PkiError::NotCa {
                path: cert_path,
                index: 0,
            });
        }
        if let Ok(Some(ku)) = cert.key_usage()
            && !ku.value.key_cert_sign()
        {
            return Err(PkiError::CaCannotSign { path: cert_path });
        }
        if *cert.public_key().subject_public_key.data != *key.public_key_raw() {
            return Err(PkiError::KeyMismatch {
                key: key_path,
                cert: cert_path,
            });
        }
        if !cert.validity().is_valid() {
            tracing::warn!(
                path = %cert_path.display(),
                not_after = %cert.validity().not_after,
                "gateway CA certificate is not valid now"
            );
        }
    }
    let issuer = Issuer::from_ca_cert_der(&ca_der, key).map_err(|source| PkiError::CaUnusable {
        path: cert_path.clone(),
        source,
    })?;
    Ok((ca_der, issuer))
}

/// Indices of `sig-N.pem` and `sig-N.key` files in the directory.
fn scan_signing_keys(paths: &PkiPaths) -> Result<(BTreeSet<usize>, BTreeSet<usize>), PkiError> {
    let mut private = BTreeSet::new();
    let mut public = BTreeSet::new();
    let entries = match fs::read_dir(&paths.dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((private, public)),
        Err(e) => return Err(io_err(&paths.dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(&paths.dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(files::SIG_PREFIX) else {
            continue;
        };
        let Some((digits, ext)) = rest.split_once('.') else {
            continue;
        };
        let Ok(n) = digits.parse::<usize>() else {
            continue;
        };
        if n.to_string() != digits {
            continue; // `sig-01.pem`, `sig-+1.pem`: not a station key name
        }
        let set = match ext {
            files::SIG_PRIVATE_EXT => &mut private,
            files::SIG_PUBLIC_EXT => &mut public,
            _ => continue,
        };
        if n >= MAX_SIGNING_KEYS {
            return Err(PkiError::TooManySigningKeys { path: entry.path() });
        }
        set.insert(n);
    }
    Ok((private, public))
}

/// Check that private keys are numbered 0..n and each public key has its private key.
fn check_signing_key_numbering(
    paths: &PkiPaths,
    private: &BTreeSet<usize>,
    public: &BTreeSet<usize>,
) -> Result<usize, PkiError> {
    if let Some(&n) = public.difference(private).next() {
        return Err(PkiError::IncompletePair {
            present: paths.sig_public(n),
            missing: paths.sig_private(n),
        });
    }
    let count = private.len();
    if let Some(&highest) = private.last()
        && highest >= count
    {
        let missing = (0..count).find(|i| !private.contains(i)).unwrap_or(0);
        return Err(PkiError::SigningKeyGap {
            found: paths.sig_private(highest),
            missing: paths.sig_private(missing),
        });
    }
    Ok(count)
}

fn load_signer(path: &Path) -> Result<UpdateSigner, PkiError> {
    let bad = |problem| PkiError::BadKey {
        path: path.to_path_buf(),
        problem,
    };
    let (label, der_bytes) = read_private_key(path)?;
    let sec1 = match label.as_str() {
        PEM_SEC1 => der_bytes,
        PEM_PKCS8 => pkcs8_to_sec1_p256(&der_bytes).map_err(bad)?,
        _ => return Err(bad(KeyProblem::UnsupportedLabel { label })),
    };
    UpdateSigner::from_sec1_der(&sec1).map_err(|source| PkiError::BadSigningKey {
        path: path.to_path_buf(),
        source,
    })
}

fn load_signers(paths: &PkiPaths) -> Result<Vec<UpdateSigner>, PkiError> {
    let (private, public) = scan_signing_keys(paths)?;
    let count = check_signing_key_numbering(paths, &private, &public)?;
    let mut signers = Vec::with_capacity(count);
    for n in 0..count {
        let pem_path = paths.sig_private(n);
        let key_path = paths.sig_public(n);
        let signer = load_signer(&pem_path)?;
        warn_if_exposed(&pem_path);
        let raw = read_file(&key_path)?;
        let stored = SigKey::from_slice(&raw).map_err(|_| PkiError::BadSigPublicKey {
            path: key_path.clone(),
            len: raw.len(),
        })?;
        if stored != signer.public_key() {
            return Err(PkiError::SigningKeyMismatch {
                public: key_path,
                private: pem_path,
            });
        }
        signers.push(signer);
    }
    Ok(signers)
}

impl Pki {
    /// Load and validate the PKI in `paths.dir`: the gateway CA (exactly one CA certificate,
    /// matching key), the server chain and key (usable by rustls), the optional bootstrap CAs,
    /// and the signing keys `sig-0 .. sig-(n-1)` (private and public halves matching).
    ///
    /// # Errors
    /// The first problem found, naming the file.
    pub fn load(paths: &PkiPaths) -> Result<Self, PkiError> {
        let (ca_der, ca_issuer) = load_ca(paths)?;
        check_trust(&paths.ca_cert(), &ca_der)?;

        let server_cert_path = paths.server_cert();
        let server_key_path = paths.server_key();
        let server_chain = read_certs(&server_cert_path)?;
        let server_key = read_rustls_key(&server_key_path)?;
        warn_if_exposed(&server_key_path);
        let provider = rustls::crypto::ring::default_provider();
        match rustls::sign::CertifiedKey::from_der(
            server_chain.clone(),
            server_key.clone_key(),
            &provider,
        ) {
            Ok(_) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(PkiError::KeyMismatch {
                    key: server_key_path,
                    cert: server_cert_path,
                });
            }
            Err(source) => {
                return Err(PkiError::ServerIdentity {
                    path: server_key_path,
                    source,
                });
            }
        }
        let last = server_chain
            .last()
            .ok_or_else(|| PkiError::NoCertificate {
                path: server_cert_path.clone(),
            })?
            .clone();
        let anchored_by_ca =
            *last == *ca_der || parse_cert(&last).is_ok_and(|cert| issued_by(&cert, &ca_der));
        let (cups_trust, cups_trust_source) = if anchored_by_ca {
            (ca_der.clone(), CupsTrustSource::GatewayCa)
        } else {
            check_trust(&server_cert_path, &last)?;
            (last, CupsTrustSource::ServerChain)
        };

        let mut client_roots = RootCertStore::empty();
        client_roots
            .add(ca_der.clone())
            .map_err(|source| PkiError::BadTrustAnchor {
                path: paths.ca_cert(),
                source,
            })?;
        let bootstrap_path = paths.bootstrap_ca();
        let bootstrap = if exists(&bootstrap_path)? {
            let certs = read_certs(&bootstrap_path)?;
            let ca = parse_cert(&ca_der).map_err(|source| PkiError::BadCertificate {
                path: paths.ca_cert(),
                index: 0,
                source,
            })?;
            for (index, der_bytes) in certs.iter().enumerate() {
                let cert = parse_cert(der_bytes).map_err(|source| PkiError::BadCertificate {
                    path: bootstrap_path.clone(),
                    index,
                    source,
                })?;
                if !cert.is_ca() {
                    return Err(PkiError::NotCa {
                        path: bootstrap_path,
                        index,
                    });
                }
                if cert.subject().as_raw() == ca.subject().as_raw()
                    && cert.public_key().raw == ca.public_key().raw
                {
                    return Err(PkiError::BootstrapIsGatewayCa {
                        path: bootstrap_path,
                    });
                }
                client_roots
                    .add(der_bytes.clone())
                    .map_err(|source| PkiError::BadTrustAnchor {
                        path: bootstrap_path.clone(),
                        source,
                    })?;
            }
            certs
        } else {
            Vec::new()
        };

        let signers = load_signers(paths)?;
        Ok(Self {
            paths: paths.clone(),
            gateway_roots: vec![ca_der],
            ca_issuer,
            server_chain,
            server_key,
            cups_trust,
            cups_trust_source,
            bootstrap,
            client_roots: Arc::new(client_roots),
            signers,
        })
    }

    /// Where this PKI was loaded from.
    #[must_use]
    pub fn paths(&self) -> &PkiPaths {
        &self.paths
    }

    /// The gateway CA certificate, DER.
    #[must_use]
    pub fn ca_cert_der(&self) -> &[u8] {
        self.gateway_roots.first().map_or(&[][..], |c| c.as_ref())
    }

    /// The trust certificate (DER) that blobs for `usage` carry: the gateway CA for TC, the
    /// anchor of the server certificate for CUPS (see [`CupsTrustSource`]).
    #[must_use]
    pub fn trust_der(&self, usage: ClientUsage) -> &[u8] {
        match usage {
            ClientUsage::Cups => &self.cups_trust,
            ClientUsage::Tc => self.ca_cert_der(),
        }
    }

    /// Where the CUPS trust certificate comes from.
    #[must_use]
    pub fn cups_trust_source(&self) -> CupsTrustSource {
        self.cups_trust_source
    }

    /// Mint a client certificate and SEC1 key for `eui` (see the module docs for every
    /// field), signed by the gateway CA, valid from `now` - [`CLOCK_SKEW`] to `now +
    /// validity` (whole seconds), and build its station-safe mTLS blob.
    ///
    /// # Errors
    /// [`PkiError::InvalidValidity`] unless `validity` is positive,
    /// [`PkiError::ValidityOutOfRange`], [`PkiError::Random`], [`PkiError::Generate`], and
    /// [`PkiError::Blob`] if the blob is not station-safe (never handed out).
    pub fn mint_client(
        &self,
        eui: Eui64,
        usage: ClientUsage,
        validity: Duration,
        now: OffsetDateTime,
    ) -> Result<MintedClient, PkiError> {
        let (not_before, not_after) = validity_period(now, validity)?;
        let key = generate_p256("client key")?;
        let serial = random_serial()?;
        let mut params = CertificateParams::default();
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, eui.canonical().to_string());
        dn.push(DnType::OrganizationalUnitName, usage.organizational_unit());
        params.distinguished_name = dn;
        let urn = Ia5String::try_from(eui_urn(eui)).map_err(|source| PkiError::Generate {
            what: "client certificate SAN",
            source,
        })?;
        params.subject_alt_names = vec![SanType::URI(urn)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let cert =
            params
                .signed_by(&key, &self.ca_issuer)
                .map_err(|source| PkiError::Generate {
                    what: "client certificate",
                    source,
                })?;
        let key_sec1_der = sec1_of(&key, "client")?;
        let cert_der = cert.der().to_vec();
        let blob = checked_blob(BlobParts::Mtls {
            trust: self.trust_der(usage),
            cert: &cert_der,
            key: &key_sec1_der,
        })?;
        let crc = cups_core::crc::crc32(&blob);
        Ok(MintedClient {
            cert_der,
            key_sec1_der,
            serial_hex: serial_hex(&serial),
            not_after,
            not_before,
            usage,
            blob,
            crc,
        })
    }

    /// The mTLS blob `trust ‖ cert ‖ key` for a minted credential (trust per
    /// [`Pki::trust_der`] of its usage), checked station-safe.
    ///
    /// # Errors
    /// [`PkiError::Blob`] if it is not station-safe.
    pub fn mtls_blob(&self, minted: &MintedClient) -> Result<Vec<u8>, PkiError> {
        checked_blob(BlobParts::Mtls {
            trust: self.trust_der(minted.usage),
            cert: &minted.cert_der,
            key: &minted.key_sec1_der,
        })
    }

    /// A CUPS token blob `trust ‖ 00000000 ‖ header_lines` (e.g. from
    /// [`bearer_header_lines`]), checked station-safe. For TC use [`Pki::token_blob_for`].
    ///
    /// # Errors
    /// [`PkiError::Blob`] if it is not station-safe (e.g. malformed header lines).
    pub fn token_blob(&self, header_lines: &[u8]) -> Result<Vec<u8>, PkiError> {
        self.token_blob_for(ClientUsage::Cups, header_lines)
    }

    /// A token blob with the trust for `usage`, checked station-safe.
    ///
    /// # Errors
    /// [`PkiError::Blob`] if it is not station-safe.
    pub fn token_blob_for(
        &self,
        usage: ClientUsage,
        header_lines: &[u8],
    ) -> Result<Vec<u8>, PkiError> {
        checked_blob(BlobParts::Token {
            trust: self.trust_der(usage),
            header_lines,
        })
    }

    /// The CUPS server-auth-only blob `trust ‖ 00000000 ‖ 00000000`. For TC use
    /// [`Pki::server_auth_blob_for`].
    ///
    /// # Errors
    /// [`PkiError::Blob`] (not expected: the trust was checked at load).
    pub fn server_auth_blob(&self) -> Result<Vec<u8>, PkiError> {
        self.server_auth_blob_for(ClientUsage::Cups)
    }

    /// The server-auth-only blob with the trust for `usage`.
    ///
    /// # Errors
    /// [`PkiError::Blob`] (not expected: the trust was checked at load).
    pub fn server_auth_blob_for(&self, usage: ClientUsage) -> Result<Vec<u8>, PkiError> {
        checked_blob(BlobParts::ServerAuth {
            trust: self.trust_der(usage),
        })
    }

    /// The gateway CA certificate as a TLS trust anchor list (one certificate).
    #[must_use]
    pub fn gateway_roots(&self) -> &[CertificateDer<'static>] {
        &self.gateway_roots
    }

    /// The bootstrap CA certificates (empty without `bootstrap-ca.crt`).
    #[must_use]
    pub fn bootstrap_roots(&self) -> &[CertificateDer<'static>] {
        &self.bootstrap
    }

    /// Gateway CA followed by the bootstrap CAs: every anchor a client certificate may
    /// chain to. After verification, [`Pki::issued_by_bootstrap`] tells which one issued it.
    #[must_use]
    pub fn client_verifier_roots(&self) -> Vec<CertificateDer<'static>> {
        self.gateway_roots
            .iter()
            .chain(self.bootstrap.iter())
            .cloned()
            .collect()
    }

    /// [`Pki::client_verifier_roots`] as a rustls root store (validated at load).
    #[must_use]
    pub fn client_root_store(&self) -> Arc<RootCertStore> {
        Arc::clone(&self.client_roots)
    }

    /// A rustls client certificate verifier over [`Pki::client_verifier_roots`]. With
    /// `allow_anonymous`, clients without a certificate are let through to HTTP (token-mode
    /// gateways); the service must then authenticate them by token.
    ///
    /// # Errors
    /// [`PkiError::Verifier`].
    pub fn client_verifier(
        &self,
        provider: Arc<CryptoProvider>,
        allow_anonymous: bool,
    ) -> Result<Arc<dyn ClientCertVerifier>, PkiError> {
        let builder =
            WebPkiClientVerifier::builder_with_provider(self.client_root_store(), provider);
        let builder = if allow_anonymous {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        builder.build().map_err(PkiError::Verifier)
    }

    /// Whether `cert_der` (a leaf rustls verified against [`Pki::client_verifier_roots`]) was
    /// issued by one of the bootstrap CAs: its issuer name equals a bootstrap CA's subject
    /// and its signature verifies with that CA's key. `false` for unparseable input. The
    /// bootstrap file must hold the CA that directly issues factory certificates.
    #[must_use]
    pub fn issued_by_bootstrap(&self, cert_der: &[u8]) -> bool {
        let Ok(cert) = parse_cert(cert_der) else {
            return false;
        };
        self.bootstrap.iter().any(|ca| issued_by(&cert, ca))
    }

    /// Whether `cert_der` was issued by the gateway CA (same test as
    /// [`Pki::issued_by_bootstrap`]).
    #[must_use]
    pub fn issued_by_gateway_ca(&self, cert_der: &[u8]) -> bool {
        parse_cert(cert_der).is_ok_and(|cert| issued_by(&cert, self.ca_cert_der()))
    }

    /// The server certificate chain (leaf first) for the TLS listener.
    #[must_use]
    pub fn server_cert_chain(&self) -> Vec<CertificateDer<'static>> {
        self.server_chain.clone()
    }

    /// The server private key for the TLS listener (checked at load to match the leaf).
    #[must_use]
    pub fn server_key(&self) -> PrivateKeyDer<'static> {
        self.server_key.clone_key()
    }

    /// The update signers, `sig-0` first.
    #[must_use]
    pub fn signers(&self) -> &[UpdateSigner] {
        &self.signers
    }

    /// The raw public keys stations hold, `sig-0.key` first.
    #[must_use]
    pub fn sig_keys(&self) -> Vec<SigKey> {
        self.signers.iter().map(UpdateSigner::public_key).collect()
    }

    /// keyCRC of every signing key (what stations report in `keys`), `sig-0` first.
    #[must_use]
    pub fn key_crcs(&self) -> Vec<u32> {
        self.signers.iter().map(UpdateSigner::key_crc).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// init
// ---------------------------------------------------------------------------------------------

/// What [`init`] creates when missing.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Names for the server certificate (DNS names or IP addresses); `localhost` is always
    /// added. Add the machine's host name here.
    pub server_dns_names: Vec<String>,
    /// Common name of a new gateway CA.
    pub ca_common_name: String,
    /// Lifetime of a new gateway CA.
    pub ca_validity: Duration,
    /// Lifetime of a new server certificate.
    pub server_validity: Duration,
    /// How many update-signing keys must exist afterwards (existing ones are kept, never
    /// removed).
    pub signing_keys: usize,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            server_dns_names: Vec::new(),
            ca_common_name: DEFAULT_CA_COMMON_NAME.to_owned(),
            ca_validity: DEFAULT_CA_VALIDITY,
            server_validity: DEFAULT_SERVER_VALIDITY,
            signing_keys: DEFAULT_SIGNING_KEYS,
        }
    }
}

/// What [`init`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitReport {
    /// Files created.
    pub created: Vec<PathBuf>,
    /// Files that existed and were left alone.
    pub kept: Vec<PathBuf>,
}

impl fmt::Display for InitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.created {
            writeln!(f, "created {}", p.display())?;
        }
        for p in &self.kept {
            writeln!(f, "kept    {}", p.display())?;
        }
        Ok(())
    }
}

/// Whether a certificate/key pair exists: true, false, or an error if only one half does.
fn pair_exists(cert: &Path, key: &Path) -> Result<bool, PkiError> {
    match (exists(cert)?, exists(key)?) {
        (true, true) => Ok(true),
        (false, false) => Ok(false),
        (true, false) => Err(PkiError::IncompletePair {
            present: cert.to_path_buf(),
            missing: key.to_path_buf(),
        }),
        (false, true) => Err(PkiError::IncompletePair {
            present: key.to_path_buf(),
            missing: cert.to_path_buf(),
        }),
    }
}

/// Server names for the certificate: `localhost` plus `names`, deduplicated, each a DNS name
/// or an IP address.
fn server_sans(names: &[String]) -> Result<Vec<SanType>, PkiError> {
    let mut seen = BTreeSet::new();
    let mut sans = Vec::new();
    for name in std::iter::once(LOCALHOST).chain(names.iter().map(String::as_str)) {
        let name = name.trim();
        if !seen.insert(name.to_ascii_lowercase()) {
            continue;
        }
        if let Ok(ip) = name.parse::<std::net::IpAddr>() {
            sans.push(SanType::IpAddress(ip));
            continue;
        }
        let valid = !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'*'));
        let invalid = || PkiError::InvalidDnsName {
            name: name.to_owned(),
        };
        if !valid {
            return Err(invalid());
        }
        sans.push(SanType::DnsName(
            Ia5String::try_from(name.to_owned()).map_err(|_| invalid())?,
        ));
    }
    Ok(sans)
}

fn new_ca(opts: &InitOptions, now: OffsetDateTime) -> Result<(Vec<u8>, KeyPair), PkiError> {
    let (not_before, not_after) = validity_period(now, opts.ca_validity)?;
    let key = generate_p256("gateway CA key")?;
    let mut params = CertificateParams::default();
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, opts.ca_common_name.as_str());
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params
        .self_signed(&key)
        .map_err(|source| PkiError::Generate {
            what: "gateway CA certificate",
            source,
        })?;
    Ok((cert.der().to_vec(), key))
}

fn new_server_cert(
    opts: &InitOptions,
    now: OffsetDateTime,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<(Vec<u8>, KeyPair), PkiError> {
    let (not_before, not_after) = validity_period(now, opts.server_validity)?;
    let sans = server_sans(&opts.server_dns_names)?;
    let key = generate_p256("server key")?;
    let mut params = CertificateParams::default();
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    let mut dn = DistinguishedName::new();
    let cn = opts
        .server_dns_names
        .iter()
        .map(|n| n.trim())
        .find(|n| n.parse::<std::net::IpAddr>().is_err())
        .unwrap_or(LOCALHOST);
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(|source| PkiError::Generate {
            what: "server certificate",
            source,
        })?;
    Ok((cert.der().to_vec(), key))
}

/// Create whatever is missing in `paths.dir` (created with mode 0700 if absent): the
/// gateway CA, a server certificate for `localhost` + `opts.server_dns_names` signed by it
/// (serverAuth), `sig-N.key` for every `sig-N.pem` without one, and new signing keys up to
/// `opts.signing_keys`. ECDSA P-256 everywhere; keys are SEC1 PEM with mode 0600, certificates
/// and public keys mode 0644. Never overwrites a file: existing files are listed as kept.
/// `bootstrap-ca.crt` is never created.
///
/// # Errors
/// [`PkiError::IncompletePair`] when only half of a pair exists, the errors of loading an
/// existing CA when a server certificate must be issued, I/O errors naming the file.
pub fn init(paths: &PkiPaths, opts: &InitOptions) -> Result<InitReport, PkiError> {
    // Refuse bad options before creating anything.
    if opts.signing_keys > MAX_SIGNING_KEYS {
        return Err(PkiError::TooManySigningKeys {
            path: paths.sig_private(MAX_SIGNING_KEYS),
        });
    }
    server_sans(&opts.server_dns_names)?;
    for validity in [opts.ca_validity, opts.server_validity] {
        if !validity.is_positive() {
            return Err(PkiError::InvalidValidity { validity });
        }
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(&paths.dir)
        .map_err(io_err(&paths.dir))?;
    let now = OffsetDateTime::now_utc();
    let mut report = InitReport::default();

    // Gateway CA.
    let (ca_cert, ca_key) = (paths.ca_cert(), paths.ca_key());
    let mut new_issuer = None;
    if pair_exists(&ca_cert, &ca_key)? {
        report.kept.extend([ca_cert.clone(), ca_key.clone()]);
    } else {
        let (der_bytes, key) = new_ca(opts, now)?;
        let sec1 = sec1_of(&key, "gateway CA")?;
        write_new(&ca_key, pem_text(PEM_SEC1, &sec1).as_bytes(), KEY_FILE_MODE)?;
        write_new(
            &ca_cert,
            pem_text(PEM_CERTIFICATE, &der_bytes).as_bytes(),
            CERT_FILE_MODE,
        )?;
        report.created.extend([ca_cert.clone(), ca_key.clone()]);
        let issuer =
            Issuer::from_ca_cert_der(&CertificateDer::from(der_bytes), key).map_err(|source| {
                PkiError::CaUnusable {
                    path: ca_cert.clone(),
                    source,
                }
            })?;
        new_issuer = Some(issuer);
    }

    // Server identity.
    let (server_cert, server_key) = (paths.server_cert(), paths.server_key());
    if pair_exists(&server_cert, &server_key)? {
        report
            .kept
            .extend([server_cert.clone(), server_key.clone()]);
    } else {
        let issuer = match new_issuer {
            Some(issuer) => issuer,
            None => load_ca(paths)?.1,
        };
        let (der_bytes, key) = new_server_cert(opts, now, &issuer)?;
        let sec1 = sec1_of(&key, "server")?;
        write_new(
            &server_key,
            pem_text(PEM_SEC1, &sec1).as_bytes(),
            KEY_FILE_MODE,
        )?;
        write_new(
            &server_cert,
            pem_text(PEM_CERTIFICATE, &der_bytes).as_bytes(),
            CERT_FILE_MODE,
        )?;
        report.created.extend([server_cert, server_key]);
    }

    // Update-signing keys.
    let (private, public) = scan_signing_keys(paths)?;
    let existing = check_signing_key_numbering(paths, &private, &public)?;
    for n in 0..existing {
        let pem_path = paths.sig_private(n);
        let key_path = paths.sig_public(n);
        report.kept.push(pem_path.clone());
        if public.contains(&n) {
            report.kept.push(key_path);
        } else {
            let signer = load_signer(&pem_path)?;
            write_new(&key_path, &signer.public_key().0, CERT_FILE_MODE)?;
            report.created.push(key_path);
        }
    }
    for n in existing..opts.signing_keys {
        let key = generate_p256("signing key")?;
        let sec1 = sec1_of(&key, "signing")?;
        let pem_path = paths.sig_private(n);
        let key_path = paths.sig_public(n);
        let signer =
            UpdateSigner::from_sec1_der(&sec1).map_err(|source| PkiError::BadSigningKey {
                path: pem_path.clone(),
                source,
            })?;
        write_new(
            &pem_path,
            pem_text(PEM_SEC1, &sec1).as_bytes(),
            KEY_FILE_MODE,
        )?;
        write_new(&key_path, &signer.public_key().0, CERT_FILE_MODE)?;
        report.created.extend([pem_path, key_path]);
    }

    if !report.created.is_empty() {
        // Make the new directory entries durable; best effort (some filesystems refuse).
        if let Ok(dir) = File::open(&paths.dir) {
            let _ = dir.sync_all();
        }
        tracing::info!(dir = %paths.dir.display(), created = report.created.len(), "PKI initialised");
    }
    Ok(report)
}

// ---------------------------------------------------------------------------------------------
// inspect
// ---------------------------------------------------------------------------------------------

/// One certificate, for display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSummary {
    /// The file it is in.
    pub file: PathBuf,
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Subject alternative names (`DNS:..`, `IP:..`, `URI:..`).
    pub sans: Vec<String>,
    /// Serial, lowercase hex.
    pub serial_hex: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// Expiry.
    pub not_after: OffsetDateTime,
    /// Whether it is a CA.
    pub is_ca: bool,
    /// DER length.
    pub der_len: usize,
}

/// One update-signing key, for display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeySummary {
    /// N of `sig-N`.
    pub index: usize,
    /// The public key file.
    pub file: PathBuf,
    /// keyCRC (crc32 of the raw 64-byte public key), what stations report in `keys`.
    pub key_crc: u32,
}

/// What a PKI directory holds (`cups-server init --inspect`).
#[derive(Debug)]
pub struct PkiSummary {
    /// The directory.
    pub dir: PathBuf,
    /// The gateway CA certificate(s) in `ca.crt`.
    pub ca: Vec<CertSummary>,
    /// The server chain in `cups.crt`.
    pub server_chain: Vec<CertSummary>,
    /// The bootstrap CAs in `bootstrap-ca.crt`.
    pub bootstrap: Vec<CertSummary>,
    /// The signing keys (`sig-N.key` files that hold a 64-byte key).
    pub signing_keys: Vec<SigningKeySummary>,
    /// Expected files that are missing (`bootstrap-ca.crt` is optional and never listed).
    pub missing: Vec<PathBuf>,
    /// Why [`Pki::load`] fails on this directory, if it does.
    pub load_error: Option<PkiError>,
}

fn general_name_text(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(n) => format!("DNS:{n}"),
        GeneralName::URI(u) => format!("URI:{u}"),
        GeneralName::RFC822Name(e) => format!("email:{e}"),
        GeneralName::IPAddress(ip) => match ip.len() {
            4 => <[u8; 4]>::try_from(*ip)
                .map(|a| format!("IP:{}", std::net::Ipv4Addr::from(a)))
                .unwrap_or_default(),
            16 => <[u8; 16]>::try_from(*ip)
                .map(|a| format!("IP:{}", std::net::Ipv6Addr::from(a)))
                .unwrap_or_default(),
            _ => format!("IP:{}", hex::encode(ip)),
        },
        other => format!("{other:?}"),
    }
}

fn summarize_certs(path: &Path) -> Vec<CertSummary> {
    let Ok(certs) = read_certs(path) else {
        return Vec::new();
    };
    certs
        .iter()
        .filter_map(|der_bytes| {
            let cert = parse_cert(der_bytes).ok()?;
            let sans = cert
                .subject_alternative_name()
                .ok()
                .flatten()
                .map(|s| {
                    s.value
                        .general_names
                        .iter()
                        .map(general_name_text)
                        .collect()
                })
                .unwrap_or_default();
            Some(CertSummary {
                file: path.to_path_buf(),
                subject: cert.subject().to_string(),
                issuer: cert.issuer().to_string(),
                sans,
                serial_hex: serial_hex(cert.raw_serial()),
                not_before: cert.validity().not_before.to_datetime(),
                not_after: cert.validity().not_after.to_datetime(),
                is_ca: cert.is_ca(),
                der_len: der_bytes.len(),
            })
        })
        .collect()
}

/// Summarize the PKI in `paths.dir` without changing anything: each certificate (subject,
/// SANs, validity), the signing keys' CRCs, missing files, and whether [`Pki::load`] accepts
/// the directory.
#[must_use]
pub fn inspect(paths: &PkiPaths) -> PkiSummary {
    let mut missing = Vec::new();
    for path in [
        paths.ca_cert(),
        paths.ca_key(),
        paths.server_cert(),
        paths.server_key(),
    ] {
        if !path.exists() {
            missing.push(path);
        }
    }
    let mut signing_keys = Vec::new();
    if let Ok((private, public)) = scan_signing_keys(paths) {
        for n in private.union(&public) {
            let file = paths.sig_public(*n);
            if let Ok(key) = read_file(&file).and_then(|raw| {
                SigKey::from_slice(&raw).map_err(|_| PkiError::BadSigPublicKey {
                    path: file.clone(),
                    len: raw.len(),
                })
            }) {
                signing_keys.push(SigningKeySummary {
                    index: *n,
                    file,
                    key_crc: key.crc(),
                });
            } else if !file.exists() {
                missing.push(file);
            }
        }
    }
    PkiSummary {
        dir: paths.dir.clone(),
        ca: summarize_certs(&paths.ca_cert()),
        server_chain: summarize_certs(&paths.server_cert()),
        bootstrap: summarize_certs(&paths.bootstrap_ca()),
        signing_keys,
        missing,
        load_error: Pki::load(paths).err(),
    }
}

fn write_cert_summary(f: &mut fmt::Formatter<'_>, c: &CertSummary) -> fmt::Result {
    writeln!(f, "    subject    {}", c.subject)?;
    writeln!(f, "    issuer     {}", c.issuer)?;
    if !c.sans.is_empty() {
        writeln!(f, "    SANs       {}", c.sans.join(", "))?;
    }
    writeln!(f, "    serial     {}", c.serial_hex)?;
    writeln!(f, "    valid      {} .. {}", c.not_before, c.not_after)?;
    writeln!(f, "    CA         {}   ({} bytes DER)", c.is_ca, c.der_len)
}

impl fmt::Display for PkiSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "PKI in {}", self.dir.display())?;
        let sections = [
            (files::CA_CERT, &self.ca),
            (files::SERVER_CERT, &self.server_chain),
            (files::BOOTSTRAP_CA_CERT, &self.bootstrap),
        ];
        for (name, certs) in sections {
            for (i, c) in certs.iter().enumerate() {
                writeln!(f, "  {name} #{i}")?;
                write_cert_summary(f, c)?;
            }
        }
        for k in &self.signing_keys {
            writeln!(
                f,
                "  {}  keyCRC {} (0x{:08x})",
                files::sig_public(k.index),
                k.key_crc,
                k.key_crc
            )?;
        }
        for m in &self.missing {
            writeln!(f, "  missing {}", m.display())?;
        }
        match &self.load_error {
            None => writeln!(f, "  status: OK"),
            Some(e) => writeln!(f, "  status: NOT USABLE: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_push_lengths() {
        assert_eq!(der::tlv(0x04, &[]), vec![0x04, 0x00]);
        assert_eq!(der::tlv(0x04, &[7; 127])[..2], [0x04, 0x7F]);
        assert_eq!(der::tlv(0x04, &[7; 128])[..3], [0x04, 0x81, 0x80]);
        assert_eq!(der::tlv(0x04, &[7; 255])[..3], [0x04, 0x81, 0xFF]);
        assert_eq!(der::tlv(0x04, &[7; 256])[..4], [0x04, 0x82, 0x01, 0x00]);
        for len in [0usize, 1, 127, 128, 255, 256, 1000, 70_000] {
            let v = der::tlv(0x30, &vec![1; len]);
            let t = der::read(&v).expect("reads back");
            assert_eq!((t.tag, t.content.len(), t.rest.len()), (0x30, len, 0));
        }
    }

    #[test]
    fn der_read_rejects() {
        assert!(der::read(&[]).is_none());
        assert!(der::read(&[0x30]).is_none());
        assert!(der::read(&[0x30, 0x80]).is_none(), "indefinite");
        assert!(
            der::read(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none(),
            "5 length octets"
        );
        assert!(der::read(&[0x30, 0x02, 0x00]).is_none(), "truncated");
    }

    #[test]
    fn generated_key_converts_to_121_byte_sec1() {
        let key = generate_p256("test").expect("key");
        let sec1 = pkcs8_to_sec1_p256(key.serialized_der()).expect("sec1");
        assert_eq!(sec1.len(), SEC1_P256_LEN);
        assert_eq!(sec1[..2], [0x30, 0x77]);
        let signer = UpdateSigner::from_sec1_der(&sec1).expect("cups-core reads it");
        assert_eq!(
            signer.public_key().to_uncompressed()[..],
            *key.public_key_raw()
        );
        // And back: the SEC1 key wraps into a PKCS#8 ring accepts.
        let (pkcs8, alg) = sec1_to_pkcs8(&sec1).expect("pkcs8");
        let again = KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(pkcs8), alg)
            .expect("ring accepts");
        assert_eq!(again.public_key_raw(), key.public_key_raw());
    }

    #[test]
    fn sec1_without_public_key_is_completed() {
        let key = generate_p256("test").expect("key");
        let sec1 = pkcs8_to_sec1_p256(key.serialized_der()).expect("sec1");
        // 30 77 | 02 01 01 | 04 20 d | a0 0a .. | a1 44 ..: keep version and d only.
        let d = &sec1[7..39];
        let mut inner = Vec::new();
        der::push(&mut inner, der::INTEGER, &[1]);
        der::push(&mut inner, der::OCTET_STRING, d);
        let bare = der::tlv(der::SEQUENCE, &inner);
        let (pkcs8, alg) = sec1_to_pkcs8(&bare).expect("derives the point");
        let pair = KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(pkcs8), alg)
            .expect("ring accepts");
        assert_eq!(pair.public_key_raw(), key.public_key_raw());
    }

    #[test]
    fn pkcs8_to_sec1_rejects_other_keys() {
        assert!(matches!(
            pkcs8_to_sec1_p256(&[0x30, 0x00]),
            Err(KeyProblem::Malformed)
        ));
        let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("p384");
        assert!(matches!(
            pkcs8_to_sec1_p256(p384.serialized_der()),
            Err(KeyProblem::UnsupportedCurve)
        ));
    }

    #[test]
    fn urn_parsing() {
        let eui = Eui64::parse("0016c001ff10a235").expect("eui");
        assert_eq!(eui_urn(eui), "urn:dev:mac:0016c001ff10a235");
        assert_eq!(eui_from_urn("urn:dev:mac:0016c001ff10a235"), Some(eui));
        assert_eq!(eui_from_urn("URN:DEV:MAC:0016C001FF10A235"), Some(eui));
        assert_eq!(eui_from_urn("urn:dev:mac:0016c001ff10"), None, "MAC-48");
        assert_eq!(eui_from_urn("urn:dev:mac:0016c001ff10a2356"), None);
        assert_eq!(eui_from_urn("urn:dev:mac:00-16-c0-01-ff-10-a2"), None);
        assert_eq!(eui_from_urn("urn:dev:mac:0000000000000000"), None, "zero");
        assert_eq!(eui_from_urn("urn:dev:ow:0016c001ff10a235"), None);
        assert_eq!(eui_from_urn("urn:dev:mac:"), None);
        assert_eq!(eui_from_urn("ur"), None);
    }

    #[test]
    fn serial_hex_strips_sign_byte() {
        assert_eq!(serial_hex(&[0x00, 0x80, 0x01]), "8001");
        assert_eq!(serial_hex(&[0x7f]), "7f");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[]), "00");
        let s = random_serial().expect("rng");
        assert_eq!(s[0] & 0xC0, 0x40);
        assert_eq!(serial_hex(&s).len(), 2 * SERIAL_LEN);
    }

    #[test]
    fn validity_checks() {
        let now = OffsetDateTime::now_utc();
        assert!(matches!(
            validity_period(now, Duration::ZERO),
            Err(PkiError::InvalidValidity { .. })
        ));
        assert!(matches!(
            validity_period(now, Duration::seconds(-1)),
            Err(PkiError::InvalidValidity { .. })
        ));
        assert!(validity_period(now, Duration::seconds(1)).is_ok());
        assert!(matches!(
            validity_period(now, Duration::days(365 * 9000)),
            Err(PkiError::ValidityOutOfRange)
        ));
    }

    #[test]
    fn server_names() {
        let sans = server_sans(&["gw.example.org".into(), "LOCALHOST".into(), "::1".into()])
            .expect("valid");
        assert_eq!(sans.len(), 3, "localhost deduplicated case-insensitively");
        assert!(matches!(sans[2], SanType::IpAddress(_)));
        assert!(matches!(
            server_sans(&["bad name".into()]),
            Err(PkiError::InvalidDnsName { .. })
        ));
        assert!(matches!(
            server_sans(&["".into()]),
            Err(PkiError::InvalidDnsName { .. })
        ));
    }

    #[test]
    fn pki_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Pki>();
        check::<PkiError>();
    }
}
