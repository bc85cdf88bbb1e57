//! The server side of a scenario: `cups-server serve --log-format json` writes one JSON object
//! per log line on stderr (tracing-subscriber's JSON format); the lines with
//! `"target": "audit"` are its decisions.
//!
//! ```text
//! {"timestamp":"…","level":"INFO","fields":{"message":"update-info","eui":"0016c001ff10a235",
//!  "auth":"client-cert","outcome":"updated","status":200,"segments":"tcUri send: ..",
//!  "events":"minted:tc","tc_crc_sent":"0x11223344","tc_uri_sent":true,"firmware":"-",…},"target":"audit"}
//! ```
//!
//! Messages: `update-info` (one per request), `gateway registered`, `gateway updated`,
//! `renewal requested`, `gateway removed`, ... Fields this module does not name are kept in
//! [`AuditEvent::fields`].

use serde_json::{Map, Value};

/// Longest line the parser looks at (a request's audit line is well below 2 KiB).
pub const MAX_AUDIT_LINE_LEN: usize = 16 * 1024;
/// The tracing target of audit lines.
pub const AUDIT_TARGET: &str = "audit";

/// A response segment an `update-info` audit line reports as sent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sent {
    /// `cups_uri_sent: true`.
    CupsUri,
    /// `tc_uri_sent: true`.
    TcUri,
    /// `cups_crc_sent` is a CRC.
    CupsCred,
    /// `tc_crc_sent` is a CRC.
    TcCred,
}

/// One audit decision of the server.
#[derive(Clone, PartialEq, Debug, serde::Serialize)]
pub struct AuditEvent {
    /// The message (`update-info`, `gateway updated`, ...).
    pub message: String,
    /// The gateway (16 hex digits), if the line names one.
    pub eui: Option<String>,
    /// `update-info`: `updated`, `no_change`, `unauthenticated`, ...
    pub outcome: Option<String>,
    /// `update-info`: the HTTP status.
    pub status: Option<u16>,
    /// `update-info`: the segments sent (`-` for none).
    pub segments: Option<String>,
    /// `update-info`: credential events (`minted:tc renewed:cups confirmed:cups ...`).
    pub events: Option<String>,
    /// `update-info`: the firmware id sent (`-` for none).
    pub firmware: Option<String>,
    /// `update-info`: how the gateway authenticated.
    pub auth: Option<String>,
    /// All fields as logged.
    pub fields: Map<String, Value>,
}

impl AuditEvent {
    /// A request answered 200 for `eui`.
    #[must_use]
    pub fn is_ok_request(&self, eui: &str) -> bool {
        self.message == "update-info"
            && self.eui.as_deref() == Some(eui)
            && self.status == Some(200)
    }

    /// Whether `events` names `word` (e.g. `renewed:cups`).
    #[must_use]
    pub fn has_event(&self, word: &str) -> bool {
        self.events
            .as_deref()
            .is_some_and(|e| e.split_whitespace().any(|w| w == word))
    }

    /// Whether the response carried `segment` (from the `*_sent` fields).
    #[must_use]
    pub fn sent(&self, segment: Sent) -> bool {
        let field = |k: &str| self.fields.get(k);
        let crc = |k: &str| field(k).and_then(Value::as_str).is_some_and(|c| c != "-");
        match segment {
            Sent::CupsUri => field("cups_uri_sent") == Some(&Value::Bool(true)),
            Sent::TcUri => field("tc_uri_sent") == Some(&Value::Bool(true)),
            Sent::CupsCred => crc("cups_crc_sent"),
            Sent::TcCred => crc("tc_crc_sent"),
        }
    }

    /// The firmware sent, if any.
    #[must_use]
    pub fn firmware_sent(&self) -> Option<&str> {
        self.firmware.as_deref().filter(|f| *f != "-")
    }
}

/// Parse one stderr line of `cups-server`; `None` unless it is a JSON audit line.
#[must_use]
pub fn parse_audit_line(line: &str) -> Option<AuditEvent> {
    let line = line.trim();
    if line.len() > MAX_AUDIT_LINE_LEN || !line.starts_with('{') {
        return None;
    }
    let v: Value = serde_json::from_str(line).ok()?;
    if v.get("target")?.as_str()? != AUDIT_TARGET {
        return None;
    }
    let fields = v.get("fields")?.as_object()?.clone();
    let text = |k: &str| fields.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(AuditEvent {
        message: text("message")?,
        eui: text("eui").filter(|e| e != "-"),
        outcome: text("outcome"),
        status: fields
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok()),
        segments: text("segments"),
        events: text("events"),
        firmware: text("firmware"),
        auth: text("auth"),
        fields,
    })
}

