//! A small sans-IO WebSocket codec (RFC 6455), just what the TC (LNS) link needs: the client
//! upgrade request and the `Sec-WebSocket-Accept` check, the server side of the upgrade, and
//! frames with limits. Used by the simulated gateways ([`crate::tc`]) and the LNS endpoint
//! ([`crate::lns`]).
//!
//! Rules (the station's `src/ws.c` and what an LNS must send it, protocol doc §6):
//!
//! * an upgrade head ends at the first `\r\n\r\n` and is at most [`MAX_HEAD_LEN`] bytes;
//! * frames: the server sends FIN=1, unmasked, with 7- or 16-bit lengths (payloads above
//!   65535 bytes are refused by [`encode_frame`] for unmasked frames); clients mask;
//! * the decoder accepts masked and unmasked frames, 7/16/64-bit lengths, refuses reserved
//!   bits, unknown opcodes, fragmented or long control frames, and payloads above the
//!   caller's limit; **fragmented data frames are refused** ([`FrameError::Fragmented`]):
//!   neither the station nor this LNS sends them.

use std::fmt;

use base64::Engine as _;

/// Longest upgrade request or response head accepted (request line + headers + blank line).
pub const MAX_HEAD_LEN: usize = 8 * 1024;
/// Largest frame payload accepted by default (the station's TC receive buffer is 40 KiB).
pub const MAX_FRAME_PAYLOAD: usize = 64 * 1024;
/// Largest control frame payload (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// Largest payload with a 16-bit length (what the station can read from a server).
pub const MAX_16BIT_PAYLOAD: usize = 0xFFFF;
/// Longest header count in an upgrade head.
pub const MAX_HEADERS: usize = 64;
/// The GUID of RFC 6455 §1.3.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// End of an HTTP head.
const HEAD_END: &[u8] = b"\r\n\r\n";

/// A frame opcode.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Opcode {
    /// Continuation (refused by the decoder, see module docs).
    Continuation,
    /// UTF-8 text.
    Text,
    /// Binary.
    Binary,
    /// Close.
    Close,
    /// Ping.
    Ping,
    /// Pong.
    Pong,
}

impl Opcode {
    fn code(self) -> u8 {
        match self {
            Self::Continuation => 0,
            Self::Text => 1,
            Self::Binary => 2,
            Self::Close => 8,
            Self::Ping => 9,
            Self::Pong => 10,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => Self::Continuation,
            1 => Self::Text,
            2 => Self::Binary,
            8 => Self::Close,
            9 => Self::Ping,
            10 => Self::Pong,
            _ => return None,
        })
    }

    /// Close, ping or pong.
    #[must_use]
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// A decoded frame (payload unmasked).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Frame {
    /// The opcode.
    pub opcode: Opcode,
    /// Whether the client masked it.
    pub masked: bool,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Why a frame could not be decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// RSV1-3 set (no extension is negotiated).
    #[error("reserved bits set in frame header byte {byte:#04x}")]
    ReservedBits {
        /// The first header byte.
        byte: u8,
    },
    /// An opcode RFC 6455 does not define.
    #[error("unknown opcode {code}")]
    UnknownOpcode {
        /// The opcode.
        code: u8,
    },
    /// FIN=0 or a continuation frame.
    #[error("fragmented frames are not supported")]
    Fragmented,
    /// A control frame longer than [`MAX_CONTROL_PAYLOAD`].
    #[error("control frame of {len} bytes (max {MAX_CONTROL_PAYLOAD})")]
    ControlTooLong {
        /// Its length.
        len: u64,
    },
    /// A payload above the limit.
    #[error("frame payload of {len} bytes above the limit of {max}")]
    TooLarge {
        /// Its length.
        len: u64,
        /// The limit.
        max: usize,
    },
}

/// Why a frame could not be encoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// An unmasked (server) payload above [`MAX_16BIT_PAYLOAD`]: the station reads 7- or
    /// 16-bit lengths only.
    #[error("server frame payload of {len} bytes above {MAX_16BIT_PAYLOAD}")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// A control payload above [`MAX_CONTROL_PAYLOAD`].
    #[error("control payload of {len} bytes above {MAX_CONTROL_PAYLOAD}")]
    ControlTooLong {
        /// Its length.
        len: usize,
    },
}

