//! Counters of the service, exported by the network layer as Prometheus metrics.
//!
//! Plain atomics: incrementing never blocks a request and reading is a snapshot good enough
//! for monitoring (each counter is monotonic on its own).

use std::sync::atomic::{AtomicU64, Ordering};

/// How one `update-info` request ended (the `outcome` label of the requests counter).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RequestOutcome {
    /// 200 with at least one segment.
    Updated,
    /// 200 "nothing to do" because there was nothing to do.
    NoChange,
    /// 200 "nothing to do" because the store failed (or a write lost too many races).
    StorageFallback,
    /// 200 "nothing to do" because of a server-side fault (minting, encoding): logged as an
    /// error.
    InternalFallback,
    /// 400: the body could not be decoded.
    BadRequest,
    /// 401: no credential, or an unknown one.
    Unauthenticated,
    /// 403: a valid credential that does not entitle this request.
    Forbidden,
    /// 404: the gateway is not registered.
    NotRegistered,
    /// 200 "nothing to do" because the gateway was served less than the rate-limit interval
    /// ago.
    RateLimited,
}

impl RequestOutcome {
    /// Every outcome, in label order.
    pub const ALL: [Self; 9] = [
        Self::Updated,
        Self::NoChange,
        Self::StorageFallback,
        Self::InternalFallback,
        Self::BadRequest,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::NotRegistered,
        Self::RateLimited,
    ];

    /// The Prometheus label value.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Updated => "updated",
            Self::NoChange => "no_change",
            Self::StorageFallback => "storage_fallback",
            Self::InternalFallback => "internal_fallback",
            Self::BadRequest => "bad_request",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotRegistered => "not_registered",
            Self::RateLimited => "rate_limited",
        }
    }

    /// The HTTP status sent for this outcome.
    #[must_use]
    pub const fn status(self) -> u16 {
        match self {
            Self::Updated
            | Self::NoChange
            | Self::StorageFallback
            | Self::InternalFallback
            | Self::RateLimited => 200,
            Self::BadRequest => 400,
            Self::Unauthenticated => 401,
            Self::Forbidden => 403,
            Self::NotRegistered => 404,
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::Updated => 0,
            Self::NoChange => 1,
            Self::StorageFallback => 2,
            Self::InternalFallback => 3,
            Self::BadRequest => 4,
            Self::Unauthenticated => 5,
            Self::Forbidden => 6,
            Self::NotRegistered => 7,
            Self::RateLimited => 8,
        }
    }
}

/// The service's counters. Shared by reference (`Service::metrics`), read by the exporter.
#[derive(Debug, Default)]
pub struct ServiceMetrics {
    requests: [AtomicU64; RequestOutcome::ALL.len()],
    /// Credential sets minted for a gateway that had none (CUPS and TC counted separately).
    pub credentials_minted: AtomicU64,
    /// Credential sets minted to replace one that expires within `min_valid_days`.
    pub credentials_renewed: AtomicU64,
    /// Rotations confirmed: a gateway reported the CRC of the credentials last sent.
    pub credentials_confirmed: AtomicU64,
    /// Responses that carried an update image.
    pub updates_served: AtomicU64,
    /// Store operations that failed (reads, writes, streams; lost races are not failures).
    pub storage_errors: AtomicU64,
    /// Requests answered "nothing to do" because of a server-side fault.
    pub internal_errors: AtomicU64,
    /// Conditional writes that lost a race and were retried on a fresh read.
    pub write_conflicts: AtomicU64,
}

