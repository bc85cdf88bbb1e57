//! Filesystem-store specifics: modes, atomic visibility, independent instances and processes
//! on one root, crash leftovers.

mod store_support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use cups_host_server::store::fs::{DIR_MODE, FILE_MODE, FsStore, TEMP_MAX_AGE};
use cups_host_server::store::{PutMode, Store, StoreError};

fn mode(p: &Path) -> u32 {
    fs::metadata(p).expect("metadata").permissions().mode() & 0o7777
}

/// Every file and directory below `dir` (including lock and temp files).
fn tree(dir: &Path) -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("entry");
        let is_dir = e.file_type().expect("type").is_dir();
        out.push((e.path(), is_dir));
        if is_dir {
            out.extend(tree(&e.path()));
        }
    }
    out
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    tree(dir)
        .into_iter()
        .filter(|(p, d)| !d && p.to_string_lossy().ends_with("~tmp"))
        .map(|(p, _)| p)
        .collect()
}

#[tokio::test]
async fn modes_0700_dirs_0600_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("data");
    let store = FsStore::open(root.clone()).expect("open");
    assert_eq!(store.root(), root);
    store
        .put(
            "gateways/deep/x.json",
            Bytes::from_static(b"{}"),
            PutMode::Create,
        )
        .await
        .expect("put");
    store
        .put("top", Bytes::from_static(b"t"), PutMode::Overwrite)
        .await
        .expect("put");
    assert_eq!(mode(&root), DIR_MODE);
    let all = tree(&root);
    assert!(all.len() >= 6, "{all:?}"); // gateways, deep, x.json, top, ~locks, a lock file
    for (p, is_dir) in all {
        let want = if is_dir { DIR_MODE } else { FILE_MODE };
        assert_eq!(mode(&p), want, "{}", p.display());
    }
    assert_eq!(FILE_MODE, 0o600);
    assert_eq!(DIR_MODE, 0o700);
}

