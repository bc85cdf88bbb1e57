//! Accept loops, the connection limit, TLS handshakes, driving hyper connections, and the
//! graceful drain.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

use super::{MAX_HEAD_LEN, ServeConfig, ServeMetrics, Shared, UpdateInfoHandler};
use crate::service::PeerIdentity;

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Who is on the other end of a connection.
pub(super) struct ConnInfo {
    /// The TCP peer.
    pub(super) addr: SocketAddr,
    /// What TLS proved.
    pub(super) peer: PeerIdentity,
}

/// The hyper HTTP/1.1 server settings shared by both listeners.
pub(super) fn http_builder(config: &ServeConfig) -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(config.keep_alive)
        .max_buf_size(MAX_HEAD_LEN);
    b
}

/// Resolves when shutdown was requested (or the signal is gone, which means the same).
pub(super) async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Accept connections while permits last, spawn `on_conn` for each, stop on shutdown and
/// drain the spawned tasks for at most `drain`.
pub(super) async fn accept_loop<F, Fut>(
    name: &'static str,
    listener: TcpListener,
    max_connections: usize,
    drain: Duration,
    mut shutdown: watch::Receiver<bool>,
    mut on_conn: F,
) where
    F: FnMut(TcpStream, SocketAddr, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(max_connections));
    let mut tasks = JoinSet::new();
    loop {
        let permit = tokio::select! {
            biased;
            () = shutdown_requested(&mut shutdown) => break,
            p = Arc::clone(&limit).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // never closed
            },
        };
        let (stream, addr) = tokio::select! {
            biased;
            () = shutdown_requested(&mut shutdown) => break,
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            // Reap finished connections while idle (the permit is returned and re-acquired).
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let conn = on_conn(stream, addr, shutdown.clone());
        tasks.spawn(async move {
            conn.await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    let open = tasks.len();
    if open > 0 {
        tracing::info!(listener = name, open, "draining connections");
    }
    let drained =
        tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            listener = name,
            remaining = tasks.len(),
            "drain timeout: aborting the remaining connections"
        );
        tasks.shutdown().await;
    }
}

/// The CUPS listener.
pub(super) async fn cups_loop<H: UpdateInfoHandler>(
    listener: TcpListener,
    shared: Arc<Shared<H>>,
    shutdown: watch::Receiver<bool>,
) {
    let (max, drain) = (shared.config.max_connections, shared.config.drain_timeout);
    accept_loop(
        "cups",
        listener,
        max,
        drain,
        shutdown,
        |stream, addr, rx| cups_conn(Arc::clone(&shared), stream, addr, rx),
    )
    .await;
}

/// Decrements the open-connections gauge when the connection ends, however it ends.
struct OpenGuard(Arc<ServeMetrics>);

impl OpenGuard {
    fn new(metrics: &Arc<ServeMetrics>) -> Self {
        metrics.connections_accepted.inc();
        metrics.connections_open.inc();
        Self(Arc::clone(metrics))
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.connections_open.dec();
    }
}

/// One CUPS connection: TLS handshake (bounded), then HTTP.
async fn cups_conn<H: UpdateInfoHandler>(
    shared: Arc<Shared<H>>,
    stream: TcpStream,
    addr: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let _open = OpenGuard::new(&shared.metrics);
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = shared.tls.clone() else {
        let info = Arc::new(ConnInfo {
            addr,
            peer: PeerIdentity::Anonymous,
        });
        serve_cups_http(shared, stream, info, &mut shutdown).await;
        return;
    };
    let handshake =
        tokio::time::timeout(shared.config.tls_handshake_timeout, acceptor.accept(stream));
    let tls = tokio::select! {
        r = handshake => r,
        () = shutdown_requested(&mut shutdown) => {
            tracing::debug!(%addr, "shutdown during TLS handshake: connection dropped");
            return;
        }
    };
    let tls = match tls {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            shared.metrics.tls_handshake_failures.inc();
            tracing::debug!(%addr, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            shared.metrics.tls_handshake_timeouts.inc();
            tracing::debug!(
                %addr,
                timeout_s = shared.config.tls_handshake_timeout.as_secs_f64(),
                "TLS handshake timed out"
            );
            return;
        }
    };
    let peer = super::tls::peer_identity(tls.get_ref().1);
    let info = Arc::new(ConnInfo { addr, peer });
    serve_cups_http(shared, tls, info, &mut shutdown).await;
}

