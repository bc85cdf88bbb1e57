//! The simulator against a small CUPS server on loopback (see `common`).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{CupsRequest, CupsResponse, DeviceCa, Golden, TestServer};
use cups_core::Eui64;
use cups_core::crc::crc32;
use cups_core::response::ResponseParts;
use cups_core::sig::UpdateSigner;
use cups_core::station::{CredFile, CredKind, FileId, FileSet};
use gateway_sim::tls::TlsVersions;
use gateway_sim::{CutAnchor, CutFault, CutKind, Fleet, FleetConfig, LinkFaults, RunResult};

/// Real-time budget of one run in these tests.
const BUDGET: Duration = Duration::from_secs(60);
const TC_URI: &str = "wss://localhost:16138";

fn cups_file(f: CredFile) -> FileId {
    FileId::cred(CredKind::Cups, FileSet::Reg, f)
}

/// A handler giving every gateway `cups` + `tc` blobs until it reports their CRCs.
fn full_creds(cups: Vec<u8>, tc: Vec<u8>) -> impl Fn(&CupsRequest) -> CupsResponse {
    move |req| {
        let cups_cred = (req.cups_crc != crc32(&cups)).then_some(&cups[..]);
        let tc_cred = (req.tc_crc != crc32(&tc)).then_some(&tc[..]);
        let tc_uri = (req.tc_uri.as_deref() != Some(TC_URI)).then_some(TC_URI);
        CupsResponse::encode(
            &ResponseParts {
                tc_uri,
                cups_cred,
                tc_cred,
                ..ResponseParts::default()
            },
            &[],
        )
    }
}

#[test]
fn one_gateway_first_contact_stores_the_creds_and_reports_their_crc() {
    let g = Golden::load();
    let (cups, tc) = (g.cups_blob(), g.tc_blob());
    assert_eq!(crc32(&cups), 2_154_168_768, "full.bin's CUPS blob");
    let server = TestServer::start(g.server_tls(&[]), full_creds(cups.clone(), tc.clone()));
    let uri = server.uri();
    let mut fleet = Fleet::new(FleetConfig::new(1, 1, server.addr), |_| g.home(&uri)).unwrap();
    let r = fleet.run_until(|f| f.all_done_at_least(2), BUDGET);
    assert_eq!(r, RunResult::Done, "{}", fleet.report().summary_table());

    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    // First contact: PEM bootstrap files, client cert presented.
    assert_eq!(
        reqs[0].cups_crc,
        crc32(
            &[
                g.ca_pem.clone(),
                g.client_pem.clone(),
                g.client_key_pem.clone()
            ]
            .concat()
        )
    );
    assert_eq!(reqs[0].tc_uri, None);
    assert_eq!(reqs[0].client_cert.as_deref(), Some(&g.client_der[..]));
    assert!(!reqs[0].tls13, "the station speaks TLS 1.2");
    // Second: the stored DER slices, reported as crc32(blob).
    assert_eq!(reqs[1].cups_crc, crc32(&cups));
    assert_eq!(reqs[1].tc_crc, crc32(&tc));
    assert_eq!(reqs[1].tc_uri.as_deref(), Some(TC_URI));
    assert_eq!(reqs[1].client_cert.as_deref(), Some(&g.client_der[..]));

    let gw = fleet.gateway(0).unwrap();
    assert_eq!(
        gw.store().get(cups_file(CredFile::Cert)),
        Some(&g.client_der[..])
    );
    assert_eq!(
        gw.store().get(cups_file(CredFile::Key)),
        Some(&g.client_key_der[..])
    );
    let o = gw.outcome();
    assert_eq!((o.interactions, o.done, o.failed), (2, 2, 0));
    assert_eq!(o.creds_stored, 2);
    assert_eq!(o.tc_restarts, 1);
    assert_eq!(o.history, ["REG ok+cups", "REG ok"]);
    let report = fleet.report();
    println!("{}", report.summary_table());
    assert!(report.summary.bytes_rx > 2000);
}

/// (client certificate, blob) per gateway.
type Minted = HashMap<Eui64, (Vec<u8>, Vec<u8>)>;

