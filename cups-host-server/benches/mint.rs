//! Minting throughput: in-process rcgen (certificate + SEC1 key + blob + station-safety check,
//! one thread) against the replaced system's OpenSSL recipe (`benches/openssl-recipe.sh`, six
//! `openssl` runs and a `cat` per gateway), measured in the same run.
//!
//! `cargo bench -p cups-host-server --bench mint` (env `MINT_N`, default 2000 in-process
//! gateways; `RECIPE_M`, default 50 recipe gateways). Targets: >= 1,000 gateways/s per core
//! and >= 100x the recipe.

use std::error::Error;
use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration as StdDuration, Instant};

use cups_core::Eui64;
use cups_core::cred::check_station_safe;
use cups_host_server::pki::{ClientUsage, InitOptions, Pki, PkiPaths, init};
use time::{Duration, OffsetDateTime};

/// In-process gateways minted by default.
const DEFAULT_MINT_N: u64 = 2000;
/// Recipe gateways run by default.
const DEFAULT_RECIPE_M: u64 = 50;
/// Target in-process rate (gateways/s on one core).
const TARGET_RATE: f64 = 1000.0;
/// Target speed-up over the recipe.
const TARGET_RATIO: f64 = 100.0;
/// First EUI used.
const EUI_BASE: u64 = 0x0016_c000_0000_0000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

fn rate(count: u64, elapsed: StdDuration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn mint(pki: &Pki, n: u64) -> Result<StdDuration, Box<dyn Error>> {
    let now = OffsetDateTime::now_utc();
    let start = Instant::now();
    for i in 0..n {
        let eui = Eui64::new(EUI_BASE + i + 1)?;
        // mint_client builds the blob and refuses it unless check_station_safe passes.
        let minted = pki.mint_client(eui, ClientUsage::Tc, Duration::days(365), now)?;
        black_box(&minted);
    }
    Ok(start.elapsed())
}

fn openssl_version() -> Option<String> {
    let out = Command::new("openssl").arg("version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Runs the recipe for `m` gateways; returns its duration and the station-safety verdict on
/// the first gateway's bundle.
fn recipe(pki_dir: &Path, m: u64) -> Result<(StdDuration, String), Box<dyn Error>> {
    let work = tempfile::TempDir::new()?;
    std::fs::copy(pki_dir.join("ca.crt"), work.path().join("ca.crt"))?;
    std::fs::copy(pki_dir.join("ca.key"), work.path().join("ca.key"))?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/openssl-recipe.sh");
    let start = Instant::now();
    let status = Command::new("bash")
        .arg(script)
        .arg(work.path())
        .arg(m.to_string())
        .status()?;
    let elapsed = start.elapsed();
    if !status.success() {
        return Err(format!("{script} failed: {status}").into());
    }
    // The recipe's bundle for the first gateway is the same kind of blob.
    let first = work
        .path()
        .join(format!("gw-0016c0{:010x}", 1))
        .join("tc_cred.bin");
    let blob = std::fs::read(&first)?;
    let verdict = match check_station_safe(&blob) {
        Ok(_) => "station-safe".to_owned(),
        Err(e) => format!("NOT station-safe: {e}"),
    };
    Ok((elapsed, verdict))
}

fn main() -> Result<(), Box<dyn Error>> {
    let n = env_u64("MINT_N", DEFAULT_MINT_N);
    let m = env_u64("RECIPE_M", DEFAULT_RECIPE_M);
    let tmp = tempfile::TempDir::new()?;
    let paths = PkiPaths::new(tmp.path().join("certs"));
    init(&paths, &InitOptions::default())?;
    let pki = Pki::load(&paths)?;

    mint(&pki, 50.min(n))?; // warm-up
    let ours = mint(&pki, n)?;
    let ours_rate = rate(n, ours);

    let version = openssl_version();
    let theirs = match &version {
        Some(_) => Some(recipe(&paths.dir, m)?),
        None => None,
    };

    println!();
    println!(
        "| method                                             | gateways | seconds | gateways/s |"
    );
    println!(
        "|----------------------------------------------------|---------:|--------:|-----------:|"
    );
    println!(
        "| in-process rcgen, 1 thread (cert+key+blob+check)   | {n:>8} | {:>7.3} | {ours_rate:>10.0} |",
        ours.as_secs_f64()
    );
    let recipe_rate = match (&version, &theirs) {
        (Some(version), Some((elapsed, verdict))) => {
            let r = rate(m, *elapsed);
            println!(
                "| OpenSSL recipe, 6 openssl + cat per gateway        | {m:>8} | {:>7.3} | {r:>10.1} |",
                elapsed.as_secs_f64()
            );
            println!();
            println!("openssl: {version}; recipe bundle of the first gateway: {verdict}");
            Some(r)
        }
        _ => {
            println!(
                "| OpenSSL recipe                                     | skipped: `openssl` not found (install it: apt-get install openssl) |"
            );
            None
        }
    };
    println!();
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "in-process rate: {ours_rate:.0} gateways/s (target >= {TARGET_RATE:.0}: {})",
        verdict(ours_rate >= TARGET_RATE)
    );
    if let Some(r) = recipe_rate {
        let ratio = ours_rate / r;
        println!(
            "ratio: {ratio:.0}x the OpenSSL recipe (target >= {TARGET_RATIO:.0}x: {})",
            verdict(ratio >= TARGET_RATIO)
        );
    }
    Ok(())
}
