//! The fleet: N gateways on one virtual network, the uplink, and the event loop that drives
//! them.
//!
//! The loop, single-threaded:
//!
//! 1. start due interactions (a heap of station deadlines; at most
//!    [`FleetConfig::max_in_flight`] at once, the rest wait their turn in deadline order);
//! 2. step every *active* gateway (one with a connection, a closing socket or queued packets):
//!    faults, smoltcp, TLS, HTTP, station; its packets go to the uplink's port;
//! 3. step the uplink (accept, relay to loopback); its packets go to the gateways' ports;
//! 4. when nothing moved: if an interaction is in flight, sleep in `mio` until a real socket
//!    is ready or the next network/station deadline; if none is, **jump** station time to
//!    the next due gateway.
//!
//! [`Fleet::run_until`] repeats this until a condition holds (checked whenever an interaction
//! ends) or a real-time budget runs out.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use cups_core::Eui64;
use cups_core::station::{Instant as StationInstant, MemStore, StationConfig};
use smoltcp::time::Instant as NetInstant;

use crate::clock::{SimClock, millis, net_duration};
use crate::gateway::{Env, Gateway, Sink};
use crate::net::{
    LinkFaults, MAX_GATEWAYS, NotLoopback, Routes, Uplink, gateway_addr, gateway_index, mix_seed,
    packet_dst,
};
use crate::report::{GatewayOutcome, Report};
use crate::tls::{TlsFactory, TlsVersions};
use crate::update::UpdateModel;

pub use crate::gateway::SimStation;

/// Default [`FleetConfig::max_in_flight`]: enough to keep a server busy on a small machine.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// Longest single sleep of the event loop (so budgets and conditions are checked).
pub const MAX_SLEEP: Duration = Duration::from_millis(100);

/// Who a gateway is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GatewayId {
    /// Index in the fleet (0-based).
    pub index: u32,
    /// Its EUI ([`FleetConfig::first_eui`] + index).
    pub eui: Eui64,
}

/// How to build and run a fleet.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    /// Number of gateways.
    pub gateways: u32,
    /// Seed of every random choice.
    pub seed: u64,
    /// Where the uplink relays connections (a loopback address): the server under test.
    pub server: SocketAddr,
    /// Faults of every gateway's link (change per link with [`Fleet::set_link_faults`]).
    pub faults: LinkFaults,
    /// EUI of gateway 0; gateway `i` is `first_eui + i`.
    pub first_eui: Eui64,
    /// `CUPS_RESYNC_INTV` of every station.
    pub resync_intv: Duration,
    /// `CUPS_OKSYNC_INTV`.
    pub oksync_intv: Duration,
    /// `CUPS_CONN_TIMEOUT`.
    pub conn_timeout: Duration,
    /// The `station` string reported.
    pub station: &'static str,
    /// The `model` reported.
    pub model: &'static str,
    /// Interactions in flight at most.
    pub max_in_flight: usize,
    /// Gateways boot at a station time drawn uniformly from `0..=boot_spread`.
    pub boot_spread: Duration,
    /// TLS versions offered.
    pub tls: TlsVersions,
    /// What running an update does.
    pub updates: UpdateModel,
    /// Gateways holding TC credentials connect to their LNS (router-info + muxs +
    /// `version`), see [`crate::tc`]; off by default.
    pub tc_connect: bool,
}

impl FleetConfig {
    /// `gateways` gateways with seed `seed` against `server`, with the station's default
    /// timers, perfect links and [`UpdateModel::scripts`].
    #[must_use]
    pub fn new(gateways: u32, seed: u64, server: SocketAddr) -> Self {
        Self {
            gateways,
            seed,
            server,
            faults: LinkFaults::none(),
            first_eui: Eui64::new(0x0016_c001_ff10_0000).unwrap_or_else(|_| unreachable!()),
            resync_intv: cups_core::station::CUPS_RESYNC_INTV,
            oksync_intv: cups_core::station::CUPS_OKSYNC_INTV,
            conn_timeout: cups_core::station::CUPS_CONN_TIMEOUT,
            station: crate::STATION_VERSION,
            model: crate::STATION_MODEL,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            boot_spread: Duration::ZERO,
            tls: TlsVersions::default(),
            updates: UpdateModel::scripts(),
            tc_connect: false,
        }
    }
}

