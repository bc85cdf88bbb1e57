//! One simulated gateway: the glue between a [`Station`] and the virtual network.
//!
//! On [`Action::Connect`]: a TCP socket on the gateway's own smoltcp interface to the uplink
//! (every host name resolves to the uplink; the name is used for TLS), TLS with the set's
//! files, [`Station::write_request`], then the response is parsed ([`ResponseParser`]) and fed
//! to the station. End, close and errors go to the station; the station's events are applied
//! (an update is "run" by the [`UpdateModel`]) and counted.

use std::net::Ipv4Addr;
use std::time::Duration;

use cups_core::Eui64;
use cups_core::sig::RustCryptoVerifier;
use cups_core::station::{
    Action, AuthMode, CredFile, CredKind, CredSet, FailReason, FileId, Instant as StationInstant,
    MemStore, Station, StationConfig, StationEvent, TransportError, WriteRequestError,
};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration as NetDuration, Instant as NetInstant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

use crate::clock::millis;
use crate::http::{HttpEvent, ResponseParser};
use crate::net::{
    FIRST_LOCAL_PORT, FaultInjector, GATEWAY_RX_BUFFER, GATEWAY_TX_BUFFER, LOCAL_PORTS, LinkFaults,
    PREFIX_LEN, Port, UPLINK_ADDR,
};
use crate::report::{GatewayMetrics, GatewayOutcome, GatewayStatus};
use crate::tc::{
    Stage, TC_MAX_RETRIES, TC_TIMEOUT, TcExchange, TcFailure, TcProgress, WsUri, backoff,
    parse_ws_uri, token_header_lines, version_message,
};
use crate::tls::{PLAINTEXT_CHUNK, PlainRead, Session, SetFiles, TlsFactory};
use crate::update::{UpdateModel, UpdateOutcome};

/// The station type every simulated gateway runs.
pub type SimStation = Station<'static, MemStore, RustCryptoVerifier>;

/// A finished connection is given this long (real time) to close cleanly before it is reset.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// First size of the request buffer (grown when the station asks for more).
const REQUEST_BUF: usize = 2048;

/// Fleet-level accumulators the gateways write to.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    /// Interaction latencies, microseconds.
    pub(crate) latencies_us: Vec<u32>,
    /// Bumped whenever an interaction ends (run conditions are re-checked then).
    pub(crate) changes: u64,
    /// `done_at_least[k]`: gateways with more than `k` successful interactions.
    pub(crate) done_at_least: Vec<u32>,
    /// Failures by reason.
    pub(crate) failures: std::collections::BTreeMap<String, u64>,
    /// TC attempt latencies (router-info connect to connected), microseconds.
    pub(crate) tc_latencies_us: Vec<u32>,
}

/// What a gateway step needs from the fleet.
pub(crate) struct Env<'a> {
    pub(crate) now: NetInstant,
    pub(crate) vnow: StationInstant,
    pub(crate) tls: &'a TlsFactory,
    pub(crate) updates: &'a UpdateModel,
    pub(crate) sink: &'a mut Sink,
    /// [`crate::FleetConfig::tc_connect`].
    pub(crate) tc_connect: bool,
    /// The `station` string (for the TC `version` message).
    pub(crate) version: &'a str,
    /// The `model` string.
    pub(crate) model: &'a str,
}

/// What a step did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stepped {
    pub(crate) progress: bool,
    /// An interaction ended.
    pub(crate) ended: bool,
}

/// A connection being closed.
#[derive(Debug)]
struct Closing {
    handle: SocketHandle,
    deadline: NetInstant,
    /// An interface poll ran since the last state change (so FIN/RST went out).
    polled: bool,
}

/// The interaction's connection.
struct Conn {
    handle: SocketHandle,
    local_port: u16,
    /// The response start was marked on the link (see `FaultInjector::mark_response_start`).
    marked: bool,
    session: Session,
    http: ResponseParser,
    established: bool,
    started: std::time::Instant,
    tls: bool,
}

/// The TC (LNS) link of a gateway. A held muxs session is only a flag (the station's
/// `tc_connected`); sockets exist only while an attempt is in flight.
#[derive(Default)]
struct TcLink {
    /// The station's `tc->retries`.
    retries: u32,
    /// When the next attempt starts (station time, ms).
    due: Option<u64>,
    /// Gave up (rejected or too many retries): CUPS was triggered; TC restarts after the
    /// next CUPS interaction.
    stopped: bool,
    /// Attempts made (seeds WebSocket keys).
    attempts: u32,
    /// The attempt in flight.
    conn: Option<Box<TcConn>>,
}

/// One TC connection in flight (router-info or muxs).
struct TcConn {
    handle: SocketHandle,
    session: Session,
    exchange: TcExchange,
    established: bool,
    /// Station time (ms) at which the attempt times out.
    deadline: u64,
    /// When the attempt (router-info) started.
    started: std::time::Instant,
    /// Token header lines (sent on both connections).
    token: Vec<u8>,
}

