//! S3-store specifics: bounded failure when the store is unreachable or hangs, bucket checks,
//! prefixes, and several instances (servers) on one bucket.

mod store_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cups_host_server::store::s3::{S3_OP_TIMEOUT, S3Store, S3Timeouts};
use cups_host_server::store::{PutMode, Store, StoreError};
use futures_util::StreamExt;

type Op<'a> = std::pin::Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// Every operation, each of which must fail with a backend error within `limit`.
async fn assert_all_fail_within(store: &S3Store, limit: Duration) {
    let ops: Vec<(&str, Op<'_>)> = vec![
        ("get", Box::pin(async { store.get("k").await.map(|_| ()) })),
        (
            "get_stream",
            Box::pin(async { store.get_stream("k").await.map(|_| ()) }),
        ),
        (
            "put",
            Box::pin(async {
                store
                    .put("k", Bytes::from_static(b"x"), PutMode::Create)
                    .await
                    .map(|_| ())
            }),
        ),
        ("delete", Box::pin(store.delete("k"))),
        (
            "list",
            Box::pin(async { store.list("gateways/").await.map(|_| ()) }),
        ),
        ("ping", Box::pin(store.ping())),
    ];
    // Concurrently: each is timed on its own, and the test stays short.
    let results = futures_util::future::join_all(ops.into_iter().map(|(name, op)| async move {
        let t = Instant::now();
        let r = op.await;
        (name, r, t.elapsed())
    }))
    .await;
    for (name, r, took) in results {
        assert!(
            matches!(r, Err(StoreError::Backend { .. })),
            "{name}: {r:?}"
        );
        assert!(took < limit, "{name} took {took:?}, limit {limit:?}");
        eprintln!(
            "{name}: failed after {took:?}: {}",
            r.err().map(|e| e.to_string()).unwrap_or_default()
        );
    }
}

#[tokio::test]
async fn unreachable_store_fails_fast() {
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let store = S3Store::new(store_support::s3_config(&endpoint, "nobucket")).expect("client");
    assert!(S3_OP_TIMEOUT <= Duration::from_secs(5));
    assert_all_fail_within(&store, S3_OP_TIMEOUT).await;
}

#[tokio::test]
async fn hanging_store_fails_within_the_budget() {
    // Accepts connections, reads, never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let sink = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            if let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        }
    });
    let timeouts = S3Timeouts {
        op: Duration::from_millis(600),
        ..S3Timeouts::default()
    };
    let store =
        S3Store::with_timeouts(store_support::s3_config(&endpoint, "b"), timeouts).expect("client");
    assert_all_fail_within(&store, Duration::from_millis(1500)).await;
    sink.abort();
}

#[tokio::test]
async fn ping_needs_the_bucket() {
    let Some((endpoint, _, store)) = store_support::fresh_s3("ping").await else {
        return;
    };
    store.ping().await.expect("bucket exists");
    let missing =
        S3Store::new(store_support::s3_config(&endpoint, "cups-no-such-bucket")).expect("client");
    assert!(matches!(
        missing.ping().await,
        Err(StoreError::Backend { .. })
    ));
}

#[tokio::test]
async fn prefixes_share_a_bucket() {
    let Some((endpoint, bucket, plain)) = store_support::fresh_s3("prefix").await else {
        return;
    };
    let with = |p: &str| {
        let mut c = store_support::s3_config(&endpoint, &bucket);
        c.prefix = Some(p.to_owned());
        S3Store::new(c).expect("client")
    };
    let (a, b) = (with("site-a"), with("site-b/"));
    a.put("gateways/x.json", Bytes::from_static(b"a"), PutMode::Create)
        .await
        .expect("put a");
    b.put("gateways/x.json", Bytes::from_static(b"b"), PutMode::Create)
        .await
        .expect("put b: another prefix, another object");
    assert_eq!(
        &a.get("gateways/x.json")
            .await
            .expect("get")
            .expect("a")
            .bytes[..],
        b"a"
    );
    assert_eq!(
        &b.get("gateways/x.json")
            .await
            .expect("get")
            .expect("b")
            .bytes[..],
        b"b"
    );
    assert_eq!(
        a.list("gateways/").await.expect("list"),
        ["gateways/x.json"]
    );
    assert_eq!(a.list("").await.expect("list"), ["gateways/x.json"]);
    // Without a prefix the bucket shows both, under their prefixes.
    assert_eq!(
        plain.list("").await.expect("list"),
        ["site-a/gateways/x.json", "site-b/gateways/x.json"]
    );
    b.ping().await.expect("ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_one_bucket_one_winner() {
    let Some((endpoint, bucket, first)) = store_support::fresh_s3("two").await else {
        return;
    };
    let second = S3Store::new(store_support::s3_config(&endpoint, &bucket)).expect("client");
    let stores: [Arc<dyn Store>; 2] = [Arc::new(first), Arc::new(second)];
    let k = "gateways/0016c001ff10a235.json";
    let winner = store_support::create_race_on_two_instances(&stores, k).await;
    // The losers re-read and serve the winner's set (checked whole by the helper), streamed
    // too, with the ETag the winner got.
    for s in &stores {
        let st = s.get_stream(k).await.expect("stream").expect("present");
        assert_eq!(st.etag, winner.1);
        let body: Vec<u8> = st.chunks.map(|c| c.expect("chunk").to_vec()).concat().await;
        assert_eq!(body, winner.0);
    }
}