/// Why a fleet could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// More gateways than the virtual network holds.
    #[error("{requested} gateways requested, the virtual network holds {max}")]
    TooManyGateways {
        /// Requested.
        requested: u32,
        /// [`MAX_GATEWAYS`].
        max: u32,
    },
    /// `first_eui + index` overflows or is zero.
    #[error("EUI of gateway {index} is out of range")]
    Eui {
        /// The gateway.
        index: u32,
    },
    /// The relay target is not loopback.
    #[error(transparent)]
    NotLoopback(#[from] NotLoopback),
    /// The poller could not be made.
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
}

/// How a run ended.
#[must_use]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RunResult {
    /// The condition holds (or the virtual duration has passed).
    Done,
    /// The real-time budget ran out first.
    BudgetExhausted,
    /// Nothing can happen any more (no station has a deadline) and the condition is false.
    Stalled,
}

/// A read-only view of one gateway.
#[derive(Clone, Copy)]
pub struct GatewayView<'a> {
    gw: &'a Gateway,
}

impl<'a> GatewayView<'a> {
    /// Who it is.
    #[must_use]
    pub fn id(&self) -> GatewayId {
        GatewayId {
            index: self.gw.index,
            eui: self.gw.eui,
        }
    }

    /// Its files.
    #[must_use]
    pub fn store(&self) -> &'a MemStore {
        self.gw.station.store()
    }

    /// Its station.
    #[must_use]
    pub fn station(&self) -> &'a SimStation {
        &self.gw.station
    }

    /// Its outcome so far.
    #[must_use]
    pub fn outcome(&self) -> &'a GatewayOutcome {
        &self.gw.outcome
    }
}

/// A fleet of simulated gateways (see the module docs).
pub struct Fleet {
    config: FleetConfig,
    clock: SimClock,
    gateways: Vec<Gateway>,
    uplink: Uplink,
    tls: TlsFactory,
    due: BinaryHeap<Reverse<(u64, u32)>>,
    active: Vec<u32>,
    in_flight: usize,
    sink: Sink,
    real_in_runs: Duration,
    cpu_in_runs: Option<Duration>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("gateways", &self.gateways.len())
            .field("in_flight", &self.in_flight)
            .field("uplink", &self.uplink)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// Build the fleet; `home(id)` gives each gateway its station files (its home
    /// directory). Every station starts (and so is due) at its boot time.
    ///
    /// # Errors
    /// A [`FleetError`].
    pub fn new(
        config: FleetConfig,
        mut home: impl FnMut(GatewayId) -> MemStore,
    ) -> Result<Self, FleetError> {
        if config.gateways > MAX_GATEWAYS {
            return Err(FleetError::TooManyGateways {
                requested: config.gateways,
                max: MAX_GATEWAYS,
            });
        }
        let clock = SimClock::new();
        let routes = Routes::new(config.server)?;
        let uplink = Uplink::new(routes, clock.net_now(), mix_seed(config.seed, u64::MAX))?;
        let tls = TlsFactory::new(config.tls);
        let mut fleet = Self {
            clock,
            gateways: Vec::with_capacity(config.gateways as usize),
            uplink,
            tls,
            due: BinaryHeap::new(),
            active: Vec::new(),
            in_flight: 0,
            sink: Sink::default(),
            real_in_runs: Duration::ZERO,
            cpu_in_runs: Some(Duration::ZERO),
            config,
        };
        let station_config = StationConfig {
            resync_intv: fleet.config.resync_intv,
            oksync_intv: fleet.config.oksync_intv,
            conn_timeout: fleet.config.conn_timeout,
            ..StationConfig::new(
                fleet.config.first_eui,
                fleet.config.station,
                fleet.config.model,
            )
        };
        let spread = millis(fleet.config.boot_spread);
        for index in 0..fleet.config.gateways {
            let eui = fleet
                .config
                .first_eui
                .as_u64()
                .checked_add(u64::from(index))
                .and_then(|e| Eui64::new(e).ok())
                .ok_or(FleetError::Eui { index })?;
            let addr = gateway_addr(index).ok_or(FleetError::TooManyGateways {
                requested: fleet.config.gateways,
                max: MAX_GATEWAYS,
            })?;
            let seed = mix_seed(fleet.config.seed, u64::from(index));
            let boot = if spread == 0 {
                0
            } else {
                mix_seed(seed, 4) % (spread + 1)
            };
            let store = home(GatewayId { index, eui });
            let gw = Gateway::new(
                index,
                eui,
                addr,
                store,
                StationConfig {
                    router: eui,
                    ..station_config
                },
                fleet.config.faults.clone(),
                seed,
                fleet.clock.net_now(),
                StationInstant::from_millis(boot),
            );
            fleet.gateways.push(gw);
            let mut env = Env {
                now: fleet.clock.net_now(),
                vnow: fleet.clock.station_now(),
                tls: &fleet.tls,
                updates: &fleet.config.updates,
                sink: &mut fleet.sink,
                tc_connect: fleet.config.tc_connect,
                version: fleet.config.station,
                model: fleet.config.model,
            };
            if let Some(gw) = fleet.gateways.last_mut() {
                gw.after_station(&mut env); // a pending update runs at start
            }
            fleet.schedule(index);
        }
        Ok(fleet)
    }

