//! The one place `hil` touches the minimal LNS endpoint of `gateway-sim` (router-info and
//! muxs WebSockets, client-certificate or token auth, protocol doc §6).
//!
//! The endpoint presents the CUPS server's own certificate (`certs/cups.crt`, issued by the
//! gateway CA for `localhost`), because the TC trust the server sends to gateways is the
//! gateway CA; it verifies client certificates against that CA too.
//!
//! `gateway_sim::lns` is being written on another branch. Until it is merged this module
//! compiles to a stub whose [`Lns::start`] says so, and every scenario check that needs the
//! LNS is reported as skipped. After the merge, build with `RUSTFLAGS='--cfg hil_lns'` (or
//! drop the `cfg` below): the code under `cfg(hil_lns)` is written against the agreed API
//! (`LnsConfig::new(bind, public_host, cert_chain, key)`, `client_roots`,
//! `LnsServer::start`, `local_addr`, `set_available`, `gateways`, `stop`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

/// Host name the LNS puts into the muxs URI it hands out (the certificate is for it).
pub const PUBLIC_HOST: &str = "localhost";

/// Why the LNS endpoint is not running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LnsGlueError {
    /// This build has no LNS endpoint.
    #[error("no LNS endpoint in this build: {0}")]
    Unavailable(&'static str),
    /// The certificate or key could not be read.
    #[error("LNS certificate {path}: {reason}")]
    Cert {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The endpoint failed to start.
    #[error("LNS endpoint: {0}")]
    Start(String),
}

/// A running LNS endpoint on loopback.
#[derive(Debug)]
pub struct Lns {
    #[cfg(all(feature = "lns", hil_lns))]
    inner: gateway_sim::lns::LnsServer,
    #[cfg(not(all(feature = "lns", hil_lns)))]
    addr: SocketAddr,
}

impl Lns {
    /// Start an endpoint on `bind` (use port 0) with the PKI in `certs`.
    ///
    /// # Errors
    /// [`LnsGlueError`].
    #[cfg(all(feature = "lns", hil_lns))]
    pub fn start(bind: SocketAddr, certs: &Path) -> Result<Self, LnsGlueError> {
        use rustls_pki_types::pem::PemObject as _;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let cert_err = |path: &Path, e: &dyn std::fmt::Display| LnsGlueError::Cert {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let crt = certs.join("cups.crt");
        let key = certs.join("cups.key");
        let ca = certs.join("ca.crt");
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&crt)
            .map_err(|e| cert_err(&crt, &e))?
            .collect::<Result<_, _>>()
            .map_err(|e| cert_err(&crt, &e))?;
        let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| cert_err(&key, &e))?;
        let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&ca)
            .map_err(|e| cert_err(&ca, &e))?
            .collect::<Result<_, _>>()
            .map_err(|e| cert_err(&ca, &e))?;
        let mut cfg = gateway_sim::lns::LnsConfig::new(bind, PUBLIC_HOST.to_owned(), chain, key);
        cfg.client_roots = roots;
        let inner = gateway_sim::lns::LnsServer::start(cfg)
            .map_err(|e| LnsGlueError::Start(e.to_string()))?;
        Ok(Self { inner })
    }

    /// Start an endpoint (stub: this build has none).
    ///
    /// # Errors
    /// Always [`LnsGlueError::Unavailable`].
    #[cfg(not(all(feature = "lns", hil_lns)))]
    pub fn start(bind: SocketAddr, certs: &Path) -> Result<Self, LnsGlueError> {
        let _ = (bind, certs);
        Err(LnsGlueError::Unavailable(
            "gateway_sim::lns is not merged yet (build with --cfg hil_lns once it is)",
        ))
    }

    /// Whether this build can start an endpoint at all.
    #[must_use]
    pub const fn available() -> bool {
        cfg!(all(feature = "lns", hil_lns))
    }

    /// The listening address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        #[cfg(all(feature = "lns", hil_lns))]
        return self.inner.local_addr();
        #[cfg(not(all(feature = "lns", hil_lns)))]
        self.addr
    }

    /// `wss://localhost:PORT`: the TC URI for gateways.
    #[must_use]
    pub fn tc_uri(&self) -> String {
        format!("wss://{PUBLIC_HOST}:{}", self.local_addr().port())
    }

    /// Take the LNS down (`false`: refuse router-info and drop muxs connections) or back up.
    pub fn set_available(&self, up: bool) {
        #[cfg(all(feature = "lns", hil_lns))]
        self.inner.set_available(up);
        #[cfg(not(all(feature = "lns", hil_lns)))]
        let _ = up;
    }

    /// The gateways (16 hex digits) that completed router-info and connected to muxs.
    #[must_use]
    pub fn connected_gateways(&self) -> BTreeSet<String> {
        #[cfg(all(feature = "lns", hil_lns))]
        return self
            .inner
            .gateways()
            .keys()
            .map(|eui| eui.canonical().to_string())
            .collect();
        #[cfg(not(all(feature = "lns", hil_lns)))]
        BTreeSet::new()
    }

    /// Stop the endpoint.
    pub fn stop(self) {
        #[cfg(all(feature = "lns", hil_lns))]
        self.inner.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stub_or_real_says_what_it_is() {
        let bind: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let dir = tempfile::tempdir().expect("tmp");
        match Lns::start(bind, dir.path()) {
            Err(LnsGlueError::Unavailable(why)) => {
                assert!(!Lns::available());
                assert!(why.contains("gateway_sim::lns"));
            }
            // A real endpoint needs a PKI: an empty directory is refused.
            Err(LnsGlueError::Cert { .. } | LnsGlueError::Start(_)) => assert!(Lns::available()),
            Ok(_) => panic!("started without certificates"),
        }
    }
}
