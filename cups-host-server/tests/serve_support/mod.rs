//! Shared helpers of the `serve_*` tests: a throwaway PKI minted with rcgen, a recording
//! handler, a server on 127.0.0.1:0, raw HTTP/1.1 exchange and TLS clients.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cups_core::response::{Decoder, Event, NO_CHANGE};
use cups_host_server::serve::{ServeConfig, ServeError, ServeMetrics, Server, UpdateInfoHandler};
use cups_host_server::service::{IncomingRequest, Outcome};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Every network wait in the tests is bounded by this.
pub(crate) const TEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The golden vectors (`CUPS_VECTORS` or the repository's sibling `shared/vectors`).
pub(crate) fn vectors_dir() -> PathBuf {
    match std::env::var("CUPS_VECTORS") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors")),
    }
}

/// A vector file's bytes; a missing vector fails the test.
pub(crate) fn vector(rel: &str) -> Vec<u8> {
    let path = vectors_dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("vector {} missing: {e}", path.display()))
}

/// The four station requests: (name, full request bytes, body bytes).
pub(crate) fn station_requests() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    [
        "first-contact",
        "with-version-sigkey",
        "steady-state",
        "two-sigkeys",
    ]
    .into_iter()
    .map(|name| {
        (
            name,
            vector(&format!("requests/{name}.http")),
            vector(&format!("requests/{name}.json")),
        )
    })
    .collect()
}

// ------------------------------------------------------------------------------------------
// PKI
// ------------------------------------------------------------------------------------------