/// Append a frame (FIN=1) to `out`; `mask` = the client's masking key (clients must mask).
///
/// # Errors
/// An [`EncodeError`] for payloads the peer could not read.
pub fn encode_frame(
    out: &mut Vec<u8>,
    opcode: Opcode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> Result<(), EncodeError> {
    let len = payload.len();
    if opcode.is_control() && len > MAX_CONTROL_PAYLOAD {
        return Err(EncodeError::ControlTooLong { len });
    }
    if mask.is_none() && len > MAX_16BIT_PAYLOAD {
        return Err(EncodeError::TooLarge { len });
    }
    out.push(0x80 | opcode.code());
    let mbit = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        out.push(mbit | len as u8);
    } else if len <= MAX_16BIT_PAYLOAD {
        out.push(mbit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mbit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match mask {
        None => out.extend_from_slice(payload),
        Some(m) => {
            out.extend_from_slice(&m);
            out.extend(payload.iter().zip(m.iter().cycle()).map(|(b, k)| b ^ k));
        }
    }
    Ok(())
}

/// Decode the frame at the start of `buf`: `Ok(None)` when more bytes are needed, else the
/// frame and the bytes it took. Payloads above `max_payload` are refused as soon as the
/// header is read.
///
/// # Errors
/// A [`FrameError`]; the connection should be closed.
pub fn decode_frame(buf: &[u8], max_payload: usize) -> Result<Option<(Frame, usize)>, FrameError> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(FrameError::ReservedBits { byte: b0 });
    }
    let code = b0 & 0x0F;
    let opcode = Opcode::from_code(code).ok_or(FrameError::UnknownOpcode { code })?;
    let fin = b0 & 0x80 != 0;
    let masked = b1 & 0x80 != 0;
    let (len, mut pos) = match b1 & 0x7F {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Ok(None);
            };
            (u64::from(u16::from_be_bytes([b[0], b[1]])), 4usize)
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            (u64::from_be_bytes(a), 10usize)
        }
        n => (u64::from(n), 2usize),
    };
    if opcode.is_control() {
        if len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(FrameError::ControlTooLong { len });
        }
        if !fin {
            return Err(FrameError::Fragmented);
        }
    } else if !fin || opcode == Opcode::Continuation {
        return Err(FrameError::Fragmented);
    }
    if len > max_payload as u64 {
        return Err(FrameError::TooLarge {
            len,
            max: max_payload,
        });
    }
    let key = if masked {
        let Some(k) = buf.get(pos..pos + 4) else {
            return Ok(None);
        };
        pos += 4;
        Some([k[0], k[1], k[2], k[3]])
    } else {
        None
    };
    // len <= max_payload (a usize) here.
    let len = len as usize;
    let Some(end) = pos.checked_add(len) else {
        return Ok(None);
    };
    let Some(data) = buf.get(pos..end) else {
        return Ok(None);
    };
    let payload = match key {
        None => data.to_vec(),
        Some(k) => data
            .iter()
            .zip(k.iter().cycle())
            .map(|(b, m)| b ^ m)
            .collect(),
    };
    Ok(Some((
        Frame {
            opcode,
            masked,
            payload,
        },
        end,
    )))
}

/// `Sec-WebSocket-Key` from 16 bytes (base64).
#[must_use]
pub fn client_key(nonce: [u8; 16]) -> String {
    base64::engine::general_purpose::STANDARD.encode(nonce)
}

/// `Sec-WebSocket-Accept` for a key: base64(SHA-1(key + GUID)).
#[must_use]
pub fn accept_key(key: &str) -> String {
    let mut input = Vec::with_capacity(key.len() + WS_GUID.len());
    input.extend_from_slice(key.as_bytes());
    input.extend_from_slice(WS_GUID.as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// Append a client upgrade request for `path` on `host_port` (the `Host` header); `extra` =
/// raw header lines, each ending in `\r\n` (the station's token lines).
pub fn write_client_request(
    out: &mut Vec<u8>,
    host_port: &str,
    path: &str,
    key: &str,
    extra: &[u8],
) {
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host_port.as_bytes());
    out.extend_from_slice(
        b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ",
    );
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(extra);
    out.extend_from_slice(b"\r\n");
}

/// Why an upgrade head was refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// No end of head within [`MAX_HEAD_LEN`] bytes.
    #[error("upgrade head longer than {MAX_HEAD_LEN} bytes ({len} seen)")]
    HeadTooLong {
        /// Bytes seen.
        len: usize,
    },
    /// The head is not UTF-8 / not HTTP/1.1 shaped.
    #[error("malformed upgrade head: {what}")]
    Malformed {
        /// What was wrong.
        what: &'static str,
    },
    /// More than [`MAX_HEADERS`] header lines.
    #[error("more than {MAX_HEADERS} header lines")]
    TooManyHeaders,
    /// The server answered with another status than 101.
    #[error("upgrade refused with status {status}")]
    Status {
        /// The status.
        status: u16,
    },
    /// A required header is missing or wrong.
    #[error("header {name} missing or wrong")]
    Header {
        /// Which.
        name: &'static str,
    },
}

