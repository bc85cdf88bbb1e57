//! Credential blobs as CUPS sends them: build the three forms, split a blob exactly as the
//! station does (quirks included), and check that a blob is one the station handles right.
//!
//! ```text
//!  mutual TLS        DER(trust cert) ‖ DER(client cert) ‖ DER(client key, SEC1)
//!  token             DER(trust cert) ‖ 00 00 00 00      ‖ "Name: value\r\n"...
//!  server auth only  DER(trust cert) ‖ 00 00 00 00      ‖ 00 00 00 00
//! ```
//!
//! Three layers, to be used in this order by a server:
//!
//! 1. **Build** — [`BlobParts`] (one enum, with [`BlobParts::len`] and [`BlobParts::write`]) and
//!    the equivalent free functions [`build_mtls`], [`build_token`], [`build_server_auth`] with
//!    [`mtls_len`], [`token_len`], [`server_auth_len`]. They only concatenate into a caller buffer
//!    and check its size and [`MAX_BLOB_LEN`]; they do **not** check that the station will split
//!    the result right. A server must run [`check_station_safe`] on every blob before sending
//!    it, or use [`BlobParts::write_checked`], which does both.
//! 2. **Emulate** — [`station_split`] cuts a blob exactly like the station's `sys_credComplete`
//!    (`src/sys.c`), including its mistakes: it is the oracle for "what will the station store".
//! 3. **Check** — [`check_station_safe`] accepts only blobs of one of the three forms above whose
//!    parts are well-formed and which the station is certain to split into exactly those parts
//!    (so its next reported CRC is `crc32(blob)`). [`SafeBlob`] wraps an accepted blob.
//!
//! ## What the station does (and [`station_split`] reproduces)
//!
//! The station copies the segment into a buffer of `len + 1` bytes with a NUL at `[len]`, then:
//! an element's length is `b[1] + 2` if `b[1] < 0x80`, else `(b[2] << 8 | b[3]) + 4` for *any*
//! long form (so `30 81 87 ..` — a PKCS#8 key — reads as 34566 bytes); the trust must start with
//! `0x30`; after it a `0x00` byte means "no client cert" and the key starts 4 bytes later (the
//! other three bytes are not looked at); otherwise the cert must start with `0x30`; a key offset
//! beyond the end is an error; the key is a SEQUENCE (`0x30`), absent (`0x00`) or else a token
//! running to the end; finally `trust_len + cert_len + key_len > len` is an error. Reading index
//! `len` yields the NUL; reading beyond is out of bounds in C, reported here as
//! [`StationSplitError::ReadsPastEnd`] instead of guessed. The station's `credComplete` INFO log
//! lines also read `p[cert_off - 4]`, which for a trust shorter than 4 bytes wraps (unsigned) to
//! an address 4 GiB away ([`StationSplitError::LogReadsBeforeStart`]); their other reads, up to
//! 7 bytes past an offset, are small over-reads the real station performs even for the valid
//! server-auth form and are ignored here.
//!
//! ## What [`check_station_safe`] checks
//!
//! * size: `1..=MAX_BLOB_LEN` bytes; not PEM.
//! * the three **top-level** elements the station walks (trust, client cert, key): tag `0x30`
//!   and a length the station reads right — short form (content ≤ [`MAX_SHORT_FORM_LEN`]) or the
//!   two-byte form `82 hh ll` with content ≥ 256. The one-byte long form `81 xx` (content
//!   128..=255, what DER mandates there) is mis-read by the station, and `82 00 xx` is not DER,
//!   so content of 128..=255 bytes cannot be sent at all; longer forms are refused too.
//! * **inside** the elements: every nested TLV of constructed types is well-formed DER
//!   (definite, minimal lengths, exact nesting, depth ≤ [`MAX_DER_DEPTH`]). Nested `81 xx`
//!   lengths are *allowed*: the station's walker never looks inside an element, and mbedTLS,
//!   which parses them, handles every DER length (real certificates often have a 128..=255 byte
//!   Name). On top, with the `der` crate: trust and client cert have the X.509 Certificate shape
//!   (TBSCertificate with version, serial, algorithm, issuer, validity, subject, SPKI, optional
//!   `[1]`..`[3]`; signature algorithm; BIT STRING); the key is a SEC1 `ECPrivateKey` for P-256
//!   (version 1, 32-byte private key, `[0]` = prime256v1 when present, `[1]` an uncompressed
//!   65-byte point when present). PKCS#8 keys and certificates in the key position (a trust
//!   chain sent as "trust") get their own errors. When the key carries its public point, it must
//!   equal the client certificate's public key.
//! * the absent markers are exactly `00 00 00 00`; nothing follows the last part.
//! * a token is one or more complete header lines as the station's `validateAuthToken`
//!   (`src/net.c`) accepts them, but stricter: see [`check_header_lines`].
//! * last, as a cross-check, [`station_split`] of the blob must give exactly the intended parts.

use core::fmt;
use core::ops::Range;

use der::asn1::{AnyRef, BitStringRef, GeneralizedTime, ObjectIdentifier, UtcTime};
use der::{Decode, Reader, SliceReader, Tag, TagMode, TagNumber, Tagged};

/// Largest blob: the segment length is a u16.
pub const MAX_BLOB_LEN: usize = 65_535;
/// The four zero bytes that stand for "no client certificate" / "no key".
pub const ABSENT: [u8; 4] = [0; 4];
/// Length of the [`ABSENT`] marker, the amount the station skips after a `0x00` byte.
pub const ABSENT_LEN: usize = ABSENT.len();
/// The DER tag of a SEQUENCE, the only top-level tag the station recognises.
pub const SEQUENCE_TAG: u8 = 0x30;
/// Longest element content with a short-form length (`30 7f ...`).
pub const MAX_SHORT_FORM_LEN: usize = 127;
/// Shortest content that DER encodes with the two-byte form `82 hh ll` (shorter long lengths
/// take the one-byte form `81 xx`, which the station mis-reads).
pub const MIN_TWO_BYTE_FORM_LEN: usize = 256;
/// Deepest nesting of constructed DER elements accepted inside a part (a certificate needs 6).
pub const MAX_DER_DEPTH: usize = 16;
/// How a PEM file starts; PEM is never a valid blob part.
pub const PEM_PREFIX: &[u8] = b"-----BEGIN";
/// Length of a P-256 private key in a SEC1 `ECPrivateKey`.
pub const P256_PRIVATE_KEY_LEN: usize = 32;
/// Length of an uncompressed P-256 point `04 ‖ X ‖ Y`.
pub const P256_POINT_LEN: usize = 65;
/// How far back the station's `credComplete` log line reads before the cert offset.
pub const STATION_LOG_LOOKBEHIND: usize = 4;

/// The named curve P-256 (prime256v1, secp256r1).
const P256_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// Highest X.509 version number (v3 = 2).
const MAX_X509_VERSION: u8 = 2;
/// Highest context-specific tag at the end of a TBSCertificate (`[3]` extensions).
const MAX_TBS_TRAILER_TAG: u32 = 3;

/// Where the station cuts a blob: the byte ranges it stores as trust, cert and key.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StationSplit {
    /// Stored as `*.trust`.
    pub trust: Range<usize>,
    /// Stored as `*.crt` (empty range = empty file).
    pub cert: Range<usize>,
    /// Stored as `*.key` (a SEC1 key, or the token header lines; empty = empty file).
    pub key: Range<usize>,
}

impl StationSplit {
    /// The three slices of `blob` the station stores (trust, cert, key); `None` if a range does
    /// not lie inside `blob` (never the case for a split [`station_split`] returned for `blob`).
    #[must_use]
    pub fn slices<'a>(&self, blob: &'a [u8]) -> Option<(&'a [u8], &'a [u8], &'a [u8])> {
        Some((
            blob.get(self.trust.clone())?,
            blob.get(self.cert.clone())?,
            blob.get(self.key.clone())?,
        ))
    }

    /// The credential CRC the station reports after storing this split of `blob`
    /// ([`crate::crc::cred_set_crc`] of the three slices); `None` as for [`Self::slices`].
    #[must_use]
    pub fn stored_crc(&self, blob: &[u8]) -> Option<u32> {
        let (t, c, k) = self.slices(blob)?;
        Some(crate::crc::cred_set_crc(t, c, k))
    }
}

/// The three blob forms.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum BlobForm {
    /// Trust ‖ client cert ‖ SEC1 key: mutual TLS.
    Mtls,
    /// Trust ‖ `00000000` ‖ header lines: server auth plus a token header.
    Token,
    /// Trust ‖ `00000000` ‖ `00000000`: server auth only.
    ServerAuth,
}

/// One of the three parts of a blob, for error reports.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum BlobPart {
    /// The trust certificate (stored as `*.trust`).
    Trust,
    /// The client certificate (stored as `*.crt`).
    Cert,
    /// The client key or token (stored as `*.key`).
    Key,
}

impl fmt::Display for BlobPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Trust => "trust",
            Self::Cert => "cert",
            Self::Key => "key",
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------------

/// The parts of a blob to build, one variant per form. Build with [`Self::write`] (size checks
/// only) or [`Self::write_checked`] (plus [`check_station_safe`], what a server should use).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BlobParts<'a> {
    /// Mutual TLS.
    Mtls {
        /// DER trust certificate (exactly one).
        trust: &'a [u8],
        /// DER client certificate.
        cert: &'a [u8],
        /// DER SEC1 `ECPrivateKey` (`30 77 ...` for P-256), never PKCS#8.
        key: &'a [u8],
    },
    /// Token: server auth plus header lines sent on every TLS request.
    Token {
        /// DER trust certificate (exactly one).
        trust: &'a [u8],
        /// Complete header lines, e.g. `b"Authorization: Bearer xyz\r\n"`.
        header_lines: &'a [u8],
    },
    /// Server authentication only.
    ServerAuth {
        /// DER trust certificate (exactly one).
        trust: &'a [u8],
    },
}

/// Why a blob could not be built.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// The blob would be longer than [`MAX_BLOB_LEN`].
    TooLong {
        /// Length the blob would have.
        len: usize,
    },
    /// The output buffer is too small.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { len } => {
                write!(
                    f,
                    "credential blob of {len} bytes exceeds the maximum of {MAX_BLOB_LEN}"
                )
            }
            Self::BufferTooSmall { needed, available } => {
                write!(
                    f,
                    "output buffer too small: need {needed} bytes, have {available}"
                )
            }
        }
    }
}

impl core::error::Error for BuildError {}

/// Why [`BlobParts::write_checked`] failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum BuildCheckedError {
    /// The blob could not be built.
    Build(BuildError),
    /// The blob was built (into the buffer) but the station would mishandle it.
    Unsafe(UnsafeBlob),
}

impl fmt::Display for BuildCheckedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Build(e) => write!(f, "building credential blob: {e}"),
            Self::Unsafe(e) => write!(f, "credential blob not station-safe: {e}"),
        }
    }
}

impl core::error::Error for BuildCheckedError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Build(e) => Some(e),
            Self::Unsafe(e) => Some(e),
        }
    }
}

impl From<BuildError> for BuildCheckedError {
    fn from(e: BuildError) -> Self {
        Self::Build(e)
    }
}

impl From<UnsafeBlob> for BuildCheckedError {
    fn from(e: UnsafeBlob) -> Self {
        Self::Unsafe(e)
    }
}

impl<'a> BlobParts<'a> {
    /// The form these parts build.
    #[must_use]
    pub fn form(&self) -> BlobForm {
        match self {
            Self::Mtls { .. } => BlobForm::Mtls,
            Self::Token { .. } => BlobForm::Token,
            Self::ServerAuth { .. } => BlobForm::ServerAuth,
        }
    }

    /// The pieces concatenated to form the blob, in order.
    fn pieces(&self) -> [&'a [u8]; 3] {
        match *self {
            Self::Mtls { trust, cert, key } => [trust, cert, key],
            Self::Token {
                trust,
                header_lines,
            } => [trust, &ABSENT, header_lines],
            Self::ServerAuth { trust } => [trust, &ABSENT, &ABSENT],
        }
    }

    /// Length of the built blob (saturating at `usize::MAX`; anything above [`MAX_BLOB_LEN`]
    /// fails to build).
    #[must_use]
    pub fn len(&self) -> usize {
        self.pieces()
            .iter()
            .fold(0usize, |n, p| n.saturating_add(p.len()))
    }