/// A certificate authority minted for a test.
pub(crate) struct Ca {
    pub(crate) cert: CertificateDer<'static>,
    pub(crate) pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate chain and its key, ready for rustls.
pub(crate) struct Identity {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    /// A client identity from DER pieces (e.g. what a station stores from a blob).
    pub(crate) fn from_parts(cert: &[u8], key: PrivateKeyDer<'static>) -> Self {
        Self {
            chain: vec![CertificateDer::from(cert.to_vec())],
            key,
        }
    }

    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
    pub(crate) fn leaf(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }
}

/// A fixed RSA-2048 key (PKCS#8): ring cannot generate RSA keys.
const RSA_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCOSVg0Dq/vNnoM
Yfks6mtmm+C5D1hwcAoHyrdTweV6U5sShaJXl2k5/tp7B8RhqaZyxjcw948s5RwH
jNk5X+SXzf6CKzBnSaNLMY6PpUqaJkbxgJQf7bOzzxs+KWvI4q14Jju503Y+vtlX
gSkrhW05JnAYFYQpY25QXVybnjxqoHiJ7XrjmOqKW6LUaXXtgsn0TQIvxtLSXOEq
0Pzfaw+a79V0gwNt+mB/3KZ+wKwWDK8FeNeibdlnZLcPkRfdYCFasMXRa7Od66CL
ouWZsyhXoNfWTXAj1nJ+nkR5FX/5Hb/2/2BDwRkR0behKzJHb3nhOZomMaxqtA4E
5Qg58dwtAgMBAAECggEABd8n+Sn7/6qnWbh3UG+yE+9t1CU6eJVfDJhEfXvcbPJj
TV3fZ67zZDXMrVQSOheGq2jboTUuHuOrhvI8ip4W8F7LWHLQ0gpbZ0B5yhq/m+Hl
fpTYSAMGre5niOarsIQONY2aXF5KHGfCz1YgrU+ZxMh9yriklhKo3D8mEbPzeVDr
NDiAZLzUdvJNEsKJaMF+3FaxTQRig9XWvY4rJJMKeT1v0USeviqYWFwrbMM5yQ1y
0WKc12T8SHMo6QM3R+kcHXOkg3Tgxu7gn2yyMfH3VGqKq08OshegZ4CDHz5m8leh
DNbuNs5ani9+mbExaOvop4fvQ92ISeB0ztMZt/becQKBgQDHQlC7D0FoIXqpT7Z6
7LQYee2jpJS8wyD/Sg8VtATDoIF2PsRSr397oCLGZSqJyHR3RUJ4XG9I+8N7iVz6
5+8JKEwDaztTK1D1ZuD6xTWKM4K6oKsWxL4I852DZB63IbpJ4yruMcLd1MCOXBG9
vhBW7HNAY4z5xNYC28ZSkwerGQKBgQC2zdEJWvhoQhdyrHHXJdPLMW8p8R+sHg/D
1Zi1W1+SVEToHKqrXmsh7pX5MMNgIpkhGKDvPwGTjNwfWPIP4lTWQyu7Vnx1errk
2xWJFVDFh5EpYxhu8GknsmNgCMA+ehjJeSl9aB/joTQcJGo8QIzZRXYl6D3KgpWd
DEIbcxTwNQKBgH7gSQtzIVCu0K3yZd1LzzkumhRy/YpcLSyg+Y32PHpcP1MNkHCd
8uzDAKGXVUi6bP5tCXAeW3X7aXPF+YCCIoCQOiaLJxFEKZ64zVSgMgE332v6VjZ/
PAnzJT6+h5hQT5Awp+tXoB8kEyASm/FXjovqr1A2k1OO9D6JtnRpzp4xAoGAHQlw
TNYgYx8sblCp/IzLqZj+mWDtsP9NbcP978DF2457K4tyKKpkxg0J0X1Ha3vTawho
d9hAPdnAFVKhkJhY9XfR+H3yYw7NpRCPySiTney8yCAvf1+8tEuHsXdyYfou+cG/
L2ZcumGez2GRZmSyesinzbmoJwS7EykhTw7mookCgYB7GnX4/vFV1Mt/NHCI4Bk5
5W/D+1v92ZF/2ah9j2M60slwrZdliDZgyBJWgbllm54g/kSiWlr4hhqEuXK08H+f
8AWMsD69emikhjvuf1VMU3Q22bzqnEzX+0W1LVhOqyXzkDObkSPSpCRHM7R8ZNaP
mt9VugHkzR52dxRZz5+RHg==
-----END PRIVATE KEY-----
";

/// Server key type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum KeyKind {
    EcdsaP256,
    Rsa2048,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA cert");
        Self {
            pem: cert.pem(),
            cert: cert.into(),
            issuer: Issuer::new(params, key),
        }
    }

    fn issue(
        &self,
        cn: &str,
        sans: Vec<String>,
        eku: ExtendedKeyUsagePurpose,
        key: KeyPair,
        validity: (OffsetDateTime, OffsetDateTime),
    ) -> Identity {
        let mut params = CertificateParams::new(sans).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![eku];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = validity.0;
        params.not_after = validity.1;
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        Identity {
            chain: vec![cert.into()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }

    /// A server certificate for `localhost`.
    pub(crate) fn server(&self, kind: KeyKind) -> Identity {
        let key = match kind {
            KeyKind::EcdsaP256 => KeyPair::generate().expect("key"),
            KeyKind::Rsa2048 => {
                KeyPair::from_pem_and_sign_algo(RSA_KEY_PEM, &rcgen::PKCS_RSA_SHA256)
                    .expect("RSA key")
            }
        };
        self.issue(
            "localhost",
            vec!["localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
            key,
            valid_now(),
        )
    }

    /// A gateway client certificate (CN = the EUI), valid now.
    pub(crate) fn client(&self, eui: &str) -> Identity {
        self.client_valid(eui, valid_now())
    }

    /// A gateway client certificate with the given validity.
    pub(crate) fn client_valid(
        &self,
        eui: &str,
        validity: (OffsetDateTime, OffsetDateTime),
    ) -> Identity {
        self.issue(
            eui,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            KeyPair::generate().expect("key"),
            validity,
        )
    }
}

/// A validity window around now.
pub(crate) fn valid_now() -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (
        now - time::Duration::days(1),
        now + time::Duration::days(30),
    )
}

/// A validity window that ended yesterday.
pub(crate) fn expired() -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (
        now - time::Duration::days(30),
        now - time::Duration::days(1),
    )
}

/// The test EUI as a certificate CN.
pub(crate) const EUI: &str = "0016c001ff10a235";

/// A server PKI: gateway CA, bootstrap CA, server identity.
pub(crate) struct TestPki {
    pub(crate) gateway_ca: Ca,
    pub(crate) bootstrap_ca: Ca,
    pub(crate) server: Identity,
}

impl TestPki {
    pub(crate) fn new(kind: KeyKind) -> Self {
        let gateway_ca = Ca::new("Test Gateway CA");
        let bootstrap_ca = Ca::new("Test Bootstrap CA");
        let server = gateway_ca.server(kind);
        Self {
            gateway_ca,
            bootstrap_ca,
            server,
        }
    }

    /// The listener's rustls configuration (through the crate's builder).
    pub(crate) fn server_config(&self) -> Arc<rustls::ServerConfig> {
        cups_host_server::serve::server_config(
            self.server.chain.clone(),
            self.server.key(),
            &[self.gateway_ca.cert.clone(), self.bootstrap_ca.cert.clone()],
        )
        .expect("server config")
    }

