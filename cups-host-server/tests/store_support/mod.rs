//! Shared by the `store_*` integration tests: the conformance suite every backend must pass,
//! and the S3 test-server plumbing (env/skip rule, fresh buckets).
#![allow(dead_code)] // each test crate uses part of this

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cups_host_server::store::s3::{S3Config, S3Store};
use cups_host_server::store::{ETag, MAX_KEY_LEN, MAX_SEGMENT_LEN, PutMode, Store, StoreError};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Concurrent writers in the Create race.
pub(crate) const CREATE_RACERS: usize = 50;
/// Concurrent incrementers in the Update race.
pub(crate) const UPDATE_RACERS: usize = 20;
/// Size of the streamed object.
pub(crate) const STREAM_LEN: usize = 5 * 1024 * 1024;

/// Deterministic pseudo-random bytes (xorshift), so corruption cannot hide in a pattern.
pub(crate) fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn is_invalid_key(r: &Result<impl std::fmt::Debug, StoreError>) -> bool {
    matches!(r, Err(StoreError::InvalidKey { .. }))
}

/// A key of exactly `len` bytes made of segments of at most 100 bytes.
pub(crate) fn key_of_len(len: usize) -> String {
    let mut key = String::new();
    while key.len() < len {
        if !key.is_empty() {
            key.push('/');
        }
        let seg = (len - key.len()).min(100);
        // Never end on a 1-byte segment that could be '.'; letters only.
        key.extend(std::iter::repeat_n('k', seg));
    }
    assert_eq!(key.len(), len);
    key
}

/// The conformance suite: the same observable behaviour from every backend. `store` must be
/// empty.
pub(crate) async fn conformance(store: Arc<dyn Store>) {
    let name = format!("{store:?}");
    get_put_modes(&*store).await;
    create_race(Arc::clone(&store)).await;
    update_race(Arc::clone(&store)).await;
    delete(&*store).await;
    list(&*store).await;
    streaming(&*store).await;
    invalid_keys(&*store).await;
    key_limits(&*store).await;
    store.ping().await.expect("ping");
    eprintln!("conformance passed: {name}");
}

async fn get_put_modes(store: &dyn Store) {
    let k = "modes/obj.json";
    assert!(store.get(k).await.expect("get absent").is_none());
    assert!(store.get_stream(k).await.expect("stream absent").is_none());

    // Overwrite creates, then replaces.
    let e1 = store
        .put(k, Bytes::from_static(b"one"), PutMode::Overwrite)
        .await
        .expect("overwrite new");
    let o = store.get(k).await.expect("get").expect("present");
    assert_eq!((&o.bytes[..], &o.etag), (&b"one"[..], &e1));
    let e2 = store
        .put(k, Bytes::from_static(b"two"), PutMode::Overwrite)
        .await
        .expect("overwrite existing");
    assert_ne!(e1, e2, "new content, new ETag");
    let o = store.get(k).await.expect("get").expect("present");
    assert_eq!((&o.bytes[..], &o.etag), (&b"two"[..], &e2));

    // Create: only when absent.
    let r = store
        .put(k, Bytes::from_static(b"x"), PutMode::Create)
        .await;
    assert!(
        matches!(r, Err(StoreError::AlreadyExists { ref key }) if key == k),
        "{r:?}"
    );
    assert!(r.as_ref().err().is_some_and(StoreError::is_conflict));
    assert_eq!(
        &store.get(k).await.expect("get").expect("present").bytes[..],
        b"two"
    );
    let k2 = "modes/created.json";
    let ec = store
        .put(k2, Bytes::from_static(b"created"), PutMode::Create)
        .await
        .expect("create new");
    let o = store.get(k2).await.expect("get").expect("present");
    assert_eq!((&o.bytes[..], &o.etag), (&b"created"[..], &ec));

    // Update: only with the current ETag.
    let e3 = store
        .put(k, Bytes::from_static(b"three"), PutMode::Update(e2.clone()))
        .await
        .expect("update with the current etag");
    assert_ne!(e3, e2);
    for stale in [e1.clone(), e2.clone(), ETag("\"not-an-etag\"".into())] {
        let r = store
            .put(k, Bytes::from_static(b"lost"), PutMode::Update(stale))
            .await;
        assert!(
            matches!(r, Err(StoreError::Precondition { ref key }) if key == k),
            "{r:?}"
        );
    }
    let o = store.get(k).await.expect("get").expect("present");
    assert_eq!((&o.bytes[..], &o.etag), (&b"three"[..], &e3));
    // Update of an absent object: precondition failed, nothing created.
    let r = store
        .put(
            "modes/absent",
            Bytes::from_static(b"x"),
            PutMode::Update(e3.clone()),
        )
        .await;
    assert!(matches!(r, Err(StoreError::Precondition { .. })), "{r:?}");
    assert!(store.get("modes/absent").await.expect("get").is_none());
    // Empty objects are objects.
    let ee = store
        .put("modes/empty", Bytes::new(), PutMode::Create)
        .await
        .expect("empty");
    let o = store
        .get("modes/empty")
        .await
        .expect("get")
        .expect("present");
    assert!(o.bytes.is_empty());
    assert_eq!(o.etag, ee);
}

