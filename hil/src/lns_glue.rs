//! The one place `hil` touches the minimal LNS endpoint of `gateway-sim`
//! ([`gateway_sim::lns`]: router-info and muxs WebSockets, client-certificate or token auth,
//! protocol doc §6).
//!
//! The endpoint presents the CUPS server's own certificate (`certs/cups.crt`, issued by the
//! gateway CA for `localhost`), because the TC trust the server sends to gateways is the
//! gateway CA; it verifies client certificates against that CA (`certs/ca.crt`).
//!
//! An outage that makes a station fall back to CUPS is a *refusal*: the station invokes CUPS
//! at once when router-info answers with an error, but only after ten failed retries (minutes)
//! when connections merely fail. [`Lns::restart`] replaces the endpoint on the same port with
//! one that refuses (or serves) every router.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[cfg(feature = "lns")]
use gateway_sim::lns::{LnsConfig, LnsGatewayStats, LnsServer};

/// Stand-in types of a build without the `lns` feature (the fuzz build): starting fails with
/// [`LnsGlueError::Unavailable`] and every LNS check of a scenario is skipped.
#[cfg(not(feature = "lns"))]
mod absent {
    /// Never constructed.
    #[derive(Debug)]
    pub(super) enum LnsServer {}
    /// Per-gateway statistics (none without an endpoint).
    #[derive(Clone, Debug, Default, serde::Serialize)]
    pub struct LnsGatewayStats {
        /// Muxs connections that sent `version`.
        pub muxs: u32,
    }
    impl LnsServer {
        pub(super) fn stop(self) {}
        pub(super) fn local_addr(&self) -> std::net::SocketAddr {
            match *self {}
        }
        pub(super) fn set_available(&self, _up: bool) {}
        pub(super) fn gateways(
            &self,
        ) -> std::collections::BTreeMap<cups_core::Eui64, LnsGatewayStats> {
            std::collections::BTreeMap::new()
        }
    }
}
#[cfg(not(feature = "lns"))]
pub use absent::LnsGatewayStats;
#[cfg(not(feature = "lns"))]
use absent::LnsServer;

/// Host name the LNS puts into the muxs URI it hands out (the certificate is for it).
pub const PUBLIC_HOST: &str = "localhost";

/// Why the LNS endpoint is not running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LnsGlueError {
    /// This build has no LNS endpoint.
    #[error("no LNS endpoint in this build: {0}")]
    Unavailable(&'static str),
    /// The certificate or key could not be read, or the endpoint failed to start.
    #[error("LNS endpoint: {0}")]
    Start(String),
}

/// A running LNS endpoint on loopback.
#[derive(Debug)]
pub struct Lns {
    inner: Option<LnsServer>,
    addr: SocketAddr,
    certs: PathBuf,
}

impl Lns {
    /// Start an endpoint on `bind` (port 0: ephemeral) with the PKI in `certs` (a
    /// `cups-server` PKI directory).
    ///
    /// # Errors
    /// [`LnsGlueError::Start`].
    pub fn start(bind: SocketAddr, certs: &Path) -> Result<Self, LnsGlueError> {
        let inner = start_server(bind, certs, false)?;
        Ok(Self {
            addr: inner.local_addr(),
            inner: Some(inner),
            certs: certs.to_path_buf(),
        })
    }

    /// Whether this build can start an endpoint at all.
    #[must_use]
    pub const fn available() -> bool {
        cfg!(feature = "lns")
    }

    /// Replace the endpoint by a fresh one on the same port that refuses every router
    /// (`refuse_all`: router-info answers with an `error`) or serves them again.
    ///
    /// # Errors
    /// [`LnsGlueError::Start`] (e.g. the port was taken meanwhile).
    pub fn restart(&mut self, refuse_all: bool) -> Result<(), LnsGlueError> {
        if let Some(old) = self.inner.take() {
            old.stop();
        }
        self.inner = Some(start_server(self.addr, &self.certs, refuse_all)?);
        Ok(())
    }

    /// The listening address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `wss://localhost:PORT`: the TC URI for gateways.
    #[must_use]
    pub fn tc_uri(&self) -> String {
        format!("wss://{PUBLIC_HOST}:{}", self.addr.port())
    }

    /// Take the LNS down (`false`: open connections are closed, new ones closed after
    /// accept) or back up.
    pub fn set_available(&self, up: bool) {
        if let Some(s) = &self.inner {
            s.set_available(up);
        }
    }

    /// What the current endpoint saw per gateway (16 hex digits).
    #[must_use]
    pub fn stats(&self) -> BTreeMap<String, LnsGatewayStats> {
        self.inner
            .as_ref()
            .map(|s| {
                s.gateways()
                    .into_iter()
                    .map(|(eui, st)| (eui.canonical().to_string(), st))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The gateways (16 hex digits) that completed router-info and sent `version` on muxs.
    #[must_use]
    pub fn connected_gateways(&self) -> BTreeSet<String> {
        self.stats()
            .into_iter()
            .filter(|(_, st)| st.muxs > 0)
            .map(|(eui, _)| eui)
            .collect()
    }

    /// Stop the endpoint.
    pub fn stop(mut self) {
        if let Some(s) = self.inner.take() {
            s.stop();
        }
    }
}

#[cfg(not(feature = "lns"))]
fn start_server(
    _bind: SocketAddr,
    _certs: &Path,
    _refuse_all: bool,
) -> Result<LnsServer, LnsGlueError> {
    Err(LnsGlueError::Unavailable(
        "hil was built without its `lns` feature",
    ))
}

#[cfg(feature = "lns")]
fn start_server(
    bind: SocketAddr,
    certs: &Path,
    refuse_all: bool,
) -> Result<LnsServer, LnsGlueError> {
    let err = |e: &dyn std::fmt::Display| LnsGlueError::Start(e.to_string());
    let mut cfg = LnsConfig::from_pem_files(
        bind,
        PUBLIC_HOST,
        &certs.join("cups.crt"),
        &certs.join("cups.key"),
    )
    .and_then(|c| c.with_client_roots_pem(&certs.join("ca.crt")))
    .map_err(|e| err(&e))?;
    if refuse_all {
        cfg.routers = Some(BTreeSet::new());
    }
    LnsServer::start(cfg).map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_pki_is_refused() {
        let bind: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let dir = tempfile::tempdir().expect("tmp");
        let refused = Lns::start(bind, dir.path());
        if Lns::available() {
            assert!(matches!(refused, Err(LnsGlueError::Start(_))));
        } else {
            assert!(matches!(refused, Err(LnsGlueError::Unavailable(_))));
        }
    }
}