/// Fuzz entry point: any bytes as lines; never panics.
#[doc(hidden)]
pub fn fuzz_audit_lines(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        if let Some(ev) = parse_audit_line(line) {
            assert!(!ev.message.is_empty() || ev.fields.contains_key("message"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &str = r#"{"timestamp":"2026-11-26T20:41:07.532118Z","level":"INFO","fields":{"message":"update-info","eui":"0016c001ff10a235","auth":"client-cert","outcome":"updated","status":200,"segments":"cupsUri keep: same; tcUri send: differs; tcCred send: differs","events":"minted:tc confirmed:cups bootstrap-closed","cups_crc_reported":"0x1a2b3c4d","tc_crc_reported":"0x7bd5c66f","cups_crc_sent":"-","tc_crc_sent":"0x11223344","cups_uri_sent":false,"tc_uri_sent":true,"key_crc":"-","firmware":"-","reason":"-"},"target":"audit"}"#;

    #[test]
    fn request_line() {
        let ev = parse_audit_line(REQUEST).expect("audit");
        assert_eq!(ev.message, "update-info");
        assert_eq!(ev.eui.as_deref(), Some("0016c001ff10a235"));
        assert!(ev.is_ok_request("0016c001ff10a235"));
        assert!(!ev.is_ok_request("0016c001ff10a236"));
        assert!(ev.has_event("minted:tc"));
        assert!(ev.has_event("bootstrap-closed"));
        assert!(!ev.has_event("minted"));
        assert!(ev.sent(Sent::TcUri));
        assert!(ev.sent(Sent::TcCred));
        assert!(!ev.sent(Sent::CupsCred));
        assert!(!ev.sent(Sent::CupsUri));
        assert_eq!(ev.firmware_sent(), None);
        assert_eq!(ev.auth.as_deref(), Some("client-cert"));
        assert_eq!(ev.fields["tc_uri_sent"], true);
    }

    #[test]
    fn operator_lines_and_non_audit() {
        let updated = r#"{"timestamp":"t","level":"INFO","fields":{"message":"gateway updated","eui":"0016c001ff10a235","cups_uri":"-","tc_uri":"wss://localhost:6090","changed":true},"target":"audit"}"#;
        let ev = parse_audit_line(updated).expect("audit");
        assert_eq!(ev.message, "gateway updated");
        assert_eq!(ev.status, None);
        let rejected = r#"{"fields":{"message":"update-info","eui":"-","status":401,"outcome":"unauthenticated"},"target":"audit"}"#;
        let ev = parse_audit_line(rejected).expect("audit");
        assert_eq!(ev.eui, None);
        assert_eq!(ev.status, Some(401));
        for other in [
            r#"{"fields":{"message":"listening"},"target":"cups_host_server::serve"}"#,
            "listening cups https://127.0.0.1:4000",
            "",
            "{",
            r#"{"target":"audit"}"#,
            r#"{"target":"audit","fields":{"eui":"x"}}"#,
            r#"{"target":7,"fields":{"message":"x"}}"#,
        ] {
            assert!(parse_audit_line(other).is_none(), "{other}");
        }
        let big_status = r#"{"fields":{"message":"update-info","status":70000},"target":"audit"}"#;
        assert_eq!(parse_audit_line(big_status).expect("audit").status, None);
    }

    #[test]
    fn line_length_limit() {
        let pad = |n: usize| {
            let base = r#"{"fields":{"message":"m","pad":""},"target":"audit"}"#;
            let fill = "x".repeat(n - base.len());
            base.replace(r#""pad":"""#, &format!(r#""pad":"{fill}""#))
        };
        assert!(parse_audit_line(&pad(MAX_AUDIT_LINE_LEN)).is_some());
        assert!(parse_audit_line(&pad(MAX_AUDIT_LINE_LEN - 1)).is_some());
        assert!(parse_audit_line(&pad(MAX_AUDIT_LINE_LEN + 1)).is_none());
    }

    #[test]
    fn fuzz_body_on_samples() {
        fuzz_audit_lines(REQUEST.as_bytes());
        fuzz_audit_lines(b"{\"target\":\"audit\",\"fields\":{\"message\":\"\"}}\n\xff{");
    }
}
