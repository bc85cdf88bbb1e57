//! The gateway side of the TC (LNS) link, sans-IO: what a station does with its `tc.*`
//! credentials (the station's `src/tc.c`, protocol doc §6).
//!
//! * `tc.uri` is `ws(s)://host:port` ([`parse_ws_uri`] without a path); every host resolves to
//!   the uplink in the simulator, the name is used for TLS (SNI and certificate check);
//! * TLS uses the regular `tc.*` set only (client certificate, or token = the normalised lines
//!   of `tc.key` sent as extra header lines of each upgrade request, [`token_header_lines`]);
//! * [`TcExchange`] runs one WebSocket connection: `GET /router-info`, send
//!   `{"router":"<ID6>"}`, read the answer (`error` or no `uri` = rejected); then a second
//!   connection to the muxs `uri` with the same credentials: upgrade, send the `version`
//!   message, then a WebSocket ping: the LNS's pong proves it read the `version` message
//!   (frames are handled in order), so the session counts as up on the pong (or on a
//!   `router_config`, whichever comes first);
//! * retries ([`TC_MAX_RETRIES`], [`backoff`]) follow `tc_continue`.

use std::time::Duration;

use cups_core::Eui64;

use crate::ws::{self, Opcode};

/// The station's TC engine timeout per attempt (`TC_TIMEOUT`, 60 s).
pub const TC_TIMEOUT: Duration = Duration::from_secs(60);
/// After this many retries the station gives up on the LNS and triggers CUPS
/// ("10 TC retries triggers CUPS").
pub const TC_MAX_RETRIES: u32 = 10;
/// Router-info backoff step (`min(retries, 6) * 10 s`).
pub const TC_BACKOFF_STEP: Duration = Duration::from_secs(10);
/// Steps of [`TC_BACKOFF_STEP`] at most.
pub const TC_BACKOFF_MAX_STEPS: u32 = 6;
/// Longest URI the station keeps (`MAX_URI_LEN` 128 with the NUL).
pub const MAX_URI_LEN: usize = 127;
/// Largest message the station reads from the LNS (`TC_RECV_BUFFER_SIZE`, 40 KiB).
pub const MAX_TC_MESSAGE: usize = 40 * 1024;
/// Path of the router-info WebSocket.
pub const ROUTER_INFO_PATH: &str = "/router-info";
/// Payload of the ping sent after the `version` message.
pub const VERSION_PING: &[u8] = b"gateway-sim version";
/// `MUXS_PROTOCOL_VERSION`.
pub const MUXS_PROTOCOL_VERSION: u32 = 2;

/// The wait before the next router-info attempt after `retries` retries.
#[must_use]
pub fn backoff(retries: u32) -> Duration {
    TC_BACKOFF_STEP * retries.min(TC_BACKOFF_MAX_STEPS)
}

/// A parsed `ws://` / `wss://` URI.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WsUri {
    /// `wss`.
    pub tls: bool,
    /// Host (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path (empty when none; starts with `/` otherwise).
    pub path: String,
}

impl WsUri {
    /// `host:port` for the `Host` header (IPv6 in brackets).
    #[must_use]
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Why a URI was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// Longer than [`MAX_URI_LEN`].
    #[error("URI longer than {MAX_URI_LEN} bytes")]
    TooLong,
    /// Not `ws://` or `wss://`.
    #[error("URI scheme must be ws or wss")]
    Scheme,
    /// Empty or malformed host.
    #[error("bad host")]
    Host,
    /// Missing or bad port.
    #[error("bad port")]
    Port,
    /// A path where none is allowed, or none where one is required.
    #[error("path not allowed or missing")]
    Path,
}

