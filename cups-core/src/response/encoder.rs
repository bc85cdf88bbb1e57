//! Response encoder: writes everything up to the update bytes into a caller buffer and
//! reports the total body length, so the update itself can be streamed after the head.
//!
//! ```text
//! head (encode_head writes this)                                       streamed by the caller
//! u8 n|cupsUri  u8 n|tcUri  u16 n|cupsCred  u16 n|tcCred  u32 n|keyCRC‖DER  u32 n | update bytes
//! ```
//!
//! Every limit the station imposes is checked *before* a single byte is written, and each
//! violated limit has its own [`EncodeError`] variant:
//!
//! * URIs: `scheme://host:port`, at most [`MAX_URI_LEN`] bytes, printable ASCII without space;
//!   scheme `http`/`https` for CUPS and `ws`/`wss` for TC; port mandatory; no path (see
//!   [`check_cups_uri`], [`check_tc_uri`] and [`UriError`]). `Some("")` is an error: `None`
//!   is how "keep the current URI" is said.
//! * Credential blobs: 1..=[`MAX_CRED_LEN`] bytes (`Some(&[])` is an error, `None` = keep).
//! * Signature segment: `4 + der.len()` within
//!   [`MIN_SIG_SEGMENT_LEN`]..=[`MAX_SIG_SEGMENT_LEN`]; only with an update (the station would
//!   ignore a signature without one).
//! * Update length at most [`MAX_UPDATE_LEN`] (< 2^31).
//!
//! The encoder does **not** look inside credential blobs or DER signatures. A blob the
//! station mis-splits is silently dropped by it (see the crate's `cred` module): callers must
//! run `cred::check_station_safe` on every blob before sending it.

use core::fmt;

use super::{
    CRED_LEN_FIELD, CredKind, KEY_CRC_LEN, MAX_CRED_LEN, MAX_SIG_SEGMENT_LEN, MAX_UPDATE_LEN,
    MAX_URI_LEN, MIN_SIG_SEGMENT_LEN, NO_CHANGE_LEN, Segment,
};

/// Schemes allowed in a CUPS URI (plain, TLS).
pub const CUPS_SCHEMES: [&str; 2] = ["http", "https"];
/// Schemes allowed in a TC URI (plain, TLS).
pub const TC_SCHEMES: [&str; 2] = ["ws", "wss"];
/// Most digits in a port number (`65535`).
pub const MAX_PORT_DIGITS: usize = 5;

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

/// Validate `parts` and return the number of bytes [`encode_head`] will write, to size a
/// buffer. Fails with the same error `encode_head` would (except `BufferTooSmall`).
pub fn head_len(parts: &ResponseParts<'_>) -> Result<usize, EncodeError> {
    validate(parts)
}

/// Encode the head of a response into `out`: all six length fields and every segment except
/// the update bytes, which the caller streams right after (exactly `parts.update_len` of
/// them). Nothing is written unless `parts` is valid and `out` is large enough.
///
/// Credential blobs are copied as they are: check them with `cred::check_station_safe` first.
pub fn encode_head(parts: &ResponseParts<'_>, out: &mut [u8]) -> Result<ResponseHead, EncodeError> {
    let head_len = validate(parts)?;
    if out.len() < head_len {
        return Err(EncodeError::BufferTooSmall { needed: head_len });
    }
    let mut w = Writer { out, pos: 0 };
    for uri in [parts.cups_uri, parts.tc_uri] {
        let uri = uri.unwrap_or("").as_bytes();
        // Validated: at most MAX_URI_LEN (< 256) bytes.
        w.put(&[u8::try_from(uri.len()).unwrap_or(0)])?;
        w.put(uri)?;
    }
    for cred in [parts.cups_cred, parts.tc_cred] {
        let cred = cred.unwrap_or(&[]);
        // Validated: at most MAX_CRED_LEN (u16::MAX) bytes.
        w.put(&u16::try_from(cred.len()).unwrap_or(0).to_le_bytes())?;
        w.put(cred)?;
    }
    match parts.sig {
        Some(sig) => {
            let seg_len = KEY_CRC_LEN.saturating_add(sig.der.len());
            w.put(&u32::try_from(seg_len).unwrap_or(0).to_le_bytes())?;
            w.put(&sig.key_crc.to_le_bytes())?;
            w.put(sig.der)?;
        }
        None => w.put(&0u32.to_le_bytes())?,
    }
    w.put(&parts.update_len.to_le_bytes())?;
    Ok(ResponseHead {
        head_len: w.pos,
        body_len: (w.pos as u64).saturating_add(u64::from(parts.update_len)),
    })
}

