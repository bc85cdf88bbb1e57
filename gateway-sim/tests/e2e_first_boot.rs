//! End to end: the real `cups-host-server` (in-process, filesystem store, the PKI of
//! `pki::init` plus a factory CA as `bootstrap-ca.crt`) and 50 simulated gateways that hold
//! ONLY bootstrap credentials (`cups-boot.*`, factory certificate per EUI). Each station starts
//! on its regular set, finds no URI there, rotates REG → BAK → BOOT (as the real station does on
//! `CUPS_ERR_NOURI`), gets its own CUPS and TC credentials from the server, and proves them with
//! a second interaction on the regular set. TC is out of scope: `TC_URI` points at nothing and
//! TC restarts are only counted.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cups_core::Eui64;
use cups_core::crc::{crc32, cred_set_crc};
use cups_core::station::{CredFile, CredKind, FileId, FileSet, MemStore};
use cups_host_server::pki::{ClientUsage, InitOptions, Pki, PkiPaths, init};
use cups_host_server::serve::{ServeConfig, Server, server_config_from_pki};
use cups_host_server::service::{GatewaySpec, Service, ServiceSettings};
use cups_host_server::store::fs::FsStore;
use gateway_sim::{Fleet, FleetConfig, GatewayStatus, Report, RunResult};
use tokio::sync::oneshot;

/// Gateways in the fleet.
const GATEWAYS: u32 = 50;
/// First EUI of the fleet.
const FIRST_EUI: u64 = 0x0016_c001_ffe2_0000;
/// Real-time budget of the run.
const BUDGET: Duration = Duration::from_secs(60);
/// Nothing listens there: TC is out of scope here.
const TC_URI: &str = "wss://localhost:6887";
/// The fleet seed.
const SEED: u64 = 42;

/// The factory CA (PEM for `bootstrap-ca.crt`) issuing per-EUI factory certificates.
struct FactoryCa {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl FactoryCa {
    fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "gateway-sim e2e factory CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// Factory certificate (DER, CN = 16-hex EUI, clientAuth) and its SEC1 key.
    fn mint(&self, eui: Eui64) -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, eui.canonical().to_string());
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (
            cert.der().to_vec(),
            common::pkcs8_to_sec1(&key.serialize_der()),
        )
    }
}

