//! [`Uplink`]: the userspace TCP terminator that owns [`UPLINK_ADDR`](super::UPLINK_ADDR) on
//! the virtual network and relays every accepted connection to the server under test on
//! loopback.
//!
//! A new connection is only accepted once the real one is up: the gateway's SYN is held while
//! a non-blocking loopback `connect` runs; when it completes, a listening socket is made for
//! it and the SYN is let through; when it fails (server down, no route), the uplink answers the
//! SYN with an RST — the gateway sees "connection refused", as it would from a real server
//! that is down.
//!
//! Byte streams are relayed both ways with half-close: the gateway's FIN becomes
//! `shutdown(Write)` on the real socket, the server's EOF becomes a FIN to the gateway.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Token};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration as NetDuration, Instant};
use smoltcp::wire::{
    HardwareAddress, IpAddress, IpCidr, IpListenEndpoint, IpProtocol, Ipv4Packet, TcpPacket,
};

use super::{
    PREFIX_LEN, Packet, Port, Routes, UPLINK_ADDR, UPLINK_KEEP_ALIVE, UPLINK_RX_BUFFER,
    UPLINK_TIMEOUT, UPLINK_TX_BUFFER,
};

/// Readiness events taken per `mio` poll.
const EVENTS_CAPACITY: usize = 1024;

/// (gateway address, gateway port, uplink port).
type Tuple = (Ipv4Addr, u16, u16);

/// What the uplink did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize)]
pub struct UplinkStats {
    /// Connections relayed to a real server.
    pub accepted: u64,
    /// Connections refused (no route, or the real connect failed).
    pub refused: u64,
    /// Bytes relayed gateway → server.
    pub bytes_up: u64,
    /// Bytes relayed server → gateway.
    pub bytes_down: u64,
    /// Most relays open at once.
    pub peak_relays: usize,
}

/// One relayed connection.
#[derive(Debug)]
struct Relay {
    tuple: Tuple,
    stream: TcpStream,
    /// The gateway's SYN, held until the real connection is up.
    syn: Option<Packet>,
    handle: Option<SocketHandle>,
    readable: bool,
    writable: bool,
    server_eof: bool,
    gateway_eof: bool,
    dead: bool,
}

/// The uplink (see the module docs).
pub struct Uplink {
    iface: Interface,
    port: Port,
    sockets: SocketSet<'static>,
    routes: Routes,
    poll: mio::Poll,
    events: Events,
    relays: Vec<Option<Relay>>,
    free: Vec<usize>,
    by_tuple: HashMap<Tuple, usize>,
    /// Listening sockets made for a held SYN, not yet matched to their relay.
    listeners: Vec<SocketHandle>,
    /// Aborted sockets to remove after the next poll (which sends their RST).
    zombies: Vec<SocketHandle>,
    open: usize,
    stats: UplinkStats,
}

