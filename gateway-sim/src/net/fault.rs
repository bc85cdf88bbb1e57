//! [`FaultInjector`]: middleware around any smoltcp [`Device`] (like smoltcp's own
//! `FaultInjector`) that makes one link bad, deterministically.
//!
//! Packet faults, applied in both directions:
//!
//! * **loss**: each packet is dropped with probability [`LinkFaults::loss`];
//! * **latency + jitter**: each packet is held [`LinkFaults::latency`] plus a uniform
//!   `0..=jitter` (jitter reorders packets, as on a real radio backhaul);
//! * **bandwidth**: each direction serialises packets at [`LinkFaults::bandwidth`] bytes/s.
//!
//! Stream faults, per TCP connection the gateway opens ([`CutFault`]): the server's bytes are
//! counted from the start of the response ([`CutAnchor`]): where the endpoint marks it with
//! [`FaultInjector::mark_response_start`] (the gateway driver does when its TLS handshake is
//! done, so the cut falls in the HTTP response), or from the start of the stream. Once the
//! response passes the chosen offset the connection is
//!
//! * **reset** ([`CutKind::Reset`]): the gateway gets an RST (and so does the server), or
//! * **truncated** ([`CutKind::Truncate`]): the gateway gets the response up to the offset and
//!   a FIN, as if the server had closed early; the server side is reset once the gateway has
//!   seen the FIN.
//!
//! After a cut, any further packet of that connection is answered with an RST to its sender
//! (sequence number = its acknowledgement number, so it is always accepted) and dropped.
//!
//! Determinism: packet faults draw from one ChaCha stream per link in packet order; whether a
//! connection is cut and where is drawn from a ChaCha stream seeded by (link seed, connection
//! ordinal), so it does not depend on timing or on how many packets were lost before.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities};
use smoltcp::time::{Duration as NetDuration, Instant};
use smoltcp::wire::{
    IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
};

use super::Packet;

/// Connections tracked per link for stream faults (a gateway has one interaction at a time;
/// a closing one may linger).
pub const MAX_TRACKED_CONNECTIONS: usize = 4;
/// IP TTL of injected packets.
const INJECTED_TTL: u8 = 64;
/// Microseconds per second, for the bandwidth computation.
const MICROS_PER_SEC: u64 = 1_000_000;

/// Which way a stream fault cuts.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
pub enum CutKind {
    /// RST to both ends.
    Reset,
    /// FIN to the gateway after the cut point (a short response), RST to the server.
    Truncate,
}

/// Where a [`CutFault`] starts counting response bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize)]
pub enum CutAnchor {
    /// From [`FaultInjector::mark_response_start`] (the end of the gateway's TLS handshake);
    /// a connection never marked is never cut.
    #[default]
    Mark,
    /// From the first byte of the server's stream (the TLS handshake included).
    StreamStart,
}

/// A stream fault: which connections are cut, and where.
#[derive(Clone, PartialEq, Debug)]
pub struct CutFault {
    /// Reset or truncate.
    pub kind: CutKind,
    /// Probability that a connection is cut, `0.0..=1.0`.
    pub probability: f64,
    /// Where: after this many response bytes (TCP payload from the server after the response
    /// start, see [`FaultInjector::mark_response_start`]), drawn uniformly from the range.
    pub after: RangeInclusive<u32>,
    /// At most this many connections of the link are chosen to be cut (`None`: no limit).
    pub max_cuts: Option<u32>,
    /// Where counting starts.
    pub anchor: CutAnchor,
}

impl CutFault {
    /// Cut the first connection of the link only, `after` response bytes in (counted from
    /// the [`CutAnchor::Mark`]).
    #[must_use]
    pub fn first_connection(kind: CutKind, after: u32) -> Self {
        Self {
            kind,
            probability: 1.0,
            after: after..=after,
            max_cuts: Some(1),
            anchor: CutAnchor::Mark,
        }
    }

    /// With another anchor.
    #[must_use]
    pub fn anchored(mut self, anchor: CutAnchor) -> Self {
        self.anchor = anchor;
        self
    }
}

/// The faults of one link. [`LinkFaults::default`] is a perfect link.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct LinkFaults {
    /// Probability that a packet is lost, per packet and direction, `0.0..=1.0`.
    pub loss: f64,
    /// One-way delay.
    pub latency: Duration,
    /// Extra one-way delay, uniform in `0..=jitter`.
    pub jitter: Duration,
    /// Bytes per second per direction (`None`: unlimited).
    pub bandwidth: Option<u32>,
    /// Stream fault.
    pub cut: Option<CutFault>,
}