/// What driving a TC connection ended in.
enum TcTurn {
    Idle,
    Progress,
    Muxs(WsUri),
    Connected,
    Failed(TcFailure),
}

/// One gateway.
pub(crate) struct Gateway {
    pub(crate) index: u32,
    pub(crate) eui: Eui64,
    pub(crate) station: SimStation,
    iface: Interface,
    pub(crate) dev: FaultInjector<Port>,
    sockets: SocketSet<'static>,
    conn: Option<Box<Conn>>,
    closing: Vec<Closing>,
    next_port: u16,
    /// The set of the current (or last) interaction.
    last_set: CredSet,
    /// The due time queued in the fleet's heap, if any.
    pub(crate) scheduled: Option<u64>,
    /// In the fleet's active list.
    pub(crate) active: bool,
    pub(crate) outcome: GatewayOutcome,
    pub(crate) metrics: GatewayMetrics,
    tc: TcLink,
}

impl Gateway {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        index: u32,
        eui: Eui64,
        addr: Ipv4Addr,
        store: MemStore,
        config: StationConfig<'static>,
        faults: LinkFaults,
        seed: u64,
        now: NetInstant,
        vnow: StationInstant,
    ) -> Self {
        let mut dev = FaultInjector::new(Port::new(), faults, crate::net::mix_seed(seed, 1));
        let mut cfg = Config::new(HardwareAddress::Ip);
        cfg.random_seed = crate::net::mix_seed(seed, 2);
        let mut iface = Interface::new(cfg, &mut dev, now);
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(addr), PREFIX_LEN));
        });
        let station = Station::new(store, RustCryptoVerifier, config, vnow);
        let port_offset =
            u16::try_from(crate::net::mix_seed(seed, 3) % u64::from(LOCAL_PORTS)).unwrap_or(0);
        let mut gw = Self {
            index,
            eui,
            station,
            iface,
            dev,
            sockets: SocketSet::new(Vec::new()),
            conn: None,
            closing: Vec::new(),
            next_port: port_offset,
            last_set: CredSet::Reg,
            scheduled: None,
            active: false,
            outcome: GatewayOutcome {
                index,
                eui: eui.canonical().to_string(),
                ..GatewayOutcome::default()
            },
            metrics: GatewayMetrics::default(),
            tc: TcLink::default(),
        };
        gw.refresh_outcome();
        gw
    }

    /// Whether the network side has work (a connection, a closing socket, queued packets).
    pub(crate) fn is_active(&self) -> bool {
        self.conn.is_some()
            || self.tc.conn.is_some()
            || !self.closing.is_empty()
            || self.dev.is_busy()
            || self.dev.inner().is_busy()
    }

    /// Whether an interaction (CUPS, or a TC attempt) is in flight.
    pub(crate) fn interacting(&self) -> bool {
        self.station.is_interacting() || self.tc.conn.is_some()
    }

    /// The next station-time deadline (ms): the station's, or the next TC attempt.
    pub(crate) fn next_due(&self) -> Option<u64> {
        let station = self.station.poll_timeout().map(StationInstant::as_millis);
        let tc = if self.tc.conn.is_none() {
            self.tc.due
        } else {
            None
        };
        match (station, tc) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the network side or the station's timeout needs a step (network time).
    pub(crate) fn poll_at(&mut self, now: NetInstant, vnow: StationInstant) -> Option<NetInstant> {
        let mut at = self.iface.poll_at(now, &self.sockets);
        let mut consider = |t: Option<NetInstant>| {
            if let Some(t) = t {
                at = Some(at.map_or(t, |a| a.min(t)));
            }
        };
        consider(self.dev.poll_at());
        if self.dev.inner().pending_rx() > 0 {
            consider(Some(now));
        }
        consider(self.closing.iter().map(|c| c.deadline).min());
        if self.station.is_interacting()
            && let Some(deadline) = self.station.poll_timeout()
        {
            let wait = deadline.as_millis().saturating_sub(vnow.as_millis());
            consider(Some(now + NetDuration::from_millis(wait)));
        }
        if let Some(tc) = &self.tc.conn {
            let wait = tc.deadline.saturating_sub(vnow.as_millis());
            consider(Some(now + NetDuration::from_millis(wait)));
        }
        at
    }

    /// The station is due: ask it what to do; `true` if an interaction started.
    pub(crate) fn start(&mut self, env: &mut Env<'_>) -> bool {
        self.last_set = self.station.credset();
        let action = if self.tc.conn.is_some() {
            Action::Wait
        } else {
            self.station.poll(env.vnow)
        };
        let target = match action {
            Action::Wait => None,
            Action::Connect(c) => Some((
                c.set,
                c.host.to_owned(),
                c.port.to_owned(),
                c.tls,
                c.attempt,
            )),
        };
        let mut started = if let Some((set, host, port, tls, attempt)) = target {
            self.outcome.interactions += 1;
            if attempt > 1 {
                self.outcome.retries += 1;
            }
            match set {
                CredSet::Reg => {}
                CredSet::Bak => self.outcome.on_backup += 1,
                CredSet::Boot => self.outcome.on_boot += 1,
            }
            self.open(env, set, &host, &port, tls);
            true
        } else {
            false
        };
        self.after_station(env);
        if !self.station.is_interacting() {
            started |= self.tc_maybe_start(env);
        }
        started && self.interacting()
    }

    fn open(
        &mut self,
        env: &mut Env<'_>,
        set: CredSet,
        host: &str,
        port: &str,
        tls: Option<AuthMode>,
    ) {
        let session = match tls {
            None => Ok(Session::plain()),
            Some(mode) => {
                let files = SetFiles::of(self.station.store(), CredKind::Cups, set);
                env.tls
                    .client_config(&files, mode)
                    .and_then(|c| Session::tls(c, host))
            }
        };
        let session = match session {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(gateway = self.index, "TLS setup: {e}");
                self.station.on_error(env.vnow, TransportError::TlsFailed);
                return;
            }
        };
        let Ok(remote_port) = port.parse::<u16>() else {
            self.station
                .on_error(env.vnow, TransportError::ConnectFailed);
            return;
        };
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; GATEWAY_RX_BUFFER]),
            tcp::SocketBuffer::new(vec![0; GATEWAY_TX_BUFFER]),
        );
        socket.set_nagle_enabled(false);
        socket.set_ack_delay(None);
        let local = FIRST_LOCAL_PORT + self.next_port % LOCAL_PORTS;
        self.next_port = self.next_port.wrapping_add(1) % LOCAL_PORTS;
        let remote = (IpAddress::Ipv4(UPLINK_ADDR), remote_port);
        if socket.connect(self.iface.context(), remote, local).is_err() {
            self.station
                .on_error(env.vnow, TransportError::ConnectFailed);
            return;
        }
        let tls = matches!(session, Session::Tls(_));
        let handle = self.sockets.add(socket);
        self.conn = Some(Box::new(Conn {
            handle,
            local_port: local,
            marked: false,
            session,
            http: ResponseParser::new(),
            established: false,
            started: std::time::Instant::now(),
            tls,
        }));
    }

    /// Run the network side and the connection; apply what the station says.
    pub(crate) fn step(&mut self, env: &mut Env<'_>) -> Stepped {
        let mut out = Stepped::default();
        let was_interacting = self.interacting();
        // A stalled interaction times out on station time.
        if self.station.is_interacting()
            && self.station.poll_timeout().is_some_and(|d| d <= env.vnow)
        {
            let _ = self.station.poll(env.vnow);
            self.after_station(env);
        }
        self.dev.pump(env.now);
        self.iface.poll(env.now, &mut self.dev, &mut self.sockets);
        for c in &mut self.closing {
            c.polled = true;
        }
        out.progress |= self.drive(env);
        out.progress |= self.drive_tc(env);
        self.reap_closing(env.now);
        self.iface.poll(env.now, &mut self.dev, &mut self.sockets);
        self.dev.pump(env.now);
        out.ended = was_interacting && !self.interacting();
        out
    }

    /// Move the connection forward; `true` on progress.
    fn drive(&mut self, env: &mut Env<'_>) -> bool {
        let Some(conn) = self.conn.as_deref_mut() else {
            return false;
        };
        let socket = self.sockets.get_mut::<tcp::Socket<'_>>(conn.handle);
        let progress = drive_conn(
            conn,
            socket,
            &mut self.dev,
            &mut self.station,
            &mut self.metrics,
            env.vnow,
        );
        self.after_station(env);
        progress
    }

    /// Drain the station's events; end the connection when the interaction is over.
    pub(crate) fn after_station(&mut self, env: &mut Env<'_>) {
        while let Some(ev) = self.station.poll_event() {
            self.apply(env, ev);
        }
        if !self.station.is_interacting() && self.conn.is_some() {
            self.end_conn(env.now);
        }
        self.tc_arm(env);
    }

    fn apply(&mut self, env: &mut Env<'_>, ev: StationEvent) {
        let o = &mut self.outcome;
        match ev {
            StationEvent::RunUpdate { .. } => self.run_update(env.updates),
            StationEvent::UpdateRejected { .. } => o.updates_rejected += 1,
            StationEvent::CredsStored { .. } => o.creds_stored += 1,
            StationEvent::CredsRejected { .. } => o.creds_rejected += 1,
            StationEvent::TcRestart { .. } => {
                o.tc_restarts += 1;
                o.tc_connected = false;
                // The station restarts its TC engine at once with the new URI/credentials.
                self.tc.stopped = false;
                self.tc.retries = 0;
                if env.tc_connect {
                    self.tc.due = Some(env.vnow.as_millis());
                }
            }
            StationEvent::BackupCreated { .. } => o.backups += 1,
            StationEvent::InteractionDone { cups_changed, .. } => {
                o.done += 1;
                o.status = GatewayStatus::Done;
                let set = set_name(self.last_set);
                o.record(if cups_changed {
                    format!("{set} ok+cups")
                } else {
                    format!("{set} ok")
                });
                let k = o.done as usize - 1;
                if env.sink.done_at_least.len() <= k {
                    env.sink.done_at_least.resize(k + 1, 0);
                }
                env.sink.done_at_least[k] += 1;
                self.interaction_over(env);
                self.tc_after_cups(env);
            }
            StationEvent::InteractionFailed {
                reason, rotated_to, ..
            } => {
                // Failures decided before any connection (no or bad URI, no trust) are attempts
                // too: count them like connected ones, so ok + failed = interactions and the
                // backup/bootstrap counters see every set the station tried.
                if matches!(
                    reason,
                    FailReason::NoUri | FailReason::BadUri | FailReason::TlsSetup
                ) {
                    o.interactions += 1;
                    match self.last_set {
                        CredSet::Reg => {}
                        CredSet::Bak => o.on_backup += 1,
                        CredSet::Boot => o.on_boot += 1,
                    }
                }
                o.failed += 1;
                o.status = GatewayStatus::Failed;
                let why = fail_name(reason);
                *env.sink.failures.entry(why.clone()).or_default() += 1;
                let set = set_name(self.last_set);
                o.record(match rotated_to {
                    Some(to) => format!("{set} fail {why} -> {}", set_name(to)),
                    None => format!("{set} fail {why}"),
                });
                self.interaction_over(env);
                self.tc_after_cups(env);
            }
            _ => {}
        }
    }

    fn interaction_over(&mut self, env: &mut Env<'_>) {
        env.sink.changes += 1;
        if let Some(conn) = &self.conn {
            let us = u64::try_from(conn.started.elapsed().as_micros()).unwrap_or(u64::MAX);
            env.sink
                .latencies_us
                .push(u32::try_from(us).unwrap_or(u32::MAX));
            self.metrics.latency_total_us += us;
            self.metrics.latency_max_us = self.metrics.latency_max_us.max(us);
            if conn.session.tls_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
                self.metrics.tls13 += 1;
            }
        }
        self.refresh_outcome();
    }

    /// What running the update does (see [`UpdateModel`]).
    fn run_update(&mut self, model: &UpdateModel) {
        self.outcome.updates_run += 1;
        let store = self.station.store_mut();
        let payload = store.take(FileId::Update).unwrap_or_default();
        match model.apply(&payload) {
            UpdateOutcome::Applied { version } => {
                store.insert(FileId::Version, version.into_bytes());
                self.outcome.updates_applied += 1;
            }
            UpdateOutcome::Unrecognised => self.outcome.updates_unrecognised += 1,
        }
    }

    /// The station-side part of the outcome (files, set).
    pub(crate) fn refresh_outcome(&mut self) {
        let text = |f| {
            self.station
                .store()
                .get(f)
                .map(|b| String::from_utf8_lossy(b).trim_end().to_owned())
        };
        let package = text(FileId::Version);
        let tc_uri = text(FileId::cred(
            CredKind::Tc,
            CredSet::Reg.into(),
            CredFile::Uri,
        ));
        self.outcome.package = package;
        self.outcome.tc_uri = tc_uri;
        self.outcome.credset = set_name(self.station.credset()).to_owned();
        self.outcome.cups_cred_crc = self.station.cred_crc(CredKind::Cups);
        self.outcome.tc_cred_crc = self.station.cred_crc(CredKind::Tc);
    }

    /// Close the interaction's connection: cleanly when the socket is healthy, else reset.
    fn end_conn(&mut self, now: NetInstant) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let socket = self.sockets.get_mut::<tcp::Socket<'_>>(conn.handle);
        let healthy = matches!(
            socket.state(),
            tcp::State::Established | tcp::State::CloseWait
        );
        if healthy {
            self.metrics.bytes_tx += close_notify(&mut conn.session, socket);
        } else {
            socket.abort();
        }
        let grace = if healthy { CLOSE_GRACE } else { Duration::ZERO };
        self.closing.push(Closing {
            handle: conn.handle,
            deadline: now + net_duration(grace),
            polled: false,
        });
    }

    /// Forget sockets that finished closing; reset those past their grace time.
    fn reap_closing(&mut self, now: NetInstant) {
        let sockets = &mut self.sockets;
        self.closing.retain_mut(|c| {
            let socket = sockets.get_mut::<tcp::Socket<'_>>(c.handle);
            let done = matches!(socket.state(), tcp::State::Closed | tcp::State::TimeWait);
            if done && c.polled {
                sockets.remove(c.handle);
                return false;
            }
            if now >= c.deadline && !done {
                socket.abort();
                c.polled = false;
            }
            true
        });
    }

    /// Change the link's faults.
    pub(crate) fn set_faults(&mut self, faults: LinkFaults) {
        self.dev.set_faults(faults);
    }

    /// Snapshot the link statistics into the metrics.
    pub(crate) fn metrics(&self) -> GatewayMetrics {
        let mut m = self.metrics.clone();
        m.link = self.dev.stats();
        m
    }
}

