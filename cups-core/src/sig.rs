//! Update signatures: ECDSA P-256 over SHA-512(update), DER-encoded, prefixed by the CRC of
//! the signing key's raw 64-byte public key. The update is hashed as it streams; the
//! signature is then checked against every key the station holds, like the station does.
//!
//! ```text
//! sig segment = u32le keyCRC ‖ DER SEQUENCE { INTEGER r, INTEGER s }     (8..=132 bytes)
//! keyCRC      = crc32(X ‖ Y)                 the raw 64-byte `sig-N.key` of the signer
//! signature   = ECDSA-P256(leftmost 256 bits of SHA-512(update bytes))  (= openssl dgst -sha512 -sign)
//! ```
//!
//! What the station does, and what this module reproduces (`src/cups.c`, `cups_verifySig`):
//!
//! * the update is hashed chunk by chunk while it streams ([`UpdateHasher`]);
//! * every key `sig-0.key`, `sig-1.key`, ... is tried **in order** until one verifies; the
//!   keyCRC does *not* select the key (the station only logs it) — [`verify_with_keys`];
//!   servers that want to pick a key by CRC use [`key_index_for_crc`];
//! * high-S signatures are accepted (mbedTLS does not require low-S, and OpenSSL does not
//!   produce low-S), so are they here;
//! * a raw 64-byte `r‖s` is not a signature: only DER is.
//!
//! One deliberate difference: the DER parser here is **strict** (minimal, positive integers,
//! short-form lengths, no trailing bytes), while mbedTLS also accepts some non-canonical forms
//! (zero-padded or sign-less integers, long-form lengths). Every real signer emits strict DER;
//! a non-canonical signature is reported as [`DerError`] and counts as not verified.
//!
//! Backends: [`EcdsaP256Verifier`] is the seam. [`RustCryptoVerifier`] (feature `rustcrypto`)
//! uses `p256`; [`NoVerifier`] verifies nothing (an image with a signature is then refused,
//! like embassy-boot without a crypto backend). Feature `signer` adds [`UpdateSigner`], a
//! deterministic (RFC 6979, HMAC-SHA-512) signer that reproduces `openssl`/`cryptography`
//! deterministic signatures byte for byte.

use core::fmt;

use sha2::{Digest as _, Sha512};

/// Length of a raw public key file `sig-N.key` (`X‖Y`).
pub const SIG_KEY_LEN: usize = 64;
/// Length of a SHA-512 digest.
pub const DIGEST_LEN: usize = 64;
/// Length of one P-256 scalar or coordinate (`r`, `s`, a private key, `X`, `Y`).
pub const SCALAR_LEN: usize = 32;
/// Longest DER INTEGER content for a P-256 scalar: 32 bytes plus a `00` sign byte.
pub const MAX_DER_INT_LEN: usize = SCALAR_LEN + 1;
/// Shortest DER signature: `30 06 02 01 rr 02 01 ss`.
pub const MIN_DER_SIG_LEN: usize = 8;
/// Longest DER signature for P-256: `30 46 02 21 00 r(32) 02 21 00 s(32)`.
pub const MAX_DER_SIG_LEN: usize = 2 + 2 * (2 + MAX_DER_INT_LEN);
/// Length of the keyCRC that starts the signature segment.
pub const KEY_CRC_LEN: usize = 4;
/// Longest signature segment this module produces: keyCRC + [`MAX_DER_SIG_LEN`].
pub const MAX_SIG_SEGMENT_LEN: usize = KEY_CRC_LEN + MAX_DER_SIG_LEN;

/// DER tag of a SEQUENCE.
const TAG_SEQUENCE: u8 = 0x30;
/// DER tag of an INTEGER.
const TAG_INTEGER: u8 = 0x02;
/// First length octet that is not a short-form length.
const LONG_FORM: u8 = 0x80;

// ------------------------------------------------------------------------------------ keys

/// A raw P-256 public key as the station stores it in `sig-N.key`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SigKey(pub [u8; SIG_KEY_LEN]);

impl SigKey {
    /// keyCRC = crc32 of the 64 raw bytes.
    #[must_use]
    pub fn crc(&self) -> u32 {
        crate::crc::crc32(&self.0)
    }

    /// A key from the contents of a `sig-N.key` file, which must be exactly
    /// [`SIG_KEY_LEN`] bytes (the station skips files of any other length).
    ///
    /// # Errors
    /// [`SigKeyLenError`] with the actual length.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, SigKeyLenError> {
        <[u8; SIG_KEY_LEN]>::try_from(bytes)
            .map(Self)
            .map_err(|_| SigKeyLenError { len: bytes.len() })
    }

    /// The SEC1 uncompressed encoding `04 ‖ X ‖ Y`.
    #[must_use]
    pub fn to_uncompressed(&self) -> [u8; 1 + SIG_KEY_LEN] {
        let mut out = [0x04; 1 + SIG_KEY_LEN];
        for (o, b) in out.iter_mut().skip(1).zip(self.0) {
            *o = b;
        }
        out
    }
}

/// A `sig-N.key` file that is not [`SIG_KEY_LEN`] bytes long.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SigKeyLenError {
    /// The length found.
    pub len: usize,
}