/// Encode a whole body (head and `update`) into `out` and return its length. For small bodies
/// and tests; servers should stream the update after [`encode_head`] instead.
/// `update.len()` must equal `parts.update_len`.
pub fn encode_full(
    parts: &ResponseParts<'_>,
    update: &[u8],
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    let head_len = validate(parts)?;
    if u32::try_from(update.len()).ok() != Some(parts.update_len) {
        return Err(EncodeError::UpdateLenMismatch {
            declared: parts.update_len,
            actual: update.len(),
        });
    }
    let total = head_len.saturating_add(update.len());
    if out.len() < total {
        return Err(EncodeError::BufferTooSmall { needed: total });
    }
    let head = encode_head(parts, out)?;
    let mut w = Writer {
        out,
        pos: head.head_len,
    };
    w.put(update)?;
    Ok(w.pos)
}

/// Check a CUPS URI: `http(s)://host:port` (see [`UriError`] for every rule).
pub fn check_cups_uri(uri: &str) -> Result<(), UriError> {
    check_uri(uri, CUPS_SCHEMES)
}

/// Check a TC URI: `ws(s)://host:port` (see [`UriError`] for every rule).
pub fn check_tc_uri(uri: &str) -> Result<(), UriError> {
    check_uri(uri, TC_SCHEMES)
}

/// Why a URI cannot be sent. The rules: 1..=[`MAX_URI_LEN`] bytes of printable ASCII without
/// space; `scheme://host:port` with a lowercase scheme from the allowed pair; the host is a
/// DNS name / IPv4 address (letters, digits, `-`, `.`, `_`) or a bracketed IPv6 literal
/// (`[::1]`); the port is mandatory, 1..=65535, written without leading zeros (so equal
/// ports compare equal as text); nothing follows the port (the station refuses a path, even
/// a lone `/`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum UriError {
    /// `Some("")`: use `None` to keep the current URI.
    Empty,
    /// Longer than [`MAX_URI_LEN`]; the station refuses URIs of 128 bytes or more.
    TooLong {
        /// The URI length.
        len: usize,
    },
    /// A byte that is not printable ASCII, or a space.
    BadByte {
        /// Byte offset in the URI.
        at: usize,
        /// The byte.
        byte: u8,
    },
    /// The scheme is not one of the two allowed (lowercase), or `://` is missing.
    BadScheme,
    /// No host between `://` and `:port`.
    EmptyHost,
    /// A byte not allowed in a host name / IPv6 literal, or an unterminated `[`.
    BadHost {
        /// Byte offset in the URI.
        at: usize,
    },
    /// No `:port` after the host.
    MissingPort,
    /// The port is not a number in 1..=65535 without leading zeros.
    BadPort,
    /// Something (a path) follows the port.
    HasPath {
        /// Byte offset in the URI of the first byte after the port.
        at: usize,
    },
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty URI (use None to keep the current one)"),
            Self::TooLong { len } => write!(f, "URI of {len} bytes (at most {MAX_URI_LEN})"),
            Self::BadByte { at, byte } => {
                write!(
                    f,
                    "byte 0x{byte:02x} at {at} (only printable ASCII without space)"
                )
            }
            Self::BadScheme => f.write_str("bad scheme (expected scheme://host:port)"),
            Self::EmptyHost => f.write_str("empty host"),
            Self::BadHost { at } => write!(f, "bad host character at {at}"),
            Self::MissingPort => f.write_str("missing port (the station requires one)"),
            Self::BadPort => f.write_str("port is not a number in 1..=65535 without leading zeros"),
            Self::HasPath { at } => write!(f, "path after the port at {at} (not allowed)"),
        }
    }
}

impl core::error::Error for UriError {}

/// Why a response could not be encoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum EncodeError {
    /// The caller's buffer is too small; `needed` bytes are required.
    BufferTooSmall {
        /// Bytes the head needs.
        needed: usize,
    },
    /// A URI violates a rule (which segment: [`Segment::CupsUri`] or [`Segment::TcUri`]).
    Uri {
        /// The URI segment.
        segment: Segment,
        /// What is wrong with it.
        error: UriError,
    },
    /// `Some(&[])` credential blob: use `None` to keep the current credentials.
    CredEmpty {
        /// Which category.
        kind: CredKind,
    },
    /// A credential blob longer than [`MAX_CRED_LEN`].
    CredTooLong {
        /// Which category.
        kind: CredKind,
        /// The blob length.
        len: usize,
    },
    /// The signature segment (4 + DER length) is outside
    /// [`MIN_SIG_SEGMENT_LEN`]..=[`MAX_SIG_SEGMENT_LEN`].
    SigLength {
        /// The segment length (keyCRC + DER).
        len: usize,
    },
    /// A signature without an update: the station ignores it, so it is not sent.
    SigWithoutUpdate,
    /// The update length exceeds [`MAX_UPDATE_LEN`] (the station refuses 2^31 and above).
    UpdateTooLong {
        /// The update length.
        len: u32,
    },
    /// [`encode_full`]: `update.len()` differs from `parts.update_len`.
    UpdateLenMismatch {
        /// `parts.update_len`.
        declared: u32,
        /// `update.len()`.
        actual: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall { needed } => {
                write!(f, "output buffer too small: {needed} bytes needed")
            }
            Self::Uri { segment, error } => write!(f, "{segment}: {error}"),
            Self::CredEmpty { kind } => {
                write!(
                    f,
                    "empty {kind} credential blob (use None to keep the current one)"
                )
            }
            Self::CredTooLong { kind, len } => {
                write!(
                    f,
                    "{kind} credential blob of {len} bytes (at most {MAX_CRED_LEN})"
                )
            }
            Self::SigLength { len } => write!(
                f,
                "signature segment length {len} (must be {MIN_SIG_SEGMENT_LEN}..{MAX_SIG_SEGMENT_LEN})"
            ),
            Self::SigWithoutUpdate => f.write_str("signature without an update"),
            Self::UpdateTooLong { len } => {
                write!(f, "update length {len} (at most {MAX_UPDATE_LEN})")
            }
            Self::UpdateLenMismatch { declared, actual } => {
                write!(f, "update is {actual} bytes but update_len says {declared}")
            }
        }
    }
}

