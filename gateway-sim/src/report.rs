//! What a run did: per gateway, an **outcome** (deterministic: the same seed gives the same
//! outcomes) and **metrics** (real-time measurements: latencies, bytes, packets), and a
//! [`Summary`] over the fleet.
//!
//! [`Report::outcome_snapshot`] renders only the deterministic part, one line per gateway, for
//! snapshot tests; [`Report::summary_table`] is for people; [`Report::to_json`] for machines.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::net::{FaultStats, UplinkStats};

/// Interaction results kept per gateway in [`GatewayOutcome::history`]; later ones are only
/// counted.
pub const MAX_HISTORY: usize = 16;

/// Where a gateway ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize)]
pub enum GatewayStatus {
    /// No interaction finished yet.
    #[default]
    Pending,
    /// The last interaction succeeded.
    Done,
    /// The last interaction failed.
    Failed,
}

impl GatewayStatus {
    fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// The deterministic outcome of one gateway.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize)]
pub struct GatewayOutcome {
    /// Index in the fleet.
    pub index: u32,
    /// EUI, canonical (16 lowercase hex digits).
    pub eui: String,
    /// Last result.
    pub status: GatewayStatus,
    /// Interactions started (requests).
    pub interactions: u32,
    /// Interactions that succeeded.
    pub done: u32,
    /// Interactions that failed.
    pub failed: u32,
    /// Interactions that were retries (after a failure).
    pub retries: u32,
    /// Interactions made with the backup set.
    pub on_backup: u32,
    /// Interactions made with the bootstrap set.
    pub on_boot: u32,
    /// Updates verified (or unsigned) and run.
    pub updates_run: u32,
    /// Updates run that installed a version.
    pub updates_applied: u32,
    /// Updates rejected (signature).
    pub updates_rejected: u32,
    /// Updates run that the update model did not recognise.
    pub updates_unrecognised: u32,
    /// Credential blobs stored.
    pub creds_stored: u32,
    /// Credential blobs the station could not split.
    pub creds_rejected: u32,
    /// TC (LNS) restarts asked for.
    pub tc_restarts: u32,
    /// Backups of the regular set made.
    pub backups: u32,
    /// The set the next interaction uses.
    pub credset: String,
    /// `version.txt`.
    pub package: Option<String>,
    /// The CUPS credential CRC it reports.
    pub cups_cred_crc: u32,
    /// The TC credential CRC it reports.
    pub tc_cred_crc: u32,
    /// `tc.uri`.
    pub tc_uri: Option<String>,
    /// Interaction results in order (first [`MAX_HISTORY`]).
    pub history: Vec<String>,
    /// Results beyond [`MAX_HISTORY`].
    pub history_dropped: u32,
    /// Successful TC (LNS) connects: router-info + muxs + `version` acknowledged
    /// ([`crate::FleetConfig::tc_connect`]).
    pub tc_sessions: u32,
    /// Failed TC attempts.
    pub tc_failures: u32,
    /// The TC session is held now (the station's `tc_connected`).
    pub tc_connected: bool,
}

impl GatewayOutcome {
    pub(crate) fn record(&mut self, entry: String) {
        if self.history.len() < MAX_HISTORY {
            self.history.push(entry);
        } else {
            self.history_dropped += 1;
        }
    }
}

/// Real-time measurements of one gateway (not deterministic).
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize)]
pub struct GatewayMetrics {
    /// TLS/TCP payload bytes sent.
    pub bytes_tx: u64,
    /// TLS/TCP payload bytes received.
    pub bytes_rx: u64,
    /// Sum of interaction latencies (connect to outcome), microseconds.
    pub latency_total_us: u64,
    /// Longest interaction, microseconds.
    pub latency_max_us: u64,
    /// Interactions that negotiated TLS 1.3.
    pub tls13: u32,
    /// TC (LNS) bytes sent (TLS records).
    pub tc_bytes_tx: u64,
    /// TC bytes received.
    pub tc_bytes_rx: u64,
    /// Sum of TC attempt latencies (router-info connect to connected or failed), microseconds.
    pub tc_latency_total_us: u64,
    /// Link fault statistics.
    pub link: FaultStats,
}