    /// A client trusting the server, optionally presenting `client`.
    pub(crate) fn client_config(
        &self,
        client: Option<&Identity>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.gateway_ca.cert.clone()).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let b = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots);
        let cfg = match client {
            Some(id) => b
                .with_client_auth_cert(id.chain.clone(), id.key())
                .expect("client auth"),
            None => b.with_no_client_auth(),
        };
        Arc::new(cfg)
    }
}

/// A client trusting `roots`, presenting `client` if any.
pub(crate) fn client_config_with_roots(
    roots: &[CertificateDer<'static>],
    client: Option<&Identity>,
) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(BOTH)
        .expect("versions")
        .with_root_certificates(store);
    let cfg = match client {
        Some(id) => b
            .with_client_auth_cert(id.chain.clone(), id.key())
            .expect("client auth"),
        None => b.with_no_client_auth(),
    };
    Arc::new(cfg)
}

/// Both TLS versions.
pub(crate) const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Connect over TLS to `addr` as `localhost`.
pub(crate) async fn tls_connect(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("name");
    tokio::time::timeout(
        TEST_TIMEOUT,
        tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake"))?
}

// ------------------------------------------------------------------------------------------
// Handler
// ------------------------------------------------------------------------------------------

type Reply = Box<dyn Fn(&IncomingRequest) -> Outcome + Send + Sync>;

/// A handler that records requests and answers with `reply` (after `delay`).
pub(crate) struct TestHandler {
    pub(crate) seen: Mutex<Vec<IncomingRequest>>,
    pub(crate) ready: AtomicBool,
    pub(crate) delay: Duration,
    reply: Reply,
    /// Signalled when a request reaches the handler.
    pub(crate) entered: tokio::sync::Notify,
}

impl TestHandler {
    /// Decode the body with cups-core: valid → NO_CHANGE, invalid → 400 with the error.
    pub(crate) fn decoding() -> Self {
        Self::with_reply(
            |req| match cups_core::request::UpdateInfo::decode(&req.body) {
                Ok(_) => no_change(),
                Err(e) => Outcome::Reject {
                    status: 400,
                    reason: format!("malformed update-info request: {e}"),
                },
            },
        )
    }

    pub(crate) fn with_reply(
        reply: impl Fn(&IncomingRequest) -> Outcome + Send + Sync + 'static,
    ) -> Self {
        Self {
            seen: Mutex::new(Vec::new()),
            ready: AtomicBool::new(true),
            delay: Duration::ZERO,
            reply: Box::new(reply),
            entered: tokio::sync::Notify::new(),
        }
    }

    pub(crate) fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Remove and return the latest request.
    pub(crate) fn take_last(&self) -> Option<IncomingRequest> {
        self.seen.lock().expect("lock").pop()
    }

    pub(crate) fn seen(&self) -> Vec<IncomingRequest> {
        self.seen.lock().expect("lock").clone()
    }
}

/// The 14-byte "nothing to do".
pub(crate) fn no_change() -> Outcome {
    Outcome::Respond {
        head: Bytes::from_static(&NO_CHANGE),
        content_length: NO_CHANGE.len() as u64,
        update: None,
    }
}

impl UpdateInfoHandler for TestHandler {
    fn update_info(&self, req: IncomingRequest) -> impl Future<Output = Outcome> + Send {
        let outcome = (self.reply)(&req);
        self.seen.lock().expect("lock").push(req);
        self.entered.notify_one();
        let delay = self.delay;
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            outcome
        }
    }

    fn ready(&self) -> impl Future<Output = bool> + Send {
        let r = self.ready.load(Ordering::SeqCst);
        async move { r }
    }

    fn metrics_text(&self, out: &mut String) {
        out.push_str("# HELP test_handler_metric A handler metric.\n");
        out.push_str("# TYPE test_handler_metric gauge\ntest_handler_metric 7\n");
    }
}

// ------------------------------------------------------------------------------------------
// Server
// ------------------------------------------------------------------------------------------

/// Test defaults: loopback, port 0, admin on, timeouts short enough for tests.
pub(crate) fn test_config() -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        admin_listen: Some("127.0.0.1:0".parse().expect("addr")),
        drain_timeout: Duration::from_secs(5),
        ..ServeConfig::default()
    }
}

/// A running server.
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    pub(crate) admin: SocketAddr,
    pub(crate) metrics: Arc<ServeMetrics>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

