//! Shared helpers of the `service_*` integration tests: a PKI made by `pki::init` in a
//! tempdir, both stores, station request bodies from the golden vectors, a response decoder,
//! and store wrappers that fail or yield on demand.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use cups_core::Eui64;
use cups_core::request::{JsonStr, UpdateInfo};
use cups_core::response::CredKind;
use cups_core::response::{Decoder, Event};
use cups_host_server::pki::{self, ClientUsage, InitOptions, Pki, PkiPaths};
use cups_host_server::service::{IncomingRequest, Outcome, PeerIdentity, Service, ServiceSettings};
use cups_host_server::store::fs::FsStore;
use cups_host_server::store::memory::MemoryStore;
use cups_host_server::store::{ETag, Object, ObjectStream, PutMode, Store, StoreError};
use futures_util::StreamExt as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;
use time::OffsetDateTime;

/// The router of every golden request.
pub const EUI_HEX: &str = "0016c001ff10a235";
/// Another gateway.
pub const OTHER_HEX: &str = "0016c001ff10a236";
/// CUPS URI of the golden requests.
pub const CUPS_URI: &str = "https://localhost:16140";
/// TC URI of the golden vectors.
pub const TC_URI: &str = "wss://localhost:16138";
/// The fleet-wide bootstrap token of the fixtures.
pub const BOOTSTRAP_TOKEN: &str = "fleet-bootstrap-token-for-tests";

pub fn eui() -> Eui64 {
    Eui64::parse(EUI_HEX).expect("eui")
}

pub fn other_eui() -> Eui64 {
    Eui64::parse(OTHER_HEX).expect("eui")
}

/// The golden vectors: `$CUPS_VECTORS`, else `../../shared/vectors` from the crate. Missing
/// vectors fail the test.
pub fn vectors_dir() -> PathBuf {
    let dir = std::env::var_os("CUPS_VECTORS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"),
        PathBuf::from,
    );
    assert!(
        dir.join("requests").is_dir(),
        "golden vectors not found at {} (set CUPS_VECTORS)",
        dir.display()
    );
    dir
}

