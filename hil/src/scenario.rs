//! The scenarios, each checked from both sides: the station's log events and the server's
//! audit lines (and, when the LNS endpoint is available, who connected to it).
//!
//! Every scenario provisions a fresh scratch `cups-server` working directory (`init`,
//! `gateway add`, `gateway export`), rewrites `station.conf` with short timers, starts the
//! server (and LNS endpoints) on loopback, then the station, and walks through its steps.
//! Every wait is bounded by [`HilConfig::step_timeout`] (plus the station timer it waits on).

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cups_core::Eui64;
use serde_json::Map;

use crate::audit::{AuditEvent, Sent};
use crate::lns_glue::{Lns, LnsGlueError};
use crate::log::{CredKind, CredSet, StationEvent};
use crate::server::{ServerError, ServerProcess, Workspace, locate_cups_server};
use crate::station::{SshGateway, StationError, StationProcess, StationTarget, TimedEvent};
use crate::station_conf::{self, StationConfError, Timers};

/// The EUI stations are provisioned with unless configured otherwise.
pub const DEFAULT_EUI: Eui64 = match Eui64::new(0x0016_c0ff_fe00_0001) {
    Ok(eui) => eui,
    Err(_) => panic!("the default EUI is not zero"),
};
/// Default station `model` the update scenarios register firmware for.
pub const DEFAULT_MODEL: &str = "linux";
/// Default longest wait for one expected event (on top of the station timer it waits on).
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(90);
/// Firmware id and version of the update scenarios.
pub const UPDATE_ID: &str = "hil-update";
/// The `package` the update script writes into `version.txt`.
pub const UPDATE_VERSION: &str = "hil-2.0.0";
/// How long the audit side is polled after the station side saw the matching event.
const AUDIT_GRACE: Duration = Duration::from_secs(10);

/// One scenario.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
pub enum Scenario {
    /// First boot from a bootstrap set: the station gets its own CUPS and TC credentials and
    /// connects to the LNS.
    FirstBoot,
    /// Provisioned with its own credentials: no credentials resent, quiet second check.
    SteadyState,
    /// `gateway renew`: fresh CUPS and TC credentials on the next check, confirmed after.
    Renewal,
    /// `gateway set`: a new TC URI, then a new CUPS URI (a second server instance).
    UriMigration,
    /// `firmware add`: a signed update is delivered, verified and run.
    Update,
    /// A tampered image with the original signature: verification fails, nothing runs.
    BadSignature,
    /// The server dies and comes back: the station retries and recovers.
    ServerOutage,
    /// The LNS refuses the station: it falls back to CUPS, and reconnects when the LNS is back.
    LnsOutage,
}

impl Scenario {
    /// Every scenario, in the order `hil run all` runs them.
    pub const ALL: [Self; 8] = [
        Self::FirstBoot,
        Self::SteadyState,
        Self::Renewal,
        Self::UriMigration,
        Self::Update,
        Self::BadSignature,
        Self::ServerOutage,
        Self::LnsOutage,
    ];

    /// The command-line name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::FirstBoot => "first-boot",
            Self::SteadyState => "steady-state",
            Self::Renewal => "renewal",
            Self::UriMigration => "uri-migration",
            Self::Update => "update",
            Self::BadSignature => "bad-signature",
            Self::ServerOutage => "server-outage",
            Self::LnsOutage => "lns-outage",
        }
    }

    /// From the command-line name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What to run against.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HilConfig {
    /// The station.
    pub target: StationTarget,
    /// The `cups-server` binary (None: next to this executable, else `PATH`).
    pub cups_server: Option<PathBuf>,
    /// The gateway EUI to provision.
    pub eui: Eui64,
    /// The station's `model` (firmware is registered for it).
    pub model: String,
    /// Station timers written into `station.conf`.
    pub timers: Timers,
    /// The station binary on an SSH gateway.
    pub remote_station_bin: String,
    /// The `ssh` program (default: `ssh` from `PATH`).
    pub ssh_command: PathBuf,
    /// The `scp` program (default: `scp` from `PATH`).
    pub scp_command: PathBuf,
    /// Longest wait for one expected event, on top of the timer it waits on.
    pub step_timeout: Duration,
}

impl HilConfig {
    /// Defaults for `target`.
    #[must_use]
    pub fn new(target: StationTarget) -> Self {
        Self {
            target,
            cups_server: None,
            eui: DEFAULT_EUI,
            model: DEFAULT_MODEL.to_owned(),
            timers: Timers::default(),
            remote_station_bin: "station".to_owned(),
            ssh_command: PathBuf::from("ssh"),
            scp_command: PathBuf::from("scp"),
            step_timeout: DEFAULT_STEP_TIMEOUT,
        }
    }

