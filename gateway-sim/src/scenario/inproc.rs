//! [`InProcessAdmin`]: the real cups-host-server as a library — `Service` on a temporary
//! `FsStore`, a fresh dev PKI (`pki::init`) with the factory CA as `bootstrap-ca.crt`, and
//! `serve::Server` on loopback, on its own tokio runtime. Used by `gateway-sim demo`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cups_core::Eui64;
use cups_host_server::pki::{ClientUsage, InitOptions, Pki, PkiPaths, init};
use cups_host_server::serve::{ServeConfig, Server, server_config_from_pki};
use cups_host_server::service::{
    FirmwareSource, FirmwareSpec, GatewaySpec, RenewSlots, Service, ServiceSettings, UriChange,
    UriUpdate,
};
use cups_host_server::store::Store;
use cups_host_server::store::fs::FsStore;
use tokio::sync::oneshot;

use super::admin::{
    Admin, AdminError, FirmwareImage, OutageMode, ServerGateway, store_corrupt_image,
};
use crate::factory::FactoryCa;

/// The CUPS URI gateways are given (the simulator routes its port to the server).
pub const INPROC_CUPS_URI: &str = "https://localhost:16050";
/// The TC URI gateways are given (the simulator routes its port to its LNS).
pub const INPROC_TC_URI: &str = "wss://localhost:6887";

/// The server running.
struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// The real server in this process.
pub struct InProcessAdmin {
    rt: tokio::runtime::Runtime,
    service: Arc<Service>,
    store: Arc<dyn Store>,
    pki: Arc<Pki>,
    tls: Arc<rustls::ServerConfig>,
    addr: SocketAddr,
    running: Option<Running>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for InProcessAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessAdmin")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn svc(e: impl std::fmt::Display) -> AdminError {
    AdminError::Service(e.to_string())
}

impl InProcessAdmin {
    /// A fresh server: temporary directory (PKI + store), `tc_uri` as the default TC URI,
    /// listening on an ephemeral loopback port.
    ///
    /// # Errors
    /// An [`AdminError`].
    pub fn start(factory: &FactoryCa, tc_uri: Option<String>) -> Result<Self, AdminError> {
        let dir = tempfile::tempdir().map_err(|source| AdminError::Io {
            what: "temporary directory".into(),
            source,
        })?;
        let paths = PkiPaths::new(dir.path().join("certs"));
        init(&paths, &InitOptions::default()).map_err(svc)?;
        std::fs::write(paths.bootstrap_ca(), factory.cert_pem()).map_err(|source| {
            AdminError::Io {
                what: "bootstrap-ca.crt".into(),
                source,
            }
        })?;
        let pki = Arc::new(Pki::load(&paths).map_err(svc)?);
        let store: Arc<dyn Store> =
            Arc::new(FsStore::open(dir.path().join("store")).map_err(AdminError::Store)?);
        let settings = ServiceSettings {
            cups_uri: Some(INPROC_CUPS_URI.into()),
            tc_uri,
            firmware_cache_ttl: Duration::ZERO,
            ..ServiceSettings::default()
        };
        let service =
            Arc::new(Service::new(Arc::clone(&store), Arc::clone(&pki), settings).map_err(svc)?);
        let tls = server_config_from_pki(&pki).map_err(svc)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|source| AdminError::Io {
                what: "tokio runtime".into(),
                source,
            })?;
        let mut admin = Self {
            rt,
            service,
            store,
            pki,
            tls,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            running: None,
            _dir: dir,
        };
        admin.start_server()?;
        Ok(admin)
    }
}

impl Admin for InProcessAdmin {
    fn describe(&self) -> String {
        format!(
            "in-process cups-host-server on {} (temporary FsStore)",
            self.addr
        )
    }

    fn server_addr(&self) -> SocketAddr {
        self.addr
    }

    fn cups_uri(&self) -> String {
        INPROC_CUPS_URI.into()
    }

    fn tc_uri(&self) -> Option<String> {
        self.service.settings().tc_uri.clone()
    }

    fn pki(&self) -> &Pki {
        &self.pki
    }

    fn store(&self) -> Arc<dyn Store> {
        Arc::clone(self.service.store())
    }

    fn cups_trust(&self) -> Vec<u8> {
        self.pki.trust_der(ClientUsage::Cups).to_vec()
    }

    fn sig_keys(&self) -> Vec<Vec<u8>> {
        self.pki.sig_keys().iter().map(|k| k.0.to_vec()).collect()
    }

