//! Scenarios: a simulated fleet against a real CUPS server, phase by phase, each gateway's
//! final state checked against the server's records.
//!
//! ```text
//!  Runner ── Fleet (simulated gateways) ── uplink ──▶ cups-server (loopback)
//!     └──── Admin (server side: register, show, set URIs, renew, firmware, stop/start)
//! ```
//!
//! Every scenario starts with **first boot** from factory (bootstrap) credentials unless the
//! fleet already did it, then runs its phases; [`Scenario::All`] runs them all in sequence on
//! one fleet. Each phase gives a [`PhaseSummary`] (gateways done / failed the phase's checks,
//! requests, bytes, latency percentiles, retries, fallbacks); a [`ScenarioReport`] holds them
//! and the engine's [`Report`].
//!
//! Checks per gateway (a gateway failing one fails the phase):
//!
//! | phase | checks |
//! |---|---|
//! | first-boot | on its own (REG) set; CUPS and TC CRCs = the server's current blobs, both confirmed; bootstrap closed |
//! | steady-state | a simulated week: only 24 h polls (≤ 8 requests), no failure, no credential change, CRCs = server's |
//! | renewal | new CUPS and TC CRCs (≠ before) = the server's new blobs, confirmed; a TC restart |
//! | migration | `cups.uri` / `tc.uri` = the new URIs; still served after the old CUPS port is cut |
//! | rollout | update verified and run once, package = target, the next request gets no update |
//! | bad-signature | update rejected (counted), nothing run, package unchanged |
//! | server-outage | failures + retries while down; after recovery on REG with unchanged CRCs |
//! | lns-outage | needs TC: CUPS polling falls back while the LNS is unreachable (≥ 5 requests in the hour: the station asks CUPS after its 10 TC retries) and to 1-minute polling while it refuses every router (≥ 10 in 15 min); reconnect after |

pub mod admin;
pub mod cli_admin;
pub mod inproc;
pub mod tc_side;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use cups_core::Eui64;
use cups_core::station::{CredFile, CredKind, FileId, FileSet};
use serde::Serialize;

pub use admin::{Admin, AdminError, FirmwareImage, OutageMode, ServerGateway};
pub use cli_admin::{CliAdmin, CliSettings, StoreSpec};
pub use inproc::InProcessAdmin;
pub use tc_side::{TcSide, TcSideError};

use crate::factory::{BootstrapSet, FACTORY_PACKAGE, FactoryCa, FactoryError};
use crate::net::Routes;
use crate::report::{GatewayOutcome, GatewayStatus, Report};
use crate::{Fleet, FleetConfig, FleetError, GatewayView, RunResult};

/// Simulated duration of the steady-state phase.
pub const STEADY_STATE_SPAN: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most requests a gateway may make in [`STEADY_STATE_SPAN`] (one per 24 h, plus the one the
/// span may start and end on).
pub const STEADY_STATE_MAX_REQUESTS: u32 = 8;
/// Simulated duration of a server outage.
pub const OUTAGE_SPAN: Duration = Duration::from_secs(30 * 60);
/// Default real-time budget of one phase.
pub const DEFAULT_PHASE_BUDGET: Duration = Duration::from_secs(60);
/// Longest real-time slice between two progress callbacks.
pub const PROGRESS_SLICE: Duration = Duration::from_millis(250);
/// Failures listed per phase (the rest are counted).
pub const MAX_LISTED_FAILURES: usize = 10;
/// The version the rollout installs.
pub const ROLLOUT_VERSION: &str = "2.0.0";
/// The version of the image the bad-signature scenario corrupts.
pub const BAD_VERSION: &str = "9.9.9";
/// Simulated time over which CUPS polling is measured before and during an LNS outage.
pub const LNS_OUTAGE_SPAN: Duration = Duration::from_secs(3600);
/// Fewest CUPS requests per gateway during [`LNS_OUTAGE_SPAN`] without an LNS (the station
/// asks CUPS after every failed round of TC retries, so about one a minute or a few).
pub const LNS_OUTAGE_MIN_REQUESTS: u32 = 5;
/// Simulated time the LNS refuses every router (reachable, `router-info` answered with an
/// error) in the lns-outage scenario.
pub const LNS_REFUSING_SPAN: Duration = Duration::from_secs(15 * 60);
/// Fewest CUPS requests per gateway during [`LNS_REFUSING_SPAN`]: a refused station asks CUPS
/// after `CUPS_RESYNC_INTV` (1 min), so about one a minute — the storm the server must carry.
pub const LNS_REFUSING_MIN_REQUESTS: u32 = 10;

/// A scenario.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub enum Scenario {
    /// First boot from bootstrap credentials.
    FirstBoot,
    /// A simulated week of 24 h polls.
    SteadyState,
    /// Credential renewal.
    Renewal,
    /// CUPS and TC URI migration.
    Migration,
    /// Signed update rollout.
    Rollout,
    /// An update whose stored image was changed after signing.
    BadSignature,
    /// Server outage and recovery.
    ServerOutage,
    /// LNS outage storm.
    LnsOutage,
    /// All of the above, in this order, on one fleet.
    All,
}

impl Scenario {
    /// Every single scenario, in the order [`Scenario::All`] runs them.
    pub const SEQUENCE: [Scenario; 8] = [
        Self::FirstBoot,
        Self::SteadyState,
        Self::Renewal,
        Self::Migration,
        Self::Rollout,
        Self::BadSignature,
        Self::ServerOutage,
        Self::LnsOutage,
    ];

    /// The kebab-case name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::FirstBoot => "first-boot",
            Self::SteadyState => "steady-state",
            Self::Renewal => "renewal",
            Self::Migration => "migration",
            Self::Rollout => "rollout",
            Self::BadSignature => "bad-signature",
            Self::ServerOutage => "server-outage",
            Self::LnsOutage => "lns-outage",
            Self::All => "all",
        }
    }
}

/// An unknown scenario name.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error(
    "unknown scenario {0:?} (one of first-boot, steady-state, renewal, migration, rollout, bad-signature, server-outage, lns-outage, all)"
)]
pub struct UnknownScenario(pub String);

