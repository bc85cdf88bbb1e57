//! The simulation clock: network time is real, station time is virtual.
//!
//! Both start at zero when the clock is made. Station (virtual) time is real elapsed time plus
//! everything skipped by [`SimClock::skip_to`]: the fleet skips only while no gateway is
//! interacting, so every interaction (and its connection timeout) runs in real time, and the
//! idle gaps between interactions (a 24 h `CUPS_OKSYNC_INTV`) cost nothing.

use std::time::Duration;

use cups_core::station::Instant as StationInstant;
use smoltcp::time::Instant as NetInstant;

/// Real time for the network, virtual time for station timers.
#[derive(Clone, Debug)]
pub struct SimClock {
    origin: std::time::Instant,
    skipped_ms: u64,
}

impl Default for SimClock {
    fn default() -> Self {
        Self::new()
    }
}

impl SimClock {
    /// A clock starting now (both times zero).
    #[must_use]
    pub fn new() -> Self {
        Self {
            origin: std::time::Instant::now(),
            skipped_ms: 0,
        }
    }

    /// Real time since the clock was made.
    #[must_use]
    pub fn real_elapsed(&self) -> Duration {
        self.origin.elapsed()
    }

    /// The real instant `d` after the clock was made.
    #[must_use]
    pub fn real_at(&self, d: Duration) -> std::time::Instant {
        self.origin + d
    }

    /// Network time (real elapsed) for smoltcp.
    #[must_use]
    pub fn net_now(&self) -> NetInstant {
        net_instant(self.real_elapsed())
    }

    /// Station time (real elapsed + skipped), in milliseconds.
    #[must_use]
    pub fn station_now(&self) -> StationInstant {
        StationInstant::from_millis(millis(self.real_elapsed()).saturating_add(self.skipped_ms))
    }

    /// Jump station time forward to `at` (no-op if `at` is not in the future).
    pub fn skip_to(&mut self, at: StationInstant) {
        let now = self.station_now().as_millis();
        self.skipped_ms = self
            .skipped_ms
            .saturating_add(at.as_millis().saturating_sub(now));
    }

    /// Station time skipped so far.
    #[must_use]
    pub fn skipped(&self) -> Duration {
        Duration::from_millis(self.skipped_ms)
    }
}

/// `d` as whole milliseconds (saturating).
#[must_use]
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `d` as a smoltcp instant.
#[must_use]
pub(crate) fn net_instant(d: Duration) -> NetInstant {
    NetInstant::from_micros(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A smoltcp instant as a duration since the clock's origin (negative clamps to zero).
#[must_use]
pub(crate) fn net_duration(t: NetInstant) -> Duration {
    Duration::from_micros(u64::try_from(t.total_micros()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_moves_station_time_only() {
        let mut c = SimClock::new();
        let before = c.net_now();
        c.skip_to(StationInstant::from_millis(86_400_000));
        assert!(c.station_now().as_millis() >= 86_400_000);
        assert!(c.net_now().total_millis() - before.total_millis() < 1000);
        // Skipping backwards is a no-op.
        let skipped = c.skipped();
        c.skip_to(StationInstant::from_millis(5));
        assert_eq!(c.skipped(), skipped);
    }

    #[test]
    fn conversions_round_trip() {
        let d = Duration::from_micros(1_234_567);
        assert_eq!(net_duration(net_instant(d)), d);
        assert_eq!(millis(d), 1234);
        assert_eq!(net_duration(NetInstant::from_micros(-5)), Duration::ZERO);
    }
}