    /// Whether the built blob would be empty (only for [`BlobParts::Mtls`] of three empty
    /// slices, which no check accepts).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Concatenate the parts into `out`; returns the blob length. Checks only [`MAX_BLOB_LEN`]
    /// and the buffer size: run [`check_station_safe`] on the result before sending it (or use
    /// [`Self::write_checked`]).
    ///
    /// # Errors
    /// [`BuildError::TooLong`] first, then [`BuildError::BufferTooSmall`]; `out` is untouched.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, BuildError> {
        let len = self.len();
        if len > MAX_BLOB_LEN {
            return Err(BuildError::TooLong { len });
        }
        let too_small = BuildError::BufferTooSmall {
            needed: len,
            available: out.len(),
        };
        let mut rest = out.get_mut(..len).ok_or(too_small)?;
        for piece in self.pieces() {
            let (head, tail) = rest.split_at_mut_checked(piece.len()).ok_or(too_small)?;
            head.copy_from_slice(piece);
            rest = tail;
        }
        Ok(len)
    }

    /// [`Self::write`], then [`check_station_safe`] on the written bytes; returns where the
    /// station will cut them (the blob is `out[..info.len]`).
    ///
    /// # Errors
    /// [`BuildCheckedError::Build`] as for [`Self::write`]; [`BuildCheckedError::Unsafe`] if the
    /// station would mishandle the blob, or if the blob is of another form than these parts
    /// (e.g. header lines of the form `00 00 00 00`).
    pub fn write_checked(&self, out: &mut [u8]) -> Result<BlobInfo, BuildCheckedError> {
        let len = self.write(out)?;
        let blob = out.get(..len).unwrap_or_default();
        let info = check_station_safe(blob)?;
        if info.form != self.form() {
            return Err(UnsafeBlob::FormMismatch {
                built: self.form(),
                found: info.form,
            }
            .into());
        }
        Ok(info)
    }

    /// Build into a new `Vec` (feature `alloc`). Same checks as [`Self::write`].
    ///
    /// # Errors
    /// [`BuildError::TooLong`].
    #[cfg(feature = "alloc")]
    pub fn to_vec(&self) -> Result<alloc::vec::Vec<u8>, BuildError> {
        let mut v = alloc::vec![0u8; self.len().min(MAX_BLOB_LEN.saturating_add(1))];
        let n = self.write(&mut v)?;
        v.truncate(n);
        Ok(v)
    }
}

/// Length of an mTLS blob: `trust ‖ cert ‖ key` (saturating).
#[must_use]
pub fn mtls_len(trust_der: &[u8], cert_der: &[u8], key_sec1_der: &[u8]) -> usize {
    BlobParts::Mtls {
        trust: trust_der,
        cert: cert_der,
        key: key_sec1_der,
    }
    .len()
}

/// Length of a token blob: `trust ‖ 00000000 ‖ header_lines` (saturating).
#[must_use]
pub fn token_len(trust_der: &[u8], header_lines: &[u8]) -> usize {
    BlobParts::Token {
        trust: trust_der,
        header_lines,
    }
    .len()
}

/// Length of a server-auth blob: `trust ‖ 00000000 ‖ 00000000` (saturating).
#[must_use]
pub fn server_auth_len(trust_der: &[u8]) -> usize {
    BlobParts::ServerAuth { trust: trust_der }.len()
}

/// Write `trust ‖ cert ‖ key` into `out`; returns the length. Size checks only: servers must
/// call [`check_station_safe`] on the result (or use [`BlobParts::write_checked`]).
///
/// # Errors
/// See [`BlobParts::write`].
pub fn build_mtls(
    trust_der: &[u8],
    cert_der: &[u8],
    key_sec1_der: &[u8],
    out: &mut [u8],
) -> Result<usize, BuildError> {
    BlobParts::Mtls {
        trust: trust_der,
        cert: cert_der,
        key: key_sec1_der,
    }
    .write(out)
}

/// Write `trust ‖ 00000000 ‖ header_lines` into `out`; returns the length. Size checks only:
/// servers must call [`check_station_safe`] on the result (or use [`BlobParts::write_checked`]).
///
/// # Errors
/// See [`BlobParts::write`].
pub fn build_token(
    trust_der: &[u8],
    header_lines: &[u8],
    out: &mut [u8],
) -> Result<usize, BuildError> {
    BlobParts::Token {
        trust: trust_der,
        header_lines,
    }
    .write(out)
}

/// Write `trust ‖ 00000000 ‖ 00000000` into `out`; returns the length. Size checks only:
/// servers must call [`check_station_safe`] on the result (or use [`BlobParts::write_checked`]).
///
/// # Errors
/// See [`BlobParts::write`].
pub fn build_server_auth(trust_der: &[u8], out: &mut [u8]) -> Result<usize, BuildError> {
    BlobParts::ServerAuth { trust: trust_der }.write(out)
}

// ---------------------------------------------------------------------------------------------
// Station emulation
// ---------------------------------------------------------------------------------------------

/// The offsets and lengths the station computed before it gave up (as in its log lines).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Cuts {
    /// `trust_len` (the trust starts at 0).
    pub trust_len: usize,
    /// `cert_off`.
    pub cert_offset: usize,
    /// `cert_len`.
    pub cert_len: usize,
    /// `key_off`.
    pub key_offset: usize,
    /// `key_len`.
    pub key_len: usize,
}

impl Cuts {
    /// The ranges these cuts describe (they may extend past the blob).
    #[must_use]
    pub fn to_split(&self) -> StationSplit {
        StationSplit {
            trust: 0..self.trust_len,
            cert: self.cert_offset..self.cert_offset.saturating_add(self.cert_len),
            key: self.key_offset..self.key_offset.saturating_add(self.key_len),
        }
    }
}

/// How the station fails on a blob; the Display texts follow its log lines.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum StationSplitError {
    /// Zero-length segment: it means "keep current", the station never splits it.
    Empty,
    /// Longer than [`MAX_BLOB_LEN`]: cannot be sent behind a u16 length.
    TooLong {
        /// Blob length.
        len: usize,
    },
    /// `ASN.1 SEQ expected for trust`.
    TrustNotSequence {
        /// The first byte.
        found: u8,
    },
    /// The station would read `pendData[at]` with `at > len`: out of bounds of its `len + 1`
    /// byte buffer, undefined behaviour in C (it would continue with a garbage byte).
    ReadsPastEnd {
        /// Index read.
        at: usize,
        /// Blob length.
        len: usize,
    },
    /// `ASN.1 SEQ expected for cert`.
    CertNotSequence {
        /// Cert offset (= trust length).
        offset: usize,
        /// The byte found there.
        found: u8,
    },
    /// `expecting more data (key_offset=.., total_len=..)`.
    KeyOffsetBeyondEnd {
        /// Computed key offset.
        key_offset: usize,
        /// Blob length.
        len: usize,
    },
    /// The station's INFO log line reads `p[cert_off - 4]`; with a trust of 2 or 3 bytes this
    /// wraps to an index ~4 GiB away: out of bounds, most likely a crash.
    LogReadsBeforeStart {
        /// `cert_off` (= trust length, below [`STATION_LOG_LOOKBEHIND`]).
        cert_offset: usize,
    },
    /// `Lengths do not align segment_len=.. parsed_len=..`: nothing is stored.
    LengthsDoNotAlign {
        /// Blob length.
        segment_len: usize,
        /// `trust_len + cert_len + key_len`.
        parsed_len: usize,
        /// What the station computed.
        cuts: Cuts,
    },
    /// The lengths "align", but the key slice ends past the blob (possible because of the 4
    /// bytes skipped for an absent cert): the station would store its NUL terminator and
    /// possibly bytes beyond its buffer as part of the key.
    KeyBeyondEnd {
        /// What the station computed.
        cuts: Cuts,
        /// Blob length.
        len: usize,
    },
}

impl fmt::Display for StationSplitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str(
                "empty credential segment: the station keeps its credentials and splits nothing",
            ),
            Self::TooLong { len } => write!(
                f,
                "credential blob of {len} bytes does not fit a u16 segment length (max {MAX_BLOB_LEN})"
            ),
            Self::TrustNotSequence { found } => write!(
                f,
                "Failed to parse credentials: ASN.1 SEQ expected for trust (0x{found:02x})"
            ),
            Self::ReadsPastEnd { at, len } => write!(
                f,
                "the station would read byte {at} of a {len}-byte blob, past its NUL terminator (undefined behaviour)"
            ),
            Self::CertNotSequence { offset, found } => write!(
                f,
                "Failed to parse credentials: ASN.1 SEQ expected for cert (0x{found:02x}) at offset {offset}"
            ),
            Self::KeyOffsetBeyondEnd { key_offset, len } => write!(
                f,
                "Failed to parse credentials: expecting more data (key_offset={key_offset}, total_len={len})"
            ),
            Self::LogReadsBeforeStart { cert_offset } => write!(
                f,
                "the station's credComplete log line would read p[cert_off-4] with cert_off={cert_offset} (unsigned wrap, out of bounds)"
            ),
            Self::LengthsDoNotAlign {
                segment_len,
                parsed_len,
                ..
            } => write!(
                f,
                "Failed to parse credentials! Lengths do not align segment_len={segment_len} parsed_len={parsed_len}. Ignoring."
            ),
            Self::KeyBeyondEnd { cuts, len } => write!(
                f,
                "the station would store key bytes {}..{} of a {len}-byte blob (past its end)",
                cuts.key_offset,
                cuts.key_offset.saturating_add(cuts.key_len)
            ),
        }
    }
}

impl core::error::Error for StationSplitError {}

/// `pendData[at]` as the station sees it: the blob, then a NUL at `len`, then nothing defined.
fn station_byte(blob: &[u8], at: usize) -> Result<u8, StationSplitError> {
    match blob.get(at) {
        Some(&b) => Ok(b),
        None if at == blob.len() => Ok(0),
        None => Err(StationSplitError::ReadsPastEnd {
            at,
            len: blob.len(),
        }),
    }
}

/// The station's `asn1_seqlen` at `off`: `b[1] + 2` for a short length, `(b[2] << 8 | b[3]) + 4`
/// for any long form (the number of length bytes is not looked at).
fn station_seqlen(blob: &[u8], off: usize) -> Result<usize, StationSplitError> {
    let len_byte = station_byte(blob, off.saturating_add(1))?;
    if len_byte & 0x80 == 0 {
        Ok(usize::from(len_byte).saturating_add(2))
    } else {
        let hi = station_byte(blob, off.saturating_add(2))?;
        let lo = station_byte(blob, off.saturating_add(3))?;
        Ok(usize::from(u16::from_be_bytes([hi, lo])).saturating_add(4))
    }
}

/// Split `blob` exactly as the station's `sys_credComplete` does (see the module docs),
/// returning the ranges it would store, or the way it fails.
///
/// "Success" means only that the station stores something: e.g. a blob with two trust
/// certificates splits "successfully" into the wrong parts. Use [`check_station_safe`] to know
/// whether the split is the intended one.
///
/// # Errors
/// See [`StationSplitError`]; the checks run in the station's order.
pub fn station_split(blob: &[u8]) -> Result<StationSplit, StationSplitError> {
    let len = blob.len();
    if len == 0 {
        return Err(StationSplitError::Empty);
    }
    if len > MAX_BLOB_LEN {
        return Err(StationSplitError::TooLong { len });
    }
    // Trust.
    let first = station_byte(blob, 0)?;
    if first != SEQUENCE_TAG {
        return Err(StationSplitError::TrustNotSequence { found: first });
    }
    let trust_len = station_seqlen(blob, 0)?;
    // Client certificate.
    let cert_offset = trust_len;
    let (cert_len, key_offset) = match station_byte(blob, cert_offset)? {
        0 => (0, cert_offset.saturating_add(ABSENT_LEN)),
        SEQUENCE_TAG => {
            let cert_len = station_seqlen(blob, cert_offset)?;
            (cert_len, cert_offset.saturating_add(cert_len))
        }
        found => {
            return Err(StationSplitError::CertNotSequence {
                offset: cert_offset,
                found,
            });
        }
    };
    if key_offset > len {
        return Err(StationSplitError::KeyOffsetBeyondEnd { key_offset, len });
    }
    // Key: a SEQUENCE, absent, or a token running to the end.
    let key_len = match station_byte(blob, key_offset)? {
        SEQUENCE_TAG => station_seqlen(blob, key_offset)?,
        0 => 0,
        _ => len.saturating_sub(key_offset),
    };
    // The INFO log lines read p[cert_off - 4] (unsigned).
    if cert_offset < STATION_LOG_LOOKBEHIND {
        return Err(StationSplitError::LogReadsBeforeStart { cert_offset });
    }
    let cuts = Cuts {
        trust_len,
        cert_offset,
        cert_len,
        key_offset,
        key_len,
    };
    let parsed_len = trust_len.saturating_add(cert_len).saturating_add(key_len);
    if parsed_len > len {
        return Err(StationSplitError::LengthsDoNotAlign {
            segment_len: len,
            parsed_len,
            cuts,
        });
    }
    if key_offset.saturating_add(key_len) > len {
        return Err(StationSplitError::KeyBeyondEnd { cuts, len });
    }
    Ok(cuts.to_split())
}

