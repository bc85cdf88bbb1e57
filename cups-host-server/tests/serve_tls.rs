//! The CUPS listener over real TLS sockets on loopback: the station's exact requests over
//! mutual TLS, ECDSA and RSA server certificates, TLS 1.2-only and 1.3-only clients, token
//! (anonymous) clients, refused client certificates (expired, foreign CA), the bootstrap CA,
//! and the handshake timeout.

mod serve_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cups_host_server::service::{Outcome, PeerIdentity};
use serve_support::*;

/// Send the four station requests byte for byte; the handler answers `full.bin` as the
/// head; the client parses the response by hand and decodes it with cups-core.
#[tokio::test]
async fn station_vectors_over_mutual_tls() {
    let pki = TestPki::new(KeyKind::EcdsaP256);
    let full = Bytes::from(vector("responses/full.bin"));
    let full2 = full.clone();
    let handler = Arc::new(TestHandler::with_reply(move |req| {
        cups_core::request::UpdateInfo::decode(&req.body).expect("station request decodes");
        Outcome::Respond {
            head: full2.clone(),
            content_length: full2.len() as u64,
            update: None,
        }
    }));
    let server = start(
        test_config(),
        Some(pki.server_config()),
        Arc::clone(&handler),
    )
    .await;
    let client = pki.gateway_ca.client(EUI);
    let cfg = pki.client_config(Some(&client), BOTH);
    for (name, request, body) in station_requests() {
        let mut conn = RawConn::new(
            tls_connect(server.addr, Arc::clone(&cfg))
                .await
                .expect(name),
        );
        conn.send(&request).await.expect("send");
        let resp = conn.response().await.expect(name);
        assert_eq!(resp.status, 200, "{name}: {}", resp.text());
        assert_eq!(resp.content_length(), Some(full.len() as u64), "{name}");
        assert_eq!(resp.body, full.as_ref(), "{name}");
        let update = decode_cups(&resp.body);
        assert_eq!(
            update.len(),
            114,
            "{name}: full.bin carries a 114-byte update"
        );
        let seen = handler.take_last().expect("request reached the handler");
        assert_eq!(seen.body.as_ref(), body.as_slice(), "{name}: exact body");
        assert_eq!(seen.authorization, None);
        assert_eq!(
            seen.peer,
            PeerIdentity::ClientCert {
                leaf_der: client.leaf().to_vec()
            },
            "{name}: the verified leaf"
        );
    }
    assert_eq!(server.metrics.update_info_requests.get("200"), 4);
    server.stop().await;
}

/// The development PKI that `serve` creates on a fresh clone (`pki::init`), a gateway
/// credential minted by it, and the station's requests.
#[tokio::test]
async fn dev_pki_from_pki_init_with_a_minted_gateway_credential() {
    use cups_host_server::pki::{ClientUsage, InitOptions, Pki, PkiPaths, init};
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = PkiPaths::new(dir.path());
    init(&paths, &InitOptions::default()).expect("pki init");
    let pki = Pki::load(&paths).expect("pki load");
    let tls = cups_host_server::serve::server_config_from_pki(&pki).expect("server config");
    let handler = Arc::new(TestHandler::decoding());
    let server = start(test_config(), Some(tls), Arc::clone(&handler)).await;

    let eui = cups_core::Eui64::parse(EUI).expect("eui");
    let now = time::OffsetDateTime::now_utc();
    let minted = pki
        .mint_client(eui, ClientUsage::Cups, time::Duration::days(30), now)
        .expect("mint");
    let mut roots = rustls::RootCertStore::empty();
    for r in pki.gateway_roots() {
        roots.add(r.clone()).expect("root");
    }
    for versions in [
        &[&rustls::version::TLS12][..],
        &[&rustls::version::TLS13][..],
    ] {
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(
            vec![minted.cert_der.clone().into()],
            rustls::pki_types::PrivateKeyDer::Sec1(minted.key_sec1_der.clone().into()),
        )
        .expect("client cert");
        for (name, request, body) in station_requests() {
            let tls = tls_connect(server.addr, Arc::new(cfg.clone()))
                .await
                .expect(name);
            let mut conn = RawConn::new(tls);
            conn.send(&request).await.expect("send");
            let resp = conn.response().await.expect(name);
            assert_eq!(resp.status, 200, "{name}");
            assert_eq!(resp.body, cups_core::response::NO_CHANGE);
            let seen = handler.take_last().expect("handled");
            assert_eq!(seen.body.as_ref(), body.as_slice());
            assert_eq!(
                seen.peer,
                PeerIdentity::ClientCert {
                    leaf_der: minted.cert_der.clone()
                }
            );
            // The service can tell who it is from the leaf.
            let PeerIdentity::ClientCert { leaf_der } = &seen.peer else {
                unreachable!()
            };
            assert!(pki.issued_by_gateway_ca(leaf_der));
        }
    }
    server.stop().await;
}

async fn one_no_change_request(
    pki: &TestPki,
    server: &Running,
    client: Option<&Identity>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ProtocolVersion {
    let cfg = pki.client_config(client, versions);
    let tls = tls_connect(server.addr, cfg).await.expect("handshake");
    let version = tls.get_ref().1.protocol_version().expect("version");
    let mut conn = RawConn::new(tls);
    let (_, request, _) = station_requests().remove(0);
    conn.send(&request).await.expect("send");
    let resp = conn.response().await.expect("response");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, cups_core::response::NO_CHANGE);
    version
}