    fn register(&mut self, first: Eui64, count: u32, tc_token: bool) -> Result<(), AdminError> {
        let now = time::OffsetDateTime::now_utc();
        self.rt.block_on(async {
            for i in 0..u64::from(count) {
                let eui = first
                    .as_u64()
                    .checked_add(i)
                    .and_then(|e| Eui64::new(e).ok())
                    .ok_or(AdminError::Unsupported("EUI out of range"))?;
                self.service
                    .register_gateway(spec(eui, tc_token), now)
                    .await
                    .map_err(svc)?;
            }
            Ok(())
        })
    }

    fn gateways(&mut self, euis: &[Eui64]) -> Result<BTreeMap<Eui64, ServerGateway>, AdminError> {
        self.rt.block_on(async {
            let mut out = BTreeMap::new();
            for &eui in euis {
                if let Ok(r) = self.service.get_gateway(eui).await {
                    out.insert(eui, ServerGateway::from_record(&r));
                }
            }
            Ok(out)
        })
    }

    fn set_uris(
        &mut self,
        euis: &[Eui64],
        cups_uri: Option<&str>,
        tc_uri: Option<&str>,
    ) -> Result<(), AdminError> {
        // What `cups-server gateway set` does.
        let change = |u: Option<&str>| u.map_or(UriChange::Keep, |u| UriChange::Set(u.to_owned()));
        let update = UriUpdate {
            cups_uri: change(cups_uri),
            tc_uri: change(tc_uri),
        };
        self.rt.block_on(async {
            for &eui in euis {
                self.service
                    .update_gateway_uris(eui, &update)
                    .await
                    .map_err(svc)?;
            }
            Ok(())
        })
    }

    fn renew(&mut self, euis: &[Eui64], cups: bool, tc: bool) -> Result<(), AdminError> {
        // What `cups-server gateway renew` does.
        self.rt.block_on(async {
            for &eui in euis {
                self.service
                    .request_renewal(eui, RenewSlots { cups, tc })
                    .await
                    .map_err(svc)?;
            }
            Ok(())
        })
    }

    fn add_firmware(&mut self, image: &FirmwareImage) -> Result<String, AdminError> {
        let spec = FirmwareSpec {
            id: None,
            model: image.model.clone(),
            version: image.version.clone(),
            from_versions: image.from.clone(),
        };
        let meta = self
            .rt
            .block_on(self.service.add_firmware(
                spec,
                FirmwareSource::Bytes(Bytes::from(image.bytes.clone())),
                time::OffsetDateTime::now_utc(),
            ))
            .map_err(svc)?;
        Ok(meta.id)
    }

    fn corrupt_firmware(&mut self, id: &str) -> Result<(), AdminError> {
        self.rt.block_on(store_corrupt_image(&self.store, id))
    }

    fn remove_firmware(&mut self, id: &str) -> Result<(), AdminError> {
        self.rt
            .block_on(self.service.remove_firmware(id))
            .map_err(svc)
    }

    fn catalogue_delay(&self) -> Duration {
        Duration::ZERO
    }

    fn outage_mode(&self) -> OutageMode {
        OutageMode::StopServer
    }

    fn stop_server(&mut self) -> Result<(), AdminError> {
        if let Some(r) = self.running.take() {
            let _ = r.stop.send(());
            let _ = self.rt.block_on(r.task);
        }
        Ok(())
    }

    fn start_server(&mut self) -> Result<SocketAddr, AdminError> {
        if self.running.is_some() {
            return Ok(self.addr);
        }
        let config = |listen| ServeConfig {
            listen,
            admin_listen: None,
            ..ServeConfig::default()
        };
        // The same port as before when there was one (else, or when it is taken, any).
        let server = match self.rt.block_on(Server::bind(
            config(self.addr),
            Some(Arc::clone(&self.tls)),
            Arc::clone(&self.service),
        )) {
            Ok(s) => s,
            Err(_) => self
                .rt
                .block_on(Server::bind(
                    config(SocketAddr::from(([127, 0, 0, 1], 0))),
                    Some(Arc::clone(&self.tls)),
                    Arc::clone(&self.service),
                ))
                .map_err(svc)?,
        };
        self.addr = server.local_addr();
        let (stop, rx) = oneshot::channel::<()>();
        let task = self.rt.spawn(async move {
            if let Err(e) = server
                .run(async move {
                    let _ = rx.await;
                })
                .await
            {
                tracing::warn!("in-process server: {e}");
            }
        });
        self.running = Some(Running { stop, task });
        Ok(self.addr)
    }
}

impl Drop for InProcessAdmin {
    fn drop(&mut self) {
        let _ = self.stop_server();
    }
}

/// A registration with client certificates, or a TC token.
fn spec(eui: Eui64, tc_token: bool) -> GatewaySpec {
    let mut spec = GatewaySpec::new(eui);
    if tc_token {
        spec.tc_mode = cups_host_server::model::TcMode::Token;
    }
    spec
}