/// The TC (LNS) side of a gateway (see [`crate::tc`]).
impl Gateway {
    /// Arm the next TC attempt when one is wanted: TC enabled, `tc.uri` present, not
    /// connected, nothing in flight, not given up.
    fn tc_arm(&mut self, env: &Env<'_>) {
        if !env.tc_connect
            || self.tc.conn.is_some()
            || self.tc.stopped
            || self.tc.due.is_some()
            || self.station.tc_connected()
        {
            return;
        }
        if self.station.store().get(tc_uri_file()).is_some() {
            self.tc.due = Some(env.vnow.as_millis());
        }
    }

    /// After a CUPS interaction: a TC engine that gave up starts again (`sys_startTC`).
    fn tc_after_cups(&mut self, env: &Env<'_>) {
        if self.tc.stopped {
            self.tc.stopped = false;
            self.tc.retries = 0;
            self.tc.due = None;
            self.tc_arm(env);
        }
    }

    /// The LNS went away: the held session (a flag) drops; reconnect at once.
    pub(crate) fn drop_tc_session(&mut self, vnow: StationInstant) {
        if self.station.tc_connected() {
            self.station.set_tc_connected(vnow, false);
            self.outcome.tc_connected = false;
            self.tc.retries = 0;
            self.tc.stopped = false;
            self.tc.due = Some(vnow.as_millis());
        }
    }