#[tokio::test]
async fn tls12_only_and_tls13_only_clients_with_ecdsa_and_rsa_servers() {
    for kind in [KeyKind::EcdsaP256, KeyKind::Rsa2048] {
        let pki = TestPki::new(kind);
        let server = start(
            test_config(),
            Some(pki.server_config()),
            Arc::new(TestHandler::decoding()),
        )
        .await;
        let client = pki.gateway_ca.client(EUI);
        for (versions, expect) in [
            (
                &[&rustls::version::TLS12][..],
                rustls::ProtocolVersion::TLSv1_2,
            ),
            (
                &[&rustls::version::TLS13][..],
                rustls::ProtocolVersion::TLSv1_3,
            ),
        ] {
            let got = one_no_change_request(&pki, &server, Some(&client), versions).await;
            assert_eq!(got, expect, "{kind:?}");
            // Token-mode clients (no certificate) too.
            let got = one_no_change_request(&pki, &server, None, versions).await;
            assert_eq!(got, expect, "{kind:?} anonymous");
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn anonymous_client_hands_its_token_header_to_the_service() {
    let pki = TestPki::new(KeyKind::EcdsaP256);
    let handler = Arc::new(TestHandler::decoding());
    let server = start(
        test_config(),
        Some(pki.server_config()),
        Arc::clone(&handler),
    )
    .await;
    let mut conn = RawConn::new(
        tls_connect(server.addr, pki.client_config(None, BOTH))
            .await
            .expect("handshake without a client certificate"),
    );
    let (_, request, _) = station_requests().remove(0);
    // The station appends the header lines stored in cups.key after its own headers; order
    // does not matter to HTTP.
    let request = with_headers(&request, "Authorization: Bearer tok-0016c001ff10a235\r\n");
    conn.send(&request).await.expect("send");
    let resp = conn.response().await.expect("response");
    assert_eq!(resp.status, 200);
    let seen = handler.take_last().expect("handled");
    assert_eq!(seen.peer, PeerIdentity::Anonymous);
    assert_eq!(
        seen.authorization.as_deref(),
        Some("Bearer tok-0016c001ff10a235")
    );
    server.stop().await;
}

#[tokio::test]
async fn bootstrap_ca_certificates_are_accepted() {
    let pki = TestPki::new(KeyKind::EcdsaP256);
    let handler = Arc::new(TestHandler::decoding());
    let server = start(
        test_config(),
        Some(pki.server_config()),
        Arc::clone(&handler),
    )
    .await;
    let factory = pki.bootstrap_ca.client(EUI);
    one_no_change_request(&pki, &server, Some(&factory), BOTH).await;
    let seen = handler.take_last().expect("handled");
    assert_eq!(
        seen.peer,
        PeerIdentity::ClientCert {
            leaf_der: factory.leaf().to_vec()
        }
    );
    server.stop().await;
}

/// A refused certificate must end the connection before any request reaches the handler.
/// With TLS 1.2 the client's handshake fails; with TLS 1.3 the client finishes first and
/// sees the server's alert (or the close) on its first read.
async fn assert_refused(pki: &TestPki, client: &Identity, what: &str) {
    let handler = Arc::new(TestHandler::decoding());
    let server = start(
        test_config(),
        Some(pki.server_config()),
        Arc::clone(&handler),
    )
    .await;
    for versions in [
        &[&rustls::version::TLS12][..],
        &[&rustls::version::TLS13][..],
    ] {
        let cfg = pki.client_config(Some(client), versions);
        match tls_connect(server.addr, cfg).await {
            Err(_) => {}
            Ok(tls) => {
                let mut conn = RawConn::new(tls);
                let (_, request, _) = station_requests().remove(0);
                let _ = conn.send(&request).await;
                let r = conn.response().await;
                assert!(r.is_err(), "{what} {versions:?}: got a response {r:?}");
            }
        }
    }
    assert!(
        handler.seen().is_empty(),
        "{what}: nothing reached the handler"
    );
    let m = Arc::clone(&server.metrics);
    assert!(
        eventually(|| m.tls_handshake_failures.get() == 2).await,
        "{what}: two handshake failures counted"
    );
    server.stop().await;
}

#[tokio::test]
async fn expired_client_certificate_is_refused() {
    let pki = TestPki::new(KeyKind::EcdsaP256);
    let client = pki.gateway_ca.client_valid(EUI, expired());
    assert_refused(&pki, &client, "expired").await;
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    let pki = TestPki::new(KeyKind::EcdsaP256);
    let foreign = Ca::new("Somebody Else's CA").client(EUI);
    assert_refused(&pki, &foreign, "foreign CA").await;
}

#[tokio::test]
async fn silent_client_is_dropped_after_the_handshake_timeout() {
    let pki = TestPki::new(KeyKind::EcdsaP256);
    let mut config = test_config();
    config.tls_handshake_timeout = Duration::from_millis(300);
    let server = start(
        config,
        Some(pki.server_config()),
        Arc::new(TestHandler::decoding()),
    )
    .await;
    let start = std::time::Instant::now();
    let mut conn = tcp(server.addr).await;
    assert!(conn.closed_within(Duration::from_secs(5)).await);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let m = Arc::clone(&server.metrics);
    assert!(eventually(|| m.tls_handshake_timeouts.get() == 1).await);
    server.stop().await;
}

#[tokio::test]
async fn plain_http_on_the_tls_port_is_a_handshake_failure() {
    let pki = TestPki::new(KeyKind::EcdsaP256);
    let server = start(
        test_config(),
        Some(pki.server_config()),
        Arc::new(TestHandler::decoding()),
    )
    .await;
    let mut conn = tcp(server.addr).await;
    let (_, request, _) = station_requests().remove(0);
    conn.send(&request).await.expect("send");
    assert!(conn.response().await.is_err());
    let m = Arc::clone(&server.metrics);
    assert!(eventually(|| m.tls_handshake_failures.get() == 1).await);
    server.stop().await;
}