impl core::error::Error for EncodeError {}

/// Check every limit once; the head length on success.
fn validate(parts: &ResponseParts<'_>) -> Result<usize, EncodeError> {
    let mut len = NO_CHANGE_LEN;
    for (segment, uri, schemes) in [
        (Segment::CupsUri, parts.cups_uri, CUPS_SCHEMES),
        (Segment::TcUri, parts.tc_uri, TC_SCHEMES),
    ] {
        if let Some(uri) = uri {
            check_uri(uri, schemes).map_err(|error| EncodeError::Uri { segment, error })?;
            len = len.saturating_add(uri.len());
        }
    }
    for (kind, cred) in [
        (CredKind::Cups, parts.cups_cred),
        (CredKind::Tc, parts.tc_cred),
    ] {
        if let Some(cred) = cred {
            if cred.is_empty() {
                return Err(EncodeError::CredEmpty { kind });
            }
            if cred.len() > MAX_CRED_LEN {
                return Err(EncodeError::CredTooLong {
                    kind,
                    len: cred.len(),
                });
            }
            len = len.saturating_add(cred.len());
        }
    }
    if let Some(sig) = parts.sig {
        let seg_len = KEY_CRC_LEN.saturating_add(sig.der.len());
        let ok = u32::try_from(seg_len)
            .is_ok_and(|l| (MIN_SIG_SEGMENT_LEN..=MAX_SIG_SEGMENT_LEN).contains(&l));
        if !ok {
            return Err(EncodeError::SigLength { len: seg_len });
        }
        len = len.saturating_add(seg_len);
    }
    if parts.update_len > MAX_UPDATE_LEN {
        return Err(EncodeError::UpdateTooLong {
            len: parts.update_len,
        });
    }
    if parts.sig.is_some() && parts.update_len == 0 {
        return Err(EncodeError::SigWithoutUpdate);
    }
    Ok(len)
}

