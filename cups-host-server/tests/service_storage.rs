//! Storage trouble and races: an authenticated gateway whose state cannot be read or written
//! gets 200 "nothing to do" (counted), never half-written state; concurrent first requests on
//! two instances end with one credential set that every response carries.

mod service_support;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use cups_core::crc::crc32;
use cups_host_server::service::{GatewaySpec, MetricsSnapshot, RequestOutcome, Service};
use cups_host_server::store::fs::FsStore;
use cups_host_server::store::memory::MemoryStore;
use cups_host_server::store::{ETag, Object, ObjectStream, PutMode, Store, StoreError, keys};
use service_support::*;

fn flaky_fixture() -> (Fixture, Arc<FlakyStore>) {
    let (tmp, paths, pki, factory) = fresh_pki();
    let flaky = Arc::new(FlakyStore::new(Arc::new(MemoryStore::new())));
    let store: Arc<dyn Store> = flaky.clone();
    (
        Fixture::over(tmp, paths, pki, factory, store, settings()),
        flaky,
    )
}

#[tokio::test]
async fn unreadable_store_answers_no_change_and_counts() {
    let (f, flaky) = flaky_fixture();
    f.service
        .register_gateway(GatewaySpec::new(eui()), now())
        .await
        .unwrap();
    let rec = f.service.issue_credentials(eui(), now()).await.unwrap();
    let cert = blob_cert(&rec.cups_cred.unwrap().current.blob);

    flaky.set(true, false);
    assert!(!f.service.ready().await);
    // Own certificate: record unreadable.
    let d = decode(
        f.service
            .update_info(with_cert(&cert, vector_body("first-contact")), now())
            .await,
    )
    .await;
    assert!(d.is_no_change());
    // Token: index unreadable.
    let d = decode(
        f.service
            .update_info(
                with_token("some-token", vector_body("first-contact")),
                now(),
            )
            .await,
    )
    .await;
    assert!(d.is_no_change());
    // Bootstrap token: record unreadable.
    let d = decode(
        f.service
            .update_info(
                with_token(BOOTSTRAP_TOKEN, vector_body("first-contact")),
                now(),
            )
            .await,
    )
    .await;
    assert!(d.is_no_change());
    let m = f.service.metrics();
    assert_eq!(m.requests(RequestOutcome::StorageFallback), 3);
    assert_eq!(m.snapshot().storage_errors, 3);
    // Failures that need no store stay failures.
    let (status, _) = rejected(
        &f.service
            .update_info(anonymous(vector_body("first-contact")), now())
            .await,
    );
    assert_eq!(status, 401);

    flaky.set(false, false);
    assert!(f.service.ready().await);
    let d = decode(
        f.service
            .update_info(with_cert(&cert, vector_body("first-contact")), now())
            .await,
    )
    .await;
    assert!(d.cups_cred.is_some());
}

#[tokio::test]
async fn unwritable_store_never_sends_unstored_credentials() {
    let (f, flaky) = flaky_fixture();
    f.service
        .register_gateway(GatewaySpec::new(eui()), now())
        .await
        .unwrap();
    flaky.set(false, true);
    // First contact needs minting: the write fails, nothing is sent.
    let d = decode(
        f.service
            .update_info(
                with_token(BOOTSTRAP_TOKEN, vector_body("first-contact")),
                now(),
            )
            .await,
    )
    .await;
    assert!(d.is_no_change(), "{d:?}");
    assert_eq!(f.service.metrics().snapshot().storage_errors, 1);
    assert_eq!(f.service.metrics().snapshot().credentials_minted, 0);
    flaky.set(false, false);
    let rec = f.service.get_gateway(eui()).await.unwrap();
    assert!(rec.cups_cred.is_none() && rec.tc_cred.is_none());

    // Store back: minted, stored, sent — what is sent is what is stored.
    let d = decode(
        f.service
            .update_info(
                with_token(BOOTSTRAP_TOKEN, vector_body("first-contact")),
                now(),
            )
            .await,
    )
    .await;
    let rec = f.service.get_gateway(eui()).await.unwrap();
    assert_eq!(d.cups_cred.unwrap(), rec.cups_cred.unwrap().current.blob);
    assert_eq!(d.tc_cred.unwrap(), rec.tc_cred.unwrap().current.blob);
}

/// Number of concurrent first requests in the race tests.
const RACERS: usize = 50;

/// A store wrapper that holds the results of the first `RACERS` reads of one key until all of
/// them were made: every racer reads the record before any of them can write it, so the race
/// is certain.
#[derive(Debug)]
struct StartLine {
    inner: Arc<dyn Store>,
    key: String,
    gate: Arc<Gate>,
}

/// Shared by the store handles of both instances.
#[derive(Debug)]
struct Gate {
    arrived: std::sync::atomic::AtomicUsize,
    barrier: tokio::sync::Barrier,
}