// ---------------------------------------------------------------------------------------------
// Station-safety check
// ---------------------------------------------------------------------------------------------

/// What is wrong with a SEC1 key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Sec1Problem {
    /// Not a DER `SEQUENCE { INTEGER, OCTET STRING, [0] OID OPTIONAL, [1] BIT STRING OPTIONAL }`.
    Malformed,
    /// The version is not `INTEGER 1`.
    Version,
    /// The private key is not [`P256_PRIVATE_KEY_LEN`] bytes.
    PrivateKeyLength {
        /// Its length.
        len: usize,
    },
    /// The `[0]` parameters name another curve than P-256.
    Curve,
    /// The `[1]` public key is not an uncompressed P-256 point.
    PublicKey,
}

impl fmt::Display for Sec1Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("not a DER SEC1 ECPrivateKey"),
            Self::Version => f.write_str("version is not 1"),
            Self::PrivateKeyLength { len } => {
                write!(
                    f,
                    "private key is {len} bytes, not {P256_PRIVATE_KEY_LEN} (P-256)"
                )
            }
            Self::Curve => f.write_str("curve is not P-256 (prime256v1)"),
            Self::PublicKey => f.write_str("public key is not an uncompressed P-256 point"),
        }
    }
}

/// What is wrong with token header lines (see [`check_header_lines`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum TokenProblem {
    /// No bytes at all.
    Empty,
    /// The first line has no `:` — a bare token instead of a header line.
    Bare,
    /// Starts with `0` (0x30): the station would take it for a DER SEQUENCE.
    StartsWithSequenceTag,
    /// A line starts without a header name.
    EmptyName,
    /// A name byte outside the station's `[A-Za-z0-9_-]`, or a missing `:` after the name.
    BadNameByte {
        /// The byte.
        byte: u8,
    },
    /// The `:` is not followed by a space.
    MissingSpace,
    /// Nothing after `": "`.
    EmptyValue,
    /// A value byte that is not printable ASCII or TAB.
    BadValueByte {
        /// The byte.
        byte: u8,
    },
    /// A CR not followed by LF.
    CrWithoutLf,
    /// The last line does not end with CRLF.
    Unterminated,
}

impl fmt::Display for TokenProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("no header lines"),
            Self::Bare => f.write_str("bare token: expected header lines `Name: value\\r\\n`"),
            Self::StartsWithSequenceTag => {
                f.write_str("starts with '0' (0x30), which the station reads as a DER SEQUENCE")
            }
            Self::EmptyName => f.write_str("header line without a name"),
            Self::BadNameByte { byte } => {
                write!(
                    f,
                    "byte 0x{byte:02x} in a header name (allowed: A-Z a-z 0-9 - _ then ':')"
                )
            }
            Self::MissingSpace => f.write_str("':' not followed by a space"),
            Self::EmptyValue => f.write_str("empty header value"),
            Self::BadValueByte { byte } => write!(f, "byte 0x{byte:02x} in a header value"),
            Self::CrWithoutLf => f.write_str("CR not followed by LF"),
            Self::Unterminated => f.write_str("last header line does not end with CRLF"),
        }
    }
}

/// Malformed token header lines: what and where (offset within the lines).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TokenError {
    /// Offset of the offending byte within the header lines.
    pub at: usize,
    /// What is wrong.
    pub problem: TokenProblem,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "token header lines, offset {}: {}",
            self.at, self.problem
        )
    }
}

impl core::error::Error for TokenError {}

/// Why [`check_station_safe`] refuses a blob. Offsets are within the blob.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum UnsafeBlob {
    /// Zero bytes (a zero-length segment means "keep current").
    Empty,
    /// Longer than [`MAX_BLOB_LEN`].
    TooLong {
        /// Blob length.
        len: usize,
    },
    /// PEM text; the station takes only DER from CUPS.
    Pem,
    /// A part does not start with a SEQUENCE tag.
    NotSequence {
        /// Which part.
        part: BlobPart,
        /// Its offset.
        offset: usize,
        /// The byte found.
        found: u8,
    },
    /// A part has an indefinite length (`30 80`).
    IndefiniteLength {
        /// Which part.
        part: BlobPart,
        /// Its offset.
        offset: usize,
    },
    /// A part uses the one-byte long length form `30 81 xx`, which the station mis-reads (it
    /// takes the two bytes after `81` as the length). Content of 128..=255 bytes cannot be sent.
    OneByteLongForm {
        /// Which part.
        part: BlobPart,
        /// Its offset.
        offset: usize,
        /// Its content length.
        content_len: usize,
    },
    /// A part uses a longer length form than DER allows (e.g. `82 00 xx`).
    NonMinimalLength {
        /// Which part.
        part: BlobPart,
        /// Its offset.
        offset: usize,
        /// Its content length.
        content_len: usize,
    },
    /// A part's length uses more than two length bytes (`83 ..` and up).
    LengthTooLong {
        /// Which part.
        part: BlobPart,
        /// Its offset.
        offset: usize,
        /// Number of length bytes announced.
        length_octets: usize,
    },
    /// A part's length runs past the end of the blob.
    Truncated {
        /// Which part.
        part: BlobPart,
        /// Its offset.
        offset: usize,
        /// Where it would end.
        end: usize,
        /// Blob length.
        len: usize,
    },
    /// The DER inside a part is malformed (bad nested length, overrun, trailing bytes, ...).
    MalformedDer {
        /// Which part.
        part: BlobPart,
        /// Offset of the faulty nested element.
        offset: usize,
    },
    /// DER nested deeper than [`MAX_DER_DEPTH`] inside a part.
    TooDeep {
        /// Which part.
        part: BlobPart,
        /// Offset of the element beyond the limit.
        offset: usize,
    },
    /// A trust or client cert part is well-formed DER but not an X.509 certificate.
    NotCertificate {
        /// Which part.
        part: BlobPart,
        /// Its offset.
        offset: usize,
    },
    /// Only a trust certificate: no client cert or absent marker follows.
    NothingAfterTrust {
        /// Where the next part should start.
        offset: usize,
    },
    /// An absent marker (`0x00` first byte) is not exactly `00 00 00 00`.
    AbsentNotZero {
        /// Its offset.
        offset: usize,
    },
    /// The key part (SEC1 key, header lines or `00 00 00 00`) is missing.
    MissingKey {
        /// Where it should start.
        offset: usize,
    },
    /// A DER key after an absent client cert: not one of the three forms.
    KeyWithoutCert {
        /// Key offset.
        offset: usize,
    },
    /// The key is PKCS#8 (`PrivateKeyInfo`, typically `30 81 87`): the station mis-splits it
    /// (the pkcs8-key vector). Convert it to SEC1 (`openssl ec -outform DER`).
    Pkcs8Key {
        /// Key offset.
        offset: usize,
    },
    /// A certificate where the key should be: a trust chain was sent as the trust (the
    /// two-trust-certs vector; the station stores the second CA as client cert).
    CertificateAsKey {
        /// Offset of that certificate.
        offset: usize,
    },
    /// The key is not a SEC1 P-256 `ECPrivateKey`.
    NotSec1Key {
        /// Key offset.
        offset: usize,
        /// What is wrong.
        problem: Sec1Problem,
    },
    /// The key's public point differs from the client certificate's public key.
    KeyDoesNotMatchCert {
        /// Client cert offset.
        cert_offset: usize,
        /// Key offset.
        key_offset: usize,
    },
    /// The token is not complete header lines (see [`check_header_lines`]).
    Token {
        /// Offset within the blob.
        at: usize,
        /// What is wrong.
        problem: TokenProblem,
    },
    /// Bytes after the last part: the station ignores them, so its credential CRC would never
    /// equal `crc32(blob)`.
    TrailingBytes {
        /// Where they start.
        offset: usize,
        /// How many.
        count: usize,
    },
    /// The station would fail on this blob (cross-check; the checks above should catch it).
    StationRejects(StationSplitError),
    /// The station would cut this blob elsewhere than intended (cross-check).
    StationMisSplit {
        /// The first part that differs.
        part: BlobPart,
        /// Intended range.
        expected_start: usize,
        /// Intended range end.
        expected_end: usize,
        /// The station's range.
        station_start: usize,
        /// The station's range end.
        station_end: usize,
    },
    /// [`BlobParts::write_checked`]: the blob built is of another form than the parts given.
    FormMismatch {
        /// The form of the parts.
        built: BlobForm,
        /// The form the built blob has.
        found: BlobForm,
    },
}

impl fmt::Display for UnsafeBlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty credential blob"),
            Self::TooLong { len } => {
                write!(
                    f,
                    "credential blob of {len} bytes exceeds the maximum of {MAX_BLOB_LEN}"
                )
            }
            Self::Pem => f.write_str("PEM credential blob: CUPS must send DER"),
            Self::NotSequence {
                part,
                offset,
                found,
            } => {
                write!(
                    f,
                    "{part} at offset {offset}: expected a DER SEQUENCE (0x30), found 0x{found:02x}"
                )
            }
            Self::IndefiniteLength { part, offset } => {
                write!(f, "{part} at offset {offset}: indefinite length")
            }
            Self::OneByteLongForm {
                part,
                offset,
                content_len,
            } => write!(
                f,
                "{part} at offset {offset}: length form `81 xx` ({content_len} content bytes) is mis-read by the station"
            ),
            Self::NonMinimalLength {
                part,
                offset,
                content_len,
            } => write!(
                f,
                "{part} at offset {offset}: non-minimal DER length ({content_len} content bytes)"
            ),
            Self::LengthTooLong {
                part,
                offset,
                length_octets,
            } => write!(
                f,
                "{part} at offset {offset}: {length_octets} length bytes (the station reads at most 2)"
            ),
            Self::Truncated {
                part,
                offset,
                end,
                len,
            } => write!(
                f,
                "{part} at offset {offset}: ends at {end}, past the blob end {len}"
            ),
            Self::MalformedDer { part, offset } => {
                write!(f, "{part}: malformed DER at offset {offset}")
            }
            Self::TooDeep { part, offset } => write!(
                f,
                "{part}: DER nested deeper than {MAX_DER_DEPTH} at offset {offset}"
            ),
            Self::NotCertificate { part, offset } => {
                write!(f, "{part} at offset {offset}: not an X.509 certificate")
            }
            Self::NothingAfterTrust { offset } => write!(
                f,
                "nothing after the trust certificate (offset {offset}): expected a client cert or 00 00 00 00"
            ),
            Self::AbsentNotZero { offset } => {
                write!(f, "absent marker at offset {offset} is not 00 00 00 00")
            }
            Self::MissingKey { offset } => write!(
                f,
                "key part missing at offset {offset}: expected a SEC1 key, header lines or 00 00 00 00"
            ),
            Self::KeyWithoutCert { offset } => {
                write!(f, "DER key at offset {offset} without a client certificate")
            }
            Self::Pkcs8Key { offset } => write!(
                f,
                "key at offset {offset} is PKCS#8, which the station mis-splits: send SEC1 (30 77 ...)"
            ),
            Self::CertificateAsKey { offset } => write!(
                f,
                "certificate at offset {offset} where the key should be: the trust must be exactly one certificate"
            ),
            Self::NotSec1Key { offset, problem } => {
                write!(f, "key at offset {offset}: {problem}")
            }
            Self::KeyDoesNotMatchCert {
                cert_offset,
                key_offset,
            } => write!(
                f,
                "key at offset {key_offset} does not match the client certificate at offset {cert_offset}"
            ),
            Self::Token { at, problem } => write!(f, "token at offset {at}: {problem}"),
            Self::TrailingBytes { offset, count } => {
                write!(f, "{count} trailing bytes at offset {offset}")
            }
            Self::StationRejects(e) => write!(f, "the station would reject this blob: {e}"),
            Self::StationMisSplit {
                part,
                expected_start,
                expected_end,
                station_start,
                station_end,
            } => {
                write!(
                    f,
                    "the station would cut {part} as {station_start}..{station_end} instead of {expected_start}..{expected_end}"
                )
            }
            Self::FormMismatch { built, found } => {
                write!(f, "built a {built:?} blob but it reads as {found:?}")
            }
        }
    }
}

