//! Effective configuration of `cups-server`: every setting resolved once, with where it came
//! from.
//!
//! Precedence, highest first: **command-line flag > process environment > `.env` file >
//! default**. The `.env` file (dotenvy syntax, `./.env` unless `--env-file` names another) is
//! parsed into a map and never written into the process environment, so real environment
//! variables always win over it. Empty values (`CREDENTIAL_MIN_VALID_DAYS=` as in the replaced
//! system's `.env.example`) count as unset.
//!
//! The replaced system's names are accepted as they were: `S3_BUCKET_NAME`,
//! `S3_BUCKET_REGION`, `S3_BUCKET_ENDPOINT`, `S3_ACCESS_KEY_ID`, `S3_SECRET_ACCESS_KEY`,
//! `CERT_PATH`, `CREDENTIAL_MIN_VALID_DAYS`, `TC_URI`, `CUPS_URI`. Its `CERT_HOST_PATH` only
//! mattered to its docker-compose file and is ignored. Our own settings are prefixed `CUPS_`.
//! [`SETTINGS`] documents each one (flag, environment name, default, meaning); `cups-server
//! config --docs` prints that table.
//!
//! [`Settings::resolve`] takes the flags ([`Overrides`]) and an [`Environment`] (process
//! environment + `.env` map), so tests inject both and never touch the process environment.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use cups_core::response::encoder::{check_cups_uri, check_tc_uri};

/// Default data directory of the filesystem store.
pub const DEFAULT_DATA_DIR: &str = "data";
/// Default PKI directory (`CERT_PATH`).
pub const DEFAULT_CERT_PATH: &str = "certs";
/// Default `.env` file, relative to the working directory.
pub const DEFAULT_ENV_FILE: &str = ".env";
/// Default port of the CUPS listener (and of the `cups.uri` written when `CUPS_URI` is unset).
pub const DEFAULT_PORT: u16 = 16050;
/// Default CUPS listener: every interface, since gateways connect from the network.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, DEFAULT_PORT));
/// Default admin listener (`/healthz`, `/readyz`, `/metrics`): loopback only.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 16051));
/// Default most concurrent CUPS connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default validity of minted gateway client certificates, in days.
pub const DEFAULT_CREDENTIAL_VALID_DAYS: u32 = 365;
/// Default renewal threshold (`CREDENTIAL_MIN_VALID_DAYS`), in days.
pub const DEFAULT_MIN_VALID_DAYS: u32 = 30;
/// Default number of gateway records kept parsed in memory.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;
/// Default per-EUI rate limit in seconds (0 = off).
pub const DEFAULT_RATE_LIMIT_SECS: u64 = 0;
/// Largest accepted rate-limit interval: above the station's 60 s resync it would turn away a
/// gateway reconnecting after a credential change.
pub const MAX_RATE_LIMIT_SECS: u64 = 59;
/// Default S3 region when `S3_BUCKET_REGION` is unset.
pub const DEFAULT_S3_REGION: &str = "us-east-1";
/// Length of a SHA-256 in lowercase hex (`CUPS_BOOTSTRAP_TOKEN_SHA256` entries).
pub const SHA256_HEX_LEN: usize = 64;
/// Longest credential validity accepted, in days (about 100 years).
pub const MAX_CREDENTIAL_VALID_DAYS: u32 = 36_500;
/// What a masked secret is shown as.
pub const MASK: &str = "********";

/// Environment names.
pub mod env {
    /// Filesystem store directory.
    pub const DATA_DIR: &str = "CUPS_DATA_DIR";
    /// `fs` or `s3`.
    pub const STORE: &str = "CUPS_STORE";
    /// PKI directory (the replaced system's name).
    pub const CERT_PATH: &str = "CERT_PATH";
    /// `text` or `json`.
    pub const LOG_FORMAT: &str = "CUPS_LOG_FORMAT";
    /// Default CUPS URI sent to gateways (the replaced system's name).
    pub const CUPS_URI: &str = "CUPS_URI";
    /// Default TC URI sent to gateways (the replaced system's name).
    pub const TC_URI: &str = "TC_URI";
    /// CUPS listener address.
    pub const LISTEN: &str = "CUPS_LISTEN";
    /// Admin listener address (or `off`).
    pub const ADMIN_LISTEN: &str = "CUPS_ADMIN_LISTEN";
    /// Most concurrent CUPS connections.
    pub const MAX_CONNECTIONS: &str = "CUPS_MAX_CONNECTIONS";
    /// Validity of minted client certificates.
    pub const CREDENTIAL_VALID_DAYS: &str = "CUPS_CREDENTIAL_VALID_DAYS";
    /// Renewal threshold (the replaced system's name).
    pub const CREDENTIAL_MIN_VALID_DAYS: &str = "CREDENTIAL_MIN_VALID_DAYS";
    /// Offer unsigned updates to gateways without keys.
    pub const ALLOW_UNSIGNED: &str = "CUPS_ALLOW_UNSIGNED";
    /// SHA-256 hex of fleet-wide bootstrap tokens.
    pub const BOOTSTRAP_TOKEN_SHA256: &str = "CUPS_BOOTSTRAP_TOKEN_SHA256";
    /// Gateway record cache size.
    pub const CACHE_CAPACITY: &str = "CUPS_CACHE_CAPACITY";
    /// Per-EUI rate limit, seconds.
    pub const RATE_LIMIT_SECS: &str = "CUPS_RATE_LIMIT_SECS";
    /// S3 bucket (the replaced system's name).
    pub const S3_BUCKET_NAME: &str = "S3_BUCKET_NAME";
    /// S3 region (the replaced system's name).
    pub const S3_BUCKET_REGION: &str = "S3_BUCKET_REGION";
    /// S3 endpoint (the replaced system's name).
    pub const S3_BUCKET_ENDPOINT: &str = "S3_BUCKET_ENDPOINT";
    /// S3 access key id (the replaced system's name).
    pub const S3_ACCESS_KEY_ID: &str = "S3_ACCESS_KEY_ID";
    /// S3 secret access key (the replaced system's name).
    pub const S3_SECRET_ACCESS_KEY: &str = "S3_SECRET_ACCESS_KEY";
    /// Key prefix inside the bucket.
    pub const S3_PREFIX: &str = "CUPS_S3_PREFIX";
}

