//! The HTTP layer of the CUPS listener (plain HTTP, `--insecure-http`, so every byte on the
//! wire is the test's): the station's exact requests, routing, Content-Length rules, the
//! body limit, timeouts, keep-alive, the connection limit, streamed updates and graceful
//! shutdown.

mod serve_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cups_core::response::{NO_CHANGE, ResponseParts, encode_head};
use cups_host_server::serve::{MAX_BODY_LEN, ServeConfig};
use cups_host_server::service::{Outcome, PeerIdentity};
use cups_host_server::store::{ETag, ObjectStream, StoreError};
use futures_util::stream;
use serve_support::*;

async fn plain(config: ServeConfig, handler: TestHandler) -> (Running, Arc<TestHandler>) {
    let handler = Arc::new(handler);
    (start(config, None, Arc::clone(&handler)).await, handler)
}

#[tokio::test]
async fn station_vectors_with_space_padded_content_length() {
    let (server, handler) = plain(test_config(), TestHandler::decoding()).await;
    for (name, request, body) in station_requests() {
        assert!(
            request.windows(18).any(|w| w == b"Content-Length:   "),
            "{name}: the vector has the station's padding"
        );
        let mut conn = tcp(server.addr).await;
        conn.send(&request).await.expect("send");
        let resp = conn.response().await.expect(name);
        assert_eq!(resp.status, 200, "{name}: {}", resp.text());
        assert_eq!(resp.content_length(), Some(14), "{name}");
        assert_eq!(resp.body, NO_CHANGE, "{name}");
        assert!(decode_cups(&resp.body).is_empty());
        let seen = handler.take_last().expect("handled");
        assert_eq!(seen.body.as_ref(), body.as_slice(), "{name}: exact body");
        assert_eq!(seen.peer, PeerIdentity::Anonymous);
        // The station closes after one response; the server must not answer anything else.
        drop(conn);
    }
    assert_eq!(handler.seen().len(), 0);
    server.stop().await;
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let (server, handler) = plain(test_config(), TestHandler::decoding()).await;
    let mut conn = tcp(server.addr).await;
    for (name, request, _) in station_requests() {
        conn.send(&request).await.expect("send");
        let resp = conn.response().await.expect(name);
        assert_eq!(resp.status, 200, "{name}");
        assert_ne!(resp.header("connection"), Some("close"));
    }
    assert_eq!(server.metrics.connections_accepted.get(), 1);
    assert_eq!(handler.seen.lock().map(|s| s.len()).ok(), Some(4));
    server.stop().await;
}