impl core::error::Error for UnsafeBlob {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::StationRejects(e) => Some(e),
            _ => None,
        }
    }
}

/// A station-safe blob's form and where the station will cut it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BlobInfo {
    /// Which of the three forms.
    pub form: BlobForm,
    /// Blob length.
    pub len: usize,
    /// The ranges the station stores; equal to [`station_split`] of the blob. For an absent
    /// cert or key the range is empty (at the station's offset).
    pub split: StationSplit,
}

/// A blob that passed [`check_station_safe`], with infallible accessors.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SafeBlob<'a> {
    bytes: &'a [u8],
    info: BlobInfo,
}

impl<'a> SafeBlob<'a> {
    /// Check `bytes` with [`check_station_safe`].
    ///
    /// # Errors
    /// As [`check_station_safe`].
    pub fn new(bytes: &'a [u8]) -> Result<Self, UnsafeBlob> {
        let info = check_station_safe(bytes)?;
        Ok(Self { bytes, info })
    }

    /// The whole blob.
    #[must_use]
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Form and ranges.
    #[must_use]
    pub fn info(&self) -> &BlobInfo {
        &self.info
    }

    /// The form.
    #[must_use]
    pub fn form(&self) -> BlobForm {
        self.info.form
    }

    /// The trust certificate (DER).
    #[must_use]
    pub fn trust(&self) -> &'a [u8] {
        self.bytes
            .get(self.info.split.trust.clone())
            .unwrap_or_default()
    }

    /// The client certificate (DER); empty unless [`BlobForm::Mtls`].
    #[must_use]
    pub fn cert(&self) -> &'a [u8] {
        self.bytes
            .get(self.info.split.cert.clone())
            .unwrap_or_default()
    }

    /// The SEC1 key ([`BlobForm::Mtls`]), the header lines ([`BlobForm::Token`]) or empty.
    #[must_use]
    pub fn key(&self) -> &'a [u8] {
        self.bytes
            .get(self.info.split.key.clone())
            .unwrap_or_default()
    }

    /// `crc32(blob)`: the credential CRC the station reports once it stored this blob.
    #[must_use]
    pub fn crc32(&self) -> u32 {
        crate::crc::crc32(self.bytes)
    }
}

/// Check header lines for a token blob: one or more `Name: value\r\n` lines, nothing after the
/// last CRLF. Stricter than the station's `validateAuthToken`: names are non-empty runs of
/// `[A-Za-z0-9_-]` (the station's set), not starting with `0` (0x30, which the station's blob
/// splitter takes for a SEQUENCE); the separator is exactly `": "`; values are non-empty
/// printable ASCII or TAB (the station allows any byte but CR and NUL).
///
/// # Errors
/// The first problem found, with its offset in `lines`.
pub fn check_header_lines(lines: &[u8]) -> Result<(), TokenError> {
    let err = |at: usize, problem| Err(TokenError { at, problem });
    match lines.first() {
        None => return err(0, TokenProblem::Empty),
        Some(&SEQUENCE_TAG) => return err(0, TokenProblem::StartsWithSequenceTag),
        Some(_) => {}
    }
    let first_line = lines.split(|&b| b == b'\r').next().unwrap_or_default();
    if !first_line.contains(&b':') {
        return err(0, TokenProblem::Bare);
    }
    let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    let is_value = |b: u8| (0x20..=0x7e).contains(&b) || b == b'\t';
    let mut pos = 0usize;
    while pos < lines.len() {
        let line = lines.get(pos..).unwrap_or_default();
        let name_len = line.iter().take_while(|&&b| is_name(b)).count();
        if name_len == 0 {
            return err(pos, TokenProblem::EmptyName);
        }
        let at = pos.saturating_add(name_len);
        match line.get(name_len) {
            Some(b':') => {}
            Some(&byte) => return err(at, TokenProblem::BadNameByte { byte }),
            None => return err(at, TokenProblem::Unterminated),
        }
        let at = at.saturating_add(1);
        match line.get(name_len.saturating_add(1)) {
            Some(b' ') => {}
            Some(_) => return err(at, TokenProblem::MissingSpace),
            None => return err(at, TokenProblem::Unterminated),
        }
        let value_start = at.saturating_add(1);
        let value = lines.get(value_start..).unwrap_or_default();
        let value_len = value.iter().take_while(|&&b| is_value(b)).count();
        let at = value_start.saturating_add(value_len);
        match value.get(value_len) {
            None => return err(at, TokenProblem::Unterminated),
            Some(b'\r') => {}
            Some(&byte) => return err(at, TokenProblem::BadValueByte { byte }),
        }
        if value_len == 0 {
            return err(value_start, TokenProblem::EmptyValue);
        }
        if value.get(value_len.saturating_add(1)) != Some(&b'\n') {
            return err(at, TokenProblem::CrWithoutLf);
        }
        pos = at.saturating_add(2);
    }
    Ok(())
}

/// A top-level element header as the station needs it: returns the element's end offset.
fn top_element(blob: &[u8], offset: usize, part: BlobPart) -> Result<usize, UnsafeBlob> {
    let len = blob.len();
    let truncated = |end: usize| UnsafeBlob::Truncated {
        part,
        offset,
        end,
        len,
    };
    match blob.get(offset) {
        Some(&SEQUENCE_TAG) => {}
        Some(&found) => {
            return Err(UnsafeBlob::NotSequence {
                part,
                offset,
                found,
            });
        }
        None => return Err(truncated(offset.saturating_add(1))),
    }
    let byte = |i: usize| blob.get(offset.saturating_add(i)).copied();
    let (header_len, content_len) = match byte(1) {
        None => return Err(truncated(offset.saturating_add(2))),
        Some(l @ 0..=0x7f) => (2usize, usize::from(l)),
        Some(0x80) => return Err(UnsafeBlob::IndefiniteLength { part, offset }),
        Some(0x81) => {
            let content_len = byte(2).map_or(0, usize::from);
            return Err(UnsafeBlob::OneByteLongForm {
                part,
                offset,
                content_len,
            });
        }
        Some(0x82) => {
            let (Some(hi), Some(lo)) = (byte(2), byte(3)) else {
                return Err(truncated(offset.saturating_add(4)));
            };
            let content_len = usize::from(u16::from_be_bytes([hi, lo]));
            if content_len < MIN_TWO_BYTE_FORM_LEN {
                return Err(UnsafeBlob::NonMinimalLength {
                    part,
                    offset,
                    content_len,
                });
            }
            (4, content_len)
        }
        Some(l) => {
            let length_octets = usize::from(l & 0x7f);
            return Err(UnsafeBlob::LengthTooLong {
                part,
                offset,
                length_octets,
            });
        }
    };
    let end = offset
        .saturating_add(header_len)
        .saturating_add(content_len);
    if end > len {
        return Err(truncated(end));
    }
    Ok(end)
}

/// Why the generic TLV walk failed.
enum WalkError {
    /// Malformed at this absolute offset.
    Malformed(usize),
    /// Too deep at this absolute offset.
    TooDeep(usize),
}

/// Parse one DER TLV header at `bytes[pos..]`: returns (header length, content length,
/// constructed). Definite, minimal lengths up to 4 length bytes; any tag number form.
fn tlv_header(bytes: &[u8], pos: usize) -> Option<(usize, usize, bool)> {
    let at = |i: usize| bytes.get(pos.checked_add(i)?).copied();
    let tag = at(0)?;
    let constructed = tag & 0x20 != 0;
    let mut i = 1usize;
    if tag & 0x1f == 0x1f {
        // High tag number: base-128 bytes, no leading 0x80, at most 4.
        let first = at(1)?;
        if first == 0x80 {
            return None;
        }
        loop {
            let b = at(i)?;
            i = i.checked_add(1)?;
            if b & 0x80 == 0 {
                break;
            }
            if i > 4 {
                return None;
            }
        }
    }
    let l = at(i)?;
    i = i.checked_add(1)?;
    let content_len = match l {
        0..=0x7f => usize::from(l),
        0x81..=0x84 => {
            let n = usize::from(l & 0x7f);
            let mut v = 0usize;
            for _ in 0..n {
                let b = at(i)?;
                i = i.checked_add(1)?;
                v = v.checked_mul(256)?.checked_add(usize::from(b))?;
            }
            // Minimal: the short form when it fits, and no leading zero length byte.
            let min_octets = match v {
                0..=0x7f => 0,
                0x80..=0xff => 1,
                0x100..=0xffff => 2,
                0x1_0000..=0xff_ffff => 3,
                _ => 4,
            };
            if n != min_octets {
                return None;
            }
            v
        }
        _ => return None,
    };
    Some((i, content_len, constructed))
}

/// Walk every TLV in `bytes[start..end]`, recursing into constructed ones.
fn walk_der(bytes: &[u8], start: usize, end: usize, depth: usize) -> Result<(), WalkError> {
    let mut pos = start;
    while pos < end {
        let (hl, cl, constructed) = tlv_header(bytes, pos).ok_or(WalkError::Malformed(pos))?;
        let content = pos.saturating_add(hl);
        let next = content.saturating_add(cl);
        if next > end {
            return Err(WalkError::Malformed(pos));
        }
        if constructed {
            if depth >= MAX_DER_DEPTH {
                return Err(WalkError::TooDeep(pos));
            }
            walk_der(bytes, content, next, depth.saturating_add(1))?;
        }
        pos = next;
    }
    Ok(())
}

/// Check that `blob[range]` is well-formed DER throughout.
fn check_der(blob: &[u8], range: Range<usize>, part: BlobPart) -> Result<(), UnsafeBlob> {
    walk_der(blob, range.start, range.end, 0).map_err(|e| match e {
        WalkError::Malformed(offset) => UnsafeBlob::MalformedDer { part, offset },
        WalkError::TooDeep(offset) => UnsafeBlob::TooDeep { part, offset },
    })
}

/// Decode an element and require its tag.
fn expect_tag<'a>(r: &mut SliceReader<'a>, tag: Tag) -> der::Result<AnyRef<'a>> {
    let any = AnyRef::decode(r)?;
    any.tag().assert_eq(tag)?;
    Ok(any)
}

/// `AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }`.
fn algorithm_identifier(r: &mut SliceReader<'_>) -> der::Result<()> {
    r.sequence(|alg| {
        <ObjectIdentifier>::decode(alg)?;
        if !alg.is_finished() {
            AnyRef::decode(alg)?;
        }
        Ok(())
    })
}

/// `Time ::= CHOICE { utcTime UTCTime, generalTime GeneralizedTime }`.
fn time(r: &mut SliceReader<'_>) -> der::Result<()> {
    if r.peek_byte() == Some(0x17) {
        UtcTime::decode(r).map(|_| ())
    } else {
        GeneralizedTime::decode(r).map(|_| ())
    }
}

/// The X.509 Certificate shape (RFC 5280 §4.1); returns the subject public key BIT STRING.
fn certificate_shape(elem: &[u8]) -> der::Result<BitStringRef<'_>> {
    let mut r = SliceReader::new(elem)?;
    let public_key = r.sequence(|cert| -> der::Result<_> {
        let public_key = cert.sequence(|tbs| -> der::Result<_> {
            let version = tbs.context_specific::<u8>(TagNumber(0), TagMode::Explicit)?;
            if version.is_some_and(|v| v > MAX_X509_VERSION) {
                return Err(der::ErrorKind::Value { tag: Tag::Integer }.into());
            }
            expect_tag(tbs, Tag::Integer)?; // serialNumber
            algorithm_identifier(tbs)?; // signature
            expect_tag(tbs, Tag::Sequence)?; // issuer
            tbs.sequence(|validity| {
                time(validity)?;
                time(validity)
            })?;
            expect_tag(tbs, Tag::Sequence)?; // subject
            let public_key = tbs.sequence(|spki| {
                algorithm_identifier(spki)?;
                BitStringRef::decode(spki)
            })?;
            // issuerUniqueID [1], subjectUniqueID [2], extensions [3]: optional, in order.
            let mut last = 0u32;
            while !tbs.is_finished() {
                let any = AnyRef::decode(tbs)?;
                match any.tag() {
                    Tag::ContextSpecific { number, .. }
                        if number.value() > last && number.value() <= MAX_TBS_TRAILER_TAG =>
                    {
                        last = number.value();
                    }
                    tag => {
                        return Err(der::ErrorKind::TagUnexpected {
                            expected: None,
                            actual: tag,
                        }
                        .into());
                    }
                }
            }
            Ok(public_key)
        })?;
        algorithm_identifier(cert)?; // signatureAlgorithm
        BitStringRef::decode(cert)?; // signatureValue
        Ok(public_key)
    })?;
    r.finish()?;
    Ok(public_key)
}