    /// Start a due TC attempt; `true` if a connection opened.
    fn tc_maybe_start(&mut self, env: &mut Env<'_>) -> bool {
        if !env.tc_connect {
            // Never leave a due attempt behind that nobody will start (it would stay due).
            self.tc.due = None;
            return false;
        }
        self.tc_arm(env);
        if self.tc.conn.is_some() || self.station.is_interacting() {
            return false;
        }
        match self.tc.due {
            Some(due) if due <= env.vnow.as_millis() => {}
            _ => return false,
        }
        self.tc.due = None;
        let uri = self
            .station
            .store()
            .get(tc_uri_file())
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        match parse_ws_uri(&uri, false) {
            Ok(u) => self.tc_open(env, Stage::RouterInfo, &u, None),
            Err(e) => {
                tracing::debug!(gateway = self.index, "TC URI: {e}");
                self.tc_failed(env, TcFailure::Setup, None);
                false
            }
        }
    }

    /// Open a TC connection; `prev` = the router-info connection's start and token (muxs).
    fn tc_open(
        &mut self,
        env: &mut Env<'_>,
        stage: Stage,
        uri: &WsUri,
        prev: Option<(std::time::Instant, Vec<u8>)>,
    ) -> bool {
        let mode = self.station.auth_mode(CredKind::Tc, CredSet::Reg);
        let files = SetFiles::of(self.station.store(), CredKind::Tc, CredSet::Reg);
        let setup = if uri.tls {
            env.tls
                .client_config(&files, mode)
                .and_then(|c| Session::tls(c, &uri.host))
                .map_err(|e| e.to_string())
        } else {
            Ok(Session::plain())
        };
        let token = match &prev {
            Some((_, t)) => Ok(t.clone()),
            None if uri.tls && mode == AuthMode::Token => {
                token_header_lines(files.key).map_err(|e| e.to_string())
            }
            None => Ok(Vec::new()),
        };
        let (session, token) = match (setup, token) {
            (Ok(s), Ok(t)) => (s, t),
            (Err(e), _) | (_, Err(e)) => {
                tracing::debug!(gateway = self.index, "TC setup: {e}");
                self.tc_failed(env, TcFailure::Setup, None);
                return false;
            }
        };
        self.tc.attempts = self.tc.attempts.wrapping_add(1);
        let seed = crate::net::mix_seed(
            (u64::from(self.index) << 32) | u64::from(self.tc.attempts),
            7,
        );
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&seed.to_le_bytes());
        nonce[8..].copy_from_slice(&crate::net::mix_seed(seed, 8).to_le_bytes());
        let exchange = match stage {
            Stage::RouterInfo => TcExchange::router_info(self.eui, uri, &token, nonce),
            Stage::Muxs => {
                let package = self
                    .station
                    .store()
                    .get(FileId::Version)
                    .map(|b| String::from_utf8_lossy(b).trim().to_owned())
                    .unwrap_or_default();
                let v = version_message(env.version, env.model, &package);
                TcExchange::muxs(self.eui, uri, &token, nonce, v)
            }
        };
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; GATEWAY_RX_BUFFER]),
            tcp::SocketBuffer::new(vec![0; GATEWAY_TX_BUFFER]),
        );
        socket.set_nagle_enabled(false);
        socket.set_ack_delay(None);
        let local = FIRST_LOCAL_PORT + self.next_port % LOCAL_PORTS;
        self.next_port = self.next_port.wrapping_add(1) % LOCAL_PORTS;
        if socket
            .connect(
                self.iface.context(),
                (IpAddress::Ipv4(UPLINK_ADDR), uri.port),
                local,
            )
            .is_err()
        {
            self.tc_failed(env, TcFailure::Connect, None);
            return false;
        }
        let handle = self.sockets.add(socket);
        let started = prev.map_or_else(std::time::Instant::now, |(s, _)| s);
        self.tc.conn = Some(Box::new(TcConn {
            handle,
            session,
            exchange,
            established: false,
            deadline: env.vnow.as_millis().saturating_add(millis(TC_TIMEOUT)),
            started,
            token,
        }));
        true
    }

    /// Move the TC connection forward; `true` on progress.
    fn drive_tc(&mut self, env: &mut Env<'_>) -> bool {
        let Some(tc) = self.tc.conn.as_deref_mut() else {
            return false;
        };
        let socket = self.sockets.get_mut::<tcp::Socket<'_>>(tc.handle);
        let turn = if env.vnow.as_millis() >= tc.deadline {
            TcTurn::Failed(TcFailure::Timeout)
        } else {
            drive_tc_conn(tc, socket, &mut self.metrics)
        };
        match turn {
            TcTurn::Idle => false,
            TcTurn::Progress => true,
            TcTurn::Connected => {
                self.tc_connected(env);
                true
            }
            TcTurn::Muxs(uri) => {
                let prev = self.tc_end_conn(env.now).map(|c| (c.started, c.token));
                self.tc_open(env, Stage::Muxs, &uri, prev);
                true
            }
            TcTurn::Failed(f) => {
                let started = self.tc_end_conn(env.now).map(|c| c.started);
                self.tc_failed(env, f, started);
                true
            }
        }
    }

    /// Close the TC connection (cleanly when healthy: WebSocket close, TLS close_notify,
    /// FIN); returns it.
    fn tc_end_conn(&mut self, now: NetInstant) -> Option<Box<TcConn>> {
        let mut tc = self.tc.conn.take()?;
        let socket = self.sockets.get_mut::<tcp::Socket<'_>>(tc.handle);
        let healthy = tc.established
            && matches!(
                socket.state(),
                tcp::State::Established | tcp::State::CloseWait
            );
        if healthy {
            if !tc.session.is_handshaking() {
                tc.exchange.close();
                let out = tc.exchange.take_output();
                tc.session.write_plaintext(&out);
            }
            self.metrics.tc_bytes_tx += close_notify(&mut tc.session, socket);
        } else {
            socket.abort();
        }
        let grace = if healthy { CLOSE_GRACE } else { Duration::ZERO };
        self.closing.push(Closing {
            handle: tc.handle,
            deadline: now + net_duration(grace),
            polled: false,
        });
        Some(tc)
    }

    /// The muxs connection is up: the held session becomes the station's flag.
    fn tc_connected(&mut self, env: &mut Env<'_>) {
        let started = self.tc_end_conn(env.now).map(|c| c.started);
        if let Some(s) = started {
            let us = u32::try_from(s.elapsed().as_micros()).unwrap_or(u32::MAX);
            env.sink.tc_latencies_us.push(us);
            self.metrics.tc_latency_total_us += u64::from(us);
        }
        self.tc.retries = 0;
        self.tc.due = None;
        self.station.set_tc_connected(env.vnow, true);
        self.outcome.tc_sessions += 1;
        self.outcome.tc_connected = true;
        self.outcome.record("TC ok".into());
        env.sink.changes += 1;
        self.after_station(env);
        self.refresh_outcome();
    }

    /// A TC attempt failed: back off, or give up and trigger CUPS (`tc_continue`).
    fn tc_failed(&mut self, env: &mut Env<'_>, f: TcFailure, started: Option<std::time::Instant>) {
        if let Some(s) = started {
            let us = u64::try_from(s.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.metrics.tc_latency_total_us += us;
        }
        tracing::debug!(gateway = self.index, failure = ?f, retries = self.tc.retries, "TC attempt failed");
        self.outcome.tc_failures += 1;
        self.outcome.tc_connected = false;
        if self.station.tc_connected() {
            self.station.set_tc_connected(env.vnow, false);
        }
        let give_up = f.gives_up() || self.tc.retries >= TC_MAX_RETRIES;
        if give_up {
            self.tc.stopped = true;
            self.tc.retries = 0;
            self.tc.due = None;
            self.station.trigger(env.vnow, None);
            self.outcome.record(format!("TC fail {} -> CUPS", f.name()));
        } else {
            self.tc.due = Some(
                env.vnow
                    .as_millis()
                    .saturating_add(millis(backoff(self.tc.retries))),
            );
            self.tc.retries += 1;
            self.outcome.record(format!("TC fail {}", f.name()));
        }
        env.sink.changes += 1;
        self.after_station(env);
    }
}

