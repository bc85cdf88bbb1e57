//! Simulator memory per gateway with the TC (LNS) side on, measured with a counting allocator
//! (as `sim_memory`): every gateway does its CUPS interaction and proves its TC credentials
//! against an in-process LNS; held sessions are flags, so memory after the run stays near the
//! idle figure. Conservatively includes the in-process CUPS server's and LNS's allocations.

#![allow(unsafe_code)] // the counting allocator

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use std::sync::Arc;

use common::{CupsResponse, DeviceCa, Golden, TestServer};
use cups_core::Eui64;
use cups_core::station::{CredFile, CredKind, FileId, FileSet};
use gateway_sim::lns::{LnsConfig, LnsServer};
use gateway_sim::net::Routes;
use gateway_sim::{Fleet, FleetConfig, RunResult};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivateSec1KeyDer};

/// The target: at most 64 KiB of simulator memory per gateway.
const MAX_BYTES_PER_GATEWAY: usize = 64 * 1024;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                    + (new_size - layout.size());
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn memory_per_gateway_with_tc() {
    const N: u32 = 300;
    let g = Golden::load();
    let ca = DeviceCa::new();
    let server = TestServer::start(g.server_tls(&[]), |_| CupsResponse::nochange());
    let mut cfg = LnsConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        "localhost",
        vec![CertificateDer::from(g.server_der.clone())],
        PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(g.server_key_der.clone())),
    );
    cfg.client_roots = vec![CertificateDer::from(ca.cert_der.clone())];
    cfg.token_check = Some(Arc::new(|_: &str| None));
    let lns = LnsServer::start(cfg).unwrap();
    let uri = server.uri();
    let tc_uri = format!("wss://localhost:{}", lns.local_addr().port());
    let f = |file| FileId::cred(CredKind::Tc, FileSet::Reg, file);
    let homes: Vec<_> = (0..N)
        .map(|i| {
            let (cert, key) = ca.mint(Eui64::new(0x0016_c001_ff10_0000 + u64::from(i)).unwrap());
            g.home(&uri)
                .with(f(CredFile::Uri), tc_uri.as_str())
                .with(f(CredFile::Trust), g.ca_pem.clone())
                .with(f(CredFile::Cert), cert)
                .with(f(CredFile::Key), key)
        })
        .collect();

    let before = CURRENT.load(Ordering::Relaxed);
    let mut config = FleetConfig::new(N, 1, server.addr);
    config.tc_connect = true;
    let max_in_flight = config.max_in_flight;
    let mut homes = homes.into_iter();
    let mut fleet = Fleet::new(config, |_| homes.next().unwrap()).unwrap();
    fleet.set_routes(Routes::same_port("127.0.0.1".parse().unwrap()).unwrap());
    let idle = CURRENT.load(Ordering::Relaxed).saturating_sub(before) / N as usize;

    PEAK.store(CURRENT.load(Ordering::Relaxed), Ordering::Relaxed);
    let r = fleet.run_until(|f| f.tc_connected_count() == N, Duration::from_secs(120));
    assert_eq!(r, RunResult::Done, "{}", fleet.report().summary_table());
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before) / N as usize;
    let after = CURRENT.load(Ordering::Relaxed).saturating_sub(before) / N as usize;
    let report = fleet.report();
    println!("{}", report.summary_table());
    println!(
        "memory per gateway with TC ({N} gateways, {max_in_flight} in flight): idle {idle} B, \
         after CUPS + TC connect {after} B, peak {peak} B (CUPS server and LNS included)"
    );
    assert_eq!(report.summary.tc_connected, N);
    assert!(idle <= MAX_BYTES_PER_GATEWAY, "idle {idle}");
    assert!(peak <= MAX_BYTES_PER_GATEWAY, "peak {peak}");
    lns.stop();
}
