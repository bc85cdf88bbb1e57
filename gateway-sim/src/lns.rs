//! A minimal LNS (TC) endpoint on loopback, enough for a station to prove its TC credentials
//! (protocol doc §6, the station's `src/tc.c`):
//!
//! 1. `GET /router-info` WebSocket upgrade; the station sends `{"router":"<ID6>"}` (a 16-hex
//!    EUI string or an integer are accepted too); the answer is
//!    `{"router":<as received>,"muxs":"muxs-::0","uri":"wss://<public_host>:<port>/traffic/<id6>"}`,
//!    or `{"router":<as received>,"error":"..."}` for an unknown or unauthorised router;
//! 2. the muxs WebSocket on `/traffic/<id6>`: the station sends `{"msgtype":"version",...}`;
//!    the endpoint answers with [`LnsConfig::router_config`] if set, answers pings, and keeps
//!    the socket open until the client closes, [`LnsConfig::idle_timeout`] passes, or the
//!    server stops.
//!
//! Authentication, per connection: a TLS client certificate chaining to
//! [`LnsConfig::client_roots`] whose identity (CN, or a `urn:dev:mac:` SAN URI, as the CUPS
//! server mints them) is the router's EUI; else an `Authorization` header line (token mode: the
//! station sends the lines of `tc.key` as extra header lines) checked by
//! [`LnsConfig::token_check`]; else nothing, if [`LnsConfig::allow_unauthenticated`]. A
//! connection without acceptable credentials gets `403` on the upgrade.
//!
//! Std threads: one accept thread, one thread per connection (at most [`MAX_CONNECTIONS`]),
//! blocking rustls I/O with timeouts. Only loopback binds are allowed.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use cups_core::Eui64;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::ws::{self, Opcode};

/// Connections served at once; more are closed right after accept.
pub const MAX_CONNECTIONS: usize = 4096;
/// Time allowed for the TLS handshake, the upgrade and the router-info exchange.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`LnsConfig::idle_timeout`].
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Events kept by [`LnsServer::events`] (older ones are dropped).
pub const MAX_EVENTS: usize = 10_000;
/// Largest frame payload the endpoint reads.
pub const MAX_FRAME: usize = ws::MAX_FRAME_PAYLOAD;
/// The `muxs` id in router-info answers.
pub const MUXS_ID: &str = "muxs-::0";
/// Read chunk size.
const CHUNK: usize = 4096;

/// A token check: the `Authorization` header value → the router it authorises.
pub type TokenCheck = Arc<dyn Fn(&str) -> Option<Eui64> + Send + Sync>;

/// How to run an [`LnsServer`].
pub struct LnsConfig {
    /// Where to listen (loopback only; port 0 = ephemeral).
    pub bind: SocketAddr,
    /// Host name put in the muxs URI (and the name the certificate must carry for stations).
    pub public_host: String,
    /// Server certificate chain (leaf first).
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// Server private key (ECDSA, RSA or Ed25519; PKCS#8, SEC1 or PKCS#1).
    pub key: PrivateKeyDer<'static>,
    /// Roots client certificates must chain to (empty: no client certificates asked for).
    pub client_roots: Vec<CertificateDer<'static>>,
    /// Token-mode check of the `Authorization` header value.
    pub token_check: Option<TokenCheck>,
    /// Accept connections with neither client certificate nor token (server-auth-only TLS).
    pub allow_unauthenticated: bool,
    /// Sent as a text message after the station's `version` message.
    pub router_config: Option<String>,
    /// Routers served (`None`: any authenticated router); others get a router-info `error`.
    pub routers: Option<BTreeSet<Eui64>>,
    /// A muxs connection that sends nothing this long is closed (`None`: never; a real
    /// station without radio traffic is silent after its `version` message).
    pub idle_timeout: Option<Duration>,
}

impl std::fmt::Debug for LnsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LnsConfig")
            .field("bind", &self.bind)
            .field("public_host", &self.public_host)
            .field("client_roots", &self.client_roots.len())
            .field("token_check", &self.token_check.is_some())
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .field("router_config", &self.router_config.is_some())
            .finish_non_exhaustive()
    }
}

