//! The operator command line `cups-server`: argument parsing, configuration, logging and
//! wiring; the work is done by [`crate::service`], [`crate::serve`], [`crate::pki`] and
//! [`crate::export`].
//!
//! Output conventions: results go to stdout (tables, or JSON with `--json`); warnings and logs
//! go to stderr. Exit status 0 on success, 1 on any error (one line naming what failed), 2 on a
//! usage error (clap).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser as _;
use cups_core::Eui64;
use cups_core::eui::EuiError;

use crate::config::{ConfigError, Environment, LogFormat, Settings, StoreKind};
use crate::export::ExportError;
use crate::pki::{Pki, PkiError, PkiPaths};
use crate::serve::{ServeError, TlsConfigError};
use crate::service::{Service, ServiceError, ServiceSettings};
use crate::store::s3::{S3Config, S3ConfigError, S3Store};
use crate::store::{Store, StoreError, fs::FsStore};

/// `println!` that ignores a closed stdout (`cups-server gateway list | head`).
macro_rules! out {
    () => {
        out!("")
    };
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!` that ignores a closed stdout.
macro_rules! outp {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        let _ = write!(stdout, $($arg)*);
        let _ = stdout.flush();
    }};
}

pub mod args;
mod config_cmd;
mod firmware;
mod gateway;
mod init;
mod plan;
mod serve;

use args::{Cli, Command};

/// Everything that can make a command fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An EUI argument does not parse.
    #[error("invalid EUI {text:?}: {source}")]
    Eui {
        /// The argument.
        text: String,
        /// Why.
        #[source]
        source: EuiError,
    },
    /// A `KEY=VALUE` argument is malformed.
    #[error("invalid {what} {text:?}: {reason}")]
    Argument {
        /// Which argument.
        what: &'static str,
        /// Its value.
        text: String,
        /// Why.
        reason: &'static str,
    },
    /// The PKI cannot be used.
    #[error("PKI in {}: {source} (inspect it with `cups-server init --inspect`; create one with `cups-server init`)", dir.display())]
    Pki {
        /// The PKI directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: PkiError,
    },
    /// The store cannot be opened.
    #[error("cannot open the {kind} store: {source}")]
    Store {
        /// Which backend.
        kind: StoreKind,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The S3 configuration is unusable.
    #[error("S3 store: {0}")]
    S3Config(#[from] S3ConfigError),
    /// The service refused or failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// Exporting a station home failed.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The server failed.
    #[error(transparent)]
    Serve(#[from] ServeFailure),
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// JSON output could not be produced.
    #[error("JSON output: {0}")]
    Json(#[from] serde_json::Error),
    /// A command over several gateways stopped at its first failure; the ones before it are
    /// done.
    #[error(
        "gateway {failed}: {source} ({done} of {total} gateways {what} before this failure; the rest were not tried)"
    )]
    Batch {
        /// The gateway that failed (canonical EUI).
        failed: String,
        /// How many were done before it.
        done: usize,
        /// How many were asked for.
        total: usize,
        /// What was done to them (`registered`, `updated`, ...).
        what: &'static str,
        /// Why it failed.
        #[source]
        source: Box<CliError>,
    },
    /// A check failed (e.g. `init --inspect` on an unusable PKI); the details were printed.
    #[error("{0}")]
    Failed(String),
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeFailure {
    /// The TLS configuration was refused.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// A listener could not be bound (or the server failed).
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Run the command line from the process arguments and environment; the binary's `main`.
#[must_use]
pub fn main() -> ExitCode {
    run_from(std::env::args_os())
}

/// Run with these arguments (the first is the program name).
pub fn run_from(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print and exit 0; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolve the configuration, set up logging and run the command.
///
/// # Errors
/// Whatever the command fails with.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let mut overrides = cli.global.overrides();
    if let Command::Serve(a) = &cli.command {
        a.apply(&mut overrides);
    }
    let env = Environment::from_process(cli.global.env_file.as_deref())?;
    let settings = Settings::resolve(&overrides, &env)?;
    let is_serve = matches!(cli.command, Command::Serve(_));
    init_logging(
        settings.log_format.value,
        cli.global.verbose,
        is_serve,
        &env,
    );
    let ctx = Ctx { settings };
    match cli.command {
        Command::Config(a) => config_cmd::run(&ctx, &a),
        Command::Init(a) => init::run(&ctx, &a),
        Command::Serve(a) => block_on(serve::run(&ctx, &a)),
        Command::Gateway { command } => block_on(gateway::run(&ctx, command)),
        Command::Firmware { command } => block_on(firmware::run(&ctx, command)),
        Command::Plan(a) => block_on(plan::run(&ctx, &a)),
    }
}

/// What every command gets.
struct Ctx {
    settings: Settings,
}

impl Ctx {
    /// Print a warning for the operator (stderr; a log event with `--log-format json`).
    fn warn(&self, msg: &str) {
        match self.settings.log_format.value {
            LogFormat::Text => eprintln!("warning: {msg}"),
            LogFormat::Json => tracing::warn!("{msg}"),
        }
    }

    fn pki_paths(&self) -> PkiPaths {
        PkiPaths::new(self.settings.cert_path.value.clone())
    }

    /// Load the PKI.
    fn load_pki(&self) -> Result<Pki, CliError> {
        let paths = self.pki_paths();
        Pki::load(&paths).map_err(|source| CliError::Pki {
            dir: paths.dir,
            source,
        })
    }

    /// Open the configured store (blocking for the filesystem store: call before serving).
    fn open_store(&self) -> Result<Arc<dyn Store>, CliError> {
        let s = &self.settings;
        match s.store.value {
            StoreKind::Fs => FsStore::open(s.data_dir.value.clone())
                .map(|st| Arc::new(st) as Arc<dyn Store>)
                .map_err(|source| CliError::Store {
                    kind: StoreKind::Fs,
                    source,
                }),
            StoreKind::S3 => {
                let config = self.s3_config().ok_or(ConfigError::S3WithoutBucket {
                    store_source: s.store.source.clone(),
                })?;
                Ok(Arc::new(S3Store::new(config)?))
            }
        }
    }

    /// The S3 client configuration, if `S3_BUCKET_NAME` is set.
    fn s3_config(&self) -> Option<S3Config> {
        let s3 = self.settings.s3.as_ref()?;
        let endpoint = s3.endpoint.value.clone();
        Some(S3Config {
            bucket: s3.bucket.value.clone(),
            region: s3.region.value.clone(),
            allow_http: endpoint
                .as_deref()
                .is_some_and(|e| e.to_ascii_lowercase().starts_with("http://")),
            endpoint,
            access_key_id: s3.access_key_id.value.clone().unwrap_or_default(),
            secret_access_key: s3.secret_access_key.value.clone().unwrap_or_default(),
            prefix: s3.prefix.value.clone(),
        })
    }

    /// What the service needs from the settings.
    fn service_settings(&self) -> ServiceSettings {
        let s = &self.settings;
        ServiceSettings {
            cups_uri: s.cups_uri.value.clone(),
            tc_uri: s.tc_uri.value.clone(),
            credential_validity_days: s.credential_valid_days.value,
            min_valid_days: s.min_valid_days.value,
            allow_unsigned: s.allow_unsigned.value,
            bootstrap_token_sha256: s.bootstrap_token_sha256.value.clone(),
            cache_capacity: s.cache_capacity.value,
            rate_limit_interval: (s.rate_limit_secs.value > 0)
                .then(|| std::time::Duration::from_secs(s.rate_limit_secs.value)),
            ..ServiceSettings::default()
        }
    }

    /// The service over `store` with `pki`.
    fn service_with_store(&self, store: Arc<dyn Store>, pki: Pki) -> Result<Service, CliError> {
        Ok(Service::new(store, Arc::new(pki), self.service_settings())?)
    }

    /// Store + service with `pki`.
    fn service_with(&self, pki: Pki) -> Result<Service, CliError> {
        self.service_with_store(self.open_store()?, pki)
    }

    fn service(&self) -> Result<Service, CliError> {
        self.service_with(self.load_pki()?)
    }
}

/// Parse an EUI in any form.
fn parse_eui(text: &str) -> Result<Eui64, CliError> {
    Eui64::parse(text.trim()).map_err(|source| CliError::Eui {
        text: text.to_owned(),
        source,
    })
}

/// How long blocking store tasks may still run after a command finished.
const RUNTIME_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Run a future on a fresh multi-threaded runtime.
fn block_on<F: Future<Output = Result<(), CliError>>>(fut: F) -> Result<(), CliError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let result = rt.block_on(fut);
    rt.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    result
}

/// Logs to stderr: `RUST_LOG` if set, else `info` for `serve` and `warn` for the other
/// commands, raised by `-v` (debug) and `-vv` (trace).
fn init_logging(format: LogFormat, verbose: u8, is_serve: bool, env: &Environment) {
    use tracing_subscriber::EnvFilter;
    let level = match (verbose, is_serve) {
        (0, true) => "info",
        (0, false) => "warn",
        (1, _) => "debug",
        _ => "trace",
    };
    let filter = env
        .var("RUST_LOG")
        .filter(|v| !v.is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // A second initialisation (tests calling `run` twice) is not an error worth reporting.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