// ---------------------------------------------------------------------------------------------
// Documentation table
// ---------------------------------------------------------------------------------------------

/// One documented setting (a row of the README table).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SettingDoc {
    /// Name in `cups-server config` output.
    pub key: &'static str,
    /// Command-line flag (`""`: none).
    pub flag: &'static str,
    /// Environment / `.env` name (`""`: none).
    pub env: &'static str,
    /// Default, as text.
    pub default: &'static str,
    /// What it does.
    pub meaning: &'static str,
}

/// Every setting, in `config` output order.
pub const SETTINGS: &[SettingDoc] = &[
    SettingDoc {
        key: "env_file",
        flag: "--env-file FILE",
        env: "",
        default: ".env",
        meaning: "`.env` file read from the working directory (missing is fine unless named with the flag); it never overrides real environment variables",
    },
    SettingDoc {
        key: "store",
        flag: "--store fs|s3",
        env: env::STORE,
        default: "fs; s3 when S3_BUCKET_NAME is set",
        meaning: "storage backend: the embedded filesystem store or S3-compatible object storage",
    },
    SettingDoc {
        key: "data_dir",
        flag: "--data-dir DIR",
        env: env::DATA_DIR,
        default: DEFAULT_DATA_DIR,
        meaning: "directory of the filesystem store (created if missing; records are mode 0600)",
    },
    SettingDoc {
        key: "cert_path",
        flag: "--cert-path DIR",
        env: env::CERT_PATH,
        default: DEFAULT_CERT_PATH,
        meaning: "PKI directory: ca.crt/ca.key (gateway CA), cups.crt/cups.key (server identity), sig-N.pem/sig-N.key (signing keys), bootstrap-ca.crt (optional)",
    },
    SettingDoc {
        key: "log_format",
        flag: "--log-format text|json",
        env: env::LOG_FORMAT,
        default: "text",
        meaning: "log format on stderr; `-v`/`-vv` raise the level, `RUST_LOG` overrides the filter",
    },
    SettingDoc {
        key: "verbosity",
        flag: "-v, -vv",
        env: "RUST_LOG",
        default: "info for serve, warn otherwise",
        meaning: "log level on stderr (`-v` debug, `-vv` trace); `RUST_LOG` (an EnvFilter directive) replaces it",
    },
    SettingDoc {
        key: "cups_uri",
        flag: "--default-cups-uri URI",
        env: env::CUPS_URI,
        default: "unset",
        meaning: "CUPS URI (`https://host:port`) sent to gateways whose record names none; unset: gateways are never told to move, and `gateway export` writes `https://localhost:<listen port>`",
    },
    SettingDoc {
        key: "tc_uri",
        flag: "--default-tc-uri URI",
        env: env::TC_URI,
        default: "unset",
        meaning: "LNS URI (`wss://host:port`) sent to gateways whose record names none; unset: no TC URI is sent (serve warns)",
    },
    SettingDoc {
        key: "listen",
        flag: "serve --listen ADDR",
        env: env::LISTEN,
        default: "0.0.0.0:16050",
        meaning: "CUPS listener (HTTPS; HTTP only with `serve --insecure-http`)",
    },
    SettingDoc {
        key: "admin_listen",
        flag: "serve --admin-listen ADDR|off",
        env: env::ADMIN_LISTEN,
        default: "127.0.0.1:16051",
        meaning: "admin listener (plain HTTP: /healthz, /readyz, /metrics); `off` disables it",
    },
    SettingDoc {
        key: "max_connections",
        flag: "serve --max-connections N",
        env: env::MAX_CONNECTIONS,
        default: "4096",
        meaning: "most concurrent CUPS connections; further ones wait in the listen backlog",
    },
    SettingDoc {
        key: "insecure_http",
        flag: "serve --insecure-http",
        env: "",
        default: "off",
        meaning: "serve plain HTTP instead of HTTPS (flag only; stations send tokens only over TLS)",
    },
    SettingDoc {
        key: "credential_valid_days",
        flag: "--credential-valid-days N",
        env: env::CREDENTIAL_VALID_DAYS,
        default: "365",
        meaning: "validity of minted gateway client certificates",
    },
    SettingDoc {
        key: "credential_min_valid_days",
        flag: "--credential-min-valid-days N",
        env: env::CREDENTIAL_MIN_VALID_DAYS,
        default: "30",
        meaning: "renew a client certificate that expires within this many days (must be below the validity)",
    },
    SettingDoc {
        key: "allow_unsigned",
        flag: "--allow-unsigned",
        env: env::ALLOW_UNSIGNED,
        default: "false",
        meaning: "offer unsigned updates to gateways that hold no signing key (true/false, 1/0, yes/no, on/off)",
    },
    SettingDoc {
        key: "bootstrap_token_sha256",
        flag: "--bootstrap-token-sha256 HEX",
        env: env::BOOTSTRAP_TOKEN_SHA256,
        default: "none",
        meaning: "SHA-256 (hex) of fleet-wide bootstrap tokens, comma-separated; honoured only for registered gateways that never used their own credentials",
    },
    SettingDoc {
        key: "cache_capacity",
        flag: "--cache-capacity N",
        env: env::CACHE_CAPACITY,
        default: "10000",
        meaning: "gateway records kept parsed in memory (revalidated by ETag); 0 disables",
    },
    SettingDoc {
        key: "rate_limit_secs",
        flag: "--rate-limit-secs N",
        env: env::RATE_LIMIT_SECS,
        default: "0 (off)",
        meaning: "per-EUI rate limit: a gateway served less than N s ago gets 200 \"nothing to do\" (0..=59; never a non-200)",
    },
    SettingDoc {
        key: "s3_bucket",
        flag: "",
        env: env::S3_BUCKET_NAME,
        default: "unset",
        meaning: "S3 bucket; setting it selects the S3 store unless --store/CUPS_STORE says otherwise",
    },
    SettingDoc {
        key: "s3_region",
        flag: "",
        env: env::S3_BUCKET_REGION,
        default: DEFAULT_S3_REGION,
        meaning: "S3 region",
    },
    SettingDoc {
        key: "s3_endpoint",
        flag: "",
        env: env::S3_BUCKET_ENDPOINT,
        default: "AWS",
        meaning: "endpoint URL of an S3-compatible store (MinIO, Ceph RGW, Garage); `http://` is allowed",
    },
    SettingDoc {
        key: "s3_access_key_id",
        flag: "",
        env: env::S3_ACCESS_KEY_ID,
        default: "unset",
        meaning: "S3 access key id",
    },
    SettingDoc {
        key: "s3_secret_access_key",
        flag: "",
        env: env::S3_SECRET_ACCESS_KEY,
        default: "unset",
        meaning: "S3 secret access key (masked in `config` output)",
    },
    SettingDoc {
        key: "s3_prefix",
        flag: "",
        env: env::S3_PREFIX,
        default: "none",
        meaning: "key prefix inside the bucket (several deployments in one bucket)",
    },
];