impl Clone for LnsConfig {
    fn clone(&self) -> Self {
        Self {
            bind: self.bind,
            public_host: self.public_host.clone(),
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
            client_roots: self.client_roots.clone(),
            token_check: self.token_check.clone(),
            allow_unauthenticated: self.allow_unauthenticated,
            router_config: self.router_config.clone(),
            routers: self.routers.clone(),
            idle_timeout: self.idle_timeout,
        }
    }
}

impl LnsConfig {
    /// A configuration without client authentication methods (add roots, a token check, or
    /// allow unauthenticated connections).
    #[must_use]
    pub fn new(
        bind: SocketAddr,
        public_host: impl Into<String>,
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        Self {
            bind,
            public_host: public_host.into(),
            cert_chain,
            key,
            client_roots: Vec::new(),
            token_check: None,
            allow_unauthenticated: false,
            router_config: None,
            routers: None,
            idle_timeout: Some(IDLE_TIMEOUT),
        }
    }

    /// A configuration from PEM files: the certificate chain and the private key.
    ///
    /// # Errors
    /// [`LnsError::Pem`] when a file cannot be read or holds no certificate / key.
    pub fn from_pem_files(
        bind: SocketAddr,
        public_host: impl Into<String>,
        cert: &Path,
        key: &Path,
    ) -> Result<Self, LnsError> {
        let chain = read_pem_certs(cert)?;
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| LnsError::Pem {
            path: key.display().to_string(),
            why: e.to_string(),
        })?;
        Ok(Self::new(bind, public_host, chain, key_der))
    }

    /// Add the client roots of a PEM file.
    ///
    /// # Errors
    /// [`LnsError::Pem`].
    pub fn with_client_roots_pem(mut self, path: &Path) -> Result<Self, LnsError> {
        self.client_roots.extend(read_pem_certs(path)?);
        Ok(self)
    }
}