impl ServiceMetrics {
    /// How many requests ended with `outcome`.
    #[must_use]
    pub fn requests(&self, outcome: RequestOutcome) -> u64 {
        self.requests
            .get(outcome.index())
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Count one request.
    pub(crate) fn count_request(&self, outcome: RequestOutcome) {
        if let Some(c) = self.requests.get(outcome.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Add one to `counter`.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A consistent-enough copy of every counter.
    #[must_use]
    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            requests: RequestOutcome::ALL.map(|o| (o, self.requests(o))),
            credentials_minted: load(&self.credentials_minted),
            credentials_renewed: load(&self.credentials_renewed),
            credentials_confirmed: load(&self.credentials_confirmed),
            updates_served: load(&self.updates_served),
            storage_errors: load(&self.storage_errors),
            internal_errors: load(&self.internal_errors),
            write_conflicts: load(&self.write_conflicts),
        }
    }
}

impl ServiceMetrics {
    /// Append every counter in the Prometheus text exposition format (for `/metrics`).
    pub fn write_prometheus(&self, out: &mut String) {
        use std::fmt::Write as _;
        let s = self.snapshot();
        let _ = writeln!(
            out,
            "# HELP cups_service_decisions_total update-info decisions of the service, by outcome.\n\
             # TYPE cups_service_decisions_total counter"
        );
        for (outcome, n) in s.requests {
            let _ = writeln!(
                out,
                "cups_service_decisions_total{{outcome=\"{}\"}} {n}",
                outcome.label()
            );
        }
        for (name, help, value) in [
            (
                "cups_credentials_minted_total",
                "Credential sets minted for gateways that had none.",
                s.credentials_minted,
            ),
            (
                "cups_credentials_renewed_total",
                "Client certificates renewed before expiry.",
                s.credentials_renewed,
            ),
            (
                "cups_credentials_confirmed_total",
                "Credential rotations confirmed by the gateway reporting the new CRC.",
                s.credentials_confirmed,
            ),
            (
                "cups_updates_served_total",
                "Responses that carried an update image.",
                s.updates_served,
            ),
            (
                "cups_storage_errors_total",
                "Store operations that failed.",
                s.storage_errors,
            ),
            (
                "cups_internal_errors_total",
                "Requests answered nothing-to-do because of a server-side fault.",
                s.internal_errors,
            ),
            (
                "cups_store_write_conflicts_total",
                "Conditional writes that lost a race and were retried.",
                s.write_conflicts,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
    }
}

/// A copy of [`ServiceMetrics`] at one moment.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MetricsSnapshot {
    /// Requests by outcome, in [`RequestOutcome::ALL`] order.
    pub requests: [(RequestOutcome, u64); RequestOutcome::ALL.len()],
    /// See [`ServiceMetrics::credentials_minted`].
    pub credentials_minted: u64,
    /// See [`ServiceMetrics::credentials_renewed`].
    pub credentials_renewed: u64,
    /// See [`ServiceMetrics::credentials_confirmed`].
    pub credentials_confirmed: u64,
    /// See [`ServiceMetrics::updates_served`].
    pub updates_served: u64,
    /// See [`ServiceMetrics::storage_errors`].
    pub storage_errors: u64,
    /// See [`ServiceMetrics::internal_errors`].
    pub internal_errors: u64,
    /// See [`ServiceMetrics::write_conflicts`].
    pub write_conflicts: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_outcome() {
        let m = ServiceMetrics::default();
        m.count_request(RequestOutcome::Forbidden);
        m.count_request(RequestOutcome::Forbidden);
        m.count_request(RequestOutcome::Updated);
        ServiceMetrics::bump(&m.storage_errors);
        assert_eq!(m.requests(RequestOutcome::Forbidden), 2);
        assert_eq!(m.requests(RequestOutcome::Updated), 1);
        assert_eq!(m.requests(RequestOutcome::NoChange), 0);
        let s = m.snapshot();
        assert_eq!(s.storage_errors, 1);
        assert_eq!(s.requests[6], (RequestOutcome::Forbidden, 2));
        let labels: std::collections::HashSet<_> =
            RequestOutcome::ALL.iter().map(|o| o.label()).collect();
        assert_eq!(labels.len(), RequestOutcome::ALL.len());
        assert!(
            RequestOutcome::ALL
                .iter()
                .all(|o| RequestOutcome::ALL[o.index()] == *o)
        );
    }
}
