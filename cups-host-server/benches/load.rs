//! Load benchmarks of the whole server (issue 3 targets), the server in a child process so its
//! CPU time and memory are its own:
//!
//! 1. **Storm** — `LOAD_GATEWAYS` (10 000) registered gateways that already hold (and have
//!    confirmed) their own credentials — the reconnect storm after an LNS outage — each make
//!    ONE `POST /update-info` over a new connection with a full TLS handshake (no resumption)
//!    with its own client certificate, `LOAD_CONCURRENCY` (64) at a time. Every response must
//!    be 200 and decode to the 14-byte "nothing to do". Reports total time, requests/s,
//!    errors, p50/p95/p99 latency, server CPU per request.
//! 2. **Update fan-out** — a `LOAD_IMAGE_MIB` (16) MiB image for `LOAD_FANOUT_GATEWAYS` (100)
//!    gateways whose requests qualify (model matches, `package` differs, a signing key's CRC in
//!    `keys`), all downloading at once. Each client checks the length, the SHA-512 and the
//!    signature (cups-core's verifier with the PKI's signing keys). Reports the server's peak
//!    RSS (VmHWM, and the highest VmRSS sampled during the downloads; target < 128 MiB) and
//!    the throughput.
//!
//! Setup (PKI, registration, minting, confirmation, firmware upload) runs in this process
//! against a filesystem store in a temporary directory and is not timed. The server child is
//! this binary re-executed with `--serve <dir>`: it loads `<dir>/certs` and `<dir>/data`,
//! serves TLS on 127.0.0.1:0, prints `LISTEN <addr>`, and exits when its stdin closes.
//!
//! ```text
//! cargo bench -p cups-host-server --bench load
//! LOAD_ONLY=storm|fanout  LOAD_GATEWAYS=10000  LOAD_CONCURRENCY=64  LOAD_TLS=1.2|1.3
//! LOAD_FANOUT_GATEWAYS=100  LOAD_IMAGE_MIB=16  LOAD_STORM_CONFIRMED=1 (0: the storm's
//! requests are the gateways' first with their own credentials, each confirms them: a write)
//! ```
//!
//! Measured 2026-11-26 on the 2-core development VM (client pool and server child share the
//! two cores, so requests/s is a floor for the server; its own CPU time is reported apart):
//!
//! | run | result |
//! |---|---|
//! | storm, defaults (10 000 gw, 64 clients, TLS 1.2, confirmed) | 0 errors, 6.5 s, 1 529 req/s, p50 39.5 / p95 66.9 / p99 78.0 ms, server 529 µs CPU/req, peak RSS 46 MiB |
//! | storm, `LOAD_TLS=1.3` | 0 errors, 1 158 req/s, p50 54.0 / p99 98.5 ms, 541 µs CPU/req |
//! | storm, `LOAD_CONCURRENCY=128` | 0 errors, 1 444 req/s, p50 86.8 / p99 160.0 ms |
//! | storm, `LOAD_STORM_CONFIRMED=0` (each request confirms: one write) | 0 errors, 1 097 req/s, p50 56.0 / p99 108.9 ms, 930 µs CPU/req |
//! | fan-out, defaults (16 MiB × 100 at once) | 100/100 verified, 4.8 s, 332 MiB/s, server peak RSS (VmHWM) 28.6 MiB (target < 128 MiB: met) |

#[path = "load_support/mod.rs"]
mod load_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cups_core::response::NO_CHANGE;
use cups_core::sig::{RustCryptoVerifier, verify_with_keys};
use cups_host_server::pki::{InitOptions, Pki, PkiPaths, init};
use cups_host_server::serve::{ServeConfig, Server, server_config_from_pki};
use cups_host_server::service::{
    FirmwareSource, FirmwareSpec, GatewaySpec, IncomingRequest, Outcome, PeerIdentity, Service,
    ServiceSettings,
};
use cups_host_server::store::fs::FsStore;
use futures_util::StreamExt as _;
use load_support::*;

/// Issue target: peak server RSS during the fan-out.
const RSS_TARGET_MIB: f64 = 128.0;
/// Concurrent setup operations (registration, minting, confirmation).
const SETUP_CONCURRENCY: usize = 32;
/// How often the server's VmRSS is sampled during the fan-out.
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// Version of the update image.
const NEW_PACKAGE: &str = "2.0.0";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn settings() -> ServiceSettings {
    ServiceSettings {
        cups_uri: Some(CUPS_URI.into()),
        tc_uri: Some(TC_URI.into()),
        ..ServiceSettings::default()
    }
}

