//! `hil`: run the gateway scenarios against a real Basics Station. Argument parsing and
//! wiring only; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use cups_core::Eui64;
use hil::station::STATION_ENV;
use hil::station_conf::Timers;
use hil::{HilConfig, Scenario, StationTarget, run_scenario};

const EXAMPLES: &str = "\
Examples:
  hil run first-boot --station /opt/basicstation/build-linux-std/bin/station
  CUPS_HIL_STATION=./station hil run all --json > report.json
  hil run renewal --ssh root@gw-lab-3 --home /var/lib/hil-station
  hil list

Scenarios: first-boot, steady-state, renewal, uri-migration, update, bad-signature,
server-outage, lns-outage, or `all`. The station gets a fresh home and temp directory per
scenario, provisioned with the real cups-server (--cups-server PATH; default: next to hil,
else PATH). Over SSH the files are copied with scp and the station reaches this machine's
loopback server and LNS through `ssh -R` tunnels.
Exit status: 0 all checks passed (or skipped), 1 a check failed or setup failed, 2 usage.";

/// Gateway scenarios against a real LoRa Basics Station (local binary or over SSH).
#[derive(Parser, Debug)]
#[command(name = "hil", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run one scenario (or `all`) and print what each side saw
    #[command(after_help = EXAMPLES)]
    Run(Box<RunArgs>),
    /// List the scenarios
    List,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Scenario name, or `all`
    scenario: String,
    /// Local station binary [env: CUPS_HIL_STATION]
    #[arg(long, value_name = "PATH", conflicts_with = "ssh")]
    station: Option<PathBuf>,
    /// Gateway to reach over SSH (user@host)
    #[arg(long, value_name = "DEST", requires = "home")]
    ssh: Option<String>,
    /// Station home directory on the SSH gateway (absolute)
    #[arg(long, value_name = "DIR", requires = "ssh")]
    home: Option<String>,
    /// The station binary on the SSH gateway
    #[arg(long, value_name = "CMD", default_value = "station")]
    remote_station: String,
    /// The ssh program
    #[arg(long, value_name = "PATH", default_value = "ssh")]
    ssh_command: PathBuf,
    /// The scp program
    #[arg(long, value_name = "PATH", default_value = "scp")]
    scp_command: PathBuf,
    /// The cups-server binary
    #[arg(long, value_name = "PATH")]
    cups_server: Option<PathBuf>,
    /// Gateway EUI to provision (any form)
    #[arg(long, value_name = "EUI")]
    eui: Option<String>,
    /// The station's model (firmware is registered for it)
    #[arg(long, value_name = "MODEL", default_value = hil::scenario::DEFAULT_MODEL)]
    model: String,
    /// station.conf CUPS_RESYNC_INTV, seconds
    #[arg(long, value_name = "SECS")]
    resync_secs: Option<u64>,
    /// station.conf CUPS_OKSYNC_INTV, seconds
    #[arg(long, value_name = "SECS")]
    oksync_secs: Option<u64>,
    /// Longest wait for one expected event, seconds (on top of the timer it waits on)
    #[arg(long, value_name = "SECS")]
    step_timeout: Option<u64>,
    /// JSON reports (an array) instead of text
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match cli.command {
        Cmd::List => {
            for s in Scenario::ALL {
                println!("{s}");
            }
            ExitCode::SUCCESS
        }
        Cmd::Run(a) => match run(*a) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run(a: RunArgs) -> Result<bool, String> {
    let scenarios: Vec<Scenario> = if a.scenario == "all" {
        Scenario::ALL.to_vec()
    } else {
        vec![Scenario::from_name(&a.scenario).ok_or_else(|| {
            format!(
                "unknown scenario {:?} (see `hil list`, or use `all`)",
                a.scenario
            )
        })?]
    };
    let target = match (&a.station, &a.ssh, &a.home) {
        (Some(path), _, _) => StationTarget::Local { path: path.clone() },
        (None, Some(dest), Some(home)) => StationTarget::Ssh {
            dest: dest.clone(),
            home: home.clone(),
        },
        _ => match std::env::var_os(STATION_ENV).filter(|p| !p.is_empty()) {
            Some(p) => StationTarget::Local {
                path: PathBuf::from(p),
            },
            None => {
                return Err(format!(
                    "no station configured: pass --station PATH, set {STATION_ENV}, or use --ssh user@host --home DIR"
                ));
            }
        },
    };
    if let StationTarget::Local { path } = &target
        && !path.is_file()
    {
        return Err(format!("station binary {} does not exist", path.display()));
    }
    let mut cfg = HilConfig::new(target);
    cfg.cups_server = a.cups_server;
    cfg.model = a.model;
    cfg.remote_station_bin = a.remote_station;
    cfg.ssh_command = a.ssh_command;
    cfg.scp_command = a.scp_command;
    if let Some(e) = &a.eui {
        cfg.eui = Eui64::parse(e).map_err(|err| format!("invalid --eui {e:?}: {err}"))?;
    }
    let defaults = Timers::default();
    cfg.timers = Timers {
        cups_resync: a
            .resync_secs
            .map_or(defaults.cups_resync, Duration::from_secs),
        cups_oksync: a
            .oksync_secs
            .map_or(defaults.cups_oksync, Duration::from_secs),
        ..defaults
    };
    if let Some(s) = a.step_timeout {
        cfg.step_timeout = Duration::from_secs(s);
    }
    let mut all_passed = true;
    let mut reports = Vec::new();
    for s in scenarios {
        if !a.json {
            eprintln!("running {s} ...");
        }
        let report = run_scenario(&cfg, s).map_err(|e| format!("{s}: {e}"))?;
        all_passed &= report.passed();
        if a.json {
            reports.push(report);
        } else {
            println!("{report}\n");
        }
    }
    if a.json {
        let text = serde_json::to_string_pretty(&reports).map_err(|e| e.to_string())?;
        println!("{text}");
    }
    Ok(all_passed)
}