/// The URI rules of [`UriError`], with the two allowed schemes.
fn check_uri(uri: &str, schemes: [&str; 2]) -> Result<(), UriError> {
    let b = uri.as_bytes();
    if b.is_empty() {
        return Err(UriError::Empty);
    }
    if b.len() > MAX_URI_LEN {
        return Err(UriError::TooLong { len: b.len() });
    }
    if let Some((at, &byte)) = b.iter().enumerate().find(|(_, c)| !c.is_ascii_graphic()) {
        return Err(UriError::BadByte { at, byte });
    }
    // The URI is ASCII from here on, so every byte index is a char boundary.
    let (scheme, authority) = uri.split_once("://").ok_or(UriError::BadScheme)?;
    if !schemes.contains(&scheme) {
        return Err(UriError::BadScheme);
    }
    let host_at = scheme.len().saturating_add(3);
    let auth = authority.as_bytes();
    // Length of the host part including brackets.
    let host_len = if auth.first() == Some(&b'[') {
        let close = auth
            .iter()
            .position(|&c| c == b']')
            .ok_or(UriError::BadHost { at: host_at })?;
        let inner = auth.get(1..close).unwrap_or_default();
        if inner.is_empty() {
            return Err(UriError::EmptyHost);
        }
        if let Some(i) = inner
            .iter()
            .position(|&c| !(c.is_ascii_hexdigit() || c == b':' || c == b'.'))
        {
            return Err(UriError::BadHost {
                at: host_at.saturating_add(1).saturating_add(i),
            });
        }
        if !inner.contains(&b':') {
            return Err(UriError::BadHost { at: host_at });
        }
        close.saturating_add(1)
    } else {
        let end = auth.iter().position(|&c| c == b':').unwrap_or(auth.len());
        let host = auth.get(..end).unwrap_or_default();
        if let Some(i) = host.iter().position(|&c| c == b'/') {
            if i == 0 {
                return Err(UriError::EmptyHost);
            }
            return Err(UriError::HasPath {
                at: host_at.saturating_add(i),
            });
        }
        if let Some(i) = host
            .iter()
            .position(|&c| !(c.is_ascii_alphanumeric() || b"-._".contains(&c)))
        {
            return Err(UriError::BadHost {
                at: host_at.saturating_add(i),
            });
        }
        if host.is_empty() {
            return Err(UriError::EmptyHost);
        }
        end
    };
    let after_host = auth.get(host_len..).unwrap_or_default();
    let Some(port) = after_host.strip_prefix(b":") else {
        if after_host.is_empty() {
            return Err(UriError::MissingPort);
        }
        return Err(UriError::HasPath {
            at: host_at.saturating_add(host_len),
        });
    };
    let port_at = host_at.saturating_add(host_len).saturating_add(1);
    let digits = port.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return Err(if port.is_empty() {
            UriError::MissingPort
        } else {
            UriError::BadPort
        });
    }
    if digits < port.len() {
        // A '/' (path), '?' or '#' after the port is a path; anything else a bad port.
        let at = port_at.saturating_add(digits);
        return Err(match port.get(digits) {
            Some(b'/' | b'?' | b'#') => UriError::HasPath { at },
            _ => UriError::BadPort,
        });
    }
    if digits > MAX_PORT_DIGITS || port.first() == Some(&b'0') {
        return Err(UriError::BadPort);
    }
    let value = port.iter().fold(0u32, |v, &c| {
        v.saturating_mul(10)
            .saturating_add(u32::from(c.saturating_sub(b'0')))
    });
    if value == 0 || value > u32::from(u16::MAX) {
        return Err(UriError::BadPort);
    }
    Ok(())
}

/// A cursor over the caller's buffer that never panics.
struct Writer<'o> {
    out: &'o mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let end = self.pos.saturating_add(bytes.len());
        let dst = self
            .out
            .get_mut(self.pos..end)
            .ok_or(EncodeError::BufferTooSmall { needed: end })?;
        dst.copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }
}

// Compile-time sanity of the limits this module relies on.
const _: () = assert!(MAX_URI_LEN <= u8::MAX as usize);
const _: () = assert!(MAX_CRED_LEN <= u16::MAX as usize && CRED_LEN_FIELD == 2);

/// Largest body [`fuzz_response_roundtrip`] builds (a stack buffer; no allocation).
#[cfg(any(fuzzing, test))]
const FUZZ_BODY_MAX: usize = 8 * 1024;

/// Fuzz body: derive [`ResponseParts`] and an update from `data`, encode, then decode (in one
/// piece, byte by byte and in splits derived from `data`) and check the decoder gives back
/// exactly the parts. Never panics unless an invariant breaks.
#[cfg(any(fuzzing, test))]
pub fn fuzz_response_roundtrip(data: &[u8]) {
    let mut src = FuzzSrc { data, pos: 0 };
    let flags = src.byte();
    let mut cups_buf = [0u8; MAX_URI_LEN + 8];
    let mut tc_buf = [0u8; MAX_URI_LEN + 8];
    let cups_uri = if flags & 1 != 0 {
        fuzz_uri(&mut src, CUPS_SCHEMES, &mut cups_buf)
    } else {
        None
    };
    let tc_uri = if flags & 2 != 0 {
        fuzz_uri(&mut src, TC_SCHEMES, &mut tc_buf)
    } else {
        None
    };
    let budget = FUZZ_BODY_MAX.saturating_sub(NO_CHANGE_LEN + 2 * MAX_URI_LEN + 4 + 132);
    fn take_blob<'d>(src: &mut FuzzSrc<'d>, on: bool, max: usize) -> Option<&'d [u8]> {
        if !on {
            return None;
        }
        let want = usize::from(u16::from_le_bytes([src.byte(), src.byte()]))
            .checked_rem(max)
            .unwrap_or(0);
        Some(src.take(want.saturating_add(1)))
    }
    let cups_cred = take_blob(&mut src, flags & 4 != 0, budget / 4);
    let tc_cred = take_blob(&mut src, flags & 8 != 0, budget / 4);
    let sig = if flags & 16 != 0 {
        let key_crc = u32::from_le_bytes([src.byte(), src.byte(), src.byte(), src.byte()]);
        let der_len = usize::from(src.byte()) % 140; // sometimes out of range
        Some(SigRef {
            key_crc,
            der: src.take(der_len),
        })
    } else {
        None
    };
    let update = if flags & 32 != 0 {
        src.take(budget / 2)
    } else {
        &[]
    };
    let parts = ResponseParts {
        cups_uri,
        tc_uri,
        cups_cred,
        tc_cred,
        sig,
        update_len: u32::try_from(update.len()).unwrap_or(0),
    };
    let mut body = [0u8; FUZZ_BODY_MAX];
    let n = match encode_full(&parts, update, &mut body) {
        Ok(n) => n,
        Err(e) => {
            // Only the limits the generator can hit on purpose may fail.
            assert!(
                matches!(
                    e,
                    EncodeError::SigLength { .. }
                        | EncodeError::SigWithoutUpdate
                        | EncodeError::CredEmpty { .. }
                        | EncodeError::Uri { .. }
                ),
                "unexpected {e:?}"
            );
            return;
        }
    };
    let body = body.get(..n).unwrap_or_default();
    assert_eq!(
        Ok(n),
        head_len(&parts).map(|h| h.saturating_add(update.len()))
    );
    let splits: [usize; 4] = [usize::MAX, 1, 7, usize::from(flags % 64).saturating_add(1)];
    for chunk in splits {
        let mut exp = Expect::new(&parts, update);
        let mut dec = super::Decoder::new();
        for piece in body.chunks(chunk.min(body.len()).max(1)) {
            let mut rest = piece;
            loop {
                let step = match dec.decode(rest) {
                    Ok(step) => step,
                    Err(e) => unreachable!("decode of an encoded body failed: {e}"),
                };
                assert!(step.consumed <= rest.len());
                rest = rest.get(step.consumed..).unwrap_or_default();
                match step.event {
                    Some(ev) => exp.check(ev),
                    None => {
                        assert!(rest.is_empty(), "no event but input left");
                        break;
                    }
                }
            }
        }
        assert_eq!(dec.finish(), Ok(()));
        assert!(dec.is_done());
        assert_eq!(dec.offset(), n as u64);
        exp.check_complete();
    }
}