impl std::fmt::Debug for Uplink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uplink")
            .field("routes", &self.routes)
            .field("open", &self.open)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Uplink {
    /// An uplink relaying by `routes`.
    ///
    /// # Errors
    /// The `mio` poller could not be created.
    pub fn new(routes: Routes, now: Instant, seed: u64) -> io::Result<Self> {
        let mut port = Port::new();
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut port, now);
        iface.update_ip_addrs(|addrs| {
            // One address; the vector has room for it.
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(UPLINK_ADDR), PREFIX_LEN));
        });
        Ok(Self {
            iface,
            port,
            sockets: SocketSet::new(Vec::new()),
            routes,
            poll: mio::Poll::new()?,
            events: Events::with_capacity(EVENTS_CAPACITY),
            relays: Vec::new(),
            free: Vec::new(),
            by_tuple: HashMap::new(),
            listeners: Vec::new(),
            zombies: Vec::new(),
            open: 0,
            stats: UplinkStats::default(),
        })
    }

    /// The switch port (the switch delivers gateway packets here and takes the uplink's).
    pub fn port_mut(&mut self) -> &mut Port {
        &mut self.port
    }

    /// The relay routes.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// The relay routes, to change them while running (server outage, migration).
    pub fn routes_mut(&mut self) -> &mut Routes {
        &mut self.routes
    }

    /// What the uplink did so far.
    pub fn stats(&self) -> UplinkStats {
        self.stats
    }

    /// Relays open now.
    pub fn open_relays(&self) -> usize {
        self.open
    }

    /// Wait up to `timeout` for real-socket readiness (and record it).
    ///
    /// # Errors
    /// The `mio` poll failed (other than by interruption).
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        for ev in &self.events {
            let Some(Some(relay)) = self.relays.get_mut(ev.token().0) else {
                continue;
            };
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                relay.readable = true;
            }
            if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                relay.writable = true;
            }
        }
        Ok(())
    }

    /// When the interface needs polling next.
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        if !self.zombies.is_empty() || self.port.pending_rx() > 0 {
            return Some(now);
        }
        self.iface.poll_at(now, &self.sockets)
    }

    /// Do everything that can be done now; `true` if anything moved.
    pub fn step(&mut self, now: Instant) -> bool {
        if self.open > 0
            && let Err(e) = self.wait(Some(Duration::ZERO))
        {
            tracing::warn!("poll: {e}");
        }
        let mut progress = self.intercept_syns();
        progress |= self.finish_connects();
        self.iface.poll(now, &mut self.port, &mut self.sockets);
        for h in self.zombies.drain(..) {
            self.sockets.remove(h);
        }
        self.match_listeners();
        if self.pump() {
            progress = true;
            self.iface.poll(now, &mut self.port, &mut self.sockets);
        }
        progress
    }

    /// Hold new SYNs until their real connection is up.
    fn intercept_syns(&mut self) -> bool {
        let mut queue = std::mem::take(self.port.rx_queue_mut());
        let mut progress = false;
        queue.retain_mut(|p| {
            let Some(tuple) = new_syn(p) else {
                return true;
            };
            if let Some(&slot) = self.by_tuple.get(&tuple) {
                // A retransmitted SYN: drop it while ours is held, else the socket answers.
                return self
                    .relays
                    .get(slot)
                    .is_some_and(|r| r.as_ref().is_some_and(|r| r.syn.is_none()));
            }
            progress = true;
            let refused = match self.routes.target(tuple.2) {
                None => Some(std::mem::take(p)),
                Some(target) => self.start_relay(tuple, target, std::mem::take(p)).err(),
            };
            if let Some(syn) = refused {
                self.refuse(&syn);
            }
            false
        });
        *self.port.rx_queue_mut() = queue;
        progress
    }

    fn start_relay(&mut self, tuple: Tuple, target: SocketAddr, syn: Packet) -> Result<(), Packet> {
        // Routes only hold loopback targets; refuse anything else all the same.
        if !target.ip().is_loopback() {
            return Err(syn);
        }
        let Ok(mut stream) = TcpStream::connect(target) else {
            return Err(syn);
        };
        let slot = self.free.pop().unwrap_or(self.relays.len());
        let interest = Interest::READABLE.add(Interest::WRITABLE);
        if self
            .poll
            .registry()
            .register(&mut stream, Token(slot), interest)
            .is_err()
        {
            if slot < self.relays.len() {
                self.free.push(slot);
            }
            return Err(syn);
        }
        let relay = Relay {
            tuple,
            stream,
            syn: Some(syn),
            handle: None,
            readable: false,
            writable: false,
            server_eof: false,
            gateway_eof: false,
            dead: false,
        };
        if slot == self.relays.len() {
            self.relays.push(Some(relay));
        } else if let Some(s) = self.relays.get_mut(slot) {
            *s = Some(relay);
        }
        self.by_tuple.insert(tuple, slot);
        self.open += 1;
        self.stats.peak_relays = self.stats.peak_relays.max(self.open);
        Ok(())
    }

    /// Let held SYNs through once their real connection is up (or failed).
    fn finish_connects(&mut self) -> bool {
        let mut progress = false;
        let mut refused = Vec::new();
        for slot in 0..self.relays.len() {
            let Some(Some(relay)) = self.relays.get_mut(slot) else {
                continue;
            };
            if relay.syn.is_none() || !relay.writable {
                continue;
            }
            let failed = matches!(relay.stream.take_error(), Ok(Some(_)) | Err(_));
            let connected = !failed && relay.stream.peer_addr().is_ok();
            if !failed && !connected {
                relay.writable = false; // spurious wake-up: still connecting
                continue;
            }
            progress = true;
            let syn = relay.syn.take().unwrap_or_default();
            let local_port = relay.tuple.2;
            if connected {
                let mut socket = tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; UPLINK_RX_BUFFER]),
                    tcp::SocketBuffer::new(vec![0; UPLINK_TX_BUFFER]),
                );
                socket.set_nagle_enabled(false);
                socket.set_ack_delay(None);
                socket.set_keep_alive(Some(net_duration(UPLINK_KEEP_ALIVE)));
                socket.set_timeout(Some(net_duration(UPLINK_TIMEOUT)));
                let endpoint = IpListenEndpoint {
                    addr: Some(IpAddress::Ipv4(UPLINK_ADDR)),
                    port: local_port,
                };
                if socket.listen(endpoint).is_ok() {
                    self.listeners.push(self.sockets.add(socket));
                    self.stats.accepted += 1;
                } else {
                    relay.dead = true;
                    refused.push(syn);
                    continue;
                }
                // Through the interface, to the listener.
                self.port.rx_queue_mut().push_back(syn);
            } else {
                relay.dead = true;
                refused.push(syn);
            }
        }
        for syn in refused {
            self.refuse(&syn);
        }
        self.reap();
        progress
    }

    /// Answer `syn` with an RST (connection refused), as a host without a listener does.
    fn refuse(&mut self, syn: &[u8]) {
        self.stats.refused += 1;
        if let Some(rst) = super::fault::refuse(syn) {
            // The port's queue bound applies; a dropped RST is retried by the next SYN.
            self.port.send(rst);
        }
    }

    /// Bind listening sockets that accepted their SYN to their relay.
    fn match_listeners(&mut self) {
        let mut i = 0;
        while let Some(&h) = self.listeners.get(i) {
            let socket = self.sockets.get_mut::<tcp::Socket<'_>>(h);
            match socket.state() {
                tcp::State::Listen => i += 1,
                tcp::State::Closed => {
                    self.listeners.swap_remove(i);
                    self.sockets.remove(h);
                }
                _ => {
                    self.listeners.swap_remove(i);
                    let tuple = socket.remote_endpoint().map(|ep| match ep.addr {
                        IpAddress::Ipv4(a) => (a, ep.port, socket.listen_endpoint().port),
                    });
                    let relay = tuple
                        .and_then(|t| self.by_tuple.get(&t))
                        .and_then(|&slot| self.relays.get_mut(slot))
                        .and_then(Option::as_mut);
                    match relay {
                        Some(r) if r.handle.is_none() => r.handle = Some(h),
                        _ => {
                            socket.abort();
                            self.zombies.push(h);
                        }
                    }
                }
            }
        }
    }

    /// Move bytes both ways; `true` if any moved or a connection ended.
    fn pump(&mut self) -> bool {
        let mut progress = false;
        for slot in 0..self.relays.len() {
            let Some(Some(relay)) = self.relays.get_mut(slot) else {
                continue;
            };
            let Some(h) = relay.handle else {
                continue;
            };
            let socket = self.sockets.get_mut::<tcp::Socket<'_>>(h);
            // Server → gateway.
            while relay.readable && !relay.server_eof && !relay.dead && socket.can_send() {
                let stream = &mut relay.stream;
                let r = socket.send(|buf| match stream.read(buf) {
                    Ok(n) => (n, Ok(n)),
                    Err(e) => (0, Err(e)),
                });
                match r {
                    Ok(Ok(0)) => relay.server_eof = true,
                    Ok(Ok(n)) => {
                        self.stats.bytes_down += n as u64;
                        progress = true;
                    }
                    Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => relay.readable = false,
                    Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                    Ok(Err(_)) | Err(_) => relay.dead = true,
                }
            }
            if relay.server_eof && socket.is_open() && socket.may_send() {
                socket.close();
                progress = true;
            }
            // Gateway → server.
            while relay.writable && !relay.dead && socket.can_recv() {
                let stream = &mut relay.stream;
                let r = socket.recv(|buf| match stream.write(buf) {
                    Ok(n) => (n, Ok(n)),
                    Err(e) => (0, Err(e)),
                });
                match r {
                    Ok(Ok(0)) => relay.dead = true,
                    Ok(Ok(n)) => {
                        self.stats.bytes_up += n as u64;
                        progress = true;
                    }
                    Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => relay.writable = false,
                    Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                    Ok(Err(_)) | Err(_) => relay.dead = true,
                }
            }
            if !relay.gateway_eof && !socket.may_recv() && socket.recv_queue() == 0 {
                match socket.state() {
                    tcp::State::CloseWait
                    | tcp::State::LastAck
                    | tcp::State::Closing
                    | tcp::State::TimeWait => {
                        relay.gateway_eof = true;
                        let _ = relay.stream.shutdown(Shutdown::Write);
                        progress = true;
                    }
                    _ => {}
                }
            }
            match socket.state() {
                tcp::State::Closed | tcp::State::TimeWait => relay.dead = true,
                _ if relay.dead => {
                    socket.abort();
                }
                _ => {}
            }
            if relay.dead {
                progress = true;
            }
        }
        self.reap();
        progress
    }

    /// Remove dead relays (their socket goes after the next poll, which sends any RST).
    fn reap(&mut self) {
        for slot in 0..self.relays.len() {
            let dead = self
                .relays
                .get(slot)
                .and_then(Option::as_ref)
                .is_some_and(|r| r.dead);
            if !dead {
                continue;
            }
            let Some(mut relay) = self.relays.get_mut(slot).and_then(Option::take) else {
                continue;
            };
            let _ = self.poll.registry().deregister(&mut relay.stream);
            self.by_tuple.remove(&relay.tuple);
            if let Some(h) = relay.handle {
                self.zombies.push(h);
            }
            self.free.push(slot);
            self.open -= 1;
        }
    }
}

fn net_duration(d: Duration) -> NetDuration {
    NetDuration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The tuple of a SYN (without ACK) to the uplink.
fn new_syn(p: &[u8]) -> Option<Tuple> {
    let ip = Ipv4Packet::new_checked(p).ok()?;
    if ip.next_header() != IpProtocol::Tcp || ip.dst_addr() != UPLINK_ADDR {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    (tcp.syn() && !tcp.ack()).then(|| (ip.src_addr(), tcp.src_port(), tcp.dst_port()))
}