/// Per-gateway credentials minted on first contact: the golden CA (the server's trust) ‖ a
/// client certificate from the device CA ‖ its SEC1 key.
struct Minter {
    ca: DeviceCa,
    trust: Vec<u8>,
    blobs: Mutex<Minted>,
}

impl Minter {
    fn new(g: &Golden) -> Arc<Self> {
        Arc::new(Self {
            ca: DeviceCa::new(),
            trust: g.ca_der.clone(),
            blobs: Mutex::new(HashMap::new()),
        })
    }

    /// (client cert, blob) of `eui`, minted once.
    fn creds(&self, eui: Eui64) -> (Vec<u8>, Vec<u8>) {
        let mut blobs = self.blobs.lock().unwrap();
        blobs
            .entry(eui)
            .or_insert_with(|| {
                let (cert, key) = self.ca.mint(eui);
                let blob = common::blob(&self.trust, &cert, &key);
                (cert, blob)
            })
            .clone()
    }

    fn handler(self: &Arc<Self>) -> impl Fn(&CupsRequest) -> CupsResponse + use<> {
        let me = self.clone();
        move |req| {
            let (_, blob) = me.creds(req.router);
            let cups_cred = (req.cups_crc != crc32(&blob)).then_some(&blob[..]);
            CupsResponse::encode(
                &ResponseParts {
                    cups_cred,
                    ..ResponseParts::default()
                },
                &[],
            )
        }
    }
}

/// Every gateway got its own credentials and proved them (second request with the minted
/// client certificate, reporting crc32(blob)).
fn assert_own_creds(fleet: &Fleet, server: &TestServer, minter: &Minter) {
    let reqs = server.requests();
    for gw in fleet.gateways() {
        let eui = gw.id().eui;
        let (cert, blob) = minter.creds(eui);
        let o = gw.outcome();
        assert_eq!(o.cups_cred_crc, crc32(&blob), "gateway {}", gw.id().index);
        let last = reqs.iter().rev().find(|r| r.router == eui).unwrap();
        assert_eq!(last.client_cert.as_deref(), Some(&cert[..]));
        assert_eq!(last.cups_crc, crc32(&blob));
    }
}

fn minted_fleet(n: u32, seed: u64, faults: LinkFaults) -> (Fleet, TestServer, Arc<Minter>) {
    let g = Golden::load();
    let minter = Minter::new(&g);
    let server = TestServer::start(
        g.server_tls(std::slice::from_ref(&minter.ca.cert_der)),
        minter.handler(),
    );
    let uri = server.uri();
    let mut config = FleetConfig::new(n, seed, server.addr);
    config.faults = faults;
    let fleet = Fleet::new(config, |_| g.home(&uri)).unwrap();
    (fleet, server, minter)
}

#[test]
fn hundred_gateways_first_contact_in_one_process() {
    let (mut fleet, server, minter) = minted_fleet(100, 7, LinkFaults::none());
    let t0 = Instant::now();
    let r = fleet.run_until(|f| f.all_done_at_least(2), BUDGET);
    let took = t0.elapsed();
    let report = fleet.report();
    assert_eq!(r, RunResult::Done, "{}", report.summary_table());
    assert_own_creds(&fleet, &server, &minter);
    assert_eq!(report.summary.requests, 200);
    assert_eq!(report.summary.requests_failed, 0);
    assert_eq!(report.uplink.accepted, 200);
    println!("{}", report.summary_table());
    println!(
        "100 gateways first contact (2 interactions each) in {:.3} s: {:.0} gateways/s",
        took.as_secs_f64(),
        100.0 / took.as_secs_f64()
    );
}

#[test]
fn ten_percent_loss_still_completes() {
    let faults = LinkFaults::none().with_loss(0.10);
    let (mut fleet, server, minter) = minted_fleet(20, 11, faults);
    let r = fleet.run_until(|f| f.all_done_at_least(2), BUDGET);
    let report = fleet.report();
    assert_eq!(r, RunResult::Done, "{}", report.summary_table());
    assert_own_creds(&fleet, &server, &minter);
    assert!(report.summary.packets_lost > 0);
    println!("{}", report.summary_table());
}