/// Parse a `ws(s)://host:port[/path]` URI; `path` = whether a path is required (muxs URI)
/// or forbidden (`tc.uri`).
///
/// # Errors
/// A [`UriError`].
pub fn parse_ws_uri(uri: &str, path: bool) -> Result<WsUri, UriError> {
    if uri.len() > MAX_URI_LEN {
        return Err(UriError::TooLong);
    }
    let (tls, rest) = if let Some(r) = strip_prefix_ci(uri, "wss://") {
        (true, r)
    } else if let Some(r) = strip_prefix_ci(uri, "ws://") {
        (false, r)
    } else {
        return Err(UriError::Scheme);
    };
    let (authority, p) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if path == p.is_empty() {
        return Err(UriError::Path);
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or(UriError::Host)?;
        (h, after.strip_prefix(':').ok_or(UriError::Port)?)
    } else {
        authority.rsplit_once(':').ok_or(UriError::Port)?
    };
    if host.is_empty()
        || host
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'@' || b == b'/')
        || (!authority.starts_with('[') && host.contains(':'))
    {
        return Err(UriError::Host);
    }
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UriError::Port);
    }
    let port = port.parse::<u16>().map_err(|_| UriError::Port)?;
    if port == 0 {
        return Err(UriError::Port);
    }
    if p.bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(UriError::Path);
    }
    Ok(WsUri {
        tls,
        host: host.to_owned(),
        port,
        path: p.to_owned(),
    })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// A malformed token file (`expecting: {header: value{\r\n|\n}}*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("token file is not header lines")]
pub struct BadToken;

/// The header lines a station sends for a token-mode `tc.key` (`validateAuthToken`): up to
/// the first NUL, trailing newlines removed, each line `Name: value` (name `[A-Za-z0-9_-]+`),
/// bare `\n` made `\r\n`, a final `\r\n` appended. An empty file gives no lines.
///
/// # Errors
/// [`BadToken`].
pub fn token_header_lines(key: &[u8]) -> Result<Vec<u8>, BadToken> {
    let mut data = key;
    if let Some(nul) = data.iter().position(|&b| b == 0) {
        data = data.get(..nul).unwrap_or_default();
    }
    while let Some(rest) = data.strip_suffix(b"\n") {
        data = rest.strip_suffix(b"\r").unwrap_or(rest);
    }
    let mut out = Vec::with_capacity(data.len() + 8);
    if data.is_empty() {
        return Ok(out);
    }
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':').ok_or(BadToken)?;
        let (name, value) = line.split_at(colon);
        if name.is_empty()
            || !name
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            || value.get(1) != Some(&b' ')
        {
            return Err(BadToken);
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    Ok(out)
}

/// Which connection of the exchange.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stage {
    /// `GET /router-info`.
    RouterInfo,
    /// The muxs URI.
    Muxs,
}

/// Why a TC attempt failed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TcFailure {
    /// No or bad `tc.uri`, or TLS could not be set up (the station: `TC_ERR_NOURI`).
    Setup,
    /// TCP connect refused or reset before the upgrade.
    Connect,
    /// The TLS handshake failed (certificate refused either way).
    Tls,
    /// The upgrade was refused (e.g. 403) or malformed.
    Upgrade(String),
    /// Router-info answered with `error` or without `uri` (`TC_ERR_REJECTED`).
    Rejected(String),
    /// A message the station cannot use (bad JSON, bad muxs URI, bad frame).
    Protocol,
    /// The connection closed early.
    Closed,
    /// [`TC_TIMEOUT`] passed.
    Timeout,
}

impl TcFailure {
    /// A short stable name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Upgrade(_) => "upgrade",
            Self::Rejected(_) => "rejected",
            Self::Protocol => "protocol",
            Self::Closed => "closed",
            Self::Timeout => "timeout",
        }
    }

    /// Whether the station gives up at once and asks CUPS (rejected, or no usable URI).
    #[must_use]
    pub fn gives_up(&self) -> bool {
        matches!(self, Self::Rejected(_) | Self::Setup)
    }
}

/// What [`TcExchange::push`] found.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TcProgress {
    /// Nothing final yet.
    Pending,
    /// Router-info answered: connect to this muxs URI (this connection is closing).
    Muxs(WsUri),
    /// The muxs upgrade succeeded and the `version` message (and a ping) are queued.
    VersionSent,
    /// The LNS answered the ping sent after `version`: it has read the `version` message.
    Acknowledged,
    /// The LNS sent `router_config`.
    RouterConfig,
    /// The attempt failed.
    Failed(TcFailure),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Upgrade,
    Open,
    Done,
}

