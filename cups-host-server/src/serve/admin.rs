//! The admin listener: `/healthz`, `/readyz`, `/metrics`, plain HTTP (loopback by default).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::conn::{StallGuard, accept_loop, drive, log_conn_error};
use super::http::text;
use super::{ADMIN_MAX_CONNECTIONS, READY_TIMEOUT, ResponseBody, Shared, UpdateInfoHandler};
use crate::metrics::CONTENT_TYPE;

/// The admin listener.
pub(super) async fn admin_loop<H: UpdateInfoHandler>(
    listener: TcpListener,
    shared: Arc<Shared<H>>,
    shutdown: watch::Receiver<bool>,
) {
    let drain = shared.config.drain_timeout;
    accept_loop(
        "admin",
        listener,
        ADMIN_MAX_CONNECTIONS,
        drain,
        shutdown,
        |stream, addr, rx| admin_conn(Arc::clone(&shared), stream, addr, rx),
    )
    .await;
}

async fn admin_conn<H: UpdateInfoHandler>(
    shared: Arc<Shared<H>>,
    stream: TcpStream,
    addr: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let stall = shared.config.write_stall_timeout;
    let http = shared.http.clone();
    let svc = hyper::service::service_fn(move |req| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(route(&shared, req).await) }
    });
    let conn = http.serve_connection(TokioIo::new(StallGuard::new(stream, stall)), svc);
    if let Err(e) = drive(conn, &mut shutdown).await {
        log_conn_error("admin", addr, &e);
    }
}

async fn route<H: UpdateInfoHandler>(
    shared: &Shared<H>,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let path = req.uri().path();
    if !matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return text(
            StatusCode::NOT_FOUND,
            "not found: /healthz, /readyz, /metrics",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: use GET",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/healthz" => text(StatusCode::OK, "ok"),
        "/readyz" => {
            let ready = tokio::time::timeout(READY_TIMEOUT, shared.handler.ready())
                .await
                .unwrap_or(false);
            if ready {
                text(StatusCode::OK, "ready")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: storage unreachable",
                )
            }
        }
        _ => {
            let mut out = String::with_capacity(8 * 1024);
            shared.metrics.render(&mut out);
            shared.handler.metrics_text(&mut out);
            let len = out.len();
            let mut r = Response::new(ResponseBody::full(out));
            let h = r.headers_mut();
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            r
        }
    }
}