/// The documentation table as Markdown (`cups-server config --docs`).
#[must_use]
pub fn settings_markdown() -> String {
    // `|` must be escaped inside a table cell, even in a code span.
    let cell = |s: &str| {
        if s.is_empty() {
            "—".to_owned()
        } else {
            format!("`{}`", s.replace('|', "\\|"))
        }
    };
    let mut out = String::from("| flag | environment | default | meaning |\n|---|---|---|---|\n");
    for d in SETTINGS {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            cell(d.flag),
            cell(d.env),
            d.default.replace('|', "\\|"),
            d.meaning.replace('|', "\\|")
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Sources and errors
// ---------------------------------------------------------------------------------------------

/// Where a value came from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Source {
    /// A command-line flag.
    Flag(&'static str),
    /// The process environment.
    Env(&'static str),
    /// The `.env` file.
    DotEnv(&'static str),
    /// The built-in default.
    Default,
    /// Derived from another setting (the text says how).
    Derived(&'static str),
}

impl Source {
    /// Whether the value was given (flag, environment or `.env`) rather than defaulted.
    #[must_use]
    pub fn is_given(&self) -> bool {
        matches!(self, Self::Flag(_) | Self::Env(_) | Self::DotEnv(_))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(flag) => write!(f, "flag {flag}"),
            Self::Env(name) => write!(f, "env {name}"),
            Self::DotEnv(name) => write!(f, ".env {name}"),
            Self::Default => f.write_str("default"),
            Self::Derived(how) => write!(f, "derived: {how}"),
        }
    }
}

/// A value and where it came from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Resolved<T> {
    /// The value.
    pub value: T,
    /// Its source.
    pub source: Source,
}

impl<T> Resolved<T> {
    fn new(value: T, source: Source) -> Self {
        Self { value, source }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value that does not parse or is out of range.
    #[error("{source_name}: invalid value {value:?}: {reason}")]
    Invalid {
        /// Where it came from (flag or variable).
        source_name: String,
        /// The value (masked for secrets).
        value: String,
        /// Why.
        reason: String,
    },
    /// The `.env` file could not be read or parsed.
    #[error("{}: {source}", path.display())]
    DotEnv {
        /// The file.
        path: PathBuf,
        /// dotenvy's error.
        #[source]
        source: dotenvy::Error,
    },
    /// The S3 store is selected but no bucket is configured.
    #[error("the S3 store ({store_source}) needs {}", env::S3_BUCKET_NAME)]
    S3WithoutBucket {
        /// Where `store = s3` came from.
        store_source: Source,
    },
    /// The renewal threshold is not below the validity.
    #[error(
        "credential validity ({validity} days, {validity_source}) must exceed the renewal threshold ({min} days, {min_source})"
    )]
    ValidityTooShort {
        /// Validity in days.
        validity: u32,
        /// Its source.
        validity_source: Source,
        /// Threshold in days.
        min: u32,
        /// Its source.
        min_source: Source,
    },
}

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

/// Storage backend.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum StoreKind {
    /// The embedded filesystem store under `--data-dir`.
    Fs,
    /// S3-compatible object storage (`S3_*` variables).
    S3,
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fs => "fs",
            Self::S3 => "s3",
        })
    }
}

/// Log output format.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

/// The admin listener setting: an address or off.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AdminListen {
    /// Listen here.
    On(SocketAddr),
    /// No admin listener.
    Off,
}

impl AdminListen {
    /// The address, if on.
    #[must_use]
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Self::On(a) => Some(a),
            Self::Off => None,
        }
    }
}

impl fmt::Display for AdminListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::On(a) => a.fmt(f),
            Self::Off => f.write_str("off"),
        }
    }
}

impl std::str::FromStr for AdminListen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "none" | "no" | "false" => Ok(Self::Off),
            _ => s
                .trim()
                .parse()
                .map(Self::On)
                .map_err(|e| format!("{e} (expected HOST:PORT or `off`)")),
        }
    }
}