pub(crate) async fn start<H: UpdateInfoHandler>(
    config: ServeConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Arc<H>,
) -> Running {
    let server = Server::bind(config, tls, handler).await.expect("bind");
    let addr = server.local_addr();
    let admin = server.admin_addr().expect("admin listener");
    let metrics = server.metrics();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        admin,
        metrics,
        stop: Some(tx),
        task: Some(task),
    }
}

impl Running {
    /// Request shutdown (does not wait).
    pub(crate) fn signal_stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Request shutdown and wait until `run` returned.
    pub(crate) async fn stop(mut self) {
        self.signal_stop();
        self.join().await;
    }

    /// Wait until `run` returned.
    pub(crate) async fn join(&mut self) {
        if let Some(task) = self.task.take() {
            tokio::time::timeout(TEST_TIMEOUT, task)
                .await
                .expect("server stops in time")
                .expect("server task")
                .expect("server run");
        }
    }
}

/// Wait until `cond` holds (metrics are updated by connection tasks a moment after the
/// client sees the effect); false after [`TEST_TIMEOUT`].
pub(crate) async fn eventually(cond: impl Fn() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < TEST_TIMEOUT {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

// ------------------------------------------------------------------------------------------
// Raw HTTP/1.1
// ------------------------------------------------------------------------------------------

/// A response as read off the wire.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl RawResponse {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn content_length(&self) -> Option<u64> {
        self.header("content-length").and_then(|v| v.parse().ok())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection that reads responses by hand (keeps leftover bytes for keep-alive).
pub(crate) struct RawConn<S> {
    pub(crate) stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> RawConn<S> {
    pub(crate) fn new(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Put bytes read directly from `stream` back in front of the unread input.
    pub(crate) fn unread(&mut self, bytes: &[u8]) {
        self.buf.splice(0..0, bytes.iter().copied());
    }

    /// Send bytes as they are.
    pub(crate) async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    async fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(TEST_TIMEOUT, self.stream.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "read"))??;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Read one response: status line, headers, then exactly Content-Length body bytes.
    pub(crate) async fn response(&mut self) -> std::io::Result<RawResponse> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.fill().await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed before a response head",
                ));
            }
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).expect("ASCII head");
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
        let status: u16 = parts.next().expect("status").parse().expect("status code");
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header line");
                (n.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        let len = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse::<usize>().expect("content-length"))
            .expect("every response has Content-Length");
        assert!(
            !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding")),
            "no chunked responses"
        );
        while self.buf.len() < len {
            if self.fill().await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("body ended after {} of {len} bytes", self.buf.len()),
                ));
            }
        }
        let body: Vec<u8> = self.buf.drain(..len).collect();
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    /// Whether the server closes the connection (EOF or reset) within `within`, with no
    /// further bytes.
    pub(crate) async fn closed_within(&mut self, within: Duration) -> bool {
        let mut chunk = [0u8; 1024];
        match tokio::time::timeout(within, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) | Err(_) => false,
        }
    }
}

/// A plain TCP raw connection.
pub(crate) async fn tcp(addr: SocketAddr) -> RawConn<TcpStream> {
    RawConn::new(TcpStream::connect(addr).await.expect("connect"))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One `POST /update-info` with the station's head shape and the given body.
pub(crate) fn station_request(body: &[u8], extra_headers: &str) -> Vec<u8> {
    let mut r = format!(
        "POST /update-info HTTP/1.1\r\nHost: localhost:16140\r\nContent-Type: application/json\r\nContent-Length: {:>5}\r\n{extra_headers}\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// Insert header lines right after the request line of a raw request.
pub(crate) fn with_headers(request: &[u8], lines: &str) -> Vec<u8> {
    let at = find(request, b"\r\n").expect("request line") + 2;
    let mut out = request[..at].to_vec();
    out.extend_from_slice(lines.as_bytes());
    out.extend_from_slice(&request[at..]);
    out
}

/// Decode a CUPS response body with cups-core; returns the update bytes (if any).
pub(crate) fn decode_cups(body: &[u8]) -> Vec<u8> {
    let mut d = Decoder::new();
    let mut update = Vec::new();
    let mut input = body;
    loop {
        let step = d.decode(input).expect("response decodes");
        input = &input[step.consumed..];
        match step.event {
            Some(Event::UpdateChunk { data, .. }) => update.extend_from_slice(data),
            Some(Event::Done) => break,
            Some(_) => {}
            None if input.is_empty() => break,
            None => {}
        }
    }
    d.finish().expect("complete response");
    assert!(input.is_empty(), "bytes after the response");
    update
}