impl fmt::Display for SigKeyLenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "signing key is {} bytes, expected {SIG_KEY_LEN}",
            self.len
        )
    }
}

impl core::error::Error for SigKeyLenError {}

/// Index of the first key whose CRC is `key_crc` (for servers and clients that select the
/// key by keyCRC; the station itself tries every key, see [`verify_with_keys`]).
#[must_use]
pub fn key_index_for_crc(keys: &[SigKey], key_crc: u32) -> Option<usize> {
    keys.iter().position(|k| k.crc() == key_crc)
}

// ------------------------------------------------------------------------------------ hashing

/// Streaming SHA-512 over the update bytes as they arrive. No allocation; any split of the
/// input gives the same digest.
#[derive(Clone, Default)]
pub struct UpdateHasher {
    sha: Sha512,
    bytes: u64,
}

impl fmt::Debug for UpdateHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpdateHasher")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl UpdateHasher {
    /// A hasher over nothing yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the next chunk of the update.
    pub fn update(&mut self, chunk: &[u8]) {
        self.sha.update(chunk);
        let n = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
        self.bytes = self.bytes.saturating_add(n);
    }

    /// How many bytes were fed so far.
    #[must_use]
    pub fn bytes_hashed(&self) -> u64 {
        self.bytes
    }

    /// The SHA-512 digest of everything fed.
    #[must_use]
    pub fn finish(self) -> [u8; DIGEST_LEN] {
        self.sha.finalize().into()
    }
}

/// SHA-512 of a whole update held in memory.
#[must_use]
pub fn sha512(update: &[u8]) -> [u8; DIGEST_LEN] {
    Sha512::digest(update).into()
}

// ------------------------------------------------------------------------------------ DER

/// Why a signature is not a strict DER `SEQUENCE { INTEGER r, INTEGER s }` for P-256.
/// Offsets are from the start of the DER bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum DerError {
    /// Shorter than [`MIN_DER_SIG_LEN`].
    TooShort {
        /// Length given.
        len: usize,
    },
    /// Longer than [`MAX_DER_SIG_LEN`].
    TooLong {
        /// Length given.
        len: usize,
    },
    /// A different tag than expected (a raw `r‖s` usually fails here at offset 0).
    UnexpectedTag {
        /// Offset of the tag.
        offset: usize,
        /// Tag required.
        expected: u8,
        /// Tag found.
        found: u8,
    },
    /// A length octet in long form (`0x80..`): never needed for a P-256 signature, so either
    /// non-minimal or too long.
    LongFormLength {
        /// Offset of the length octet.
        offset: usize,
    },
    /// A length runs past the end of its enclosing element.
    Truncated {
        /// Offset of the length octet.
        offset: usize,
        /// Content length declared.
        declared: usize,
        /// Bytes actually available after the length octet.
        available: usize,
    },
    /// Bytes left after the SEQUENCE or after `s` inside it.
    TrailingBytes {
        /// Offset of the first extra byte.
        offset: usize,
        /// How many extra bytes.
        count: usize,
    },
    /// An INTEGER with no content octets.
    EmptyInteger {
        /// Offset of the INTEGER tag.
        offset: usize,
    },
    /// An INTEGER with its sign bit set (`r` and `s` are positive).
    NegativeInteger {
        /// Offset of the INTEGER tag.
        offset: usize,
    },
    /// An INTEGER with a superfluous leading `00` (DER requires minimal encoding).
    NonMinimalInteger {
        /// Offset of the INTEGER tag.
        offset: usize,
    },
    /// An INTEGER larger than 256 bits.
    IntegerTooLarge {
        /// Offset of the INTEGER tag.
        offset: usize,
        /// Content length.
        len: usize,
    },
}

impl fmt::Display for DerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooShort { len } => {
                write!(
                    f,
                    "DER signature of {len} bytes, at least {MIN_DER_SIG_LEN} needed"
                )
            }
            Self::TooLong { len } => {
                write!(
                    f,
                    "DER signature of {len} bytes, at most {MAX_DER_SIG_LEN} allowed"
                )
            }
            Self::UnexpectedTag {
                offset,
                expected,
                found,
            } => {
                write!(
                    f,
                    "tag {found:#04x} at offset {offset}, expected {expected:#04x}"
                )
            }
            Self::LongFormLength { offset } => write!(f, "long-form length at offset {offset}"),
            Self::Truncated {
                offset,
                declared,
                available,
            } => write!(
                f,
                "length at offset {offset} declares {declared} bytes, only {available} available"
            ),
            Self::TrailingBytes { offset, count } => {
                write!(f, "{count} trailing bytes at offset {offset}")
            }
            Self::EmptyInteger { offset } => write!(f, "empty INTEGER at offset {offset}"),
            Self::NegativeInteger { offset } => write!(f, "negative INTEGER at offset {offset}"),
            Self::NonMinimalInteger { offset } => {
                write!(f, "non-minimal INTEGER at offset {offset}")
            }
            Self::IntegerTooLarge { offset, len } => {
                write!(
                    f,
                    "INTEGER of {len} bytes at offset {offset} exceeds 256 bits"
                )
            }
        }
    }
}

impl core::error::Error for DerError {}

/// One DER element: its content and where the content starts.
struct Tlv<'a> {
    content: &'a [u8],
    content_offset: usize,
    rest: &'a [u8],
}

