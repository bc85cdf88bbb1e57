//! Network-layer benchmarks, each measured against its baseline in the same run, client and
//! servers in one process on loopback (so the client's work is in both numbers):
//!
//! 1. **no-change path over HTTP keep-alive** — our server (`--insecure-http` mode, a
//!    handler answering the 14-byte NO_CHANGE) vs a minimal hyper server answering 14 bytes;
//!    the same client sends the station's `first-contact` request over a few keep-alive
//!    connections. Target: ours ≥ 80 % of the baseline's requests/s.
//! 2. **full TLS handshake per request** — our TLS server (mutual TLS, P-256 server and
//!    client certificates, one POST per connection, as stations connect) vs a bare rustls
//!    accept + handshake loop with the same `rustls::ServerConfig` (the client does handshake
//!    + close). No resumption. TLS 1.2 (what stations speak) and TLS 1.3. Target ≥ 80 %.
//!
//! `cargo bench -p cups-host-server --bench serve` (set `CUPS_VECTORS` if the vectors are
//! not at `../shared/vectors`). Sizes: `SERVE_BENCH_KEEPALIVE_REQUESTS`,
//! `SERVE_BENCH_TLS_REQUESTS`, `SERVE_BENCH_ROUNDS` override the defaults;
//! `SERVE_BENCH_ONLY=keepalive` skips the TLS part. Each side runs
//! `rounds` times, paired and alternating; the table shows the medians of each side's rate
//! and of the per-round ratio.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cups_core::response::NO_CHANGE;
use cups_host_server::serve::{ServeConfig, Server, UpdateInfoHandler, server_config};
use cups_host_server::service::{IncomingRequest, Outcome};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const KEEPALIVE_REQUESTS: usize = 20_000;
const KEEPALIVE_CONNECTIONS: usize = 4;
const TLS_REQUESTS: usize = 2_000;
const TLS_CONCURRENCY: usize = 4;
const ROUNDS: usize = 5;
const TARGET_RATIO: f64 = 0.80;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn vectors_dir() -> PathBuf {
    match std::env::var("CUPS_VECTORS") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors")),
    }
}

// ------------------------------------------------------------------------------------------
// Servers
// ------------------------------------------------------------------------------------------

/// The cheapest possible handler: every request gets NO_CHANGE.
struct NoChange;

impl UpdateInfoHandler for NoChange {
    fn update_info(&self, _req: IncomingRequest) -> impl Future<Output = Outcome> + Send {
        std::future::ready(Outcome::Respond {
            head: Bytes::from_static(&NO_CHANGE),
            content_length: NO_CHANGE.len() as u64,
            update: None,
        })
    }
    fn ready(&self) -> impl Future<Output = bool> + Send {
        std::future::ready(true)
    }
    fn metrics_text(&self, _out: &mut String) {}
}

/// A running server and how to stop it.
struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn ours(tls: Option<Arc<rustls::ServerConfig>>) -> Running {
    let config = ServeConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        admin_listen: None,
        ..ServeConfig::default()
    };
    let server = Server::bind(config, tls, Arc::new(NoChange))
        .await
        .expect("bind");
    let addr = server.local_addr();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = server
            .run(async move {
                let _ = rx.await;
            })
            .await;
    });
    Running { addr, stop, task }
}

/// Accept loop shared by the baselines; `serve` handles one connection.
async fn baseline<F, Fut>(serve: F) -> Running
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, mut rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut rx => break,
                r = listener.accept() => if let Ok((s, _)) = r {
                    let _ = s.set_nodelay(true);
                    tokio::spawn(serve(s));
                },
            }
        }
    });
    Running { addr, stop, task }
}

/// A minimal hyper server answering every request with 14 zero bytes.
async fn minimal_hyper() -> Running {
    baseline(|s| async move {
        let svc = hyper::service::service_fn(|_req| async {
            Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                &NO_CHANGE,
            ))))
        });
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(s), svc)
            .await;
    })
    .await
}

/// A bare rustls accept + handshake loop.
async fn bare_rustls(cfg: Arc<rustls::ServerConfig>) -> Running {
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    baseline(move |s| {
        let acceptor = acceptor.clone();
        async move {
            let _ = acceptor.accept(s).await;
        }
    })
    .await
}

// ------------------------------------------------------------------------------------------
// Client
// ------------------------------------------------------------------------------------------

