//! `POST /update-info`: request checks, the bounded body read, and turning an [`Outcome`]
//! into a response. Every status this layer decides itself is here, in one place.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::FutureExt as _;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::conn::ConnInfo;
use super::{
    DISCARD_TIMEOUT, MAX_BODY_LEN, MAX_DISCARD_LEN, ResponseBody, Shared, UPDATE_INFO_PATH,
    UpdateInfoHandler,
};
use crate::service::{IncomingRequest, Outcome};

/// `Content-Type` of CUPS response bodies.
const CUPS_CONTENT_TYPE: &str = "application/octet-stream";

/// `Content-Type` of one-line text bodies.
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// Route one request on the CUPS listener.
pub(super) async fn handle<H: UpdateInfoHandler>(
    shared: &Arc<Shared<H>>,
    info: &ConnInfo,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    if req.uri().path() != UPDATE_INFO_PATH {
        shared.metrics.other_requests.inc("404");
        return close(text(
            StatusCode::NOT_FOUND,
            "not found: this server answers POST /update-info",
        ));
    }
    if req.method() != Method::POST {
        shared.metrics.other_requests.inc("405");
        let mut r = close(text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: use POST",
        ));
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let start = Instant::now();
    let resp = update_info(shared, info, req).await;
    shared
        .metrics
        .update_info_done(resp.status(), start.elapsed());
    resp
}

async fn update_info<H: UpdateInfoHandler>(
    shared: &Arc<Shared<H>>,
    info: &ConnInfo,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let addr = info.addr;
    let headers = req.headers();
    // hyper has already refused malformed or conflicting Content-Length values (400).
    if headers.contains_key(header::TRANSFER_ENCODING) {
        tracing::debug!(%addr, "update-info with Transfer-Encoding: 411");
        discard(
            req.into_body(),
            shared.config.body_read_timeout.min(DISCARD_TIMEOUT),
        )
        .await;
        return close(text(
            StatusCode::LENGTH_REQUIRED,
            "chunked request bodies are not supported: send Content-Length",
        ));
    }
    if !headers.contains_key(header::CONTENT_LENGTH) {
        tracing::debug!(%addr, "update-info without Content-Length: 411");
        return close(text(StatusCode::LENGTH_REQUIRED, "Content-Length required"));
    }
    let declared = req.body().size_hint().exact().unwrap_or(u64::MAX);
    if usize::try_from(declared).map_or(true, |n| n > MAX_BODY_LEN) {
        tracing::debug!(%addr, declared, "update-info body too large: 413");
        discard(
            req.into_body(),
            shared.config.body_read_timeout.min(DISCARD_TIMEOUT),
        )
        .await;
        return close(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body of {declared} bytes exceeds the limit of {MAX_BODY_LEN}"),
        ));
    }
    // The token header goes to the service as is; it is never logged.
    let authorization = match headers.get(header::AUTHORIZATION).map(HeaderValue::to_str) {
        None => None,
        Some(Ok(v)) => Some(v.to_owned()),
        Some(Err(_)) => {
            tracing::debug!(%addr, "Authorization header is not visible ASCII: 400");
            return close(text(
                StatusCode::BAD_REQUEST,
                "Authorization header is not visible ASCII",
            ));
        }
    };
    let body = match read_body(req.into_body(), shared.config.body_read_timeout).await {
        Ok(body) => body,
        Err(resp) => {
            tracing::debug!(%addr, status = resp.status().as_u16(), "update-info body not read");
            return resp;
        }
    };
    let outcome = shared
        .handler
        .update_info(IncomingRequest {
            peer: info.peer.clone(),
            authorization,
            body,
        })
        .await;
    match outcome {
        Outcome::Respond {
            head,
            content_length,
            update,
        } => {
            let update_len = update.as_ref().map_or(0, |u| u.len);
            let head_len = u64::try_from(head.len()).unwrap_or(u64::MAX);
            let total = head_len.saturating_add(update_len);
            if content_length != total {
                // The bytes we send are what counts; the station reads exactly
                // Content-Length bytes, so it must be the length of those bytes.
                tracing::warn!(
                    %addr,
                    declared = content_length,
                    total,
                    "handler's content_length differs from head + update: sending head + update"
                );
            }
            let body = match update {
                Some(u) => {
                    shared.metrics.updates_streamed.inc();
                    ResponseBody::streamed(head, u, Some(Arc::clone(&shared.metrics)))
                }
                None => ResponseBody::full(head),
            };
            let mut r = Response::new(body);
            let h = r.headers_mut();
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(CUPS_CONTENT_TYPE),
            );
            r
        }
        Outcome::Reject { status, reason } => {
            let code = StatusCode::from_u16(status)
                .ok()
                .filter(|s| s.is_client_error() || s.is_server_error())
                .unwrap_or_else(|| {
                    tracing::error!(%addr, status, "handler rejected with a non-error status: sending 500");
                    StatusCode::INTERNAL_SERVER_ERROR
                });
            tracing::debug!(%addr, status = code.as_u16(), %reason, "update-info rejected");
            text(code, &reason)
        }
    }
}

/// Read the whole body (its length was checked against [`MAX_BODY_LEN`]) within `timeout`.
async fn read_body(
    body: Incoming,
    timeout: std::time::Duration,
) -> Result<Bytes, Response<ResponseBody>> {
    let collect = Limited::new(body, MAX_BODY_LEN).collect();
    let mut collect = std::pin::pin!(collect);
    // Usually the body arrived with the head: hyper hands it over as soon as its connection
    // task runs again, so give it one turn before arming a timer (arming one per request
    // costs a runtime wake-up, measurable on the no-change path).
    let mut done = collect.as_mut().now_or_never().map(Ok);
    if done.is_none() {
        tokio::task::yield_now().await;
        done = collect.as_mut().now_or_never().map(Ok);
    }
    let done = match done {
        Some(r) => r,
        None => tokio::time::timeout(timeout, collect).await,
    };
    match done {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(close(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body exceeds the limit of {MAX_BODY_LEN} bytes"),
        ))),
        Ok(Err(_)) => Err(close(text(
            StatusCode::BAD_REQUEST,
            "request body incomplete",
        ))),
        Err(_) => Err(close(text(
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "request body not received within {} s: is Content-Length right?",
                timeout.as_secs_f64()
            ),
        ))),
    }
}

/// Read and drop at most [`MAX_DISCARD_LEN`] bytes of a refused body (within `timeout`,
/// at most [`DISCARD_TIMEOUT`]), so
/// that closing the connection afterwards does not reset it while the client is still
/// sending: a reset can destroy the error response before the client reads it. Longer
/// bodies are not read; their senders may see a reset instead of the response.
async fn discard(mut body: Incoming, timeout: std::time::Duration) {
    let drain = async {
        let mut seen = 0usize;
        while seen <= MAX_DISCARD_LEN {
            match body.frame().await {
                Some(Ok(frame)) => {
                    let n = frame.data_ref().map_or(0, Bytes::len);
                    seen = seen.saturating_add(n);
                }
                Some(Err(_)) | None => break,
            }
        }
    };
    let _ = tokio::time::timeout(timeout, drain).await;
}

/// A response with a one-line text body (control characters replaced by spaces).
pub(super) fn text(status: StatusCode, line: &str) -> Response<ResponseBody> {
    let mut body: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    body.push('\n');
    let len = body.len();
    let mut r = Response::new(ResponseBody::full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(TEXT_CONTENT_TYPE),
    );
    r
}

/// Close the connection after this response (its request body was not, or not fully, read).
fn close(mut r: Response<ResponseBody>) -> Response<ResponseBody> {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}