/// What command-line flags gave. `None` / empty: not given.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct Overrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--store`.
    pub store: Option<StoreKind>,
    /// `--cert-path`.
    pub cert_path: Option<PathBuf>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
    /// `--default-cups-uri`.
    pub cups_uri: Option<String>,
    /// `--default-tc-uri`.
    pub tc_uri: Option<String>,
    /// `serve --listen`.
    pub listen: Option<SocketAddr>,
    /// `serve --admin-listen`.
    pub admin_listen: Option<AdminListen>,
    /// `serve --max-connections`.
    pub max_connections: Option<usize>,
    /// `serve --insecure-http`.
    pub insecure_http: bool,
    /// `--credential-valid-days`.
    pub credential_valid_days: Option<u32>,
    /// `--credential-min-valid-days`.
    pub min_valid_days: Option<u32>,
    /// `--allow-unsigned` (only ever `Some(true)` from the flag).
    pub allow_unsigned: Option<bool>,
    /// `--bootstrap-token-sha256` (repeatable).
    pub bootstrap_token_sha256: Vec<String>,
    /// `--cache-capacity`.
    pub cache_capacity: Option<usize>,
    /// `--rate-limit-secs`.
    pub rate_limit_secs: Option<u64>,
}

/// The process environment and the `.env` map (injectable for tests).
#[derive(Clone, Default, Debug)]
pub struct Environment {
    vars: BTreeMap<String, String>,
    dotenv: BTreeMap<String, String>,
    dotenv_path: Option<PathBuf>,
}

impl Environment {
    /// From explicit maps (tests): `vars` plays the process environment, `dotenv` the file.
    #[must_use]
    pub fn from_maps(vars: BTreeMap<String, String>, dotenv: BTreeMap<String, String>) -> Self {
        Self {
            vars,
            dotenv,
            dotenv_path: None,
        }
    }

    /// The process environment plus the `.env` file: `env_file` if given (it must exist), else
    /// `./.env` if it exists. Variables that are not UTF-8 are ignored.
    ///
    /// # Errors
    /// [`ConfigError::DotEnv`] if the file cannot be read or parsed.
    pub fn from_process(env_file: Option<&Path>) -> Result<Self, ConfigError> {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Self::load(vars, env_file, Path::new(DEFAULT_ENV_FILE))
    }

    /// `vars` as the environment plus a `.env` file: `env_file` if given (it must exist), else
    /// `default_file` if it exists.
    ///
    /// # Errors
    /// [`ConfigError::DotEnv`] if the file cannot be read or parsed.
    pub fn load(
        vars: BTreeMap<String, String>,
        env_file: Option<&Path>,
        default_file: &Path,
    ) -> Result<Self, ConfigError> {
        let (path, required) = match env_file {
            Some(p) => (p, true),
            None => (default_file, false),
        };
        let dotenv = read_dotenv(path, required)?;
        Ok(Self {
            vars,
            dotenv_path: dotenv.as_ref().map(|_| path.to_path_buf()),
            dotenv: dotenv.unwrap_or_default(),
        })
    }

    /// The `.env` file that was read, if any.
    #[must_use]
    pub fn dotenv_path(&self) -> Option<&Path> {
        self.dotenv_path.as_deref()
    }

    /// `name` from the environment, else from `.env`; empty values count as unset.
    #[must_use]
    pub fn lookup(&self, name: &'static str) -> Option<(String, Source)> {
        if let Some(v) = self.vars.get(name).filter(|v| !v.is_empty()) {
            return Some((v.clone(), Source::Env(name)));
        }
        self.dotenv
            .get(name)
            .filter(|v| !v.is_empty())
            .map(|v| (v.clone(), Source::DotEnv(name)))
    }

    /// A raw environment variable (not `.env`), e.g. `RUST_LOG`.
    #[must_use]
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

/// Parse a `.env` file into a map. `Ok(None)` if it does not exist and is not `required`.
fn read_dotenv(
    path: &Path,
    required: bool,
) -> Result<Option<BTreeMap<String, String>>, ConfigError> {
    let iter = match dotenvy::from_path_iter(path) {
        Ok(iter) => iter,
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(None);
        }
        Err(source) => {
            return Err(ConfigError::DotEnv {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut map = BTreeMap::new();
    for item in iter {
        let (k, v) = item.map_err(|source| ConfigError::DotEnv {
            path: path.to_path_buf(),
            source,
        })?;
        map.insert(k, v);
    }
    Ok(Some(map))
}

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

/// S3 connection settings (present when `S3_BUCKET_NAME` is set).
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// `S3_BUCKET_NAME`.
    pub bucket: Resolved<String>,
    /// `S3_BUCKET_REGION`.
    pub region: Resolved<String>,
    /// `S3_BUCKET_ENDPOINT`.
    pub endpoint: Resolved<Option<String>>,
    /// `S3_ACCESS_KEY_ID`.
    pub access_key_id: Resolved<Option<String>>,
    /// `S3_SECRET_ACCESS_KEY` (never printed).
    pub secret_access_key: Resolved<Option<String>>,
    /// `CUPS_S3_PREFIX`.
    pub prefix: Resolved<Option<String>>,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket.value)
            .field("region", &self.region.value)
            .field("endpoint", &self.endpoint.value)
            .field("access_key_id", &self.access_key_id.value)
            .field("secret_access_key", &MASK)
            .field("prefix", &self.prefix.value)
            .finish()
    }
}

/// Every setting, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The `.env` file read, if any.
    pub env_file: Option<PathBuf>,
    /// Storage backend.
    pub store: Resolved<StoreKind>,
    /// Filesystem store directory.
    pub data_dir: Resolved<PathBuf>,
    /// PKI directory.
    pub cert_path: Resolved<PathBuf>,
    /// Log format.
    pub log_format: Resolved<LogFormat>,
    /// Default CUPS URI sent to gateways (`None`: never sent).
    pub cups_uri: Resolved<Option<String>>,
    /// Default TC URI sent to gateways (`None`: never sent).
    pub tc_uri: Resolved<Option<String>>,
    /// CUPS listener.
    pub listen: Resolved<SocketAddr>,
    /// Admin listener.
    pub admin_listen: Resolved<AdminListen>,
    /// Connection limit.
    pub max_connections: Resolved<usize>,
    /// Plain HTTP (flag only).
    pub insecure_http: Resolved<bool>,
    /// Client certificate validity, days.
    pub credential_valid_days: Resolved<u32>,
    /// Renewal threshold, days.
    pub min_valid_days: Resolved<u32>,
    /// Unsigned updates for key-less gateways.
    pub allow_unsigned: Resolved<bool>,
    /// Bootstrap token hashes (lowercase hex).
    pub bootstrap_token_sha256: Resolved<Vec<String>>,
    /// Record cache size.
    pub cache_capacity: Resolved<usize>,
    /// Per-EUI rate limit in seconds (0 = off).
    pub rate_limit_secs: Resolved<u64>,
    /// S3 settings (`None` when `S3_BUCKET_NAME` is unset).
    pub s3: Option<S3Settings>,
}