#[tokio::test]
async fn open_tightens_a_loose_root_and_rejects_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("loose");
    fs::create_dir(&root).expect("mkdir");
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod");
    FsStore::open(root.clone()).expect("open");
    assert_eq!(mode(&root), 0o700);
    let file = dir.path().join("file");
    fs::write(&file, b"x").expect("write");
    assert!(matches!(
        FsStore::open(file),
        Err(StoreError::Backend { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_never_see_partial_or_temp_files() {
    const LEN: usize = 256 * 1024;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(FsStore::open(dir.path().join("data")).expect("open"));
    let k = "obj/big";
    let a = Bytes::from(vec![b'a'; LEN]);
    let b = Bytes::from(vec![b'b'; LEN]);
    store.put(k, a.clone(), PutMode::Create).await.expect("put");
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, done, a, b) = (Arc::clone(&store), Arc::clone(&done), a.clone(), b.clone());
        tokio::spawn(async move {
            for i in 0..30 {
                let bytes = if i % 2 == 0 { b.clone() } else { a.clone() };
                store
                    .put(k, bytes, PutMode::Overwrite)
                    .await
                    .expect("overwrite");
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut reads = 0;
    while !done.load(Ordering::SeqCst) {
        let o = store.get(k).await.expect("get").expect("always present");
        assert_eq!(o.bytes.len(), LEN, "never a partial file");
        assert!(o.bytes == a || o.bytes == b, "never a mix");
        assert_eq!(
            store.list("obj/").await.expect("list"),
            [k],
            "no temp files listed"
        );
        assert_eq!(
            store.list("").await.expect("list"),
            [k],
            "no temp or lock files listed"
        );
        reads += 1;
    }
    writer.await.expect("writer");
    assert!(reads > 0);
    assert!(temp_files(store.root()).is_empty(), "temp files cleaned up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_root_race_correctly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("data");
    // Independent instances: separate in-process locks, so only flock excludes them.
    let stores: [Arc<dyn Store>; 2] =
        [0, 1].map(|_| Arc::new(FsStore::open(root.clone()).expect("open")) as Arc<dyn Store>);
    let k = "race/cross.json";
    store_support::create_race_on_two_instances(&stores, k).await;
    // Update race across the instances.
    let c = "race/cross-counter";
    stores[0]
        .put(c, Bytes::from_static(b"0"), PutMode::Create)
        .await
        .expect("counter");
    let tasks: Vec<_> = (0..store_support::UPDATE_RACERS)
        .map(|i| {
            let store = Arc::clone(&stores[i % 2]);
            tokio::spawn(async move { store_support::increment(&*store, c).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let o = stores[1].get(c).await.expect("get").expect("present");
    assert_eq!(
        &o.bytes[..],
        store_support::UPDATE_RACERS.to_string().as_bytes()
    );
}

/// Env var that turns [`cross_process_worker`] into a worker (set by the parent test only).
const WORKER_ENV: &str = "CUPS_FS_STORE_WORKER";
/// Racing writers per worker process.
const WORKER_TASKS: usize = 25;
/// Increments per worker process.
const WORKER_INCREMENTS: usize = 10;

/// The child side of [`cross_process_race`]; a no-op in a normal test run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cross_process_worker() {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return;
    };
    let mut parts = spec.split('|');
    let (Some(root), Some(ctl), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("{WORKER_ENV}=root|control dir|id");
    };
    let (root, ctl) = (PathBuf::from(root), PathBuf::from(ctl));
    let store = Arc::new(FsStore::open(root).expect("open"));
    // Barrier across processes: announce, then wait for the parent's go.
    fs::write(ctl.join(format!("ready-{id}")), b"").expect("ready");
    let t0 = Instant::now();
    while !ctl.join("go").exists() {
        assert!(t0.elapsed() < Duration::from_secs(20), "no go signal");
        std::thread::sleep(Duration::from_millis(2));
    }
    let tasks: Vec<_> = (0..WORKER_TASKS)
        .map(|i| {
            let store = Arc::clone(&store);
            let id = id.to_owned();
            tokio::spawn(async move {
                let bytes = Bytes::from(format!("process {id} writer {i}"));
                match store.put("race/proc", bytes.clone(), PutMode::Create).await {
                    Ok(_) => Some(bytes),
                    Err(StoreError::AlreadyExists { .. }) => None,
                    Err(e) => panic!("unexpected {e:?}"),
                }
            })
        })
        .chain((0..WORKER_INCREMENTS).map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store_support::increment(&*store, "race/proc-counter").await;
                None
            })
        }))
        .collect();
    let mut won = Vec::new();
    for t in tasks {
        won.extend(t.await.expect("task"));
    }
    let won: Vec<_> = won.iter().map(|b| String::from_utf8_lossy(b)).collect();
    fs::write(ctl.join(format!("won-{id}")), won.join("\n")).expect("result");
}

#[tokio::test]
async fn cross_process_race() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, ctl) = (dir.path().join("data"), dir.path().to_owned());
    let store = FsStore::open(root.clone()).expect("open");
    store
        .put(
            "race/proc-counter",
            Bytes::from_static(b"0"),
            PutMode::Create,
        )
        .await
        .expect("counter");
    let exe = std::env::current_exe().expect("test binary");
    let children: Vec<_> = (0..2)
        .map(|id| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "cross_process_worker",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(
                    WORKER_ENV,
                    format!("{}|{}|{id}", root.display(), ctl.display()),
                )
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn worker")
        })
        .collect();
    let t0 = Instant::now();
    while !(0..2).all(|id| ctl.join(format!("ready-{id}")).exists()) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "workers did not start"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fs::write(ctl.join("go"), b"").expect("go");
    let mut won = Vec::new();
    for (id, mut c) in children.into_iter().enumerate() {
        let status = c.wait().expect("worker");
        assert!(status.success(), "worker {id} failed: {status:?}");
        let out = fs::read_to_string(ctl.join(format!("won-{id}"))).expect("worker result");
        won.extend(out.lines().filter(|l| !l.is_empty()).map(str::to_owned));
    }
    assert_eq!(
        won.len(),
        1,
        "exactly one Create wins across processes: {won:?}"
    );
    let o = store.get("race/proc").await.expect("get").expect("present");
    assert_eq!(String::from_utf8_lossy(&o.bytes), won[0]);
    let c = store
        .get("race/proc-counter")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(
        &c.bytes[..],
        (2 * WORKER_INCREMENTS).to_string().as_bytes(),
        "no lost update"
    );
}

#[tokio::test]
async fn crash_leftovers_are_ignored_then_cleaned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("data");
    let store = FsStore::open(root.clone()).expect("open");
    store
        .put(
            "gateways/a.json",
            Bytes::from_static(b"{\"a\":1}"),
            PutMode::Create,
        )
        .await
        .expect("put");
    // What a crash mid-write leaves: half-written temp files beside objects.
    let old = [
        root.join("gateways/~00000000deadbeef~tmp"),
        root.join("~1111111111111111~tmp"),
    ];
    let fresh = root.join("gateways/~2222222222222222~tmp");
    for p in old.iter().chain([&fresh]) {
        fs::write(p, b"{\"half").expect("leftover");
    }
    let long_ago = SystemTime::now() - TEMP_MAX_AGE - Duration::from_secs(5);
    for p in &old {
        fs::File::options()
            .write(true)
            .open(p)
            .expect("open")
            .set_modified(long_ago)
            .expect("mtime");
    }
    // A stray file outside the key syntax is not an object either.
    fs::write(root.join("gateways/not a key"), b"x").expect("stray");
    assert_eq!(store.list("").await.expect("list"), ["gateways/a.json"]);
    assert_eq!(
        store.list("gateways/").await.expect("list"),
        ["gateways/a.json"]
    );
    assert_eq!(
        &store
            .get("gateways/a.json")
            .await
            .expect("get")
            .expect("present")
            .bytes[..],
        b"{\"a\":1}"
    );
    // Reopening removes the old leftovers, keeps a possibly live one.
    let store = FsStore::open(root.clone()).expect("reopen");
    for p in &old {
        assert!(!p.exists(), "{} removed", p.display());
    }
    assert!(
        fresh.exists(),
        "a young temp file may belong to a live writer"
    );
    assert_eq!(store.list("").await.expect("list"), ["gateways/a.json"]);
}

#[tokio::test]
async fn objects_and_directories_do_not_mix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsStore::open(dir.path().join("data")).expect("open");
    store
        .put("a/b", Bytes::from_static(b"x"), PutMode::Create)
        .await
        .expect("put");
    // "a" is a directory here, not an object.
    assert!(store.get("a").await.expect("get").is_none());
    assert!(store.get_stream("a").await.expect("get_stream").is_none());
    store
        .delete("a")
        .await
        .expect("delete of a directory name is a no-op");
    assert!(store.get("a/b").await.expect("get").is_some());
    // A path below an object is absent; writing there is a backend error on a filesystem.
    assert!(store.get("a/b/c").await.expect("get").is_none());
    let r = store.put("a/b/c", Bytes::new(), PutMode::Overwrite).await;
    assert!(matches!(r, Err(StoreError::Backend { .. })), "{r:?}");
    let r = store.put("a", Bytes::new(), PutMode::Create).await;
    assert!(matches!(r, Err(StoreError::Backend { .. })), "{r:?}");
    assert!(
        temp_files(store.root()).is_empty(),
        "failed writes leave no temp file"
    );
}

