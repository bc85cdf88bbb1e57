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
use gateway_sim::factory::FactoryCa;
use gateway_sim::scenario::{
    Admin, CliAdmin, CliSettings, InProcessAdmin, ProgressFn, Runner, RunnerConfig, Scenario,
    ScenarioReport, StoreSpec,
};
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
    /// Run a scenario against a CUPS server on loopback.
    Run(Box<RunArgs>),
    /// The whole system in one command: an in-process server on loopback (temporary store,
    /// dev PKI, factory CA), first boot from factory credentials and a signed update rollout
    /// for a fleet, step by step.
    Demo(DemoArgs),
}

/// `first-contact`: the gateways hold the given credentials (`--trust/--cert/--key`).
const FIRST_CONTACT: &str = "first-contact";

#[derive(clap::Args, Debug)]
struct DemoArgs {
    /// Number of gateways.
    #[arg(long, default_value_t = 100)]
    gateways: u32,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the report as JSON at the end instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum StoreArg {
    /// Filesystem store in --data-dir.
    Fs,
    /// S3 store from the S3_BUCKET_NAME, S3_BUCKET_ENDPOINT, S3_BUCKET_REGION,
    /// S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY environment variables.
    S3,
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
#[command(
    after_help = "Scenarios: first-contact (gateways hold --trust/--cert/--key or --token), \
first-boot, steady-state, renewal, migration, rollout, bad-signature, server-outage, lns-outage, \
all. Every scenario but first-contact registers the gateways, gives each only factory \
credentials (a factory CA in --factory, installed as the server's bootstrap-ca.crt) and starts \
with first boot. The server side is driven with the cups-server binary (--cups-server, \
--cert-path, --data-dir or --store s3); without --server, gateway-sim starts `cups-server serve` \
itself (an outage then stops and restarts it; with --server the outage is a route cut)."
)]
struct RunArgs {
    /// The scenario (see below).
    scenario: String,
    /// CUPS URI of the server: first-contact provisions it on the gateways; the other
    /// scenarios use an external, already running server (it must be its CUPS_URI). Without
    /// it, scenarios start `cups-server serve` themselves.
    #[arg(long)]
    server: Option<String>,
    /// The cups-server binary (scenarios; default: next to this executable, else on PATH).
    #[arg(long, value_name = "PATH")]
    cups_server: Option<PathBuf>,
    /// The server's PKI directory (scenarios; created with `cups-server init` when empty).
    #[arg(long, value_name = "DIR", default_value = "certs")]
    cert_path: PathBuf,
    /// The server's store.
    #[arg(long, value_enum, default_value = "fs")]
    store: StoreArg,
    /// Filesystem store directory (with --store fs).
    #[arg(long, value_name = "DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Factory CA directory (factory-ca.crt, factory-ca.key; created when missing).
    #[arg(long, value_name = "DIR", default_value = "factory")]
    factory: PathBuf,
    /// Real-time budget of each scenario phase, seconds.
    #[arg(long, default_value_t = 120)]
    phase_budget: u64,
    /// The server's TC URI (scenarios). gateway-sim runs an LNS behind it (and one behind
    /// the migration's TC URI) and every gateway connects with the TC credentials it got.
    /// With --server this must be the server's TC_URI; without, the started server gets it.
    #[arg(long, value_name = "URI", default_value = "wss://localhost:6887")]
    tc_uri: String,
    /// No TC: gateways never connect to an LNS (the lns-outage scenario is skipped).
    #[arg(long)]
    no_tc: bool,
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
    let result = match cli.command {
        Command::Run(args) if args.scenario == FIRST_CONTACT => run(&args),
        Command::Run(args) => run_scenario(&args),
        Command::Demo(args) => demo(&args),
    };
    match result {
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

fn relay_target(args: &RunArgs, server: &str) -> Result<SocketAddr, String> {
    if let Some(r) = args.relay {
        return Ok(r);
    }
    let (host, port) = host_port(server)?;
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
    let server = args
        .server
        .as_deref()
        .ok_or("first-contact needs --server URI")?;
    let relay = relay_target(args, server)?;
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
    let mut home = MemStore::new().with(file(CredFile::Uri), server.as_bytes());
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

/// The cups-server binary: `--cups-server`, else next to this executable, else `cups-server`
/// on PATH.
fn cups_server_bin(args: &RunArgs) -> PathBuf {
    if let Some(p) = &args.cups_server {
        return p.clone();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| gateway_sim::scenario::cli_admin::find_cups_server_near(&exe))
        .unwrap_or_else(|| PathBuf::from("cups-server"))
}

/// A progress line for scenario phases.
fn scenario_progress(quiet: bool) -> ProgressFn {
    Box::new(move |phase, fleet| {
        if quiet {
            return;
        }
        let r = fleet.report();
        let total = fleet.len().max(1);
        let done = r.summary.done as usize;
        let filled = done * BAR_WIDTH / total;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{phase:<14} [{}{}] {done}/{total} ok, {} requests, {} in flight, virtual {:.0} s   ",
            "#".repeat(filled),
            " ".repeat(BAR_WIDTH - filled),
            r.summary.requests,
            fleet.in_flight(),
            fleet.virtual_now().as_secs_f64()
        );
        let _ = err.flush();
    })
}

fn print_report(report: &ScenarioReport, json: bool) {
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.summary_table());
    }
}

