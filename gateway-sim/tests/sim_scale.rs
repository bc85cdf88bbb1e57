//! Scale runs (ignored by default; run in release):
//! `CUPS_VECTORS=... cargo test --release -p gateway-sim --test sim_scale -- --ignored --nocapture`
//! `SIM_GATEWAYS` sets the fleet size (default 10 000), `SIM_IN_FLIGHT` the concurrency.

mod common;

use std::time::{Duration, Instant};

use common::{CupsRequest, CupsResponse, DeviceCa, Golden, TestServer};
use cups_core::crc::crc32;
use cups_core::response::ResponseParts;
use gateway_sim::{Fleet, FleetConfig, RunResult};

/// CPU time of the whole process (`/proc/self/stat` utime + stime, 100 Hz ticks).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
#[ignore = "scale run: use --release and --ignored"]
fn fleet_first_contact_at_scale() {
    let n = env_or("SIM_GATEWAYS", 10_000) as u32;
    let g = Golden::load();
    let ca = DeviceCa::new();
    let t0 = Instant::now();
    let blobs: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let eui = cups_core::Eui64::new(0x0016_c001_ff10_0000 + u64::from(i)).unwrap();
            let (c, k) = ca.mint(eui);
            common::blob(&g.ca_der, &c, &k)
        })
        .collect();
    println!("minted {n} credential sets in {:?}", t0.elapsed());
    let handler = move |req: &CupsRequest| {
        let blob = &blobs[(req.router.as_u64() - 0x0016_c001_ff10_0000) as usize];
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
    let mut config = FleetConfig::new(n, 1, server.addr);
    config.max_in_flight = env_or("SIM_IN_FLIGHT", 64) as usize;
    let mut fleet = Fleet::new(config, |_| g.home(&uri)).unwrap();
    let t0 = Instant::now();
    let cpu0 = process_cpu();
    let r = fleet.run_until(|f| f.all_done_at_least(2), Duration::from_secs(600));
    let took = t0.elapsed();
    let cpu = process_cpu().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
    let report = fleet.report();
    println!("{}", report.summary_table());
    if let (Some(cpu), Some(sim)) = (cpu, report.summary.sim_cpu_s) {
        let requests = report.summary.requests as f64;
        let server = cpu.as_secs_f64() - sim;
        println!(
            "cpu per exchange: simulator {:.0} us, test server (rest of the process) {:.0} us",
            sim * 1e6 / requests,
            server * 1e6 / requests
        );
    }
    println!(
        "{n} gateways: first contact (bootstrap -> own creds -> proven) in {:.1} s = {:.0} gateways/s",
        took.as_secs_f64(),
        f64::from(n) / took.as_secs_f64()
    );
    assert_eq!(r, RunResult::Done);
}
