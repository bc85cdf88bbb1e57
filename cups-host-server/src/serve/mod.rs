//! The network side: the HTTPS listener (rustls, TLS 1.2 + 1.3), `POST /update-info`, the
//! admin listener (`/healthz`, `/readyz`, `/metrics`), limits, timeouts, graceful shutdown.
//!
//! SKELETON: to be written.