/// One WebSocket connection of a TC attempt (see the module docs). Feed it decrypted bytes
/// with [`TcExchange::push`]; send what [`TcExchange::take_output`] returns.
#[derive(Debug)]
pub struct TcExchange {
    stage: Stage,
    phase: Phase,
    key: String,
    router: Eui64,
    rx: Vec<u8>,
    out: Vec<u8>,
    mask: [u8; 4],
    version: String,
}

impl TcExchange {
    /// The router-info connection to `uri` (`tc.uri`) for `router`; `token` = header lines
    /// ([`token_header_lines`]); `nonce` seeds the WebSocket key and masks.
    #[must_use]
    pub fn router_info(router: Eui64, uri: &WsUri, token: &[u8], nonce: [u8; 16]) -> Self {
        Self::new(
            Stage::RouterInfo,
            router,
            uri,
            ROUTER_INFO_PATH,
            token,
            nonce,
            String::new(),
        )
    }

    /// The muxs connection to `uri`; `version` = the JSON `version` message to send.
    #[must_use]
    pub fn muxs(
        router: Eui64,
        uri: &WsUri,
        token: &[u8],
        nonce: [u8; 16],
        version: String,
    ) -> Self {
        Self::new(Stage::Muxs, router, uri, &uri.path, token, nonce, version)
    }

    fn new(
        stage: Stage,
        router: Eui64,
        uri: &WsUri,
        path: &str,
        token: &[u8],
        nonce: [u8; 16],
        version: String,
    ) -> Self {
        let key = ws::client_key(nonce);
        let mut out = Vec::with_capacity(256 + token.len());
        ws::write_client_request(&mut out, &uri.host_port(), path, &key, token);
        Self {
            stage,
            phase: Phase::Upgrade,
            key,
            router,
            rx: Vec::new(),
            out,
            mask: [nonce[0], nonce[5], nonce[10], nonce[15]],
            version,
        }
    }

    /// Which connection this is.
    #[must_use]
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Bytes to send (plaintext, before TLS).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Queue a close frame (the station closes each connection with 1000).
    pub fn close(&mut self) {
        if self.phase == Phase::Open {
            self.frame(Opcode::Close, &1000u16.to_be_bytes());
        }
        self.phase = Phase::Done;
    }

    fn frame(&mut self, op: Opcode, payload: &[u8]) {
        // Client frames are masked, so any length encodes.
        let _ = ws::encode_frame(&mut self.out, op, payload, Some(self.mask));
        self.mask = self.mask.map(|b| b.rotate_left(3) ^ 0x5A);
    }

    /// Feed received plaintext.
    pub fn push(&mut self, data: &[u8]) -> TcProgress {
        if self.phase == Phase::Done {
            return TcProgress::Pending;
        }
        self.rx.extend_from_slice(data);
        let mut result = TcProgress::Pending;
        if self.phase == Phase::Upgrade {
            match ws::parse_response(&self.rx, &self.key) {
                Ok(None) => return TcProgress::Pending,
                Err(e) => {
                    self.phase = Phase::Done;
                    return TcProgress::Failed(TcFailure::Upgrade(e.to_string()));
                }
                Ok(Some(n)) => {
                    self.rx.drain(..n);
                    self.phase = Phase::Open;
                    match self.stage {
                        Stage::RouterInfo => {
                            let msg = format!("{{\"router\":\"{}\"}}", self.router.id6());
                            self.frame(Opcode::Text, msg.as_bytes());
                        }
                        Stage::Muxs => {
                            let v = std::mem::take(&mut self.version);
                            self.frame(Opcode::Text, v.as_bytes());
                            self.frame(Opcode::Ping, VERSION_PING);
                            result = TcProgress::VersionSent;
                        }
                    }
                }
            }
        }
        loop {
            let (frame, used) = match ws::decode_frame(&self.rx, MAX_TC_MESSAGE) {
                Ok(Some(x)) => x,
                Ok(None) => return result,
                Err(_) => {
                    self.phase = Phase::Done;
                    return TcProgress::Failed(TcFailure::Protocol);
                }
            };
            self.rx.drain(..used);
            match frame.opcode {
                Opcode::Ping => self.frame(Opcode::Pong, &frame.payload),
                Opcode::Pong if self.stage == Stage::Muxs && frame.payload == VERSION_PING => {
                    return TcProgress::Acknowledged;
                }
                Opcode::Close => {
                    self.phase = Phase::Done;
                    return match result {
                        TcProgress::Pending => TcProgress::Failed(TcFailure::Closed),
                        r => r,
                    };
                }
                Opcode::Text => match self.stage {
                    Stage::RouterInfo => {
                        let r = router_info_answer(&frame.payload);
                        self.close();
                        return r;
                    }
                    Stage::Muxs => {
                        let v: serde_json::Value =
                            serde_json::from_slice(&frame.payload).unwrap_or_default();
                        if v.get("msgtype").and_then(|m| m.as_str()) == Some("router_config") {
                            return TcProgress::RouterConfig;
                        }
                    }
                },
                _ => {}
            }
        }
    }
}