impl FromStr for Scenario {
    type Err = UnknownScenario;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::SEQUENCE
            .into_iter()
            .chain([Self::All])
            .find(|sc| sc.name() == s)
            .ok_or_else(|| UnknownScenario(s.to_owned()))
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The result of one phase.
#[derive(Clone, PartialEq, Debug, Default, Serialize)]
pub struct PhaseSummary {
    /// The phase (a scenario name, or `<scenario>/<step>`).
    pub name: String,
    /// Gateways that passed the phase's checks.
    pub gateways_done: u32,
    /// Gateways that failed them.
    pub gateways_failed: u32,
    /// Requests (interactions) during the phase.
    pub requests: u64,
    /// Requests that failed.
    pub requests_failed: u64,
    /// Bytes sent + received by gateways.
    pub bytes: u64,
    /// Latency percentiles of the phase's requests, milliseconds.
    pub latency_p50_ms: f64,
    /// 95th percentile.
    pub latency_p95_ms: f64,
    /// 99th percentile.
    pub latency_p99_ms: f64,
    /// Retries.
    pub retries: u64,
    /// Requests on the backup set.
    pub fallbacks_backup: u64,
    /// Requests on the bootstrap set.
    pub fallbacks_boot: u64,
    /// Updates applied.
    pub updates_applied: u64,
    /// Updates rejected.
    pub updates_rejected: u64,
    /// Credential blobs stored.
    pub creds_stored: u64,
    /// Gateways holding a TC (LNS) session at the end of the phase.
    pub tc_connected: u32,
    /// TC sessions established during the phase.
    pub tc_sessions: u64,
    /// Real time, seconds.
    pub real_s: f64,
    /// Simulated time, seconds.
    pub virtual_s: f64,
    /// What happened, for people (measurements, the outage mode, ...).
    pub notes: Vec<String>,
    /// The first [`MAX_LISTED_FAILURES`] failed gateways: `EUI: why`.
    pub failures: Vec<String>,
    /// Set when the phase did not run: why.
    pub skipped: Option<String>,
}

/// A scenario run.
#[derive(Clone, PartialEq, Debug, Serialize)]
pub struct ScenarioReport {
    /// The scenario.
    pub scenario: Scenario,
    /// The server side.
    pub server: String,
    /// How outages were made.
    pub outage_mode: OutageMode,
    /// One entry per phase.
    pub phases: Vec<PhaseSummary>,
    /// The engine's report at the end.
    pub report: Report,
}

impl ScenarioReport {
    /// Whether every gateway passed every phase that ran.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.phases.iter().all(|p| p.gateways_failed == 0)
    }

    /// One row per phase.
    #[must_use]
    pub fn summary_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "scenario {} against {}", self.scenario, self.server);
        let _ = writeln!(
            out,
            "{:<14} {:>5} {:>6} {:>8} {:>6} {:>10} {:>8} {:>8} {:>8} {:>7} {:>5} {:>5} {:>5} {:>8}",
            "phase",
            "done",
            "failed",
            "requests",
            "fails",
            "bytes",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "retries",
            "bak",
            "boot",
            "tc up",
            "real s"
        );
        for p in &self.phases {
            if let Some(why) = &p.skipped {
                let _ = writeln!(out, "{:<14} skipped: {why}", p.name);
                continue;
            }
            let _ = writeln!(
                out,
                "{:<14} {:>5} {:>6} {:>8} {:>6} {:>10} {:>8.1} {:>8.1} {:>8.1} {:>7} {:>5} {:>5} {:>5} {:>8.2}",
                p.name,
                p.gateways_done,
                p.gateways_failed,
                p.requests,
                p.requests_failed,
                p.bytes,
                p.latency_p50_ms,
                p.latency_p95_ms,
                p.latency_p99_ms,
                p.retries,
                p.fallbacks_backup,
                p.fallbacks_boot,
                p.tc_connected,
                p.real_s
            );
        }
        for p in &self.phases {
            for n in &p.notes {
                let _ = writeln!(out, "  {}: {n}", p.name);
            }
            for f in &p.failures {
                let _ = writeln!(out, "  {} FAILED {f}", p.name);
            }
        }
        let _ = writeln!(
            out,
            "result: {}",
            if self.passed() {
                "every gateway passed every phase"
            } else {
                "FAILED"
            }
        );
        out
    }

    /// The whole report as JSON.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Why a run could not go on (a gateway failing a check is not an error: see
/// [`PhaseSummary::gateways_failed`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The server side.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The fleet could not be built.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The factory.
    #[error(transparent)]
    Factory(#[from] FactoryError),
    /// A route target is not loopback.
    #[error(transparent)]
    NotLoopback(#[from] crate::net::NotLoopback),
    /// A URI the runner needs has no usable port.
    #[error("{0}: no port")]
    Uri(String),
    /// The LNS side.
    #[error(transparent)]
    Tc(#[from] TcSideError),
    /// EUIs of the fleet's range are registered already (an earlier run on this server).
    #[error(
        "{existing} of the {count} EUIs from {first} are already registered on this server (an \
         earlier run?): choose another range with --first-eui, or remove them with \
         `cups-server gateway remove`"
    )]
    AlreadyRegistered {
        /// First EUI of the range.
        first: Eui64,
        /// Gateways in the range.
        count: u32,
        /// How many of them are registered.
        existing: usize,
    },
}

/// How to run scenarios.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// Gateways.
    pub gateways: u32,
    /// Seed.
    pub seed: u64,
    /// EUI of gateway 0.
    pub first_eui: Eui64,
    /// The CUPS URI the migration moves gateways to (its port is routed to the same server).
    pub migrate_cups_uri: String,
    /// The TC URI the migration moves gateways to.
    pub migrate_tc_uri: String,
    /// Real-time budget of each phase.
    pub phase_budget: Duration,
    /// Interactions in flight at most.
    pub max_in_flight: usize,
    /// Run LNS endpoints and have gateways connect to their TC URI (when the server sends
    /// one: [`Admin::tc_uri`]).
    pub tc: bool,
    /// The last this many gateways are registered with a TC token (`--tc token`) instead of
    /// a TC client certificate; the LNS checks their tokens against the server's index.
    pub tc_token_gateways: u32,
}