    /// A local station from `CUPS_HIL_STATION`, if set to a non-empty path.
    #[must_use]
    pub fn from_env() -> Option<Self> {
        let path = std::env::var_os(crate::station::STATION_ENV).filter(|p| !p.is_empty())?;
        Some(Self::new(StationTarget::Local {
            path: PathBuf::from(path),
        }))
    }
}

/// Which side a check looks at.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
pub enum Side {
    /// The station's log.
    Station,
    /// The server's audit lines.
    Server,
    /// The LNS endpoint.
    Lns,
}

/// How a check ended.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize)]
pub enum CheckOutcome {
    /// Seen.
    Passed,
    /// Not seen (why).
    Failed(String),
    /// Not checked (why).
    Skipped(String),
}

/// One check of a scenario.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// From which side.
    pub side: Side,
    /// Result.
    pub outcome: CheckOutcome,
    /// When it was decided, since the scenario started.
    pub at: Duration,
}

/// What a scenario run found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HilReport {
    /// The scenario.
    pub scenario: Scenario,
    /// The gateway (16 hex digits).
    pub eui: String,
    /// The checks in order.
    pub checks: Vec<Check>,
    /// The station's parsed log.
    pub station_events: Vec<TimedEvent>,
    /// The audit lines of every server process of the run.
    pub audit: Vec<AuditEvent>,
    /// Wall time.
    pub duration: Duration,
}

impl HilReport {
    /// No check failed.
    #[must_use]
    pub fn passed(&self) -> bool {
        !self
            .checks
            .iter()
            .any(|c| matches!(c.outcome, CheckOutcome::Failed(_)))
    }

    /// Counts of (passed, failed, skipped).
    #[must_use]
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut n = (0, 0, 0);
        for c in &self.checks {
            match c.outcome {
                CheckOutcome::Passed => n.0 += 1,
                CheckOutcome::Failed(_) => n.1 += 1,
                CheckOutcome::Skipped(_) => n.2 += 1,
            }
        }
        n
    }
}

impl fmt::Display for HilReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "scenario {}  gateway {}  {:.1}s",
            self.scenario,
            self.eui,
            self.duration.as_secs_f64()
        )?;
        for c in &self.checks {
            let (mark, why) = match &c.outcome {
                CheckOutcome::Passed => ("ok  ", String::new()),
                CheckOutcome::Failed(w) => ("FAIL", format!(" — {w}")),
                CheckOutcome::Skipped(w) => ("skip", format!(" — {w}")),
            };
            let side = match c.side {
                Side::Station => "station",
                Side::Server => "server ",
                Side::Lns => "lns    ",
            };
            writeln!(
                f,
                "  {mark} {side} {:>6.1}s  {}{why}",
                c.at.as_secs_f64(),
                c.name
            )?;
        }
        let (p, x, s) = self.counts();
        write!(
            f,
            "{}: {p} passed, {x} failed, {s} skipped; {} station events, {} audit lines",
            if self.passed() { "PASSED" } else { "FAILED" },
            self.station_events.len(),
            self.audit.len()
        )
    }
}

