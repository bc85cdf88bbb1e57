//! Response encoder: writes everything up to the update bytes into a caller buffer and
//! reports the total body length, so the update itself can be streamed after the head.
//!
//! SKELETON: API fixed, bodies to be written.

/// A signature segment: the CRC of the signing key's raw 64-byte public key and the DER
/// ECDSA signature.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SigRef<'a> {
    /// crc32 of the raw `X‖Y` public key.
    pub key_crc: u32,
    /// DER `SEQUENCE { INTEGER r, INTEGER s }`.
    pub der: &'a [u8],
}

/// What to send: `None` for "keep current" / "nothing".
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ResponseParts<'a> {
    /// New CUPS URI (`scheme://host:port`).
    pub cups_uri: Option<&'a str>,
    /// New TC URI (`ws(s)://host:port`).
    pub tc_uri: Option<&'a str>,
    /// New CUPS credential blob.
    pub cups_cred: Option<&'a [u8]>,
    /// New TC credential blob.
    pub tc_cred: Option<&'a [u8]>,
    /// Signature over the update.
    pub sig: Option<SigRef<'a>>,
    /// Length of the update that will be streamed after the head (0 = none).
    pub update_len: u32,
}

/// Result of [`encode_head`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ResponseHead {
    /// Bytes written to the caller's buffer (everything before the update bytes).
    pub head_len: usize,
    /// Total body length = `head_len + update_len` (the `Content-Length`).
    pub body_len: u64,
}

/// Encode the head of a response into `out`.
pub fn encode_head(parts: &ResponseParts<'_>, out: &mut [u8]) -> Result<ResponseHead, EncodeError> {
    let _ = (parts, out);
    todo!()
}

/// Why a response could not be encoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum EncodeError {
    /// The caller's buffer is too small; `needed` bytes are required.
    BufferTooSmall {
        /// Bytes the head needs.
        needed: usize,
    },
}