/// `tc.uri` of the regular set.
fn tc_uri_file() -> FileId {
    FileId::cred(CredKind::Tc, CredSet::Reg.into(), CredFile::Uri)
}

/// One pass over a TC connection: establish → upgrade request, transport → TLS → WebSocket,
/// WebSocket → TLS → transport.
fn drive_tc_conn(
    tc: &mut TcConn,
    socket: &mut tcp::Socket<'_>,
    metrics: &mut GatewayMetrics,
) -> TcTurn {
    let mut progress = false;
    if !tc.established {
        match socket.state() {
            tcp::State::Established | tcp::State::CloseWait => {
                tc.established = true;
                progress = true;
                let out = tc.exchange.take_output();
                tc.session.write_plaintext(&out);
            }
            tcp::State::Closed => return TcTurn::Failed(TcFailure::Connect),
            _ => return TcTurn::Idle,
        }
    }
    let mut result: Option<TcTurn> = None;
    loop {
        let mut moved = false;
        if socket.can_recv() {
            let session = &mut tc.session;
            let r = socket.recv(|buf| match session.read_transport(buf) {
                Ok(n) => (n, Ok(n)),
                Err(e) => (0, Err(e)),
            });
            match r {
                Ok(Ok(n)) if n > 0 => {
                    metrics.tc_bytes_rx += n as u64;
                    moved = true;
                }
                Ok(Ok(_)) | Err(_) => {}
                Ok(Err(e)) => {
                    tracing::debug!("TC: {e}");
                    let f = if tc.session.is_handshaking() {
                        TcFailure::Tls
                    } else {
                        TcFailure::Closed
                    };
                    return TcTurn::Failed(f);
                }
            }
        }
        let mut buf = [0u8; PLAINTEXT_CHUNK];
        loop {
            match tc.session.read_plaintext(&mut buf) {
                PlainRead::Data(n) => {
                    moved = true;
                    match tc.exchange.push(buf.get(..n).unwrap_or_default()) {
                        TcProgress::Pending => {}
                        TcProgress::VersionSent => {}
                        TcProgress::Acknowledged | TcProgress::RouterConfig => {
                            result = Some(TcTurn::Connected);
                        }
                        TcProgress::Muxs(u) => result = Some(TcTurn::Muxs(u)),
                        TcProgress::Failed(f) => return TcTurn::Failed(f),
                    }
                    let out = tc.exchange.take_output();
                    if !out.is_empty() {
                        tc.session.write_plaintext(&out);
                    }
                    if result.is_some() {
                        break;
                    }
                }
                PlainRead::WouldBlock => break,
                PlainRead::Eof { .. } => {
                    return TcTurn::Failed(if tc.session.is_handshaking() {
                        TcFailure::Tls
                    } else {
                        TcFailure::Closed
                    });
                }
            }
        }
        if let Some(r) = result {
            return r;
        }
        if !moved {
            break;
        }
        progress = true;
    }
    // The peer closed (FIN after all data, or RST).
    let fin = !socket.may_recv() && socket.recv_queue() == 0;
    if socket.state() == tcp::State::Closed || fin {
        let _ = tc.session.transport_eof();
        return TcTurn::Failed(if tc.session.is_handshaking() {
            TcFailure::Tls
        } else {
            TcFailure::Closed
        });
    }
    let sent = push_transport(&mut tc.session, socket);
    metrics.tc_bytes_tx += sent;
    progress |= sent > 0;
    if progress {
        TcTurn::Progress
    } else {
        TcTurn::Idle
    }
}