#[test]
fn latency_jitter_and_bandwidth_cap_still_complete() {
    let faults = LinkFaults::none()
        .with_latency(Duration::from_millis(20), Duration::from_millis(10))
        .with_bandwidth(64 * 1024);
    let (mut fleet, server, minter) = minted_fleet(10, 12, faults);
    let r = fleet.run_until(|f| f.all_done_at_least(2), BUDGET);
    let report = fleet.report();
    assert_eq!(r, RunResult::Done, "{}", report.summary_table());
    assert_own_creds(&fleet, &server, &minter);
    // At least 4 round trips of 40..60 ms per interaction.
    assert!(
        report.summary.latency_p50_ms > 160.0,
        "{}",
        report.summary_table()
    );
}

/// Cut the first connection of every link 300 response bytes in (the response is a
/// ~1.4 KB credential blob), then let the retry succeed.
fn cut_then_retry(kind: CutKind) {
    let faults = LinkFaults::none().with_cut(CutFault::first_connection(kind, 300));
    let (mut fleet, server, minter) = minted_fleet(3, 5, faults);
    let r = fleet.run_until(|f| f.all_done_at_least(2), BUDGET);
    let report = fleet.report();
    assert_eq!(r, RunResult::Done, "{}", report.summary_table());
    assert_own_creds(&fleet, &server, &minter);
    for gw in fleet.gateways() {
        let o = gw.outcome();
        assert_eq!(
            o.history,
            ["REG fail closed", "REG ok+cups", "REG ok"],
            "{kind:?}"
        );
        assert_eq!((o.retries, o.creds_stored), (1, 1));
    }
    assert_eq!(report.summary.cuts, 3);
    assert_eq!(report.summary.failures.get("closed"), Some(&3));
    // Three requests per gateway reached the server (the cut one too).
    assert_eq!(server.requests().len(), 9);
}

#[test]
fn reset_mid_response_fails_the_interaction_then_the_retry_succeeds() {
    cut_then_retry(CutKind::Reset);
}

#[test]
fn truncated_response_fails_the_interaction_then_the_retry_succeeds() {
    cut_then_retry(CutKind::Truncate);
}

fn update_home(g: &Golden, uri: &str, keys: &[&[u8]]) -> cups_core::station::MemStore {
    let mut home = g.home(uri).with(FileId::Version, "1.0.0");
    for (i, k) in keys.iter().enumerate() {
        home.insert(FileId::SigKey(i as u8), k.to_vec());
    }
    home
}

#[test]
fn golden_update_vectors_signed_applied_bad_signature_not() {
    let g = Golden::load();
    // Gateway 0 gets full.bin (creds + update signed by sig-0), gateway 1 badsig.bin,
    // gateway 2 sig1-signed.bin (holds sig-0 and sig-1), then nothing.
    let bodies = [
        common::vector("responses/full.bin"),
        common::vector("responses/badsig.bin"),
        common::vector("responses/sig1-signed.bin"),
    ];
    let first = Eui64::new(0x0016_c001_ff10_0000).unwrap();
    let served = Arc::new(Mutex::new(HashMap::<Eui64, u32>::new()));
    let handler = {
        let served = served.clone();
        move |req: &CupsRequest| {
            let mut s = served.lock().unwrap();
            let n = s.entry(req.router).or_default();
            *n += 1;
            let i = (req.router.as_u64() - first.as_u64()) as usize;
            if *n == 1 {
                CupsResponse::body(bodies[i].clone())
            } else {
                CupsResponse::nochange()
            }
        }
    };
    let server = TestServer::start(g.server_tls(&[]), handler);
    let uri = server.uri();
    let mut fleet = Fleet::new(FleetConfig::new(3, 3, server.addr), |id| match id.index {
        2 => update_home(&g, &uri, &[&g.sig0_key, &g.sig1_key]),
        _ => update_home(&g, &uri, &[&g.sig0_key]),
    })
    .unwrap();
    let r = fleet.run_until(|f| f.all_done_at_least(2), BUDGET);
    assert_eq!(r, RunResult::Done, "{}", fleet.report().summary_table());
    let o: Vec<_> = fleet.gateways().map(|g| g.outcome().clone()).collect();
    // full.bin: verified with sig-0, run, version 2.0.0; its CUPS URI moved the gateway to
    // port 16140, which the uplink relays to the same server (default route).
    assert_eq!((o[0].updates_applied, o[0].updates_rejected), (1, 0));
    assert_eq!(o[0].package.as_deref(), Some("2.0.0"));
    assert_eq!(o[0].cups_cred_crc, 2_154_168_768);
    assert_eq!(o[0].tc_cred_crc, 1_976_249_288);
    // badsig.bin: not verified, deleted, version unchanged.
    assert_eq!((o[1].updates_applied, o[1].updates_rejected), (0, 1));
    assert_eq!(o[1].package.as_deref(), Some("1.0.0"));
    assert!(!fleet.gateway(1).unwrap().store().contains(FileId::Update));
    // sig1-signed.bin: key #0 fails, key #1 verifies.
    assert_eq!((o[2].updates_applied, o[2].updates_rejected), (1, 0));
    assert_eq!(o[2].package.as_deref(), Some("2.0.0"));
    // The next requests report the packages.
    let reqs = server.requests();
    let last = |eui: u64| {
        reqs.iter()
            .rev()
            .find(|r| r.router.as_u64() == eui)
            .unwrap()
            .package
            .clone()
    };
    assert_eq!(last(first.as_u64()).as_deref(), Some("2.0.0"));
    assert_eq!(last(first.as_u64() + 1).as_deref(), Some("1.0.0"));
    assert_eq!(last(first.as_u64() + 2).as_deref(), Some("2.0.0"));
    assert_eq!(
        fleet
            .gateway(0)
            .unwrap()
            .store()
            .get(cups_file(CredFile::Uri)),
        Some(&b"https://localhost:16140"[..])
    );
}