/// A byte source for the fuzz bodies: zeros when exhausted.
#[cfg(any(fuzzing, test))]
struct FuzzSrc<'d> {
    data: &'d [u8],
    pos: usize,
}

#[cfg(any(fuzzing, test))]
impl<'d> FuzzSrc<'d> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    fn take(&mut self, n: usize) -> &'d [u8] {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let out = rest.get(..n).unwrap_or(rest);
        self.pos = self.pos.saturating_add(out.len());
        out
    }
}

/// A URI from fuzz bytes, usually valid, sometimes too long.
#[cfg(any(fuzzing, test))]
fn fuzz_uri<'b>(
    src: &mut FuzzSrc<'_>,
    schemes: [&str; 2],
    buf: &'b mut [u8; MAX_URI_LEN + 8],
) -> Option<&'b str> {
    const HOST: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-._";
    let ctl = src.byte();
    let scheme = if ctl & 1 == 0 { schemes[0] } else { schemes[1] };
    let host_len = usize::from(src.byte() % 125).saturating_add(1);
    let port = u16::from_le_bytes([src.byte(), src.byte()]).max(1);
    let mut n = 0usize;
    let mut push = |c: u8| {
        if let Some(slot) = buf.get_mut(n) {
            *slot = c;
            n = n.saturating_add(1);
        }
    };
    scheme.bytes().chain(*b"://").for_each(&mut push);
    for _ in 0..host_len {
        let i = usize::from(src.byte()).checked_rem(HOST.len()).unwrap_or(0);
        push(HOST.get(i).copied().unwrap_or(b'a'));
    }
    push(b':');
    let mut digits = [0u8; MAX_PORT_DIGITS];
    let mut p = port;
    let mut d = 0usize;
    while p > 0 && d < MAX_PORT_DIGITS {
        if let Some(slot) = digits.get_mut(d) {
            *slot = b'0'.saturating_add((p % 10) as u8);
        }
        p /= 10;
        d = d.saturating_add(1);
    }
    digits
        .get(..d)
        .unwrap_or_default()
        .iter()
        .rev()
        .for_each(|&c| push(c));
    core::str::from_utf8(buf.get(..n).unwrap_or_default()).ok()
}

/// Checks a decoder's event stream against the parts it was encoded from.
#[cfg(any(fuzzing, test))]
struct Expect<'p> {
    parts: &'p ResponseParts<'p>,
    update: &'p [u8],
    seg: usize,
    off: usize,
    done: bool,
}

#[cfg(any(fuzzing, test))]
impl<'p> Expect<'p> {
    fn new(parts: &'p ResponseParts<'p>, update: &'p [u8]) -> Self {
        let mut e = Self {
            parts,
            update,
            seg: 0,
            off: 0,
            done: false,
        };
        e.skip_absent();
        e
    }