impl RunnerConfig {
    /// `gateways` gateways, seed `seed`, defaults otherwise.
    #[must_use]
    pub fn new(gateways: u32, seed: u64) -> Self {
        Self {
            gateways,
            seed,
            first_eui: Eui64::new(0x0016_c001_ff10_0000).unwrap_or_else(|_| unreachable!()),
            migrate_cups_uri: "https://localhost:16060".into(),
            migrate_tc_uri: "wss://localhost:6897".into(),
            phase_budget: DEFAULT_PHASE_BUDGET,
            max_in_flight: crate::fleet::DEFAULT_MAX_IN_FLIGHT,
            tc: true,
            tc_token_gateways: 0,
        }
    }
}

/// Called between run slices: phase name and the fleet.
pub type ProgressFn = Box<dyn FnMut(&str, &Fleet)>;

/// The port of `scheme://host:port[/...]`.
#[must_use]
pub fn uri_port(uri: &str) -> Option<u16> {
    let rest = uri.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    authority.rsplit_once(':')?.1.parse().ok()
}

/// Runs scenarios on one fleet against one server.
pub struct Runner<A: Admin> {
    admin: A,
    fleet: Fleet,
    config: RunnerConfig,
    euis: Vec<Eui64>,
    /// Virtual CUPS ports routed to the server.
    cups_ports: Vec<u16>,
    first_boot_done: bool,
    phases: Vec<PhaseSummary>,
    progress: Option<ProgressFn>,
    /// Latencies already attributed to earlier phases.
    latencies_seen: usize,
    /// The LNS side, when TC runs.
    tc: Option<TcSide>,
}

impl<A: Admin> std::fmt::Debug for Runner<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("gateways", &self.euis.len())
            .field("phases", &self.phases.len())
            .finish_non_exhaustive()
    }
}

/// A snapshot of every gateway's outcome.
fn outcomes(fleet: &Fleet) -> Vec<GatewayOutcome> {
    fleet.gateways().map(|g| g.outcome().clone()).collect()
}

fn reg_file(g: &GatewayView<'_>, kind: CredKind, file: CredFile) -> Option<String> {
    g.store()
        .get(FileId::cred(kind, FileSet::Reg, file))
        .map(|b| String::from_utf8_lossy(b).trim_end().to_owned())
}

impl<A: Admin> Runner<A> {
    /// Register the fleet's gateways on the server, mint their factory credentials, and
    /// build the fleet (every gateway holds only its bootstrap set).
    ///
    /// # Errors
    /// A [`ScenarioError`].
    pub fn new(
        mut admin: A,
        factory: &FactoryCa,
        config: RunnerConfig,
    ) -> Result<Self, ScenarioError> {
        let cups_uri = admin.cups_uri();
        let cups_port = uri_port(&cups_uri).ok_or_else(|| ScenarioError::Uri(cups_uri.clone()))?;
        let migrate_port = uri_port(&config.migrate_cups_uri)
            .ok_or_else(|| ScenarioError::Uri(config.migrate_cups_uri.clone()))?;
        let range: Vec<Eui64> = (0..u64::from(config.gateways))
            .filter_map(|i| {
                let e = config.first_eui.as_u64().checked_add(i)?;
                Eui64::new(e).ok()
            })
            .collect();
        let existing = admin.gateways(&range)?.len();
        if existing > 0 {
            return Err(ScenarioError::AlreadyRegistered {
                first: config.first_eui,
                count: config.gateways,
                existing,
            });
        }
        let token_gateways = config.tc_token_gateways.min(config.gateways);
        let cert_gateways = config.gateways - token_gateways;
        admin.register(config.first_eui, cert_gateways, false)?;
        if token_gateways > 0 {
            let first_token = config
                .first_eui
                .as_u64()
                .checked_add(u64::from(cert_gateways))
                .and_then(|e| Eui64::new(e).ok())
                .ok_or(FleetError::Eui {
                    index: cert_gateways,
                })?;
            admin.register(first_token, token_gateways, true)?;
        }
        let set = BootstrapSet {
            cups_uri,
            trust: admin.cups_trust(),
            sig_keys: admin.sig_keys(),
        };
        let mut euis = Vec::with_capacity(config.gateways as usize);
        let mut homes = Vec::with_capacity(config.gateways as usize);
        for i in 0..u64::from(config.gateways) {
            let eui = config
                .first_eui
                .as_u64()
                .checked_add(i)
                .and_then(|e| Eui64::new(e).ok())
                .ok_or(FleetError::Eui {
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                })?;
            homes.push(set.home(&factory.mint(eui)?));
            euis.push(eui);
        }
        let tc = match admin.tc_uri() {
            Some(uri) if config.tc => {
                let port = uri_port(&uri).ok_or(ScenarioError::Uri(uri))?;
                let migrate = uri_port(&config.migrate_tc_uri)
                    .ok_or_else(|| ScenarioError::Uri(config.migrate_tc_uri.clone()))?;
                let tokens = tc_side::store_token_check(admin.store())?;
                Some(TcSide::start(admin.pki(), &[port, migrate], Some(tokens))?)
            }
            _ => None,
        };
        let mut fc = FleetConfig::new(config.gateways, config.seed, admin.server_addr());
        fc.first_eui = config.first_eui;
        fc.max_in_flight = config.max_in_flight;
        fc.tc_connect = tc.is_some();
        let mut homes = homes.into_iter();
        let mut fleet = Fleet::new(fc, |_| homes.next().unwrap_or_default())?;
        let mut routes = Routes::none();
        let cups_ports = vec![cups_port, migrate_port];
        for &p in &cups_ports {
            routes.set(p, Some(admin.server_addr()))?;
        }
        if let Some(t) = &tc {
            t.add_routes(&mut routes)?;
        }
        fleet.set_routes(routes);
        Ok(Self {
            admin,
            fleet,
            config,
            euis,
            cups_ports,
            first_boot_done: false,
            phases: Vec::new(),
            progress: None,
            latencies_seen: 0,
            tc,
        })
    }

