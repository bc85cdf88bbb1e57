//! Storage trouble and races: an authenticated gateway whose state cannot be read or written
//! gets 200 "nothing to do" (counted), never half-written state; concurrent first requests on
//! two instances end with one credential set that every response carries.

mod service_support;

use std::sync::Arc;

use cups_core::crc::crc32;
use cups_host_server::service::{GatewaySpec, RequestOutcome, Service};
use cups_host_server::store::Store;
use cups_host_server::store::memory::MemoryStore;
use service_support::*;

fn flaky_fixture() -> (Fixture, Arc<FlakyStore>) {
    let (tmp, paths, pki, factory) = fresh_pki();
    let flaky = Arc::new(FlakyStore::new(Arc::new(MemoryStore::new())));
    let store: Arc<dyn Store> = flaky.clone();
    (Fixture::over(tmp, paths, pki, factory, store, settings()), flaky)
}

#[tokio::test]
async fn unreadable_store_answers_no_change_and_counts() {
    let (f, flaky) = flaky_fixture();
    f.service.register_gateway(GatewaySpec::new(eui()), now()).await.unwrap();
    let rec = f.service.issue_credentials(eui(), now()).await.unwrap();
    let cert = blob_cert(&rec.cups_cred.unwrap().current.blob);

    flaky.set(true, false);
    assert!(!f.service.ready().await);
    // Own certificate: record unreadable.
    let d = decode(f.service.update_info(with_cert(&cert, vector_body("first-contact")), now()).await).await;
    assert!(d.is_no_change());
    // Token: index unreadable.
    let d = decode(f.service.update_info(with_token("some-token", vector_body("first-contact")), now()).await).await;
    assert!(d.is_no_change());
    // Bootstrap token: record unreadable.
    let d = decode(
        f.service
            .update_info(with_token(BOOTSTRAP_TOKEN, vector_body("first-contact")), now())
            .await,
    )
    .await;
    assert!(d.is_no_change());
    let m = f.service.metrics();
    assert_eq!(m.requests(RequestOutcome::StorageFallback), 3);
    assert_eq!(m.snapshot().storage_errors, 3);
    // Failures that need no store stay failures.
    let (status, _) = rejected(&f.service.update_info(anonymous(vector_body("first-contact")), now()).await);
    assert_eq!(status, 401);

    flaky.set(false, false);
    assert!(f.service.ready().await);
    let d = decode(f.service.update_info(with_cert(&cert, vector_body("first-contact")), now()).await).await;
    assert!(d.cups_cred.is_some());
}

#[tokio::test]
async fn unwritable_store_never_sends_unstored_credentials() {
    let (f, flaky) = flaky_fixture();
    f.service.register_gateway(GatewaySpec::new(eui()), now()).await.unwrap();
    flaky.set(false, true);
    // First contact needs minting: the write fails, nothing is sent.
    let d = decode(
        f.service
            .update_info(with_token(BOOTSTRAP_TOKEN, vector_body("first-contact")), now())
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
            .update_info(with_token(BOOTSTRAP_TOKEN, vector_body("first-contact")), now())
            .await,
    )
    .await;
    let rec = f.service.get_gateway(eui()).await.unwrap();
    assert_eq!(d.cups_cred.unwrap(), rec.cups_cred.unwrap().current.blob);
    assert_eq!(d.tc_cred.unwrap(), rec.tc_cred.unwrap().current.blob);
}

/// 50 concurrent first requests for one gateway on two service instances over one store.
async fn race(store: Arc<dyn Store>, f: &Fixture) {
    let a = Arc::new(Service::new(Arc::clone(&store), Arc::clone(&f.pki), settings()).unwrap());
    let b = Arc::new(Service::new(Arc::clone(&store), Arc::clone(&f.pki), settings()).unwrap());
    a.register_gateway(GatewaySpec::new(eui()), now()).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let svc = if i % 2 == 0 { Arc::clone(&a) } else { Arc::clone(&b) };
        tasks.push(tokio::spawn(async move {
            let out = svc
                .update_info(with_token(BOOTSTRAP_TOKEN, vector_body("first-contact")), now())
                .await;
            decode(out).await
        }));
    }
    let mut responses = Vec::new();
    for t in tasks {
        responses.push(t.await.expect("task"));
    }
    let rec = a.get_gateway(eui()).await.unwrap();
    let cups = rec.cups_cred.as_ref().unwrap();
    let tc = rec.tc_cred.as_ref().unwrap();
    assert!(cups.previous.is_none() && tc.previous.is_none(), "one credential set");
    for d in &responses {
        assert_eq!(d.cups_cred.as_deref(), Some(&cups.current.blob[..]));
        assert_eq!(d.tc_cred.as_deref(), Some(&tc.current.blob[..]));
    }
    assert_eq!(crc32(&cups.current.blob), cups.current.crc);
    // Exactly one CUPS and one TC credential were stored across both instances.
    let minted = a.metrics().snapshot().credentials_minted + b.metrics().snapshot().credentials_minted;
    assert_eq!(minted, 2);
    let fallbacks = a.metrics().requests(RequestOutcome::StorageFallback)
        + b.metrics().requests(RequestOutcome::StorageFallback);
    assert_eq!(fallbacks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_first_requests_on_two_instances_memory() {
    let f = Fixture::new(Backend::Memory);
    let store: Arc<dyn Store> = Arc::new(YieldingStore(Arc::new(MemoryStore::new())));
    race(store, &f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_first_requests_on_two_instances_fs() {
    let f = Fixture::new(Backend::Fs);
    let store: Arc<dyn Store> = Arc::new(YieldingStore(service_support::store(Backend::Fs, f.tmp.path())));
    race(store, &f).await;
}
