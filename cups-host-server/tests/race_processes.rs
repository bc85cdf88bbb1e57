//! Two server processes on one S3 bucket (issue 3, item 10): one registered gateway that holds
//! only its factory certificate, 50 concurrent first-contact requests split across both
//! processes. Conditional writes must make them agree: every response is 200 and carries the
//! same CUPS and TC credential blobs, and the bucket holds exactly that one credential set.
//!
//! Each server process is the real binary, `cups-server serve --store s3` on 127.0.0.1:0 with
//! the bucket in the replaced system's `S3_*` variables and one shared `--cert-path`; a guard
//! kills both on any failure. Needs
//! moto (`CUPS_TEST_S3_ENDPOINT`; skipped without it unless `CI` is set) and the vectors
//! (`CUPS_VECTORS`).

#[path = "../benches/load_support/mod.rs"]
mod load_support;
mod serve_support;
mod store_support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cups_core::Eui64;
use cups_host_server::model::GatewayRecord;
use cups_host_server::pki::{InitOptions, Pki, PkiPaths, init};
use cups_host_server::service::{GatewaySpec, Service, ServiceSettings};
use cups_host_server::store::s3::S3Store;
use cups_host_server::store::{Store, keys};
use load_support::{BodyCheck, ServerChild};

/// Concurrent first requests.
const REQUESTS: usize = 50;
/// Server processes.
const PROCESSES: usize = 2;
/// Bound on the whole race (process start included).
const RACE_TIMEOUT: Duration = Duration::from_secs(30);

fn settings() -> ServiceSettings {
    ServiceSettings {
        cups_uri: Some(load_support::CUPS_URI.into()),
        tc_uri: Some(load_support::TC_URI.into()),
        ..ServiceSettings::default()
    }
}

#[test]
fn two_server_processes_on_one_bucket_agree_on_one_credential_set() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(RACE_TIMEOUT, race())
            .await
            .expect("the race finishes within its time bound");
    });
}

async fn race() {
    let Some(endpoint) = store_support::s3_endpoint() else {
        return;
    };
    let bucket = store_support::bucket_name("race");
    store_support::create_bucket(&endpoint, &bucket).await;
    let store =
        Arc::new(S3Store::new(store_support::s3_config(&endpoint, &bucket)).expect("S3 store"));

    // One PKI directory for both processes, with a factory (bootstrap) CA.
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let paths = PkiPaths::new(&certs);
    init(&paths, &InitOptions::default()).expect("PKI init");
    let factory = serve_support::Ca::new("Factory CA");
    std::fs::write(paths.bootstrap_ca(), &factory.pem).expect("bootstrap CA");
    let pki = Arc::new(Pki::load(&paths).expect("PKI load"));

    // Register the gateway (no credentials yet: they are minted on first contact).
    let eui = Eui64::parse(serve_support::EUI).expect("EUI");
    let service = Service::new(
        Arc::clone(&store) as Arc<dyn Store>,
        Arc::clone(&pki),
        settings(),
    )
    .expect("service");
    service
        .register_gateway(GatewaySpec::new(eui), time::OffsetDateTime::now_utc())
        .await
        .expect("register");
    drop(service);

    // Two `cups-server serve --store s3` processes on the bucket, sharing the PKI directory.
    let servers: Vec<ServerChild> = (0..PROCESSES)
        .map(|_| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_cups-server"));
            cmd.args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "off"])
                .args(["--store", "s3", "--cert-path"])
                .arg(&certs)
                .current_dir(dir.path())
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("S3_BUCKET_NAME", &bucket)
                .env("S3_BUCKET_ENDPOINT", &endpoint)
                .env("S3_BUCKET_REGION", "us-east-1")
                .env("S3_ACCESS_KEY_ID", "test")
                .env("S3_SECRET_ACCESS_KEY", "test")
                .env("CUPS_URI", load_support::CUPS_URI)
                .env("TC_URI", load_support::TC_URI);
            ServerChild::spawn_marked(cmd, "listening cups https://", Duration::from_secs(15))
        })
        .collect();
    let addrs: Vec<_> = servers.iter().map(|s| s.addr).collect();

    // 50 first-contact requests with the factory certificate, released together.
    let id = factory.client(serve_support::EUI);
    let cfg = load_support::client_config(
        load_support::cups_trust(&pki),
        Some((id.leaf().clone(), id.key())),
        serve_support::BOTH,
    );
    let request = Arc::new(serve_support::vector("requests/first-contact.http"));
    let go = Arc::new(tokio::sync::Barrier::new(REQUESTS));
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let (cfg, request, go) = (Arc::clone(&cfg), Arc::clone(&request), Arc::clone(&go));
            let addr = addrs[i % PROCESSES];
            tokio::spawn(async move {
                go.wait().await;
                let mut check = BodyCheck::default();
                let head = load_support::exchange(addr, cfg, &request, |b| check.feed(b)).await;
                let body = check.finish();
                (i, head, body)
            })
        })
        .collect();
    let mut sets = Vec::new();
    for t in tasks {
        let (i, head, body) = t.await.expect("client task");
        let head = head.unwrap_or_else(|e| panic!("request {i}: {e}"));
        let body = body.unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(
            head.status,
            200,
            "request {i} to process {}: {}",
            i % PROCESSES,
            String::from_utf8_lossy(&body.small_body)
        );
        assert!(
            !body.cups_cred.is_empty(),
            "request {i}: no CUPS credentials"
        );
        assert!(!body.tc_cred.is_empty(), "request {i}: no TC credentials");
        sets.push((i, body.cups_cred, body.tc_cred));
    }
    let (_, cups, tc) = sets[0].clone();
    for (i, c, t) in &sets {
        assert!(
            *c == cups && *t == tc,
            "request {i} (process {}) carries another credential set than request 0",
            i % PROCESSES
        );
    }
    drop(servers);

    // The bucket holds exactly that one set.
    let obj = store
        .get(&keys::gateway(eui))
        .await
        .expect("read record")
        .expect("record exists");
    let record: GatewayRecord = serde_json::from_slice(&obj.bytes).expect("record parses");
    let cups_slot = record.cups_cred.expect("CUPS credentials stored");
    let tc_slot = record.tc_cred.expect("TC credentials stored");
    assert_eq!(cups_slot.current.blob, cups, "stored CUPS blob = served");
    assert_eq!(tc_slot.current.blob, tc, "stored TC blob = served");
    assert!(
        cups_slot.previous.is_none() && tc_slot.previous.is_none(),
        "one credential set: no previous set recorded"
    );
}