async fn create_race(store: Arc<dyn Store>) {
    let k = "race/create.json";
    let barrier = Arc::new(tokio::sync::Barrier::new(CREATE_RACERS));
    let tasks: Vec<_> = (0..CREATE_RACERS)
        .map(|i| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            tokio::spawn(async move {
                let bytes = Bytes::from(format!("writer {i}"));
                barrier.wait().await;
                (bytes.clone(), store.put(k, bytes, PutMode::Create).await)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (bytes, r) = t.await.expect("task");
        match r {
            Ok(etag) => winners.push((bytes, etag)),
            Err(StoreError::AlreadyExists { key }) => assert_eq!(key, k),
            Err(e) => panic!("create race: unexpected {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one Create wins");
    let (bytes, etag) = winners.pop().expect("one");
    let o = store.get(k).await.expect("get").expect("present");
    assert_eq!(
        (o.bytes, o.etag),
        (bytes, etag),
        "the winner's bytes are stored"
    );
}

async fn update_race(store: Arc<dyn Store>) {
    let k = "race/counter";
    store
        .put(k, Bytes::from_static(b"0"), PutMode::Create)
        .await
        .expect("counter");
    let barrier = Arc::new(tokio::sync::Barrier::new(UPDATE_RACERS));
    let tasks: Vec<_> = (0..UPDATE_RACERS)
        .map(|_| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                increment(&*store, k).await
            })
        })
        .collect();
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.expect("task");
    }
    let o = store.get(k).await.expect("get").expect("present");
    assert_eq!(
        &o.bytes[..],
        UPDATE_RACERS.to_string().as_bytes(),
        "no lost update"
    );
    eprintln!("update race: {conflicts} lost attempts retried");
}

/// Read-modify-write a decimal counter with retry on Precondition; returns the retries.
pub(crate) async fn increment(store: &dyn Store, k: &str) -> usize {
    for attempt in 0..1000 {
        let o = store.get(k).await.expect("get").expect("counter present");
        let n: u64 = std::str::from_utf8(&o.bytes)
            .expect("utf8")
            .parse()
            .expect("number");
        // Let the other racers run between the read and the write (the in-memory store
        // never yields on its own).
        tokio::task::yield_now().await;
        match store
            .put(k, Bytes::from((n + 1).to_string()), PutMode::Update(o.etag))
            .await
        {
            Ok(_) => return attempt,
            Err(StoreError::Precondition { .. }) => {
                tokio::time::sleep(Duration::from_millis(attempt as u64 % 7)).await;
            }
            Err(e) => panic!("update race: unexpected {e:?}"),
        }
    }
    panic!("no progress after 1000 attempts");
}

async fn delete(store: &dyn Store) {
    let k = "del/obj";
    store
        .put(k, Bytes::from_static(b"x"), PutMode::Overwrite)
        .await
        .expect("put");
    store.delete(k).await.expect("delete");
    assert!(store.get(k).await.expect("get").is_none());
    assert!(store.get_stream(k).await.expect("get_stream").is_none());
    store.delete(k).await.expect("delete absent is fine");
    // Create works again after a delete.
    store
        .put(k, Bytes::from_static(b"y"), PutMode::Create)
        .await
        .expect("create after delete");
    store.delete(k).await.expect("delete");
}

