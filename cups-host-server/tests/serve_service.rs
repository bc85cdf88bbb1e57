//! The whole server over real TLS sockets: `serve` in front of the real `Service` (memory
//! store, the development PKI of `pki::init` with a bootstrap CA). A registered gateway
//! holding only a factory certificate gets its own credentials, switches to them, gets the
//! 14-byte "nothing to do" once it reports everything, and its factory certificate is then
//! refused. Responses are parsed by hand and decoded with cups-core.

mod serve_support;

use std::sync::Arc;

use cups_core::Eui64;
use cups_core::response::{CredKind, Decoder, Event, NO_CHANGE};
use cups_host_server::pki::{ClientUsage, InitOptions, Pki, PkiPaths, init};
use cups_host_server::serve::server_config_from_pki;
use cups_host_server::service::GatewaySpec;
use cups_host_server::service::{Service, ServiceSettings};
use cups_host_server::store::memory::MemoryStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serve_support::*;

const CUPS_URI: &str = "https://localhost:16140";
const TC_URI: &str = "wss://localhost:16138";

/// The credential blobs and URIs of a response.
#[derive(Default, Debug)]
struct Segments {
    cups_uri: Option<String>,
    tc_uri: Option<String>,
    cups_cred: Vec<u8>,
    tc_cred: Vec<u8>,
}

fn segments(body: &[u8]) -> Segments {
    let mut d = Decoder::new();
    let mut seg = Segments::default();
    let mut input = body;
    loop {
        let step = d.decode(input).expect("decodes");
        input = &input[step.consumed..];
        match step.event {
            Some(Event::CupsUri(u)) => seg.cups_uri = Some(String::from_utf8_lossy(u).into()),
            Some(Event::TcUri(u)) => seg.tc_uri = Some(String::from_utf8_lossy(u).into()),
            Some(Event::CredChunk { kind, data, .. }) => match kind {
                CredKind::Cups => seg.cups_cred.extend_from_slice(data),
                CredKind::Tc => seg.tc_cred.extend_from_slice(data),
            },
            Some(Event::Done) => break,
            Some(_) => {}
            None if input.is_empty() => break,
            None => {}
        }
    }
    d.finish().expect("complete");
    seg
}

async fn exchange(
    addr: std::net::SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    request: &[u8],
) -> RawResponse {
    let mut conn = RawConn::new(tls_connect(addr, cfg).await.expect("handshake"));
    conn.send(request).await.expect("send");
    conn.response().await.expect("response")
}

#[tokio::test]
async fn a_gateway_goes_from_factory_certificate_to_its_own_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = PkiPaths::new(dir.path().join("certs"));
    init(&paths, &InitOptions::default()).expect("pki init");
    let factory = Ca::new("Factory CA");
    std::fs::write(paths.bootstrap_ca(), &factory.pem).expect("bootstrap CA");
    let pki = Arc::new(Pki::load(&paths).expect("pki load"));
    let settings = ServiceSettings {
        cups_uri: Some(CUPS_URI.into()),
        tc_uri: Some(TC_URI.into()),
        ..ServiceSettings::default()
    };
    let service = Arc::new(
        Service::new(Arc::new(MemoryStore::new()), Arc::clone(&pki), settings).expect("service"),
    );
    let eui = Eui64::parse(EUI).expect("eui");
    let now = time::OffsetDateTime::now_utc();
    service
        .register_gateway(GatewaySpec::new(eui), now)
        .await
        .expect("register");
    let tls = server_config_from_pki(&pki).expect("server config");
    let server = start(test_config(), Some(tls), Arc::clone(&service)).await;
    // The station trusts what a CUPS blob would carry.
    let trust = vec![CertificateDer::from(
        pki.trust_der(ClientUsage::Cups).to_vec(),
    )];

    // 1. First contact with the factory certificate: the gateway's own credentials.
    let factory_id = factory.client(EUI);
    let first = station_requests().remove(0).1;
    let resp = exchange(
        server.addr,
        client_config_with_roots(&trust, Some(&factory_id)),
        &first,
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.content_length(), Some(resp.body.len() as u64));
    let seg = segments(&resp.body);
    assert!(!seg.cups_cred.is_empty(), "CUPS credentials sent");
    assert!(!seg.tc_cred.is_empty(), "TC credentials sent");
    assert_eq!(seg.tc_uri.as_deref(), Some(TC_URI));

    // 2. The station stores the blob as the station would and connects with it.
    let split = cups_core::cred::station_split(&seg.cups_cred).expect("station split");
    let (trust_der, cert_der, key_der) = split.slices(&seg.cups_cred).expect("slices");
    let own = Identity::from_parts(cert_der, PrivateKeyDer::Sec1(key_der.to_vec().into()));
    let own_cfg = client_config_with_roots(&[CertificateDer::from(trust_der.to_vec())], Some(&own));
    let cups_crc = split.stored_crc(&seg.cups_cred).expect("crc");
    let tc_split = cups_core::cred::station_split(&seg.tc_cred).expect("tc split");
    let tc_crc = tc_split.stored_crc(&seg.tc_cred).expect("crc");
    let body = String::from_utf8(vector("requests/first-contact.json"))
        .expect("utf-8")
        .replace("\"tcUri\":null", &format!("\"tcUri\":\"{TC_URI}\""))
        .replace(
            "\"cupsCredCrc\":122040733",
            &format!("\"cupsCredCrc\":{cups_crc}"),
        )
        .replace(
            "\"tcCredCrc\":2077607535",
            &format!("\"tcCredCrc\":{tc_crc}"),
        );
    let resp = exchange(server.addr, own_cfg, &station_request(body.as_bytes(), "")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.body, NO_CHANGE,
        "a gateway that has everything gets 14 bytes"
    );

    // 3. The factory certificate no longer works for this gateway.
    let resp = exchange(
        server.addr,
        client_config_with_roots(&trust, Some(&factory_id)),
        &first,
    )
    .await;
    assert!(
        matches!(resp.status, 401 | 403),
        "{} {}",
        resp.status,
        resp.text()
    );
    assert_eq!(resp.text().lines().count(), 1);

    // 4. No credentials at all.
    let resp = exchange(server.addr, client_config_with_roots(&trust, None), &first).await;
    assert!(
        matches!(resp.status, 401 | 403),
        "{} {}",
        resp.status,
        resp.text()
    );

    // The admin listener reports the store and both layers' metrics.
    let mut conn = tcp(server.admin).await;
    conn.send(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    assert_eq!(conn.response().await.expect("readyz").status, 200);
    conn.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    let metrics = conn.response().await.expect("metrics").text();
    assert!(
        metrics.contains("cups_update_info_requests_total{status=\"200\"} 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cups_credentials_minted_total"),
        "{metrics}"
    );
    server.stop().await;
}