#[test]
fn freshly_signed_update_is_applied_and_a_wrong_key_is_not() {
    let g = Golden::load();
    use rustls_pki_types::pem::PemObject;
    let sig0 = rustls_pki_types::PrivateKeyDer::from_pem_slice(&g.sig0_pem).unwrap();
    let signer = UpdateSigner::from_sec1_der(sig0.secret_der()).unwrap();
    assert_eq!(&signer.public_key().0[..], &g.sig0_key[..]);
    let other = UpdateSigner::from_scalar(&[7; 32]).unwrap();
    let script = b"#!/bin/sh\necho 3.1.4 > version.txt\nrm -f /tmp/update.bin\n".to_vec();
    let good = signer.sign_update(&script);
    let bad = other.sign_update(&script);
    let handler = move |req: &CupsRequest| {
        if req.package.as_deref() != Some("1.0.0") {
            return CupsResponse::nochange();
        }
        // Gateway 0 gets the right signature, gateway 1 one by a key it does not hold.
        let seg = if req.router.as_u64() & 1 == 0 {
            &good
        } else {
            &bad
        };
        CupsResponse::encode(
            &ResponseParts {
                sig: Some(seg.as_sig_ref()),
                update_len: script.len() as u32,
                ..ResponseParts::default()
            },
            &script,
        )
    };
    let server = TestServer::start(g.server_tls(&[]), handler);
    let uri = server.uri();
    let mut fleet = Fleet::new(FleetConfig::new(2, 4, server.addr), |_| {
        update_home(&g, &uri, &[&g.sig0_key])
    })
    .unwrap();
    let r = fleet.run_until(|f| f.count_done_at_least(1) == 2, BUDGET);
    assert_eq!(r, RunResult::Done);
    let a = fleet.gateway(0).unwrap().outcome().clone();
    let b = fleet.gateway(1).unwrap().outcome().clone();
    assert_eq!(
        (a.updates_applied, a.package.as_deref()),
        (1, Some("3.1.4"))
    );
    assert_eq!(
        (b.updates_rejected, b.package.as_deref()),
        (1, Some("1.0.0"))
    );
}

#[test]
fn virtual_time_a_day_of_oksync_takes_well_under_a_second() {
    let g = Golden::load();
    let server = TestServer::start(g.server_tls(&[]), full_creds(g.cups_blob(), g.tc_blob()));
    let uri = server.uri();
    let mut fleet = Fleet::new(FleetConfig::new(1, 1, server.addr), |_| g.home(&uri)).unwrap();
    assert_eq!(
        fleet.run_until(|f| f.all_done_at_least(2), BUDGET),
        RunResult::Done
    );
    // Now on the 24 h OKSYNC cycle: run three simulated days.
    let v0 = fleet.virtual_now();
    let t0 = Instant::now();
    let r = fleet.run_for(Duration::from_secs(3 * 24 * 3600 + 60), BUDGET);
    let real = t0.elapsed();
    assert_eq!(r, RunResult::Done);
    assert!(real < Duration::from_secs(1), "{real:?}");
    assert!(fleet.virtual_now() - v0 >= Duration::from_secs(3 * 24 * 3600));
    let o = fleet.gateway(0).unwrap().outcome().clone();
    assert_eq!(
        o.history,
        ["REG ok+cups", "REG ok", "REG ok", "REG ok", "REG ok"]
    );
    assert_eq!(server.requests().len(), 5);
    println!("3 simulated days in {real:?}");
}