/// Reads one element with tag `expected` and a short-form length from `input`, which starts
/// at absolute offset `base`.
fn take_tlv(input: &[u8], base: usize, expected: u8) -> Result<Tlv<'_>, DerError> {
    let len_offset = base.saturating_add(1);
    let content_offset = base.saturating_add(2);
    let truncated = |declared: usize, available: usize| DerError::Truncated {
        offset: len_offset,
        declared,
        available,
    };
    let [tag, rest @ ..] = input else {
        return Err(truncated(1, 0));
    };
    if *tag != expected {
        return Err(DerError::UnexpectedTag {
            offset: base,
            expected,
            found: *tag,
        });
    }
    let [len, rest @ ..] = rest else {
        return Err(truncated(1, 0));
    };
    if *len >= LONG_FORM {
        return Err(DerError::LongFormLength { offset: len_offset });
    }
    let declared = usize::from(*len);
    let (content, rest) = rest
        .split_at_checked(declared)
        .ok_or(truncated(declared, rest.len()))?;
    Ok(Tlv {
        content,
        content_offset,
        rest,
    })
}

/// Decodes a strict DER INTEGER content (minimal, positive, ≤ 256 bits) into 32 bytes.
fn int_to_scalar(content: &[u8], tag_offset: usize) -> Result<[u8; SCALAR_LEN], DerError> {
    let magnitude = match content {
        [] => return Err(DerError::EmptyInteger { offset: tag_offset }),
        [first, ..] if *first >= LONG_FORM => {
            return Err(DerError::NegativeInteger { offset: tag_offset });
        }
        [0, second, ..] if *second < LONG_FORM => {
            return Err(DerError::NonMinimalInteger { offset: tag_offset });
        }
        [0, rest @ ..] if !rest.is_empty() => rest,
        all => all,
    };
    let pad = SCALAR_LEN
        .checked_sub(magnitude.len())
        .ok_or(DerError::IntegerTooLarge {
            offset: tag_offset,
            len: content.len(),
        })?;
    let mut out = [0u8; SCALAR_LEN];
    for (o, b) in out.iter_mut().skip(pad).zip(magnitude) {
        *o = *b;
    }
    Ok(out)
}

/// An ECDSA P-256 signature as its two scalars, big-endian, 32 bytes each. Built from strict
/// DER by [`EcdsaSignature::from_der`]; the range `1..n` is checked by the backend, not here.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EcdsaSignature {
    r: [u8; SCALAR_LEN],
    s: [u8; SCALAR_LEN],
}

impl EcdsaSignature {
    /// A signature from its scalars (big-endian).
    #[must_use]
    pub const fn from_scalars(r: [u8; SCALAR_LEN], s: [u8; SCALAR_LEN]) -> Self {
        Self { r, s }
    }

    /// Parses a strict DER `SEQUENCE { INTEGER r, INTEGER s }`: short-form lengths, minimal
    /// positive integers of at most [`MAX_DER_INT_LEN`] bytes, nothing after the SEQUENCE.
    ///
    /// # Errors
    /// The first [`DerError`] found.
    pub fn from_der(der: &[u8]) -> Result<Self, DerError> {
        if der.len() < MIN_DER_SIG_LEN {
            return Err(DerError::TooShort { len: der.len() });
        }
        if der.len() > MAX_DER_SIG_LEN {
            return Err(DerError::TooLong { len: der.len() });
        }
        let seq = take_tlv(der, 0, TAG_SEQUENCE)?;
        if !seq.rest.is_empty() {
            return Err(DerError::TrailingBytes {
                offset: der.len().saturating_sub(seq.rest.len()),
                count: seq.rest.len(),
            });
        }
        let r_offset = seq.content_offset;
        let r = take_tlv(seq.content, r_offset, TAG_INTEGER)?;
        let s_offset = r.content_offset.saturating_add(r.content.len());
        let s = take_tlv(r.rest, s_offset, TAG_INTEGER)?;
        if !s.rest.is_empty() {
            return Err(DerError::TrailingBytes {
                offset: s.content_offset.saturating_add(s.content.len()),
                count: s.rest.len(),
            });
        }
        Ok(Self {
            r: int_to_scalar(r.content, r_offset)?,
            s: int_to_scalar(s.content, s_offset)?,
        })
    }

    /// `r`, big-endian.
    #[must_use]
    pub const fn r(&self) -> &[u8; SCALAR_LEN] {
        &self.r
    }

    /// `s`, big-endian.
    #[must_use]
    pub const fn s(&self) -> &[u8; SCALAR_LEN] {
        &self.s
    }

    /// The strict DER encoding (what [`EcdsaSignature::from_der`] accepts back).
    #[must_use]
    pub fn to_der(&self) -> DerSignature {
        let mut out = DerSignature {
            bytes: [0; MAX_DER_SIG_LEN],
            len: 0,
        };
        let mut w = Writer {
            buf: &mut out.bytes,
            pos: 0,
        };
        let r = minimal(&self.r);
        let s = minimal(&self.s);
        w.push(TAG_SEQUENCE);
        w.push(int_len(r).saturating_add(int_len(s)).saturating_add(4));
        w.integer(r);
        w.integer(s);
        out.len = w.pos;
        out
    }
}