const TLS12_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
const TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// `LOAD_TLS`: 1.2 (default: what stations speak) or 1.3.
fn tls_versions() -> &'static [&'static rustls::SupportedProtocolVersion] {
    match std::env::var("LOAD_TLS").as_deref() {
        Ok("1.3") => TLS13_ONLY,
        _ => TLS12_ONLY,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        let dir = PathBuf::from(args.get(i + 1).expect("--serve <dir>"));
        serve_child(&dir);
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let only = std::env::var("LOAD_ONLY").unwrap_or_default();
    rt.block_on(async {
        if only.is_empty() || only == "storm" {
            storm().await;
        }
        if only.is_empty() || only == "fanout" {
            fanout().await;
        }
    });
}

// ------------------------------------------------------------------------------------------
// The server child
// ------------------------------------------------------------------------------------------

fn serve_child(dir: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let pki = Arc::new(Pki::load(&PkiPaths::new(dir.join("certs"))).expect("PKI"));
        let store = Arc::new(FsStore::open(dir.join("data")).expect("store"));
        let tls = server_config_from_pki(&pki).expect("TLS config");
        let service = Arc::new(Service::new(store, pki, settings()).expect("service"));
        let config = ServeConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            admin_listen: None,
            ..ServeConfig::default()
        };
        let server = Server::bind(config, Some(tls), service)
            .await
            .expect("bind");
        println!("{LISTEN_PREFIX}{}", server.local_addr());
        server.run(stdin_closed()).await.expect("serve");
    });
}

fn spawn_server(dir: &Path) -> ServerChild {
    let mut cmd = Command::new(std::env::current_exe().expect("own executable"));
    cmd.arg("--serve").arg(dir);
    ServerChild::spawn(cmd, Duration::from_secs(30))
}

// ------------------------------------------------------------------------------------------
// Setup
// ------------------------------------------------------------------------------------------

/// A fleet registered in `dir` (PKI in `certs/`, store in `data/`).
struct Fleet {
    pki: Arc<Pki>,
    service: Arc<Service>,
    gateways: Vec<Gateway>,
}