#[async_trait::async_trait]
impl Store for StartLine {
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        let read = self.inner.get(key).await;
        if key == self.key && self.gate.arrived.fetch_add(1, Ordering::SeqCst) < RACERS {
            self.gate.barrier.wait().await;
        }
        read
    }
    async fn get_stream(&self, key: &str) -> Result<Option<ObjectStream>, StoreError> {
        self.inner.get_stream(key).await
    }
    async fn put(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<ETag, StoreError> {
        self.inner.put(key, bytes, mode).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

/// `RACERS` concurrent first requests for one gateway on two service instances over `shared`
/// (each instance with its own handle, as two processes would have).
async fn race(shared: [Arc<dyn Store>; 2], f: &Fixture) {
    let register = Service::new(Arc::clone(&shared[0]), Arc::clone(&f.pki), settings()).unwrap();
    register
        .register_gateway(GatewaySpec::new(eui()), now())
        .await
        .unwrap();
    let gate = Arc::new(Gate {
        arrived: std::sync::atomic::AtomicUsize::new(0),
        barrier: tokio::sync::Barrier::new(RACERS),
    });
    let services = shared.map(|inner| {
        let gated: Arc<dyn Store> = Arc::new(YieldingStore(Arc::new(StartLine {
            inner,
            key: keys::gateway(eui()),
            gate: Arc::clone(&gate),
        })));
        Arc::new(Service::new(gated, Arc::clone(&f.pki), settings()).unwrap())
    });
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let svc = Arc::clone(&services[i % 2]);
        tasks.push(tokio::spawn(async move {
            let out = svc
                .update_info(
                    with_token(BOOTSTRAP_TOKEN, vector_body("first-contact")),
                    now(),
                )
                .await;
            decode(out).await
        }));
    }
    let mut responses = Vec::new();
    for t in tasks {
        responses.push(t.await.expect("task"));
    }
    let rec = register.get_gateway(eui()).await.unwrap();
    let cups = rec.cups_cred.as_ref().unwrap();
    let tc = rec.tc_cred.as_ref().unwrap();
    assert!(
        cups.previous.is_none() && tc.previous.is_none(),
        "one credential set"
    );
    for d in &responses {
        assert_eq!(d.cups_cred.as_deref(), Some(&cups.current.blob[..]));
        assert_eq!(d.tc_cred.as_deref(), Some(&tc.current.blob[..]));
    }
    assert_eq!(crc32(&cups.current.blob), cups.current.crc);
    let sum = |f: fn(&MetricsSnapshot) -> u64| {
        services
            .iter()
            .map(|s| f(&s.metrics().snapshot()))
            .sum::<u64>()
    };
    // Exactly one CUPS and one TC credential were stored across both instances; every other
    // racer lost its conditional write once, re-read, and served the winner's.
    assert_eq!(sum(|m| m.credentials_minted), 2);
    assert_eq!(sum(|m| m.write_conflicts), RACERS as u64 - 1);
    assert_eq!(sum(|m| m.storage_errors), 0);
    let updated: u64 = services
        .iter()
        .map(|s| s.metrics().requests(RequestOutcome::Updated))
        .sum();
    assert_eq!(updated, RACERS as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_first_requests_on_two_instances_memory() {
    let f = Fixture::new(Backend::Memory);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    race([Arc::clone(&store), store], &f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_first_requests_on_two_instances_fs() {
    let f = Fixture::new(Backend::Fs);
    // Two handles on one directory, as two server processes sharing it.
    let dir = f.tmp.path().join("race");
    race(
        [
            Arc::new(FsStore::open(dir.clone()).unwrap()),
            Arc::new(FsStore::open(dir).unwrap()),
        ],
        &f,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_first_requests_on_two_instances_s3() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let bucket = s3_bucket(&endpoint, "svc-race").await;
    let f = Fixture::new(Backend::Memory);
    race(
        [s3_store(&endpoint, &bucket), s3_store(&endpoint, &bucket)],
        &f,
    )
    .await;
}

#[tokio::test]
async fn life_cycle_on_s3() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let bucket = s3_bucket(&endpoint, "svc-flow").await;
    let (tmp, paths, pki, factory) = fresh_pki();
    let f = Fixture::over(
        tmp,
        paths,
        pki,
        factory,
        s3_store(&endpoint, &bucket),
        settings(),
    );
    assert!(f.service.ready().await);
    f.service
        .register_gateway(GatewaySpec::new(eui()), now())
        .await
        .unwrap();
    let d = decode(
        f.service
            .update_info(
                with_token(BOOTSTRAP_TOKEN, vector_body("first-contact")),
                now(),
            )
            .await,
    )
    .await;
    let cups = d.cups_cred.expect("CUPS blob");
    let tc = d.tc_cred.expect("TC blob");
    let quiet = body(
        "first-contact",
        &Report {
            cups_crc: Some(crc32(&cups)),
            tc_crc: Some(crc32(&tc)),
            tc_uri: Some(Some(TC_URI.to_owned())),
            ..Report::default()
        },
    );
    let d = decode(
        f.service
            .update_info(with_cert(&blob_cert(&cups), quiet), now())
            .await,
    )
    .await;
    assert!(d.is_no_change());
    let rec = f.service.get_gateway(eui()).await.unwrap();
    assert!(rec.own_creds_used_at.is_some());
    assert!(rec.cups_cred.unwrap().current.confirmed_at.is_some());
    f.service.remove_gateway(eui()).await.unwrap();
    assert!(f.service.list_gateways().await.unwrap().is_empty());
}