/// `bytes` without leading zeros, keeping at least one byte.
fn minimal(bytes: &[u8; SCALAR_LEN]) -> &[u8] {
    let zeros = bytes
        .iter()
        .take(SCALAR_LEN - 1)
        .take_while(|b| **b == 0)
        .count();
    bytes.get(zeros..).unwrap_or(bytes)
}

/// DER content length of a minimal magnitude (a `00` is added when the top bit is set).
fn int_len(magnitude: &[u8]) -> u8 {
    let sign = magnitude.first().is_some_and(|b| *b >= LONG_FORM);
    // magnitude is at most 32 bytes, so this fits.
    u8::try_from(magnitude.len())
        .unwrap_or(u8::MAX)
        .saturating_add(u8::from(sign))
}

/// A tiny bounded writer for [`EcdsaSignature::to_der`].
struct Writer<'a> {
    buf: &'a mut [u8; MAX_DER_SIG_LEN],
    pos: usize,
}

impl Writer<'_> {
    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.pos) {
            *slot = b;
            self.pos = self.pos.saturating_add(1);
        }
    }

    fn integer(&mut self, magnitude: &[u8]) {
        self.push(TAG_INTEGER);
        let len = int_len(magnitude);
        self.push(len);
        if usize::from(len) > magnitude.len() {
            self.push(0);
        }
        for b in magnitude {
            self.push(*b);
        }
    }
}

/// A strict DER ECDSA P-256 signature in a fixed buffer (at most [`MAX_DER_SIG_LEN`] bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DerSignature {
    bytes: [u8; MAX_DER_SIG_LEN],
    len: usize,
}

impl DerSignature {
    /// The DER bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&self.bytes)
    }
}

/// The content of a signature segment: `u32le keyCRC ‖ DER`, in a fixed buffer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SignatureSegment {
    bytes: [u8; MAX_SIG_SEGMENT_LEN],
    len: usize,
}

impl SignatureSegment {
    /// The segment for `signature` made with the key whose CRC is `key_crc`.
    #[must_use]
    pub fn new(key_crc: u32, signature: &EcdsaSignature) -> Self {
        let der = signature.to_der();
        let mut bytes = [0; MAX_SIG_SEGMENT_LEN];
        for (o, b) in bytes
            .iter_mut()
            .zip(key_crc.to_le_bytes().iter().chain(der.as_bytes()))
        {
            *o = *b;
        }
        Self {
            bytes,
            len: KEY_CRC_LEN.saturating_add(der.as_bytes().len()),
        }
    }

    /// The keyCRC.
    #[must_use]
    pub fn key_crc(&self) -> u32 {
        let [a, b, c, d, ..] = self.bytes;
        u32::from_le_bytes([a, b, c, d])
    }

    /// The DER signature (70–72 bytes for real signatures).
    #[must_use]
    pub fn der(&self) -> &[u8] {
        self.bytes.get(KEY_CRC_LEN..self.len).unwrap_or_default()
    }

    /// The segment content `keyCRC_le ‖ DER` (`4 + der().len()` bytes; the response encoder
    /// writes the u32 length prefix in front of it).
    #[must_use]
    pub fn as_segment_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&self.bytes)
    }

    /// The segment as the response encoder takes it.
    #[must_use]
    pub fn as_sig_ref(&self) -> crate::response::encoder::SigRef<'_> {
        crate::response::encoder::SigRef {
            key_crc: self.key_crc(),
            der: self.der(),
        }
    }
}

// ------------------------------------------------------------------------------------ verify

/// An ECDSA P-256 verifier over a pre-computed SHA-512 digest (truncated to 256 bits as
/// ECDSA does). Firmware can plug in a hardware engine.
pub trait EcdsaP256Verifier {
    /// Whether `der_sig` is a valid DER signature of `digest` under `key`.
    fn verify_prehash(&self, key: &SigKey, digest: &[u8; DIGEST_LEN], der_sig: &[u8]) -> bool;
}

impl<V: EcdsaP256Verifier + ?Sized> EcdsaP256Verifier for &V {
    fn verify_prehash(&self, key: &SigKey, digest: &[u8; DIGEST_LEN], der_sig: &[u8]) -> bool {
        (**self).verify_prehash(key, digest, der_sig)
    }
}

/// No crypto backend: nothing verifies, so a signed update is always refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct NoVerifier;

impl EcdsaP256Verifier for NoVerifier {
    fn verify_prehash(&self, _: &SigKey, _: &[u8; DIGEST_LEN], _: &[u8]) -> bool {
        false
    }
}

/// Outcome of [`verify_with_keys`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[must_use]
pub enum Verification {
    /// The key at `index` verified the signature (earlier keys did not).
    Verified {
        /// Index of the key in the list (`sig-<index>.key` on a station).
        index: usize,
    },
    /// No key verified it (the station then aborts the update).
    NotVerified {
        /// How many keys were tried (the station logs "Tried N keys").
        tried: usize,
    },
}

impl Verification {
    /// Whether some key verified the signature.
    #[must_use]
    pub const fn is_verified(&self) -> bool {
        matches!(self, Self::Verified { .. })
    }

