//! The audit lines of operator changes (`gateway updated`, `renewal requested`). Alone in its
//! test binary: a subscriber set per thread must not race other tests for the callsites.

mod service_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use cups_host_server::service::{GatewaySpec, RenewSlots, UriChange, UriUpdate};
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

#[tokio::test]
async fn operator_changes_are_audited() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .json()
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let f = Fixture::new(Backend::Memory);
    f.service
        .register_gateway(GatewaySpec::new(eui()), now())
        .await
        .unwrap();
    f.service.issue_credentials(eui(), now()).await.unwrap();
    f.service
        .update_gateway_uris(
            eui(),
            &UriUpdate {
                tc_uri: UriChange::Set("wss://lns2.example.org:8887".into()),
                ..UriUpdate::default()
            },
        )
        .await
        .unwrap();
    f.service
        .request_renewal(eui(), RenewSlots::BOTH)
        .await
        .unwrap();
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let audit: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "audit")
        .collect();
    let updated = audit
        .iter()
        .find(|v| v["fields"]["message"] == "gateway updated")
        .unwrap_or_else(|| panic!("gateway updated line in {text}"));
    assert_eq!(updated["fields"]["eui"], EUI_HEX);
    assert_eq!(updated["fields"]["tc_uri"], "wss://lns2.example.org:8887");
    let renewal = audit
        .iter()
        .find(|v| v["fields"]["message"] == "renewal requested")
        .expect("renewal requested line");
    assert_eq!(renewal["fields"]["cups"], true);
    assert_eq!(renewal["fields"]["tc"], true);
}