/// One row of `cups-server config`.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize)]
pub struct SettingRow {
    /// Setting name.
    pub key: &'static str,
    /// Effective value (secrets masked).
    pub value: String,
    /// Where it came from.
    pub source: String,
}

fn invalid(source: &Source, value: &str, reason: impl fmt::Display) -> ConfigError {
    let source_name = match source {
        Source::Flag(f) => (*f).to_owned(),
        Source::Env(n) => (*n).to_owned(),
        Source::DotEnv(n) => format!("{n} (in .env)"),
        Source::Default => "default".to_owned(),
        Source::Derived(how) => (*how).to_owned(),
    };
    ConfigError::Invalid {
        source_name,
        value: value.to_owned(),
        reason: reason.to_string(),
    }
}

/// flag > env > `.env` > default, for a value parsed from text.
fn pick<T>(
    flag: Option<T>,
    flag_name: &'static str,
    env: &Environment,
    name: &'static str,
    parse: impl Fn(&str) -> Result<T, String>,
    default: T,
) -> Result<Resolved<T>, ConfigError> {
    if let Some(v) = flag {
        return Ok(Resolved::new(v, Source::Flag(flag_name)));
    }
    match env.lookup(name) {
        Some((text, source)) => match parse(text.trim()) {
            Ok(v) => Ok(Resolved::new(v, source)),
            Err(reason) => Err(invalid(&source, &text, reason)),
        },
        None => Ok(Resolved::new(default, Source::Default)),
    }
}

/// flag > env > `.env` for an optional text value.
fn pick_opt(
    flag: Option<String>,
    flag_name: &'static str,
    env: &Environment,
    name: &'static str,
) -> Resolved<Option<String>> {
    if let Some(v) = flag.filter(|v| !v.is_empty()) {
        return Resolved::new(Some(v), Source::Flag(flag_name));
    }
    match env.lookup(name) {
        Some((v, source)) => Resolved::new(Some(v.trim().to_owned()), source),
        None => Resolved::new(None, Source::Default),
    }
}

/// A boolean as operators write it.
///
/// # Errors
/// A text that is none of `1/0, true/false, yes/no, on/off` (any case).
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("expected true/false, 1/0, yes/no or on/off".to_owned()),
    }
}

fn parse_num<T: std::str::FromStr>(text: &str) -> Result<T, String>
where
    T::Err: fmt::Display,
{
    text.parse::<T>().map_err(|e| e.to_string())
}

/// A rate-limit interval in whole seconds, `0..=MAX_RATE_LIMIT_SECS`.
fn parse_rate_limit(text: &str) -> Result<u64, String> {
    let secs = parse_num::<u64>(text)?;
    if secs > MAX_RATE_LIMIT_SECS {
        return Err(format!(
            "at most {MAX_RATE_LIMIT_SECS} s (the station retries after 60 s)"
        ));
    }
    Ok(secs)
}

/// Comma- or whitespace-separated SHA-256 hex values, lowercased.
///
/// # Errors
/// An entry that is not 64 hex digits.
pub fn parse_sha256_list(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for item in text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        if item.len() != SHA256_HEX_LEN || !item.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{item:?} is not a SHA-256 in hex ({SHA256_HEX_LEN} hex digits; compute it with `printf %s TOKEN | sha256sum`)"
            ));
        }
        let lower = item.to_ascii_lowercase();
        if !out.contains(&lower) {
            out.push(lower);
        }
    }
    Ok(out)
}

fn check_uri(
    r: &Resolved<Option<String>>,
    check: impl Fn(&str) -> Result<(), cups_core::response::UriError>,
) -> Result<(), ConfigError> {
    if let Some(uri) = &r.value {
        check(uri).map_err(|e| invalid(&r.source, uri, e))?;
    }
    Ok(())
}