/// Check `blob[range]` (a top-level element) is a well-formed certificate; returns its public key.
fn check_certificate(
    blob: &[u8],
    range: Range<usize>,
    part: BlobPart,
) -> Result<BitStringRef<'_>, UnsafeBlob> {
    let offset = range.start;
    check_der(blob, range.clone(), part)?;
    let elem = blob.get(range).unwrap_or_default();
    certificate_shape(elem).map_err(|_| UnsafeBlob::NotCertificate { part, offset })
}

/// Error inside the SEC1 decoder.
enum Sec1Error {
    Der,
    Problem(Sec1Problem),
}

impl From<der::Error> for Sec1Error {
    fn from(_: der::Error) -> Self {
        Self::Der
    }
}

/// The SEC1 `ECPrivateKey` shape for P-256 (RFC 5915); returns the public key if present.
fn sec1_shape(elem: &[u8]) -> Result<Option<BitStringRef<'_>>, Sec1Problem> {
    let problem = |e: Sec1Error| match e {
        Sec1Error::Der => Sec1Problem::Malformed,
        Sec1Error::Problem(p) => p,
    };
    let mut r = SliceReader::new(elem).map_err(|_| Sec1Problem::Malformed)?;
    let public_key = r
        .sequence(|k| -> Result<_, Sec1Error> {
            let version = expect_tag(k, Tag::Integer)?;
            if version.value() != [1] {
                return Err(Sec1Error::Problem(Sec1Problem::Version));
            }
            let private_key = expect_tag(k, Tag::OctetString)?;
            let len = private_key.value().len();
            if len != P256_PRIVATE_KEY_LEN {
                return Err(Sec1Error::Problem(Sec1Problem::PrivateKeyLength { len }));
            }
            let curve = k.context_specific::<ObjectIdentifier>(TagNumber(0), TagMode::Explicit);
            match curve {
                Ok(None) => {}
                Ok(Some(oid)) if oid == P256_OID => {}
                _ => return Err(Sec1Error::Problem(Sec1Problem::Curve)),
            }
            let public_key = k
                .context_specific::<BitStringRef<'_>>(TagNumber(1), TagMode::Explicit)
                .map_err(|_| Sec1Error::Problem(Sec1Problem::PublicKey))?;
            if let Some(pk) = public_key {
                let point = pk.raw_bytes();
                if pk.unused_bits() != 0
                    || point.len() != P256_POINT_LEN
                    || point.first() != Some(&0x04)
                {
                    return Err(Sec1Error::Problem(Sec1Problem::PublicKey));
                }
            }
            Ok(public_key)
        })
        .map_err(problem)?;
    r.finish().map_err(|_| Sec1Problem::Malformed)?;
    Ok(public_key)
}

/// Whether the element at `offset` is a PKCS#8 `PrivateKeyInfo`/`OneAsymmetricKey`: a
/// SEQUENCE (any length form) whose content starts with `INTEGER 0|1` then a SEQUENCE.
fn looks_like_pkcs8(blob: &[u8], offset: usize) -> bool {
    let byte = |i: usize| blob.get(offset.saturating_add(i)).copied();
    let content = match byte(1) {
        Some(0..=0x7f) => 2usize,
        Some(0x81) => 3,
        Some(0x82) => 4,
        _ => return false,
    };
    let c = |i: usize| byte(content.saturating_add(i));
    byte(0) == Some(SEQUENCE_TAG)
        && c(0) == Some(0x02)
        && c(1) == Some(0x01)
        && matches!(c(2), Some(0 | 1))
        && c(3) == Some(SEQUENCE_TAG)
}

/// Check the mTLS key at `offset`; returns its end and its public key, if it carries one.
fn check_key(blob: &[u8], offset: usize) -> Result<(usize, Option<BitStringRef<'_>>), UnsafeBlob> {
    let part = BlobPart::Key;
    match blob.get(offset) {
        Some(&SEQUENCE_TAG) => {}
        Some(&found) => {
            return Err(UnsafeBlob::NotSequence {
                part,
                offset,
                found,
            });
        }
        None => return Err(UnsafeBlob::MissingKey { offset }),
    }
    if looks_like_pkcs8(blob, offset) {
        return Err(UnsafeBlob::Pkcs8Key { offset });
    }
    let end = top_element(blob, offset, part)?;
    check_der(blob, offset..end, part)?;
    let elem = blob.get(offset..end).unwrap_or_default();
    if certificate_shape(elem).is_ok() {
        return Err(UnsafeBlob::CertificateAsKey { offset });
    }
    let public_key =
        sec1_shape(elem).map_err(|problem| UnsafeBlob::NotSec1Key { offset, problem })?;
    Ok((end, public_key))
}

/// Require `blob[offset..offset + 4]` to be the absent marker.
fn check_absent(blob: &[u8], offset: usize, part: BlobPart) -> Result<(), UnsafeBlob> {
    match blob.get(offset..offset.saturating_add(ABSENT_LEN)) {
        Some(marker) if marker == ABSENT => Ok(()),
        Some(_) => Err(UnsafeBlob::AbsentNotZero { offset }),
        None => Err(UnsafeBlob::Truncated {
            part,
            offset,
            end: offset.saturating_add(ABSENT_LEN),
            len: blob.len(),
        }),
    }
}

/// Require that nothing follows `end`.
fn check_no_trailing(blob: &[u8], end: usize) -> Result<(), UnsafeBlob> {
    match blob.len().checked_sub(end) {
        Some(0) | None => Ok(()),
        Some(count) => Err(UnsafeBlob::TrailingBytes { offset: end, count }),
    }
}

/// Accept `blob` only if it is one of the three forms with well-formed parts that the station
/// splits exactly into those parts (see the module docs for every check), so that the station
/// stores the intended credentials and then reports `crc32(blob)`.
///
/// # Errors
/// The first problem found, as a specific [`UnsafeBlob`].
pub fn check_station_safe(blob: &[u8]) -> Result<BlobInfo, UnsafeBlob> {
    let len = blob.len();
    if len == 0 {
        return Err(UnsafeBlob::Empty);
    }
    if len > MAX_BLOB_LEN {
        return Err(UnsafeBlob::TooLong { len });
    }
    if blob.starts_with(PEM_PREFIX) {
        return Err(UnsafeBlob::Pem);
    }
    let trust_end = top_element(blob, 0, BlobPart::Trust)?;
    let trust = 0..trust_end;
    check_certificate(blob, trust.clone(), BlobPart::Trust)?;
    let co = trust_end;
    let (form, cert, key) = match blob.get(co) {
        None => return Err(UnsafeBlob::NothingAfterTrust { offset: co }),
        Some(0) => {
            check_absent(blob, co, BlobPart::Cert)?;
            let ko = co.saturating_add(ABSENT_LEN);
            match blob.get(ko) {
                None => return Err(UnsafeBlob::MissingKey { offset: ko }),
                Some(0) => {
                    check_absent(blob, ko, BlobPart::Key)?;
                    check_no_trailing(blob, ko.saturating_add(ABSENT_LEN))?;
                    (BlobForm::ServerAuth, co..co, ko..ko)
                }
                Some(&SEQUENCE_TAG) => {
                    let rest = blob.get(ko..).unwrap_or_default();
                    if rest.ends_with(b"\r\n") && rest.windows(2).any(|w| w == b": ") {
                        // Header lines whose name starts with '0' (0x30).
                        let problem = TokenProblem::StartsWithSequenceTag;
                        return Err(UnsafeBlob::Token { at: ko, problem });
                    }
                    return Err(UnsafeBlob::KeyWithoutCert { offset: ko });
                }
                Some(_) => {
                    let lines = blob.get(ko..).unwrap_or_default();
                    check_header_lines(lines).map_err(|e| UnsafeBlob::Token {
                        at: ko.saturating_add(e.at),
                        problem: e.problem,
                    })?;
                    (BlobForm::Token, co..co, ko..len)
                }
            }
        }
        Some(&SEQUENCE_TAG) => {
            let cert_end = top_element(blob, co, BlobPart::Cert)?;
            let cert_key = check_certificate(blob, co..cert_end, BlobPart::Cert)?;
            let ko = cert_end;
            if blob.get(ko).is_none_or(|&b| b == 0) {
                return Err(UnsafeBlob::MissingKey { offset: ko });
            }
            let (key_end, key_public) = check_key(blob, ko)?;
            if key_public.is_some_and(|pk| pk != cert_key) {
                return Err(UnsafeBlob::KeyDoesNotMatchCert {
                    cert_offset: co,
                    key_offset: ko,
                });
            }
            check_no_trailing(blob, key_end)?;
            (BlobForm::Mtls, co..cert_end, ko..key_end)
        }
        Some(&found) => {
            return Err(UnsafeBlob::NotSequence {
                part: BlobPart::Cert,
                offset: co,
                found,
            });
        }
    };
    let intended = StationSplit { trust, cert, key };
    let station = station_split(blob).map_err(UnsafeBlob::StationRejects)?;
    for (part, want, got) in [
        (BlobPart::Trust, &intended.trust, &station.trust),
        (BlobPart::Cert, &intended.cert, &station.cert),
        (BlobPart::Key, &intended.key, &station.key),
    ] {
        if want != got {
            return Err(UnsafeBlob::StationMisSplit {
                part,
                expected_start: want.start,
                expected_end: want.end,
                station_start: got.start,
                station_end: got.end,
            });
        }
    }
    Ok(BlobInfo {
        form,
        len,
        split: intended,
    })
}