#[test]
fn server_outage_refuses_connections_then_recovery() {
    let g = Golden::load();
    let server = TestServer::start(g.server_tls(&[]), |_: &CupsRequest| {
        CupsResponse::nochange()
    });
    let uri = server.uri();
    let port = server.addr.port();
    let mut fleet = Fleet::new(FleetConfig::new(2, 1, server.addr), |_| g.home(&uri)).unwrap();
    fleet.routes_mut().set(port, None).unwrap();
    // Down: both gateways fail to connect, and keep retrying every minute.
    let r = fleet.run_until(|f| f.gateways().all(|g| g.outcome().failed >= 2), BUDGET);
    assert_eq!(r, RunResult::Done);
    assert!(server.requests().is_empty());
    fleet.routes_mut().clear(port);
    let r = fleet.run_until(|f| f.all_done_at_least(1), BUDGET);
    assert_eq!(r, RunResult::Done);
    for gw in fleet.gateways() {
        let o = gw.outcome();
        assert_eq!(
            &o.history[..3],
            ["REG fail connect", "REG fail connect", "REG ok"]
        );
    }
    assert!(fleet.uplink_stats().refused >= 4);
}

#[test]
fn tls13_and_token_auth() {
    let g = Golden::load();
    let server = TestServer::start(g.server_tls(&[]), |_: &CupsRequest| {
        CupsResponse::nochange()
    });
    let uri = server.uri();
    let mut config = FleetConfig::new(2, 1, server.addr);
    config.tls = TlsVersions::Both;
    let mut fleet = Fleet::new(config, |id| {
        let home = g.home(&uri);
        if id.index == 1 {
            // Token mode: trust + empty cert + header lines in the key file.
            home.with(cups_file(CredFile::Cert), "").with(
                cups_file(CredFile::Key),
                "Authorization: Bearer sim-token\r\n",
            )
        } else {
            home
        }
    })
    .unwrap();
    assert_eq!(
        fleet.run_until(|f| f.all_done_at_least(1), BUDGET),
        RunResult::Done
    );
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|r| r.tls13));
    let token = reqs.iter().find(|r| r.authorization.is_some()).unwrap();
    assert_eq!(token.authorization.as_deref(), Some("Bearer sim-token"));
    assert!(token.client_cert.is_none());
    assert_eq!(
        fleet.report().metrics.iter().map(|m| m.tls13).sum::<u32>(),
        2
    );
}

#[test]
fn rejected_status_falls_back_to_backup_then_bootstrap() {
    let g = Golden::load();
    // The server refuses everything but the bootstrap URI's port.
    let server = TestServer::start(g.server_tls(&[]), |_: &CupsRequest| CupsResponse {
        status: 403,
        body: Vec::new(),
    });
    let boot = TestServer::start(g.server_tls(&[]), |_: &CupsRequest| {
        CupsResponse::nochange()
    });
    let uri = server.uri();
    let boot_uri = boot.uri();
    let mut config = FleetConfig::new(1, 1, server.addr);
    config.faults = LinkFaults::none();
    let mut fleet = Fleet::new(config, |_| {
        let f = |file| FileId::cred(CredKind::Cups, FileSet::Boot, file);
        g.home(&uri)
            .with(f(CredFile::Uri), boot_uri.clone())
            .with(f(CredFile::Trust), g.ca_pem.clone())
            .with(f(CredFile::Cert), g.client_pem.clone())
            .with(f(CredFile::Key), g.client_key_pem.clone())
    })
    .unwrap();
    fleet
        .routes_mut()
        .set(boot.addr.port(), Some(boot.addr))
        .unwrap();
    assert_eq!(
        fleet.run_until(|f| f.all_done_at_least(1), BUDGET),
        RunResult::Done
    );
    let o = fleet.gateway(0).unwrap().outcome().clone();
    // REG rejected → BAK (no backup yet: no URI) → BOOT.
    assert_eq!(o.history[0], "REG fail status-403 -> BAK");
    assert_eq!(o.history[1], "BAK fail no-uri -> BOOT");
    assert_eq!(o.history[2], "BOOT ok");
    // Every set the station tried counts, the connection-less BAK attempt (no URI) included.
    assert_eq!((o.on_backup, o.on_boot), (1, 1));
    assert_eq!(o.interactions, o.done + o.failed, "{o:?}");
    assert_eq!(boot.requests().len(), 1);
}