/// A parsed upgrade request (server side).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UpgradeRequest {
    /// Request path (e.g. `/router-info`).
    pub path: String,
    /// `Sec-WebSocket-Key`.
    pub key: String,
    /// Header lines (name, value), in order.
    pub headers: Vec<(String, String)>,
}

impl UpgradeRequest {
    /// The first header named `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Where the head ends (`Ok(None)`: not yet).
fn head_end(buf: &[u8]) -> Result<Option<usize>, HandshakeError> {
    match buf.windows(HEAD_END.len()).position(|w| w == HEAD_END) {
        Some(p) if p + HEAD_END.len() <= MAX_HEAD_LEN => Ok(Some(p + HEAD_END.len())),
        Some(p) => Err(HandshakeError::HeadTooLong {
            len: p + HEAD_END.len(),
        }),
        None if buf.len() >= MAX_HEAD_LEN => Err(HandshakeError::HeadTooLong { len: buf.len() }),
        None => Ok(None),
    }
}

/// Split a head into its first line and headers.
/// Header lines as (name, value).
type Headers = Vec<(String, String)>;

fn split_head(head: &[u8]) -> Result<(&str, Headers), HandshakeError> {
    let text =
        std::str::from_utf8(head).map_err(|_| HandshakeError::Malformed { what: "not UTF-8" })?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(HandshakeError::TooManyHeaders);
        }
        let (name, value) = line.split_once(':').ok_or(HandshakeError::Malformed {
            what: "header line without ':'",
        })?;
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(HandshakeError::Malformed {
                what: "header name",
            });
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    Ok((first, headers))
}

fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Parse a client upgrade request at the start of `buf`: `Ok(None)` until the head is
/// complete, else the request and the head's length.
///
/// # Errors
/// A [`HandshakeError`] (answer 400 and close).
pub fn parse_request(buf: &[u8]) -> Result<Option<(UpgradeRequest, usize)>, HandshakeError> {
    let Some(end) = head_end(buf)? else {
        return Ok(None);
    };
    let (first, headers) = split_head(buf.get(..end).unwrap_or_default())?;
    let mut parts = first.split(' ');
    let (Some("GET"), Some(path), Some("HTTP/1.1"), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HandshakeError::Malformed {
            what: "request line",
        });
    };
    if !path.starts_with('/') {
        return Err(HandshakeError::Malformed { what: "path" });
    }
    let req = UpgradeRequest {
        path: path.to_owned(),
        key: String::new(),
        headers,
    };
    if !has_token(req.header("upgrade"), "websocket") {
        return Err(HandshakeError::Header { name: "Upgrade" });
    }
    if !has_token(req.header("connection"), "upgrade") {
        return Err(HandshakeError::Header { name: "Connection" });
    }
    if req.header("sec-websocket-version") != Some("13") {
        return Err(HandshakeError::Header {
            name: "Sec-WebSocket-Version",
        });
    }
    let key = req
        .header("sec-websocket-key")
        .filter(|k| {
            base64::engine::general_purpose::STANDARD
                .decode(k)
                .is_ok_and(|d| d.len() == 16)
        })
        .ok_or(HandshakeError::Header {
            name: "Sec-WebSocket-Key",
        })?
        .to_owned();
    Ok(Some((UpgradeRequest { key, ..req }, end)))
}

