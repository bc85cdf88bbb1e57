//! Simulator memory per gateway, measured with a counting allocator: idle (station, files,
//! smoltcp interface, link state) and at peak during a first-contact run (TLS sessions and
//! socket buffers of the interactions in flight, the uplink's relays — and, conservatively,
//! the in-process test server's allocations too).

#![allow(unsafe_code)] // the counting allocator

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{CupsRequest, CupsResponse, DeviceCa, Golden, TestServer};
use cups_core::crc::crc32;
use cups_core::response::ResponseParts;
use gateway_sim::{Fleet, FleetConfig, RunResult};

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
fn memory_per_gateway_idle_and_at_peak() {
    const N: u32 = 1000;
    let g = Golden::load();
    let ca = DeviceCa::new();
    let trust = g.ca_der.clone();
    let minted: Vec<(Vec<u8>, Vec<u8>)> = (0..N)
        .map(|i| {
            let eui = cups_core::Eui64::new(0x0016_c001_ff10_0000 + u64::from(i)).unwrap();
            ca.mint(eui)
        })
        .collect();
    let blobs: Vec<Vec<u8>> = minted
        .iter()
        .map(|(c, k)| common::blob(&trust, c, k))
        .collect();
    let handler = move |req: &CupsRequest| {
        let i = (req.router.as_u64() - 0x0016_c001_ff10_0000) as usize;
        let blob = &blobs[i];
        CupsResponse::encode(
            &ResponseParts {
                cups_cred: (req.cups_crc != crc32(blob)).then_some(&blob[..]),
                ..ResponseParts::default()
            },
            &[],
        )
    };
    let server = TestServer::start(g.server_tls(std::slice::from_ref(&ca.cert_der)), handler);
    let uri = server.uri();
    let homes: Vec<_> = (0..N).map(|_| g.home(&uri)).collect();

    let before = CURRENT.load(Ordering::Relaxed);
    let config = FleetConfig::new(N, 1, server.addr);
    let max_in_flight = config.max_in_flight;
    let mut homes = homes.into_iter();
    let mut fleet = Fleet::new(config, |_| homes.next().unwrap()).unwrap();
    let idle = CURRENT.load(Ordering::Relaxed).saturating_sub(before) / N as usize;

    PEAK.store(CURRENT.load(Ordering::Relaxed), Ordering::Relaxed);
    let r = fleet.run_until(|f| f.all_done_at_least(2), Duration::from_secs(120));
    assert_eq!(r, RunResult::Done, "{}", fleet.report().summary_table());
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before) / N as usize;
    let after = CURRENT.load(Ordering::Relaxed).saturating_sub(before) / N as usize;
    let report = fleet.report();
    println!("{}", report.summary_table());
    println!(
        "memory per gateway ({N} gateways, {max_in_flight} in flight): idle {idle} B, \
         after first contact {after} B, peak {peak} B (server included)"
    );
    assert!(idle <= MAX_BYTES_PER_GATEWAY, "idle {idle}");
    assert!(peak <= MAX_BYTES_PER_GATEWAY, "peak {peak}");
}