/// Fuzz body: [`station_split`] and [`check_station_safe`] on arbitrary bytes. Never panics
/// unless an invariant breaks: whenever [`check_station_safe`] accepts, [`station_split`] gives
/// the same ranges, the station's stored-files CRC equals `crc32(blob)`, and rebuilding the
/// blob from its parts gives the same bytes; its final cross-check never has to fire; every
/// successful [`station_split`] lies inside the blob.
#[cfg(any(fuzzing, test))]
#[allow(clippy::panic, clippy::indexing_slicing, clippy::unwrap_used)]
pub fn fuzz_cred(data: &[u8]) {
    let split = station_split(data);
    if let Ok(s) = &split {
        // Every successful split lies inside the blob.
        assert!(
            s.slices(data).is_some(),
            "split {s:?} outside a {}-byte blob",
            data.len()
        );
    }
    let _ = check_header_lines(data);
    let info = match check_station_safe(data) {
        Ok(info) => info,
        // The cross-check is a safety net: reaching it means a specific check is missing.
        Err(e @ (UnsafeBlob::StationRejects(_) | UnsafeBlob::StationMisSplit { .. })) => {
            panic!("cross-check caught what the specific checks missed: {e:?}")
        }
        Err(_) => return,
    };
    assert_eq!(
        split.as_ref(),
        Ok(&info.split),
        "check_station_safe and station_split disagree"
    );
    assert_eq!(info.len, data.len());
    assert_eq!(info.split.stored_crc(data), Some(crate::crc::crc32(data)));
    let (trust, cert, key) = info.split.slices(data).unwrap();
    let parts = match info.form {
        BlobForm::Mtls => BlobParts::Mtls { trust, cert, key },
        BlobForm::Token => BlobParts::Token {
            trust,
            header_lines: key,
        },
        BlobForm::ServerAuth => BlobParts::ServerAuth { trust },
    };
    let mut buf = [0u8; MAX_BLOB_LEN];
    let n = parts.write(&mut buf).unwrap();
    assert_eq!(&buf[..n], data, "rebuilding from parts changed the blob");
    assert_eq!(parts.write_checked(&mut buf), Ok(info));
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn vectors_dir() -> std::path::PathBuf {
        match std::env::var("CUPS_VECTORS") {
            Ok(dir) => dir.into(),
            Err(_) => concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors").into(),
        }
    }

    fn read(rel: &str) -> Vec<u8> {
        let path = vectors_dir().join(rel);
        std::fs::read(&path).unwrap_or_else(|e| panic!("vector {} missing: {e}", path.display()))
    }

    fn ca() -> Vec<u8> {
        read("pki/ca.crt.der")
    }
    fn cups_cert() -> Vec<u8> {
        read("pki/cups-0016c001ff10a235.crt.der")
    }
    fn cups_key() -> Vec<u8> {
        read("pki/cups-0016c001ff10a235.key.der")
    }
    fn tc_key() -> Vec<u8> {
        read("pki/tc-0016c001ff10a235.key.der")
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn mtls() -> Vec<u8> {
        cat(&[&ca(), &cups_cert(), &cups_key()])
    }

    /// Blob slice of a response vector's credential segment at `len_off` (u16 prefix).
    fn blob_at(file: &str, len_off: usize) -> Vec<u8> {
        let bin = read(file);
        let len = usize::from(u16::from_le_bytes([bin[len_off], bin[len_off + 1]]));
        bin[len_off + 2..len_off + 2 + len].to_vec()
    }

    /// A fake DER element `30 <len> <content>` with the shortest length form the station
    /// reads right (short, else `82 hh ll`).
    fn fake(content_len: usize, fill: u8) -> Vec<u8> {
        let mut v = Vec::new();
        v.push(SEQUENCE_TAG);
        if content_len <= MAX_SHORT_FORM_LEN {
            v.push(content_len as u8);
        } else {
            v.push(0x82);
            v.extend_from_slice(&(content_len as u16).to_be_bytes());
        }
        v.resize(v.len() + content_len, fill);
        v
    }

    fn nested(depth: usize) -> Vec<u8> {
        let mut v = std::vec![0x05, 0x00]; // NULL
        for _ in 0..depth {
            let mut outer = std::vec![SEQUENCE_TAG, v.len() as u8];
            outer.extend_from_slice(&v);
            v = outer;
        }
        v
    }

    // ---- station_split ----------------------------------------------------------------------

    #[test]
    fn station_split_error_table() {
        use StationSplitError as E;
        let cuts = |trust_len, cert_offset, cert_len, key_offset, key_len| Cuts {
            trust_len,
            cert_offset,
            cert_len,
            key_offset,
            key_len,
        };
        let table: &[(&str, Vec<u8>, E)] = &[
            ("empty", Vec::new(), E::Empty),
            (
                "too long",
                std::vec![SEQUENCE_TAG; MAX_BLOB_LEN + 1],
                E::TooLong { len: 65_536 },
            ),
            (
                "trust not seq",
                std::vec![0x31, 0x00],
                E::TrustNotSequence { found: 0x31 },
            ),
            (
                "pem",
                b"-----BEGIN CERTIFICATE-----".to_vec(),
                E::TrustNotSequence { found: b'-' },
            ),
            (
                "token only",
                b"Authorization: x\r\n".to_vec(),
                E::TrustNotSequence { found: b'A' },
            ),
            (
                "lone tag: cert offset past NUL",
                std::vec![0x30],
                E::ReadsPastEnd { at: 2, len: 1 },
            ),
            (
                "trust long form cut",
                std::vec![0x30, 0x81],
                E::ReadsPastEnd { at: 3, len: 2 },
            ),
            (
                "key long form cut",
                std::vec![0x30, 2, 0xaa, 0xbb, 0x30, 2, 0xcc, 0xdd, 0x30, 0x82],
                E::ReadsPastEnd { at: 11, len: 10 },
            ),
            (
                "cert offset far past end",
                std::vec![0x30, 0x20, 0, 0],
                E::ReadsPastEnd { at: 0x22, len: 4 },
            ),
            (
                "cert not seq",
                std::vec![0x30, 2, 0xaa, 0xbb, 0x31],
                E::CertNotSequence {
                    offset: 4,
                    found: 0x31,
                },
            ),
            (
                "key offset beyond end (absent cert, short marker)",
                std::vec![0x30, 2, 0xaa, 0xbb, 0, 0],
                E::KeyOffsetBeyondEnd {
                    key_offset: 8,
                    len: 6,
                },
            ),
            (
                "trust alone: NUL read as absent cert",
                std::vec![0x30, 2, 0xaa, 0xbb],
                E::KeyOffsetBeyondEnd {
                    key_offset: 8,
                    len: 4,
                },
            ),
            (
                "cert past end",
                std::vec![0x30, 2, 0xaa, 0xbb, 0x30, 9, 0],
                E::KeyOffsetBeyondEnd {
                    key_offset: 15,
                    len: 7,
                },
            ),
            (
                "2-byte trust: log reads p[-2]",
                std::vec![0x30, 0, 0, 0, 0, 0, 0x30, 0],
                E::LogReadsBeforeStart { cert_offset: 2 },
            ),
            (
                "3-byte trust: log reads p[-1]",
                std::vec![0x30, 1, 7, 0, 0, 0, 0, 0, 0, 0, 0],
                E::LogReadsBeforeStart { cert_offset: 3 },
            ),
            (
                "lengths do not align",
                std::vec![0x30, 2, 0xaa, 0xbb, 0x30, 2, 0xcc, 0xdd, 0x30, 5, 0xee],
                E::LengthsDoNotAlign {
                    segment_len: 11,
                    parsed_len: 15,
                    cuts: cuts(4, 4, 4, 8, 7),
                },
            ),
            (
                "key beyond end after absent cert",
                std::vec![0x30, 2, 0xaa, 0xbb, 0, 0, 0, 0, 0x30, 4, 0xee],
                E::KeyBeyondEnd {
                    cuts: cuts(4, 4, 0, 8, 6),
                    len: 11,
                },
            ),
        ];
        for (name, blob, want) in table {
            assert_eq!(station_split(blob), Err(*want), "{name}");
            // Display never panics and follows the station's wording where it logs.
            let text = std::format!("{want}");
            assert!(!text.is_empty());
        }
    }

    #[test]
    fn station_split_display_matches_station_log() {
        let e = StationSplitError::LengthsDoNotAlign {
            segment_len: 1039,
            parsed_len: 35467,
            cuts: Cuts::default(),
        };
        assert_eq!(
            std::format!("{e}"),
            "Failed to parse credentials! Lengths do not align segment_len=1039 parsed_len=35467. Ignoring."
        );
        let e = StationSplitError::KeyOffsetBeyondEnd {
            key_offset: 8,
            len: 6,
        };
        assert!(std::format!("{e}").contains("expecting more data (key_offset=8, total_len=6)"));
        let e = StationSplitError::TrustNotSequence { found: 0x2d };
        assert!(std::format!("{e}").contains("ASN.1 SEQ expected for trust (0x2d)"));
    }

    #[test]
    fn station_split_quirks() {
        // Absent marker: only the first byte is looked at.
        let blob = [0x30, 2, 0xaa, 0xbb, 0, 0x11, 0x22, 0x33, 0, 9, 9, 9];
        let s = station_split(&blob).unwrap();
        assert_eq!((s.trust, s.cert, s.key), (0..4, 4..4, 8..8));
        // Token: anything else runs to the end.
        let blob = [0x30, 2, 0xaa, 0xbb, 0, 0, 0, 0, b'X', b':'];
        assert_eq!(station_split(&blob).unwrap().key, 8..10);
        // Key offset exactly at the end: the NUL reads as "no key".
        let blob = [0x30, 2, 0xaa, 0xbb, 0x30, 2, 0xcc, 0xdd];
        let s = station_split(&blob).unwrap();
        assert_eq!((s.cert, s.key), (4..8, 8..8));
        // Trailing garbage after the key is ignored.
        let blob = [
            0x30, 2, 0xaa, 0xbb, 0x30, 2, 0xcc, 0xdd, 0x30, 0, 0xff, 0xff,
        ];
        assert_eq!(station_split(&blob).unwrap().key, 8..10);
        // Key slice may end exactly at the blob end after an absent cert.
        let blob = [0x30, 2, 0xaa, 0xbb, 0, 0, 0, 0, 0x30, 1, 0xee];
        assert_eq!(station_split(&blob).unwrap().key, 8..11);
    }

    #[test]
    fn station_split_short_vs_long_form_limit() {
        // Content 127: short form, read right.
        let mut blob = fake(MAX_SHORT_FORM_LEN, 0xab);
        blob.extend_from_slice(&[0; 8]);
        assert_eq!(station_split(&blob).unwrap().trust, 0..129);
        // Content 128 in DER (`30 81 80`): the station reads `80 ab` as the length.
        let mut blob = std::vec![0x30, 0x81, 0x80];
        blob.resize(3 + 128, 0xab);
        blob.extend_from_slice(&[0; 8]);
        assert_eq!(
            station_split(&blob),
            Err(StationSplitError::ReadsPastEnd {
                at: 0x80ab + 4,
                len: blob.len()
            })
        );
        // Content 128 as `30 82 00 80` (not DER): read right.
        let mut blob = std::vec![0x30, 0x82, 0x00, 0x80];
        blob.resize(4 + 128, 0xab);
        blob.extend_from_slice(&[0; 8]);
        assert_eq!(station_split(&blob).unwrap().trust, 0..132);
    }

    #[test]
    fn station_split_blob_len_limit() {
        // At the limit: a server-auth blob of exactly MAX_BLOB_LEN.
        let mut at = fake(MAX_BLOB_LEN - 8 - 4, 0x11);
        at.extend_from_slice(&[0; 8]);
        assert_eq!(at.len(), MAX_BLOB_LEN);
        let s = station_split(&at).unwrap();
        assert_eq!(s.key, MAX_BLOB_LEN - 4..MAX_BLOB_LEN - 4);
        // Below.
        assert!(station_split(&at[..MAX_BLOB_LEN - 4]).is_ok());
        // Above.
        let mut above = at.clone();
        above.push(0);
        assert_eq!(
            station_split(&above),
            Err(StationSplitError::TooLong { len: 65_536 })
        );
    }

    #[test]
    fn station_log_lookbehind_limit() {
        // trust_len 3 (below) fails, 4 (at) works.
        let blob = [0x30, 1, 7, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            station_split(&blob),
            Err(StationSplitError::LogReadsBeforeStart { .. })
        ));
        let blob = [0x30, 2, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(station_split(&blob).is_ok());
    }

    // ---- check_header_lines -----------------------------------------------------------------

    #[test]
    fn header_lines_table() {
        use TokenProblem as P;
        let ok: &[&[u8]] = &[
            b"Authorization: Bearer xyz\r\n",
            b"A: b\r\n",
            b"X-Api_Key-1: a\tb ~!\r\nAuthorization: Basic dXNlcg==\r\n",
        ];
        for lines in ok {
            assert_eq!(
                check_header_lines(lines),
                Ok(()),
                "{:?}",
                std::string::String::from_utf8_lossy(lines)
            );
        }
        let bad: &[(&[u8], usize, P)] = &[
            (b"", 0, P::Empty),
            (b"0x: y\r\n", 0, P::StartsWithSequenceTag),
            (b"cups-golden-token", 0, P::Bare),
            (b"Bearer xyz\r\n", 0, P::Bare),
            (b": y\r\n", 0, P::EmptyName),
            (b"A: b\r\n: c\r\n", 6, P::EmptyName),
            (b"A b: c\r\n", 1, P::BadNameByte { byte: b' ' }),
            (b"A.b: c\r\n", 1, P::BadNameByte { byte: b'.' }),
            (b"A:b\r\n", 2, P::MissingSpace),
            (b"A: \r\n", 3, P::EmptyValue),
            (b"A: b\x7f\r\n", 4, P::BadValueByte { byte: 0x7f }),
            (b"A: b\nC: d\r\n", 4, P::BadValueByte { byte: b'\n' }),
            (b"A: b\x00\r\n", 4, P::BadValueByte { byte: 0 }),
            (b"A: b\rC: d\r\n", 4, P::CrWithoutLf),
            (b"A: b\r", 4, P::CrWithoutLf),
            (b"A: b", 4, P::Unterminated),
            (b"A: b\r\nC", 7, P::Unterminated),
            (b"A: b\r\nC:", 8, P::Unterminated),
            (b"A", 0, P::Bare),
            (b"A: b\r\nC d", 7, P::BadNameByte { byte: b' ' }),
        ];
        for (lines, at, problem) in bad {
            let got = check_header_lines(lines);
            assert_eq!(
                got,
                Err(TokenError {
                    at: *at,
                    problem: *problem
                }),
                "{:?}",
                std::string::String::from_utf8_lossy(lines)
            );
            assert!(!std::format!("{}", got.unwrap_err()).is_empty());
        }
    }

    // ---- check_station_safe -----------------------------------------------------------------

    #[test]
    fn safe_accepts_three_forms_from_pki() {
        let ca = ca();
        let blob = mtls();
        let info = check_station_safe(&blob).unwrap();
        assert_eq!(info.form, BlobForm::Mtls);
        assert_eq!(info.split, station_split(&blob).unwrap());
        let blob = cat(&[&ca, &ABSENT, b"Authorization: Bearer t\r\n"]);
        assert_eq!(check_station_safe(&blob).unwrap().form, BlobForm::Token);
        let blob = cat(&[&ca, &ABSENT, &ABSENT]);
        let info = check_station_safe(&blob).unwrap();
        assert_eq!(info.form, BlobForm::ServerAuth);
        assert_eq!(info.split.cert, 438..438);
        assert_eq!(info.split.key, 442..442);
        assert_eq!(info.split.stored_crc(&blob), Some(crate::crc::crc32(&blob)));
    }

    #[test]
    fn unsafe_blob_table() {
        use BlobPart::{Cert, Key, Trust};
        type U = UnsafeBlob;
        let ca = ca();
        let cert = cups_cert();
        let key = cups_key();
        let mut wrong_curve = key.clone();
        assert_eq!(
            &wrong_curve[41..51],
            &[6, 8, 0x2a, 0x86, 0x48, 0xce, 0x3d, 3, 1, 7]
        );
        wrong_curve[50] = 8;
        let mut wrong_point = key.clone();
        assert_eq!(wrong_point[56], 0x04);
        wrong_point[56] = 0x02;
        let mut version0 = key.clone();
        version0[4] = 0;
        let mut oneshort = std::vec![0x30, 0x82, 0x00, 0x80];
        oneshort.resize(4 + 128, 0);
        let mut onebyte = std::vec![0x30, 0x81, 0x80];
        onebyte.resize(3 + 128, 0);
        let mut malformed_cert = ca.clone();
        // TBSCertificate's serial INTEGER length 20 -> `81 ..`: a non-minimal length.
        assert_eq!(&malformed_cert[13..15], &[0x02, 20]);
        malformed_cert[14] = 0x81;
        let not_cert = std::vec![0x30, 3, 2, 1, 0];
        let sec1_short = |pk_len: u8| {
            let mut k = std::vec![0x30, 5 + pk_len, 2, 1, 1, 4, pk_len];
            k.resize(7 + usize::from(pk_len), 0x42);
            k
        };
        let table: std::vec::Vec<(&str, Vec<u8>, U)> = std::vec![
            ("empty", Vec::new(), U::Empty),
            (
                "too long",
                std::vec![0; MAX_BLOB_LEN + 1],
                U::TooLong { len: 65_536 }
            ),
            ("pem", read("pki/ca.crt.pem"), U::Pem),
            (
                "trust not seq",
                std::vec![0x31, 0],
                U::NotSequence {
                    part: Trust,
                    offset: 0,
                    found: 0x31
                }
            ),
            (
                "indefinite",
                std::vec![0x30, 0x80, 0, 0],
                U::IndefiniteLength {
                    part: Trust,
                    offset: 0
                }
            ),
            (
                "81 form",
                onebyte,
                U::OneByteLongForm {
                    part: Trust,
                    offset: 0,
                    content_len: 128
                }
            ),
            (
                "82 00 80",
                oneshort,
                U::NonMinimalLength {
                    part: Trust,
                    offset: 0,
                    content_len: 128
                }
            ),
            (
                "83 form",
                std::vec![0x30, 0x83, 0, 1, 0],
                U::LengthTooLong {
                    part: Trust,
                    offset: 0,
                    length_octets: 3
                }
            ),
            (
                "84 form",
                std::vec![0x30, 0x84, 0, 0, 1, 0],
                U::LengthTooLong {
                    part: Trust,
                    offset: 0,
                    length_octets: 4
                }
            ),
            (
                "truncated trust",
                ca[..100].to_vec(),
                U::Truncated {
                    part: Trust,
                    offset: 0,
                    end: 438,
                    len: 100
                }
            ),
            (
                "truncated header",
                std::vec![0x30],
                U::Truncated {
                    part: Trust,
                    offset: 0,
                    end: 2,
                    len: 1
                }
            ),
            (
                "truncated 82",
                std::vec![0x30, 0x82, 1],
                U::Truncated {
                    part: Trust,
                    offset: 0,
                    end: 4,
                    len: 3
                }
            ),
            (
                "malformed nested",
                std::vec![0x30, 3, 0x30, 5, 0],
                U::MalformedDer {
                    part: Trust,
                    offset: 2
                }
            ),
            (
                "malformed cert",
                malformed_cert,
                U::MalformedDer {
                    part: Trust,
                    offset: 13
                }
            ),
            (
                "too deep",
                nested(MAX_DER_DEPTH + 1),
                U::TooDeep {
                    part: Trust,
                    offset: 32
                }
            ),
            (
                "trust not a cert",
                not_cert.clone(),
                U::NotCertificate {
                    part: Trust,
                    offset: 0
                }
            ),
            (
                "cert not a cert",
                cat(&[&ca, &not_cert, &key]),
                U::NotCertificate {
                    part: Cert,
                    offset: 438
                }
            ),
            (
                "key as cert",
                cat(&[&ca, &key]),
                U::NotCertificate {
                    part: Cert,
                    offset: 438
                }
            ),
            (
                "cert not seq",
                cat(&[&ca, &[0x31, 0]]),
                U::NotSequence {
                    part: Cert,
                    offset: 438,
                    found: 0x31
                }
            ),
            (
                "cert 81 form",
                cat(&[&ca, &[0x30, 0x81, 0x80]]),
                U::OneByteLongForm {
                    part: Cert,
                    offset: 438,
                    content_len: 128
                }
            ),
            (
                "trust alone",
                ca.clone(),
                U::NothingAfterTrust { offset: 438 }
            ),
            (
                "absent not zero",
                cat(&[&ca, &[0, 1, 0, 0], &ABSENT]),
                U::AbsentNotZero { offset: 438 }
            ),
            (
                "2nd absent not zero",
                cat(&[&ca, &ABSENT, &[0, 0, 0, 1]]),
                U::AbsentNotZero { offset: 442 }
            ),
            (
                "absent cut",
                cat(&[&ca, &[0, 0]]),
                U::Truncated {
                    part: Cert,
                    offset: 438,
                    end: 442,
                    len: 440
                }
            ),
            (
                "2nd absent cut",
                cat(&[&ca, &ABSENT, &[0]]),
                U::Truncated {
                    part: Key,
                    offset: 442,
                    end: 446,
                    len: 443
                }
            ),
            (
                "no key after absent",
                cat(&[&ca, &ABSENT]),
                U::MissingKey { offset: 442 }
            ),
            (
                "no key after cert",
                cat(&[&ca, &cert]),
                U::MissingKey { offset: 904 }
            ),
            (
                "absent key after cert",
                cat(&[&ca, &cert, &ABSENT]),
                U::MissingKey { offset: 904 }
            ),
            (
                "key without cert",
                cat(&[&ca, &ABSENT, &key]),
                U::KeyWithoutCert { offset: 442 }
            ),
            (
                "token after cert",
                cat(&[&ca, &cert, b"A: b\r\n"]),
                U::NotSequence {
                    part: Key,
                    offset: 904,
                    found: b'A'
                }
            ),
            (
                "pkcs8",
                blob_at("responses/pkcs8-key.bin", 4),
                U::Pkcs8Key { offset: 901 }
            ),
            (
                "two trust certs",
                blob_at("responses/two-trust-certs.bin", 25),
                U::CertificateAsKey { offset: 882 }
            ),
            (
                "key 81 form",
                cat(&[&ca, &cert, &[0x30, 0x81, 0x80, 2, 1, 1, 4]]),
                U::OneByteLongForm {
                    part: Key,
                    offset: 904,
                    content_len: 128
                }
            ),
            (
                "key truncated",
                cat(&[&ca, &cert, &key[..100]]),
                U::Truncated {
                    part: Key,
                    offset: 904,
                    end: 1025,
                    len: 1004
                }
            ),
            (
                "sec1 malformed",
                cat(&[&ca, &cert, &[0x30, 3, 2, 1, 1]]),
                U::NotSec1Key {
                    offset: 904,
                    problem: Sec1Problem::Malformed
                }
            ),
            (
                "sec1 version",
                cat(&[&ca, &cert, &version0]),
                U::NotSec1Key {
                    offset: 904,
                    problem: Sec1Problem::Version
                }
            ),
            (
                "sec1 31 bytes",
                cat(&[&ca, &cert, &sec1_short(31)]),
                U::NotSec1Key {
                    offset: 904,
                    problem: Sec1Problem::PrivateKeyLength { len: 31 }
                }
            ),
            (
                "sec1 33 bytes",
                cat(&[&ca, &cert, &sec1_short(33)]),
                U::NotSec1Key {
                    offset: 904,
                    problem: Sec1Problem::PrivateKeyLength { len: 33 }
                }
            ),
            (
                "sec1 curve",
                cat(&[&ca, &cert, &wrong_curve]),
                U::NotSec1Key {
                    offset: 904,
                    problem: Sec1Problem::Curve
                }
            ),
            (
                "sec1 point",
                cat(&[&ca, &cert, &wrong_point]),
                U::NotSec1Key {
                    offset: 904,
                    problem: Sec1Problem::PublicKey
                }
            ),
            (
                "key of another cert",
                cat(&[&ca, &cert, &tc_key()]),
                U::KeyDoesNotMatchCert {
                    cert_offset: 438,
                    key_offset: 904
                }
            ),
            (
                "bare token",
                cat(&[&ca, &ABSENT, b"cups-golden-token"]),
                U::Token {
                    at: 442,
                    problem: TokenProblem::Bare
                }
            ),
            (
                "token no crlf",
                cat(&[&ca, &ABSENT, b"A: b"]),
                U::Token {
                    at: 446,
                    problem: TokenProblem::Unterminated
                }
            ),
            (
                "mtls trailing",
                cat(&[&mtls(), &[0]]),
                U::TrailingBytes {
                    offset: 1025,
                    count: 1
                }
            ),
            (
                "server auth trailing",
                cat(&[&ca, &ABSENT, &ABSENT, &[0, 0]]),
                U::TrailingBytes {
                    offset: 446,
                    count: 2
                }
            ),
        ];
        for (name, blob, want) in &table {
            assert_eq!(check_station_safe(blob), Err(*want), "{name}");
            assert!(!std::format!("{want}").is_empty());
        }
        // The cross-check variants only print.
        let e = U::StationRejects(StationSplitError::Empty);
        assert!(core::error::Error::source(&e).is_some());
        let e = U::StationMisSplit {
            part: Key,
            expected_start: 1,
            expected_end: 2,
            station_start: 3,
            station_end: 4,
        };
        assert!(std::format!("{e}").contains("3..4 instead of 1..2"));
    }

    #[test]
    fn sec1_without_optional_fields_is_accepted() {
        // A SEC1 key without [0] and [1] (no public point to compare).
        let full = cups_key();
        let mut key = std::vec![0x30, 37];
        key.extend_from_slice(&full[2..39]); // version + private key
        let blob = cat(&[&ca(), &cups_cert(), &key]);
        assert_eq!(check_station_safe(&blob).unwrap().split.key, 904..943);
    }

    #[test]
    fn der_depth_limit() {
        // MAX_DER_DEPTH nested SEQUENCEs pass the walker (then fail as not a certificate).
        let at = nested(MAX_DER_DEPTH);
        assert_eq!(
            check_station_safe(&at),
            Err(UnsafeBlob::NotCertificate {
                part: BlobPart::Trust,
                offset: 0
            })
        );
        assert!(matches!(
            check_station_safe(&nested(MAX_DER_DEPTH + 1)),
            Err(UnsafeBlob::TooDeep { .. })
        ));
    }

    #[test]
    fn short_and_two_byte_form_limits() {
        let len_err = |blob: &[u8]| match check_station_safe(blob) {
            Err(
                e @ (UnsafeBlob::OneByteLongForm { .. }
                | UnsafeBlob::NonMinimalLength { .. }
                | UnsafeBlob::LengthTooLong { .. }),
            ) => Some(e),
            _ => None,
        };
        // Short form up to 127: no length complaint (not a certificate, though).
        assert_eq!(len_err(&fake(MAX_SHORT_FORM_LEN, 0)), None);
        let mut v = std::vec![0x30, 0x81, 0x80];
        v.resize(131, 0);
        assert!(matches!(
            len_err(&v),
            Some(UnsafeBlob::OneByteLongForm {
                content_len: 128,
                ..
            })
        ));
        let mut v = std::vec![0x30, 0x82, 0x00, 0xff];
        v.resize(4 + 255, 0);
        assert!(matches!(
            len_err(&v),
            Some(UnsafeBlob::NonMinimalLength {
                content_len: 255,
                ..
            })
        ));
        let mut v = std::vec![0x30, 0x82, 0x01, 0x00];
        v.resize(4 + MIN_TWO_BYTE_FORM_LEN, 0);
        assert_eq!(len_err(&v), None);
    }

    #[test]
    fn blob_len_limit_in_check_and_build() {
        let trust = fake(MAX_BLOB_LEN - 8 - 4, 0);
        let mut out = std::vec![0u8; MAX_BLOB_LEN + 16];
        // At: builds; the check gets past the size (and fails on the fake trust).
        assert_eq!(build_server_auth(&trust, &mut out), Ok(MAX_BLOB_LEN));
        let e = check_station_safe(&out[..MAX_BLOB_LEN]).unwrap_err();
        assert!(!matches!(e, UnsafeBlob::TooLong { .. }), "{e:?}");
        // Below.
        assert_eq!(
            build_server_auth(&trust[..trust.len() - 1], &mut out),
            Ok(MAX_BLOB_LEN - 1)
        );
        // Above.
        let bigger = fake(MAX_BLOB_LEN - 8 - 3, 0);
        assert_eq!(
            build_server_auth(&bigger, &mut out),
            Err(BuildError::TooLong { len: 65_536 })
        );
        assert_eq!(
            check_station_safe(&out[..MAX_BLOB_LEN + 1]),
            Err(UnsafeBlob::TooLong { len: 65_536 })
        );
    }

    /// A self-signed P-256 certificate whose issuer/subject Names are 213 bytes (`30 81 d5`,
    /// nested one-byte long form) and its SEC1 key: nested `81 xx` is fine for the station.
    const LONG_NAME_CERT: &[&str] = &[
        "30820301308202a7a00302010202145f296b1441a031e3c7d66afbceeb33af91436400300a06082a",
        "8648ce3d0403023081d53145304306035504030c3c78787878787878787878787878787878787878",
        "78787878787878787878787878787878787878787878787878787878787878787878787878787878",
        "7831453043060355040a0c3c78787878787878787878787878787878787878787878787878787878",
        "78787878787878787878787878787878787878787878787878787878787878783145304306035504",
        "0b0c3c78787878787878787878787878787878787878787878787878787878787878787878787878",
        "7878787878787878787878787878787878787878787878301e170d3236313132363138313531365a",
        "170d3436313132313138313531365a3081d53145304306035504030c3c7878787878787878787878",
        "78787878787878787878787878787878787878787878787878787878787878787878787878787878",
        "78787878787878787831453043060355040a0c3c7878787878787878787878787878787878787878",
        "78787878787878787878787878787878787878787878787878787878787878787878787878787878",
        "31453043060355040b0c3c7878787878787878787878787878787878787878787878787878787878",
        "787878787878787878787878787878787878787878787878787878787878783059301306072a8648",
        "ce3d020106082a8648ce3d03010703420004ae906ad7c4f6c7971d4eaf9e605715390c994334ee9e",
        "073157f9f3eb91ae5a86cfe381475242094de12208f571abf89c3544efd12371d41cd41c33e0bfdf",
        "45c1a3533051301d0603551d0e041604148c5440314d11af591650864a688e1145033eb179301f06",
        "03551d230418301680148c5440314d11af591650864a688e1145033eb179300f0603551d130101ff",
        "040530030101ff300a06082a8648ce3d040302034800304502205c66307ae32ffd434a2f4726bc32",
        "b92488a786c179037b1a6a3e4379e1102772022100d2034be4c30dc5e330139b3b72186b83b0d3be",
        "7b97931da0b7cf1b8649885e18",
    ];
    const LONG_NAME_KEY: &[&str] = &[
        "30770201010420d55cf69e801e1e821be676a0e3e693c9ba6997fe4216399f00cc0242a0cf269ca0",
        "0a06082a8648ce3d030107a14403420004ae906ad7c4f6c7971d4eaf9e605715390c994334ee9e07",
        "3157f9f3eb91ae5a86cfe381475242094de12208f571abf89c3544efd12371d41cd41c33e0bfdf45",
        "c1",
    ];

    #[test]
    fn nested_one_byte_long_form_is_accepted() {
        let cert = hex::decode(LONG_NAME_CERT.concat()).unwrap();
        let key = hex::decode(LONG_NAME_KEY.concat()).unwrap();
        assert_eq!(&cert[47..50], &[0x30, 0x81, 0xd5]);
        let blob = cat(&[&cert, &cert, &key]);
        let info = check_station_safe(&blob).unwrap();
        assert_eq!(info.form, BlobForm::Mtls);
        assert_eq!(info.split.key, 2 * cert.len()..blob.len());
        // But the key of another cert is refused.
        let blob = cat(&[&cert, &cert, &cups_key()]);
        assert!(matches!(
            check_station_safe(&blob),
            Err(UnsafeBlob::KeyDoesNotMatchCert { .. })
        ));
    }

    #[test]
    fn token_starting_with_zero_is_reported_as_token_problem() {
        let blob = cat(&[&ca(), &ABSENT, b"0-Key: v\r\n"]);
        assert_eq!(
            check_station_safe(&blob),
            Err(UnsafeBlob::Token {
                at: 442,
                problem: TokenProblem::StartsWithSequenceTag
            })
        );
        // The station would read it as a 0x2d+2 byte SEQUENCE key.
        assert!(station_split(&blob).is_err());
    }

    // ---- builders ---------------------------------------------------------------------------

    #[test]
    fn builders_lengths_and_buffer() {
        let (t, c, k) = (ca(), cups_cert(), cups_key());
        assert_eq!(mtls_len(&t, &c, &k), 1025);
        assert_eq!(token_len(&t, b"A: b\r\n"), 438 + 4 + 6);
        assert_eq!(server_auth_len(&t), 446);
        let mut out = [0u8; 1025];
        assert_eq!(build_mtls(&t, &c, &k, &mut out), Ok(1025));
        assert_eq!(out.as_slice(), mtls().as_slice());
        let mut small = [0u8; 1024];
        assert_eq!(
            build_mtls(&t, &c, &k, &mut small),
            Err(BuildError::BufferTooSmall {
                needed: 1025,
                available: 1024
            })
        );
        assert_eq!(small, [0u8; 1024], "untouched on error");
        let mut out = [0xffu8; 500];
        assert_eq!(build_server_auth(&t, &mut out), Ok(446));
        assert_eq!(&out[438..446], &[0; 8]);
        assert_eq!(out[446], 0xff);
        assert_eq!(build_token(&t, b"A: b\r\n", &mut out), Ok(448));
        assert_eq!(&out[438..448], b"\0\0\0\0A: b\r\n");
        assert!(!BlobParts::ServerAuth { trust: &t }.is_empty());
        assert!(
            BlobParts::Mtls {
                trust: &[],
                cert: &[],
                key: &[]
            }
            .is_empty()
        );
        for e in [
            BuildError::TooLong { len: 1 },
            BuildError::BufferTooSmall {
                needed: 2,
                available: 1,
            },
        ] {
            assert!(!std::format!("{e}").is_empty());
        }
    }

    #[test]
    fn write_checked() {
        let (t, c, k) = (ca(), cups_cert(), cups_key());
        let mut out = [0u8; 2048];
        let info = BlobParts::Mtls {
            trust: &t,
            cert: &c,
            key: &k,
        }
        .write_checked(&mut out)
        .unwrap();
        assert_eq!((info.form, info.len), (BlobForm::Mtls, 1025));
        let e = BlobParts::Mtls {
            trust: &t,
            cert: &c,
            key: &tc_key(),
        }
        .write_checked(&mut out);
        assert!(matches!(
            e,
            Err(BuildCheckedError::Unsafe(
                UnsafeBlob::KeyDoesNotMatchCert { .. }
            ))
        ));
        let e = BlobParts::Token {
            trust: &t,
            header_lines: &ABSENT,
        }
        .write_checked(&mut out);
        assert_eq!(
            e,
            Err(BuildCheckedError::Unsafe(UnsafeBlob::FormMismatch {
                built: BlobForm::Token,
                found: BlobForm::ServerAuth
            }))
        );
        let e = BlobParts::ServerAuth { trust: &t }.write_checked(&mut out[..10]);
        assert!(matches!(
            e,
            Err(BuildCheckedError::Build(BuildError::BufferTooSmall { .. }))
        ));
        assert!(core::error::Error::source(&e.unwrap_err()).is_some());
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn to_vec() {
        let t = ca();
        let v = BlobParts::ServerAuth { trust: &t }.to_vec().unwrap();
        assert_eq!(v.len(), 446);
        let big = std::vec![0u8; MAX_BLOB_LEN];
        assert_eq!(
            BlobParts::ServerAuth { trust: &big }.to_vec(),
            Err(BuildError::TooLong {
                len: MAX_BLOB_LEN + 8
            })
        );
    }

    #[test]
    fn safe_blob_accessors() {
        let blob = mtls();
        let safe = SafeBlob::new(&blob).unwrap();
        assert_eq!(safe.form(), BlobForm::Mtls);
        assert_eq!(safe.trust(), ca().as_slice());
        assert_eq!(safe.cert(), cups_cert().as_slice());
        assert_eq!(safe.key(), cups_key().as_slice());
        assert_eq!(safe.as_bytes(), blob.as_slice());
        assert_eq!(safe.crc32(), 2_154_168_768);
        assert_eq!(safe.info().len, 1025);
        let t = ca();
        let blob = cat(&[&t, &ABSENT, b"A: b\r\n"]);
        let safe = SafeBlob::new(&blob).unwrap();
        assert_eq!((safe.cert(), safe.key()), (&[][..], &b"A: b\r\n"[..]));
        assert!(SafeBlob::new(&t).is_err());
    }

    // ---- fuzz body --------------------------------------------------------------------------

    /// Deterministic xorshift, so the "random bytes" run is reproducible.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn fuzz_cred_on_vectors_mutations_and_random_bytes() {
        let t = ca();
        let seeds: Vec<Vec<u8>> = std::vec![
            mtls(),
            blob_at("responses/full.bin", 46),
            blob_at("responses/full.bin", 1073),
            blob_at("responses/token-tc.bin", 25),
            blob_at("responses/server-auth-tc.bin", 25),
            blob_at("responses/pkcs8-key.bin", 4),
            blob_at("responses/two-trust-certs.bin", 25),
            cat(&[&t, &ABSENT, &ABSENT]),
        ];
        let mut accepted = 0;
        for seed in &seeds {
            fuzz_cred(seed);
            accepted += usize::from(check_station_safe(seed).is_ok());
            // Every truncation.
            for n in 0..seed.len() {
                fuzz_cred(&seed[..n]);
            }
            // Single-byte mutations at every offset.
            let mut m = seed.clone();
            for i in 0..m.len() {
                for v in [0x00, 0x30, 0x81, 0x82, 0xff, m[i] ^ 0x01] {
                    let old = m[i];
                    m[i] = v;
                    fuzz_cred(&m);
                    m[i] = old;
                }
            }
        }
        assert_eq!(accepted, 6);
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            let len = (xorshift(&mut state) % 64) as usize;
            let mut v: Vec<u8> = (0..len).map(|_| xorshift(&mut state) as u8).collect();
            if let Some(first) = v.first_mut() {
                *first = SEQUENCE_TAG; // get past the first check more often
            }
            fuzz_cred(&v);
        }
    }
}