    /// The index of the key that verified, if any.
    #[must_use]
    pub const fn key_index(&self) -> Option<usize> {
        match *self {
            Self::Verified { index } => Some(index),
            Self::NotVerified { .. } => None,
        }
    }
}

/// Checks `der_sig` over `digest` against every key in order, like the station: the first
/// key that verifies wins; the keyCRC plays no part. A signature that is not strict DER
/// ([`EcdsaSignature::from_der`]) verifies under no key and the backend is not called.
pub fn verify_with_keys<'k, V, I>(
    verifier: &V,
    keys: I,
    digest: &[u8; DIGEST_LEN],
    der_sig: &[u8],
) -> Verification
where
    V: EcdsaP256Verifier + ?Sized,
    I: IntoIterator<Item = &'k SigKey>,
{
    let well_formed = EcdsaSignature::from_der(der_sig).is_ok();
    let mut tried = 0usize;
    for (index, key) in keys.into_iter().enumerate() {
        tried = index.saturating_add(1);
        if well_formed && verifier.verify_prehash(key, digest, der_sig) {
            return Verification::Verified { index };
        }
    }
    Verification::NotVerified { tried }
}

#[cfg(feature = "rustcrypto")]
pub use rustcrypto::RustCryptoVerifier;

#[cfg(feature = "rustcrypto")]
mod rustcrypto {
    use super::{DIGEST_LEN, EcdsaP256Verifier, EcdsaSignature, SCALAR_LEN, SigKey};
    use p256::ecdsa::{Signature, VerifyingKey, signature::hazmat::PrehashVerifier as _};
    use p256::elliptic_curve::point::AffineCoordinates as _;
    use p256::{AffinePoint, FieldBytes};

    /// The key as a verifying key: `X‖Y` must be a point on the curve (not the identity).
    /// Built from the coordinates directly: no SEC1 decoding, so no point-decompression code
    /// is linked into firmware.
    fn verifying_key(key: &SigKey) -> Option<VerifyingKey> {
        let (x, y) = key.0.split_at(SCALAR_LEN);
        let x = FieldBytes::try_from(x).ok()?;
        let y = FieldBytes::try_from(y).ok()?;
        let point = AffinePoint::from_coordinates(&x, &y).into_option()?;
        VerifyingKey::from_affine(point).ok()
    }

    /// ECDSA P-256 verification with RustCrypto's `p256` (constant memory, no allocation).
    ///
    /// Keys are `X‖Y` (an invalid point never verifies); the digest is truncated to its
    /// leftmost 256 bits as ECDSA prescribes; high-S signatures are accepted like mbedTLS
    /// accepts them; DER must be strict ([`EcdsaSignature::from_der`]).
    #[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
    pub struct RustCryptoVerifier;

    impl RustCryptoVerifier {
        /// Whether `key` is a point on P-256 (other than the identity).
        #[must_use]
        pub fn is_valid_key(key: &SigKey) -> bool {
            verifying_key(key).is_some()
        }
    }

    impl EcdsaP256Verifier for RustCryptoVerifier {
        fn verify_prehash(&self, key: &SigKey, digest: &[u8; DIGEST_LEN], der_sig: &[u8]) -> bool {
            let Ok(parsed) = EcdsaSignature::from_der(der_sig) else {
                return false;
            };
            // `from_scalars` rejects r or s outside 1..n.
            let Ok(sig) = Signature::from_scalars(*parsed.r(), *parsed.s()) else {
                return false;
            };
            let Some(vk) = verifying_key(key) else {
                return false;
            };
            // p256 does not normalize S (NistP256::NORMALIZE_S = false): high-S verifies.
            vk.verify_prehash(digest, &sig).is_ok()
        }
    }
}

// ------------------------------------------------------------------------------------ signer

#[cfg(feature = "signer")]
pub use signer::{SignerKeyError, UpdateSigner};

#[cfg(feature = "signer")]
mod signer {
    use core::fmt;

    use p256::elliptic_curve::point::AffineCoordinates as _;
    use p256::{FieldBytes, SecretKey};
    use sha2::Sha512;

    use super::{
        DIGEST_LEN, DerError, EcdsaSignature, SCALAR_LEN, SIG_KEY_LEN, SigKey, SignatureSegment,
        TAG_INTEGER, TAG_SEQUENCE, UpdateHasher, sha512, take_tlv,
    };

    /// DER tag of an OCTET STRING.
    const TAG_OCTET_STRING: u8 = 0x04;
    /// DER tag of a BIT STRING.
    const TAG_BIT_STRING: u8 = 0x03;
    /// DER tag of an OBJECT IDENTIFIER.
    const TAG_OID: u8 = 0x06;
    /// SEC1 `[0] parameters`.
    const TAG_PARAMETERS: u8 = 0xA0;
    /// SEC1 `[1] publicKey`.
    const TAG_PUBLIC_KEY: u8 = 0xA1;
    /// DER content of OID 1.2.840.10045.3.1.7 (prime256v1 / secp256r1).
    const OID_PRIME256V1: [u8; 8] = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
    /// SEC1 `ECPrivateKey` version.
    const SEC1_VERSION: u8 = 1;