impl Settings {
    /// Resolve every setting: flags > environment > `.env` > defaults.
    ///
    /// # Errors
    /// The first invalid value, naming its source; the S3 store without a bucket; a renewal
    /// threshold not below the validity.
    pub fn resolve(flags: &Overrides, env: &Environment) -> Result<Self, ConfigError> {
        let s3 = Self::resolve_s3(env);
        let store = match (flags.store, env.lookup(env::STORE)) {
            (Some(kind), _) => Resolved::new(kind, Source::Flag("--store")),
            (None, Some((text, source))) => {
                let kind = match text.trim().to_ascii_lowercase().as_str() {
                    "fs" => StoreKind::Fs,
                    "s3" => StoreKind::S3,
                    _ => return Err(invalid(&source, &text, "expected `fs` or `s3`")),
                };
                Resolved::new(kind, source)
            }
            (None, None) if s3.is_some() => Resolved::new(
                StoreKind::S3,
                Source::Derived("S3_BUCKET_NAME is set and no store was chosen"),
            ),
            (None, None) => Resolved::new(StoreKind::Fs, Source::Default),
        };
        if store.value == StoreKind::S3 && s3.is_none() {
            return Err(ConfigError::S3WithoutBucket {
                store_source: store.source,
            });
        }
        let path = |t: &str| Ok::<_, String>(PathBuf::from(t));
        let data_dir = pick(
            flags.data_dir.clone(),
            "--data-dir",
            env,
            env::DATA_DIR,
            path,
            PathBuf::from(DEFAULT_DATA_DIR),
        )?;
        let cert_path = pick(
            flags.cert_path.clone(),
            "--cert-path",
            env,
            env::CERT_PATH,
            path,
            PathBuf::from(DEFAULT_CERT_PATH),
        )?;
        let log_format = pick(
            flags.log_format,
            "--log-format",
            env,
            env::LOG_FORMAT,
            |t| match t.to_ascii_lowercase().as_str() {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err("expected `text` or `json`".to_owned()),
            },
            LogFormat::Text,
        )?;
        let cups_uri = pick_opt(
            flags.cups_uri.clone(),
            "--default-cups-uri",
            env,
            env::CUPS_URI,
        );
        check_uri(&cups_uri, check_cups_uri)?;
        let tc_uri = pick_opt(flags.tc_uri.clone(), "--default-tc-uri", env, env::TC_URI);
        check_uri(&tc_uri, check_tc_uri)?;
        let listen = pick(
            flags.listen,
            "--listen",
            env,
            env::LISTEN,
            |t| {
                t.parse::<SocketAddr>()
                    .map_err(|e| format!("{e} (expected HOST:PORT, e.g. 0.0.0.0:16050)"))
            },
            DEFAULT_LISTEN,
        )?;
        let admin_listen = pick(
            flags.admin_listen,
            "--admin-listen",
            env,
            env::ADMIN_LISTEN,
            str::parse::<AdminListen>,
            AdminListen::On(DEFAULT_ADMIN_LISTEN),
        )?;
        let max_connections = pick(
            flags.max_connections,
            "--max-connections",
            env,
            env::MAX_CONNECTIONS,
            |t| match parse_num::<usize>(t)? {
                0 => Err("must be at least 1".to_owned()),
                n => Ok(n),
            },
            DEFAULT_MAX_CONNECTIONS,
        )?;
        if flags.max_connections == Some(0) {
            return Err(invalid(
                &Source::Flag("--max-connections"),
                "0",
                "must be at least 1",
            ));
        }
        let insecure_http = if flags.insecure_http {
            Resolved::new(true, Source::Flag("--insecure-http"))
        } else {
            Resolved::new(false, Source::Default)
        };
        let days = |t: &str| match parse_num::<u32>(t)? {
            n if n > MAX_CREDENTIAL_VALID_DAYS => {
                Err(format!("at most {MAX_CREDENTIAL_VALID_DAYS} days"))
            }
            n => Ok(n),
        };
        let credential_valid_days = pick(
            flags.credential_valid_days,
            "--credential-valid-days",
            env,
            env::CREDENTIAL_VALID_DAYS,
            |t| match days(t)? {
                0 => Err("must be at least 1".to_owned()),
                n => Ok(n),
            },
            DEFAULT_CREDENTIAL_VALID_DAYS,
        )?;
        let min_valid_days = pick(
            flags.min_valid_days,
            "--credential-min-valid-days",
            env,
            env::CREDENTIAL_MIN_VALID_DAYS,
            days,
            DEFAULT_MIN_VALID_DAYS,
        )?;
        if min_valid_days.value >= credential_valid_days.value {
            return Err(ConfigError::ValidityTooShort {
                validity: credential_valid_days.value,
                validity_source: credential_valid_days.source,
                min: min_valid_days.value,
                min_source: min_valid_days.source,
            });
        }
        let allow_unsigned = pick(
            flags.allow_unsigned,
            "--allow-unsigned",
            env,
            env::ALLOW_UNSIGNED,
            parse_bool,
            false,
        )?;
        let bootstrap_token_sha256 = if flags.bootstrap_token_sha256.is_empty() {
            pick(
                None,
                "--bootstrap-token-sha256",
                env,
                env::BOOTSTRAP_TOKEN_SHA256,
                parse_sha256_list,
                Vec::new(),
            )?
        } else {
            let joined = flags.bootstrap_token_sha256.join(",");
            let source = Source::Flag("--bootstrap-token-sha256");
            let list = parse_sha256_list(&joined).map_err(|e| invalid(&source, &joined, e))?;
            Resolved::new(list, source)
        };
        let cache_capacity = pick(
            flags.cache_capacity,
            "--cache-capacity",
            env,
            env::CACHE_CAPACITY,
            parse_num::<usize>,
            DEFAULT_CACHE_CAPACITY,
        )?;
        let rate_limit_secs = pick(
            flags.rate_limit_secs,
            "--rate-limit-secs",
            env,
            env::RATE_LIMIT_SECS,
            parse_rate_limit,
            DEFAULT_RATE_LIMIT_SECS,
        )?;
        Ok(Self {
            env_file: env.dotenv_path().map(Path::to_path_buf),
            store,
            data_dir,
            cert_path,
            log_format,
            cups_uri,
            tc_uri,
            listen,
            admin_listen,
            max_connections,
            insecure_http,
            credential_valid_days,
            min_valid_days,
            allow_unsigned,
            bootstrap_token_sha256,
            cache_capacity,
            rate_limit_secs,
            s3,
        })
    }