/// The station's reading of a router-info answer.
#[must_use]
pub fn router_info_answer(payload: &[u8]) -> TcProgress {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return TcProgress::Failed(TcFailure::Protocol);
    };
    if !v.is_object() {
        return TcProgress::Failed(TcFailure::Protocol);
    }
    let uri = v.get("uri").and_then(|u| u.as_str());
    if let Some(u) = uri
        && let Err(_) = parse_ws_uri(u, true)
    {
        return TcProgress::Failed(TcFailure::Protocol);
    }
    match (v.get("error"), uri) {
        (None, Some(u)) => match parse_ws_uri(u, true) {
            Ok(w) => TcProgress::Muxs(w),
            Err(_) => TcProgress::Failed(TcFailure::Protocol),
        },
        (e, _) => TcProgress::Failed(TcFailure::Rejected(
            e.and_then(|e| e.as_str()).unwrap_or("no uri").to_owned(),
        )),
    }
}

/// The `version` message a simulated station sends on the muxs connection.
#[must_use]
pub fn version_message(station: &str, model: &str, package: &str) -> String {
    // Field order as the station writes it (`tc_muxs_connection`).
    let q = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        r#"{{"msgtype":"version","station":{},"firmware":{},"package":{},"model":{},"protocol":{MUXS_PROTOCOL_VERSION},"features":"rmtsh"}}"#,
        q(station),
        q(package),
        q(package),
        q(model)
    )
}