fn run_scenario(args: &RunArgs) -> Result<ExitCode, String> {
    let scenario: Scenario = args.scenario.parse().map_err(|e| format!("{e}"))?;
    let factory = FactoryCa::load_or_create(&args.factory).map_err(|e| e.to_string())?;
    let work = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let store = match args.store {
        StoreArg::Fs => StoreSpec::Fs(args.data_dir.clone()),
        StoreArg::S3 => StoreSpec::S3(
            cups_host_server::store::s3::S3Config::from_lookup(|k| std::env::var(k).ok())
                .ok_or("--store s3 needs S3_BUCKET_NAME (and S3_BUCKET_ENDPOINT, ...)")?,
        ),
    };
    let (cups_uri, external) = match &args.server {
        Some(uri) => (uri.clone(), Some(relay_target(args, uri)?)),
        None => (
            gateway_sim::scenario::inproc::INPROC_CUPS_URI.to_owned(),
            None,
        ),
    };
    let settings = CliSettings {
        bin: cups_server_bin(args),
        cert_path: args.cert_path.clone(),
        store,
        cups_uri,
        tc_uri: (!args.no_tc).then(|| args.tc_uri.clone()),
        work_dir: work.path().to_owned(),
    };
    let admin = CliAdmin::new(
        settings,
        Some(factory.cert_pem()),
        external.is_none(),
        external,
    )
    .map_err(|e| e.to_string())?;
    if !args.quiet {
        eprintln!("server: {}", admin.describe());
    }
    let first_eui = Eui64::parse(&args.first_eui).map_err(|e| format!("--first-eui: {e:?}"))?;
    let mut config = RunnerConfig::new(args.gateways, args.seed);
    config.first_eui = first_eui;
    config.max_in_flight = args.max_in_flight;
    config.phase_budget = Duration::from_secs(args.phase_budget);
    config.tc = !args.no_tc;
    let mut runner = Runner::new(admin, &factory, config).map_err(|e| e.to_string())?;
    runner.set_progress(scenario_progress(args.quiet));
    let result = runner.run(scenario);
    if !args.quiet {
        eprintln!();
    }
    let report = runner.report(scenario);
    print_report(&report, args.json);
    result.map_err(|e| e.to_string())?;
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn demo(args: &DemoArgs) -> Result<ExitCode, String> {
    let t0 = Instant::now();
    let say = |text: String| {
        eprintln!("[{:6.2} s] {text}", t0.elapsed().as_secs_f64());
    };
    say("making a factory CA (the simulated manufacturer)".into());
    let factory = FactoryCa::generate().map_err(|e| e.to_string())?;
    say(
        "starting cups-host-server in this process: temporary FsStore, dev PKI (pki::init), \
         the factory CA as bootstrap-ca.crt, HTTPS on loopback"
            .into(),
    );
    let admin = InProcessAdmin::start(
        &factory,
        Some(gateway_sim::scenario::inproc::INPROC_TC_URI.into()),
    )
    .map_err(|e| e.to_string())?;
    say(format!("server: {}", admin.describe()));
    say(format!(
        "registering {} gateways on the server; each gets a factory certificate (CN = its EUI) \
         and a station home holding only cups-boot.* and sig-0.key, package 1.0.0",
        args.gateways
    ));
    let config = RunnerConfig::new(args.gateways, args.seed);
    let mut runner = Runner::new(admin, &factory, config).map_err(|e| e.to_string())?;
    if let Some(tc) = runner.tc_side() {
        say(format!(
            "LNS endpoint on {} (router-info + muxs, client certificates of the gateway CA)",
            tc.addr(0).map_or_else(String::new, |a| a.to_string())
        ));
    }
    runner.set_progress(scenario_progress(args.json));
    say(
        "first boot: each station finds no URI on its regular and backup sets, falls back to \
         bootstrap, receives its own CUPS + TC credentials, proves them on the regular set, and \
         connects to the LNS with its TC certificate"
            .into(),
    );
    runner.run(Scenario::FirstBoot).map_err(|e| e.to_string())?;
    eprintln!();
    if let Some(p) = runner.phases().last() {
        say(format!(
            "first boot: {}/{} gateways on their own credentials, CRCs equal the server's, \
             TC session up; {} requests, p99 {:.1} ms",
            p.gateways_done, args.gateways, p.requests, p.latency_p99_ms
        ));
    }
    say(format!(
        "rollout: the operator adds firmware {} (an `echo {} > version.txt` script) — the \
         server signs it with sig-0; each station verifies the signature, runs it, and reports \
         the new package at its next 24 h poll (virtual time)",
        gateway_sim::scenario::ROLLOUT_VERSION,
        gateway_sim::scenario::ROLLOUT_VERSION
    ));
    runner.run(Scenario::Rollout).map_err(|e| e.to_string())?;
    eprintln!();
    if let Some(p) = runner.phases().last() {
        say(format!(
            "rollout: {}/{} gateways run {}, the server stopped offering it; {} updates applied",
            p.gateways_done,
            args.gateways,
            gateway_sim::scenario::ROLLOUT_VERSION,
            p.updates_applied
        ));
    }
    let report = runner.report(Scenario::Rollout);
    say("done".into());
    print_report(&report, args.json);
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
        let Command::Run(a) = cli.command else {
            panic!("run")
        };
        assert_eq!(a.gateways, 3);
        let cli = Cli::try_parse_from(["gateway-sim", "run", "all", "--gateways", "5"]).unwrap();
        let Command::Run(a) = cli.command else {
            panic!("run")
        };
        assert_eq!(a.scenario.parse::<Scenario>(), Ok(Scenario::All));
        let cli = Cli::try_parse_from(["gateway-sim", "demo"]).unwrap();
        let Command::Demo(d) = cli.command else {
            panic!("demo")
        };
        assert_eq!(d.gateways, 100);
    }

    use clap::CommandFactory;
}