/// Append the server's `101 Switching Protocols` for `key`.
pub fn write_server_accept(out: &mut Vec<u8>, key: &str) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept_key(key).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// Append a refusal (`status reason`, no body, connection closed).
pub fn write_server_refusal(out: &mut Vec<u8>, status: u16, reason: &str) {
    out.extend_from_slice(
        format!("HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
}

/// Check a server's upgrade response at the start of `buf` against the `key` sent:
/// `Ok(None)` until the head is complete, else the head's length (frames may follow).
///
/// # Errors
/// A [`HandshakeError`]: not 101, or a wrong `Sec-WebSocket-Accept`.
pub fn parse_response(buf: &[u8], key: &str) -> Result<Option<usize>, HandshakeError> {
    let Some(end) = head_end(buf)? else {
        return Ok(None);
    };
    let (first, headers) = split_head(buf.get(..end).unwrap_or_default())?;
    let status = first
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or(HandshakeError::Malformed {
            what: "status line",
        })?;
    if status != 101 {
        return Err(HandshakeError::Status { status });
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if !has_token(get("upgrade"), "websocket") {
        return Err(HandshakeError::Header { name: "Upgrade" });
    }
    if get("sec-websocket-accept") != Some(accept_key(key).as_str()) {
        return Err(HandshakeError::Header {
            name: "Sec-WebSocket-Accept",
        });
    }
    Ok(Some(end))
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Fuzz entry: decode frames from arbitrary bytes until an error or need-more; re-encode and
/// check the round trip.
pub fn fuzz_frames(data: &[u8]) {
    let mut rest = data;
    while let Ok(Some((frame, used))) = decode_frame(rest, MAX_FRAME_PAYLOAD) {
        assert!(used > 0 && used <= rest.len());
        let mut out = Vec::new();
        if encode_frame(&mut out, frame.opcode, &frame.payload, Some([1, 2, 3, 4])).is_ok() {
            let again = decode_frame(&out, MAX_FRAME_PAYLOAD);
            assert!(
                matches!(again, Ok(Some((ref f, n))) if f.payload == frame.payload && n == out.len())
            );
        }
        rest = rest.get(used..).unwrap_or_default();
    }
}

/// Fuzz entry: the server's request parser and the client's response check.
pub fn fuzz_handshake(data: &[u8]) {
    if let Ok(Some((req, used))) = parse_request(data) {
        assert!(used <= data.len() && used <= MAX_HEAD_LEN);
        let mut out = Vec::new();
        write_server_accept(&mut out, &req.key);
        assert_eq!(parse_response(&out, &req.key), Ok(Some(out.len())));
    }
    let _ = parse_response(data, "dGhlIHNhbXBsZSBub25jZQ==");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_accept_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn frame_lengths_7_16_64() {
        for len in [0usize, 125, 126, 65535, 65536, 70000] {
            let payload = vec![0xA5u8; len];
            let mut out = Vec::new();
            encode_frame(&mut out, Opcode::Binary, &payload, Some([9, 8, 7, 6])).unwrap();
            let (f, n) = decode_frame(&out, 1 << 20).unwrap().unwrap();
            assert_eq!(n, out.len());
            assert_eq!(f.payload, payload);
            assert!(f.masked);
            // Every prefix is "need more".
            for cut in [0, 1, out.len() / 2, out.len() - 1] {
                if cut < out.len() {
                    assert_eq!(decode_frame(&out[..cut], 1 << 20).unwrap(), None);
                }
            }
        }
    }

    #[test]
    fn server_frames_are_unmasked_7_or_16_bit() {
        let mut out = Vec::new();
        encode_frame(&mut out, Opcode::Text, b"hi", None).unwrap();
        assert_eq!(out, b"\x81\x02hi");
        let mut out = Vec::new();
        encode_frame(&mut out, Opcode::Text, &[0; 300], None).unwrap();
        assert_eq!(&out[..4], &[0x81, 126, 1, 44]);
        let mut out = Vec::new();
        assert!(encode_frame(&mut out, Opcode::Text, &[0; MAX_16BIT_PAYLOAD], None).is_ok());
        assert_eq!(
            encode_frame(&mut out, Opcode::Text, &[0; MAX_16BIT_PAYLOAD + 1], None),
            Err(EncodeError::TooLarge {
                len: MAX_16BIT_PAYLOAD + 1
            })
        );
    }

    #[test]
    fn payload_limit_at_below_above() {
        for (len, ok) in [(99usize, true), (100, true), (101, false)] {
            let mut out = Vec::new();
            encode_frame(&mut out, Opcode::Text, &vec![b'a'; len], None).unwrap();
            let r = decode_frame(&out, 100);
            assert_eq!(r.is_ok(), ok, "{len}");
        }
        // Refused from the header alone.
        assert_eq!(
            decode_frame(&[0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0], 100),
            Err(FrameError::TooLarge {
                len: 1 << 32,
                max: 100
            })
        );
    }

    #[test]
    fn control_limits_and_bad_headers() {
        let mut out = Vec::new();
        assert!(encode_frame(&mut out, Opcode::Ping, &[0; MAX_CONTROL_PAYLOAD], None).is_ok());
        assert!(encode_frame(&mut out, Opcode::Ping, &[0; MAX_CONTROL_PAYLOAD + 1], None).is_err());
        assert_eq!(
            decode_frame(&[0x89, 126, 0, 126], 1000),
            Err(FrameError::ControlTooLong { len: 126 })
        );
        assert_eq!(decode_frame(&[0x01, 0], 10), Err(FrameError::Fragmented));
        assert_eq!(decode_frame(&[0x80, 0], 10), Err(FrameError::Fragmented));
        assert_eq!(decode_frame(&[0x09, 0], 10), Err(FrameError::Fragmented));
        assert_eq!(
            decode_frame(&[0xC1, 0], 10),
            Err(FrameError::ReservedBits { byte: 0xC1 })
        );
        assert_eq!(
            decode_frame(&[0x83, 0], 10),
            Err(FrameError::UnknownOpcode { code: 3 })
        );
    }

    #[test]
    fn handshake_round_trip() {
        let key = client_key([7; 16]);
        let mut req = Vec::new();
        write_client_request(
            &mut req,
            "lns:6038",
            "/router-info",
            &key,
            b"Authorization: Bearer x\r\n",
        );
        assert_eq!(parse_request(&req[..req.len() - 1]).unwrap(), None);
        let (r, n) = parse_request(&req).unwrap().unwrap();
        assert_eq!(n, req.len());
        assert_eq!(r.path, "/router-info");
        assert_eq!(r.key, key);
        assert_eq!(r.header("AUTHORIZATION"), Some("Bearer x"));
        let mut resp = Vec::new();
        write_server_accept(&mut resp, &key);
        resp.extend_from_slice(b"\x81\x00");
        assert_eq!(parse_response(&resp, &key).unwrap(), Some(resp.len() - 2));
        assert!(matches!(
            parse_response(&resp, &client_key([8; 16])),
            Err(HandshakeError::Header { .. })
        ));
        let mut refusal = Vec::new();
        write_server_refusal(&mut refusal, 403, "Forbidden");
        assert_eq!(
            parse_response(&refusal, &key),
            Err(HandshakeError::Status { status: 403 })
        );
    }

    #[test]
    fn head_limit_at_below_above() {
        let key = client_key([1; 16]);
        let mut base = Vec::new();
        write_client_request(&mut base, "h:1", "/", &key, b"");
        let pad = |total: usize| {
            // "X-Pad: " + filler + "\r\n" inserted before the final blank line.
            let filler = total - base.len() - 9;
            let mut r = base[..base.len() - 2].to_vec();
            r.extend_from_slice(b"X-Pad: ");
            r.extend(std::iter::repeat_n(b'a', filler));
            r.extend_from_slice(b"\r\n\r\n");
            assert_eq!(r.len(), total);
            r
        };
        assert!(parse_request(&pad(MAX_HEAD_LEN - 1)).unwrap().is_some());
        assert!(parse_request(&pad(MAX_HEAD_LEN)).unwrap().is_some());
        assert!(matches!(
            parse_request(&pad(MAX_HEAD_LEN + 1)),
            Err(HandshakeError::HeadTooLong { .. })
        ));
        assert!(matches!(
            parse_request(&vec![b'a'; MAX_HEAD_LEN]),
            Err(HandshakeError::HeadTooLong { .. })
        ));
    }

    #[test]
    fn bad_requests() {
        for bad in [
            &b"POST / HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad line\r\n\r\n",
        ] {
            assert!(parse_request(bad).is_err());
        }
    }

    #[test]
    fn fuzz_entries_run() {
        fuzz_frames(b"\x81\x02hi\x89\x00\x82\x7e\x00");
        fuzz_handshake(b"GET / HTTP/1.1\r\n\r\n");
    }
}