/// Fuzz entry: the URI parser, the token normaliser and the router-info reader.
pub fn fuzz_tc(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        for path in [false, true] {
            if let Ok(u) = parse_ws_uri(s, path) {
                assert!(u.port != 0 && !u.host.is_empty());
            }
        }
    }
    if let Ok(lines) = token_header_lines(data) {
        assert!(lines.is_empty() || lines.ends_with(b"\r\n"));
    }
    let _ = router_info_answer(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        let u = parse_ws_uri("wss://lns.example:6038", false).unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (true, "lns.example", 6038, "")
        );
        assert_eq!(u.host_port(), "lns.example:6038");
        let u = parse_ws_uri("WS://[::1]:80/traffic/1:2:3:4", true).unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (false, "::1", 80));
        assert_eq!(u.host_port(), "[::1]:80");
        assert_eq!(parse_ws_uri("wss://h:1/x", false), Err(UriError::Path));
        assert_eq!(parse_ws_uri("wss://h:1", true), Err(UriError::Path));
        assert_eq!(parse_ws_uri("https://h:1", false), Err(UriError::Scheme));
        assert_eq!(parse_ws_uri("wss://h", false), Err(UriError::Port));
        assert_eq!(parse_ws_uri("wss://h:0", false), Err(UriError::Port));
        assert_eq!(parse_ws_uri("wss://h:65536", false), Err(UriError::Port));
        assert_eq!(parse_ws_uri("wss://:1", false), Err(UriError::Host));
        let at = format!("wss://{}:1", "a".repeat(MAX_URI_LEN - 8));
        assert_eq!(at.len(), MAX_URI_LEN);
        assert!(parse_ws_uri(&at, false).is_ok());
        let above = format!("wss://{}:1", "a".repeat(MAX_URI_LEN - 7));
        assert_eq!(parse_ws_uri(&above, false), Err(UriError::TooLong));
    }

    #[test]
    fn tokens() {
        assert_eq!(token_header_lines(b"").unwrap(), b"");
        assert_eq!(
            token_header_lines(b"Authorization: Bearer abc\n").unwrap(),
            b"Authorization: Bearer abc\r\n"
        );
        assert_eq!(
            token_header_lines(b"A: 1\nB-c: 2\r\n\r\n\0junk").unwrap(),
            b"A: 1\r\nB-c: 2\r\n"
        );
        assert_eq!(token_header_lines(b"no colon"), Err(BadToken));
        assert_eq!(token_header_lines(b"A:nospace"), Err(BadToken));
        assert_eq!(token_header_lines(b"A b: c"), Err(BadToken));
    }

    #[test]
    fn backoff_follows_tc_continue() {
        let steps: Vec<u64> = (0..8).map(|r| backoff(r).as_secs()).collect();
        assert_eq!(steps, [0, 10, 20, 30, 40, 50, 60, 60]);
    }

    #[test]
    fn router_info_answers() {
        assert!(matches!(
            router_info_answer(br#"{"router":"::1","muxs":"m","uri":"wss://h:1/traffic/x"}"#),
            TcProgress::Muxs(_)
        ));
        assert_eq!(
            router_info_answer(br#"{"router":"::1","error":"unknown"}"#),
            TcProgress::Failed(TcFailure::Rejected("unknown".into()))
        );
        assert_eq!(
            router_info_answer(br#"{"router":"::1"}"#),
            TcProgress::Failed(TcFailure::Rejected("no uri".into()))
        );
        assert_eq!(
            router_info_answer(br#"{"router":"::1","uri":"https://h:1/x"}"#),
            TcProgress::Failed(TcFailure::Protocol)
        );
        assert_eq!(
            router_info_answer(b"[1]"),
            TcProgress::Failed(TcFailure::Protocol)
        );
    }

    #[test]
    fn exchange_against_codec() {
        let router = Eui64::new(0x0016_c001_ff10_a235).unwrap();
        let uri = parse_ws_uri("wss://lns:6038", false).unwrap();
        let mut x = TcExchange::router_info(router, &uri, b"Authorization: t\r\n", [3; 16]);
        let req = x.take_output();
        let (r, _) = ws::parse_request(&req).unwrap().unwrap();
        assert_eq!(r.path, "/router-info");
        assert_eq!(r.header("authorization"), Some("t"));
        let mut resp = Vec::new();
        ws::write_server_accept(&mut resp, &r.key);
        assert_eq!(x.push(&resp), TcProgress::Pending);
        let out = x.take_output();
        let (f, _) = ws::decode_frame(&out, 1000).unwrap().unwrap();
        assert_eq!(f.payload, br#"{"router":"16:c001:ff10:a235"}"#);
        let mut answer = Vec::new();
        ws::encode_frame(
            &mut answer,
            Opcode::Text,
            br#"{"router":"16:c001:ff10:a235","muxs":"m","uri":"wss://lns:6038/traffic/16:c001:ff10:a235"}"#,
            None,
        )
        .unwrap();
        let TcProgress::Muxs(m) = x.push(&answer) else {
            panic!("no muxs");
        };
        assert_eq!(m.path, "/traffic/16:c001:ff10:a235");
        let mut y = TcExchange::muxs(router, &m, b"", [4; 16], version_message("s", "m", "p"));
        let req = y.take_output();
        let (r, _) = ws::parse_request(&req).unwrap().unwrap();
        let mut resp = Vec::new();
        ws::write_server_accept(&mut resp, &r.key);
        assert_eq!(y.push(&resp), TcProgress::VersionSent);
        let out = y.take_output();
        let (v, n) = ws::decode_frame(&out, 1000).unwrap().unwrap();
        assert!(v.payload.starts_with(br#"{"msgtype":"version""#));
        let (p, _) = ws::decode_frame(&out[n..], 1000).unwrap().unwrap();
        assert_eq!(p.opcode, Opcode::Ping);
        let mut pong = Vec::new();
        ws::encode_frame(&mut pong, Opcode::Pong, VERSION_PING, None).unwrap();
        assert_eq!(y.push(&pong), TcProgress::Acknowledged);
        let mut rc = Vec::new();
        ws::encode_frame(
            &mut rc,
            Opcode::Text,
            br#"{"msgtype":"router_config"}"#,
            None,
        )
        .unwrap();
        assert_eq!(y.push(&rc), TcProgress::RouterConfig);
    }
}