/// Fleet totals.
#[derive(Clone, PartialEq, Debug, Default, Serialize)]
pub struct Summary {
    /// Gateways.
    pub gateways: u32,
    /// Gateways whose last interaction succeeded.
    pub done: u32,
    /// Gateways whose last interaction failed.
    pub failed: u32,
    /// Gateways without a finished interaction.
    pub pending: u32,
    /// Interactions (requests).
    pub requests: u64,
    /// Interactions that succeeded.
    pub requests_done: u64,
    /// Interactions that failed.
    pub requests_failed: u64,
    /// Failed interactions by reason.
    pub failures: BTreeMap<String, u64>,
    /// Retries.
    pub retries: u64,
    /// Interactions on the backup set.
    pub fallbacks_backup: u64,
    /// Interactions on the bootstrap set.
    pub fallbacks_boot: u64,
    /// Updates that installed a version.
    pub updates_applied: u64,
    /// Updates rejected.
    pub updates_rejected: u64,
    /// Credential blobs stored.
    pub creds_stored: u64,
    /// Credential blobs rejected.
    pub creds_rejected: u64,
    /// TC restarts.
    pub tc_restarts: u64,
    /// Gateways holding a TC session now.
    pub tc_connected: u32,
    /// Successful TC connects.
    pub tc_sessions: u64,
    /// Failed TC attempts.
    pub tc_failures: u64,
    /// TC bytes sent by gateways.
    pub tc_bytes_tx: u64,
    /// TC bytes received by gateways.
    pub tc_bytes_rx: u64,
    /// TC connect latency (router-info start to connected) percentiles, milliseconds.
    pub tc_latency_p50_ms: f64,
    /// 99th percentile.
    pub tc_latency_p99_ms: f64,
    /// Bytes sent by gateways.
    pub bytes_tx: u64,
    /// Bytes received by gateways.
    pub bytes_rx: u64,
    /// Interaction latency percentiles, milliseconds.
    pub latency_p50_ms: f64,
    /// 95th percentile.
    pub latency_p95_ms: f64,
    /// 99th percentile.
    pub latency_p99_ms: f64,
    /// Longest.
    pub latency_max_ms: f64,
    /// Packets lost on links.
    pub packets_lost: u64,
    /// Connections cut by stream faults.
    pub cuts: u64,
    /// Real time of the run(s), seconds.
    pub real_s: f64,
    /// Station (virtual) time covered, seconds.
    pub virtual_s: f64,
    /// Interactions per real second.
    pub requests_per_s: f64,
    /// CPU time of the simulator itself (its thread: every gateway's TLS, TCP/IP, the
    /// uplink's relays), seconds; `None` where the OS does not tell.
    pub sim_cpu_s: Option<f64>,
    /// Simulator CPU time per interaction, microseconds.
    pub sim_cpu_per_request_us: Option<f64>,
}

/// A run's report.
#[derive(Clone, PartialEq, Debug, Default, Serialize)]
pub struct Report {
    /// Fleet totals.
    pub summary: Summary,
    /// Per-gateway outcomes (deterministic).
    pub gateways: Vec<GatewayOutcome>,
    /// Per-gateway measurements.
    pub metrics: Vec<GatewayMetrics>,
    /// The uplink's counters.
    pub uplink: UplinkStats,
}

/// The value at quantile `q` of sorted `v` (nearest rank), in milliseconds.
fn percentile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    f64::from(sorted_us[rank - 1]) / 1000.0
}

impl Report {
    /// Build a report from outcomes, metrics and all interaction latencies (microseconds).
    #[must_use]
    pub fn new(
        gateways: Vec<GatewayOutcome>,
        metrics: Vec<GatewayMetrics>,
        failures: BTreeMap<String, u64>,
        mut latencies_us: Vec<u32>,
        uplink: UplinkStats,
        real: Duration,
        virt: Duration,
    ) -> Self {
        latencies_us.sort_unstable();
        let mut s = Summary {
            gateways: u32::try_from(gateways.len()).unwrap_or(u32::MAX),
            failures,
            latency_p50_ms: percentile_ms(&latencies_us, 0.50),
            latency_p95_ms: percentile_ms(&latencies_us, 0.95),
            latency_p99_ms: percentile_ms(&latencies_us, 0.99),
            latency_max_ms: latencies_us.last().map_or(0.0, |&v| f64::from(v) / 1000.0),
            real_s: real.as_secs_f64(),
            virtual_s: virt.as_secs_f64(),
            ..Summary::default()
        };
        for g in &gateways {
            match g.status {
                GatewayStatus::Done => s.done += 1,
                GatewayStatus::Failed => s.failed += 1,
                GatewayStatus::Pending => s.pending += 1,
            }
            s.requests += u64::from(g.interactions);
            s.requests_done += u64::from(g.done);
            s.requests_failed += u64::from(g.failed);
            s.retries += u64::from(g.retries);
            s.fallbacks_backup += u64::from(g.on_backup);
            s.fallbacks_boot += u64::from(g.on_boot);
            s.updates_applied += u64::from(g.updates_applied);
            s.updates_rejected += u64::from(g.updates_rejected);
            s.creds_stored += u64::from(g.creds_stored);
            s.creds_rejected += u64::from(g.creds_rejected);
            s.tc_restarts += u64::from(g.tc_restarts);
            s.tc_connected += u32::from(g.tc_connected);
            s.tc_sessions += u64::from(g.tc_sessions);
            s.tc_failures += u64::from(g.tc_failures);
        }
        for m in &metrics {
            s.bytes_tx += m.bytes_tx;
            s.bytes_rx += m.bytes_rx;
            s.tc_bytes_tx += m.tc_bytes_tx;
            s.tc_bytes_rx += m.tc_bytes_rx;
            s.packets_lost += m.link.lost;
            s.cuts += u64::from(m.link.cuts);
        }
        s.requests_per_s = if s.real_s > 0.0 {
            s.requests as f64 / s.real_s
        } else {
            0.0
        };
        Self {
            summary: s,
            gateways,
            metrics,
            uplink,
        }
    }