/// Why a scenario could not be run at all (a failed check is not an error: see
/// [`HilReport::passed`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HilError {
    /// The server binary or one of its commands failed.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The station could not be run.
    #[error(transparent)]
    Station(#[from] StationError),
    /// `station.conf` could not be written.
    #[error(transparent)]
    StationConf(#[from] StationConfError),
    /// The LNS endpoint failed to start (other than being absent from this build).
    #[error(transparent)]
    Lns(LnsGlueError),
    /// Local file trouble.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HilError {
    let what = what.into();
    move |source| HilError::Io { what, source }
}

/// A loopback port nobody listens on (bound and released; for URIs that must fail).
fn unused_port() -> Result<u16, HilError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io("reserve a loopback port"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(io("reserve a loopback port"))
}

/// The update script: writes the new package into the home's `version.txt` and deletes
/// itself (the station re-runs `update.bin` at every start while it exists).
#[must_use]
pub fn update_script(station_home: &str) -> String {
    format!(
        "#!/bin/sh\n# hil update: bump the package and remove this file\nprintf '%s\\n' {v} > {h}/version.txt\nrm -f \"$0\"\n",
        v = crate::station::shell_quote(UPDATE_VERSION),
        h = crate::station::shell_quote(station_home.trim_end_matches('/')),
    )
}

/// Flip the last byte of the stored image of firmware `id` in a filesystem store under
/// `data_dir` (same length, so the server streams it with the original signature).
///
/// # Errors
/// The image is missing or cannot be rewritten.
pub fn tamper_image(data_dir: &Path, id: &str) -> Result<(), HilError> {
    let path = data_dir.join("firmware").join(id).join("image");
    let mut bytes = std::fs::read(&path).map_err(io(format!("read {}", path.display())))?;
    let last = bytes.last_mut().ok_or_else(|| HilError::Io {
        what: format!("{} is empty", path.display()),
        source: std::io::Error::from(std::io::ErrorKind::InvalidData),
    })?;
    *last ^= 0x01;
    std::fs::write(&path, &bytes).map_err(io(format!("write {}", path.display())))
}

/// Provision a station home through the real binary: `gateway add EUI --cups-uri --tc-uri`,
/// `gateway export --station-home HOME [--bootstrap]` (DER files, byte-identical to the
/// stored blob), then `station.conf` with `timers`, `log_file: stderr` and `log_level:
/// VERBOSE` merged in.
///
/// # Errors
/// A `cups-server` command or the `station.conf` rewrite failed.
pub fn provision_station(
    ws: &Workspace,
    eui: &str,
    cups_uri: &str,
    tc_uri: &str,
    home: &Path,
    bootstrap: bool,
    timers: &Timers,
) -> Result<(), HilError> {
    ws.add_gateway(eui, cups_uri, tc_uri)?;
    ws.export(eui, home, bootstrap)?;
    let entries = station_conf::harness_entries(timers, station_conf::LOG_FILE, &Map::new())?;
    station_conf::rewrite(home, &entries)?;
    Ok(())
}

/// Everything one run holds.
struct Run<'a> {
    cfg: &'a HilConfig,
    scenario: Scenario,
    started: Instant,
    ws: Workspace,
    _home_dir: tempfile::TempDir,
    home: PathBuf,
    remote_home: String,
    eui: String,
    servers: Vec<ServerProcess>,
    audit_done: Vec<AuditEvent>,
    lns: Vec<Lns>,
    lns_missing: Option<String>,
    spare_tc_uri: String,
    station: Option<StationProcess>,
    checks: Vec<Check>,
}