async fn list(store: &dyn Store) {
    for k in [
        "l/a/x", "l/a/w", "l/a/y/z", "l/ab/q", "l/b/c", "l/a-1", "l/a/y/a",
    ] {
        store
            .put(k, Bytes::from(k.to_owned()), PutMode::Overwrite)
            .await
            .expect("put");
    }
    let ls = |p: &'static str| async move { store.list(p).await.expect("list") };
    assert_eq!(ls("l/a/").await, ["l/a/w", "l/a/x", "l/a/y/a", "l/a/y/z"]);
    assert_eq!(ls("l/ab/").await, ["l/ab/q"]);
    assert_eq!(ls("l/a/y/").await, ["l/a/y/a", "l/a/y/z"]);
    assert_eq!(
        ls("l/").await,
        [
            "l/a-1", "l/a/w", "l/a/x", "l/a/y/a", "l/a/y/z", "l/ab/q", "l/b/c"
        ],
        "sorted bytewise"
    );
    assert!(ls("l/none/").await.is_empty());
    assert!(
        ls("l/a-1/").await.is_empty(),
        "an object is not a directory"
    );
    let all = ls("").await;
    assert!(all.windows(2).all(|w| w[0] < w[1]), "sorted: {all:?}");
    assert!(all.iter().any(|k| k == "l/b/c") && all.iter().any(|k| k == "race/counter"));
    for bad in ["l/a", "/l/", "l//", "l/../", "~x/"] {
        assert!(is_invalid_key(&store.list(bad).await), "prefix {bad:?}");
    }
}

async fn streaming(store: &dyn Store) {
    let k = "stream/blob";
    let data = Bytes::from(pattern(STREAM_LEN, 7));
    let etag = store
        .put(k, data.clone(), PutMode::Overwrite)
        .await
        .expect("put 5 MiB");
    let s = store.get_stream(k).await.expect("stream").expect("present");
    assert_eq!((s.len, &s.etag), (STREAM_LEN as u64, &etag));
    let mut chunks = s.chunks;
    let mut got = Vec::with_capacity(STREAM_LEN);
    let mut n = 0usize;
    while let Some(c) = chunks.next().await {
        let c = c.expect("chunk");
        assert!(!c.is_empty() || STREAM_LEN == 0);
        got.extend_from_slice(&c);
        n += 1;
    }
    assert!(n > 1, "streamed in chunks, got {n}");
    assert!(got == data, "streamed bytes equal the object");
    let o = store.get(k).await.expect("get").expect("present");
    assert!(o.bytes == data && o.etag == etag);
    store.delete(k).await.expect("delete");
}

async fn invalid_keys(store: &dyn Store) {
    let bad = [
        "", "/", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "a b", "a\\b", "ä", "a~b",
        "a:b", "a\0b", "a?b", "a%2fb",
    ];
    for k in bad {
        assert!(is_invalid_key(&store.get(k).await), "get {k:?}");
        assert!(
            is_invalid_key(&store.get_stream(k).await.map(|_| ())),
            "stream {k:?}"
        );
        assert!(
            is_invalid_key(&store.put(k, Bytes::new(), PutMode::Overwrite).await),
            "put {k:?}"
        );
        assert!(
            is_invalid_key(&store.put(k, Bytes::new(), PutMode::Create).await),
            "create {k:?}"
        );
        assert!(is_invalid_key(&store.delete(k).await), "delete {k:?}");
    }
}

async fn key_limits(store: &dyn Store) {
    for len in [MAX_KEY_LEN - 1, MAX_KEY_LEN] {
        let k = key_of_len(len);
        store
            .put(&k, Bytes::from_static(b"ok"), PutMode::Create)
            .await
            .unwrap_or_else(|e| panic!("key of {len} bytes: {e:?}"));
        assert_eq!(
            &store.get(&k).await.expect("get").expect("present").bytes[..],
            b"ok"
        );
        store.delete(&k).await.expect("delete");
    }
    let k = key_of_len(MAX_KEY_LEN + 1);
    assert!(is_invalid_key(
        &store.put(&k, Bytes::new(), PutMode::Overwrite).await
    ));
    assert!(is_invalid_key(&store.get(&k).await));
    for len in [MAX_SEGMENT_LEN - 1, MAX_SEGMENT_LEN] {
        let k = format!("seg/{}", "s".repeat(len));
        store
            .put(&k, Bytes::from_static(b"ok"), PutMode::Create)
            .await
            .unwrap_or_else(|e| panic!("segment of {len} bytes: {e:?}"));
        assert_eq!(store.list("seg/").await.expect("list"), [k.as_str()]);
        store.delete(&k).await.expect("delete");
    }
    let k = format!("seg/{}", "s".repeat(MAX_SEGMENT_LEN + 1));
    assert!(is_invalid_key(
        &store.put(&k, Bytes::new(), PutMode::Overwrite).await
    ));
}