/// A fleet whose outcome is fully determined by the seed: golden PKI (fixed CRCs), packet
/// loss, latency with jitter, and a 30 % chance per connection of a reset early in the
/// response. (Loss makes TCP wait for retransmission timeouts: it costs real time, not
/// outcome.)
fn deterministic_run(seed: u64) -> String {
    let g = Golden::load();
    let server = TestServer::start(g.server_tls(&[]), full_creds(g.cups_blob(), g.tc_blob()));
    let uri = server.uri();
    let mut config = FleetConfig::new(16, seed, server.addr);
    config.faults = LinkFaults::none()
        .with_loss(0.01)
        .with_latency(Duration::from_millis(1), Duration::from_millis(1))
        .with_cut(CutFault {
            kind: CutKind::Reset,
            probability: 0.3,
            after: 1..=40,
            max_cuts: None,
            anchor: CutAnchor::Mark,
        });
    let mut fleet = Fleet::new(config, |_| g.home(&uri)).unwrap();
    let r = fleet.run_until(|f| f.all_done_at_least(3), BUDGET);
    assert_eq!(r, RunResult::Done, "{}", fleet.report().summary_table());
    fleet.report().outcome_snapshot()
}

#[test]
fn same_seed_same_outcome_snapshot() {
    let a = deterministic_run(42);
    let b = deterministic_run(42);
    assert_eq!(a, b);
    assert!(a.contains("fail closed"), "some connections were cut:\n{a}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/seed42.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
        std::fs::write(path, &a).unwrap();
    }
    let expected =
        std::fs::read_to_string(path).expect("snapshot (run with UPDATE_SNAPSHOTS=1 to write it)");
    assert_eq!(a, expected, "outcome snapshot changed");
}

#[test]
fn the_binary_runs_first_contact() {
    let g = Golden::load();
    let server = TestServer::start(g.server_tls(&[]), full_creds(g.cups_blob(), g.tc_blob()));
    let pki = common::vectors_dir().join("pki");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway-sim"))
        .args(["run", "first-contact", "--server", &server.uri(), "--trust"])
        .arg(pki.join("ca.crt.pem"))
        .arg("--cert")
        .arg(pki.join("cups-0016c001ff10a235.crt.pem"))
        .arg("--key")
        .arg(pki.join("cups-0016c001ff10a235.key.pem"))
        .args(["--gateways", "5", "--json", "--quiet", "--budget", "60"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["done"], 5);
    assert_eq!(report["summary"]["requests"], 10);
    assert_eq!(server.requests().len(), 10);
    // --help works and names the scenario.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_gateway-sim"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("first-contact"));
}

#[test]
fn plain_http_uri_and_same_port_routes() {
    let server = TestServer::start_plain(|_: &CupsRequest| CupsResponse::nochange());
    let uri = format!("http://cups.example:{}", server.addr.port());
    let mut fleet = Fleet::new(FleetConfig::new(2, 1, server.addr), |_| {
        cups_core::station::MemStore::new().with(cups_file(CredFile::Uri), uri.clone())
    })
    .unwrap();
    fleet.set_routes(gateway_sim::net::Routes::same_port("127.0.0.1".parse().unwrap()).unwrap());
    assert_eq!(
        fleet.run_until(|f| f.all_done_at_least(1), BUDGET),
        RunResult::Done
    );
    assert_eq!(server.requests().len(), 2);
    assert!(server.requests().iter().all(|r| r.client_cert.is_none()));
}