#[tokio::test]
async fn other_paths_and_methods() {
    let (server, handler) = plain(test_config(), TestHandler::decoding()).await;
    for (req, status) in [
        ("GET /update-info HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (
            "PUT /update-info HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            405,
        ),
        (
            "POST /update HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            404,
        ),
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        ("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    ] {
        let mut conn = tcp(server.addr).await;
        conn.send(req.as_bytes()).await.expect("send");
        let resp = conn.response().await.expect(req);
        assert_eq!(resp.status, status, "{req}");
        assert!(resp.text().ends_with('\n') && resp.text().lines().count() == 1);
        if status == 405 {
            assert_eq!(resp.header("allow"), Some("POST"));
        }
    }
    // The query string is ignored.
    let (_, request, _) = station_requests().remove(0);
    let request = String::from_utf8(request).expect("ASCII").replacen(
        "/update-info ",
        "/update-info?x=1 ",
        1,
    );
    let mut conn = tcp(server.addr).await;
    conn.send(request.as_bytes()).await.expect("send");
    assert_eq!(conn.response().await.expect("response").status, 200);
    assert_eq!(handler.seen().len(), 1);
    assert_eq!(server.metrics.other_requests.get("404"), 3);
    assert_eq!(server.metrics.other_requests.get("405"), 2);
    server.stop().await;
}

#[tokio::test]
async fn missing_content_length_is_411() {
    let (server, handler) = plain(test_config(), TestHandler::decoding()).await;
    let mut conn = tcp(server.addr).await;
    conn.send(
        b"POST /update-info HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\r\n",
    )
    .await
    .expect("send");
    let resp = conn.response().await.expect("response");
    assert_eq!(resp.status, 411);
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(conn.closed_within(Duration::from_secs(5)).await);
    assert!(handler.seen().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn chunked_request_body_is_411() {
    let (server, handler) = plain(test_config(), TestHandler::decoding()).await;
    let mut conn = tcp(server.addr).await;
    conn.send(
        b"POST /update-info HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n",
    )
    .await
    .expect("send");
    let resp = conn.response().await.expect("response");
    assert_eq!(resp.status, 411, "{}", resp.text());
    assert!(conn.closed_within(Duration::from_secs(5)).await);
    assert!(handler.seen().is_empty());
    assert_eq!(server.metrics.update_info_requests.get("411"), 1);
    server.stop().await;
}

#[tokio::test]
async fn content_length_that_is_not_a_number_is_400() {
    let (server, handler) = plain(test_config(), TestHandler::decoding()).await;
    for value in ["  -5", "12a", "1, 2"] {
        let mut conn = tcp(server.addr).await;
        conn.send(
            format!("POST /update-info HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("send");
        let resp = conn.response().await.expect(value);
        assert_eq!(resp.status, 400, "{value:?}");
    }
    assert!(handler.seen().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn authorization_that_is_not_visible_ascii_is_400() {
    let (server, handler) = plain(test_config(), TestHandler::decoding()).await;
    let (_, request, _) = station_requests().remove(0);
    let mut request = with_headers(&request, "Authorization: Bearer \r\n");
    let at = request
        .windows(7)
        .position(|w| w == b"Bearer ")
        .expect("header")
        + 7;
    request.insert(at, 0xff);
    let mut conn = tcp(server.addr).await;
    conn.send(&request).await.expect("send");
    let resp = conn.response().await.expect("response");
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(handler.seen().is_empty());
    server.stop().await;
}

/// A body of `len` bytes: valid JSON (the first-contact request) padded with spaces.
fn padded_body(len: usize) -> Vec<u8> {
    let mut body = vector("requests/first-contact.json");
    assert!(body.len() <= len);
    body.resize(len, b' ');
    body
}

#[tokio::test]
async fn body_limit_at_below_and_above() {
    let (server, handler) = plain(test_config(), TestHandler::decoding()).await;
    for len in [MAX_BODY_LEN - 1, MAX_BODY_LEN] {
        let mut conn = tcp(server.addr).await;
        conn.send(&station_request(&padded_body(len), ""))
            .await
            .expect("send");
        let resp = conn.response().await.expect("response");
        // Whether cups-core accepts the padding is the handler's business: it got the body.
        assert!(matches!(resp.status, 200 | 400), "{len}: {}", resp.text());
        assert_eq!(handler.take_last().map(|r| r.body.len()), Some(len));
    }
    for len in [MAX_BODY_LEN + 1, 9 * 1024] {
        let mut conn = tcp(server.addr).await;
        conn.send(&station_request(&padded_body(len), ""))
            .await
            .expect("send");
        let resp = conn.response().await.expect("response");
        assert_eq!(resp.status, 413, "{len}: {}", resp.text());
        assert!(resp.text().contains(&len.to_string()));
        assert!(conn.closed_within(Duration::from_secs(5)).await);
    }
    assert_eq!(handler.seen().len(), 0);
    assert_eq!(server.metrics.update_info_requests.get("413"), 2);
    server.stop().await;
}

#[tokio::test]
async fn malformed_json_reaches_the_handler_which_decides() {
    let (server, handler) = plain(test_config(), TestHandler::decoding()).await;
    let mut conn = tcp(server.addr).await;
    conn.send(&station_request(
        br#"{"router":"16:c001:ff10:a235","cupsUri":"#,
        "",
    ))
    .await
    .expect("send");
    let resp = conn.response().await.expect("response");
    assert_eq!(resp.status, 400);
    assert!(resp.text().starts_with("malformed update-info request"));
    assert_eq!(resp.text().lines().count(), 1);
    assert_eq!(handler.seen().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn reject_is_the_status_and_one_line_of_text() {
    let handler = TestHandler::with_reply(|_| Outcome::Reject {
        status: 403,
        reason: "client certificate is for gateway 0016c001ff10a236\r\nnot 0016c001ff10a235".into(),
    });
    let (server, _) = plain(test_config(), handler).await;
    let mut conn = tcp(server.addr).await;
    let (_, request, _) = station_requests().remove(0);
    conn.send(&request).await.expect("send");
    let resp = conn.response().await.expect("response");
    assert_eq!(resp.status, 403);
    assert_eq!(
        resp.text(),
        "client certificate is for gateway 0016c001ff10a236  not 0016c001ff10a235\n"
    );
    assert!(
        resp.header("content-type")
            .unwrap_or("")
            .starts_with("text/plain")
    );
    server.stop().await;
}

#[tokio::test]
async fn content_length_shorter_than_the_body() {
    let (server, handler) = plain(test_config(), TestHandler::decoding()).await;
    let (_, request, body) = station_requests().remove(0);
    let request = String::from_utf8(request).expect("ASCII").replace(
        &format!("Content-Length:   {}", body.len()),
        "Content-Length:    10",
    );
    let mut conn = tcp(server.addr).await;
    conn.send(request.as_bytes()).await.expect("send");
    // The handler gets exactly the 10 announced bytes and calls them malformed.
    let resp = conn.response().await.expect("response");
    assert_eq!(resp.status, 400);
    assert_eq!(
        handler.take_last().map(|r| r.body),
        Some(Bytes::copy_from_slice(&body[..10]))
    );
    // The rest is not a request: the connection ends (after hyper's 400) instead of hanging.
    let start = Instant::now();
    while let Ok(r) = conn.response().await {
        assert_eq!(r.status, 400);
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(handler.seen().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn content_length_longer_than_the_body_times_out_with_408() {
    let mut config = test_config();
    config.body_read_timeout = Duration::from_millis(300);
    let (server, handler) = plain(config, TestHandler::decoding()).await;
    let (_, request, body) = station_requests().remove(0);
    let request = String::from_utf8(request).expect("ASCII").replace(
        &format!("Content-Length:   {}", body.len()),
        "Content-Length:   300",
    );
    let mut conn = tcp(server.addr).await;
    let start = Instant::now();
    conn.send(request.as_bytes()).await.expect("send");
    let resp = conn.response().await.expect("response");
    let took = start.elapsed();
    assert_eq!(resp.status, 408);
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(conn.closed_within(Duration::from_secs(5)).await);
    assert!(handler.seen().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn slow_headers_close_the_connection_after_the_header_timeout() {
    let mut config = test_config();
    config.header_read_timeout = Duration::from_millis(300);
    let (server, handler) = plain(config, TestHandler::decoding()).await;
    // A head that never completes.
    let mut conn = tcp(server.addr).await;
    let start = Instant::now();
    conn.send(b"POST /update-info HTTP/1.1\r\nHost: localhost\r\nContent-Le")
        .await
        .expect("send");
    assert!(conn.closed_within(Duration::from_secs(5)).await);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // An idle keep-alive connection ends the same way after its response.
    let mut conn = tcp(server.addr).await;
    let (_, request, _) = station_requests().remove(0);
    conn.send(&request).await.expect("send");
    assert_eq!(conn.response().await.expect("response").status, 200);
    let start = Instant::now();
    assert!(conn.closed_within(Duration::from_secs(5)).await);
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(handler.seen().len(), 1);
    server.stop().await;
}

/// The update: 256 distinct 64 KiB chunks (a pseudo-random block with the chunk index in
/// front), built once.
fn update_chunks() -> Arc<Vec<Bytes>> {
    static DATA: std::sync::OnceLock<Arc<Vec<Bytes>>> = std::sync::OnceLock::new();
    Arc::clone(DATA.get_or_init(|| {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut block = Vec::with_capacity(CHUNK_LEN);
        while block.len() < CHUNK_LEN {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            block.extend_from_slice(&x.to_le_bytes());
        }
        let chunks = (0..CHUNKS)
            .map(|i: u64| {
                let mut c = block.clone();
                c[..8].copy_from_slice(&i.to_le_bytes());
                Bytes::from(c)
            })
            .collect();
        Arc::new(chunks)
    }))
}

const UPDATE_LEN: u64 = 16 * 1024 * 1024;
const CHUNK_LEN: usize = 64 * 1024;
const CHUNKS: u64 = UPDATE_LEN / CHUNK_LEN as u64;

fn update_head() -> Bytes {
    let parts = ResponseParts {
        update_len: UPDATE_LEN as u32,
        ..ResponseParts::default()
    };
    let mut buf = [0u8; 64];
    let head = encode_head(&parts, &mut buf).expect("head");
    assert_eq!(head.body_len, head.head_len as u64 + UPDATE_LEN);
    Bytes::copy_from_slice(&buf[..head.head_len])
}

/// A handler streaming a 16 MiB update; `produced` counts the update bytes pulled so far.
fn streaming_handler(produced: Arc<AtomicU64>, fail_after: Option<u64>) -> TestHandler {
    let head = update_head();
    TestHandler::with_reply(move |_| {
        let produced = Arc::clone(&produced);
        let data = update_chunks();
        let chunks = stream::iter(0..CHUNKS).map(move |i| {
            if fail_after == Some(i) {
                return Err(StoreError::Backend {
                    key: "firmware/fw-1/image".into(),
                    source: "disk on fire".into(),
                });
            }
            produced.fetch_add(CHUNK_LEN as u64, Ordering::SeqCst);
            Ok(data[i as usize].clone())
        });
        Outcome::Respond {
            head: head.clone(),
            content_length: head.len() as u64 + UPDATE_LEN,
            update: Some(ObjectStream {
                len: UPDATE_LEN,
                etag: ETag("fw-1".into()),
                chunks: Box::pin(chunks),
            }),
        }
    })
}

use futures_util::StreamExt as _;

#[tokio::test]
async fn a_16_mib_update_streams_intact_with_the_right_content_length() {
    let produced = Arc::new(AtomicU64::new(0));
    let (server, _) = plain(
        test_config(),
        streaming_handler(Arc::clone(&produced), None),
    )
    .await;
    let head = update_head();

    let mut conn = tcp(server.addr).await;
    let (_, request, _) = station_requests().remove(0);
    conn.send(&request).await.expect("send");
    // Read the head of the HTTP response and a little of the body, then stall: the server
    // must not pull the whole image from the store (it streams, bounded by socket buffers).
    let mut first = [0u8; 4096];
    tokio::io::AsyncReadExt::read_exact(&mut conn.stream, &mut first)
        .await
        .expect("first bytes");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pulled = produced.load(Ordering::SeqCst);
    assert!(
        pulled < UPDATE_LEN,
        "the whole update was buffered ({pulled} bytes pulled)"
    );

    // Put the bytes back in front and read the rest as a normal response.
    conn.unread(&first);
    let resp = conn.response().await.expect("response");
    assert_eq!(resp.status, 200);
    let want_len = head.len() as u64 + UPDATE_LEN;
    assert_eq!(resp.content_length(), Some(want_len));
    assert_eq!(resp.body.len() as u64, want_len);
    let body = &resp.body;
    let update = decode_cups(body);
    assert_eq!(update.len() as u64, UPDATE_LEN);
    // Byte-for-byte equal to the source (stronger than equal SHA-512 digests, and fast
    // in debug builds, where sha2 hashes 16 MiB in seconds).
    let source = update_chunks();
    assert!(
        update
            .chunks(CHUNK_LEN)
            .eq(source.iter().map(|c| c.as_ref())),
        "the update arrived altered"
    );
    assert_eq!(server.metrics.updates_streamed.get(), 1);
    assert_eq!(server.metrics.update_bytes_sent.get(), UPDATE_LEN);
    server.stop().await;
}

#[tokio::test]
async fn a_failing_update_stream_aborts_the_connection() {
    let produced = Arc::new(AtomicU64::new(0));
    let (server, _) = plain(test_config(), streaming_handler(produced, Some(3))).await;
    let mut conn = tcp(server.addr).await;
    let (_, request, _) = station_requests().remove(0);
    conn.send(&request).await.expect("send");
    // The body ends early: the client can tell (Content-Length) and never sees a
    // complete, wrong response.
    let r = conn.response().await;
    assert!(r.is_err(), "{r:?}");
    let m = Arc::clone(&server.metrics);
    assert!(eventually(|| m.update_stream_errors.get() == 1).await);
    server.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let mut config = test_config();
    config.max_connections = 1;
    let (server, handler) = plain(config, TestHandler::decoding()).await;
    let idle = tcp(server.addr).await;
    let m = Arc::clone(&server.metrics);
    assert!(eventually(|| m.connections_open.get() == 1).await);
    let mut waiting = tcp(server.addr).await;
    let (_, request, _) = station_requests().remove(0);
    waiting.send(&request).await.expect("send");
    // Not served while the only slot is taken...
    let early = tokio::time::timeout(Duration::from_millis(300), waiting.response()).await;
    assert!(early.is_err(), "served beyond the limit: {early:?}");
    assert!(handler.seen().is_empty());
    // ...and served as soon as it frees up.
    drop(idle);
    let resp = waiting.response().await.expect("response");
    assert_eq!(resp.status, 200);
    assert_eq!(server.metrics.connections_accepted.get(), 2);
    server.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_drains_the_request_in_flight() {
    let handler = TestHandler::decoding().with_delay(Duration::from_millis(500));
    let (mut server, handler) = plain(test_config(), handler).await;
    let addr = server.addr;
    let mut idle = tcp(addr).await;
    let mut busy = tcp(addr).await;
    let (_, request, _) = station_requests().remove(0);
    busy.send(&request).await.expect("send");
    tokio::time::timeout(TEST_TIMEOUT, handler.entered.notified())
        .await
        .expect("request in flight");
    server.signal_stop();
    // The in-flight request completes...
    let resp = busy.response().await.expect("drained response");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, NO_CHANGE);
    // ...then its connection closes, the idle one is closed, and run returns.
    assert!(busy.closed_within(Duration::from_secs(5)).await);
    assert!(idle.closed_within(Duration::from_secs(5)).await);
    server.join().await;
    // No longer accepting.
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn drain_is_bounded_by_the_drain_timeout() {
    let mut config = test_config();
    config.drain_timeout = Duration::from_millis(300);
    let handler = TestHandler::decoding().with_delay(Duration::from_secs(60));
    let (mut server, handler) = plain(config, handler).await;
    let mut busy = tcp(server.addr).await;
    let (_, request, _) = station_requests().remove(0);
    busy.send(&request).await.expect("send");
    tokio::time::timeout(TEST_TIMEOUT, handler.entered.notified())
        .await
        .expect("request in flight");
    let start = Instant::now();
    server.signal_stop();
    server.join().await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(busy.response().await.is_err());
}
