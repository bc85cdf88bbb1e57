//! The virtual network: addresses, the queue device every interface sits on, the fault
//! middleware around it, and the uplink that bridges virtual TCP connections to loopback.
//!
//! ```text
//!  gateway iface ─ FaultInjector<Port> ─┐                 ┌─ Relay ─ TcpStream ─▶ 127.0.0.1:P
//!  gateway iface ─ FaultInjector<Port> ─┼─ switch ─ Port ─┤  Uplink iface (198.19.255.254)
//!  ...                                  ┘  (route by      └─ Relay ─ ...
//!                                           destination)
//! ```
//!
//! Addresses come from `198.18.0.0/15` (RFC 2544 benchmarking space, never routed on the
//! internet): gateway `i` is `198.18.0.0 + 1 + i`, the uplink is [`UPLINK_ADDR`]. Packets never
//! leave the process; only the uplink's relays open real sockets, and only to loopback
//! addresses ([`Routes`] refuses anything else).

mod fault;
mod port;
mod uplink;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub(crate) use fault::mix as mix_seed;
pub use fault::{
    CutAnchor, CutFault, CutKind, FaultInjector, FaultRx, FaultStats, FaultTx, LinkFaults,
    MAX_TRACKED_CONNECTIONS,
};
pub use port::{MAX_PORT_QUEUE, Port, PortRx, PortTx};
pub use uplink::{Uplink, UplinkStats};

use smoltcp::phy::{ChecksumCapabilities, DeviceCapabilities, Medium};

/// One IP packet on the virtual network.
pub type Packet = Vec<u8>;

/// The virtual network: `198.18.0.0/15`.
pub const NETWORK: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
/// Prefix length of [`NETWORK`].
pub const PREFIX_LEN: u8 = 15;
/// The uplink's address (the last usable one of [`NETWORK`]).
pub const UPLINK_ADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 254);
/// Most gateways one virtual network holds (every address but the network, the uplink and
/// the broadcast address).
pub const MAX_GATEWAYS: u32 = (1 << (32 - PREFIX_LEN as u32)) - 3;
/// MTU of every virtual link (IP packet size).
pub const MTU: usize = 1500;
/// A gateway's TCP receive buffer (its window): the largest TLS record is 16 KiB, but the
/// station's own buffer is 8 KiB, and records stream through rustls as they arrive.
pub const GATEWAY_RX_BUFFER: usize = 8 * 1024;
/// A gateway's TCP send buffer: its TLS flight (client hello, certificate, ...) and request.
pub const GATEWAY_TX_BUFFER: usize = 4 * 1024;
/// The uplink's receive buffer per connection (gateway → server).
pub const UPLINK_RX_BUFFER: usize = 4 * 1024;
/// The uplink's send buffer per connection (server → gateway).
pub const UPLINK_TX_BUFFER: usize = 16 * 1024;
/// Keep-alive interval of uplink connections (so a gateway that vanished is noticed).
pub const UPLINK_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(10);
/// An uplink connection whose data stays unacknowledged this long is aborted.
pub const UPLINK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// First local TCP port a gateway uses; it counts up per connection and wraps.
pub const FIRST_LOCAL_PORT: u16 = 49_152;
/// How many local ports a gateway cycles through.
pub const LOCAL_PORTS: u16 = 16_384;

/// The address of gateway `index`, `None` beyond [`MAX_GATEWAYS`].
#[must_use]
pub fn gateway_addr(index: u32) -> Option<Ipv4Addr> {
    (index < MAX_GATEWAYS).then(|| Ipv4Addr::from(u32::from(NETWORK) + 1 + index))
}

/// The gateway index of `addr`, `None` if it is not a gateway address.
#[must_use]
pub fn gateway_index(addr: Ipv4Addr) -> Option<u32> {
    let off = u32::from(addr).checked_sub(u32::from(NETWORK))?;
    let index = off.checked_sub(1)?;
    (index < MAX_GATEWAYS).then_some(index)
}

/// The destination address of an IPv4 packet, if it is one.
#[must_use]
pub fn packet_dst(packet: &[u8]) -> Option<Ipv4Addr> {
    let p = smoltcp::wire::Ipv4Packet::new_checked(packet).ok()?;
    Some(p.dst_addr())
}

/// The capabilities of every virtual device: IP medium, [`MTU`], and no checksums (nothing
/// on the virtual network corrupts packets unless a fault says so, and checksums cost time).
#[must_use]
pub fn capabilities() -> DeviceCapabilities {
    let mut caps = DeviceCapabilities::default();
    caps.medium = Medium::Ip;
    caps.max_transmission_unit = MTU;
    caps.checksum = ChecksumCapabilities::ignored();
    caps
}

/// Where the uplink relays a virtual connection: per destination port, else the default.
/// Every target is a loopback address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routes {
    default: DefaultRoute,
    ports: BTreeMap<u16, Option<SocketAddr>>,
}