/// Every certificate of a PEM file (at least one).
///
/// # Errors
/// [`LnsError::Pem`].
pub fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, LnsError> {
    let pem_err = |why: String| LnsError::Pem {
        path: path.display().to_string(),
        why,
    };
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_err("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// Why the LNS could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LnsError {
    /// The bind address is not loopback.
    #[error("the LNS only binds loopback addresses, not {addr}")]
    NotLoopback {
        /// The refused address.
        addr: SocketAddr,
    },
    /// Binding or starting the accept thread failed.
    #[error("LNS I/O on {addr}: {source}")]
    Io {
        /// The bind address.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// rustls refused the configuration (certificate/key mismatch, bad roots, ...).
    #[error("LNS TLS configuration: {0}")]
    Tls(String),
    /// A PEM file could not be used.
    #[error("PEM file {path}: {why}")]
    Pem {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
}

/// How a connection authenticated.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
pub enum LnsAuth {
    /// A client certificate naming the router.
    ClientCert,
    /// An `Authorization` header accepted by the token check.
    Token,
    /// Neither ([`LnsConfig::allow_unauthenticated`]).
    None,
}

/// What the LNS saw of one router.
#[derive(Clone, PartialEq, Eq, Debug, Default, serde::Serialize)]
pub struct LnsGatewayStats {
    /// Router-info exchanges answered with a muxs URI.
    pub router_info: u32,
    /// Muxs connections that sent their `version` message.
    pub muxs: u32,
    /// Router-info or muxs attempts refused (unknown router, identity mismatch).
    pub rejected: u32,
    /// How its last accepted connection authenticated.
    pub auth: Option<LnsAuth>,
    /// The `station` field of its last `version` message.
    pub last_version: Option<String>,
    /// A muxs connection is open now.
    pub connected: bool,
}

/// Something the LNS did (bounded log, [`MAX_EVENTS`]).
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize)]
pub enum LnsEvent {
    /// Router-info answered with a muxs URI.
    RouterInfo {
        /// The router.
        router: Eui64String,
        /// How it authenticated.
        auth: LnsAuth,
    },
    /// Router-info or muxs refused.
    Rejected {
        /// The router, when known.
        router: Option<Eui64String>,
        /// Why.
        reason: String,
    },
    /// A muxs connection sent its `version` message.
    MuxsConnected {
        /// The router.
        router: Eui64String,
        /// How it authenticated.
        auth: LnsAuth,
        /// The `station` version string.
        version: String,
    },
    /// A muxs connection closed.
    Closed {
        /// The router.
        router: Eui64String,
    },
}

/// An EUI in canonical text (16 lowercase hex digits), for events.
pub type Eui64String = String;

#[derive(Default)]
struct State {
    gateways: BTreeMap<Eui64, LnsGatewayStats>,
    events: VecDeque<LnsEvent>,
    conns: HashMap<u64, TcpStream>,
}

impl State {
    fn event(&mut self, ev: LnsEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(ev);
    }
}

struct Shared {
    cfg: LnsConfig,
    tls: Arc<ServerConfig>,
    port: u16,
    state: Mutex<State>,
    available: AtomicBool,
    refusing: AtomicBool,
    stopping: AtomicBool,
    next_id: AtomicU64,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn close_all(&self) {
        for s in self.state().conns.values() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// A running LNS endpoint (see the module docs). Stops on [`LnsServer::stop`] or drop.
pub struct LnsServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<Vec<JoinHandle<()>>>>,
}

impl std::fmt::Debug for LnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LnsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl LnsServer {
    /// Bind and start serving.
    ///
    /// # Errors
    /// [`LnsError::NotLoopback`], [`LnsError::Io`], [`LnsError::Tls`].
    pub fn start(cfg: LnsConfig) -> Result<Self, LnsError> {
        if !cfg.bind.ip().is_loopback() {
            return Err(LnsError::NotLoopback { addr: cfg.bind });
        }
        let tls = server_config(&cfg)?;
        let io_err = |source| LnsError::Io {
            addr: cfg.bind,
            source,
        };
        let listener = TcpListener::bind(cfg.bind).map_err(io_err)?;
        let addr = listener.local_addr().map_err(io_err)?;
        let shared = Arc::new(Shared {
            cfg,
            tls,
            port: addr.port(),
            state: Mutex::new(State::default()),
            available: AtomicBool::new(true),
            refusing: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("lns-accept".into())
            .spawn(move || accept_loop(&listener, &s))
            .map_err(|e| LnsError::Io { addr, source: e })?;
        tracing::info!(%addr, "LNS listening");
        Ok(Self {
            shared,
            addr,
            accept: Some(accept),
        })
    }

    /// The bound address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Up or down. Down = an outage: open connections are closed and new ones are closed
    /// right after accept.
    pub fn set_available(&self, up: bool) {
        self.shared.available.store(up, Ordering::SeqCst);
        if !up {
            self.shared.close_all();
        }
        tracing::info!(up, "LNS availability");
    }

    /// Refusing or not. Refusing = the LNS is reachable but turns every router away: each
    /// `router-info` is answered with an `"error"` (as an LNS whose backend is down does), which
    /// sends a station to CUPS at once (protocol doc §6) instead of after its TC retries.
    pub fn set_refusing(&self, refuse: bool) {
        self.shared.refusing.store(refuse, Ordering::SeqCst);
        if refuse {
            self.shared.close_all();
        }
        tracing::info!(refuse, "LNS refusing routers");
    }

    /// Per-router statistics.
    #[must_use]
    pub fn gateways(&self) -> BTreeMap<Eui64, LnsGatewayStats> {
        self.shared.state().gateways.clone()
    }

    /// The event log (oldest first, at most [`MAX_EVENTS`]).
    #[must_use]
    pub fn events(&self) -> Vec<LnsEvent> {
        self.shared.state().events.iter().cloned().collect()
    }

    /// Connections open now.
    #[must_use]
    pub fn open_connections(&self) -> usize {
        self.shared.state().conns.len()
    }

    /// Stop: close every connection and join the threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.close_all();
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.accept.take()
            && let Ok(workers) = h.join()
        {
            for w in workers {
                let _ = w.join();
            }
        }
    }
}

impl Drop for LnsServer {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.shutdown();
        }
    }
}

fn server_config(cfg: &LnsConfig) -> Result<Arc<ServerConfig>, LnsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| LnsError::Tls(e.to_string()))?;
    let builder = if cfg.client_roots.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        for r in &cfg.client_roots {
            roots
                .add(r.clone())
                .map_err(|e| LnsError::Tls(format!("client root: {e}")))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated()
            .build()
            .map_err(|e| LnsError::Tls(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    };
    let config = builder
        .with_single_cert(cfg.cert_chain.clone(), cfg.key.clone_key())
        .map_err(|e| LnsError::Tls(e.to_string()))?;
    Ok(Arc::new(config))
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) -> Vec<JoinHandle<()>> {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        workers.retain(|w| !w.is_finished());
        let (stream, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("LNS accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if !shared.available.load(Ordering::SeqCst) {
            tracing::debug!(%peer, "LNS unavailable: closing");
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        }
        if workers.len() >= MAX_CONNECTIONS {
            tracing::warn!(%peer, "LNS: {MAX_CONNECTIONS} connections open, closing");
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        }
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(clone) = stream.try_clone() {
            shared.state().conns.insert(id, clone);
        }
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("lns-conn".into())
            .spawn(move || {
                if let Err(e) = serve(stream, &s) {
                    tracing::debug!(%peer, "LNS connection: {e}");
                }
                s.state().conns.remove(&id);
            });
        match spawned {
            Ok(h) => workers.push(h),
            Err(e) => {
                tracing::warn!("LNS: cannot spawn: {e}");
                shared.state().conns.remove(&id);
            }
        }
    }
    workers
}

/// Why a connection ended early (logged at debug).
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    #[error("upgrade: {0}")]
    Handshake(#[from] ws::HandshakeError),
    #[error("frame: {0}")]
    Frame(#[from] ws::FrameError),
    #[error("connection closed before {0}")]
    Eof(&'static str),
    #[error("refused: {0}")]
    Refused(String),
}

type Tls = StreamOwned<ServerConnection, TcpStream>;

/// Reads frames from a TLS stream.
struct Reader {
    buf: Vec<u8>,
}

impl Reader {
    fn fill(&mut self, s: &mut Tls) -> Result<bool, ConnError> {
        let mut chunk = [0u8; CHUNK];
        match s.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buf
                    .extend_from_slice(chunk.get(..n).unwrap_or_default());
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The next frame; `None` on EOF. Pings are answered here.
    fn frame(&mut self, s: &mut Tls) -> Result<Option<ws::Frame>, ConnError> {
        loop {
            if let Some((f, used)) = ws::decode_frame(&self.buf, MAX_FRAME)? {
                self.buf.drain(..used);
                if f.opcode == Opcode::Ping {
                    send(s, Opcode::Pong, &f.payload)?;
                    continue;
                }
                if f.opcode == Opcode::Pong {
                    continue;
                }
                return Ok(Some(f));
            }
            if !self.fill(s)? {
                return Ok(None);
            }
        }
    }
}

fn send(s: &mut Tls, op: Opcode, payload: &[u8]) -> Result<(), ConnError> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    ws::encode_frame(&mut out, op, payload, None).map_err(|e| ConnError::Refused(e.to_string()))?;
    s.write_all(&out)?;
    s.flush()?;
    Ok(())
}

/// Close handshake from our side: send close, wait briefly for the peer's close or EOF.
fn close(s: &mut Tls, r: &mut Reader) {
    let _ = send(s, Opcode::Close, &1000u16.to_be_bytes());
    let _ = s.sock.set_read_timeout(Some(Duration::from_secs(2)));
    while let Ok(Some(f)) = r.frame(s) {
        if f.opcode == Opcode::Close {
            break;
        }
    }
    s.conn.send_close_notify();
    let _ = s.flush();
}

/// Who the connection is, by its credentials.
#[derive(Clone, Copy, Debug)]
struct Who {
    auth: LnsAuth,
    /// The router its credentials name (`None` for unauthenticated connections).
    eui: Option<Eui64>,
}

fn serve(tcp: TcpStream, shared: &Shared) -> Result<(), ConnError> {
    tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    tcp.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
    tcp.set_nodelay(true)?;
    let conn = ServerConnection::new(shared.tls.clone())
        .map_err(|e| ConnError::Refused(format!("TLS: {e}")))?;
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    let mut r = Reader { buf: Vec::new() };
    let (req, used) = loop {
        match ws::parse_request(&r.buf) {
            Ok(Some(x)) => break x,
            Ok(None) => {
                if !r.fill(&mut s)? {
                    return Err(ConnError::Eof("upgrade"));
                }
            }
            Err(e) => {
                let mut out = Vec::new();
                ws::write_server_refusal(&mut out, 400, "Bad Request");
                let _ = s.write_all(&out);
                return Err(e.into());
            }
        }
    };
    r.buf.drain(..used);
    let who = match identify(&s.conn, &req, shared) {
        Ok(w) => w,
        Err(reason) => {
            refuse(&mut s, 403, "Forbidden");
            shared.state().event(LnsEvent::Rejected {
                router: None,
                reason: reason.clone(),
            });
            return Err(ConnError::Refused(reason));
        }
    };
    if req.path == "/router-info" {
        router_info(&mut s, &mut r, &req, who, shared)
    } else if let Some(id) = req.path.strip_prefix("/traffic/") {
        muxs(&mut s, &mut r, &req, id, who, shared)
    } else {
        refuse(&mut s, 404, "Not Found");
        Err(ConnError::Refused(format!("path {}", req.path)))
    }
}

fn refuse(s: &mut Tls, status: u16, reason: &str) {
    let mut out = Vec::new();
    ws::write_server_refusal(&mut out, status, reason);
    let _ = s.write_all(&out);
    s.conn.send_close_notify();
    let _ = s.flush();
}

/// The connection's credentials → who it is.
fn identify(
    conn: &ServerConnection,
    req: &ws::UpgradeRequest,
    shared: &Shared,
) -> Result<Who, String> {
    if let Some(leaf) = conn.peer_certificates().and_then(<[_]>::first) {
        // The chain was verified by rustls against the client roots.
        return cert_eui(leaf.as_ref())
            .map(|eui| Who {
                auth: LnsAuth::ClientCert,
                eui: Some(eui),
            })
            .ok_or_else(|| "client certificate names no EUI".to_owned());
    }
    if let Some(value) = req.header("authorization") {
        let Some(check) = &shared.cfg.token_check else {
            return Err("token authentication not configured".into());
        };
        return check(value)
            .map(|eui| Who {
                auth: LnsAuth::Token,
                eui: Some(eui),
            })
            .ok_or_else(|| "token refused".to_owned());
    }
    if shared.cfg.allow_unauthenticated {
        return Ok(Who {
            auth: LnsAuth::None,
            eui: None,
        });
    }
    Err("no credentials".into())
}

/// The EUI a client certificate names: its CN (any form [`Eui64::parse`] reads) or a
/// `urn:dev:mac:<16 hex>` SAN URI; CN and SAN must agree.
#[must_use]
pub fn cert_eui(der: &[u8]) -> Option<Eui64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .find_map(|t| Eui64::parse(t).ok());
    let san = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|s| {
            s.value.general_names.iter().find_map(|n| match n {
                x509_parser::extensions::GeneralName::URI(u) => eui_from_urn(u),
                _ => None,
            })
        });
    match (cn, san) {
        (Some(a), Some(b)) if a != b => None,
        (Some(e), _) | (None, Some(e)) => Some(e),
        (None, None) => None,
    }
}

fn eui_from_urn(uri: &str) -> Option<Eui64> {
    const PREFIX: &str = "urn:dev:mac:";
    let p = uri.get(..PREFIX.len())?;
    if !p.eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    let digits = uri.get(PREFIX.len()..)?;
    if digits.len() != 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Eui64::parse(digits).ok()
}

/// The router named in a router-info request: an ID6 or hex string, or an integer.
#[must_use]
pub fn parse_router(v: &serde_json::Value) -> Option<Eui64> {
    match v {
        serde_json::Value::String(s) => Eui64::parse(s).ok(),
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| Eui64::new(n).ok()),
        _ => None,
    }
}