impl LinkFaults {
    /// A perfect link.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// With packet loss `p`.
    #[must_use]
    pub fn with_loss(mut self, p: f64) -> Self {
        self.loss = p;
        self
    }

    /// With one-way `latency` and `jitter`.
    #[must_use]
    pub fn with_latency(mut self, latency: Duration, jitter: Duration) -> Self {
        self.latency = latency;
        self.jitter = jitter;
        self
    }

    /// With a bandwidth cap in bytes/s per direction.
    #[must_use]
    pub fn with_bandwidth(mut self, bytes_per_sec: u32) -> Self {
        self.bandwidth = Some(bytes_per_sec);
        self
    }

    /// With a stream fault.
    #[must_use]
    pub fn with_cut(mut self, cut: CutFault) -> Self {
        self.cut = Some(cut);
        self
    }
}

/// What a link's faults did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize)]
pub struct FaultStats {
    /// Packets from the gateway.
    pub tx_packets: u64,
    /// Packets to the gateway.
    pub rx_packets: u64,
    /// Packets lost (both directions).
    pub lost: u64,
    /// TCP connections the gateway opened.
    pub connections: u32,
    /// Connections cut.
    pub cuts: u32,
    /// Packets dropped or answered with an RST after a cut.
    pub cut_packets: u64,
}

/// Direction relative to the gateway.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    /// From the gateway to the network.
    Tx,
    /// From the network to the gateway.
    Rx,
}

/// A packet waiting for its release time.
#[derive(Debug, Default)]
struct DelayQueue {
    q: VecDeque<(Instant, Packet)>,
}

impl DelayQueue {
    fn insert(&mut self, at: Instant, p: Packet) {
        let pos = self
            .q
            .iter()
            .rposition(|(t, _)| *t <= at)
            .map_or(0, |i| i + 1);
        self.q.insert(pos, (at, p));
    }

    fn pop_ready(&mut self, now: Instant) -> Option<Packet> {
        if self.q.front().is_some_and(|(t, _)| *t <= now) {
            self.q.pop_front().map(|(_, p)| p)
        } else {
            None
        }
    }

    fn next(&self) -> Option<Instant> {
        self.q.front().map(|(t, _)| *t)
    }
}

/// Where a tracked connection is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TrackState {
    Watching,
    Truncating { fin_seq: TcpSeqNumber },
    Dead,
}

/// A connection the gateway opened, for stream faults.
#[derive(Clone, Copy, Debug)]
struct Track {
    gw_port: u16,
    cut_at: Option<u32>,
    /// Server sequence number where the response starts.
    resp_start: Option<TcpSeqNumber>,
    /// End of the highest data (or SYN) seen from the server.
    server_end: Option<TcpSeqNumber>,
    /// The server's latest acknowledgement number (its next expected byte).
    server_ack: Option<TcpSeqNumber>,
    state: TrackState,
}

/// The TCP fields a stream fault looks at.
#[derive(Clone, Copy, Debug)]
struct TcpView {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    seq: TcpSeqNumber,
    ack: Option<TcpSeqNumber>,
    syn: bool,
    fin: bool,
    rst: bool,
    payload_len: usize,
}

fn tcp_view(p: &[u8]) -> Option<TcpView> {
    let ip = Ipv4Packet::new_checked(p).ok()?;
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    Some(TcpView {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        src_port: tcp.src_port(),
        dst_port: tcp.dst_port(),
        seq: tcp.seq_number(),
        ack: tcp.ack().then(|| tcp.ack_number()),
        syn: tcp.syn(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        payload_len: tcp.payload().len(),
    })
}

/// `a - b` in sequence space.
fn seq_diff(a: TcpSeqNumber, b: TcpSeqNumber) -> i64 {
    i64::from(a.0.wrapping_sub(b.0))
}

fn seq_add(a: TcpSeqNumber, n: u32) -> TcpSeqNumber {
    TcpSeqNumber(a.0.wrapping_add(n as i32))
}

/// Emit an IPv4 TCP packet.
fn emit(src: Ipv4Addr, dst: Ipv4Addr, repr: &TcpRepr<'_>) -> Packet {
    let caps = ChecksumCapabilities::ignored();
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Tcp,
        payload_len: repr.buffer_len(),
        hop_limit: INJECTED_TTL,
    };
    let mut buf = vec![0; ip.buffer_len() + repr.buffer_len()];
    let mut packet = Ipv4Packet::new_unchecked(&mut buf[..]);
    ip.emit(&mut packet, &caps);
    let mut tcp = TcpPacket::new_unchecked(packet.payload_mut());
    repr.emit(
        &mut tcp,
        &IpAddress::Ipv4(src),
        &IpAddress::Ipv4(dst),
        &caps,
    );
    buf
}

