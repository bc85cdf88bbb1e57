//! Fleet benchmark (issue targets of the simulator): `FLEET_GATEWAYS` (10 000) simulated
//! gateways in this process complete **first boot** — factory (bootstrap) credentials →
//! their own CUPS and TC credentials from the server → the TC handshake (TLS with the
//! delivered TC credentials, router-info, muxs) — against ONE real `cups-server serve`
//! (release build, child process, filesystem store in a temporary directory, the dev PKI of
//! `cups-server init`, the simulator's factory CA installed as `bootstrap-ca.crt`).
//!
//! Reported:
//! * wall time of the first-boot phase (target ≤ 120 s) and the phase's per-gateway checks
//!   (CRCs = the server's blobs, confirmed, bootstrap closed, TC session up);
//! * simulator heap per gateway: peak live heap of this process during the phase minus the
//!   live heap before the fleet was built, divided by the gateways (target ≤ 64 KiB). The
//!   in-process LNS endpoints, the uplink's relays and the admin's runtime are counted too, so
//!   this is an upper bound for the simulator alone;
//! * CPU per CUPS exchange: the simulator thread's CPU time (TLS included, TC work included:
//!   an upper bound) against the server process's CPU time (`/proc/<pid>/stat`), both divided
//!   by the CUPS exchanges the server answered — measured in the same run, so the ratio holds
//!   on a noisy machine.
//!
//! ```text
//! cargo bench -p gateway-sim --bench fleet
//! FLEET_GATEWAYS=10000  FLEET_IN_FLIGHT=64  FLEET_SEED=1
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gateway_sim::factory::FactoryCa;
use gateway_sim::scenario::cli_admin::find_cups_server_near;
use gateway_sim::scenario::{CliAdmin, CliSettings, Runner, RunnerConfig, Scenario, StoreSpec};

/// Target: wall time of first boot for the default fleet.
const TARGET_WALL: Duration = Duration::from_secs(120);
/// Target: simulator memory per gateway.
const TARGET_BYTES_PER_GATEWAY: usize = 64 * 1024;
/// Real-time budget of the phase (beyond the target, so a miss is measured, not cut off).
const PHASE_BUDGET: Duration = Duration::from_secs(600);

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards to the system allocator; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// utime + stime of a process, from `/proc/<pid>/stat` (clock ticks of 10 ms).
fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Build the release `cups-server` and find it next to this benchmark.
fn cups_server() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args([
        "build",
        "-q",
        "--release",
        "-p",
        "cups-host-server",
        "--bin",
        "cups-server",
    ])
    .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        let keep = matches!(k.as_ref(), "CARGO_HOME" | "CARGO_TARGET_DIR");
        if !keep && (k.starts_with("CARGO_") || k == "OUT_DIR") {
            cmd.env_remove(k.as_ref());
        }
    }
    let status = cmd.status().expect("run cargo to build cups-server");
    assert!(status.success(), "building cups-server failed: {status}");
    let exe = std::env::current_exe().expect("bench executable");
    find_cups_server_near(&exe).expect("cups-server next to the benchmark")
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is understood.
    let n = u32::try_from(env_or("FLEET_GATEWAYS", 10_000)).expect("FLEET_GATEWAYS");
    let in_flight = usize::try_from(env_or("FLEET_IN_FLIGHT", 64)).expect("FLEET_IN_FLIGHT");
    let seed = env_or("FLEET_SEED", 1);
    let bin = cups_server();
    let dir = tempfile::tempdir().expect("temp dir");
    let factory = FactoryCa::generate().expect("factory CA");
    let settings = CliSettings {
        bin,
        cert_path: dir.path().join("certs"),
        store: StoreSpec::Fs(dir.path().join("data")),
        cups_uri: "https://localhost:16050".into(),
        tc_uri: Some("wss://localhost:6887".into()),
        work_dir: dir.path().to_owned(),
    };
    let t_setup = Instant::now();
    let admin =
        CliAdmin::new(settings, Some(factory.cert_pem()), true, None).expect("cups-server serve");
    let pid = admin.server_pid().expect("the admin owns the server");
    let base_heap = LIVE.load(Ordering::Relaxed);
    let mut config = RunnerConfig::new(n, seed);
    config.max_in_flight = in_flight;
    config.phase_budget = PHASE_BUDGET;
    let mut runner = Runner::new(admin, &factory, config).expect("runner");
    eprintln!(
        "setup (PKI, {n} registrations, {n} factory certificates): {:.1} s",
        t_setup.elapsed().as_secs_f64()
    );
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    let server_cpu0 = process_cpu(pid);
    let t0 = Instant::now();
    runner.run(Scenario::FirstBoot).expect("first boot");
    let wall = t0.elapsed();
    let server_cpu = process_cpu(pid)
        .zip(server_cpu0)
        .map(|(b, a)| b.saturating_sub(a));
    let peak = PEAK.load(Ordering::Relaxed);
    let report = runner.report(Scenario::FirstBoot);
    println!("{}", report.summary_table());
    let s = &report.report.summary;
    let phase = &report.phases[0];
    let per_gateway = peak.saturating_sub(base_heap) / n.max(1) as usize;
    println!(
        "first boot of {n} gateways (bootstrap -> own credentials -> TC handshake) against one \
         cups-server: {:.1} s (target <= {} s), {} done / {} failed the phase's checks, \
         {} TC-connected",
        wall.as_secs_f64(),
        TARGET_WALL.as_secs(),
        phase.gateways_done,
        phase.gateways_failed,
        s.tc_connected
    );
    println!(
        "simulator heap: peak {:.1} MiB over a base of {:.1} MiB = {:.1} KiB per gateway (target <= {} KiB)",
        peak as f64 / 1048576.0,
        base_heap as f64 / 1048576.0,
        per_gateway as f64 / 1024.0,
        TARGET_BYTES_PER_GATEWAY / 1024
    );
    let exchanges = s.requests_done as f64;
    if let (Some(sim), Some(server)) = (s.sim_cpu_s, server_cpu) {
        let server = server.as_secs_f64();
        println!(
            "CPU per CUPS exchange ({exchanges} exchanges): simulator {:.0} us (TC work included), \
             cups-server {:.0} us; simulator / server = {:.2}",
            sim * 1e6 / exchanges,
            server * 1e6 / exchanges,
            sim / server
        );
    }
    assert_eq!(
        phase.gateways_failed, 0,
        "first boot failed for some gateways"
    );
}