/// The exact body of `requests/<name>.json`.
pub fn vector_body(name: &str) -> Vec<u8> {
    let path = vectors_dir().join("requests").join(format!("{name}.json"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What a request reports, to derive bodies from a golden one.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub router: Option<Eui64>,
    pub cups_crc: Option<u32>,
    pub tc_crc: Option<u32>,
    pub tc_uri: Option<Option<String>>,
    pub model: Option<String>,
    pub package: Option<Option<String>>,
    pub keys: Option<Vec<u32>>,
}

/// The golden request `name`, with the fields of `r` replaced, re-encoded as a station does.
pub fn body(name: &str, r: &Report) -> Vec<u8> {
    let golden = vector_body(name);
    let mut info = UpdateInfo::decode(&golden).expect("golden request decodes");
    if let Some(router) = r.router {
        info.router = router;
    }
    if let Some(c) = r.cups_crc {
        info.cups_cred_crc = c;
    }
    if let Some(c) = r.tc_crc {
        info.tc_cred_crc = c;
    }
    if let Some(u) = &r.tc_uri {
        info.tc_uri = u.as_deref().map(JsonStr::from_plain);
    }
    if let Some(m) = &r.model {
        info.model = JsonStr::from_plain(m);
    }
    if let Some(p) = &r.package {
        info.package = p.as_deref().map(JsonStr::from_plain);
    }
    if let Some(keys) = &r.keys {
        info.keys.clear();
        for k in keys {
            info.keys.push(*k).expect("few keys");
        }
    }
    let mut out = vec![0u8; info.encoded_len()];
    let n = info.encode(&mut out).expect("encode");
    out.truncate(n);
    out
}

/// A request presenting a client certificate.
pub fn with_cert(leaf_der: &[u8], body: Vec<u8>) -> IncomingRequest {
    IncomingRequest {
        peer: PeerIdentity::ClientCert {
            leaf_der: leaf_der.to_vec(),
        },
        authorization: None,
        body: Bytes::from(body),
    }
}

/// A request presenting a bearer token.
pub fn with_token(token: &str, body: Vec<u8>) -> IncomingRequest {
    IncomingRequest {
        peer: PeerIdentity::Anonymous,
        authorization: Some(format!("Bearer {token}")),
        body: Bytes::from(body),
    }
}

/// A request without credentials.
pub fn anonymous(body: Vec<u8>) -> IncomingRequest {
    IncomingRequest {
        peer: PeerIdentity::Anonymous,
        authorization: None,
        body: Bytes::from(body),
    }
}

/// A test CA made with rcgen alone (a factory/bootstrap CA).
pub struct TestCa {
    pub issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

pub fn test_ca(cn: &str) -> TestCa {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("self-signed");
    TestCa {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A client certificate with common name `cn` signed by `ca` (DER).
pub fn leaf(ca: &TestCa, cn: &str) -> Vec<u8> {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params
        .signed_by(&key, &ca.issuer)
        .expect("leaf")
        .der()
        .to_vec()
}

/// Which store a fixture runs on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Backend {
    Memory,
    Fs,
}

pub const BACKENDS: [Backend; 2] = [Backend::Memory, Backend::Fs];

/// A PKI (with a bootstrap CA), a store, and a service over them.
pub struct Fixture {
    pub tmp: TempDir,
    pub paths: PkiPaths,
    pub pki: Arc<Pki>,
    pub factory: TestCa,
    pub store: Arc<dyn Store>,
    pub service: Service,
}

/// Settings of the fixtures: the golden URIs, the bootstrap token.
pub fn settings() -> ServiceSettings {
    ServiceSettings {
        cups_uri: Some(CUPS_URI.to_owned()),
        tc_uri: Some(TC_URI.to_owned()),
        bootstrap_token_sha256: vec![pki::token_sha256_hex(BOOTSTRAP_TOKEN)],
        ..ServiceSettings::default()
    }
}

/// A fresh PKI in a tempdir (made by `pki::init`, plus a factory CA as `bootstrap-ca.crt`).
pub fn fresh_pki() -> (TempDir, PkiPaths, Arc<Pki>, TestCa) {
    let tmp = TempDir::new().expect("tempdir");
    let paths = PkiPaths::new(tmp.path().join("certs"));
    pki::init(&paths, &InitOptions::default()).expect("init");
    let factory = test_ca("Factory CA");
    std::fs::write(paths.bootstrap_ca(), &factory.pem).expect("bootstrap CA");
    let pki = Arc::new(Pki::load(&paths).expect("load"));
    (tmp, paths, pki, factory)
}

/// A store of `backend` (a filesystem store lives under `tmp`).
pub fn store(backend: Backend, tmp: &Path) -> Arc<dyn Store> {
    match backend {
        Backend::Memory => Arc::new(MemoryStore::new()),
        Backend::Fs => Arc::new(FsStore::open(tmp.join("data")).expect("fs store")),
    }
}

impl Fixture {
    pub fn new(backend: Backend) -> Self {
        Self::with_settings(backend, settings())
    }

    pub fn with_settings(backend: Backend, settings: ServiceSettings) -> Self {
        let (tmp, paths, pki, factory) = fresh_pki();
        let store = store(backend, tmp.path());
        Self::over(tmp, paths, pki, factory, store, settings)
    }

    /// A fixture over a given store (e.g. a failing wrapper).
    pub fn over(
        tmp: TempDir,
        paths: PkiPaths,
        pki: Arc<Pki>,
        factory: TestCa,
        store: Arc<dyn Store>,
        settings: ServiceSettings,
    ) -> Self {
        let service =
            Service::new(Arc::clone(&store), Arc::clone(&pki), settings).expect("service");
        Self {
            tmp,
            paths,
            pki,
            factory,
            store,
            service,
        }
    }

    /// A certificate of the gateway CA for `eui`, not known to any record.
    pub fn foreign_cert(&self, eui: Eui64, now: OffsetDateTime) -> Vec<u8> {
        self.pki
            .mint_client(eui, ClientUsage::Cups, time::Duration::days(30), now)
            .expect("mint")
            .cert_der
    }
}

/// The client certificate inside an mTLS blob.
pub fn blob_cert(blob: &[u8]) -> Vec<u8> {
    let safe = cups_core::cred::SafeBlob::new(blob).expect("station-safe blob");
    safe.cert().to_vec()
}

/// A response decoded with cups-core's decoder.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Decoded {
    pub cups_uri: Option<Vec<u8>>,
    pub tc_uri: Option<Vec<u8>>,
    pub cups_cred: Option<Vec<u8>>,
    pub tc_cred: Option<Vec<u8>>,
    pub sig: Option<(u32, Vec<u8>)>,
    pub update: Option<Vec<u8>>,
    pub body_len: usize,
}

impl Decoded {
    pub fn is_no_change(&self) -> bool {
        self.body_len == cups_core::response::NO_CHANGE_LEN
            && *self
                == Decoded {
                    body_len: self.body_len,
                    ..Decoded::default()
                }
    }
}

/// The whole body of a 200 outcome (head + streamed update), checked against
/// `content_length`, and decoded.
pub async fn decode(outcome: Outcome) -> Decoded {
    let Outcome::Respond {
        head,
        content_length,
        update,
    } = outcome
    else {
        panic!("expected 200, got {outcome:?}");
    };
    let mut body = head.to_vec();
    if let Some(mut stream) = update {
        while let Some(chunk) = stream.chunks.next().await {
            body.extend_from_slice(&chunk.expect("update chunk"));
        }
    }
    assert_eq!(body.len() as u64, content_length, "Content-Length");
    let mut out = Decoded {
        body_len: body.len(),
        ..Decoded::default()
    };
    let mut dec = Decoder::new();
    let mut rest = &body[..];
    loop {
        let step = dec.decode(rest).expect("response decodes");
        rest = &rest[step.consumed..];
        match step.event {
            Some(Event::CupsUri(u)) => out.cups_uri = Some(u.to_vec()),
            Some(Event::TcUri(u)) => out.tc_uri = Some(u.to_vec()),
            Some(Event::CredStart { kind, .. }) => match kind {
                CredKind::Cups => out.cups_cred = Some(Vec::new()),
                CredKind::Tc => out.tc_cred = Some(Vec::new()),
            },
            Some(Event::CredChunk { kind, data, .. }) => {
                let slot = match kind {
                    CredKind::Cups => out.cups_cred.as_mut(),
                    CredKind::Tc => out.tc_cred.as_mut(),
                };
                slot.expect("chunk after start").extend_from_slice(data);
            }
            Some(Event::Signature { key_crc, der }) => out.sig = Some((key_crc, der.to_vec())),
            Some(Event::UpdateStart { .. }) => out.update = Some(Vec::new()),
            Some(Event::UpdateChunk { data, .. }) => {
                out.update
                    .as_mut()
                    .expect("update started")
                    .extend_from_slice(data);
            }
            Some(Event::Done) => break,
            Some(_) => {}
            None => panic!("body ended early"),
        }
    }
    assert!(rest.is_empty(), "bytes after the body");
    dec.finish().expect("complete body");
    out
}

/// The status and reason of a rejection.
pub fn rejected(outcome: &Outcome) -> (u16, String) {
    match outcome {
        Outcome::Reject { status, reason } => (*status, reason.clone()),
        Outcome::Respond { .. } => panic!("expected a rejection, got 200"),
    }
}

/// A store wrapper that fails every operation of a kind while its switch is on, and counts
/// calls.
#[derive(Debug)]
pub struct FlakyStore {
    pub inner: Arc<dyn Store>,
    pub fail_reads: AtomicBool,
    pub fail_writes: AtomicBool,
    pub calls: AtomicU64,
}

impl FlakyStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            fail_reads: AtomicBool::new(false),
            fail_writes: AtomicBool::new(false),
            calls: AtomicU64::new(0),
        }
    }

    pub fn set(&self, reads: bool, writes: bool) {
        self.fail_reads.store(reads, Ordering::SeqCst);
        self.fail_writes.store(writes, Ordering::SeqCst);
    }

    fn check(&self, key: &str, flag: &AtomicBool) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if flag.load(Ordering::SeqCst) {
            return Err(StoreError::Backend {
                key: key.to_owned(),
                source: "injected failure".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Store for FlakyStore {
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        self.check(key, &self.fail_reads)?;
        self.inner.get(key).await
    }
    async fn get_stream(&self, key: &str) -> Result<Option<ObjectStream>, StoreError> {
        self.check(key, &self.fail_reads)?;
        self.inner.get_stream(key).await
    }
    async fn put(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<ETag, StoreError> {
        self.check(key, &self.fail_writes)?;
        self.inner.put(key, bytes, mode).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check(key, &self.fail_writes)?;
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.check(prefix, &self.fail_reads)?;
        self.inner.list(prefix).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.check("", &self.fail_reads)?;
        self.inner.ping().await
    }
}

/// A store wrapper that yields to the scheduler before every operation, so that concurrent
/// requests interleave at every store access.
#[derive(Debug)]
pub struct YieldingStore(pub Arc<dyn Store>);

#[async_trait]
impl Store for YieldingStore {
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        tokio::task::yield_now().await;
        self.0.get(key).await
    }
    async fn get_stream(&self, key: &str) -> Result<Option<ObjectStream>, StoreError> {
        tokio::task::yield_now().await;
        self.0.get_stream(key).await
    }
    async fn put(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<ETag, StoreError> {
        tokio::task::yield_now().await;
        self.0.put(key, bytes, mode).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        tokio::task::yield_now().await;
        self.0.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        tokio::task::yield_now().await;
        self.0.list(prefix).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.0.ping().await
    }
}

/// Now (the fixture PKI is valid from its creation on).
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// The moto endpoint, or `None` (after printing why) when S3 tests are to be skipped. Under
/// `CI` a missing endpoint fails the test.
pub fn s3_endpoint() -> Option<String> {
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

/// A fresh bucket on `endpoint`, created with a plain unauthenticated `PUT /<bucket>`.
pub async fn s3_bucket(endpoint: &str, tag: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut rnd = [0u8; 6];
    getrandom::fill(&mut rnd).expect("OS RNG");
    let bucket = format!("cups-{tag}-{}", hex::encode(rnd));
    let hostport = endpoint.strip_prefix("http://").expect("http endpoint");
    let mut s = tokio::net::TcpStream::connect(hostport)
        .await
        .expect("connect to S3");
    let req = format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut resp = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut resp))
        .await
        .expect("bucket creation timed out")
        .expect("read");
    assert!(
        resp.starts_with(b"HTTP/1.1 200"),
        "bucket creation failed: {}",
        String::from_utf8_lossy(&resp)
    );
    bucket
}

/// A store handle on `bucket` (each call is a separate client, as separate processes have).
pub fn s3_store(endpoint: &str, bucket: &str) -> Arc<dyn Store> {
    use cups_host_server::store::s3::{S3Config, S3Store};
    Arc::new(
        S3Store::new(S3Config {
            bucket: bucket.to_owned(),
            region: "us-east-1".to_owned(),
            endpoint: Some(endpoint.to_owned()),
            access_key_id: "test".to_owned(),
            secret_access_key: "test".to_owned(),
            allow_http: true,
            prefix: None,
        })
        .expect("S3 store"),
    )
}