    fn resolve_s3(env: &Environment) -> Option<S3Settings> {
        let opt = |name| match env.lookup(name) {
            Some((v, s)) => Resolved::new(Some(v), s),
            None => Resolved::new(None, Source::Default),
        };
        let (bucket, bucket_source) = env.lookup(env::S3_BUCKET_NAME)?;
        let region = match env.lookup(env::S3_BUCKET_REGION) {
            Some((v, s)) => Resolved::new(v, s),
            None => Resolved::new(DEFAULT_S3_REGION.to_owned(), Source::Default),
        };
        Some(S3Settings {
            bucket: Resolved::new(bucket, bucket_source),
            region,
            endpoint: opt(env::S3_BUCKET_ENDPOINT),
            access_key_id: opt(env::S3_ACCESS_KEY_ID),
            secret_access_key: opt(env::S3_SECRET_ACCESS_KEY),
            prefix: opt(env::S3_PREFIX),
        })
    }

    /// The CUPS URI `gateway export` writes into `cups.uri`: `CUPS_URI`, else
    /// `https://localhost:<listen port>` (`http` with `--insecure-http`). The flag says whether
    /// it was defaulted (the caller warns).
    #[must_use]
    pub fn export_cups_uri(&self) -> (String, bool) {
        match &self.cups_uri.value {
            Some(uri) => (uri.clone(), false),
            None => (self.local_cups_uri(), true),
        }
    }

    /// `https://localhost:<port of the CUPS listener>` (`http` with `--insecure-http`); an
    /// ephemeral listen port (0) gives [`DEFAULT_PORT`].
    #[must_use]
    pub fn local_cups_uri(&self) -> String {
        let scheme = if self.insecure_http.value {
            "http"
        } else {
            "https"
        };
        let port = match self.listen.value.port() {
            0 => DEFAULT_PORT,
            p => p,
        };
        format!("{scheme}://localhost:{port}")
    }

    /// Host names for a server certificate created implicitly (`serve` on a fresh directory,
    /// `init` without `--dns`): the host name of this machine (if it is a valid DNS name) and
    /// the host of `CUPS_URI` (if set). `localhost` is always added by the PKI.
    #[must_use]
    pub fn implicit_server_names(&self, host_name: Option<&str>) -> Vec<String> {
        let mut names = Vec::new();
        if let Some(h) = host_name.filter(|h| is_dns_name(h)) {
            names.push(h.to_ascii_lowercase());
        }
        if let Some(host) = self.cups_uri.value.as_deref().and_then(uri_host) {
            let host = host.to_ascii_lowercase();
            if (is_dns_name(&host) || host.parse::<IpAddr>().is_ok()) && !names.contains(&host) {
                names.push(host);
            }
        }
        names
    }

    /// Rows for `cups-server config`, in [`SETTINGS`] order, secrets masked.
    #[must_use]
    pub fn rows(&self) -> Vec<SettingRow> {
        fn row<T: fmt::Display>(key: &'static str, r: &Resolved<T>) -> SettingRow {
            SettingRow {
                key,
                value: r.value.to_string(),
                source: r.source.to_string(),
            }
        }
        fn opt_row(key: &'static str, r: &Resolved<Option<String>>, unset: &str) -> SettingRow {
            SettingRow {
                key,
                value: r.value.clone().unwrap_or_else(|| unset.to_owned()),
                source: r.source.to_string(),
            }
        }
        let unset = |key: &'static str, text: &str| SettingRow {
            key,
            value: text.to_owned(),
            source: Source::Default.to_string(),
        };
        let mut rows = vec![
            SettingRow {
                key: "env_file",
                value: self
                    .env_file
                    .as_ref()
                    .map_or_else(|| "(none found)".to_owned(), |p| p.display().to_string()),
                source: if self.env_file.is_some() {
                    "read".to_owned()
                } else {
                    Source::Default.to_string()
                },
            },
            row("store", &self.store),
            SettingRow {
                key: "data_dir",
                value: self.data_dir.value.display().to_string(),
                source: self.data_dir.source.to_string(),
            },
            SettingRow {
                key: "cert_path",
                value: self.cert_path.value.display().to_string(),
                source: self.cert_path.source.to_string(),
            },
            row("log_format", &self.log_format),
            opt_row("cups_uri", &self.cups_uri, "(unset)"),
            opt_row("tc_uri", &self.tc_uri, "(unset)"),
            row("listen", &self.listen),
            row("admin_listen", &self.admin_listen),
            row("max_connections", &self.max_connections),
            row("insecure_http", &self.insecure_http),
            row("credential_valid_days", &self.credential_valid_days),
            row("credential_min_valid_days", &self.min_valid_days),
            row("allow_unsigned", &self.allow_unsigned),
            SettingRow {
                key: "bootstrap_token_sha256",
                value: if self.bootstrap_token_sha256.value.is_empty() {
                    "(none)".to_owned()
                } else {
                    self.bootstrap_token_sha256
                        .value
                        .iter()
                        .map(|h| format!("{}…", h.get(..12).unwrap_or(h)))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                source: self.bootstrap_token_sha256.source.to_string(),
            },
            row("cache_capacity", &self.cache_capacity),
            row("rate_limit_secs", &self.rate_limit_secs),
        ];
        match &self.s3 {
            Some(s3) => {
                rows.push(row("s3_bucket", &s3.bucket));
                rows.push(row("s3_region", &s3.region));
                rows.push(opt_row("s3_endpoint", &s3.endpoint, "(AWS)"));
                rows.push(opt_row("s3_access_key_id", &s3.access_key_id, "(unset)"));
                rows.push(SettingRow {
                    key: "s3_secret_access_key",
                    value: if s3.secret_access_key.value.is_some() {
                        MASK.to_owned()
                    } else {
                        "(unset)".to_owned()
                    },
                    source: s3.secret_access_key.source.to_string(),
                });
                rows.push(opt_row("s3_prefix", &s3.prefix, "(none)"));
            }
            None => rows.push(unset("s3_bucket", "(unset: S3 not configured)")),
        }
        rows
    }
}