// ---- S3 test server plumbing ----

/// The moto endpoint, or `None` (after printing why) when S3 tests are to be skipped. Under
/// `CI` a missing endpoint fails the test.
pub(crate) fn s3_endpoint() -> Option<String> {
    match std::env::var("CUPS_TEST_S3_ENDPOINT") {
        Ok(e) if !e.is_empty() => Some(e.trim_end_matches('/').to_owned()),
        _ if std::env::var_os("CI").is_some() => {
            panic!("S3 tests need CUPS_TEST_S3_ENDPOINT (scripts/s3-test-server.sh start)")
        }
        _ => {
            eprintln!(
                "skipped: CUPS_TEST_S3_ENDPOINT is unset \
                 (run `scripts/s3-test-server.sh start` and export what it prints)"
            );
            None
        }
    }
}

/// A fresh bucket name.
pub(crate) fn bucket_name(tag: &str) -> String {
    let mut b = [0u8; 6];
    getrandom_fill(&mut b);
    format!("cups-{tag}-{}", hex::encode(b))
}

fn getrandom_fill(b: &mut [u8]) {
    getrandom::fill(b).expect("OS RNG");
}

/// Create a bucket with a plain unauthenticated `PUT /<bucket>` (moto accepts it).
pub(crate) async fn create_bucket(endpoint: &str, bucket: &str) {
    let hostport = endpoint
        .strip_prefix("http://")
        .expect("http endpoint")
        .trim_end_matches('/');
    let mut s = tokio::net::TcpStream::connect(hostport)
        .await
        .expect("connect to S3");
    let req = format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut resp))
        .await
        .expect("bucket creation timed out")
        .expect("read");
    let head = String::from_utf8_lossy(&resp);
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "create bucket {bucket}: {head}"
    );
}

/// The config of the test server for `bucket`.
pub(crate) fn s3_config(endpoint: &str, bucket: &str) -> S3Config {
    S3Config {
        bucket: bucket.to_owned(),
        region: "us-east-1".into(),
        endpoint: Some(endpoint.to_owned()),
        access_key_id: "test".into(),
        secret_access_key: "test".into(),
        allow_http: true,
        prefix: None,
    }
}

/// A store on a fresh bucket, or `None` when S3 tests are skipped.
pub(crate) async fn fresh_s3(tag: &str) -> Option<(String, String, S3Store)> {
    let endpoint = s3_endpoint()?;
    let bucket = bucket_name(tag);
    create_bucket(&endpoint, &bucket).await;
    let store = S3Store::new(s3_config(&endpoint, &bucket)).expect("S3 store");
    Some((endpoint, bucket, store))
}

/// `CREATE_RACERS` tasks spread over two store instances race to `PutMode::Create` key `k`
/// with distinct bytes: exactly one wins, every other gets `AlreadyExists`, and both
/// instances then read the winner's bytes and ETag. Returns the winner.
pub(crate) async fn create_race_on_two_instances(
    stores: &[Arc<dyn Store>; 2],
    k: &'static str,
) -> (Bytes, ETag) {
    let tasks: Vec<_> = (0..CREATE_RACERS)
        .map(|i| {
            let store = Arc::clone(&stores[i % 2]);
            tokio::spawn(async move {
                let bytes = Bytes::from(format!("instance {} writer {i}", i % 2));
                (bytes.clone(), store.put(k, bytes, PutMode::Create).await)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.expect("task") {
            (bytes, Ok(etag)) => winners.push((bytes, etag)),
            (_, Err(StoreError::AlreadyExists { .. })) => {}
            (_, Err(e)) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one Create wins");
    let winner = winners.remove(0);
    for s in stores {
        let o = s.get(k).await.expect("get").expect("present");
        assert_eq!((&o.bytes, &o.etag), (&winner.0, &winner.1));
    }
    winner
}