/// The real server running on its own tokio runtime thread.
struct RealServer {
    rt: tokio::runtime::Runtime,
    service: Arc<Service>,
    pki: Arc<Pki>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl RealServer {
    fn start(euis: &[Eui64], factory: &FactoryCa) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let paths = PkiPaths::new(dir.path().join("certs"));
        init(&paths, &InitOptions::default()).expect("pki init");
        std::fs::write(paths.bootstrap_ca(), &factory.pem).expect("bootstrap CA");
        let pki = Arc::new(Pki::load(&paths).expect("pki load"));
        let store = Arc::new(FsStore::open(dir.path().join("store")).expect("fs store"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let tls = server_config_from_pki(&pki).expect("server config");
        // The CUPS URI names the server's own port, so reserve one first (the station sends
        // the URI it used, the server compares it with its configured one).
        for attempt in 0.. {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let settings = ServiceSettings {
                cups_uri: Some(format!("https://localhost:{port}")),
                tc_uri: Some(TC_URI.into()),
                ..ServiceSettings::default()
            };
            let service =
                Arc::new(Service::new(store.clone(), Arc::clone(&pki), settings).expect("service"));
            let config = ServeConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], port)),
                admin_listen: None,
                ..ServeConfig::default()
            };
            let bound = rt.block_on(Server::bind(config, Some(tls.clone()), service.clone()));
            let server = match bound {
                Ok(s) => s,
                Err(e) if attempt < 5 => {
                    eprintln!("port {port} taken ({e}), retrying");
                    continue;
                }
                Err(e) => panic!("bind: {e}"),
            };
            let addr = server.local_addr();
            let now = time::OffsetDateTime::now_utc();
            rt.block_on(async {
                for &eui in euis {
                    service
                        .register_gateway(GatewaySpec::new(eui), now)
                        .await
                        .expect("register");
                }
            });
            let (tx, rx) = oneshot::channel::<()>();
            rt.spawn(server.run(async move {
                let _ = rx.await;
            }));
            return Self {
                rt,
                service,
                pki,
                addr,
                stop: Some(tx),
                _dir: dir,
            };
        }
        unreachable!()
    }

    fn cups_uri(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn cred(kind: CredKind, set: FileSet, file: CredFile) -> FileId {
    FileId::cred(kind, set, file)
}

/// A station home with only the bootstrap CUPS set (+ version and `sig-0.key`).
fn boot_home(server: &RealServer, factory: &FactoryCa, eui: Eui64) -> MemStore {
    let (cert, key) = factory.mint(eui);
    let boot = |f| cred(CredKind::Cups, FileSet::Boot, f);
    MemStore::new()
        .with(boot(CredFile::Uri), server.cups_uri())
        .with(
            boot(CredFile::Trust),
            server.pki.trust_der(ClientUsage::Cups).to_vec(),
        )
        .with(boot(CredFile::Cert), cert)
        .with(boot(CredFile::Key), key)
        .with(FileId::Version, "1.0.0")
        .with(FileId::SigKey(0), server.pki.sig_keys()[0].0.to_vec())
}

fn euis() -> Vec<Eui64> {
    (0..u64::from(GATEWAYS))
        .map(|i| Eui64::new(FIRST_EUI + i).unwrap())
        .collect()
}

/// One full first-boot run: returns the report after every assertion held.
fn first_boot(seed: u64) -> Report {
    let factory = FactoryCa::new();
    let euis = euis();
    let server = RealServer::start(&euis, &factory);
    let mut config = FleetConfig::new(GATEWAYS, seed, server.addr);
    config.first_eui = euis[0];
    let mut fleet = Fleet::new(config, |id| boot_home(&server, &factory, id.eui)).unwrap();

    let t0 = Instant::now();
    let r = fleet.run_until(|f| f.all_done_at_least(2), BUDGET);
    let took = t0.elapsed();
    let report = fleet.report();
    assert_eq!(r, RunResult::Done, "{}", report.summary_table());
    println!("{}", report.summary_table());
    println!(
        "{GATEWAYS} gateways first boot (REG/BAK without URI → BOOT → own creds) against the real server in {:.3} s",
        took.as_secs_f64()
    );

    assert_eq!(report.summary.failed, 0, "{}", report.summary_table());
    assert_eq!(report.summary.done, GATEWAYS);
    for gw in fleet.gateways() {
        let eui = gw.id().eui;
        let store = gw.store();
        let o = gw.outcome();
        assert_eq!(o.status, GatewayStatus::Done, "{eui}: {:?}", o.history);
        let set_crc = |kind| {
            let get = |f| store.get(cred(kind, FileSet::Reg, f)).unwrap_or(&[]);
            cred_set_crc(
                get(CredFile::Trust),
                get(CredFile::Cert),
                get(CredFile::Key),
            )
        };
        let record = server
            .rt
            .block_on(server.service.get_gateway(eui))
            .expect("record");
        let cups = record.cups_cred.as_ref().expect("CUPS credentials issued");
        let tc = record.tc_cred.as_ref().expect("TC credentials issued");
        assert_eq!(crc32(&cups.current.blob), cups.current.crc);
        assert_eq!(crc32(&tc.current.blob), tc.current.crc);
        assert_eq!(set_crc(CredKind::Cups), cups.current.crc, "{eui} CUPS");
        assert_eq!(set_crc(CredKind::Tc), tc.current.crc, "{eui} TC");
        assert_eq!(o.cups_cred_crc, cups.current.crc, "{eui}");
        assert_eq!(o.tc_cred_crc, tc.current.crc, "{eui}");
        assert_eq!(o.tc_uri.as_deref(), Some(TC_URI), "{eui}");
        assert!(
            record.own_creds_used_at.is_some(),
            "{eui}: bootstrap not closed"
        );
        assert!(
            cups.current.confirmed_at.is_some(),
            "{eui}: CUPS rotation not confirmed"
        );
        assert!(
            tc.current.confirmed_at.is_some(),
            "{eui}: TC rotation not confirmed"
        );
        // The server sent the CUPS URI (the station reports its regular set's, here none).
        assert_eq!(
            store.get(cred(CredKind::Cups, FileSet::Reg, CredFile::Uri)),
            Some(server.cups_uri().as_bytes()),
            "{eui}"
        );
        assert_eq!(o.credset, "REG", "{eui}: {:?}", o.history);
        assert_eq!(
            o.history,
            [
                "REG fail no-uri -> BAK",
                "BAK fail no-uri -> BOOT",
                "BOOT ok+cups",
                "REG ok"
            ],
            "{eui}"
        );
        assert_eq!(
            (o.on_boot, o.creds_stored, o.tc_restarts),
            (1, 2, 1),
            "{eui}"
        );
    }
    report
}

/// The outcome snapshot without the credential CRCs (fresh keys every run).
fn snapshot_without_crcs(report: &Report) -> String {
    report
        .outcome_snapshot()
        .lines()
        .map(|l| {
            l.split(' ')
                .filter(|w| !w.starts_with("cups=") && !w.starts_with("tcc="))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn fifty_gateways_first_boot_against_the_real_server() {
    let first = first_boot(SEED);
    // Same seed, fresh server and PKI: the same per-gateway outcome (credential CRCs aside,
    // as every run mints new keys).
    let second = first_boot(SEED);
    assert_eq!(
        snapshot_without_crcs(&first),
        snapshot_without_crcs(&second)
    );
}