fn id6(eui: Eui64) -> String {
    eui.id6().to_string()
}

fn router_info(
    s: &mut Tls,
    r: &mut Reader,
    req: &ws::UpgradeRequest,
    who: Who,
    shared: &Shared,
) -> Result<(), ConnError> {
    let mut out = Vec::new();
    ws::write_server_accept(&mut out, &req.key);
    s.write_all(&out)?;
    s.flush()?;
    let frame = loop {
        match r.frame(s)? {
            None => return Err(ConnError::Eof("router-info request")),
            Some(f) if f.opcode == Opcode::Text => break f,
            Some(f) if f.opcode == Opcode::Close => {
                return Err(ConnError::Eof("router-info request"));
            }
            Some(_) => {}
        }
    };
    let msg: serde_json::Value = serde_json::from_slice(&frame.payload).unwrap_or_default();
    let raw = msg
        .get("router")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    let router = parse_router(&raw);
    let refusal = match router {
        None => Some("bad router id".to_owned()),
        Some(_) if shared.refusing.load(Ordering::SeqCst) => {
            Some("LNS not accepting routers".to_owned())
        }
        Some(eui) if who.eui.is_some_and(|w| w != eui) => {
            Some("router not authorised by these credentials".to_owned())
        }
        Some(eui)
            if shared
                .cfg
                .routers
                .as_ref()
                .is_some_and(|set| !set.contains(&eui)) =>
        {
            Some("unknown router".to_owned())
        }
        Some(_) => None,
    };
    let reply = match (&refusal, router) {
        (None, Some(eui)) => serde_json::json!({
            "router": raw,
            "muxs": MUXS_ID,
            "uri": format!("wss://{}:{}/traffic/{}", shared.cfg.public_host, shared.port, id6(eui)),
        }),
        (reason, _) => serde_json::json!({
            "router": raw,
            "error": reason.clone().unwrap_or_default(),
        }),
    };
    {
        let mut st = shared.state();
        match (&refusal, router) {
            (None, Some(eui)) => {
                let g = st.gateways.entry(eui).or_default();
                g.router_info += 1;
                g.auth = Some(who.auth);
                st.event(LnsEvent::RouterInfo {
                    router: eui.canonical().to_string(),
                    auth: who.auth,
                });
            }
            (reason, _) => {
                if let Some(eui) = router.or(who.eui) {
                    st.gateways.entry(eui).or_default().rejected += 1;
                }
                st.event(LnsEvent::Rejected {
                    router: router.map(|e| e.canonical().to_string()),
                    reason: reason.clone().unwrap_or_default(),
                });
            }
        }
    }
    tracing::debug!(?router, ok = refusal.is_none(), "LNS router-info");
    send(s, Opcode::Text, reply.to_string().as_bytes())?;
    close(s, r);
    Ok(())
}

