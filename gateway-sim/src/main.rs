//! `gateway-sim`: run a simulated gateway fleet against a CUPS server on loopback.
//!
//! Thin: argument parsing and wiring; the simulator is the library.

use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use cups_core::Eui64;
use cups_core::station::{CredFile, CredKind, FileId, FileSet, MemStore};
use gateway_sim::tls::TlsVersions;
use gateway_sim::{Fleet, FleetConfig, LinkFaults, RunResult};

/// Longest slice of a run between two progress lines.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Width of the progress bar.
const BAR_WIDTH: usize = 30;

#[derive(Parser, Debug)]
#[command(
    name = "gateway-sim",
    version,
    about = "Simulated LoRa Basics Station fleets against a CUPS server on loopback",
    long_about = "Each simulated gateway is a Basics Station CUPS client (cups-core) with its own \
smoltcp TCP/IP stack on a virtual network (198.18.0.0/15) inside this process; a userspace \
uplink relays its connections to the server under test, which must listen on a loopback address."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a scenario.
    Run(RunArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Scenario {
    /// Every gateway boots with the given credentials and talks to CUPS until it has done
    /// `--interactions` successful interactions (2: get own credentials, then prove them).
    FirstContact,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Set {
    /// The regular set (`cups.*`).
    Reg,
    /// The bootstrap set (`cups-boot.*`).
    Boot,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Tls {
    /// TLS 1.2 only, like the station (mbedTLS 2.28).
    V12,
    /// TLS 1.3 only.
    V13,
    /// Both.
    Both,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The scenario.
    scenario: Scenario,
    /// CUPS URI the gateways are provisioned with, e.g. https://localhost:8443.
    #[arg(long)]
    server: String,
    /// Where the uplink relays connections (default: the URI host resolved; must be loopback).
    #[arg(long)]
    relay: Option<SocketAddr>,
    /// Trust (CA certificate, PEM or DER) provisioned on every gateway.
    #[arg(long)]
    trust: Option<PathBuf>,
    /// Client certificate (PEM or DER) provisioned on every gateway.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Client key (PEM or DER, SEC1 or PKCS#8).
    #[arg(long)]
    key: Option<PathBuf>,
    /// A file of `Authorization: ...` header lines (token mode, instead of --cert).
    #[arg(long, conflicts_with = "cert")]
    token: Option<PathBuf>,
    /// Which credential set the provisioned files go to.
    #[arg(long, value_enum, default_value = "reg")]
    set: Set,
    /// Number of gateways.
    #[arg(long, default_value_t = 10)]
    gateways: u32,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// EUI of the first gateway (the others count up).
    #[arg(long, default_value = "0016c001ff100000")]
    first_eui: String,
    /// Successful interactions each gateway must reach.
    #[arg(long, default_value_t = 2)]
    interactions: u32,
    /// Interactions in flight at most.
    #[arg(long, default_value_t = 64)]
    max_in_flight: usize,
    /// Packet loss per link and direction (0..1).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// One-way latency per link, milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Extra one-way jitter per link, milliseconds.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// TLS versions offered.
    #[arg(long, value_enum, default_value = "v12")]
    tls: Tls,
    /// Real-time budget, seconds.
    #[arg(long, default_value_t = 300)]
    budget: u64,
    /// Print the whole report as JSON instead of the summary table.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Run(args) = cli.command;
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gateway-sim: {e}");
            ExitCode::from(2)
        }
    }
}

/// `scheme://host:port` → (host, port).
fn host_port(uri: &str) -> Result<(String, u16), String> {
    let rest = uri
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or_else(|| format!("{uri}: not scheme://host:port"))?;
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("{uri}: the port is mandatory"))?;
    let port = port
        .parse()
        .map_err(|_| format!("{uri}: bad port {port:?}"))?;
    Ok((host.trim_matches(['[', ']']).to_owned(), port))
}