    /// Call `f` between run slices (a progress bar).
    pub fn set_progress(&mut self, f: ProgressFn) {
        self.progress = Some(f);
    }

    /// The fleet.
    #[must_use]
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// The server side.
    pub fn admin_mut(&mut self) -> &mut A {
        &mut self.admin
    }

    /// The gateways' EUIs.
    #[must_use]
    pub fn euis(&self) -> &[Eui64] {
        &self.euis
    }

    /// The phases so far.
    #[must_use]
    pub fn phases(&self) -> &[PhaseSummary] {
        &self.phases
    }

    /// Run `scenario` (first boot first, unless done); its phases are appended to
    /// [`Runner::phases`].
    ///
    /// # Errors
    /// A [`ScenarioError`] (server side unusable); failed checks are in the phases.
    pub fn run(&mut self, scenario: Scenario) -> Result<(), ScenarioError> {
        if scenario == Scenario::All {
            for s in Scenario::SEQUENCE {
                self.run(s)?;
            }
            return Ok(());
        }
        if !self.first_boot_done {
            self.first_boot()?;
            self.first_boot_done = true;
        }
        match scenario {
            Scenario::FirstBoot | Scenario::All => Ok(()),
            Scenario::SteadyState => self.steady_state(),
            Scenario::Renewal => self.renewal(),
            Scenario::Migration => self.migration(),
            Scenario::Rollout => self.rollout(),
            Scenario::BadSignature => self.bad_signature(),
            Scenario::ServerOutage => self.server_outage(),
            Scenario::LnsOutage => self.lns_outage(),
        }
    }

    /// The report of everything run so far.
    #[must_use]
    pub fn report(&self, scenario: Scenario) -> ScenarioReport {
        ScenarioReport {
            scenario,
            server: self.admin.describe(),
            outage_mode: self.admin.outage_mode(),
            phases: self.phases.clone(),
            report: self.fleet.report(),
        }
    }

    /// Run until `until` holds for every gateway (given its outcome at the phase start), in
    /// progress slices, within the phase budget.
    fn run_each(
        &mut self,
        name: &str,
        base: &[GatewayOutcome],
        until: impl Fn(&GatewayOutcome, &GatewayView<'_>) -> bool,
    ) -> RunResult {
        let deadline = Instant::now() + self.config.phase_budget;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let r = self.fleet.run_until(
                |f| f.gateways().zip(base).all(|(g, b)| until(b, &g)),
                left.min(PROGRESS_SLICE),
            );
            if let Some(p) = self.progress.as_mut() {
                p(name, &self.fleet);
            }
            if r != RunResult::BudgetExhausted || left <= PROGRESS_SLICE {
                return r;
            }
        }
    }