    /// Why a private key could not be used for signing.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    #[non_exhaustive]
    pub enum SignerKeyError {
        /// The SEC1 `ECPrivateKey` is not strict short-form DER (offsets into the key).
        Der(DerError),
        /// SEC1 version other than 1.
        UnsupportedVersion {
            /// The version byte found (its first byte when longer).
            version: u8,
        },
        /// The private key is not a 32-byte OCTET STRING.
        PrivateKeyLen {
            /// Length found.
            len: usize,
        },
        /// Curve parameters other than prime256v1.
        UnsupportedCurve,
        /// The embedded public key is not an uncompressed point `00 04 X Y`.
        UnsupportedPublicKey,
        /// The private scalar is zero or not below the group order.
        InvalidScalar,
        /// The embedded public key does not belong to the private key.
        PublicKeyMismatch,
    }

    impl From<DerError> for SignerKeyError {
        fn from(e: DerError) -> Self {
            Self::Der(e)
        }
    }

    impl fmt::Display for SignerKeyError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Self::Der(e) => write!(f, "SEC1 key: {e}"),
                Self::UnsupportedVersion { version } => {
                    write!(f, "SEC1 key version {version}, expected {SEC1_VERSION}")
                }
                Self::PrivateKeyLen { len } => {
                    write!(f, "private key of {len} bytes, expected {SCALAR_LEN}")
                }
                Self::UnsupportedCurve => f.write_str("key is not on prime256v1 (P-256)"),
                Self::UnsupportedPublicKey => {
                    f.write_str("embedded public key is not an uncompressed point")
                }
                Self::InvalidScalar => f.write_str("private scalar is zero or not below n"),
                Self::PublicKeyMismatch => {
                    f.write_str("embedded public key does not match the private key")
                }
            }
        }
    }

    impl core::error::Error for SignerKeyError {}

    /// Signs updates for the station: ECDSA P-256 over SHA-512(update), deterministic nonces
    /// per RFC 6979 with HMAC-SHA-512 — the same bytes as OpenSSL ≥ 3.2 / `cryptography`
    /// deterministic signing with SHA-512. Signatures are not low-S normalized (the station
    /// accepts both). The secret is wiped on drop.
    #[derive(Clone)]
    pub struct UpdateSigner {
        secret: SecretKey,
        public: SigKey,
    }

    impl fmt::Debug for UpdateSigner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("UpdateSigner")
                .field("key_crc", &format_args!("{:08X}", self.public.crc()))
                .finish_non_exhaustive()
        }
    }

    impl UpdateSigner {
        /// A signer from the raw 32-byte big-endian private scalar.
        ///
        /// # Errors
        /// [`SignerKeyError::InvalidScalar`] if the scalar is zero or ≥ n.
        pub fn from_scalar(scalar: &[u8; SCALAR_LEN]) -> Result<Self, SignerKeyError> {
            let secret = SecretKey::from_bytes(&FieldBytes::from(*scalar))
                .map_err(|_| SignerKeyError::InvalidScalar)?;
            let point = *secret.public_key().as_affine();
            let mut raw = [0u8; SIG_KEY_LEN];
            for (o, b) in raw.iter_mut().zip(point.x().iter().chain(point.y().iter())) {
                *o = *b;
            }
            Ok(Self {
                secret,
                public: SigKey(raw),
            })
        }

        /// A signer from a SEC1 `ECPrivateKey` in DER (`30 77 02 01 01 04 20 ...`, what
        /// `openssl ec -outform der` writes; the PEM body of `BEGIN EC PRIVATE KEY`). The
        /// optional curve parameters must name P-256 and the optional public key must match.
        ///
        /// # Errors
        /// A [`SignerKeyError`] saying what is wrong.
        pub fn from_sec1_der(der: &[u8]) -> Result<Self, SignerKeyError> {
            let seq = take_tlv(der, 0, TAG_SEQUENCE)?;
            if !seq.rest.is_empty() {
                return Err(DerError::TrailingBytes {
                    offset: der.len().saturating_sub(seq.rest.len()),
                    count: seq.rest.len(),
                }
                .into());
            }
            let version = take_tlv(seq.content, seq.content_offset, TAG_INTEGER)?;
            if version.content != [SEC1_VERSION] {
                let found = version.content.first().copied().unwrap_or_default();
                return Err(SignerKeyError::UnsupportedVersion { version: found });
            }
            let at = end_of(&version);
            let d = take_tlv(version.rest, at, TAG_OCTET_STRING)?;
            let scalar = <[u8; SCALAR_LEN]>::try_from(d.content).map_err(|_| {
                SignerKeyError::PrivateKeyLen {
                    len: d.content.len(),
                }
            })?;
            let signer = Self::from_scalar(&scalar)?;
            let (mut rest, mut at) = (d.rest, end_of(&d));
            if rest.first() == Some(&TAG_PARAMETERS) {
                let params = take_tlv(rest, at, TAG_PARAMETERS)?;
                let oid = take_tlv(params.content, params.content_offset, TAG_OID)?;
                if oid.content != OID_PRIME256V1 || !oid.rest.is_empty() {
                    return Err(SignerKeyError::UnsupportedCurve);
                }
                (rest, at) = (params.rest, end_of(&params));
            }
            if rest.first() == Some(&TAG_PUBLIC_KEY) {
                let wrapper = take_tlv(rest, at, TAG_PUBLIC_KEY)?;
                let bits = take_tlv(wrapper.content, wrapper.content_offset, TAG_BIT_STRING)?;
                let [0, 0x04, xy @ ..] = bits.content else {
                    return Err(SignerKeyError::UnsupportedPublicKey);
                };
                if !bits.rest.is_empty() || xy.len() != SIG_KEY_LEN {
                    return Err(SignerKeyError::UnsupportedPublicKey);
                }
                if xy != signer.public.0 {
                    return Err(SignerKeyError::PublicKeyMismatch);
                }
                (rest, at) = (wrapper.rest, end_of(&wrapper));
            }
            if !rest.is_empty() {
                return Err(DerError::TrailingBytes {
                    offset: at,
                    count: rest.len(),
                }
                .into());
            }
            Ok(signer)
        }

        /// The raw public key to install on stations as `sig-N.key`.
        #[must_use]
        pub fn public_key(&self) -> SigKey {
            self.public
        }

        /// keyCRC of [`UpdateSigner::public_key`] (what goes into the request's `keys`).
        #[must_use]
        pub fn key_crc(&self) -> u32 {
            self.public.crc()
        }

        /// Signs a SHA-512 digest (from [`UpdateHasher::finish`] or [`sha512`]).
        #[must_use]
        pub fn sign_digest(&self, digest: &[u8; DIGEST_LEN]) -> SignatureSegment {
            SignatureSegment::new(self.public.crc(), &self.sign_digest_raw(digest))
        }

        /// Signs an update held in memory.
        #[must_use]
        pub fn sign_update(&self, update: &[u8]) -> SignatureSegment {
            self.sign_digest(&sha512(update))
        }

        /// Signs what a streaming hasher saw (an image streamed from disk in chunks).
        #[must_use]
        pub fn sign_hasher(&self, hasher: UpdateHasher) -> SignatureSegment {
            self.sign_digest(&hasher.finish())
        }

        /// The bare signature over `digest`.
        #[must_use]
        pub fn sign_digest_raw(&self, digest: &[u8; DIGEST_LEN]) -> EcdsaSignature {
            // RFC 6979 deterministic nonce with HMAC-SHA-512 (what `openssl`/`cryptography`
            // produce for an ECDSA-with-SHA-512 signature), from the `ecdsa` crate.
            let (sig, _) = ecdsa::hazmat::sign_prehashed_rfc6979::<p256::NistP256, Sha512>(
                &self.secret.to_nonzero_scalar(),
                digest,
                &[],
            );
            let (r, s) = sig.split_bytes();
            EcdsaSignature::from_scalars(r.into(), s.into())
        }
    }

    /// Offset just past an element.
    fn end_of(tlv: &super::Tlv<'_>) -> usize {
        tlv.content_offset.saturating_add(tlv.content.len())
    }
}

