//! One audit line per decision, with what an operator needs and never a secret.

mod service_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use cups_core::crc::crc32;
use cups_host_server::model::CupsAuth;
use cups_host_server::service::GatewaySpec;
use service_support::*;

/// A `MakeWriter` collecting everything logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test]
async fn audit_lines_name_the_decision_and_no_secret() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let f = Fixture::new(Backend::Memory);
    let mut spec = GatewaySpec::new(eui());
    spec.cups_auth = CupsAuth::Token;
    let token = f
        .service
        .register_gateway(spec, now())
        .await
        .unwrap()
        .cups_token
        .unwrap();
    let d = decode(
        f.service
            .update_info(with_token(&token, vector_body("first-contact")), now())
            .await,
    )
    .await;
    let cups = d.cups_cred.unwrap();
    let tc = d.tc_cred.unwrap();
    let (status, _) = rejected(
        &f.service
            .update_info(
                with_token("wrong-token", vector_body("first-contact")),
                now(),
            )
            .await,
    );
    assert_eq!(status, 401);

    let logs = captured.text();
    let audit: Vec<&str> = logs.lines().filter(|l| l.contains("audit:")).collect();
    let decisions: Vec<&&str> = audit.iter().filter(|l| l.contains("update-info")).collect();
    assert_eq!(decisions.len(), 2, "{logs}");
    let ok = decisions[0];
    for part in [
        "eui=0016c001ff10a235",
        "auth=token",
        "outcome=updated",
        "status=200",
        "events=minted:tc bootstrap-closed",
        "cups_crc_reported=0x0746319d",
        "tc_crc_reported=0x7bd5c66f",
        &format!("cups_crc_sent={:#010x}", crc32(&cups)),
        &format!("tc_crc_sent={:#010x}", crc32(&tc)),
        "tc_uri_sent=true",
        "key_crc=-",
    ] {
        assert!(ok.contains(part), "missing {part} in {ok}");
    }
    // Segments with reasons, on the one line.
    assert!(ok.contains("segments=cupsUri keep: "), "{ok}");
    assert!(ok.contains("; tcUri send: "), "{ok}");
    assert!(ok.contains("; update keep: "), "{ok}");
    let bad = decisions[1];
    assert!(
        bad.contains("outcome=unauthenticated") && bad.contains("status=401"),
        "{bad}"
    );
    assert!(bad.contains("reason=unknown bearer token"), "{bad}");

    // No secret anywhere in the logs: tokens, blobs (raw, hex or base64), keys.
    assert!(!logs.contains(&token));
    assert!(!logs.contains("wrong-token"));
    let b64 = base64::engine::general_purpose::STANDARD;
    for blob in [&cups, &tc] {
        assert!(!logs.contains(&hex::encode(blob)));
        assert!(!logs.contains(&b64.encode(blob)));
    }
    assert!(!logs.contains("Authorization"));
}