#[tokio::test]
async fn ping_fails_when_the_root_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("data");
    let store = FsStore::open(root.clone()).expect("open");
    store.ping().await.expect("ping");
    fs::remove_dir_all(&root).expect("rm");
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Backend { .. })
    ));
    assert!(matches!(
        store.put("k", Bytes::new(), PutMode::Overwrite).await,
        Err(StoreError::Backend { .. })
    ));
    assert!(
        store
            .get("k")
            .await
            .expect("absent, not an error")
            .is_none()
    );
}

#[tokio::test]
async fn etag_is_the_content_hash_across_instances() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("data");
    let s1 = FsStore::open(root.clone()).expect("open");
    let e = s1
        .put("x", Bytes::from_static(b"abc"), PutMode::Create)
        .await
        .expect("put");
    assert_eq!(
        e.0,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let s2 = FsStore::open(root.clone()).expect("open");
    let o = s2.get("x").await.expect("get").expect("present");
    assert_eq!(o.etag, e);
    s2.put("x", Bytes::from_static(b"abcd"), PutMode::Update(e))
        .await
        .expect("update through another instance");
    assert_eq!(fs::metadata(root.join("x")).expect("meta").nlink(), 1);
}

/// Rough latency numbers: `cargo test --release -p cups-host-server --test store_fs -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a test"]
async fn fs_latency() {
    let dir = std::env::var_os("CUPS_FS_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(dir).expect("tempdir");
    let store = FsStore::open(dir.path().join("data")).expect("open");
    let record = Bytes::from(vec![b'x'; 2048]);
    const N: u32 = 200;
    let mut etag = store
        .put("gateways/r.json", record.clone(), PutMode::Create)
        .await
        .expect("put");
    let t = Instant::now();
    for _ in 0..N {
        etag = store
            .put("gateways/r.json", record.clone(), PutMode::Update(etag))
            .await
            .expect("update");
    }
    let put = t.elapsed() / N;
    let t = Instant::now();
    for _ in 0..N {
        store
            .get("gateways/r.json")
            .await
            .expect("get")
            .expect("present");
    }
    let get = t.elapsed() / N;
    let big = Bytes::from(store_support::pattern(16 * 1024 * 1024, 3));
    store
        .put("fw/image", big, PutMode::Overwrite)
        .await
        .expect("put");
    let t = Instant::now();
    let s = store
        .get_stream("fw/image")
        .await
        .expect("stream")
        .expect("present");
    let first = t.elapsed();
    let mut chunks = s.chunks;
    let mut n = 0u64;
    use futures_util::StreamExt;
    while let Some(c) = chunks.next().await {
        n += c.expect("chunk").len() as u64;
    }
    let all = t.elapsed();
    println!(
        "fs store: 2 KiB Update(etag) {put:?}/op, get {get:?}/op; 16 MiB get_stream: \
         first chunk after {first:?}, all {n} bytes in {all:?}"
    );
}