    /// Number of gateways.
    #[must_use]
    pub fn len(&self) -> usize {
        self.gateways.len()
    }

    /// Whether the fleet has no gateway.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.gateways.is_empty()
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// Gateway `index`.
    #[must_use]
    pub fn gateway(&self, index: u32) -> Option<GatewayView<'_>> {
        self.gateways
            .get(index as usize)
            .map(|gw| GatewayView { gw })
    }

    /// Every gateway.
    pub fn gateways(&self) -> impl Iterator<Item = GatewayView<'_>> {
        self.gateways.iter().map(|gw| GatewayView { gw })
    }

    /// Gateways with at least `n` successful interactions (every gateway for `n == 0`).
    #[must_use]
    pub fn count_done_at_least(&self, n: u32) -> u32 {
        match n.checked_sub(1) {
            None => u32::try_from(self.gateways.len()).unwrap_or(u32::MAX),
            Some(k) => self
                .sink
                .done_at_least
                .get(k as usize)
                .copied()
                .unwrap_or(0),
        }
    }

    /// Whether every gateway has at least `n` successful interactions.
    #[must_use]
    pub fn all_done_at_least(&self, n: u32) -> bool {
        self.count_done_at_least(n) as usize == self.gateways.len()
    }

    /// Interactions in flight.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Station (virtual) time since the fleet was made.
    #[must_use]
    pub fn virtual_now(&self) -> Duration {
        Duration::from_millis(self.clock.station_now().as_millis())
    }

    /// The uplink's counters.
    #[must_use]
    pub fn uplink_stats(&self) -> crate::net::UplinkStats {
        self.uplink.stats()
    }

    /// Change the faults of gateway `index`'s link.
    pub fn set_link_faults(&mut self, index: u32, faults: LinkFaults) {
        if let Some(gw) = self.gateways.get_mut(index as usize) {
            gw.set_faults(faults);
        }
    }

    /// Change the faults of every link.
    pub fn set_all_link_faults(&mut self, faults: &LinkFaults) {
        for gw in &mut self.gateways {
            gw.set_faults(faults.clone());
        }
    }

    /// The uplink's relay routes (per virtual port; `None` = refused, a server that is down).
    pub fn routes_mut(&mut self) -> &mut Routes {
        self.uplink.routes_mut()
    }

    /// Replace the uplink's relay routes (e.g. [`Routes::same_port`]).
    pub fn set_routes(&mut self, routes: Routes) {
        *self.uplink.routes_mut() = routes;
    }

    /// Act on gateway `index`'s station (e.g. [`SimStation::trigger`],
    /// [`SimStation::set_tc_connected`]) at the current station time; its events are applied
    /// and it is rescheduled afterwards.
    pub fn with_station<R>(
        &mut self,
        index: u32,
        f: impl FnOnce(&mut SimStation, StationInstant) -> R,
    ) -> Option<R> {
        let vnow = self.clock.station_now();
        let gw = self.gateways.get_mut(index as usize)?;
        let was_interacting = gw.interacting();
        let r = f(&mut gw.station, vnow);
        let mut env = Env {
            now: self.clock.net_now(),
            vnow,
            tls: &self.tls,
            updates: &self.config.updates,
            sink: &mut self.sink,
            tc_connect: self.config.tc_connect,
            version: self.config.station,
            model: self.config.model,
        };
        gw.after_station(&mut env);
        gw.refresh_outcome();
        if was_interacting && !gw.interacting() {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        self.schedule(index);
        Some(r)
    }

    /// The LNS went away: every held TC session drops (the station's `tc_connected` goes
    /// false) and those gateways start reconnecting at once (with the station's retries and
    /// backoff; after [`crate::tc::TC_MAX_RETRIES`] they trigger CUPS).
    pub fn drop_tc_sessions(&mut self) {
        let vnow = self.clock.station_now();
        for index in 0..self.gateways.len() {
            if let Some(gw) = self.gateways.get_mut(index) {
                gw.drop_tc_session(vnow);
            }
            self.schedule(u32::try_from(index).unwrap_or(u32::MAX));
        }
    }

    /// Gateways holding a TC session now.
    #[must_use]
    pub fn tc_connected_count(&self) -> u32 {
        u32::try_from(
            self.gateways
                .iter()
                .filter(|g| g.station.tc_connected())
                .count(),
        )
        .unwrap_or(u32::MAX)
    }

    /// Run until `until(self)` holds (checked at the start and whenever an interaction
    /// ends) or `budget` of real time has passed.
    pub fn run_until(
        &mut self,
        mut until: impl FnMut(&Fleet) -> bool,
        budget: Duration,
    ) -> RunResult {
        self.run(&mut until, budget, None)
    }

    /// Run for `duration` of station time (jumps included), or until `budget` of real time has
    /// passed.
    pub fn run_for(&mut self, duration: Duration, budget: Duration) -> RunResult {
        let limit = self.clock.station_now().saturating_add(duration);
        self.run(&mut |_| false, budget, Some(limit))
    }

    fn run(
        &mut self,
        until: &mut dyn FnMut(&Fleet) -> bool,
        budget: Duration,
        limit: Option<StationInstant>,
    ) -> RunResult {
        let started = std::time::Instant::now();
        let cpu_start = thread_cpu();
        let deadline = started + budget;
        let mut seen = None;
        let result = loop {
            if seen != Some(self.sink.changes) {
                seen = Some(self.sink.changes);
                if until(self) {
                    break RunResult::Done;
                }
            }
            if limit.is_some_and(|l| self.clock.station_now() >= l) {
                break RunResult::Done;
            }
            if std::time::Instant::now() >= deadline {
                break RunResult::BudgetExhausted;
            }
            if !self.step() && !self.idle(deadline, limit) {
                // Nothing will ever happen: give the condition a last look.
                break if until(self) {
                    RunResult::Done
                } else {
                    RunResult::Stalled
                };
            }
        };
        self.real_in_runs += started.elapsed();
        self.cpu_in_runs = match (self.cpu_in_runs, cpu_start, thread_cpu()) {
            (Some(total), Some(a), Some(b)) => Some(total + b.saturating_sub(a)),
            _ => None,
        };
        result
    }

    /// Queue gateway `index`'s next station deadline (if it is not interacting).
    fn schedule(&mut self, index: u32) {
        let Some(gw) = self.gateways.get_mut(index as usize) else {
            return;
        };
        if gw.interacting() {
            return;
        }
        let at = gw.next_due();
        if at != gw.scheduled {
            gw.scheduled = at;
            if let Some(t) = at {
                self.due.push(Reverse((t, index)));
            }
        }
    }

    fn activate(&mut self, index: u32) {
        if let Some(gw) = self.gateways.get_mut(index as usize)
            && !gw.active
        {
            gw.active = true;
            self.active.push(index);
        }
    }

    /// One pass of the loop; `true` if anything moved.
    fn step(&mut self) -> bool {
        let now = self.clock.net_now();
        let vnow = self.clock.station_now();
        let mut progress = self.start_due(now, vnow);

        let active = std::mem::take(&mut self.active);
        let mut ended = Vec::new();
        for &index in &active {
            let Some(gw) = self.gateways.get_mut(index as usize) else {
                continue;
            };
            let mut env = Env {
                now,
                vnow,
                tls: &self.tls,
                updates: &self.config.updates,
                sink: &mut self.sink,
                tc_connect: self.config.tc_connect,
                version: self.config.station,
                model: self.config.model,
            };
            let s = gw.step(&mut env);
            progress |= s.progress;
            if s.ended {
                ended.push(index);
            }
            while let Some(p) = gw.dev.inner_mut().take_sent() {
                self.uplink.port_mut().deliver(p);
                progress = true;
            }
        }
        for index in active {
            match self.gateways.get_mut(index as usize) {
                Some(gw) if gw.is_active() => self.active.push(index),
                Some(gw) => gw.active = false,
                None => {}
            }
        }
        for index in ended {
            self.in_flight = self.in_flight.saturating_sub(1);
            self.schedule(index);
        }

        progress |= self.uplink.step(now);
        while let Some(p) = self.uplink.port_mut().take_sent() {
            let Some(index) = packet_dst(&p).and_then(gateway_index) else {
                continue;
            };
            if let Some(gw) = self.gateways.get_mut(index as usize) {
                gw.dev.inner_mut().deliver(p);
                self.activate(index);
                progress = true;
            }
        }
        progress
    }

    /// Start due interactions; `true` if any started or a due station was handled.
    fn start_due(&mut self, now: NetInstant, vnow: StationInstant) -> bool {
        let mut progress = false;
        while self.in_flight < self.config.max_in_flight {
            let Some(&Reverse((at, index))) = self.due.peek() else {
                break;
            };
            if at > vnow.as_millis() {
                break;
            }
            self.due.pop();
            let Some(gw) = self.gateways.get_mut(index as usize) else {
                continue;
            };
            if gw.scheduled != Some(at) {
                continue; // stale entry
            }
            gw.scheduled = None;
            progress = true;
            let mut env = Env {
                now,
                vnow,
                tls: &self.tls,
                updates: &self.config.updates,
                sink: &mut self.sink,
                tc_connect: self.config.tc_connect,
                version: self.config.station,
                model: self.config.model,
            };
            if gw.start(&mut env) {
                self.in_flight += 1;
                self.activate(index);
            } else {
                self.schedule(index);
            }
        }
        progress
    }

    /// Nothing moved: jump station time or sleep. `false` when nothing can ever happen.
    fn idle(&mut self, deadline: std::time::Instant, limit: Option<StationInstant>) -> bool {
        let vnow = self.clock.station_now();
        let next_due = self.due.peek().map(|Reverse((t, _))| *t);
        if self.in_flight == 0 {
            let target = match (next_due, limit) {
                (Some(t), Some(l)) => Some(t.min(l.as_millis())),
                (Some(t), None) => Some(t),
                (None, Some(l)) => Some(l.as_millis()),
                (None, None) => None,
            };
            if let Some(t) = target
                && t > vnow.as_millis()
            {
                self.clock.skip_to(StationInstant::from_millis(t));
                return true;
            }
            if target.is_none() && self.active.is_empty() && self.uplink.open_relays() == 0 {
                return false;
            }
        }
        // Sleep until the next network or station deadline, or real-socket readiness.
        let now = self.clock.net_now();
        let mut wake = now + smoltcp::time::Duration::from_millis(millis(MAX_SLEEP));
        let mut consider = |t: Option<NetInstant>| {
            if let Some(t) = t {
                wake = wake.min(t);
            }
        };
        for &index in &self.active {
            if let Some(gw) = self.gateways.get_mut(index as usize) {
                consider(gw.poll_at(now, vnow));
            }
        }
        consider(self.uplink.poll_at(now));
        if self.in_flight < self.config.max_in_flight
            && let Some(t) = next_due
        {
            let wait = t.saturating_sub(vnow.as_millis());
            consider(Some(now + smoltcp::time::Duration::from_millis(wait)));
        }
        if let Some(l) = limit {
            let wait = l.as_millis().saturating_sub(vnow.as_millis());
            consider(Some(now + smoltcp::time::Duration::from_millis(wait)));
        }
        let real_left = deadline.saturating_duration_since(std::time::Instant::now());
        let sleep = net_duration(wake)
            .saturating_sub(net_duration(now))
            .min(real_left);
        if let Err(e) = self.uplink.wait(Some(sleep)) {
            tracing::warn!("poll: {e}");
        }
        true
    }

    /// Every interaction latency so far, microseconds, in the order interactions ended
    /// (a scenario phase takes the slice since its start).
    #[must_use]
    pub fn latencies_us(&self) -> &[u32] {
        &self.sink.latencies_us
    }

    /// The report so far.
    #[must_use]
    pub fn report(&self) -> Report {
        let outcomes = self.gateways.iter().map(|g| g.outcome.clone()).collect();
        let metrics = self.gateways.iter().map(Gateway::metrics).collect();
        let mut report = Report::new(
            outcomes,
            metrics,
            self.sink.failures.clone(),
            self.sink.latencies_us.clone(),
            self.uplink.stats(),
            self.real_in_runs,
            self.virtual_now(),
        );
        report.set_sim_cpu(self.cpu_in_runs);
        report.set_tc_latencies(self.sink.tc_latencies_us.clone());
        report
    }
}

/// CPU time of the calling thread (the simulator runs on it), where the OS tells
/// (`/proc/thread-self/schedstat` on Linux).
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}
