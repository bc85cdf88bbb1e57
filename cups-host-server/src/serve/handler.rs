//! [`UpdateInfoHandler`] for the real [`Service`]: the wiring between the two layers.

use std::future::Future;

use time::OffsetDateTime;

use super::UpdateInfoHandler;
use crate::service::{IncomingRequest, Outcome, Service};

impl UpdateInfoHandler for Service {
    /// [`Service::update_info`] at the current wall-clock time (the service itself never
    /// reads the clock).
    fn update_info(&self, req: IncomingRequest) -> impl Future<Output = Outcome> + Send {
        Service::update_info(self, req, OffsetDateTime::now_utc())
    }

    /// [`Service::ready`]: the store answers.
    fn ready(&self) -> impl Future<Output = bool> + Send {
        Service::ready(self)
    }

    /// The service's counters ([`crate::service::ServiceMetrics::write_prometheus`]).
    fn metrics_text(&self, out: &mut String) {
        self.metrics().write_prometheus(out);
    }
}