// ------------------------------------------------------------------------------------ fuzz

/// Fuzz body: strict DER parsing and verification over arbitrary bytes. Never panics;
/// asserts that whatever parses re-encodes to the same bytes (strict DER is canonical) and
/// that nothing verifies without a backend.
#[cfg(any(fuzzing, test))]
pub fn fuzz_sig_der(data: &[u8]) {
    /// The P-256 base point G as `X‖Y` (the public key of private key 1).
    const G: [u8; SIG_KEY_LEN] = [
        0x6B, 0x17, 0xD1, 0xF2, 0xE1, 0x2C, 0x42, 0x47, 0xF8, 0xBC, 0xE6, 0xE5, 0x63, 0xA4, 0x40,
        0xF2, 0x77, 0x03, 0x7D, 0x81, 0x2D, 0xEB, 0x33, 0xA0, 0xF4, 0xA1, 0x39, 0x45, 0xD8, 0x98,
        0xC2, 0x96, 0x4F, 0xE3, 0x42, 0xE2, 0xFE, 0x1A, 0x7F, 0x9B, 0x8E, 0xE7, 0xEB, 0x4A, 0x7C,
        0x0F, 0x9E, 0x16, 0x2B, 0xCE, 0x33, 0x57, 0x6B, 0x31, 0x5E, 0xCE, 0xCB, 0xB6, 0x40, 0x68,
        0x37, 0xBF, 0x51, 0xF5,
    ];
    if let Ok(sig) = EcdsaSignature::from_der(data) {
        let der = sig.to_der();
        assert_eq!(
            der.as_bytes(),
            data,
            "strict DER must re-encode to the same bytes"
        );
        let seg = SignatureSegment::new(0, &sig);
        assert_eq!(seg.der(), data);
    }
    let digest = sha512(data);
    let mut keys = [SigKey(G), SigKey([0; SIG_KEY_LEN])];
    if let (Some(k), Some(slot)) = (
        data.get(..SIG_KEY_LEN)
            .and_then(|b| SigKey::from_slice(b).ok()),
        keys.get_mut(1),
    ) {
        *slot = k;
    }
    let none = verify_with_keys(&NoVerifier, &keys, &digest, data);
    assert_eq!(none, Verification::NotVerified { tried: keys.len() });
    let _ = key_index_for_crc(&keys, crate::crc::crc32(data));
    #[cfg(feature = "rustcrypto")]
    {
        let _ = verify_with_keys(&RustCryptoVerifier, &keys, &digest, data);
        for key in &keys {
            let _ = RustCryptoVerifier::is_valid_key(key);
        }
    }
}