fn muxs(
    s: &mut Tls,
    r: &mut Reader,
    req: &ws::UpgradeRequest,
    id: &str,
    who: Who,
    shared: &Shared,
) -> Result<(), ConnError> {
    let router = Eui64::parse(id).ok();
    let refusal = match router {
        None => Some("bad router id in path"),
        Some(eui) if who.eui.is_some_and(|w| w != eui) => Some("router not authorised"),
        Some(eui)
            if shared
                .cfg
                .routers
                .as_ref()
                .is_some_and(|set| !set.contains(&eui)) =>
        {
            Some("unknown router")
        }
        Some(_) => None,
    };
    let (Some(eui), None) = (router, refusal) else {
        let reason = refusal.unwrap_or_default().to_owned();
        {
            let mut st = shared.state();
            if let Some(e) = router {
                st.gateways.entry(e).or_default().rejected += 1;
            }
            st.event(LnsEvent::Rejected {
                router: router.map(|e| e.canonical().to_string()),
                reason: reason.clone(),
            });
        }
        refuse(s, 403, "Forbidden");
        return Err(ConnError::Refused(reason));
    };
    let mut out = Vec::new();
    ws::write_server_accept(&mut out, &req.key);
    s.write_all(&out)?;
    s.flush()?;
    s.sock.set_read_timeout(shared.cfg.idle_timeout)?;
    let name = eui.canonical().to_string();
    let mut connected = false;
    let result = loop {
        let f = match r.frame(s) {
            Ok(Some(f)) => f,
            Ok(None) => break Ok(()),
            Err(ConnError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                tracing::debug!(router = %name, "muxs idle: closing");
                close(s, r);
                break Ok(());
            }
            Err(e) => break Err(e),
        };
        match f.opcode {
            Opcode::Close => {
                let _ = send(s, Opcode::Close, f.payload.get(..2).unwrap_or_default());
                s.conn.send_close_notify();
                let _ = s.flush();
                break Ok(());
            }
            Opcode::Text if !connected => {
                let msg: serde_json::Value = serde_json::from_slice(&f.payload).unwrap_or_default();
                if msg.get("msgtype").and_then(|v| v.as_str()) != Some("version") {
                    tracing::debug!(router = %name, "muxs: message before version ignored");
                    continue;
                }
                let version = msg
                    .get("station")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned();
                connected = true;
                {
                    let mut st = shared.state();
                    let g = st.gateways.entry(eui).or_default();
                    g.muxs += 1;
                    g.auth = Some(who.auth);
                    g.last_version = Some(version.clone());
                    g.connected = true;
                    st.event(LnsEvent::MuxsConnected {
                        router: name.clone(),
                        auth: who.auth,
                        version,
                    });
                }
                tracing::info!(router = %name, auth = ?who.auth, "muxs connected");
                if let Some(rc) = &shared.cfg.router_config
                    && let Err(e) = send(s, Opcode::Text, rc.as_bytes())
                {
                    break Err(e);
                }
            }
            _ => {}
        }
    };
    if connected {
        let mut st = shared.state();
        if let Some(g) = st.gateways.get_mut(&eui) {
            g.connected = false;
        }
        st.event(LnsEvent::Closed { router: name });
    }
    result
}

