//! The network side: the HTTPS listener (rustls, TLS 1.2 + 1.3), `POST /update-info`, the
//! admin listener (`/healthz`, `/readyz`, `/metrics`), limits, timeouts, graceful shutdown.
//!
//! ```text
//!  TCP accept ──(connection permit: at most max_connections)──▶ TLS handshake (timeout)
//!     │                                                          │ verified client leaf → PeerIdentity
//!     ▼                                                          ▼
//!  hyper HTTP/1.1 (header timeout, keep-alive) ──▶ POST /update-info
//!        Content-Length required (411), ≤ MAX_BODY_LEN (413), body read with a timeout (408)
//!        ──▶ UpdateInfoHandler::update_info(IncomingRequest) ──▶ Outcome
//!        ──▶ 200 + Content-Length, body = head ‖ update streamed chunk by chunk
//!            or the Reject status + one line of text
//! ```
//!
//! The layer knows nothing about gateways: it turns bytes into an [`IncomingRequest`] and an
//! [`Outcome`] into bytes. [`UpdateInfoHandler`] is the boundary;
//! [`crate::service::Service`] implements it (stamping each request with the wall clock).
//!
//! # Limits and timeouts
//!
//! | what | default | on violation |
//! |---|---|---|
//! | request body | [`MAX_BODY_LEN`] (8 KiB) | 413, connection closed |
//! | request body without `Content-Length` (incl. chunked) | — | 411, connection closed |
//! | TLS handshake | [`TLS_HANDSHAKE_TIMEOUT`] (30 s) | connection dropped, counted |
//! | request head (also the keep-alive idle time) | [`HEADER_READ_TIMEOUT`] (30 s) | connection closed |
//! | request body after the head | [`BODY_READ_TIMEOUT`] (30 s) | 408, connection closed |
//! | a response write making no progress | [`WRITE_STALL_TIMEOUT`] (60 s) | connection dropped |
//! | connections | [`DEFAULT_MAX_CONNECTIONS`] | **wait**: not accepted until one closes |
//! | drain on shutdown | [`DRAIN_TIMEOUT`] (30 s) | remaining connections aborted |
//!
//! Connections beyond the limit are not refused: the listener stops calling `accept` until a
//! connection closes, so they wait in the kernel's listen backlog. A station whose connect
//! is refused counts the attempt as failed and retries only after a minute, while one that
//! waits a few hundred milliseconds during a reconnect storm simply succeeds.
//!
//! # Listeners
//!
//! * CUPS: [`DEFAULT_LISTEN`] (`0.0.0.0:16050`); TLS unless `tls` is `None`
//!   (`--insecure-http`). Only `POST /update-info`; other paths 404, other methods 405.
//! * Admin: [`DEFAULT_ADMIN_LISTEN`] (`127.0.0.1:16051`), plain HTTP, loopback by default:
//!   `GET /healthz` (200 `ok` while the process runs), `GET /readyz` (200 when
//!   [`UpdateInfoHandler::ready`], else 503), `GET /metrics` (Prometheus text).
//!
//! # Shutdown
//!
//! When the `shutdown` future completes, both listeners stop accepting, idle keep-alive
//! connections and unfinished handshakes are closed, in-flight requests finish (their
//! connections then close), and [`Server::run`] returns after at most [`DRAIN_TIMEOUT`].

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::service::{IncomingRequest, Outcome};

mod admin;
mod body;
mod conn;
mod handler;
mod http;
mod stats;
mod tls;

pub use body::{ResponseBody, ResponseBodyError};
pub use stats::ServeMetrics;
pub use tls::{TlsConfigError, peer_identity, server_config, server_config_from_pki};

/// The path stations post to (they append it to `cups.uri` themselves).
pub const UPDATE_INFO_PATH: &str = "/update-info";

/// Largest accepted request body (the station's `CUPS_BUFSZ`); larger → 413.
pub const MAX_BODY_LEN: usize = cups_core::request::MAX_BODY_LEN;

/// Refused request bodies (over [`MAX_BODY_LEN`], or chunked) up to this length are read and
/// dropped before the error response, so the client is not reset before it reads the answer.
pub const MAX_DISCARD_LEN: usize = 64 * 1024;

/// How long a refused body is read and dropped at most (see [`MAX_DISCARD_LEN`]).
pub const DISCARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Default TLS handshake timeout: generous, gateways without crypto acceleration take seconds.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Default time to receive a complete request head; also how long an idle keep-alive
/// connection is kept open waiting for its next request.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Default time to receive the request body once the head arrived (a `Content-Length` larger
/// than the bytes sent ends here, with 408).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Default time a response write may make no progress before the connection is dropped
/// (the station re-arms a 60 s timer per chunk it receives).
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Default bound on how long shutdown waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Default number of simultaneously open CUPS connections (handshaking or serving).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// Number of simultaneously open admin connections.
pub const ADMIN_MAX_CONNECTIONS: usize = 32;

/// How long `/readyz` waits for [`UpdateInfoHandler::ready`] before answering 503.
pub const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// hyper's read buffer limit: a request head larger than this is answered 431.
pub const MAX_HEAD_LEN: usize = 16 * 1024;

/// Default CUPS listen address (stations need a port in `cups.uri`).
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 16050));

/// Default admin listen address: loopback only.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 16051));

