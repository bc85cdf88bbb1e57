//! `hil` — the gateway-sim scenarios against a **real** LoRa Basics Station: a `station`
//! binary on this machine (`--station PATH` / `CUPS_HIL_STATION`) or a gateway reached over
//! SSH (`--ssh user@host --home DIR`).
//!
//! ```text
//!  hil ── cups-server init / gateway add / gateway export ──▶ station home (+ station.conf
//!   │                                                          with short timers)
//!   ├── cups-server serve --log-format json (loopback) ◀── HTTPS ── station ──▶ LNS endpoint
//!   │        └─ audit lines ─┐                                 │ log (stderr)   (gateway-sim)
//!   └── checks ◀─────────────┴──── StationEvent ◀── log parser ┘
//! ```
//!
//! Every scenario is checked from both sides: the station's log ([`log`]) and the server's
//! audit lines ([`audit`]); the LNS endpoint ([`lns_glue`]) says who connected. Provisioning
//! goes through the real `cups-server` binary ([`server`]). Without a station configured the
//! end-to-end tests skip with a printed reason.
//!
//! ```no_run
//! use hil::{HilConfig, Scenario, StationTarget, run_scenario};
//! let cfg = HilConfig::new(StationTarget::Local { path: "/opt/station/bin/station".into() });
//! let report = run_scenario(&cfg, Scenario::FirstBoot)?;
//! println!("{report}");
//! assert!(report.passed());
//! # Ok::<(), hil::HilError>(())
//! ```

pub mod audit;
pub mod lns_glue;
pub mod log;
pub mod scenario;
pub mod server;
pub mod station;
pub mod station_conf;

pub use scenario::{
    Check, CheckOutcome, HilConfig, HilError, HilReport, Scenario, Side, run_scenario,
};
pub use station::StationTarget;