    /// Phases: 0 cupsUri, 1 tcUri, 2 cupsCred start, 3 chunks, 4 end, 5 tcCred start, 6, 7,
    /// 8 sig, 9 update start, 10 chunks, 11 end, 12 done.
    fn skip_absent(&mut self) {
        loop {
            let present = match self.seg {
                0 => self.parts.cups_uri.is_some(),
                1 => self.parts.tc_uri.is_some(),
                2 => self.parts.cups_cred.is_some(),
                5 => self.parts.tc_cred.is_some(),
                8 => self.parts.sig.is_some(),
                9 => !self.update.is_empty(),
                _ => true,
            };
            if present {
                return;
            }
            self.seg = self.seg.saturating_add(match self.seg {
                2 | 5 | 9 => 3,
                _ => 1,
            });
        }
    }

    fn advance(&mut self) {
        self.seg = self.seg.saturating_add(1);
        self.off = 0;
        self.skip_absent();
    }

    fn check(&mut self, ev: super::Event<'_>) {
        use super::Event as E;
        let p = self.parts;
        let cred = |s: usize| {
            if s < 5 {
                (CredKind::Cups, p.cups_cred)
            } else {
                (CredKind::Tc, p.tc_cred)
            }
        };
        match (self.seg, ev) {
            (0, E::CupsUri(u)) => assert_eq!(Some(u), p.cups_uri.map(str::as_bytes)),
            (1, E::TcUri(u)) => assert_eq!(Some(u), p.tc_uri.map(str::as_bytes)),
            (2 | 5, E::CredStart { kind, len }) => {
                let (k, blob) = cred(self.seg);
                assert_eq!(kind, k);
                assert_eq!(Some(usize::from(len)), blob.map(<[u8]>::len));
            }
            (3 | 6, E::CredChunk { kind, offset, data }) => {
                let (k, blob) = cred(self.seg);
                assert_eq!(kind, k);
                assert_eq!(usize::from(offset), self.off);
                assert!(!data.is_empty());
                let end = self.off.saturating_add(data.len());
                assert_eq!(blob.and_then(|b| b.get(self.off..end)), Some(data));
                self.off = end;
                if Some(end) == blob.map(<[u8]>::len) {
                    self.advance();
                }
                return;
            }
            (4 | 7, E::CredEnd { kind }) => assert_eq!(kind, cred(self.seg).0),
            (8, E::Signature { key_crc, der }) => {
                assert_eq!(Some(SigRef { key_crc, der }), p.sig);
            }
            (9, E::UpdateStart { len }) => assert_eq!(len as usize, self.update.len()),
            (10, E::UpdateChunk { offset, data }) => {
                assert_eq!(offset as usize, self.off);
                assert!(!data.is_empty());
                let end = self.off.saturating_add(data.len());
                assert_eq!(self.update.get(self.off..end), Some(data));
                self.off = end;
                if end == self.update.len() {
                    self.advance();
                }
                return;
            }
            (11, E::UpdateEnd) => {}
            (12, E::Done) => {
                self.done = true;
            }
            (seg, ev) => unreachable!("phase {seg}: unexpected {ev:?}"),
        }
        self.advance();
    }