// ------------------------------------------------------------------------------------ tests

#[cfg(test)]
mod tests {
    use super::*;

    fn vec_der(r: &[u8], s: &[u8]) -> std::vec::Vec<u8> {
        let mut v = std::vec![0x30, u8::try_from(r.len() + s.len() + 4).unwrap()];
        v.extend_from_slice(&[0x02, u8::try_from(r.len()).unwrap()]);
        v.extend_from_slice(r);
        v.extend_from_slice(&[0x02, u8::try_from(s.len()).unwrap()]);
        v.extend_from_slice(s);
        v
    }

    #[test]
    fn minimal_der_round_trips() {
        let der = [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x7F];
        let sig = EcdsaSignature::from_der(&der).unwrap();
        assert_eq!(sig.r()[31], 1);
        assert_eq!(sig.s()[31], 0x7F);
        assert_eq!(sig.to_der().as_bytes(), der);
    }

    #[test]
    fn high_bit_gets_sign_byte() {
        let mut r = [0u8; 33];
        r[1] = 0x80;
        let der = vec_der(&r, &[0x01]);
        let sig = EcdsaSignature::from_der(&der).unwrap();
        assert_eq!(sig.r()[0], 0x80);
        assert_eq!(sig.to_der().as_bytes(), &der[..]);
    }

    #[test]
    fn zero_scalar_encodes_as_one_byte() {
        let sig = EcdsaSignature::from_scalars([0; 32], [0; 32]);
        assert_eq!(
            sig.to_der().as_bytes(),
            [0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00]
        );
    }

    #[test]
    fn segment_layout() {
        let sig = EcdsaSignature::from_scalars([0xFF; 32], [0x01; 32]);
        let seg = SignatureSegment::new(0x49D5_7CDF, &sig);
        assert_eq!(seg.key_crc(), 0x49D5_7CDF);
        assert_eq!(&seg.as_segment_bytes()[..4], &[0xDF, 0x7C, 0xD5, 0x49]);
        assert_eq!(seg.der().len(), 2 + 35 + 34);
        assert_eq!(seg.as_segment_bytes().len(), 4 + seg.der().len());
        assert_eq!(EcdsaSignature::from_der(seg.der()).unwrap(), sig);
        assert_eq!(seg.as_sig_ref().der, seg.der());
    }

    #[test]
    fn hasher_any_split() {
        let data: std::vec::Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let whole = sha512(&data);
        for split in [0, 1, 127, 128, 129, 500, 1000] {
            let mut h = UpdateHasher::new();
            h.update(&data[..split]);
            h.update(&data[split..]);
            assert_eq!(h.bytes_hashed(), 1000);
            assert_eq!(h.finish(), whole);
        }
    }

    #[test]
    fn no_verifier_never_verifies() {
        let keys = [SigKey([1; 64]), SigKey([2; 64])];
        let der = [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01];
        let v = verify_with_keys(&NoVerifier, &keys, &[0; 64], &der);
        assert_eq!(v, Verification::NotVerified { tried: 2 });
        assert!(!v.is_verified());
        assert_eq!(v.key_index(), None);
        let none: [SigKey; 0] = [];
        assert_eq!(
            verify_with_keys(&NoVerifier, &none, &[0; 64], &der),
            Verification::NotVerified { tried: 0 }
        );
    }

    fn vectors_dir() -> std::path::PathBuf {
        std::env::var("CUPS_VECTORS").map_or_else(
            |_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors").into(),
            std::path::PathBuf::from,
        )
    }

    #[test]
    fn fuzz_body_on_vector_signatures() {
        let dir = vectors_dir().join("responses");
        let mut seen = 0;
        for name in [
            "full",
            "badsig",
            "sig1-signed",
            "sig-sha256",
            "sig-raw-rs",
            "sig-too-long",
        ] {
            let body = std::fs::read(dir.join(std::format!("{name}.bin")))
                .unwrap_or_else(|e| panic!("vector {name}.bin missing: {e}"));
            // Every vector's signature field starts 4 bytes after its length field; fuzz the
            // whole tail too, so truncations and trailing bytes are exercised.
            for start in 0..body.len() {
                if body[start] == 0x30 {
                    for end in start..body.len().min(start + 80) {
                        fuzz_sig_der(&body[start..=end]);
                    }
                    seen += 1;
                }
            }
        }
        assert!(seen >= 6);
    }

    proptest::proptest! {
        #[test]
        fn fuzz_body_on_random_bytes(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100)) {
            fuzz_sig_der(&data);
        }
    }

    #[test]
    fn fuzz_body_on_samples() {
        fuzz_sig_der(&[]);
        fuzz_sig_der(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]);
        fuzz_sig_der(&vec_der(&[0x7F; 32], &[0x00, 0x80]));
        let mut x = 0x1234_5678_u32;
        for len in 0..200 {
            let data: std::vec::Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            fuzz_sig_der(&data);
            let mut framed = vec_der(&data[..len.min(33)], &data[len.min(33)..len.min(66)]);
            fuzz_sig_der(&framed);
            framed.push(0);
            fuzz_sig_der(&framed);
        }
    }
}