impl Run<'_> {
    fn record(&mut self, name: &str, side: Side, outcome: CheckOutcome) {
        tracing::info!(check = name, ?outcome, "hil check");
        self.checks.push(Check {
            name: name.to_owned(),
            side,
            outcome,
            at: self.started.elapsed(),
        });
    }

    fn station(&mut self) -> &mut StationProcess {
        // Only called after start_station.
        self.station
            .as_mut()
            .unwrap_or_else(|| unreachable!("station started"))
    }

    fn events_len(&mut self) -> usize {
        let st = self.station();
        st.pump();
        st.events().len()
    }

    /// Wait (from event `from`) for a station event; record the check.
    fn expect(
        &mut self,
        name: &str,
        from: usize,
        extra_wait: Duration,
        pred: impl Fn(&StationEvent) -> bool,
    ) -> Option<usize> {
        let timeout = self.cfg.step_timeout + extra_wait;
        let found = self.station().wait_for(from, timeout, pred);
        let outcome = match found {
            Some(_) => CheckOutcome::Passed,
            None => CheckOutcome::Failed(format!("not logged within {}s", timeout.as_secs())),
        };
        self.record(name, Side::Station, outcome);
        found
    }

    /// Whether a station event matching `pred` exists at or after `from`.
    fn seen(&mut self, from: usize, pred: impl Fn(&StationEvent) -> bool) -> bool {
        self.station()
            .events()
            .get(from..)
            .is_some_and(|e| e.iter().any(|t| pred(&t.event)))
    }

    /// Record a check on the absence of an event from `from` on.
    fn expect_none(&mut self, name: &str, from: usize, pred: impl Fn(&StationEvent) -> bool) {
        let outcome = if self.seen(from, &pred) {
            CheckOutcome::Failed("it was logged".to_owned())
        } else {
            CheckOutcome::Passed
        };
        self.record(name, Side::Station, outcome);
    }

    /// Every audit event so far (servers stopped earlier included).
    fn audit(&self) -> Vec<AuditEvent> {
        let mut all = self.audit_done.clone();
        for s in &self.servers {
            all.extend(s.audit());
        }
        all
    }

    /// How many audit lines so far match `pred`.
    fn audit_count(&self, pred: impl Fn(&AuditEvent) -> bool) -> usize {
        self.audit().iter().filter(|a| pred(a)).count()
    }

    /// Poll the audit lines of server `idx` (None: any) for `pred`, skipping the first `skip`
    /// matching lines; record the check.
    fn expect_audit(
        &mut self,
        name: &str,
        idx: Option<usize>,
        skip: usize,
        pred: impl Fn(&AuditEvent) -> bool,
    ) -> bool {
        let deadline = Instant::now() + AUDIT_GRACE;
        loop {
            let lines = match idx {
                Some(i) => self
                    .servers
                    .get(i)
                    .map(ServerProcess::audit)
                    .unwrap_or_default(),
                None => self.audit(),
            };
            if lines.iter().filter(|a| pred(a)).count() > skip {
                self.record(name, Side::Server, CheckOutcome::Passed);
                return true;
            }
            if Instant::now() >= deadline {
                self.record(
                    name,
                    Side::Server,
                    CheckOutcome::Failed(format!("no such audit line ({} seen)", lines.len())),
                );
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Record an LNS-side check (skipped without an endpoint): polled for a short while,
    /// since the endpoint counts the `version` message after the station logged its connect.
    fn expect_lns(&mut self, name: &str, idx: usize) {
        let deadline = Instant::now() + AUDIT_GRACE;
        let outcome = loop {
            match (&self.lns_missing, self.lns.get(idx)) {
                (Some(why), _) => break CheckOutcome::Skipped(why.clone()),
                (None, None) => break CheckOutcome::Skipped("no such LNS endpoint".to_owned()),
                (None, Some(l)) if l.connected_gateways().contains(&self.eui) => {
                    break CheckOutcome::Passed;
                }
                (None, Some(_)) if Instant::now() >= deadline => {
                    break CheckOutcome::Failed("gateway not connected".to_owned());
                }
                (None, Some(_)) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        self.record(name, Side::Lns, outcome);
    }

    /// A station-side check that needs the LNS: run it, or skip it.
    fn expect_with_lns(
        &mut self,
        name: &str,
        from: usize,
        extra_wait: Duration,
        pred: impl Fn(&StationEvent) -> bool,
    ) -> Option<usize> {
        if let Some(why) = self.lns_missing.clone() {
            self.record(name, Side::Station, CheckOutcome::Skipped(why));
            return None;
        }
        self.expect(name, from, extra_wait, pred)
    }

    fn tc_uri(&self, idx: usize) -> String {
        self.lns
            .get(idx)
            .map_or_else(|| self.spare_tc_uri.clone(), Lns::tc_uri)
    }

    fn cups_uri(&self, idx: usize) -> String {
        self.servers.get(idx).map_or_else(String::new, |s| {
            format!("https://localhost:{}", s.addr().port())
        })
    }

    fn ports(&self) -> Vec<u16> {
        let mut p: Vec<u16> = self.servers.iter().map(|s| s.addr().port()).collect();
        p.extend(self.lns.iter().map(|l| l.local_addr().port()));
        p
    }

    fn start_station(&mut self) -> Result<(), HilError> {
        let st = match &self.cfg.target {
            StationTarget::Local { path } => StationProcess::start_local(path, &self.home)?,
            StationTarget::Ssh { dest, home } => {
                let gw = SshGateway {
                    station_bin: self.cfg.remote_station_bin.clone(),
                    ssh: self.cfg.ssh_command.clone(),
                    scp: self.cfg.scp_command.clone(),
                    ..SshGateway::new(dest, home)
                };
                StationProcess::start_ssh(&gw, &self.home, &self.ports())?
            }
        };
        self.station = Some(st);
        Ok(())
    }

    /// Wait for the first completed CUPS interaction (and the muxs connection if there is an
    /// LNS): the steady state other scenarios start from. Returns the event index after it.
    fn settle(&mut self) -> usize {
        let oksync = self.cfg.timers.cups_oksync;
        let done = self
            .expect("first CUPS interaction completes", 0, oksync, |e| {
                matches!(
                    e,
                    StationEvent::CupsDone { .. } | StationEvent::CupsUpdatesProvided { .. }
                )
            })
            .map_or(0, |i| i + 1);
        let muxs = self
            .expect_with_lns("connects to the LNS (muxs)", 0, Duration::ZERO, |e| {
                *e == StationEvent::TcMuxsConnected
            })
            .map_or(0, |i| i + 1);
        done.max(muxs).max(self.events_len())
    }

    fn finish(mut self) -> HilReport {
        if let Some(mut st) = self.station.take() {
            st.stop();
            self.station = Some(st);
        }
        let station_events = self
            .station
            .as_ref()
            .map(|s| s.events().to_vec())
            .unwrap_or_default();
        let audit = self.audit();
        for s in &mut self.servers {
            s.stop();
        }
        for l in self.lns.drain(..) {
            l.stop();
        }
        HilReport {
            scenario: self.scenario,
            eui: self.eui.clone(),
            checks: std::mem::take(&mut self.checks),
            station_events,
            audit,
            duration: self.started.elapsed(),
        }
    }
}

/// Run one scenario.
///
/// # Errors
/// Setup failures ([`HilError`]); failed checks are in the report.
pub fn run_scenario(cfg: &HilConfig, scenario: Scenario) -> Result<HilReport, HilError> {
    let started = Instant::now();
    let bin = locate_cups_server(cfg.cups_server.as_deref())?;
    let ws = Workspace::new(bin)?;
    ws.init()?;
    let loopback: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));

    // LNS endpoints (two for the migration), or the reason there are none.
    let mut lns = Vec::new();
    let mut lns_missing = None;
    let wanted_lns = if scenario == Scenario::UriMigration {
        2
    } else {
        1
    };
    for _ in 0..wanted_lns {
        match Lns::start(loopback, &ws.certs()) {
            Ok(l) => lns.push(l),
            Err(LnsGlueError::Unavailable(why)) => {
                lns_missing = Some(why.to_owned());
                break;
            }
            Err(e) => return Err(HilError::Lns(e)),
        }
    }
    let spare_tc_uri = format!("wss://localhost:{}", unused_port()?);

    let mut servers = vec![ws.serve(loopback)?];
    if scenario == Scenario::UriMigration {
        servers.push(ws.serve(loopback)?);
    }
    let home_dir = tempfile::Builder::new()
        .prefix("hil-station-")
        .tempdir()
        .map_err(io("station home"))?;
    let home = home_dir.path().to_path_buf();
    let remote_home = match &cfg.target {
        StationTarget::Ssh { home, .. } => home.clone(),
        StationTarget::Local { .. } => home.display().to_string(),
    };
    let eui = cfg.eui.canonical().to_string();
    let mut run = Run {
        cfg,
        scenario,
        started,
        ws,
        _home_dir: home_dir,
        home,
        remote_home,
        eui,
        servers,
        audit_done: Vec::new(),
        lns,
        lns_missing,
        spare_tc_uri,
        station: None,
        checks: Vec::new(),
    };
    if scenario == Scenario::LnsOutage && run.lns_missing.is_some() {
        let why = run.lns_missing.clone().unwrap_or_default();
        run.record(
            "the LNS outage needs the LNS endpoint",
            Side::Lns,
            CheckOutcome::Skipped(why),
        );
        return Ok(run.finish());
    }

    let (cups_uri, tc_uri) = (run.cups_uri(0), run.tc_uri(0));
    provision_station(
        &run.ws,
        &run.eui,
        &cups_uri,
        &tc_uri,
        &run.home,
        scenario == Scenario::FirstBoot,
        &cfg.timers,
    )?;
    run.start_station()?;

    match scenario {
        Scenario::FirstBoot => first_boot(&mut run),
        Scenario::SteadyState => steady_state(&mut run),
        Scenario::Renewal => renewal(&mut run)?,
        Scenario::UriMigration => uri_migration(&mut run)?,
        Scenario::Update => update(&mut run, false)?,
        Scenario::BadSignature => update(&mut run, true)?,
        Scenario::ServerOutage => server_outage(&mut run)?,
        Scenario::LnsOutage => lns_outage(&mut run),
    }
    Ok(run.finish())
}

fn first_boot(run: &mut Run<'_>) {
    let eui = run.eui.clone();
    let resync = run.cfg.timers.cups_resync;
    run.expect("regular set has no CUPS URI", 0, Duration::ZERO, |e| {
        *e == StationEvent::CupsNoUri {
            set: CredSet::Regular,
        }
    });
    let boot = run
        .expect("connects with its bootstrap set", 0, resync * 3, |e| {
            matches!(
                e,
                StationEvent::CupsConnecting {
                    set: CredSet::Bootstrap,
                    ..
                }
            )
        })
        .unwrap_or(0);
    run.expect("receives its CUPS credentials", boot, Duration::ZERO, |e| {
        matches!(
            e,
            StationEvent::CredentialsUpdated {
                kind: CredKind::Cups,
                ..
            }
        )
    });
    run.expect("receives the TC URI", boot, Duration::ZERO, |e| {
        matches!(e, StationEvent::TcUriUpdated { .. })
    });
    run.expect("receives its TC credentials", boot, Duration::ZERO, |e| {
        matches!(
            e,
            StationEvent::CredentialsUpdated {
                kind: CredKind::Tc,
                ..
            }
        )
    });
    run.expect_audit("answered 200 with CUPS credentials", None, 0, |a| {
        a.is_ok_request(&eui) && a.sent(Sent::CupsCred)
    });
    run.expect("next contact uses the regular set", boot + 1, resync, |e| {
        matches!(
            e,
            StationEvent::CupsConnecting {
                set: CredSet::Regular,
                ..
            }
        )
    });
    run.expect_audit(
        "the gateway confirms its new CUPS credentials",
        None,
        0,
        |a| a.is_ok_request(&eui) && a.has_event("confirmed:cups"),
    );
    run.expect_with_lns("router-info answered", boot, Duration::ZERO, |e| {
        matches!(e, StationEvent::TcInfos { .. })
    });
    run.expect_with_lns("connects to muxs", boot, Duration::ZERO, |e| {
        *e == StationEvent::TcMuxsConnected
    });
    run.expect_lns("the LNS saw the gateway", 0);
}

fn steady_state(run: &mut Run<'_>) {
    let eui = run.eui.clone();
    let oksync = run.cfg.timers.cups_oksync;
    let after = run.settle();
    run.expect_none("exported credentials are not resent", 0, |e| {
        matches!(
            e,
            StationEvent::CredentialsUpdated {
                kind: CredKind::Cups,
                ..
            }
        )
    });
    run.expect_audit("first request answered 200", None, 0, |a| {
        a.is_ok_request(&eui)
    });
    run.expect("a later check has no updates", after, oksync, |e| {
        matches!(
            e,
            StationEvent::CupsDone {
                no_updates: true,
                ..
            }
        )
    });
    run.expect_audit("the server answered nothing to do", None, 0, |a| {
        a.is_ok_request(&eui) && a.outcome.as_deref() == Some("no_change")
    });
    run.expect_lns("the LNS saw the gateway", 0);
}

fn renewal(run: &mut Run<'_>) -> Result<(), HilError> {
    let eui = run.eui.clone();
    let oksync = run.cfg.timers.cups_oksync;
    let resync = run.cfg.timers.cups_resync;
    let from = run.settle();
    let confirmed = run.audit_count(|a| a.is_ok_request(&eui) && a.has_event("confirmed:cups"));
    run.ws.renew(&eui)?;
    let got = run
        .expect("receives fresh CUPS credentials", from, oksync, |e| {
            matches!(
                e,
                StationEvent::CredentialsUpdated {
                    kind: CredKind::Cups,
                    ..
                }
            )
        })
        .unwrap_or(from);
    run.expect("receives fresh TC credentials", from, Duration::ZERO, |e| {
        matches!(
            e,
            StationEvent::CredentialsUpdated {
                kind: CredKind::Tc,
                ..
            }
        )
    });
    run.expect("restarts its TC connection", from, Duration::ZERO, |e| {
        matches!(e, StationEvent::TcUpdatesProvided { .. })
    });
    run.expect_audit("the server renewed both credentials", None, 0, |a| {
        a.is_ok_request(&eui) && a.has_event("renewed:cups") && a.has_event("renewed:tc")
    });
    run.expect(
        "reconnects to CUPS with the new credentials",
        got,
        resync,
        |e| {
            matches!(
                e,
                StationEvent::CupsConnecting {
                    set: CredSet::Regular,
                    ..
                }
            )
        },
    );
    run.expect_audit(
        "the gateway confirms the renewed credentials",
        None,
        confirmed,
        |a| a.is_ok_request(&eui) && a.has_event("confirmed:cups"),
    );
    run.expect_with_lns(
        "reconnects to muxs with the new TC credentials",
        got,
        Duration::ZERO,
        |e| *e == StationEvent::TcMuxsConnected,
    );
    Ok(())
}

fn uri_migration(run: &mut Run<'_>) -> Result<(), HilError> {
    let eui = run.eui.clone();
    let oksync = run.cfg.timers.cups_oksync;
    let resync = run.cfg.timers.cups_resync;
    let from = run.settle();
    let tc_b = run.tc_uri(1);
    let tc_b = if run.lns.len() > 1 {
        tc_b
    } else {
        format!("wss://localhost:{}", unused_port()?)
    };
    run.ws.set_tc_uri(&eui, &tc_b)?;
    let want = tc_b.clone();
    let moved = run
        .expect(
            "receives the new TC URI",
            from,
            oksync,
            move |e| matches!(e, StationEvent::TcUriUpdated { uri } if *uri == want),
        )
        .unwrap_or(from);
    run.expect_audit("the server sent the TC URI", None, 0, |a| {
        a.is_ok_request(&eui) && a.sent(Sent::TcUri)
    });
    let want = tc_b.clone();
    run.expect(
        "asks the new LNS for router-info",
        moved,
        Duration::ZERO,
        move |e| matches!(e, StationEvent::TcInfosConnecting { uri } if *uri == want),
    );
    run.expect_with_lns(
        "connects to the new LNS's muxs",
        moved,
        Duration::ZERO,
        |e| *e == StationEvent::TcMuxsConnected,
    );
    run.expect_lns("the new LNS saw the gateway", 1);

    let cups_b = run.cups_uri(1);
    run.ws.set_cups_uri(&eui, &cups_b)?;
    let want = cups_b.clone();
    let moved = run
        .expect(
            "receives the new CUPS URI",
            moved,
            oksync,
            move |e| matches!(e, StationEvent::CupsUriUpdated { uri } if *uri == want),
        )
        .unwrap_or(moved);
    let want = cups_b.clone();
    run.expect(
        "contacts the new CUPS server",
        moved,
        resync,
        move |e| matches!(e, StationEvent::CupsConnecting { uri, .. } if *uri == want),
    );
    run.expect_audit("the second server instance answered it", Some(1), 0, |a| {
        a.is_ok_request(&eui)
    });
    Ok(())
}

fn update(run: &mut Run<'_>, tamper: bool) -> Result<(), HilError> {
    let eui = run.eui.clone();
    let oksync = run.cfg.timers.cups_oksync;
    let from = run.settle();
    let script = run.ws.path().join("update.sh");
    std::fs::write(&script, update_script(&run.remote_home)).map_err(io("write update.sh"))?;
    run.ws
        .firmware_add(&run.cfg.model, UPDATE_VERSION, UPDATE_ID, &script)?;
    if tamper {
        tamper_image(&run.ws.path().join("data"), UPDATE_ID)?;
    }
    let got = run
        .expect("receives the update", from, oksync, |e| {
            matches!(e, StationEvent::UpdateReceived { .. })
        })
        .unwrap_or(from);
    run.expect("receives its signature", from, Duration::ZERO, |e| {
        matches!(e, StationEvent::SignatureProvided { .. })
    });
    run.expect_audit("the server sent the firmware", None, 0, |a| {
        a.is_ok_request(&eui) && a.firmware_sent() == Some(UPDATE_ID)
    });
    if tamper {
        run.expect("no key verifies the signature", got, Duration::ZERO, |e| {
            matches!(e, StationEvent::SignatureRejected { .. })
        });
        run.expect("aborts the update", got, Duration::ZERO, |e| {
            *e == StationEvent::UpdateAborted
        });
        run.expect_none("does not run the update", got, |e| {
            *e == StationEvent::UpdateRunning
        });
    } else {
        run.expect("verifies the signature", got, Duration::ZERO, |e| {
            matches!(e, StationEvent::KeyChecked { verified: true, .. })
        });
        run.expect("runs the update", got, Duration::ZERO, |e| {
            *e == StationEvent::UpdateRunning
        });
        // The script bumped version.txt: the next check reports the new package and the
        // server sends nothing more.
        let quiet = |a: &AuditEvent| a.is_ok_request(&eui) && a.firmware_sent().is_none();
        let before = run.audit_count(quiet);
        let again = run
            .expect("checks CUPS again", got, oksync, |e| {
                matches!(e, StationEvent::CupsConnecting { .. })
            })
            .unwrap_or(got);
        run.expect("that check completes", again, Duration::ZERO, |e| {
            matches!(e, StationEvent::CupsDone { .. })
        });
        run.expect_audit("the update is not sent again", None, before, quiet);
    }
    Ok(())
}

fn server_outage(run: &mut Run<'_>) -> Result<(), HilError> {
    let eui = run.eui.clone();
    let oksync = run.cfg.timers.cups_oksync;
    let resync = run.cfg.timers.cups_resync;
    let from = run.settle();
    let addr = run.servers.first().map(ServerProcess::addr);
    if let Some(mut s) = run.servers.pop() {
        s.stop();
        run.audit_done.extend(s.audit());
    }
    let failed = run
        .expect(
            "a CUPS check fails while the server is down",
            from,
            oksync,
            |e| matches!(e, StationEvent::CupsFailed { .. }),
        )
        .unwrap_or(from);
    run.expect("retries after CUPS_RESYNC_INTV", failed + 1, resync, |e| {
        matches!(e, StationEvent::CupsConnecting { .. })
    });
    let Some(addr) = addr else { return Ok(()) };
    run.servers.push(run.ws.serve(addr)?);
    let back = run.events_len();
    run.expect("recovers once the server is back", back, resync * 2, |e| {
        matches!(e, StationEvent::CupsDone { .. })
    });
    run.expect_none("never falls back to its bootstrap set", from, |e| {
        matches!(
            e,
            StationEvent::CupsConnecting {
                set: CredSet::Bootstrap,
                ..
            }
        )
    });
    run.expect_audit("the restarted server answered 200", Some(0), 0, |a| {
        a.is_ok_request(&eui)
    });
    Ok(())
}

fn lns_outage(run: &mut Run<'_>) {
    let eui = run.eui.clone();
    let resync = run.cfg.timers.cups_resync;
    let from = run.settle();
    let audits = run.audit_count(|a| a.is_ok_request(&eui));
    // The outage: the LNS drops the station and refuses it from now on (router-info answers
    // with an error, which sends the station to CUPS at once).
    let down = run.lns.first_mut().map(|l| l.restart(true));
    if let Some(Err(e)) = down {
        run.record(
            "take the LNS down",
            Side::Lns,
            CheckOutcome::Failed(e.to_string()),
        );
        return;
    }
    run.expect("loses the LNS", from, Duration::ZERO, |e| {
        matches!(
            e,
            StationEvent::TcMuxsClosed { .. }
                | StationEvent::TcInfosError { .. }
                | StationEvent::TcBackoff { .. }
        )
    });
    run.expect(
        "router-info refuses it",
        from,
        Duration::from_secs(60),
        |e| matches!(e, StationEvent::TcInfosError { .. }),
    );
    let gave_up = run
        .expect("falls back to CUPS", from, Duration::from_secs(60), |e| {
            *e == StationEvent::TcGaveUpInvokingCups
        })
        .unwrap_or(from);
    run.expect("polls CUPS after CUPS_RESYNC_INTV", gave_up, resync, |e| {
        matches!(e, StationEvent::CupsConnecting { .. })
    });
    run.expect_audit("the server answered the outage poll", None, audits, |a| {
        a.is_ok_request(&eui)
    });
    let up = run.lns.first_mut().map(|l| l.restart(false));
    if let Some(Err(e)) = up {
        run.record(
            "bring the LNS back",
            Side::Lns,
            CheckOutcome::Failed(e.to_string()),
        );
        return;
    }
    let back = run.events_len();
    run.expect(
        "reconnects when the LNS is back",
        back,
        Duration::from_secs(60),
        |e| *e == StationEvent::TcMuxsConnected,
    );
    run.expect_lns("the LNS saw the gateway again", 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::from_name(s.name()), Some(s));
        }
        assert_eq!(Scenario::from_name("nope"), None);
    }

    #[test]
    fn update_script_bumps_version_and_removes_itself() {
        let dir = tempfile::tempdir().expect("tmp");
        let home = dir.path().join("gw 'home'");
        std::fs::create_dir_all(&home).expect("home");
        let script = dir.path().join("update.bin");
        std::fs::write(&script, update_script(&home.display().to_string())).expect("write");
        let status = std::process::Command::new("/bin/sh")
            .arg(&script)
            .status()
            .expect("sh");
        assert!(status.success());
        assert_eq!(
            std::fs::read_to_string(home.join("version.txt")).expect("version"),
            format!("{UPDATE_VERSION}\n")
        );
        assert!(!script.exists(), "deletes itself");
    }

    #[test]
    fn tamper_flips_one_byte() {
        let dir = tempfile::tempdir().expect("tmp");
        let img = dir.path().join("firmware").join("x");
        std::fs::create_dir_all(&img).expect("dir");
        std::fs::write(img.join("image"), b"abc").expect("write");
        tamper_image(dir.path(), "x").expect("tamper");
        assert_eq!(std::fs::read(img.join("image")).expect("read"), b"abb");
        assert!(tamper_image(dir.path(), "missing").is_err());
        std::fs::write(img.join("image"), b"").expect("write");
        assert!(tamper_image(dir.path(), "x").is_err());
    }

    #[test]
    fn report_counts_and_renders() {
        let report = HilReport {
            scenario: Scenario::SteadyState,
            eui: "0016c0fffe000001".into(),
            checks: vec![
                Check {
                    name: "a".into(),
                    side: Side::Station,
                    outcome: CheckOutcome::Passed,
                    at: Duration::from_secs(1),
                },
                Check {
                    name: "b".into(),
                    side: Side::Lns,
                    outcome: CheckOutcome::Skipped("no LNS".into()),
                    at: Duration::from_secs(2),
                },
            ],
            station_events: vec![],
            audit: vec![],
            duration: Duration::from_secs(3),
        };
        assert!(report.passed());
        assert_eq!(report.counts(), (1, 0, 1));
        let text = report.to_string();
        assert!(text.contains("skip lns"), "{text}");
        assert!(
            text.contains("PASSED: 1 passed, 0 failed, 1 skipped"),
            "{text}"
        );
    }
}