/// Fuzz entry: a router-info request body as the LNS reads it.
pub fn fuzz_router_info(data: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = v.get("router").map(parse_router);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_forms() {
        let e = Eui64::new(0x0016_c001_ff10_a235).unwrap();
        assert_eq!(
            parse_router(&serde_json::json!("16:c001:ff10:a235")),
            Some(e)
        );
        assert_eq!(
            parse_router(&serde_json::json!("0016c001ff10a235")),
            Some(e)
        );
        assert_eq!(
            parse_router(&serde_json::json!(0x0016_c001_ff10_a235u64)),
            Some(e)
        );
        assert_eq!(parse_router(&serde_json::json!(0)), None);
        assert_eq!(parse_router(&serde_json::json!("x")), None);
        assert_eq!(parse_router(&serde_json::json!(null)), None);
    }

    #[test]
    fn urn_forms() {
        let e = Eui64::new(0x0016_c001_ff10_a235).unwrap();
        assert_eq!(eui_from_urn("urn:dev:mac:0016c001ff10a235"), Some(e));
        assert_eq!(eui_from_urn("URN:DEV:MAC:0016C001FF10A235"), Some(e));
        assert_eq!(eui_from_urn("urn:dev:mac:0016c001ff10a23"), None);
        assert_eq!(eui_from_urn("urn:dev:mac:0016c001ff10a2356"), None);
    }

    #[test]
    fn non_loopback_refused() {
        let cfg = LnsConfig::new(
            "192.0.2.1:0".parse().unwrap(),
            "lns",
            Vec::new(),
            PrivateKeyDer::Pkcs8(Vec::new().into()),
        );
        assert!(matches!(
            LnsServer::start(cfg),
            Err(LnsError::NotLoopback { .. })
        ));
    }
}