/// Read one response (status 200, Content-Length body) into `buf`; no pipelining, so
/// nothing follows it.
async fn read_response<S: AsyncRead + Unpin>(s: &mut S, buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    loop {
        let n = s.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
        }
        filled += n;
        let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = std::str::from_utf8(&buf[..end]).map_err(io::Error::other)?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(io::Error::other(format!("unexpected response: {head}")));
        }
        let len: usize = head
            .split("\r\n")
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .ok_or_else(|| io::Error::other("no Content-Length"))?;
        let total = end + 4 + len;
        while filled < total {
            let n = s.read(&mut buf[filled..]).await?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short body"));
            }
            filled += n;
        }
        return Ok(());
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    request: &[u8],
    buf: &mut [u8],
) -> io::Result<()> {
    s.write_all(request).await?;
    read_response(s, buf).await
}

/// `requests` POSTs over `conns` keep-alive connections; requests/s.
async fn keepalive_run(
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    requests: usize,
    conns: usize,
) -> f64 {
    let start = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|i| {
            let request = Arc::clone(&request);
            let n = requests / conns + usize::from(i < requests % conns);
            tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.expect("connect");
                s.set_nodelay(true).expect("nodelay");
                let mut buf = vec![0u8; 4096];
                for _ in 0..n {
                    exchange(&mut s, &request, &mut buf)
                        .await
                        .expect("exchange");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    requests as f64 / start.elapsed().as_secs_f64()
}

/// `requests` new TLS connections (`concurrency` at a time); with `post`, one request each,
/// else handshake + close. Connections/s.
async fn tls_run(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    request: Option<Arc<Vec<u8>>>,
    requests: usize,
    concurrency: usize,
) -> f64 {
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let cfg = Arc::clone(&cfg);
            let request = request.clone();
            let n = requests / concurrency + usize::from(i < requests % concurrency);
            tokio::spawn(async move {
                let connector = tokio_rustls::TlsConnector::from(cfg);
                let name = ServerName::try_from("localhost").expect("name");
                let mut buf = vec![0u8; 4096];
                for _ in 0..n {
                    let tcp = TcpStream::connect(addr).await.expect("connect");
                    tcp.set_nodelay(true).expect("nodelay");
                    let mut tls = connector
                        .connect(name.clone(), tcp)
                        .await
                        .expect("handshake");
                    if let Some(request) = &request {
                        exchange(&mut tls, request, &mut buf)
                            .await
                            .expect("exchange");
                    }
                    drop(tls);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    requests as f64 / start.elapsed().as_secs_f64()
}

// ------------------------------------------------------------------------------------------
// PKI
// ------------------------------------------------------------------------------------------

struct Pki {
    server: Arc<rustls::ServerConfig>,
    ca: CertificateDer<'static>,
    client_chain: Vec<CertificateDer<'static>>,
    client_key: Vec<u8>,
}

fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    cn: &str,
    sans: Vec<String>,
    eku: ExtendedKeyUsagePurpose,
) -> (CertificateDer<'static>, Vec<u8>) {
    let mut p = CertificateParams::new(sans).expect("params");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![eku];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().expect("key");
    let cert = p.signed_by(&key, issuer).expect("cert");
    (cert.into(), key.serialize_der())
}

fn pki() -> Pki {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name
        .push(DnType::CommonName, "Bench Gateway CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_key = KeyPair::generate().expect("key");
    let ca: CertificateDer<'static> = p.self_signed(&ca_key).expect("ca").into();
    let issuer = Issuer::new(p, ca_key);
    let (server_cert, server_key) = leaf(
        &issuer,
        "localhost",
        vec!["localhost".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) = leaf(
        &issuer,
        "0016c001ff10a235",
        vec![],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let server = server_config(
        vec![server_cert],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key)),
        std::slice::from_ref(&ca),
    )
    .expect("server config");
    Pki {
        server,
        ca,
        client_chain: vec![client_cert],
        client_key,
    }
}

impl Pki {
    fn client(
        &self,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[version])
            .expect("version")
            .with_root_certificates(roots)
            .with_client_auth_cert(
                self.client_chain.clone(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.client_key.clone())),
            )
            .expect("client cert");
        // Every connection is a full handshake, like a station's.
        cfg.resumption = rustls::client::Resumption::disabled();
        Arc::new(cfg)
    }
}

// ------------------------------------------------------------------------------------------
// Main
// ------------------------------------------------------------------------------------------

struct Row {
    name: String,
    ours: f64,
    base: f64,
    ratio: f64,
}

/// `rounds` paired runs (which side goes first alternates): the medians of each side's
/// rate and of the per-round ratio. Pairing keeps a burst of background load from landing
/// on one side only.
async fn compare<A, AF, B, BF>(rounds: usize, mut ours: A, mut base: B) -> Row
where
    A: FnMut() -> AF,
    AF: Future<Output = f64>,
    B: FnMut() -> BF,
    BF: Future<Output = f64>,
{
    let (mut o, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (x, y) = if round % 2 == 0 {
            let x = ours().await;
            (x, base().await)
        } else {
            let y = base().await;
            (ours().await, y)
        };
        o.push(x);
        b.push(y);
        ratios.push(x / y);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Row {
        name: String::new(),
        ours: median(o),
        base: median(b),
        ratio: median(ratios),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let keepalive_requests = env_usize("SERVE_BENCH_KEEPALIVE_REQUESTS", KEEPALIVE_REQUESTS);
    let tls_requests = env_usize("SERVE_BENCH_TLS_REQUESTS", TLS_REQUESTS);
    let rounds = env_usize("SERVE_BENCH_ROUNDS", ROUNDS).max(1);
    let path = vectors_dir().join("requests/first-contact.http");
    let request = Arc::new(
        std::fs::read(&path).unwrap_or_else(|e| panic!("vector {} missing: {e}", path.display())),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rows = rt.block_on(async move {
        let mut rows = Vec::new();

        let only = std::env::var("SERVE_BENCH_ONLY").unwrap_or_default();
        // 1. No-change over keep-alive.
        let our_srv = ours(None).await;
        let base_srv = minimal_hyper().await;
        // Warm up both.
        keepalive_run(our_srv.addr, Arc::clone(&request), 1000, KEEPALIVE_CONNECTIONS).await;
        keepalive_run(base_srv.addr, Arc::clone(&request), 1000, KEEPALIVE_CONNECTIONS).await;
        let mut row = compare(
            rounds,
            || keepalive_run(our_srv.addr, Arc::clone(&request), keepalive_requests, KEEPALIVE_CONNECTIONS),
            || keepalive_run(base_srv.addr, Arc::clone(&request), keepalive_requests, KEEPALIVE_CONNECTIONS),
        )
        .await;
        row.name = format!(
            "no-change, HTTP keep-alive ({keepalive_requests} req, {KEEPALIVE_CONNECTIONS} conns) vs minimal hyper"
        );
        rows.push(row);
        our_srv.stop().await;
        base_srv.stop().await;

        if only == "keepalive" {
            return rows;
        }
        // 2. Full TLS handshake per request.
        let pki = pki();
        let our_srv = ours(Some(Arc::clone(&pki.server))).await;
        let base_srv = bare_rustls(Arc::clone(&pki.server)).await;
        for (label, version) in [
            ("TLS 1.2", &rustls::version::TLS12),
            ("TLS 1.3", &rustls::version::TLS13),
        ] {
            let cfg = pki.client(version);
            tls_run(our_srv.addr, Arc::clone(&cfg), Some(Arc::clone(&request)), 100, TLS_CONCURRENCY).await;
            tls_run(base_srv.addr, Arc::clone(&cfg), None, 100, TLS_CONCURRENCY).await;
            let mut row = compare(
                rounds,
                || tls_run(our_srv.addr, Arc::clone(&cfg), Some(Arc::clone(&request)), tls_requests, TLS_CONCURRENCY),
                || tls_run(base_srv.addr, Arc::clone(&cfg), None, tls_requests, TLS_CONCURRENCY),
            )
            .await;
            row.name = format!(
                "full {label} mTLS handshake + POST per conn ({tls_requests}, {TLS_CONCURRENCY} at a time) vs bare rustls handshake"
            );
            rows.push(row);
        }
        our_srv.stop().await;
        base_srv.stop().await;
        rows
    });

    println!();
    println!(
        "serve benchmarks: client and servers in one process on loopback, {cores} cores, medians of {rounds} paired rounds"
    );
    println!(
        "{:<100} {:>12} {:>12} {:>7} {:>7}",
        "benchmark", "ours /s", "baseline /s", "ratio", "target"
    );
    let mut all_ok = true;
    for r in &rows {
        let ratio = r.ratio;
        let ok = ratio >= TARGET_RATIO;
        all_ok &= ok;
        println!(
            "{:<100} {:>12.0} {:>12.0} {:>6.1}% {:>6}",
            r.name,
            r.ours,
            r.base,
            ratio * 100.0,
            if ok { "≥80% ✓" } else { "≥80% ✗" }
        );
    }
    println!();
    if !all_ok {
        println!("(a target was missed in this run; see above)");
    }
}
