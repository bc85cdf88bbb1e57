//! The network layer's metrics and their `/metrics` rendering.

use std::time::Duration;

use crate::metrics::{Counter, CounterVec, Gauge, Histogram, LATENCY_BUCKETS, TextWriter};

/// HTTP statuses the CUPS listener answers with (any other is counted as `other`).
const STATUSES: &[&str] = &[
    "200", "400", "401", "403", "404", "405", "408", "411", "413", "429", "503",
];

/// Counters and gauges of the network layer (all atomics: shared by every connection).
#[derive(Debug)]
#[non_exhaustive]
pub struct ServeMetrics {
    /// CUPS connections accepted.
    pub connections_accepted: Counter,
    /// CUPS connections open now (handshaking or serving).
    pub connections_open: Gauge,
    /// TLS handshakes that failed (bad/expired/foreign client certificate, protocol errors,
    /// clients that closed mid-handshake).
    pub tls_handshake_failures: Counter,
    /// TLS handshakes that did not finish within the handshake timeout.
    pub tls_handshake_timeouts: Counter,
    /// HTTP-level connection errors (header timeouts, malformed heads, resets, stalled writes).
    pub connection_errors: Counter,
    /// `/update-info` requests by response status.
    pub update_info_requests: CounterVec,
    /// Requests to other paths or with other methods, by status (404, 405).
    pub other_requests: CounterVec,
    /// Time from the request head to the response head of `/update-info`.
    pub update_info_duration: Histogram,
    /// Responses that carried an update.
    pub updates_streamed: Counter,
    /// Update bytes written to bodies.
    pub update_bytes_sent: Counter,
    /// Update streams aborted (store error, wrong length).
    pub update_stream_errors: Counter,
}

impl Default for ServeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ServeMetrics {
    /// All zero.
    #[must_use]
    pub fn new() -> Self {
        Self {
            connections_accepted: Counter::new(),
            connections_open: Gauge::new(),
            tls_handshake_failures: Counter::new(),
            tls_handshake_timeouts: Counter::new(),
            connection_errors: Counter::new(),
            update_info_requests: CounterVec::new("status", STATUSES),
            other_requests: CounterVec::new("status", STATUSES),
            update_info_duration: Histogram::new(LATENCY_BUCKETS),
            updates_streamed: Counter::new(),
            update_bytes_sent: Counter::new(),
            update_stream_errors: Counter::new(),
        }
    }

    /// Count one finished `/update-info` request.
    pub(super) fn update_info_done(&self, status: hyper::StatusCode, took: Duration) {
        self.update_info_requests.inc(status.as_str());
        self.update_info_duration.observe(took);
    }

    /// Append the Prometheus text of these metrics.
    pub fn render(&self, out: &mut String) {
        let mut w = TextWriter::new(out);
        w.counter(
            "cups_connections_accepted_total",
            "CUPS connections accepted.",
            &self.connections_accepted,
        );
        w.gauge(
            "cups_connections_open",
            "CUPS connections open now (handshaking or serving).",
            &self.connections_open,
        );
        w.counter(
            "cups_tls_handshake_failures_total",
            "TLS handshakes that failed (including refused client certificates).",
            &self.tls_handshake_failures,
        );
        w.counter(
            "cups_tls_handshake_timeouts_total",
            "TLS handshakes that did not finish within the handshake timeout.",
            &self.tls_handshake_timeouts,
        );
        w.counter(
            "cups_connection_errors_total",
            "HTTP connection errors (header timeouts, malformed requests, resets, stalled writes).",
            &self.connection_errors,
        );
        w.counter_vec(
            "cups_update_info_requests_total",
            "POST /update-info requests by response status.",
            &self.update_info_requests,
        );
        w.counter_vec(
            "cups_other_requests_total",
            "Requests for other paths or methods, by response status.",
            &self.other_requests,
        );
        w.histogram(
            "cups_update_info_duration_seconds",
            "Time from the request head to the response head of POST /update-info.",
            &self.update_info_duration,
        );
        w.counter(
            "cups_updates_streamed_total",
            "Responses that carried an update.",
            &self.updates_streamed,
        );
        w.counter(
            "cups_update_bytes_sent_total",
            "Update bytes written to response bodies.",
            &self.update_bytes_sent,
        );
        w.counter(
            "cups_update_stream_errors_total",
            "Update streams aborted (store error or wrong length).",
            &self.update_stream_errors,
        );
    }
}