    /// Record the TC connect latencies (microseconds).
    pub fn set_tc_latencies(&mut self, mut latencies_us: Vec<u32>) {
        latencies_us.sort_unstable();
        self.summary.tc_latency_p50_ms = percentile_ms(&latencies_us, 0.50);
        self.summary.tc_latency_p99_ms = percentile_ms(&latencies_us, 0.99);
    }

    /// Record the simulator's CPU time (see [`Summary::sim_cpu_s`]).
    pub fn set_sim_cpu(&mut self, cpu: Option<Duration>) {
        let s = &mut self.summary;
        s.sim_cpu_s = cpu.map(|d| d.as_secs_f64());
        s.sim_cpu_per_request_us = cpu
            .filter(|_| s.requests > 0)
            .map(|d| d.as_secs_f64() * 1e6 / s.requests as f64);
    }

    /// The deterministic part: one line per gateway and a totals line (no times, bytes or
    /// packet counts).
    #[must_use]
    pub fn outcome_snapshot(&self) -> String {
        let mut out = String::new();
        for g in &self.gateways {
            let _ = writeln!(
                out,
                "{} {} {} n={} ok={} fail={} retry={} bak={} boot={} upd={}/{}/{}/{} creds={}/{} tc={} backup={} set={} pkg={} cups={:08x} tcc={:08x} tcuri={} [{}{}]",
                g.index,
                g.eui,
                g.status.name(),
                g.interactions,
                g.done,
                g.failed,
                g.retries,
                g.on_backup,
                g.on_boot,
                g.updates_run,
                g.updates_applied,
                g.updates_rejected,
                g.updates_unrecognised,
                g.creds_stored,
                g.creds_rejected,
                g.tc_restarts,
                g.backups,
                g.credset,
                g.package.as_deref().unwrap_or("-"),
                g.cups_cred_crc,
                g.tc_cred_crc,
                g.tc_uri.as_deref().unwrap_or("-"),
                g.history.join(", "),
                if g.history_dropped > 0 {
                    format!(", +{}", g.history_dropped)
                } else {
                    String::new()
                },
            );
            if g.tc_sessions > 0 || g.tc_failures > 0 || g.tc_connected {
                // Only with TC on, so snapshots of CUPS-only runs keep their format.
                out.pop();
                let _ = writeln!(
                    out,
                    " lns={}/{}/{}",
                    g.tc_sessions,
                    g.tc_failures,
                    if g.tc_connected { "up" } else { "down" }
                );
            }
        }
        let s = &self.summary;
        let _ = writeln!(
            out,
            "total gateways={} done={} failed={} pending={} requests={} ok={} fail={} retries={} bak={} boot={} updates={}/{} creds={}/{} tc={} failures={:?}",
            s.gateways,
            s.done,
            s.failed,
            s.pending,
            s.requests,
            s.requests_done,
            s.requests_failed,
            s.retries,
            s.fallbacks_backup,
            s.fallbacks_boot,
            s.updates_applied,
            s.updates_rejected,
            s.creds_stored,
            s.creds_rejected,
            s.tc_restarts,
            s.failures,
        );
        if s.tc_sessions > 0 || s.tc_failures > 0 {
            let _ = writeln!(
                out,
                "lns connected={} sessions={} failures={}",
                s.tc_connected, s.tc_sessions, s.tc_failures
            );
        }
        out
    }