    /// Run `span` of simulated time, in progress slices.
    fn run_span(&mut self, name: &str, span: Duration) -> RunResult {
        let deadline = Instant::now() + self.config.phase_budget;
        let end = self.fleet.virtual_now() + span;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let span_left = end.saturating_sub(self.fleet.virtual_now());
            if span_left.is_zero() {
                return RunResult::Done;
            }
            let r = self.fleet.run_for(span_left, left.min(PROGRESS_SLICE));
            if let Some(p) = self.progress.as_mut() {
                p(name, &self.fleet);
            }
            match r {
                RunResult::Done => {
                    // Let interactions in flight at the end of the span finish, so the next
                    // phase starts from settled gateways.
                    let left = deadline.saturating_duration_since(Instant::now());
                    return match self.fleet.run_until(|f| f.in_flight() == 0, left) {
                        RunResult::Stalled => RunResult::Done,
                        other => other,
                    };
                }
                RunResult::Stalled => return RunResult::Stalled,
                RunResult::BudgetExhausted if left <= PROGRESS_SLICE => {
                    return RunResult::BudgetExhausted;
                }
                RunResult::BudgetExhausted => {}
            }
        }
    }

    /// Close a phase: the per-gateway verdicts (None = passed) and the metrics since `start`.
    fn finish(&mut self, start: &PhaseStart, verdicts: Vec<Option<String>>, notes: Vec<String>) {
        let report = self.fleet.report();
        let base = &start.report;
        let mut p = PhaseSummary {
            name: start.name.clone(),
            notes,
            real_s: start.real.elapsed().as_secs_f64(),
            virtual_s: (self.fleet.virtual_now().saturating_sub(start.virtual_at)).as_secs_f64(),
            ..PhaseSummary::default()
        };
        for (eui, v) in self.euis.iter().zip(&verdicts) {
            match v {
                None => p.gateways_done += 1,
                Some(why) => {
                    p.gateways_failed += 1;
                    if p.failures.len() < MAX_LISTED_FAILURES {
                        p.failures.push(format!("{}: {why}", eui.canonical()));
                    }
                }
            }
        }
        let (s, b) = (&report.summary, &base.summary);
        p.requests = s.requests.saturating_sub(b.requests);
        p.requests_failed = s.requests_failed.saturating_sub(b.requests_failed);
        p.bytes = (s.bytes_tx + s.bytes_rx).saturating_sub(b.bytes_tx + b.bytes_rx);
        p.retries = s.retries.saturating_sub(b.retries);
        p.fallbacks_backup = s.fallbacks_backup.saturating_sub(b.fallbacks_backup);
        p.fallbacks_boot = s.fallbacks_boot.saturating_sub(b.fallbacks_boot);
        p.updates_applied = s.updates_applied.saturating_sub(b.updates_applied);
        p.updates_rejected = s.updates_rejected.saturating_sub(b.updates_rejected);
        p.creds_stored = s.creds_stored.saturating_sub(b.creds_stored);
        p.tc_connected = s.tc_connected;
        p.tc_sessions = s.tc_sessions.saturating_sub(b.tc_sessions);
        let lat = self.fleet.latencies_us();
        let mut phase: Vec<u32> = lat.get(self.latencies_seen..).unwrap_or_default().to_vec();
        self.latencies_seen = lat.len();
        phase.sort_unstable();
        p.latency_p50_ms = percentile_ms(&phase, 0.50);
        p.latency_p95_ms = percentile_ms(&phase, 0.95);
        p.latency_p99_ms = percentile_ms(&phase, 0.99);
        self.phases.push(p);
    }

    fn start(&self, name: &str) -> PhaseStart {
        PhaseStart {
            name: name.to_owned(),
            report: self.fleet.report(),
            real: Instant::now(),
            virtual_at: self.fleet.virtual_now(),
            base: outcomes(&self.fleet),
        }
    }

    /// Per gateway: `None` when it is on its own set with CRCs equal to the server's current,
    /// confirmed blobs; else why not.
    fn check_server_state(
        &mut self,
        verdicts: &mut [Option<String>],
    ) -> Result<BTreeMap<Eui64, ServerGateway>, ScenarioError> {
        let server = self.admin.gateways(&self.euis)?;
        for (g, v) in self.fleet.gateways().zip(verdicts.iter_mut()) {
            if v.is_some() {
                continue;
            }
            let o = g.outcome();
            let eui = g.id().eui;
            let Some(s) = server.get(&eui) else {
                *v = Some("not on the server".into());
                continue;
            };
            *v = if o.status != GatewayStatus::Done {
                Some(format!("last interaction {:?}: {:?}", o.status, o.history))
            } else if o.credset != "REG" {
                Some(format!("on the {} set", o.credset))
            } else if s.cups_crc != Some(o.cups_cred_crc) {
                Some(format!(
                    "CUPS CRC {:08x}, server {:08x?}",
                    o.cups_cred_crc, s.cups_crc
                ))
            } else if s.tc_crc != Some(o.tc_cred_crc) {
                Some(format!(
                    "TC CRC {:08x}, server {:08x?}",
                    o.tc_cred_crc, s.tc_crc
                ))
            } else if !s.cups_confirmed || !s.tc_confirmed {
                Some("server has not seen the rotation confirmed".into())
            } else if s.bootstrap_open {
                Some("bootstrap still open on the server".into())
            } else {
                None
            };
        }
        Ok(server)
    }

    /// Whether TC runs.
    #[must_use]
    pub fn tc_enabled(&self) -> bool {
        self.tc.is_some()
    }

    /// The LNS side, when TC runs.
    #[must_use]
    pub fn tc_side(&self) -> Option<&TcSide> {
        self.tc.as_ref()
    }

    /// Per gateway (when TC runs): the TC session is up and the current LNS saw its muxs
    /// connection.
    fn check_tc(&self, verdicts: &mut [Option<String>]) {
        let Some(tc) = &self.tc else { return };
        let seen = tc.gateways(tc.current());
        for (g, v) in self.fleet.gateways().zip(verdicts.iter_mut()) {
            if v.is_some() {
                continue;
            }
            let o = g.outcome();
            if !o.tc_connected {
                *v = Some(format!(
                    "no TC session ({} sessions, {} failures)",
                    o.tc_sessions, o.tc_failures
                ));
            } else if seen.get(&g.id().eui).is_none_or(|s| s.muxs == 0) {
                *v = Some(format!(
                    "LNS {} never saw its muxs connection",
                    tc.current()
                ));
            }
        }
    }

    fn first_boot(&mut self) -> Result<(), ScenarioError> {
        let name = Scenario::FirstBoot.name();
        let start = self.start(name);
        let tc = self.tc.is_some();
        // REG/BAK without URI → BOOT (own creds) → REG (proves them); TC connects.
        let r = self.run_each(name, &start.base, |_, g| {
            let o = g.outcome();
            o.done >= 2
                && o.status == GatewayStatus::Done
                && o.credset == "REG"
                && (!tc || o.tc_connected)
        });
        let mut verdicts = vec![None; self.euis.len()];
        self.check_server_state(&mut verdicts)?;
        self.check_tc(&mut verdicts);
        let notes = vec![format!("run: {r:?}")];
        self.finish(&start, verdicts, notes);
        Ok(())
    }

    fn steady_state(&mut self) -> Result<(), ScenarioError> {
        let name = Scenario::SteadyState.name();
        let start = self.start(name);
        let r = self.run_span(name, STEADY_STATE_SPAN);
        let mut verdicts: Vec<Option<String>> = self
            .fleet
            .gateways()
            .zip(&start.base)
            .map(|(g, b)| {
                let o = g.outcome();
                let n = o.interactions - b.interactions;
                if o.failed != b.failed {
                    Some(format!("{} failed requests", o.failed - b.failed))
                } else if o.creds_stored != b.creds_stored {
                    Some("credentials changed".into())
                } else if !steady_state_polls_ok(n) {
                    Some(format!("{n} requests in a week (24 h polls expected)"))
                } else if (o.cups_cred_crc, o.tc_cred_crc) != (b.cups_cred_crc, b.tc_cred_crc) {
                    Some("CRCs changed".into())
                } else {
                    None
                }
            })
            .collect();
        self.check_server_state(&mut verdicts)?;
        self.check_tc(&mut verdicts);
        let requests: u32 = self
            .fleet
            .gateways()
            .zip(&start.base)
            .map(|(g, b)| g.outcome().interactions - b.interactions)
            .sum();
        let per_day = f64::from(requests)
            / self.euis.len().max(1) as f64
            / (STEADY_STATE_SPAN.as_secs_f64() / 86_400.0);
        let notes = vec![format!(
            "{per_day:.2} requests per gateway per simulated day ({r:?})"
        )];
        self.finish(&start, verdicts, notes);
        Ok(())
    }

    fn renewal(&mut self) -> Result<(), ScenarioError> {
        let name = Scenario::Renewal.name();
        let start = self.start(name);
        self.admin.renew(&self.euis, true, true)?;
        // The renewal arrives at the next 24 h poll (CUPS and TC blobs) ...
        let r1 = self.run_each(name, &start.base, |b, g| {
            g.outcome().creds_stored >= b.creds_stored + 2
        });
        // ... and a later request with the new credentials confirms it.
        let mid = outcomes(&self.fleet);
        let tc = self.tc.is_some();
        let r2 = self.run_each(name, &mid, |b, g| {
            let o = g.outcome();
            o.done > b.done && o.status == GatewayStatus::Done && (!tc || o.tc_connected)
        });
        let r = (r1, r2);
        let mut verdicts: Vec<Option<String>> = self
            .fleet
            .gateways()
            .zip(&start.base)
            .map(|(g, b)| {
                let o = g.outcome();
                if o.cups_cred_crc == b.cups_cred_crc {
                    Some("CUPS credentials not renewed".into())
                } else if o.tc_cred_crc == b.tc_cred_crc {
                    Some("TC credentials not renewed".into())
                } else if o.tc_restarts == b.tc_restarts {
                    Some("no TC restart".into())
                } else if tc && o.tc_sessions <= b.tc_sessions {
                    Some("no new TC session with the renewed TC credentials".into())
                } else {
                    None
                }
            })
            .collect();
        self.check_server_state(&mut verdicts)?;
        self.check_tc(&mut verdicts);
        self.finish(&start, verdicts, vec![format!("runs: {r:?}")]);
        Ok(())
    }

    fn migration(&mut self) -> Result<(), ScenarioError> {
        let name = Scenario::Migration.name();
        let start = self.start(name);
        let (cups, tc) = (
            self.config.migrate_cups_uri.clone(),
            self.config.migrate_tc_uri.clone(),
        );
        self.admin.set_uris(&self.euis, Some(&cups), Some(&tc))?;
        let tc_on = self.tc.is_some();
        let r1 = self.run_each(name, &start.base, |b, g| {
            let o = g.outcome();
            reg_file(g, CredKind::Cups, CredFile::Uri).as_deref() == Some(cups.as_str())
                && (!tc_on || (o.tc_connected && o.tc_sessions > b.tc_sessions))
        });
        if let Some(t) = self.tc.as_mut() {
            t.switch_to(1);
        }
        // Cut every CUPS port but the new one: the next poll must still be served.
        let new_port = uri_port(&cups).ok_or_else(|| ScenarioError::Uri(cups.clone()))?;
        let old: Vec<u16> = self
            .cups_ports
            .iter()
            .copied()
            .filter(|&p| p != new_port)
            .collect();
        for &p in &old {
            self.fleet.routes_mut().set(p, None)?;
        }
        let mid = outcomes(&self.fleet);
        let r2 = self.run_each(name, &mid, |b, g| {
            let o = g.outcome();
            o.done > b.done && o.status == GatewayStatus::Done
        });
        self.cups_ports = vec![new_port];
        let server = self.admin.gateways(&self.euis)?;
        let mut verdicts: Vec<Option<String>> = self
            .fleet
            .gateways()
            .zip(&mid)
            .map(|(g, b)| {
                let o = g.outcome();
                let eui = g.id().eui;
                let cups_now = reg_file(&g, CredKind::Cups, CredFile::Uri);
                let tc_now = reg_file(&g, CredKind::Tc, CredFile::Uri);
                if cups_now.as_deref() != Some(cups.as_str()) {
                    Some(format!("cups.uri {cups_now:?}"))
                } else if tc_now.as_deref() != Some(tc.as_str()) {
                    Some(format!("tc.uri {tc_now:?}"))
                } else if o.failed != b.failed {
                    Some("a request failed after the old port was cut".into())
                } else if server.get(&eui).and_then(|s| s.cups_uri.as_deref())
                    != Some(cups.as_str())
                {
                    Some("the server does not show the new CUPS URI".into())
                } else {
                    None
                }
            })
            .collect();
        self.check_server_state(&mut verdicts)?;
        self.check_tc(&mut verdicts);
        let notes = vec![
            format!("CUPS {} -> {cups}, TC -> {tc}", self.admin.cups_uri()),
            format!("old CUPS port(s) {old:?} cut afterwards; runs: {r1:?}, {r2:?}"),
        ];
        self.finish(&start, verdicts, notes);
        Ok(())
    }

    fn rollout(&mut self) -> Result<(), ScenarioError> {
        let name = Scenario::Rollout.name();
        let start = self.start(name);
        let image = FirmwareImage {
            model: crate::STATION_MODEL.into(),
            version: ROLLOUT_VERSION.into(),
            from: Vec::new(),
            bytes: update_script(ROLLOUT_VERSION),
        };
        let id = self.admin.add_firmware(&image)?;
        // The server's firmware catalogue sees the image after this (real time).
        std::thread::sleep(self.admin.catalogue_delay());
        let target = ROLLOUT_VERSION;
        let r1 = self.run_each(name, &start.base, |_, g| {
            g.outcome().package.as_deref() == Some(target)
        });
        // The next request reports the new package: the server has nothing more to offer.
        let mid = outcomes(&self.fleet);
        let r2 = self.run_each(name, &mid, |b, g| {
            let o = g.outcome();
            o.done > b.done && o.status == GatewayStatus::Done
        });
        let mut verdicts: Vec<Option<String>> = self
            .fleet
            .gateways()
            .zip(&start.base)
            .map(|(g, b)| {
                let o = g.outcome();
                if o.package.as_deref() != Some(target) {
                    Some(format!("package {:?}", o.package))
                } else if o.updates_applied != b.updates_applied + 1 {
                    Some(format!(
                        "{} updates applied",
                        o.updates_applied - b.updates_applied
                    ))
                } else if o.updates_run != b.updates_run + 1 {
                    Some("the update was offered again after it was applied".into())
                } else if o.updates_rejected != b.updates_rejected {
                    Some("the signed update was rejected".into())
                } else {
                    None
                }
            })
            .collect();
        self.check_server_state(&mut verdicts)?;
        self.check_tc(&mut verdicts);
        self.admin.remove_firmware(&id)?;
        let notes = vec![format!(
            "firmware {id}: {} -> {target} (signed), runs: {r1:?}, {r2:?}",
            start
                .base
                .first()
                .and_then(|o| o.package.clone())
                .unwrap_or_else(|| FACTORY_PACKAGE.into())
        )];
        self.finish(&start, verdicts, notes);
        Ok(())
    }

    fn bad_signature(&mut self) -> Result<(), ScenarioError> {
        let name = Scenario::BadSignature.name();
        let start = self.start(name);
        let image = FirmwareImage {
            model: crate::STATION_MODEL.into(),
            version: BAD_VERSION.into(),
            from: Vec::new(),
            bytes: update_script(BAD_VERSION),
        };
        let id = self.admin.add_firmware(&image)?;
        self.admin.corrupt_firmware(&id)?;
        std::thread::sleep(self.admin.catalogue_delay());
        let r = self.run_each(name, &start.base, |b, g| {
            let o = g.outcome();
            o.updates_rejected > b.updates_rejected && o.status == GatewayStatus::Done
        });
        self.admin.remove_firmware(&id)?;
        let mut verdicts: Vec<Option<String>> = self
            .fleet
            .gateways()
            .zip(&start.base)
            .map(|(g, b)| {
                let o = g.outcome();
                if o.updates_rejected == b.updates_rejected {
                    Some("the corrupted update was not rejected".into())
                } else if o.updates_run != b.updates_run {
                    Some("the corrupted update was run".into())
                } else if o.package != b.package {
                    Some(format!("package changed to {:?}", o.package))
                } else {
                    None
                }
            })
            .collect();
        self.check_server_state(&mut verdicts)?;
        self.check_tc(&mut verdicts);
        // Let the server's firmware catalogue forget the image before the next phase.
        std::thread::sleep(self.admin.catalogue_delay());
        let notes = vec![format!(
            "firmware {id}: image changed after signing, run: {r:?}"
        )];
        self.finish(&start, verdicts, notes);
        Ok(())
    }

    fn set_cups_routes(&mut self, target: Option<SocketAddr>) -> Result<(), ScenarioError> {
        for &p in &self.cups_ports {
            self.fleet.routes_mut().set(p, target)?;
        }
        Ok(())
    }

    fn server_outage(&mut self) -> Result<(), ScenarioError> {
        let name = Scenario::ServerOutage.name();
        let start = self.start(name);
        let mode = self.admin.outage_mode();
        match mode {
            OutageMode::StopServer => self.admin.stop_server()?,
            OutageMode::RouteCut => self.set_cups_routes(None)?,
        }
        // Every gateway notices now (as if its 24 h poll were due).
        for i in 0..u32::try_from(self.euis.len()).unwrap_or(u32::MAX) {
            let _ = self
                .fleet
                .with_station(i, |s, now| s.trigger(now, Some(Duration::ZERO)));
        }
        let r1 = self.run_span(name, OUTAGE_SPAN);
        let during = outcomes(&self.fleet);
        let addr = match mode {
            OutageMode::StopServer => self.admin.start_server()?,
            OutageMode::RouteCut => self.admin.server_addr(),
        };
        self.set_cups_routes(Some(addr))?;
        let r2 = self.run_each(name, &during, |b, g| {
            let o = g.outcome();
            o.done > b.done && o.status == GatewayStatus::Done && o.credset == "REG"
        });
        let mut verdicts: Vec<Option<String>> = self
            .fleet
            .gateways()
            .zip(&start.base)
            .zip(&during)
            .map(|((g, b), d)| {
                let o = g.outcome();
                if d.failed == b.failed {
                    Some("no failure during the outage".into())
                } else if (o.cups_cred_crc, o.tc_cred_crc) != (b.cups_cred_crc, b.tc_cred_crc) {
                    Some("CRCs changed".into())
                } else {
                    None
                }
            })
            .collect();
        self.check_server_state(&mut verdicts)?;
        self.check_tc(&mut verdicts);
        let failed: u32 = during
            .iter()
            .zip(&start.base)
            .map(|(d, b)| d.failed - b.failed)
            .sum();
        let notes = vec![
            format!(
                "outage by {}: {:.0} simulated minutes, {failed} failed requests ({:.1} per gateway), runs: {r1:?}, {r2:?}",
                match mode {
                    OutageMode::StopServer => "stopping the server",
                    OutageMode::RouteCut => "a route cut in the uplink",
                },
                OUTAGE_SPAN.as_secs_f64() / 60.0,
                f64::from(failed) / self.euis.len().max(1) as f64
            ),
            format!(
                "server back on {addr}; {}",
                if self.tc.is_some() {
                    "with the LNS connected a failed CUPS request is retried on the 24 h interval (the station's rule), so about one failure per gateway"
                } else {
                    "without an LNS the station retries CUPS every minute"
                }
            ),
        ];
        self.finish(&start, verdicts, notes);
        Ok(())
    }

    fn lns_outage(&mut self) -> Result<(), ScenarioError> {
        let name = Scenario::LnsOutage.name();
        if self.tc.is_none() {
            self.phases.push(PhaseSummary {
                name: name.into(),
                skipped: Some("TC is off (no TC URI on the server, or --no-tc)".into()),
                ..PhaseSummary::default()
            });
            return Ok(());
        }
        let start = self.start(name);
        // CUPS polling with the LNS up ...
        let r1 = self.run_span(name, LNS_OUTAGE_SPAN);
        let up = outcomes(&self.fleet);
        // ... and while it is down.
        if let Some(t) = &self.tc {
            t.set_available(false);
        }
        self.fleet.drop_tc_sessions();
        let r2 = self.run_span(name, LNS_OUTAGE_SPAN);
        let unreachable = outcomes(&self.fleet);
        // ... and while it is reachable but refuses every router: 1-minute CUPS polling.
        if let Some(t) = &self.tc {
            t.set_refusing(true);
            t.set_available(true);
        }
        let r2b = self.run_span(name, LNS_REFUSING_SPAN);
        let down = outcomes(&self.fleet);
        if let Some(t) = &self.tc {
            t.set_refusing(false);
        }
        let r3 = self.run_each(name, &down, |_, g| g.outcome().tc_connected);
        let per = |a: &[GatewayOutcome], b: &[GatewayOutcome]| -> Vec<u32> {
            a.iter()
                .zip(b)
                .map(|(x, y)| y.interactions - x.interactions)
                .collect()
        };
        let before = per(&start.base, &up);
        let during = per(&up, &unreachable);
        let refused = per(&unreachable, &down);
        let mut verdicts: Vec<Option<String>> = self
            .fleet
            .gateways()
            .zip(&before)
            .zip(during.iter().zip(&refused))
            .map(|((g, &b), (&d, &f))| {
                let o = g.outcome();
                if let Some(v) = lns_outage_polls_verdict(b, d, f) {
                    Some(v)
                } else if !o.tc_connected {
                    Some("did not reconnect to the LNS".into())
                } else {
                    None
                }
            })
            .collect();
        self.check_server_state(&mut verdicts)?;
        self.check_tc(&mut verdicts);
        let hours = LNS_OUTAGE_SPAN.as_secs_f64() / 3600.0;
        let n = self.euis.len().max(1) as f64;
        let avg = |v: &[u32]| f64::from(v.iter().sum::<u32>()) / n / hours;
        let refusing_hours = LNS_REFUSING_SPAN.as_secs_f64() / 3600.0;
        let notes = vec![format!(
            "CUPS requests per gateway and hour: LNS up {:.2}, LNS unreachable {:.2}, LNS refusing {:.2}; runs: {r1:?}, {r2:?}, {r2b:?}, {r3:?}",
            avg(&before),
            avg(&during),
            avg(&refused) * hours / refusing_hours
        )];
        self.finish(&start, verdicts, notes);
        Ok(())
    }
}