    fn check_complete(&self) {
        assert!(self.done, "no Done event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::Decoder;

    fn parts_full<'a>() -> ResponseParts<'a> {
        ResponseParts {
            cups_uri: Some("https://localhost:16140"),
            tc_uri: Some("wss://localhost:16138"),
            cups_cred: Some(b"\x30\x03abc"),
            tc_cred: Some(b"xyz"),
            sig: Some(SigRef {
                key_crc: 0x49D5_7CDF,
                der: b"\x30\x02\x01\x01",
            }),
            update_len: 3,
        }
    }

    #[test]
    fn nochange_is_14_zero_bytes() {
        let mut out = [0xAAu8; 14];
        let head = encode_head(&ResponseParts::default(), &mut out).unwrap();
        assert_eq!(
            head,
            ResponseHead {
                head_len: 14,
                body_len: 14
            }
        );
        assert_eq!(out, crate::response::NO_CHANGE);
        assert_eq!(head_len(&ResponseParts::default()), Ok(14));
    }

    #[test]
    fn head_layout() {
        let parts = parts_full();
        let mut out = [0u8; 128];
        let head = encode_head(&parts, &mut out).unwrap();
        let n = head_len(&parts).unwrap();
        assert_eq!(head.head_len, n);
        assert_eq!(head.body_len, n as u64 + 3);
        let mut expect = std::vec::Vec::new();
        expect.push(23);
        expect.extend_from_slice(b"https://localhost:16140");
        expect.push(21);
        expect.extend_from_slice(b"wss://localhost:16138");
        expect.extend_from_slice(&[5, 0]);
        expect.extend_from_slice(b"\x30\x03abc");
        expect.extend_from_slice(&[3, 0]);
        expect.extend_from_slice(b"xyz");
        expect.extend_from_slice(&[8, 0, 0, 0, 0xDF, 0x7C, 0xD5, 0x49, 0x30, 2, 1, 1]);
        expect.extend_from_slice(&[3, 0, 0, 0]);
        assert_eq!(&out[..n], &expect[..]);
    }

    #[test]
    fn buffer_too_small_writes_nothing() {
        let parts = parts_full();
        let n = head_len(&parts).unwrap();
        let mut out = std::vec![0x55u8; n - 1];
        assert_eq!(
            encode_head(&parts, &mut out),
            Err(EncodeError::BufferTooSmall { needed: n })
        );
        assert!(out.iter().all(|&b| b == 0x55));
        let mut out = std::vec![0u8; n + 2];
        assert_eq!(
            encode_full(&parts, b"abc", &mut out),
            Err(EncodeError::BufferTooSmall { needed: n + 3 })
        );
        let mut out = std::vec![0u8; n + 3];
        assert_eq!(encode_full(&parts, b"abc", &mut out), Ok(n + 3));
        assert_eq!(&out[n..], b"abc");
        assert_eq!(
            encode_full(&parts, b"ab", &mut out),
            Err(EncodeError::UpdateLenMismatch {
                declared: 3,
                actual: 2
            })
        );
    }

    #[test]
    fn uri_rules() {
        let ok = [
            "https://localhost:16140",
            "http://a:1",
            "https://h.example.com:65535",
            "https://[::1]:443",
            "https://[2001:db8::1]:8443",
            "https://10.0.0.1:80",
            "https://my_host-1.x:9",
        ];
        for u in ok {
            assert_eq!(check_cups_uri(u), Ok(()), "{u}");
        }
        assert_eq!(check_tc_uri("wss://localhost:16138"), Ok(()));
        assert_eq!(check_tc_uri("ws://[::1]:1"), Ok(()));
        let bad: &[(&str, UriError)] = &[
            ("", UriError::Empty),
            (
                "https://local host:1",
                UriError::BadByte { at: 13, byte: b' ' },
            ),
            ("https://a\0:1", UriError::BadByte { at: 9, byte: 0 }),
            ("https://a\u{e9}:1", UriError::BadByte { at: 9, byte: 0xC3 }),
            ("wss://a:1", UriError::BadScheme),
            ("HTTPS://a:1", UriError::BadScheme),
            ("https:/a:1", UriError::BadScheme),
            ("a:1", UriError::BadScheme),
            ("https://:1", UriError::EmptyHost),
            ("https://", UriError::EmptyHost),
            ("https://[]:1", UriError::EmptyHost),
            ("https:///x", UriError::EmptyHost),
            ("https://[::1:1", UriError::BadHost { at: 8 }),
            ("https://[::g]:1", UriError::BadHost { at: 11 }),
            ("https://[1.2]:1", UriError::BadHost { at: 8 }),
            ("https://u@h:1", UriError::BadHost { at: 9 }),
            ("https://h", UriError::MissingPort),
            ("https://h:", UriError::MissingPort),
            ("https://[::1]", UriError::MissingPort),
            ("https://[::1]x", UriError::HasPath { at: 13 }),
            ("https://h:0", UriError::BadPort),
            ("https://h:65536", UriError::BadPort),
            ("https://h:080", UriError::BadPort),
            ("https://h:123456", UriError::BadPort),
            ("https://h:1:2", UriError::BadPort),
            ("https://h:x", UriError::BadPort),
            ("https://h:1/", UriError::HasPath { at: 11 }),
            ("https://h:1/update-info", UriError::HasPath { at: 11 }),
            ("https://h:1?q", UriError::HasPath { at: 11 }),
            ("https://h/x", UriError::HasPath { at: 9 }),
        ];
        for (u, e) in bad {
            assert_eq!(check_cups_uri(u), Err(*e), "{u:?}");
        }
        assert_eq!(check_tc_uri("https://a:1"), Err(UriError::BadScheme));
    }

    fn uri_of_len(scheme: &str, len: usize) -> std::string::String {
        let fixed = scheme.len() + 3 + 2; // "://" + ":1"
        std::format!("{scheme}://{}:1", "a".repeat(len - fixed))
    }

    #[test]
    fn uri_length_limit() {
        for (len, ok) in [
            (MAX_URI_LEN - 1, true),
            (MAX_URI_LEN, true),
            (MAX_URI_LEN + 1, false),
        ] {
            let u = uri_of_len("https", len);
            assert_eq!(u.len(), len);
            let parts = ResponseParts {
                cups_uri: Some(&u),
                ..Default::default()
            };
            let r = head_len(&parts);
            if ok {
                assert_eq!(r, Ok(14 + len));
            } else {
                assert_eq!(
                    r,
                    Err(EncodeError::Uri {
                        segment: Segment::CupsUri,
                        error: UriError::TooLong { len }
                    })
                );
            }
            let t = uri_of_len("wss", len);
            let parts = ResponseParts {
                tc_uri: Some(&t),
                ..Default::default()
            };
            assert_eq!(head_len(&parts).is_ok(), ok);
        }
        let parts = ResponseParts {
            tc_uri: Some(""),
            ..Default::default()
        };
        assert_eq!(
            head_len(&parts),
            Err(EncodeError::Uri {
                segment: Segment::TcUri,
                error: UriError::Empty
            })
        );
    }

    #[test]
    fn cred_limits() {
        let big = std::vec![0x30u8; MAX_CRED_LEN + 1];
        for (len, ok) in [
            (1, true),
            (MAX_CRED_LEN - 1, true),
            (MAX_CRED_LEN, true),
            (MAX_CRED_LEN + 1, false),
        ] {
            let parts = ResponseParts {
                tc_cred: Some(&big[..len]),
                ..Default::default()
            };
            if ok {
                assert_eq!(head_len(&parts), Ok(14 + len));
            } else {
                assert_eq!(
                    head_len(&parts),
                    Err(EncodeError::CredTooLong {
                        kind: CredKind::Tc,
                        len
                    })
                );
            }
        }
        let parts = ResponseParts {
            cups_cred: Some(&[]),
            ..Default::default()
        };
        assert_eq!(
            head_len(&parts),
            Err(EncodeError::CredEmpty {
                kind: CredKind::Cups
            })
        );
    }

    #[test]
    fn sig_limits() {
        let der = [0x30u8; 200];
        for seg in [0usize, 4, 7, 8, 9, 131, 132, 133, 200] {
            let Some(d) = der.get(..seg.saturating_sub(4)) else {
                continue;
            };
            let parts = ResponseParts {
                sig: Some(SigRef {
                    key_crc: 1,
                    der: if seg < 4 { &[] } else { d },
                }),
                update_len: 1,
                ..Default::default()
            };
            let seg = seg.max(4);
            let r = head_len(&parts);
            if (8..=132).contains(&seg) {
                assert_eq!(r, Ok(14 + seg));
            } else {
                assert_eq!(r, Err(EncodeError::SigLength { len: seg }));
            }
        }
        let parts = ResponseParts {
            sig: Some(SigRef {
                key_crc: 1,
                der: &der[..70],
            }),
            ..Default::default()
        };
        assert_eq!(head_len(&parts), Err(EncodeError::SigWithoutUpdate));
    }

    #[test]
    fn update_limits() {
        for (len, ok) in [
            (1, true),
            (MAX_UPDATE_LEN - 1, true),
            (MAX_UPDATE_LEN, true),
            (MAX_UPDATE_LEN + 1, false),
            (u32::MAX, false),
        ] {
            let parts = ResponseParts {
                update_len: len,
                ..Default::default()
            };
            let mut out = [0u8; 14];
            let r = encode_head(&parts, &mut out);
            if ok {
                assert_eq!(
                    r,
                    Ok(ResponseHead {
                        head_len: 14,
                        body_len: 14 + u64::from(len)
                    })
                );
                assert_eq!(out[10..], len.to_le_bytes());
            } else {
                assert_eq!(r, Err(EncodeError::UpdateTooLong { len }));
            }
        }
    }

    #[test]
    fn display_texts() {
        let e = EncodeError::Uri {
            segment: Segment::TcUri,
            error: UriError::MissingPort,
        };
        assert_eq!(
            std::format!("{e}"),
            "tcUri: missing port (the station requires one)"
        );
        assert_eq!(
            std::format!("{}", EncodeError::SigLength { len: 133 }),
            "signature segment length 133 (must be 8..132)"
        );
    }

    #[test]
    fn roundtrip_small() {
        let parts = parts_full();
        let mut out = [0u8; 128];
        let n = encode_full(&parts, b"upd", &mut out).unwrap();
        let mut dec = Decoder::new();
        let mut rest = &out[..n];
        let mut events = std::vec::Vec::new();
        loop {
            let step = dec.decode(rest).unwrap();
            rest = &rest[step.consumed..];
            match step.event {
                Some(ev) => events.push(std::format!("{ev:?}")),
                None => break,
            }
        }
        assert!(dec.is_done());
        assert_eq!(events.len(), 13, "{events:?}");
    }

    #[test]
    fn fuzz_roundtrip_smoke() {
        fuzz_response_roundtrip(&[]);
        fuzz_response_roundtrip(&[0xFF; 3000]);
        let mut x = 0x1234_5678u32;
        for len in 0..400usize {
            let data: std::vec::Vec<u8> = (0..len * 7)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            fuzz_response_roundtrip(&data);
        }
    }
}