fn relay_target(args: &RunArgs) -> Result<SocketAddr, String> {
    if let Some(r) = args.relay {
        return Ok(r);
    }
    let (host, port) = host_port(&args.server)?;
    (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .find(|a| a.ip().is_loopback())
        .ok_or_else(|| {
            format!("{host} does not resolve to a loopback address: give --relay 127.0.0.1:PORT")
        })
}

fn read(path: &Option<PathBuf>) -> Result<Option<Vec<u8>>, String> {
    path.as_ref()
        .map(|p| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())))
        .transpose()
}

fn run(args: &RunArgs) -> Result<ExitCode, String> {
    let Scenario::FirstContact = args.scenario;
    let relay = relay_target(args)?;
    let first_eui = Eui64::parse(&args.first_eui).map_err(|e| format!("--first-eui: {e:?}"))?;
    let trust = read(&args.trust)?;
    let cert = read(&args.cert)?;
    let key = match (&args.token, &args.key) {
        (Some(_), _) => read(&args.token)?,
        (None, _) => read(&args.key)?,
    };
    let set = match args.set {
        Set::Reg => FileSet::Reg,
        Set::Boot => FileSet::Boot,
    };
    let file = |f| FileId::cred(CredKind::Cups, set, f);
    let mut home = MemStore::new().with(file(CredFile::Uri), args.server.as_bytes());
    if let Some(t) = trust {
        home.insert(file(CredFile::Trust), t);
    }
    if let Some(c) = cert {
        home.insert(file(CredFile::Cert), c);
    } else if args.token.is_some() {
        home.insert(file(CredFile::Cert), Vec::new());
    }
    if let Some(k) = key {
        home.insert(file(CredFile::Key), k);
    }

    let mut config = FleetConfig::new(args.gateways, args.seed, relay);
    config.first_eui = first_eui;
    config.max_in_flight = args.max_in_flight;
    config.faults = LinkFaults::none().with_loss(args.loss).with_latency(
        Duration::from_millis(args.latency_ms),
        Duration::from_millis(args.jitter_ms),
    );
    config.tls = match args.tls {
        Tls::V12 => TlsVersions::Tls12,
        Tls::V13 => TlsVersions::Tls13,
        Tls::Both => TlsVersions::Both,
    };
    let mut fleet = Fleet::new(config, |_| home.clone()).map_err(|e| e.to_string())?;

    let want = args.interactions;
    let deadline = Instant::now() + Duration::from_secs(args.budget);
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let r = fleet.run_until(|f| f.all_done_at_least(want), left.min(PROGRESS_EVERY));
        if !args.quiet {
            progress(&fleet, want);
        }
        if r != RunResult::BudgetExhausted || left <= PROGRESS_EVERY {
            break r;
        }
    };
    if !args.quiet {
        eprintln!();
    }
    let report = fleet.report();
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.summary_table());
        println!("  {:<22} {result:?}", "result");
    }
    Ok(if result == RunResult::Done && report.summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn progress(fleet: &Fleet, want: u32) {
    let total = fleet.len().max(1);
    let done = fleet.count_done_at_least(want) as usize;
    let filled = done * BAR_WIDTH / total;
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r[{}{}] {done}/{total} gateways, {} in flight, virtual {:.0} s",
        "#".repeat(filled),
        " ".repeat(BAR_WIDTH - filled),
        fleet.in_flight(),
        fleet.virtual_now().as_secs_f64()
    );
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_parsing() {
        assert_eq!(
            host_port("https://localhost:8443").unwrap(),
            ("localhost".into(), 8443)
        );
        assert_eq!(host_port("https://[::1]:443").unwrap(), ("::1".into(), 443));
        assert!(host_port("https://localhost").is_err());
        assert!(host_port("localhost:1").is_err());
    }

    #[test]
    fn cli_parses() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "gateway-sim",
            "run",
            "first-contact",
            "--server",
            "https://localhost:1",
            "--gateways",
            "3",
        ])
        .unwrap();
        let Command::Run(a) = cli.command;
        assert_eq!(a.gateways, 3);
    }

    use clap::CommandFactory;
}