/// Where ports without their own route go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum DefaultRoute {
    /// Refused.
    #[default]
    None,
    /// One target for every port.
    Fixed(SocketAddr),
    /// The same port on this loopback address (`https://localhost:P` reaches `127.0.0.1:P`).
    SamePort(IpAddr),
}

/// A relay target that is not a loopback address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NotLoopback(pub SocketAddr);

impl fmt::Display for NotLoopback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is not a loopback address: the simulator only talks to loopback",
            self.0
        )
    }
}

impl std::error::Error for NotLoopback {}

fn loopback(addr: SocketAddr) -> Result<SocketAddr, NotLoopback> {
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(NotLoopback(addr))
    }
}

impl Routes {
    /// Relay every port to `default`.
    ///
    /// # Errors
    /// [`NotLoopback`] unless `default` is a loopback address.
    pub fn new(default: SocketAddr) -> Result<Self, NotLoopback> {
        Ok(Self {
            default: DefaultRoute::Fixed(loopback(default)?),
            ports: BTreeMap::new(),
        })
    }

    /// Relay every virtual port `P` to `ip:P` (so a URI `https://localhost:P` reaches the
    /// server listening on loopback port `P`, and a URI naming a port nothing listens on is
    /// refused, as it would be for a real station).
    ///
    /// # Errors
    /// [`NotLoopback`] unless `ip` is a loopback address.
    pub fn same_port(ip: IpAddr) -> Result<Self, NotLoopback> {
        loopback(SocketAddr::new(ip, 0))?;
        Ok(Self {
            default: DefaultRoute::SamePort(ip),
            ports: BTreeMap::new(),
        })
    }

    /// No route at all: every connection is refused.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// Relay virtual port `port` to `target`; `None` refuses connections to that port (a
    /// server that is down).
    ///
    /// # Errors
    /// [`NotLoopback`] unless `target` is a loopback address.
    pub fn set(&mut self, port: u16, target: Option<SocketAddr>) -> Result<(), NotLoopback> {
        let target = target.map(loopback).transpose()?;
        self.ports.insert(port, target);
        Ok(())
    }

    /// Forget the per-port setting of `port` (back to the default).
    pub fn clear(&mut self, port: u16) {
        self.ports.remove(&port);
    }

    /// Set the default target (`None`: refuse ports without their own route).
    ///
    /// # Errors
    /// [`NotLoopback`] unless `target` is a loopback address.
    pub fn set_default(&mut self, target: Option<SocketAddr>) -> Result<(), NotLoopback> {
        self.default = match target {
            Some(t) => DefaultRoute::Fixed(loopback(t)?),
            None => DefaultRoute::None,
        };
        Ok(())
    }

    /// The target for virtual port `port`.
    #[must_use]
    pub fn target(&self, port: u16) -> Option<SocketAddr> {
        match self.ports.get(&port) {
            Some(t) => *t,
            None => match self.default {
                DefaultRoute::None => None,
                DefaultRoute::Fixed(t) => Some(t),
                DefaultRoute::SamePort(ip) => Some(SocketAddr::new(ip, port)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_and_stay_in_the_network() {
        assert_eq!(gateway_addr(0), Some(Ipv4Addr::new(198, 18, 0, 1)));
        let last = gateway_addr(MAX_GATEWAYS - 1).unwrap();
        assert_eq!(last, Ipv4Addr::new(198, 19, 255, 253));
        assert_eq!(gateway_addr(MAX_GATEWAYS), None);
        assert_eq!(gateway_index(last), Some(MAX_GATEWAYS - 1));
        assert_eq!(gateway_index(UPLINK_ADDR), None);
        assert_eq!(gateway_index(NETWORK), None);
        assert_eq!(gateway_index(Ipv4Addr::new(127, 0, 0, 1)), None);
        for i in [0, 1, 255, 256, 65_535, 100_000] {
            assert_eq!(gateway_index(gateway_addr(i).unwrap()), Some(i));
        }
    }

    #[test]
    fn routes_refuse_non_loopback() {
        let lo: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let lo6: SocketAddr = "[::1]:4000".parse().unwrap();
        let far: SocketAddr = "192.0.2.1:443".parse().unwrap();
        assert!(Routes::new(far).is_err());
        let mut r = Routes::new(lo).unwrap();
        assert_eq!(r.target(443), Some(lo));
        assert_eq!(r.set(443, Some(far)), Err(NotLoopback(far)));
        r.set(443, Some(lo6)).unwrap();
        assert_eq!(r.target(443), Some(lo6));
        r.set(443, None).unwrap();
        assert_eq!(r.target(443), None);
        r.clear(443);
        assert_eq!(r.target(443), Some(lo));
        assert!(Routes::none().target(1).is_none());
        r.set_default(None).unwrap();
        assert_eq!(r.target(1), None);
        let same = Routes::same_port("127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(same.target(8443), Some("127.0.0.1:8443".parse().unwrap()));
        assert!(Routes::same_port("192.0.2.1".parse().unwrap()).is_err());
    }
}