/// HTTP on an established CUPS connection.
async fn serve_cups_http<H, IO>(
    shared: Arc<Shared<H>>,
    io: IO,
    info: Arc<ConnInfo>,
    shutdown: &mut watch::Receiver<bool>,
) where
    H: UpdateInfoHandler,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let addr = info.addr;
    let metrics = Arc::clone(&shared.metrics);
    let stall = shared.config.write_stall_timeout;
    let http = shared.http.clone();
    let svc = hyper::service::service_fn(move |req| {
        let shared = Arc::clone(&shared);
        let info = Arc::clone(&info);
        async move { Ok::<_, Infallible>(super::http::handle(&shared, &info, req).await) }
    });
    let conn = http.serve_connection(TokioIo::new(StallGuard::new(io, stall)), svc);
    if let Err(e) = drive(conn, shutdown).await {
        metrics.connection_errors.inc();
        log_conn_error("cups", addr, &e);
    }
}

/// Run a hyper connection to its end; on shutdown let it finish the request in flight
/// (an idle connection closes at once).
pub(super) async fn drive<IO, S>(
    conn: http1::Connection<IO, S>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), hyper::Error>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(conn);
    tokio::select! {
        biased;
        r = conn.as_mut() => r,
        () = shutdown_requested(shutdown) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

/// One debug line per connection that ended in an error (client behaviour, not ours).
pub(super) fn log_conn_error(listener: &'static str, addr: SocketAddr, e: &hyper::Error) {
    if e.is_timeout() {
        tracing::debug!(listener, %addr, "request head not received in time: connection closed");
    } else if e.is_user() {
        tracing::warn!(listener, %addr, error = %e, "response aborted");
    } else {
        tracing::debug!(listener, %addr, error = %e, "connection error");
    }
}

/// An I/O wrapper that fails a write (or flush/shutdown) that made no progress for `limit`:
/// a peer that stops reading cannot hold a connection (and its permit) forever.
pub(super) struct StallGuard<T> {
    inner: T,
    limit: Duration,
    /// Created on the first stall, re-armed at the start of each later one.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether the timer runs for the current stall.
    armed: bool,
}

impl<T> StallGuard<T> {
    pub(super) fn new(inner: T, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            timer: None,
            armed: false,
        }
    }

    /// Called when a write returned `Pending`: whether the stall has lasted `limit`.
    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = Instant::now() + self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            timer.as_mut().reset(deadline);
            self.armed = true;
        }
        timer.as_mut().poll(cx).is_ready()
    }

    fn guard<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match r {
            Poll::Pending if self.stalled(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "peer stopped reading: write made no progress",
            ))),
            Poll::Pending => Poll::Pending,
            ready => {
                self.armed = false;
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.guard(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.guard(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.guard(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.guard(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn stall_guard_fails_a_write_nobody_reads() {
        let (client, _server) = tokio::io::duplex(64);
        let mut guarded = StallGuard::new(client, Duration::from_millis(50));
        let start = std::time::Instant::now();
        let r = guarded.write_all(&[0u8; 4096]).await;
        assert_eq!(r.map_err(|e| e.kind()), Err(io::ErrorKind::TimedOut));
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn stall_guard_lets_slow_but_moving_writes_through() {
        use tokio::io::AsyncReadExt;
        let (client, mut server) = tokio::io::duplex(64);
        let mut guarded = StallGuard::new(client, Duration::from_millis(100));
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 32];
            let mut total = 0usize;
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                match server.read(&mut buf).await {
                    Ok(0) | Err(_) => break total,
                    Ok(n) => total += n,
                }
            }
        });
        // 2 KiB at 32 bytes per 5 ms takes ~320 ms in total, far more than the limit, but
        // no single stall reaches it.
        let r = guarded.write_all(&[0u8; 2048]).await;
        assert!(r.is_ok());
        drop(guarded);
        assert_eq!(reader.await.ok(), Some(2048));
    }
}
