//! The conformance suite on every backend: in-memory, filesystem, S3 (moto).

mod store_support;

use std::sync::Arc;

use cups_host_server::store::fs::FsStore;
use cups_host_server::store::memory::MemoryStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_conforms() {
    store_support::conformance(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsStore::open(dir.path().join("data")).expect("open");
    store_support::conformance(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_conforms() {
    let Some((_, _, store)) = store_support::fresh_s3("conf").await else {
        return;
    };
    store_support::conformance(Arc::new(store)).await;
}