/// What a phase started from.
struct PhaseStart {
    name: String,
    report: Report,
    real: Instant,
    virtual_at: Duration,
    base: Vec<GatewayOutcome>,
}

/// An update script the simulated stations recognise (`echo <v> > version.txt`).
#[must_use]
pub fn update_script(version: &str) -> Vec<u8> {
    format!(
        "#!/bin/sh\n# gateway-sim update\necho {version} > version.txt\nrm -f /tmp/update.bin\n"
    )
    .into_bytes()
}

/// The value at quantile `q` of sorted `v` (nearest rank), in milliseconds.
fn percentile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    sorted_us
        .get(rank - 1)
        .map_or(0.0, |&v| f64::from(v) / 1000.0)
}

/// Whether `n` CUPS requests in [`STEADY_STATE_SPAN`] are the 24 h polls of a healthy gateway
/// (at least one, at most [`STEADY_STATE_MAX_REQUESTS`]).
#[must_use]
pub fn steady_state_polls_ok(n: u32) -> bool {
    (1..=STEADY_STATE_MAX_REQUESTS).contains(&n)
}

/// The lns-outage verdict on one gateway's CUPS requests: `before` with the LNS up,
/// `unreachable` in [`LNS_OUTAGE_SPAN`] without a reachable LNS (at least
/// [`LNS_OUTAGE_MIN_REQUESTS`]), `refusing` in [`LNS_REFUSING_SPAN`] with an LNS refusing it
/// (at least [`LNS_REFUSING_MIN_REQUESTS`]). `None`: it fell back as a station must.
#[must_use]
pub fn lns_outage_polls_verdict(before: u32, unreachable: u32, refusing: u32) -> Option<String> {
    if unreachable < LNS_OUTAGE_MIN_REQUESTS {
        Some(format!(
            "{unreachable} CUPS requests in the hour the LNS was unreachable (before: {before}): no fallback to CUPS polling"
        ))
    } else if refusing < LNS_REFUSING_MIN_REQUESTS {
        Some(format!(
            "{refusing} CUPS requests in the {} min the LNS refused it: no 1-minute polling",
            LNS_REFUSING_SPAN.as_secs() / 60
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_state_poll_count_limits() {
        assert!(!steady_state_polls_ok(0));
        assert!(steady_state_polls_ok(1));
        assert!(steady_state_polls_ok(STEADY_STATE_MAX_REQUESTS - 1));
        assert!(steady_state_polls_ok(STEADY_STATE_MAX_REQUESTS));
        assert!(!steady_state_polls_ok(STEADY_STATE_MAX_REQUESTS + 1));
    }

    #[test]
    fn lns_outage_poll_count_limits() {
        let (u, r) = (LNS_OUTAGE_MIN_REQUESTS, LNS_REFUSING_MIN_REQUESTS);
        assert_eq!(lns_outage_polls_verdict(0, u, r), None);
        assert_eq!(lns_outage_polls_verdict(0, u + 1, r + 1), None);
        let below_u = lns_outage_polls_verdict(0, u - 1, r).unwrap();
        assert!(below_u.contains("unreachable"), "{below_u}");
        let below_r = lns_outage_polls_verdict(0, u, r - 1).unwrap();
        assert!(below_r.contains("refused"), "{below_r}");
    }

    #[test]
    fn names_round_trip() {
        for s in Scenario::SEQUENCE.into_iter().chain([Scenario::All]) {
            assert_eq!(s.name().parse::<Scenario>(), Ok(s));
        }
        assert!("first_boot".parse::<Scenario>().is_err());
    }

    #[test]
    fn uri_ports() {
        assert_eq!(uri_port("https://localhost:16050"), Some(16050));
        assert_eq!(uri_port("wss://a.b:6887/router-info"), Some(6887));
        assert_eq!(uri_port("https://localhost"), None);
        assert_eq!(uri_port("localhost:1"), None);
    }

    #[test]
    fn scripts_are_recognised() {
        assert_eq!(
            crate::UpdateModel::scripts().apply(&update_script("2.0.0")),
            crate::UpdateOutcome::Applied {
                version: "2.0.0".into()
            }
        );
    }
}