/// Whether `name` is a plausible DNS host name (letters, digits, `-`, dots; labels of 1..=63
/// characters not starting or ending with `-`; at most 253 characters).
#[must_use]
pub fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The host of a `scheme://host:port` URI (brackets of IPv6 literals removed).
#[must_use]
pub fn uri_host(uri: &str) -> Option<&str> {
    let rest = uri.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h);
    }
    Some(authority.rsplit_once(':').map_or(authority, |(h, _)| h))
}

/// This machine's host name: `/etc/hostname`, else the `hostname` command; `None` if neither
/// gives a valid DNS name.
#[must_use]
pub fn machine_host_name() -> Option<String> {
    let from_file = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned());
    let name = match from_file.filter(|s| !s.is_empty()) {
        Some(n) => n,
        None => {
            let out = std::process::Command::new("hostname").output().ok()?;
            String::from_utf8(out.stdout).ok()?.trim().to_owned()
        }
    };
    is_dns_name(&name).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)], dotenv: &[(&str, &str)]) -> Environment {
        let m = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        Environment::from_maps(m(vars), m(dotenv))
    }

    #[test]
    fn rate_limit_limits() {
        let at = |v: &str| {
            Settings::resolve(
                &Overrides::default(),
                &env(&[(env::RATE_LIMIT_SECS, v)], &[]),
            )
        };
        assert_eq!(at("0").expect("off").rate_limit_secs.value, 0);
        assert_eq!(at("58").expect("below").rate_limit_secs.value, 58);
        assert_eq!(
            at("59").expect("at the limit").rate_limit_secs.value,
            MAX_RATE_LIMIT_SECS
        );
        assert!(at("60").is_err(), "above the limit");
        assert!(at("ten").is_err());
        let flag = Overrides {
            rate_limit_secs: Some(5),
            ..Overrides::default()
        };
        let s = Settings::resolve(&flag, &env(&[(env::RATE_LIMIT_SECS, "7")], &[])).expect("flag");
        assert_eq!(s.rate_limit_secs.value, 5, "flags beat the environment");
    }

    #[test]
    fn defaults() {
        let s = Settings::resolve(&Overrides::default(), &env(&[], &[])).expect("defaults");
        assert_eq!(s.store.value, StoreKind::Fs);
        assert_eq!(s.data_dir.value, PathBuf::from("data"));
        assert_eq!(s.cert_path.value, PathBuf::from("certs"));
        assert_eq!(s.listen.value, DEFAULT_LISTEN);
        assert_eq!(s.admin_listen.value, AdminListen::On(DEFAULT_ADMIN_LISTEN));
        assert_eq!(s.cups_uri.value, None);
        assert_eq!(
            s.export_cups_uri(),
            ("https://localhost:16050".into(), true)
        );
        assert!(s.s3.is_none());
        assert!(s.rows().iter().all(|r| r.source == "default"));
    }

    #[test]
    fn bool_forms() {
        for t in ["1", "true", "YES", "On"] {
            assert_eq!(parse_bool(t), Ok(true));
        }
        for t in ["0", "false", "No", "OFF"] {
            assert_eq!(parse_bool(t), Ok(false));
        }
        assert!(parse_bool("maybe").is_err());
    }

    #[test]
    fn sha256_list() {
        let a = "a".repeat(64);
        let b = "B".repeat(64);
        assert_eq!(
            parse_sha256_list(&format!("{a}, {b} {a}")),
            Ok(vec![a.clone(), "b".repeat(64)])
        );
        assert!(parse_sha256_list(&"a".repeat(63)).is_err());
        assert!(parse_sha256_list(&"a".repeat(65)).is_err());
        assert!(parse_sha256_list(&"g".repeat(64)).is_err());
        assert_eq!(parse_sha256_list(""), Ok(vec![]));
    }

    #[test]
    fn uri_hosts() {
        assert_eq!(
            uri_host("https://gw.example.org:16050"),
            Some("gw.example.org")
        );
        assert_eq!(uri_host("https://[::1]:443"), Some("::1"));
        assert_eq!(uri_host("https://10.0.0.1:443/"), Some("10.0.0.1"));
        assert_eq!(uri_host("nope"), None);
    }

    #[test]
    fn dns_names() {
        assert!(is_dns_name("gw-1.example.org"));
        assert!(is_dns_name("a1b2c3d4e5f6"));
        assert!(!is_dns_name(""));
        assert!(!is_dns_name("-bad"));
        assert!(!is_dns_name("a..b"));
        assert!(!is_dns_name("under_score"));
        assert!(is_dns_name(&"a".repeat(63)));
        assert!(!is_dns_name(&"a".repeat(64)));
    }

    #[test]
    fn implicit_names() {
        let s = Settings::resolve(
            &Overrides::default(),
            &env(&[("CUPS_URI", "https://Cups.Example.org:443")], &[]),
        )
        .expect("ok");
        assert_eq!(
            s.implicit_server_names(Some("gw-host")),
            ["gw-host", "cups.example.org"]
        );
        assert_eq!(
            s.implicit_server_names(Some("bad_name")),
            ["cups.example.org"]
        );
        let ip = Settings::resolve(
            &Overrides::default(),
            &env(&[("CUPS_URI", "https://10.1.2.3:443")], &[]),
        )
        .expect("ok");
        assert_eq!(ip.implicit_server_names(None), ["10.1.2.3"]);
        let none = Settings::resolve(&Overrides::default(), &env(&[], &[])).expect("ok");
        assert!(none.implicit_server_names(None).is_empty());
    }

    #[test]
    fn admin_listen_parse() {
        assert_eq!("off".parse::<AdminListen>(), Ok(AdminListen::Off));
        assert_eq!(
            "127.0.0.1:0".parse::<AdminListen>(),
            Ok(AdminListen::On("127.0.0.1:0".parse().expect("addr")))
        );
        assert!("localhost".parse::<AdminListen>().is_err());
    }
}
