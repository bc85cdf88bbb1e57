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
}

/// What a gateway step needs from the fleet.
pub(crate) struct Env<'a> {
    pub(crate) now: NetInstant,
    pub(crate) vnow: StationInstant,
    pub(crate) tls: &'a TlsFactory,
    pub(crate) updates: &'a UpdateModel,
    pub(crate) sink: &'a mut Sink,
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
        };
        gw.refresh_outcome();
        gw
    }

    /// Whether the network side has work (a connection, a closing socket, queued packets).
    pub(crate) fn is_active(&self) -> bool {
        self.conn.is_some()
            || !self.closing.is_empty()
            || self.dev.is_busy()
            || self.dev.inner().is_busy()
    }

    /// Whether an interaction is in flight.
    pub(crate) fn interacting(&self) -> bool {
        self.station.is_interacting()
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
        if self.interacting()
            && let Some(deadline) = self.station.poll_timeout()
        {
            let wait = deadline.as_millis().saturating_sub(vnow.as_millis());
            consider(Some(now + NetDuration::from_millis(wait)));
        }
        at
    }

    /// The station is due: ask it what to do; `true` if an interaction started.
    pub(crate) fn start(&mut self, env: &mut Env<'_>) -> bool {
        self.last_set = self.station.credset();
        let target = match self.station.poll(env.vnow) {
            Action::Wait => None,
            Action::Connect(c) => Some((
                c.set,
                c.host.to_owned(),
                c.port.to_owned(),
                c.tls,
                c.attempt,
            )),
        };
        let started = if let Some((set, host, port, tls, attempt)) = target {
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
        if was_interacting && self.station.poll_timeout().is_some_and(|d| d <= env.vnow) {
            let _ = self.station.poll(env.vnow);
            self.after_station(env);
        }
        self.dev.pump(env.now);
        self.iface.poll(env.now, &mut self.dev, &mut self.sockets);
        for c in &mut self.closing {
            c.polled = true;
        }
        out.progress |= self.drive(env);
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
    }

    fn apply(&mut self, env: &mut Env<'_>, ev: StationEvent) {
        let o = &mut self.outcome;
        match ev {
            StationEvent::RunUpdate { .. } => self.run_update(env.updates),
            StationEvent::UpdateRejected { .. } => o.updates_rejected += 1,
            StationEvent::CredsStored { .. } => o.creds_stored += 1,
            StationEvent::CredsRejected { .. } => o.creds_rejected += 1,
            StationEvent::TcRestart { .. } => o.tc_restarts += 1,
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
            conn.session.close();
            while conn.session.wants_write() && socket.can_send() {
                let session = &mut conn.session;
                let n = socket
                    .send(|buf| {
                        let n = session.write_transport(buf);
                        (n, n)
                    })
                    .unwrap_or(0);
                if n == 0 {
                    break;
                }
                self.metrics.bytes_tx += n as u64;
            }
            socket.close();
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
    while conn.session.wants_write() && socket.can_send() {
        let session = &mut conn.session;
        let n = socket
            .send(|buf| {
                let n = session.write_transport(buf);
                (n, n)
            })
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        metrics.bytes_tx += n as u64;
        progress = true;
    }
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