/// One pass over a connection: establish → request, transport → TLS → HTTP → station,
/// close/errors → station, TLS → transport. `true` on progress.
fn drive_conn(
    conn: &mut Conn,
    socket: &mut tcp::Socket<'_>,
    dev: &mut FaultInjector<Port>,
    station: &mut SimStation,
    metrics: &mut GatewayMetrics,
    vnow: StationInstant,
) -> bool {
    let mut progress = false;
    if !conn.established {
        match socket.state() {
            tcp::State::Established | tcp::State::CloseWait => {
                conn.established = true;
                progress = true;
                match request(station) {
                    Ok(req) => conn.session.write_plaintext(&req),
                    Err(_) => {
                        // The station fails the interaction with FailReason::Request.
                        station.on_error(vnow, TransportError::Closed);
                        return true;
                    }
                }
            }
            tcp::State::Closed => {
                station.on_error(vnow, TransportError::ConnectFailed);
                return true;
            }
            _ => return false,
        }
    }
    let mut failure: Option<TransportError> = None;
    // Transport → TLS → HTTP → station, until nothing moves.
    loop {
        let mut moved = false;
        if socket.can_recv() {
            let session = &mut conn.session;
            let r = socket.recv(|buf| match session.read_transport(buf) {
                Ok(n) => (n, Ok(n)),
                Err(e) => (0, Err(e)),
            });
            match r {
                Ok(Ok(n)) if n > 0 => {
                    metrics.bytes_rx += n as u64;
                    moved = true;
                }
                Ok(Ok(_)) | Err(_) => {}
                Ok(Err(e)) => {
                    tracing::debug!("{e}");
                    failure = Some(TransportError::Closed);
                    break;
                }
            }
        }
        if !conn.marked && !conn.session.is_handshaking() {
            // Everything the server sent so far was handshake: the response starts now.
            conn.marked = true;
            dev.mark_response_start(conn.local_port);
        }
        match feed_plaintext(conn, station, vnow) {
            Feed::Moved => moved = true,
            Feed::Idle => {}
            Feed::Eof | Feed::Broken => {
                failure = Some(TransportError::Closed);
                break;
            }
        }
        if !station.is_interacting() || !moved {
            break;
        }
        progress = true;
    }
    // The peer closed (FIN after all data, or RST).
    if failure.is_none() && station.is_interacting() {
        let fin = !socket.may_recv() && socket.recv_queue() == 0;
        if socket.state() == tcp::State::Closed {
            failure = Some(TransportError::Closed);
        } else if fin {
            failure = match conn.session.transport_eof() {
                // Anything final; the response must have ended by now.
                Ok(()) => match feed_plaintext(conn, station, vnow) {
                    Feed::Moved | Feed::Idle if !station.is_interacting() => None,
                    _ => Some(TransportError::Closed),
                },
                Err(_) => Some(TransportError::Closed),
            };
        }
    }
    if let Some(e) = failure
        && station.is_interacting()
    {
        // A connection that breaks during the handshake is a TLS failure to the station.
        let e = if conn.tls && conn.session.is_handshaking() {
            TransportError::TlsFailed
        } else {
            e
        };
        station.on_error(vnow, e);
        progress = true;
    }
    // TLS → transport.
    let sent = push_transport(&mut conn.session, socket);
    metrics.bytes_tx += sent;
    progress |= sent > 0;
    progress
}

