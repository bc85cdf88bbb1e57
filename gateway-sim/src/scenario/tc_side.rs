//! The LNS side of scenarios: two [`LnsServer`]s on loopback (the TC URI the server sends, and
//! the one the migration moves gateways to), with the server's identity (its certificate
//! chain, which stations check against `tc.trust` = the gateway CA) and the gateway CA as the
//! client root (client-certificate TC mode).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use cups_core::Eui64;
use cups_host_server::model::{TokenEntry, TokenUsage};
use cups_host_server::pki::{Pki, token_sha256_hex};
use cups_host_server::store::{Store, keys};
use rustls_pki_types::CertificateDer;

use crate::lns::{LnsConfig, LnsError, LnsGatewayStats, LnsServer, TokenCheck};
use crate::net::{NotLoopback, Routes};

/// The host name in the LNS's muxs URIs (the server certificate names `localhost`).
pub const LNS_PUBLIC_HOST: &str = "localhost";

/// Why the LNS side could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TcSideError {
    /// An LNS.
    #[error("LNS: {0}")]
    Lns(#[from] LnsError),
    /// A route.
    #[error(transparent)]
    NotLoopback(#[from] NotLoopback),
    /// The runtime the token check reads the store on.
    #[error("token check runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// The token of an `Authorization: Bearer <token>` header value (scheme case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// An LNS token check backed by the CUPS server's token index: the bearer token's SHA-256
/// names `tokens/<hash>.json`, which must be a TC token; its gateway is the answer. This is
/// how an LNS accepts exactly the TC tokens the server issued (and no CUPS token).
///
/// # Errors
/// [`TcSideError::Runtime`] when the runtime for the store reads cannot start.
pub fn store_token_check(store: Arc<dyn Store>) -> Result<TokenCheck, TcSideError> {
    // Its own runtime: the LNS threads block on it, whatever the admin's runtime is.
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("lns-token-check")
            .enable_all()
            .build()
            .map_err(TcSideError::Runtime)?,
    );
    Ok(Arc::new(move |authorization: &str| {
        let token = bearer(authorization)?;
        let key = keys::token(&token_sha256_hex(token));
        let obj = rt.block_on(store.get(&key)).ok()??;
        let entry: TokenEntry = serde_json::from_slice(&obj.bytes).ok()?;
        (entry.usage == TokenUsage::Tc).then_some(entry.eui)
    }))
}

/// One LNS and the virtual TC port routed to it.
#[derive(Debug)]
struct Endpoint {
    lns: LnsServer,
    /// The port of the TC URI gateways are given.
    tc_port: u16,
}

/// The LNS servers of a scenario run.
#[derive(Debug)]
pub struct TcSide {
    endpoints: Vec<Endpoint>,
    /// Index of the endpoint gateways use now.
    current: usize,
}

impl TcSide {
    /// One LNS per TC port (`tc_ports[0]`: the server's TC URI; more: migration targets),
    /// accepting client certificates of the gateway CA and, with `token_check`, TC tokens.
    ///
    /// # Errors
    /// A [`TcSideError`].
    pub fn start(
        pki: &Pki,
        tc_ports: &[u16],
        token_check: Option<TokenCheck>,
    ) -> Result<Self, TcSideError> {
        let mut endpoints = Vec::with_capacity(tc_ports.len());
        for &tc_port in tc_ports {
            let mut cfg = LnsConfig::new(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                LNS_PUBLIC_HOST,
                pki.server_cert_chain(),
                pki.server_key(),
            );
            cfg.client_roots = vec![CertificateDer::from(pki.ca_cert_der().to_vec())];
            cfg.token_check.clone_from(&token_check);
            endpoints.push(Endpoint {
                lns: LnsServer::start(cfg)?,
                tc_port,
            });
        }
        Ok(Self {
            endpoints,
            current: 0,
        })
    }

    /// Route each TC port and each LNS's own (muxs) port to it.
    ///
    /// # Errors
    /// [`NotLoopback`] (never: the LNS binds loopback).
    pub fn add_routes(&self, routes: &mut Routes) -> Result<(), NotLoopback> {
        for e in &self.endpoints {
            let addr = e.lns.local_addr();
            routes.set(e.tc_port, Some(addr))?;
            routes.set(addr.port(), Some(addr))?;
        }
        Ok(())
    }

    /// Gateways moved to endpoint `index` (the migration).
    pub fn switch_to(&mut self, index: usize) {
        if index < self.endpoints.len() {
            self.current = index;
        }
    }

    /// The endpoint gateways use now.
    #[must_use]
    pub fn current(&self) -> usize {
        self.current
    }

    /// Take the current LNS down or bring it back.
    pub fn set_available(&self, up: bool) {
        if let Some(e) = self.endpoints.get(self.current) {
            e.lns.set_available(up);
        }
    }

    /// Have the current LNS refuse every router (`router-info` answered with an error) or
    /// accept them again.
    pub fn set_refusing(&self, refuse: bool) {
        if let Some(e) = self.endpoints.get(self.current) {
            e.lns.set_refusing(refuse);
        }
    }

    /// What LNS `index` saw.
    #[must_use]
    pub fn gateways(&self, index: usize) -> BTreeMap<Eui64, LnsGatewayStats> {
        self.endpoints
            .get(index)
            .map(|e| e.lns.gateways())
            .unwrap_or_default()
    }

    /// Where LNS `index` listens.
    #[must_use]
    pub fn addr(&self, index: usize) -> Option<SocketAddr> {
        self.endpoints.get(index).map(|e| e.lns.local_addr())
    }
}
