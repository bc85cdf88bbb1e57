//! cups-host-server: the CUPS server library (the `cups-server` binary is a thin wrapper).
//!
//! | module | what |
//! |---|---|
//! | [`model`] | what is stored: gateway records, token index, firmware metadata |
//! | [`store`] | the storage trait and its filesystem, S3 and in-memory backends |
//! | [`pki`] | gateway CA, server identity, update-signing keys; minting with rcgen |
//! | [`planner`] | pure: which segments a gateway receives now, and why |
//! | [`service`] | authentication, credential minting/renewal, planning, audit: no sockets |
//! | [`serve`] | HTTPS and admin listeners, limits, timeouts, metrics, shutdown |
//! | [`metrics`] | a small Prometheus text registry (counters, gauges, histograms) |
//! | [`config`] | settings: flags > environment > `.env` > defaults, with their sources |
//! | [`cli`] | the `cups-server` operator commands |
//! | [`export`] | a ready-to-run Basics Station home directory for one gateway |

pub mod cli;
pub mod config;
pub mod export;
pub mod metrics;
pub mod model;
pub mod pki;
pub mod planner;
pub mod serve;
pub mod service;
pub mod store;