/// The request, in a buffer grown as the station asks.
fn request(station: &mut SimStation) -> Result<Vec<u8>, WriteRequestError> {
    let mut buf = vec![0u8; REQUEST_BUF];
    loop {
        match station.write_request(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(WriteRequestError::BufferTooSmall { needed }) if needed > buf.len() => {
                buf.resize(needed, 0);
            }
            Err(e) => return Err(e),
        }
    }
}

/// What feeding plaintext did.
enum Feed {
    Moved,
    Idle,
    /// The stream ended before the response did.
    Eof,
    /// The response could not be read (the station closes).
    Broken,
}

/// Plaintext → HTTP parser → station, while the station is interacting.
fn feed_plaintext(conn: &mut Conn, station: &mut SimStation, vnow: StationInstant) -> Feed {
    let mut buf = [0u8; PLAINTEXT_CHUNK];
    let mut moved = false;
    while station.is_interacting() {
        match conn.session.read_plaintext(&mut buf) {
            PlainRead::Data(n) => {
                moved = true;
                let data = buf.get(..n).unwrap_or_default();
                let r = conn.http.push(data, &mut |ev| match ev {
                    HttpEvent::Head { status, .. } => station.on_response_status(vnow, status),
                    HttpEvent::Body(b) => {
                        if station.is_interacting() {
                            station.on_response_body(vnow, b);
                        }
                    }
                    HttpEvent::End => {
                        if station.is_interacting() {
                            station.on_response_end(vnow);
                        }
                    }
                });
                if r.is_err() {
                    return Feed::Broken;
                }
            }
            PlainRead::WouldBlock => break,
            PlainRead::Eof { .. } => return Feed::Eof,
        }
    }
    if moved { Feed::Moved } else { Feed::Idle }
}