/// An RST from `v`'s receiver to its sender that the sender accepts (`seq` = `v`'s ack).
fn rst_reply(v: &TcpView) -> Option<Packet> {
    let seq = v.ack?;
    Some(rst(v.dst, v.src, v.dst_port, v.src_port, seq))
}

fn rst(src: Ipv4Addr, dst: Ipv4Addr, src_port: u16, dst_port: u16, seq: TcpSeqNumber) -> Packet {
    let repr = TcpRepr {
        src_port,
        dst_port,
        control: TcpControl::Rst,
        seq_number: seq,
        ack_number: None,
        window_len: 0,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    emit(src, dst, &repr)
}

/// The RST|ACK that refuses the connection a SYN asks for (what a host with no listener on
/// the port answers).
pub(crate) fn refuse(syn: &[u8]) -> Option<Packet> {
    let v = tcp_view(syn)?;
    let repr = TcpRepr {
        src_port: v.dst_port,
        dst_port: v.src_port,
        control: TcpControl::Rst,
        seq_number: TcpSeqNumber(0),
        ack_number: Some(seq_add(v.seq, 1)),
        window_len: 0,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    Some(emit(v.dst, v.src, &repr))
}

/// `packet` (server → gateway) cut at `fin_seq`: the payload before it and a FIN at it.
fn truncated(packet: &[u8], fin_seq: TcpSeqNumber) -> Option<Packet> {
    let caps = ChecksumCapabilities::ignored();
    let ip = Ipv4Packet::new_checked(packet).ok()?;
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    let mut repr =
        TcpRepr::parse(&tcp, &IpAddress::Ipv4(src), &IpAddress::Ipv4(dst), &caps).ok()?;
    let before = seq_diff(fin_seq, repr.seq_number);
    if before <= 0 {
        repr.seq_number = fin_seq;
        repr.payload = &[];
    } else {
        let keep = usize::try_from(before)
            .unwrap_or(usize::MAX)
            .min(repr.payload.len());
        repr.payload = repr.payload.get(..keep).unwrap_or_default();
    }
    repr.control = TcpControl::Fin;
    Some(emit(src, dst, &repr))
}

/// Mix a seed and a number into a new seed (SplitMix64 finaliser).
#[must_use]
pub(crate) fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A fault-injecting wrapper around a device (see the module docs).
#[derive(Debug)]
pub struct FaultInjector<D> {
    inner: D,
    faults: LinkFaults,
    seed: u64,
    rng: ChaCha8Rng,
    rx: DelayQueue,
    tx: DelayQueue,
    rx_free: Instant,
    tx_free: Instant,
    tracks: Vec<Track>,
    cuts_chosen: u32,
    stats: FaultStats,
}

impl<D: Device> FaultInjector<D> {
    /// Wrap `inner` with `faults`; every random choice derives from `seed`.
    pub fn new(inner: D, faults: LinkFaults, seed: u64) -> Self {
        Self {
            inner,
            faults,
            seed,
            rng: ChaCha8Rng::seed_from_u64(mix(seed, 0)),
            rx: DelayQueue::default(),
            tx: DelayQueue::default(),
            rx_free: Instant::ZERO,
            tx_free: Instant::ZERO,
            tracks: Vec::new(),
            cuts_chosen: 0,
            stats: FaultStats::default(),
        }
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The wrapped device, mutably.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// The faults in force.
    pub fn faults(&self) -> &LinkFaults {
        &self.faults
    }

    /// Change the faults (packets already delayed keep their release time).
    pub fn set_faults(&mut self, faults: LinkFaults) {
        self.faults = faults;
    }

    /// What the faults did so far.
    pub fn stats(&self) -> FaultStats {
        self.stats
    }

    /// Move packets: pull everything the inner device received into the delay queue, and
    /// hand every released outgoing packet to the inner device. Call before and after each
    /// interface poll.
    pub fn pump(&mut self, now: Instant) {
        loop {
            let packet = match self.inner.receive(now) {
                Some((rx, _)) => phy::RxToken::consume(rx, <[u8]>::to_vec),
                None => break,
            };
            self.on_network_packet(now, packet);
        }
        self.flush_tx(now);
    }

    /// When a delayed packet is next released, if any.
    pub fn poll_at(&self) -> Option<Instant> {
        match (self.rx.next(), self.tx.next()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether packets wait in the delay queues.
    pub fn is_busy(&self) -> bool {
        !self.rx.q.is_empty() || !self.tx.q.is_empty()
    }

    fn flush_tx(&mut self, now: Instant) {
        while self.tx.next().is_some_and(|t| t <= now) {
            let Some(tok) = self.inner.transmit(now) else {
                break;
            };
            let Some(p) = self.tx.pop_ready(now) else {
                break;
            };
            phy::TxToken::consume(tok, p.len(), |buf| buf.copy_from_slice(&p));
        }
    }

    /// Apply loss, bandwidth and latency, and queue.
    fn schedule(&mut self, dir: Dir, now: Instant, packet: Packet, lossy: bool) {
        if lossy && self.faults.loss > 0.0 && self.rng.random::<f64>() < self.faults.loss {
            self.stats.lost += 1;
            return;
        }
        let mut release = now;
        if let Some(bw) = self.faults.bandwidth.filter(|&b| b > 0) {
            let free = match dir {
                Dir::Tx => &mut self.tx_free,
                Dir::Rx => &mut self.rx_free,
            };
            let start = (*free).max(now);
            let micros = (packet.len() as u64).saturating_mul(MICROS_PER_SEC) / u64::from(bw);
            *free = start + NetDuration::from_micros(micros);
            release = *free;
        }
        release += NetDuration::from_micros(self.faults.latency.as_micros() as u64);
        if !self.faults.jitter.is_zero() {
            let j = self.faults.jitter.as_micros() as u64;
            release += NetDuration::from_micros(self.rng.random_range(0..=j));
        }
        match dir {
            Dir::Tx => self.tx.insert(release, packet),
            Dir::Rx => self.rx.insert(release, packet),
        }
    }

    /// Whether connection number `ordinal` of this link is cut, and after how many bytes.
    fn decide_cut(&mut self, ordinal: u32) -> Option<u32> {
        let cut = self.faults.cut.clone()?;
        if cut.max_cuts.is_some_and(|m| self.cuts_chosen >= m) {
            return None;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(mix(self.seed, 1 + u64::from(ordinal)));
        if rng.random::<f64>() >= cut.probability || cut.after.is_empty() {
            return None;
        }
        self.cuts_chosen += 1;
        Some(rng.random_range(cut.after))
    }

    /// The endpoint's hint: the response on the gateway's connection from local port
    /// `gw_port` starts after everything the server has sent so far (the gateway driver calls
    /// this when its TLS handshake completes, or when a plain connection is established).
    pub fn mark_response_start(&mut self, gw_port: u16) {
        let by_mark = self
            .faults
            .cut
            .as_ref()
            .is_some_and(|c| c.anchor == CutAnchor::Mark);
        if let Some(t) = self.track_mut(gw_port)
            && by_mark
        {
            t.resp_start = t.server_end;
        }
    }

    fn track_mut(&mut self, gw_port: u16) -> Option<&mut Track> {
        self.tracks.iter_mut().find(|t| t.gw_port == gw_port)
    }

    /// A packet from the gateway.
    fn on_gateway_packet(&mut self, now: Instant, packet: Packet) {
        self.stats.tx_packets += 1;
        let view = if self.faults.cut.is_some() || !self.tracks.is_empty() {
            tcp_view(&packet)
        } else {
            None
        };
        let Some(v) = view else {
            self.schedule(Dir::Tx, now, packet, true);
            return;
        };
        if v.syn && v.ack.is_none() && self.track_mut(v.src_port).is_none() {
            let ordinal = self.stats.connections;
            self.stats.connections += 1;
            let cut_at = self.decide_cut(ordinal);
            if self.tracks.len() >= MAX_TRACKED_CONNECTIONS {
                self.tracks.remove(0);
            }
            self.tracks.push(Track {
                gw_port: v.src_port,
                cut_at,
                resp_start: None,
                server_end: None,
                server_ack: None,
                state: TrackState::Watching,
            });
        }
        let mut out = Outgoing::default();
        match self.track_mut(v.src_port) {
            None => out.push(Dir::Tx, packet, true),
            Some(t) => match t.state {
                TrackState::Watching => out.push(Dir::Tx, packet, true),
                TrackState::Truncating { fin_seq } => {
                    let fin_acked = v.ack.is_some_and(|a| seq_diff(a, fin_seq) > 0);
                    if v.rst || v.fin || fin_acked {
                        // The gateway has seen the short response: reset the server side.
                        t.state = TrackState::Dead;
                        out.cut_packets += 1;
                        if let Some(seq) = t.server_ack {
                            out.push(
                                Dir::Tx,
                                rst(v.src, v.dst, v.src_port, v.dst_port, seq),
                                false,
                            );
                        }
                    } else {
                        out.push(Dir::Tx, packet, true);
                    }
                }
                TrackState::Dead => {
                    out.cut_packets += 1;
                    if !v.rst
                        && let Some(r) = rst_reply(&v)
                    {
                        out.push(Dir::Rx, r, false);
                    }
                }
            },
        }
        self.send_all(now, out);
    }

    /// A packet from the network to the gateway.
    fn on_network_packet(&mut self, now: Instant, packet: Packet) {
        self.stats.rx_packets += 1;
        let view = if self.tracks.is_empty() {
            None
        } else {
            tcp_view(&packet)
        };
        let Some(v) = view else {
            self.schedule(Dir::Rx, now, packet, true);
            return;
        };
        let (kind, anchor) = self
            .faults
            .cut
            .as_ref()
            .map_or((CutKind::Reset, CutAnchor::Mark), |c| (c.kind, c.anchor));
        let mut out = Outgoing::default();
        match self.track_mut(v.dst_port) {
            None => out.push(Dir::Rx, packet, true),
            Some(t) => {
                if let Some(a) = v.ack
                    && t.server_ack.is_none_or(|s| seq_diff(a, s) > 0)
                {
                    t.server_ack = Some(a);
                }
                let end = seq_add(v.seq, v.payload_len as u32 + u32::from(v.syn));
                if t.server_end.is_none_or(|e| seq_diff(end, e) > 0) {
                    t.server_end = Some(end);
                }
                if v.syn && anchor == CutAnchor::StreamStart {
                    t.resp_start = Some(seq_add(v.seq, 1));
                }
                match t.state {
                    TrackState::Watching => {
                        let cut_seq = match (t.cut_at, t.resp_start) {
                            (Some(at), Some(start)) if v.payload_len > 0 => {
                                let end = seq_add(v.seq, v.payload_len as u32);
                                let cut_seq = seq_add(start, at);
                                (seq_diff(end, cut_seq) > 0).then_some(cut_seq)
                            }
                            _ => None,
                        };
                        match (cut_seq, kind) {
                            (None, _) => out.push(Dir::Rx, packet, true),
                            (Some(_), CutKind::Reset) => {
                                out.cuts += 1;
                                out.cut_packets += 1;
                                t.state = TrackState::Dead;
                                let to_gw = rst(v.src, v.dst, v.src_port, v.dst_port, v.seq);
                                out.push(Dir::Rx, to_gw, false);
                                if let Some(r) = rst_reply(&v) {
                                    out.push(Dir::Tx, r, false);
                                }
                            }
                            (Some(cut_seq), CutKind::Truncate) => {
                                out.cuts += 1;
                                t.state = TrackState::Truncating { fin_seq: cut_seq };
                                if let Some(p) = truncated(&packet, cut_seq) {
                                    out.push(Dir::Rx, p, true);
                                }
                            }
                        }
                    }
                    TrackState::Truncating { fin_seq } => {
                        if v.payload_len > 0 || v.fin {
                            if let Some(p) = truncated(&packet, fin_seq) {
                                out.push(Dir::Rx, p, true);
                            }
                        } else {
                            out.push(Dir::Rx, packet, true);
                        }
                    }
                    TrackState::Dead => {
                        out.cut_packets += 1;
                        if !v.rst
                            && let Some(r) = rst_reply(&v)
                        {
                            out.push(Dir::Tx, r, false);
                        }
                    }
                }
            }
        }
        self.send_all(now, out);
    }

    fn send_all(&mut self, now: Instant, out: Outgoing) {
        self.stats.cuts += out.cuts;
        self.stats.cut_packets += out.cut_packets;
        for (dir, p, lossy) in out.packets {
            self.schedule(dir, now, p, lossy);
        }
    }
}

/// What handling one packet produced (scheduled once the connection state is updated).
#[derive(Default)]
struct Outgoing {
    packets: Vec<(Dir, Packet, bool)>,
    cuts: u32,
    cut_packets: u64,
}

impl Outgoing {
    fn push(&mut self, dir: Dir, p: Packet, lossy: bool) {
        self.packets.push((dir, p, lossy));
    }
}

/// A packet released to the interface.
#[derive(Debug)]
pub struct FaultRx(Packet);

impl phy::RxToken for FaultRx {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(&self.0)
    }
}

/// Room to send one packet through the faults.
#[derive(Debug)]
pub struct FaultTx<'a, D> {
    inj: &'a mut FaultInjector<D>,
    now: Instant,
}

impl<D: Device> phy::TxToken for FaultTx<'_, D> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut buf = vec![0; len];
        let r = f(&mut buf);
        self.inj.on_gateway_packet(self.now, buf);
        self.inj.flush_tx(self.now);
        r
    }
}

impl<D: Device> Device for FaultInjector<D> {
    type RxToken<'a>
        = FaultRx
    where
        Self: 'a;
    type TxToken<'a>
        = FaultTx<'a, D>
    where
        Self: 'a;

    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.pump(now);
        let p = self.rx.pop_ready(now)?;
        Some((FaultRx(p), FaultTx { inj: self, now }))
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        Some(FaultTx { inj: self, now })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.inner.capabilities()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Port;
    use super::*;
    use smoltcp::phy::{RxToken, TxToken};

    fn send(inj: &mut FaultInjector<Port>, now: Instant, p: &[u8]) {
        let tok = inj.transmit(now).unwrap();
        tok.consume(p.len(), |b| b.copy_from_slice(p));
    }

    fn sent(inj: &mut FaultInjector<Port>) -> Vec<Packet> {
        std::iter::from_fn(|| inj.inner_mut().take_sent()).collect()
    }

    fn received(inj: &mut FaultInjector<Port>, now: Instant) -> Vec<Packet> {
        let mut out = Vec::new();
        while let Some((rx, _)) = inj.receive(now) {
            out.push(rx.consume(<[u8]>::to_vec));
        }
        out
    }

    #[test]
    fn perfect_link_passes_everything_in_order() {
        let mut inj = FaultInjector::new(Port::new(), LinkFaults::none(), 1);
        for i in 0..10u8 {
            send(&mut inj, Instant::ZERO, &[i]);
            inj.inner_mut().deliver(vec![i]);
        }
        assert_eq!(
            sent(&mut inj),
            (0..10u8).map(|i| vec![i]).collect::<Vec<_>>()
        );
        assert_eq!(
            received(&mut inj, Instant::ZERO),
            (0..10u8).map(|i| vec![i]).collect::<Vec<_>>()
        );
    }

    #[test]
    fn loss_is_seeded_and_about_right() {
        let run = |seed| {
            let faults = LinkFaults::none().with_loss(0.1);
            let mut inj = FaultInjector::new(Port::new(), faults, seed);
            for _ in 0..10_000 {
                send(&mut inj, Instant::ZERO, &[0]);
            }
            inj.stats().lost
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert!((800..1200).contains(&a), "{a}");
        assert_ne!(a, run(8));
    }

    #[test]
    fn latency_and_bandwidth_delay_release() {
        let faults = LinkFaults::none()
            .with_latency(Duration::from_millis(50), Duration::ZERO)
            .with_bandwidth(1000);
        let mut inj = FaultInjector::new(Port::new(), faults, 1);
        let t0 = Instant::from_millis(0);
        send(&mut inj, t0, &[0; 100]); // 100 ms on the wire + 50 ms
        send(&mut inj, t0, &[0; 100]); // queued behind: 200 + 50
        assert!(sent(&mut inj).is_empty());
        assert_eq!(inj.poll_at(), Some(Instant::from_millis(150)));
        inj.pump(Instant::from_millis(149));
        assert!(sent(&mut inj).is_empty());
        inj.pump(Instant::from_millis(150));
        assert_eq!(sent(&mut inj).len(), 1);
        inj.pump(Instant::from_millis(250));
        assert_eq!(sent(&mut inj).len(), 1);
        assert!(!inj.is_busy());
    }

    #[test]
    fn jitter_stays_in_bounds() {
        let faults =
            LinkFaults::none().with_latency(Duration::from_millis(10), Duration::from_millis(5));
        let mut inj = FaultInjector::new(Port::new(), faults, 3);
        for _ in 0..100 {
            inj.inner_mut().deliver(vec![1]);
        }
        inj.pump(Instant::ZERO);
        assert!(received(&mut inj, Instant::from_micros(9_999)).is_empty());
        assert_eq!(received(&mut inj, Instant::from_millis(15)).len(), 100);
    }

    fn tcp(
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        control: TcpControl,
        seq: i32,
        ack: Option<i32>,
        payload: &[u8],
    ) -> Packet {
        let repr = TcpRepr {
            src_port: src.1,
            dst_port: dst.1,
            control,
            seq_number: TcpSeqNumber(seq),
            ack_number: ack.map(TcpSeqNumber),
            window_len: 8192,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload,
        };
        emit(src.0, dst.0, &repr)
    }

    const GW: (Ipv4Addr, u16) = (Ipv4Addr::new(198, 18, 0, 1), 49152);
    const SRV: (Ipv4Addr, u16) = (Ipv4Addr::new(198, 19, 255, 254), 443);

    /// Open a connection and send a request; the response starts at server seq 1001 (the
    /// start of the stream: not marked).
    fn open(inj: &mut FaultInjector<Port>) {
        let t = Instant::ZERO;
        send(inj, t, &tcp(GW, SRV, TcpControl::Syn, 100, None, &[]));
        inj.inner_mut()
            .deliver(tcp(SRV, GW, TcpControl::Syn, 1000, Some(101), &[]));
        send(
            inj,
            t,
            &tcp(GW, SRV, TcpControl::Psh, 101, Some(1001), b"request"),
        );
        sent(inj);
        received(inj, t);
    }

    #[test]
    fn truncate_cuts_at_the_offset_and_resets_the_server_after_the_fin() {
        let cut =
            CutFault::first_connection(CutKind::Truncate, 10).anchored(CutAnchor::StreamStart);
        let mut inj = FaultInjector::new(Port::new(), LinkFaults::none().with_cut(cut), 1);
        open(&mut inj);
        let t = Instant::ZERO;
        inj.inner_mut()
            .deliver(tcp(SRV, GW, TcpControl::Psh, 1001, Some(108), &[7; 25]));
        let got = received(&mut inj, t);
        assert_eq!(got.len(), 1);
        let v = tcp_view(&got[0]).unwrap();
        assert!(v.fin);
        assert_eq!(v.payload_len, 10);
        assert_eq!(inj.stats().cuts, 1);
        // A retransmission beyond the cut is trimmed again.
        inj.inner_mut()
            .deliver(tcp(SRV, GW, TcpControl::Psh, 1011, Some(108), &[7; 5]));
        let v = tcp_view(&received(&mut inj, t)[0]).unwrap();
        assert!(v.fin && v.payload_len == 0 && v.seq == TcpSeqNumber(1011));
        // The gateway acks the FIN: the server gets an RST at its ack point.
        send(
            &mut inj,
            t,
            &tcp(GW, SRV, TcpControl::None, 108, Some(1012), &[]),
        );
        let out = sent(&mut inj);
        assert_eq!(out.len(), 1);
        let v = tcp_view(&out[0]).unwrap();
        assert!(v.rst);
        assert_eq!(v.seq, TcpSeqNumber(108));
        // The next connection is not cut (max_cuts 1).
        let mut second = GW;
        second.1 += 1;
        send(
            &mut inj,
            t,
            &tcp(second, SRV, TcpControl::Syn, 500, None, &[]),
        );
        assert_eq!(inj.stats().connections, 2);
        assert_eq!(inj.tracks.last().unwrap().cut_at, None);
    }

    #[test]
    fn reset_sends_rst_both_ways_and_answers_late_packets() {
        let cut = CutFault::first_connection(CutKind::Reset, 0).anchored(CutAnchor::StreamStart);
        let mut inj = FaultInjector::new(Port::new(), LinkFaults::none().with_cut(cut), 1);
        open(&mut inj);
        let t = Instant::ZERO;
        inj.inner_mut()
            .deliver(tcp(SRV, GW, TcpControl::Psh, 1001, Some(108), &[7; 5]));
        let to_gw = received(&mut inj, t);
        assert_eq!(to_gw.len(), 1);
        let v = tcp_view(&to_gw[0]).unwrap();
        assert!(v.rst && v.payload_len == 0 && v.seq == TcpSeqNumber(1001));
        let to_srv = sent(&mut inj);
        let v = tcp_view(&to_srv[0]).unwrap();
        assert!(v.rst && v.seq == TcpSeqNumber(108));
        // A late ACK from the gateway is answered with an RST at its ack number.
        send(
            &mut inj,
            t,
            &tcp(GW, SRV, TcpControl::None, 108, Some(1003), &[]),
        );
        assert!(sent(&mut inj).is_empty());
        let v = tcp_view(&received(&mut inj, t)[0]).unwrap();
        assert!(v.rst && v.seq == TcpSeqNumber(1003));
    }

    #[test]
    fn refuse_answers_a_syn_with_rst_ack() {
        let syn = tcp(GW, SRV, TcpControl::Syn, 100, None, &[]);
        let v = tcp_view(&refuse(&syn).unwrap()).unwrap();
        assert!(v.rst);
        assert_eq!(v.ack, Some(TcpSeqNumber(101)));
        assert_eq!(
            (v.src, v.src_port, v.dst, v.dst_port),
            (SRV.0, SRV.1, GW.0, GW.1)
        );
        assert!(refuse(b"not ip").is_none());
    }

    #[test]
    fn the_mark_moves_the_response_start() {
        let cut = CutFault::first_connection(CutKind::Reset, 10).anchored(CutAnchor::StreamStart);
        let mut inj = FaultInjector::new(Port::new(), LinkFaults::none().with_cut(cut), 1);
        open(&mut inj);
        let t = Instant::ZERO;
        // Anchored at the stream start: 11 bytes pass the cut.
        inj.inner_mut()
            .deliver(tcp(SRV, GW, TcpControl::Psh, 1001, Some(108), &[1; 11]));
        assert!(tcp_view(&received(&mut inj, t)[0]).unwrap().rst);
        assert_eq!(inj.stats().cuts, 1);
        // Anchored at the mark, made after 50 handshake bytes: they do not count, nor
        // does anything before the mark.
        let mut inj = FaultInjector::new(
            Port::new(),
            LinkFaults::none().with_cut(CutFault::first_connection(CutKind::Reset, 10)),
            1,
        );
        open(&mut inj);
        inj.inner_mut()
            .deliver(tcp(SRV, GW, TcpControl::Psh, 1001, Some(108), &[1; 50]));
        assert_eq!(received(&mut inj, t).len(), 1);
        inj.mark_response_start(GW.1);
        inj.inner_mut()
            .deliver(tcp(SRV, GW, TcpControl::Psh, 1051, Some(108), &[1; 10]));
        let v = tcp_view(&received(&mut inj, t)[0]).unwrap();
        assert!(!v.rst && v.payload_len == 10);
        inj.inner_mut()
            .deliver(tcp(SRV, GW, TcpControl::Psh, 1061, Some(108), &[1; 1]));
        let v = tcp_view(&received(&mut inj, t)[0]).unwrap();
        assert!(v.rst);
        assert_eq!(inj.stats().cuts, 1);
    }

    #[test]
    fn cut_decisions_depend_on_the_ordinal_only() {
        let cut = CutFault {
            kind: CutKind::Reset,
            probability: 0.5,
            after: 0..=1000,
            max_cuts: None,
            anchor: CutAnchor::Mark,
        };
        let decide = |seed| {
            let mut inj =
                FaultInjector::new(Port::new(), LinkFaults::none().with_cut(cut.clone()), seed);
            (0..64).map(|i| inj.decide_cut(i)).collect::<Vec<_>>()
        };
        let a = decide(9);
        assert_eq!(a, decide(9));
        let cuts = a.iter().filter(|c| c.is_some()).count();
        assert!((16..48).contains(&cuts), "{cuts}");
    }
}