/// Register `n` gateways, mint their credentials, and (if `confirm`) make one in-process
/// request per gateway with its own credentials so that they are confirmed.
async fn provision(dir: &Path, n: usize, confirm: bool) -> Fleet {
    let paths = PkiPaths::new(dir.join("certs"));
    init(&paths, &InitOptions::default()).expect("PKI init");
    let pki = Arc::new(Pki::load(&paths).expect("PKI load"));
    let store = Arc::new(FsStore::open(dir.join("data")).expect("store"));
    let service = Arc::new(Service::new(store, Arc::clone(&pki), settings()).expect("service"));
    let keys = pki.key_crcs();
    let t0 = Instant::now();
    let gateways: Vec<Gateway> = futures_util::stream::iter(0..n)
        .map(|i| {
            let service = Arc::clone(&service);
            let keys = keys.clone();
            async move {
                let now = time::OffsetDateTime::now_utc();
                let eui = fleet_eui(i);
                service
                    .register_gateway(GatewaySpec::new(eui), now)
                    .await
                    .expect("register");
                let record = service
                    .issue_credentials(eui, now)
                    .await
                    .expect("issue credentials");
                let cups = record.cups_cred.expect("CUPS credentials").current.blob;
                let tc = record.tc_cred.expect("TC credentials").current.blob;
                let gw = Gateway::from_blobs(eui, cups, &tc);
                if confirm {
                    let req = IncomingRequest {
                        peer: PeerIdentity::ClientCert {
                            leaf_der: gw.leaf_der(),
                        },
                        authorization: None,
                        body: Bytes::from(gw.request_body(PACKAGE, &keys)),
                    };
                    match service.update_info(req, now).await {
                        Outcome::Respond { head, update, .. }
                            if head[..] == NO_CHANGE && update.is_none() => {}
                        other => panic!("confirmation of {eui} answered {other:?}"),
                    }
                }
                gw
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect()
        .await;
    println!(
        "setup: {n} gateways registered, minted{} in {:.1} s",
        if confirm { ", confirmed" } else { "" },
        t0.elapsed().as_secs_f64()
    );
    Fleet {
        pki,
        service,
        gateways,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ------------------------------------------------------------------------------------------
// 1. Storm
// ------------------------------------------------------------------------------------------

async fn storm() {
    let n = env_usize("LOAD_GATEWAYS", 10_000);
    let concurrency = env_usize("LOAD_CONCURRENCY", 64).max(1);
    let confirmed = env_usize("LOAD_STORM_CONFIRMED", 1) != 0;
    let versions = tls_versions();
    let dir = tempfile::tempdir().expect("tempdir");
    let fleet = provision(dir.path(), n, confirmed).await;
    let keys = fleet.pki.key_crcs();
    drop(fleet.service);
    // Per gateway: its client configuration and request, prepared before the clock starts.
    let work: Arc<Vec<(Arc<rustls::ClientConfig>, Vec<u8>)>> = Arc::new(
        fleet
            .gateways
            .iter()
            .map(|g| {
                (
                    g.client_config(versions),
                    station_request(&g.request_body(PACKAGE, &keys)),
                )
            })
            .collect(),
    );
    let server = spawn_server(dir.path());
    let addr = server.addr;
    let cpu0 = proc_cpu(server.pid()).unwrap_or_default();
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let work = Arc::clone(&work);
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors: Vec<String> = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((cfg, req)) = work.get(i) else { break };
                    let start = Instant::now();
                    let mut check = BodyCheck::default();
                    let res = exchange(addr, Arc::clone(cfg), req, |b| check.feed(b)).await;
                    let elapsed = start.elapsed();
                    let verdict = res.and_then(|head| {
                        let body = check.finish()?;
                        if head.status != 200 {
                            return Err(format!(
                                "status {}: {}",
                                head.status,
                                String::from_utf8_lossy(&body.small_body)
                            ));
                        }
                        if body.small_body != NO_CHANGE {
                            return Err(format!(
                                "expected the 14-byte no-change, got {} bytes",
                                body.body_len
                            ));
                        }
                        Ok(())
                    });
                    match verdict {
                        Ok(()) => lat.push(elapsed),
                        Err(e) => errors.push(format!("gateway #{i}: {e}")),
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(n);
    let mut errors = Vec::new();
    for t in tasks {
        let (l, e) = t.await.expect("client task");
        lat.extend(l);
        errors.extend(e);
    }
    let total = t0.elapsed();
    let cpu = proc_cpu(server.pid())
        .unwrap_or_default()
        .saturating_sub(cpu0);
    let hwm = proc_status_kb(server.pid(), "VmHWM").unwrap_or(0);
    drop(server);
    lat.sort();
    println!();
    println!(
        "STORM: {n} gateways, one full-TLS ({}) POST /update-info each, {concurrency} concurrent clients, {}",
        if versions == TLS13_ONLY {
            "TLS 1.3"
        } else {
            "TLS 1.2"
        },
        if confirmed {
            "credentials confirmed (no-change, read-only)"
        } else {
            "first use of own credentials (each confirms: a write)"
        }
    );
    println!("| metric | value |");
    println!("|---|---|");
    println!("| requests | {} |", n);
    println!("| errors | {} |", errors.len());
    println!("| total time | {:.2} s |", total.as_secs_f64());
    println!("| requests/s | {:.0} |", n as f64 / total.as_secs_f64());
    println!("| latency p50 | {:.1} ms |", ms(percentile(&lat, 0.50)));
    println!("| latency p95 | {:.1} ms |", ms(percentile(&lat, 0.95)));
    println!("| latency p99 | {:.1} ms |", ms(percentile(&lat, 0.99)));
    println!(
        "| latency max | {:.1} ms |",
        ms(lat.last().copied().unwrap_or_default())
    );
    println!(
        "| server CPU | {:.2} s ({:.0} µs/request) |",
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / n as f64
    );
    println!("| server peak RSS | {:.1} MiB |", hwm as f64 / 1024.0);
    for e in errors.iter().take(10) {
        println!("error: {e}");
    }
    assert!(errors.is_empty(), "{} errors in the storm", errors.len());
}

// ------------------------------------------------------------------------------------------
// 2. Update fan-out
// ------------------------------------------------------------------------------------------

/// A deterministic pseudo-random image (incompressible, so nothing is accidentally cheap).
fn image(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

async fn fanout() {
    let n = env_usize("LOAD_FANOUT_GATEWAYS", 100);
    let mib = env_usize("LOAD_IMAGE_MIB", 16);
    let versions = tls_versions();
    let dir = tempfile::tempdir().expect("tempdir");
    let fleet = provision(dir.path(), n, true).await;
    let keys = fleet.pki.key_crcs();
    let sig_keys = fleet.pki.sig_keys();
    let len = mib * 1024 * 1024;
    let (digest, meta) = {
        let img = image(len);
        let digest = cups_core::sig::sha512(&img);
        let meta = fleet
            .service
            .add_firmware(
                FirmwareSpec {
                    id: None,
                    model: MODEL.into(),
                    version: NEW_PACKAGE.into(),
                    from_versions: Vec::new(),
                },
                FirmwareSource::Bytes(Bytes::from(img)),
                time::OffsetDateTime::now_utc(),
            )
            .await
            .expect("add firmware");
        (digest, meta)
    };
    assert_eq!(meta.sha512_hex, hex::encode(digest));
    drop(fleet.service);
    let work: Vec<_> = fleet
        .gateways
        .iter()
        .map(|g| {
            (
                g.client_config(versions),
                station_request(&g.request_body(PACKAGE, &keys)),
            )
        })
        .collect();
    let server = spawn_server(dir.path());
    let addr = server.addr;
    let pid = server.pid();
    let rss_start = proc_status_kb(pid, "VmRSS").unwrap_or(0);
    let running = Arc::new(AtomicBool::new(true));
    let peak_sampled = Arc::new(AtomicU64::new(rss_start));
    let sampler = {
        let running = Arc::clone(&running);
        let peak = Arc::clone(&peak_sampled);
        tokio::spawn(async move {
            let mut samples = 0u64;
            while running.load(Ordering::Relaxed) {
                if let Some(kb) = proc_status_kb(pid, "VmRSS") {
                    peak.fetch_max(kb, Ordering::Relaxed);
                    samples += 1;
                }
                tokio::time::sleep(RSS_SAMPLE_EVERY).await;
            }
            samples
        })
    };
    let sig_keys = Arc::new(sig_keys);
    let cpu0 = proc_cpu(pid).unwrap_or_default();
    let t0 = Instant::now();
    let tasks: Vec<_> = work
        .into_iter()
        .enumerate()
        .map(|(i, (cfg, req))| {
            let sig_keys = Arc::clone(&sig_keys);
            tokio::spawn(async move {
                let start = Instant::now();
                let mut check = BodyCheck::default();
                let head = exchange(addr, cfg, &req, |b| check.feed(b)).await?;
                let body = check.finish()?;
                if head.status != 200 {
                    return Err(format!("gateway #{i}: status {}", head.status));
                }
                if body.update_len != Some(len as u32) || body.update_got != len as u64 {
                    return Err(format!(
                        "gateway #{i}: update of {:?} announced, {} received, {len} expected",
                        body.update_len, body.update_got
                    ));
                }
                if body.digest != digest {
                    return Err(format!("gateway #{i}: SHA-512 differs"));
                }
                let Some((key_crc, der)) = body.signature else {
                    return Err(format!("gateway #{i}: no signature"));
                };
                if !sig_keys.iter().any(|k| k.crc() == key_crc) {
                    return Err(format!("gateway #{i}: signature for unknown key {key_crc}"));
                }
                if !verify_with_keys(&RustCryptoVerifier, sig_keys.iter(), &body.digest, &der)
                    .is_verified()
                {
                    return Err(format!("gateway #{i}: signature does not verify"));
                }
                Ok((start.elapsed(), head.content_length))
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut errors = Vec::new();
    let mut bytes = 0u64;
    for t in tasks {
        match t.await.expect("client task") {
            Ok((d, b)) => {
                lat.push(d);
                bytes += b;
            }
            Err(e) => errors.push(e),
        }
    }
    let total = t0.elapsed();
    running.store(false, Ordering::Relaxed);
    let samples = sampler.await.unwrap_or(0);
    let cpu = proc_cpu(pid).unwrap_or_default().saturating_sub(cpu0);
    let hwm = proc_status_kb(pid, "VmHWM").unwrap_or(0);
    drop(server);
    lat.sort();
    let peak_mib = hwm as f64 / 1024.0;
    println!();
    println!(
        "FAN-OUT: one {mib} MiB signed update to {n} gateways at once (full TLS each), server in a child process"
    );
    println!("| metric | value |");
    println!("|---|---|");
    println!("| downloads ok | {} of {n} |", lat.len());
    println!("| errors | {} |", errors.len());
    println!("| total time | {:.2} s |", total.as_secs_f64());
    println!(
        "| throughput | {:.0} MiB/s ({:.1} Gbit/s) |",
        bytes as f64 / 1048576.0 / total.as_secs_f64(),
        bytes as f64 * 8.0 / 1e9 / total.as_secs_f64()
    );
    println!(
        "| download time p50 / max | {:.0} / {:.0} ms |",
        ms(percentile(&lat, 0.5)),
        ms(lat.last().copied().unwrap_or_default())
    );
    println!(
        "| server RSS before | {:.1} MiB |",
        rss_start as f64 / 1024.0
    );
    println!(
        "| server RSS max sampled ({samples} samples) | {:.1} MiB |",
        peak_sampled.load(Ordering::Relaxed) as f64 / 1024.0
    );
    println!(
        "| server peak RSS (VmHWM) | {peak_mib:.1} MiB (target < {RSS_TARGET_MIB} MiB: {}) |",
        if peak_mib < RSS_TARGET_MIB {
            "met"
        } else {
            "MISSED"
        }
    );
    println!("| server CPU | {:.2} s |", cpu.as_secs_f64());
    for e in errors.iter().take(10) {
        println!("error: {e}");
    }
    assert!(errors.is_empty(), "{} failed downloads", errors.len());
}
