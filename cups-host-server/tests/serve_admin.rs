//! The admin listener: `/healthz`, `/readyz`, `/metrics` (Prometheus text with the network
//! layer's and the handler's metrics), on its own address.

mod serve_support;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serve_support::*;

async fn get(addr: std::net::SocketAddr, path: &str) -> RawResponse {
    let mut conn = tcp(addr).await;
    conn.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .expect("send");
    conn.response().await.expect(path)
}

#[tokio::test]
async fn healthz_and_readyz() {
    let handler = Arc::new(TestHandler::decoding());
    let server = start(test_config(), None, Arc::clone(&handler)).await;
    let r = get(server.admin, "/healthz").await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    let r = get(server.admin, "/readyz").await;
    assert_eq!(r.status, 200);
    // The store became unreachable: not ready, but still healthy.
    handler.ready.store(false, Ordering::SeqCst);
    let r = get(server.admin, "/readyz").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.text().lines().count(), 1);
    assert_eq!(get(server.admin, "/healthz").await.status, 200);
    handler.ready.store(true, Ordering::SeqCst);
    assert_eq!(get(server.admin, "/readyz").await.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn admin_routes_are_separate_from_cups() {
    let server = start(test_config(), None, Arc::new(TestHandler::decoding())).await;
    assert_ne!(server.admin, server.addr);
    assert_eq!(get(server.admin, "/update-info").await.status, 404);
    assert_eq!(get(server.admin, "/").await.status, 404);
    assert_eq!(get(server.addr, "/healthz").await.status, 404);
    let mut conn = tcp(server.admin).await;
    conn.send(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await
        .expect("send");
    let r = conn.response().await.expect("response");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    server.stop().await;
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_latency_connections_and_handshake_failures() {
    let pki = TestPki::new(KeyKind::EcdsaP256);
    let handler = Arc::new(TestHandler::decoding());
    let server = start(
        test_config(),
        Some(pki.server_config()),
        Arc::clone(&handler),
    )
    .await;

    // Two good requests, one malformed, one refused certificate.
    let client = pki.gateway_ca.client(EUI);
    for body in [
        vector("requests/first-contact.json"),
        vector("requests/steady-state.json"),
        b"{not json".to_vec(),
    ] {
        let tls = tls_connect(server.addr, pki.client_config(Some(&client), BOTH))
            .await
            .expect("handshake");
        let mut conn = RawConn::new(tls);
        conn.send(&station_request(&body, "")).await.expect("send");
        conn.response().await.expect("response");
    }
    let foreign = Ca::new("Other CA").client(EUI);
    let cfg = pki.client_config(Some(&foreign), &[&rustls::version::TLS12]);
    assert!(tls_connect(server.addr, cfg).await.is_err());
    let m = Arc::clone(&server.metrics);
    assert!(eventually(|| m.tls_handshake_failures.get() == 1).await);
    // An open connection shows in the gauge.
    let _open = tls_connect(server.addr, pki.client_config(Some(&client), BOTH))
        .await
        .expect("handshake");
    assert!(eventually(|| m.connections_open.get() == 1).await);

    let r = get(server.admin, "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text();
    let want = [
        ("cups_update_info_requests_total{status=\"200\"}", 2.0),
        ("cups_update_info_requests_total{status=\"400\"}", 1.0),
        ("cups_update_info_requests_total{status=\"413\"}", 0.0),
        ("cups_update_info_duration_seconds_count", 3.0),
        ("cups_update_info_duration_seconds_bucket{le=\"+Inf\"}", 3.0),
        ("cups_tls_handshake_failures_total", 1.0),
        ("cups_connections_accepted_total", 5.0),
        ("cups_connections_open", 1.0),
        ("test_handler_metric", 7.0),
    ];
    for (series, value) in want {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    for family in [
        "cups_update_info_duration_seconds histogram",
        "cups_connections_open gauge",
        "cups_tls_handshake_timeouts_total counter",
        "cups_updates_streamed_total counter",
    ] {
        assert!(text.contains(&format!("# TYPE {family}\n")), "{family}");
    }
    server.stop().await;
}