/// Listener addresses, limits and timeouts. [`Default`] gives the documented defaults.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Where stations connect.
    pub listen: SocketAddr,
    /// The admin listener (`None`: no admin listener).
    pub admin_listen: Option<SocketAddr>,
    /// At most this many CUPS connections at once; further ones wait (see the module docs).
    pub max_connections: usize,
    /// TLS handshake timeout.
    pub tls_handshake_timeout: Duration,
    /// Request head timeout (and keep-alive idle time).
    pub header_read_timeout: Duration,
    /// Request body timeout.
    pub body_read_timeout: Duration,
    /// Write stall timeout.
    pub write_stall_timeout: Duration,
    /// Shutdown drain bound.
    pub drain_timeout: Duration,
    /// Whether connections are kept open for further requests (the station closes after
    /// one request itself; other clients may reuse the connection).
    pub keep_alive: bool,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            admin_listen: Some(DEFAULT_ADMIN_LISTEN),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            tls_handshake_timeout: TLS_HANDSHAKE_TIMEOUT,
            header_read_timeout: HEADER_READ_TIMEOUT,
            body_read_timeout: BODY_READ_TIMEOUT,
            write_stall_timeout: WRITE_STALL_TIMEOUT,
            drain_timeout: DRAIN_TIMEOUT,
            keep_alive: true,
        }
    }
}

/// What the network layer needs from the service. [`crate::service::Service`] implements
/// it; tests and benchmarks use small handlers of their own.
pub trait UpdateInfoHandler: Send + Sync + 'static {
    /// Answer one `POST /update-info` (the body is complete and at most [`MAX_BODY_LEN`]).
    /// Every request that reaches the handler gets exactly the outcome it returns.
    fn update_info(&self, req: IncomingRequest) -> impl Future<Output = Outcome> + Send;

    /// Whether the server can do its job (the store is reachable): `/readyz`.
    fn ready(&self) -> impl Future<Output = bool> + Send;

    /// Append the handler's own metrics (Prometheus text format) for `/metrics`.
    fn metrics_text(&self, out: &mut String);
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bound address could not be read back.
    #[error("cannot read the local address of the listener on {addr}: {source}")]
    LocalAddr {
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// `max_connections` is zero.
    #[error("max_connections must be at least 1")]
    NoConnections,
}

/// What every connection task shares.
struct Shared<H> {
    handler: Arc<H>,
    config: ServeConfig,
    metrics: Arc<ServeMetrics>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    http: hyper::server::conn::http1::Builder,
}

/// Bound listeners, ready to [`run`](Server::run). Binding first lets callers learn the
/// ports (tests bind port 0) and report bind errors before anything else starts.
pub struct Server<H> {
    listener: TcpListener,
    local_addr: SocketAddr,
    admin: Option<(TcpListener, SocketAddr)>,
    shared: Arc<Shared<H>>,
}

impl<H> std::fmt::Debug for Server<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("admin_addr", &self.admin.as_ref().map(|a| a.1))
            .field("tls", &self.shared.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl<H: UpdateInfoHandler> Server<H> {
    /// Bind the CUPS listener (and the admin listener, if configured). `tls` = `None` serves
    /// plain HTTP (`--insecure-http`; every peer is then [`crate::service::PeerIdentity::Anonymous`]).
    pub async fn bind(
        config: ServeConfig,
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: Arc<H>,
    ) -> Result<Self, ServeError> {
        if config.max_connections == 0 {
            return Err(ServeError::NoConnections);
        }
        let (listener, local_addr) = bind(config.listen).await?;
        let admin = match config.admin_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let shared = Arc::new(Shared {
            handler,
            http: conn::http_builder(&config),
            config,
            metrics: Arc::new(ServeMetrics::new()),
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
        });
        Ok(Self {
            listener,
            local_addr,
            admin,
            shared,
        })
    }

    /// The CUPS listener's address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The admin listener's address, if there is one.
    #[must_use]
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.1)
    }

    /// The network layer's metrics (also rendered on `/metrics`).
    #[must_use]
    pub fn metrics(&self) -> Arc<ServeMetrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// Serve until `shutdown` completes, then drain (see the module docs). Accept errors are
    /// logged and retried, so this returns `Ok` once drained.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
        let Self {
            listener,
            local_addr,
            admin,
            shared,
        } = self;
        if shared.tls.is_none() {
            tracing::warn!(%local_addr, "serving plain HTTP (--insecure-http): stations send tokens only over TLS");
        }
        tracing::info!(%local_addr, tls = shared.tls.is_some(), "CUPS listener ready");
        let (tx, rx) = watch::channel(false);
        let signal = async move {
            shutdown.await;
            tracing::info!("shutdown requested: no new connections, draining");
            let _ = tx.send(true);
        };
        let cups = conn::cups_loop(listener, Arc::clone(&shared), rx.clone());
        let admin = async {
            if let Some((listener, addr)) = admin {
                tracing::info!(%addr, "admin listener ready");
                admin::admin_loop(listener, Arc::clone(&shared), rx.clone()).await;
            }
        };
        tokio::join!(signal, cups, admin);
        tracing::info!("server stopped");
        Ok(())
    }
}

/// Bind and serve until `shutdown` completes: [`Server::bind`] then [`Server::run`].
pub async fn run<H: UpdateInfoHandler>(
    config: ServeConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    Server::bind(config, tls, handler)
        .await?
        .run(shutdown)
        .await
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServeError::LocalAddr { addr, source })?;
    Ok((listener, local))
}