    /// A table for people.
    #[must_use]
    pub fn summary_table(&self) -> String {
        let s = &self.summary;
        let mut out = String::new();
        let row = |out: &mut String, k: &str, v: String| {
            let _ = writeln!(out, "  {k:<22} {v}");
        };
        let _ = writeln!(out, "gateway-sim summary");
        row(
            &mut out,
            "gateways",
            format!(
                "{} (done {}, failed {}, pending {})",
                s.gateways, s.done, s.failed, s.pending
            ),
        );
        row(
            &mut out,
            "requests",
            format!(
                "{} (ok {}, failed {}, retries {})",
                s.requests, s.requests_done, s.requests_failed, s.retries
            ),
        );
        if !s.failures.is_empty() {
            let f: Vec<String> = s
                .failures
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            row(&mut out, "failures", f.join(", "));
        }
        row(
            &mut out,
            "fallbacks",
            format!(
                "backup {}, bootstrap {}",
                s.fallbacks_backup, s.fallbacks_boot
            ),
        );
        row(
            &mut out,
            "credentials",
            format!("stored {}, rejected {}", s.creds_stored, s.creds_rejected),
        );
        row(
            &mut out,
            "updates",
            format!(
                "applied {}, rejected {}",
                s.updates_applied, s.updates_rejected
            ),
        );
        row(&mut out, "tc restarts", s.tc_restarts.to_string());
        if s.tc_sessions > 0 || s.tc_failures > 0 {
            row(
                &mut out,
                "lns (tc)",
                format!(
                    "connected {}, sessions {}, failures {}, bytes sent {}, received {}, connect ms p50 {:.1}, p99 {:.1}",
                    s.tc_connected,
                    s.tc_sessions,
                    s.tc_failures,
                    s.tc_bytes_tx,
                    s.tc_bytes_rx,
                    s.tc_latency_p50_ms,
                    s.tc_latency_p99_ms
                ),
            );
        }
        row(
            &mut out,
            "bytes",
            format!("sent {}, received {}", s.bytes_tx, s.bytes_rx),
        );
        row(
            &mut out,
            "latency ms",
            format!(
                "p50 {:.1}, p95 {:.1}, p99 {:.1}, max {:.1}",
                s.latency_p50_ms, s.latency_p95_ms, s.latency_p99_ms, s.latency_max_ms
            ),
        );
        row(
            &mut out,
            "faults",
            format!(
                "packets lost {}, connections cut {}",
                s.packets_lost, s.cuts
            ),
        );
        if let (Some(cpu), Some(per)) = (s.sim_cpu_s, s.sim_cpu_per_request_us) {
            row(
                &mut out,
                "simulator cpu",
                format!("{cpu:.2} s, {per:.0} us per request"),
            );
        }
        row(
            &mut out,
            "time",
            format!(
                "real {:.2} s, virtual {:.0} s, {:.1} requests/s",
                s.real_s, s.virtual_s, s.requests_per_s
            ),
        );
        out
    }

    /// The whole report as JSON.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&v, 0.50), 50.0);
        assert_eq!(percentile_ms(&v, 0.95), 95.0);
        assert_eq!(percentile_ms(&v, 0.99), 99.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
        assert_eq!(percentile_ms(&[7000], 0.99), 7.0);
    }

    #[test]
    fn history_is_capped_at_the_limit() {
        let mut g = GatewayOutcome::default();
        for i in 0..MAX_HISTORY + 2 {
            g.record(i.to_string());
        }
        assert_eq!(g.history.len(), MAX_HISTORY);
        assert_eq!(g.history_dropped, 2);
    }

    #[test]
    fn snapshot_has_no_times() {
        let r = Report::new(
            vec![GatewayOutcome {
                eui: "0000000000000001".into(),
                status: GatewayStatus::Done,
                interactions: 1,
                done: 1,
                credset: "REG".into(),
                ..GatewayOutcome::default()
            }],
            vec![GatewayMetrics::default()],
            BTreeMap::new(),
            vec![1234],
            UplinkStats::default(),
            Duration::from_secs(1),
            Duration::from_secs(60),
        );
        let snap = r.outcome_snapshot();
        assert!(snap.starts_with("0 0000000000000001 done n=1 ok=1"));
        assert!(!snap.contains("1.2"));
        assert!(r.summary_table().contains("p50 1.2"));
        assert!(r.to_json().contains("\"latency_p50_ms\": 1.234"));
    }
}
