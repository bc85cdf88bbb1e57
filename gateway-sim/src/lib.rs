//! `gateway-sim`: simulated LoRa Basics Station fleets, driven against a CUPS server on
//! loopback.
//!
//! Each simulated gateway is a [`cups_core::station::Station`] (credential sets, CRCs, timers,
//! signature policy) + a TLS client (rustls, sans-IO) + its own smoltcp TCP/IP stack with an
//! address in `198.18.0.0/15`. All gateways sit on one virtual network inside the process; a
//! userspace **uplink** (also smoltcp) terminates their TCP connections and relays each byte
//! stream to the server under test on a loopback address. No tun device, no privileges, no
//! traffic to anything but loopback.
//!
//! ```text
//!  gateway 0: Station ─ TLS ─ smoltcp iface 198.18.0.1 ─ FaultInjector ─ Port ┐
//!  gateway 1: Station ─ TLS ─ smoltcp iface 198.18.0.2 ─ FaultInjector ─ Port ┤ switch
//!  ...                                                                        │ (in-process)
//!  uplink:   smoltcp iface 198.19.255.254 ─ Port ─────────────────────────────┘
//!     └─ relay per TCP connection ─ mio TcpStream ─▶ 127.0.0.1:PORT (server under test)
//! ```
//!
//! Layers, one module each (the folder tree is the architecture):
//!
//! | module | what |
//! |---|---|
//! | [`net`] | addresses, the queue [`net::Port`] device, the [`net::FaultInjector`] middleware, the [`net::Uplink`] |
//! | [`tls`] | rustls client config from a station's credential files; sans-IO byte pumping |
//! | [`http`] | the response head parser, with the station's rules (`Content-Length` or empty) |
//! | [`ws`] | a sans-IO WebSocket codec (upgrade handshake, frames with limits) |
//! | [`tc`] | the gateway side of the TC (LNS) link: URI, token lines, the router-info / muxs exchange |
//! | [`lns`] | a minimal LNS endpoint on loopback (router-info + muxs, client-cert / token auth) |
//! | [`clock`] | real time for the network, virtual time for station timers |
//! | [`update`] | what "running" an update does to a simulated gateway |
//! | [`fleet`] | gateways, the event loop, [`fleet::Fleet::run_until`] |
//! | [`report`] | per-gateway outcome (deterministic) and metrics (latencies, bytes) |
//! | [`factory`] | the simulated manufacturer: factory CA, per-EUI certificates, bootstrap homes |
//! | [`scenario`] | scenarios against a real server: phases, per-gateway checks, the [`scenario::Admin`] side |
//!
//! **Time.** Station timers run on virtual time: while any interaction is in flight it advances
//! with real time (so connection timeouts mean what they say); when no gateway is interacting
//! it jumps to the next station deadline, so a simulated day of 24 h polls takes milliseconds.
//! Network I/O (TCP retransmissions, latency, the server) runs on real time.
//!
//! **Determinism.** Every random choice (packet loss, jitter, which connection is cut and
//! where, boot spread, smoltcp's sequence numbers) comes from a ChaCha RNG seeded from the
//! fleet seed and the gateway index. Connection-level faults are decided per connection
//! ordinal, not per packet, so the per-gateway outcome ([`report::Report::outcome_snapshot`])
//! is the same for the same seed; latencies and byte counts are not part of it.

pub mod clock;
pub mod factory;
pub mod fleet;
pub mod http;
pub mod lns;
pub mod net;
pub mod report;
pub mod scenario;
pub mod tc;
pub mod tls;
pub mod update;
pub mod ws;

mod gateway;

pub use clock::SimClock;
pub use fleet::{Fleet, FleetConfig, FleetError, GatewayId, GatewayView, RunResult, SimStation};
pub use net::{CutAnchor, CutFault, CutKind, FaultInjector, LinkFaults};
pub use report::{GatewayOutcome, GatewayStatus, Report, Summary};
pub use update::{UpdateModel, UpdateOutcome};

/// The `station` string simulated gateways report (version and build, like a real station).
pub const STATION_VERSION: &str = "2.0.6(linux/gateway-sim) 2026-11-26 00:00:00";
/// The `model` simulated gateways report.
pub const STATION_MODEL: &str = "linux";