/// End a healthy connection politely: TLS close_notify, as much of it as the socket takes
/// now, then the TCP close. Returns the bytes handed to the socket.
fn close_notify(session: &mut Session, socket: &mut tcp::Socket<'_>) -> u64 {
    session.close();
    let sent = push_transport(session, socket);
    socket.close();
    sent
}

/// TLS → transport: hand the socket what the session has to send, as much as it takes now.
/// Returns the bytes handed over.
fn push_transport(session: &mut Session, socket: &mut tcp::Socket<'_>) -> u64 {
    let mut sent = 0u64;
    while session.wants_write() && socket.can_send() {
        let n = socket
            .send(|buf| {
                let n = session.write_transport(buf);
                (n, n)
            })
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        sent += n as u64;
    }
    sent
}

fn net_duration(d: Duration) -> NetDuration {
    NetDuration::from_millis(millis(d))
}

/// `REG`, `BAK`, `BOOT`.
fn set_name(set: CredSet) -> &'static str {
    match set {
        CredSet::Reg => "REG",
        CredSet::Bak => "BAK",
        CredSet::Boot => "BOOT",
    }
}

/// A short stable name for a failure.
fn fail_name(reason: FailReason) -> String {
    match reason {
        FailReason::NoUri => "no-uri".into(),
        FailReason::BadUri => "bad-uri".into(),
        FailReason::TlsSetup => "tls-setup".into(),
        FailReason::Transport(TransportError::ConnectFailed) => "connect".into(),
        FailReason::Transport(TransportError::TlsFailed) => "tls".into(),
        FailReason::Transport(TransportError::TimedOut) => "timeout".into(),
        FailReason::Transport(TransportError::Closed) => "closed".into(),
        FailReason::Rejected { status } => format!("status-{status}"),
        FailReason::Protocol => "protocol".into(),
        FailReason::Request => "request".into(),
        other => format!("{other:?}"),
    }
}
