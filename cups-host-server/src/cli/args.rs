//! The command line, as clap derive structures. Doc comments are the `--help` texts.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::config::{AdminListen, LogFormat, Overrides, StoreKind};
use crate::export::ExportFormat;

/// Most gateways one `gateway add --count N` registers.
pub const MAX_ADD_COUNT: u64 = 100_000;

const MAIN_EXAMPLES: &str = "\
Examples:
  cups-server serve                                  # fresh clone: creates certs/ and data/
  cups-server gateway add 0016c001ff10a235           # register a gateway (client certificates)
  cups-server gateway export 0016c001ff10a235 --station-home ./gw1
  cups-server firmware add --model linux --version 2.0.7 update.sh
  cups-server plan 0016c001ff10a235                  # what would it receive now, and why
  cups-server config                                 # effective settings and their sources

Configuration: flags > environment > .env (working directory) > defaults.
`cups-server config --docs` prints every setting with its flag, variable and default.";

const SERVE_EXAMPLES: &str = "\
Examples:
  cups-server serve
  cups-server serve --listen 0.0.0.0:443 --default-cups-uri https://cups.example.org:443 \\
      --default-tc-uri wss://lns.example.org:8887
  S3_BUCKET_NAME=cups S3_BUCKET_ENDPOINT=http://127.0.0.1:9000 cups-server serve
  cups-server serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0   # ephemeral ports (tests)

On a directory without a PKI, serve creates one under --cert-path (CA, server certificate for
localhost and this host's name, one update-signing key) and prints what it created.
SIGTERM or Ctrl-C stops accepting and drains in-flight requests.";

const INIT_EXAMPLES: &str = "\
Examples:
  cups-server init                                    # localhost + this host's name
  cups-server init --dns cups.example.org --dns 10.0.0.5 --signing-keys 2
  cups-server init --inspect                          # show what is there, change nothing

Existing files are never overwritten; a missing half of a pair is an error.";

const GATEWAY_EXAMPLES: &str = "\
Examples:
  cups-server gateway add 00-16-C0-01-FF-10-A2-35 --label site=berlin
  cups-server gateway add ::1 --cups-auth token --tc server-auth
  cups-server gateway list --json
  cups-server gateway add 0016c001ff100000 --count 1000   # 0016c001ff100000 .. 0016c001ff1003e7
  cups-server gateway show 16:c001:ff10:a235
  cups-server gateway set 0016c001ff10a235 --tc-uri wss://lns2.example.org:8887
  cups-server gateway renew --all --tc
  cups-server gateway export 0016c001ff10a235 --station-home ./gw1
  cups-server gateway remove 0016c001ff10a235";

const ADD_EXAMPLES: &str = "\
Examples:
  cups-server gateway add 0016c001ff10a235
  cups-server gateway add 0016c001ff10a235 --cups-auth token --tc token
  cups-server gateway add 16:c001:ff10:a235 --tc-uri wss://lns.example.org:8887 --label site=berlin
  cups-server gateway add 0016c001ff10a235 0016c001ff10a240 ::1
  cups-server gateway add 0016c001ff100000 --count 10000   # 10,000 consecutive EUIs

EUIs are accepted in any form (16 hex digits, ID6, with - or : separators).
In token mode the CUPS token is printed once; `gateway export` writes it into cups.key.
Several gateways are registered in order; the first failure stops the command, and the error
says how many were registered (they stay registered). --count is at most 100000.";

const SET_EXAMPLES: &str = "\
Examples:
  cups-server gateway set 0016c001ff10a235 --tc-uri wss://lns2.example.org:8887
  cups-server gateway set 0016c001ff10a235 0016c001ff10a236 --cups-uri https://cups2.example.org:443
  cups-server gateway set ::1 --clear-tc-uri          # back to the server default (TC_URI)

The gateway's next request gets the new URI (a TC URI change reconnects it to the new LNS at
once; a CUPS URI change makes it ask the new server after its resync interval). URIs are
checked as `gateway add` checks them. Several gateways: the first failure stops the command.";

const RENEW_EXAMPLES: &str = "\
Examples:
  cups-server gateway renew 0016c001ff10a235          # CUPS and TC credentials
  cups-server gateway renew 0016c001ff10a235 --tc     # only the LNS credentials
  cups-server gateway renew --all --cups

On its next request the gateway gets freshly minted credentials; the old ones stay valid (shown
as `previous` by `gateway show`) until it reports the new CRC. Credentials not issued yet are
minted on first contact anyway and are left alone.";

const LIST_EXAMPLES: &str = "\
Examples:
  cups-server gateway list
  cups-server gateway list --json | jq '.[].eui'";

const SHOW_EXAMPLES: &str = "\
Examples:
  cups-server gateway show 0016c001ff10a235
  cups-server gateway show ::1 --json

Shows CRCs, serials and expiry dates; never keys, tokens or blobs.";

const REMOVE_EXAMPLES: &str = "\
Examples:
  cups-server gateway remove 0016c001ff10a235

Removes the record and its token index entries; the gateway's next request gets 404.";

const EXPORT_EXAMPLES: &str = "\
Examples:
  cups-server gateway export 0016c001ff10a235 --station-home ./gw1
  cups-server gateway export 0016c001ff10a235 --station-home ./gw1 --bootstrap --force
  cups-server gateway export ::1 --station-home ./gw1 --cups-resync-intv 5s --set TLS_SNI=false

Writes station.conf, cups.uri, cups.trust, cups.crt, cups.key and sig-N.key (no tc.*: CUPS fills
it on first contact). Credentials are minted and stored first if the gateway has none yet.
Copy the directory to the gateway and run the station with it as its home.";

const FIRMWARE_EXAMPLES: &str = "\
Examples:
  cups-server firmware add --model linux --version 2.0.7 update.sh
  cups-server firmware add --model rpi --version 2.0.7 --from 2.0.6 --from 2.0.5 update.bin
  cups-server firmware list
  cups-server firmware remove linux-2.0.7";

const FIRMWARE_ADD_EXAMPLES: &str = "\
Examples:
  cups-server firmware add --model linux --version 2.0.7 update.sh
  cups-server firmware add --model corecell --version 2.0.7 --from 2.0.6 --id cc-207 update.bin

The image is signed once per configured signing key (sig-N.pem) and stored with its
signatures. The station runs it as /tmp/update.bin: it must delete that file and write the new
version into version.txt.";

const FIRMWARE_LIST_EXAMPLES: &str = "\
Examples:
  cups-server firmware list
  cups-server firmware list --json";

const FIRMWARE_REMOVE_EXAMPLES: &str = "\
Examples:
  cups-server firmware remove linux-2.0.7";

const PLAN_EXAMPLES: &str = "\
Examples:
  cups-server plan 0016c001ff10a235
  cups-server plan 0016c001ff10a235 --request captured-request.json --json

Without --request, plans for a request reporting what the gateway was last confirmed to hold.
A dry run: never mints, never writes.";

const CONFIG_EXAMPLES: &str = "\
Examples:
  cups-server config
  CUPS_URI=https://cups.example.org:443 cups-server config --json
  cups-server config --docs          # the settings table (Markdown)";

/// The CUPS server for LoRa Basics Station fleets: per-gateway credentials bound to identity,
/// signed updates, filesystem or S3 storage.
#[derive(Parser, Debug)]
#[command(name = "cups-server", version, after_help = MAIN_EXAMPLES)]
pub struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes (all also settable by environment variable or `.env`).
#[derive(Args, Debug, Default)]
pub struct GlobalArgs {
    /// Filesystem store directory [env: CUPS_DATA_DIR] [default: data]
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help_heading = "Global options"
    )]
    pub data_dir: Option<PathBuf>,
    /// Storage backend [env: CUPS_STORE] [default: fs, or s3 when S3_BUCKET_NAME is set]
    #[arg(long, global = true, value_enum, help_heading = "Global options")]
    pub store: Option<StoreKind>,
    /// PKI directory [env: CERT_PATH] [default: certs]
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help_heading = "Global options"
    )]
    pub cert_path: Option<PathBuf>,
    /// Log format on stderr [env: CUPS_LOG_FORMAT] [default: text]
    #[arg(long, global = true, value_enum, help_heading = "Global options")]
    pub log_format: Option<LogFormat>,
    /// More log output (-v debug, -vv trace); RUST_LOG overrides
    #[arg(short, long, global = true, action = ArgAction::Count, help_heading = "Global options")]
    pub verbose: u8,
    /// The .env file to read (default: ./.env if it exists)
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub env_file: Option<PathBuf>,
    /// CUPS URI sent to gateways whose record names none [env: CUPS_URI]
    #[arg(
        long,
        global = true,
        value_name = "URI",
        help_heading = "Global options"
    )]
    pub default_cups_uri: Option<String>,
    /// LNS URI sent to gateways whose record names none [env: TC_URI]
    #[arg(
        long,
        global = true,
        value_name = "URI",
        help_heading = "Global options"
    )]
    pub default_tc_uri: Option<String>,
    /// Validity of minted client certificates [env: CUPS_CREDENTIAL_VALID_DAYS] [default: 365]
    #[arg(
        long,
        global = true,
        value_name = "DAYS",
        help_heading = "Global options"
    )]
    pub credential_valid_days: Option<u32>,
    /// Renew certificates expiring within this many days [env: CREDENTIAL_MIN_VALID_DAYS] [default: 30]
    #[arg(
        long,
        global = true,
        value_name = "DAYS",
        help_heading = "Global options"
    )]
    pub credential_min_valid_days: Option<u32>,
    /// Offer unsigned updates to gateways without signing keys [env: CUPS_ALLOW_UNSIGNED]
    #[arg(long, global = true, help_heading = "Global options")]
    pub allow_unsigned: bool,
    /// SHA-256 (hex) of a fleet-wide bootstrap token, repeatable [env: CUPS_BOOTSTRAP_TOKEN_SHA256]
    #[arg(
        long,
        global = true,
        value_name = "HEX",
        help_heading = "Global options"
    )]
    pub bootstrap_token_sha256: Vec<String>,
    /// Gateway records cached in memory [env: CUPS_CACHE_CAPACITY] [default: 10000]
    #[arg(long, global = true, value_name = "N", help_heading = "Global options")]
    pub cache_capacity: Option<usize>,
    /// Per-EUI rate limit: a gateway served less than N s ago gets 200 "nothing to do"
    /// (0 = off, at most 59) [env: CUPS_RATE_LIMIT_SECS] [default: 0]
    #[arg(long, global = true, value_name = "N", help_heading = "Global options")]
    pub rate_limit_secs: Option<u64>,
}

impl GlobalArgs {
    /// The flags as configuration overrides (serve flags are added by the caller).
    #[must_use]
    pub fn overrides(&self) -> Overrides {
        Overrides {
            data_dir: self.data_dir.clone(),
            store: self.store,
            cert_path: self.cert_path.clone(),
            log_format: self.log_format,
            cups_uri: self.default_cups_uri.clone(),
            tc_uri: self.default_tc_uri.clone(),
            credential_valid_days: self.credential_valid_days,
            min_valid_days: self.credential_min_valid_days,
            allow_unsigned: self.allow_unsigned.then_some(true),
            bootstrap_token_sha256: self.bootstrap_token_sha256.clone(),
            cache_capacity: self.cache_capacity,
            rate_limit_secs: self.rate_limit_secs,
            ..Overrides::default()
        }
    }
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the CUPS server (HTTPS POST /update-info; admin listener with /healthz, /readyz, /metrics)
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Create (or inspect) the PKI: gateway CA, server certificate, update-signing keys
    #[command(after_help = INIT_EXAMPLES)]
    Init(InitArgs),
    /// Register, list, show, remove and export gateways
    #[command(after_help = GATEWAY_EXAMPLES)]
    Gateway {
        /// What to do.
        #[command(subcommand)]
        command: GatewayCommand,
    },
    /// Register, list and remove update images
    #[command(after_help = FIRMWARE_EXAMPLES)]
    Firmware {
        /// What to do.
        #[command(subcommand)]
        command: FirmwareCommand,
    },
    /// Dry run: which segments a gateway would receive now, each with its reason
    #[command(after_help = PLAN_EXAMPLES)]
    Plan(PlanArgs),
    /// Print the effective settings and where each came from (secrets masked)
    #[command(after_help = CONFIG_EXAMPLES)]
    Config(ConfigArgs),
}

/// `serve`.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// CUPS listener address [env: CUPS_LISTEN] [default: 0.0.0.0:16050]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Admin listener address, or `off` [env: CUPS_ADMIN_LISTEN] [default: 127.0.0.1:16051]
    #[arg(long, value_name = "ADDR|off")]
    pub admin_listen: Option<AdminListen>,
    /// Most concurrent CUPS connections [env: CUPS_MAX_CONNECTIONS] [default: 4096]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Serve plain HTTP instead of HTTPS (INSECURE: stations send tokens only over TLS)
    #[arg(long)]
    pub insecure_http: bool,
}

impl ServeArgs {
    /// Add these flags to `o`.
    pub fn apply(&self, o: &mut Overrides) {
        o.listen = self.listen;
        o.admin_listen = self.admin_listen;
        o.max_connections = self.max_connections;
        o.insecure_http = self.insecure_http;
    }
}

/// `init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// DNS name or IP address for the server certificate, repeatable (localhost is always
    /// included; without --dns: this host's name and the CUPS_URI host)
    #[arg(long = "dns", value_name = "NAME")]
    pub dns: Vec<String>,
    /// How many update-signing keys must exist afterwards (existing ones are kept)
    #[arg(long, value_name = "N", default_value_t = crate::pki::DEFAULT_SIGNING_KEYS)]
    pub signing_keys: usize,
    /// Common name of a new gateway CA
    #[arg(long, value_name = "NAME")]
    pub ca_name: Option<String>,
    /// Only show what the PKI directory holds; change nothing (exit 1 if unusable)
    #[arg(long)]
    pub inspect: bool,
}

/// How a gateway authenticates to CUPS.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum CupsAuthArg {
    /// Client certificate from the gateway CA.
    Cert,
    /// Bearer token.
    Token,
}

/// What a gateway gets for its LNS connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum TcArg {
    /// Client certificate from the gateway CA.
    Cert,
    /// Bearer token.
    Token,
    /// Server authentication only (trust certificate).
    ServerAuth,
}

/// `gateway ...`.
#[derive(Subcommand, Debug)]
pub enum GatewayCommand {
    /// Register a gateway
    #[command(after_help = ADD_EXAMPLES)]
    Add(GatewayAddArgs),
    /// List registered gateways
    #[command(after_help = LIST_EXAMPLES)]
    List {
        /// JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one gateway (no secrets: CRCs, serials, expiry)
    #[command(after_help = SHOW_EXAMPLES)]
    Show {
        /// Gateway EUI (any form)
        eui: String,
        /// JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Change gateways' own CUPS and/or TC URIs
    #[command(after_help = SET_EXAMPLES)]
    Set(GatewaySetArgs),
    /// Mark gateways' credentials for renewal on their next request
    #[command(after_help = RENEW_EXAMPLES)]
    Renew(GatewayRenewArgs),
    /// Remove a gateway and its token index entries
    #[command(after_help = REMOVE_EXAMPLES)]
    Remove {
        /// Gateway EUI (any form)
        eui: String,
    },
    /// Write a ready-to-run Basics Station home directory for a gateway
    #[command(after_help = EXPORT_EXAMPLES)]
    Export(GatewayExportArgs),
}

/// `gateway add`.
#[derive(Args, Debug)]
pub struct GatewayAddArgs {
    /// Gateway EUI(s) (any form: 0016c001ff10a235, 00-16-C0-01-FF-10-A2-35, 16:c001:ff10:a235)
    #[arg(required = true, value_name = "EUI")]
    pub euis: Vec<String>,
    /// Register N consecutive EUIs starting at the (single) EUI given
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// How it authenticates to CUPS
    #[arg(long, value_enum, default_value_t = CupsAuthArg::Cert)]
    pub cups_auth: CupsAuthArg,
    /// What it gets for its LNS (TC) connection
    #[arg(long = "tc", value_enum, default_value_t = TcArg::Cert)]
    pub tc: TcArg,
    /// CUPS URI for this gateway (default: the configured CUPS_URI)
    #[arg(long, value_name = "URI")]
    pub cups_uri: Option<String>,
    /// LNS URI for this gateway (default: the configured TC_URI)
    #[arg(long, value_name = "URI")]
    pub tc_uri: Option<String>,
    /// A label KEY=VALUE, repeatable
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
}

/// `gateway set`.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true)
    .args(["cups_uri", "clear_cups_uri", "tc_uri", "clear_tc_uri"])))]
pub struct GatewaySetArgs {
    /// Gateway EUI(s) (any form)
    #[arg(required = true, value_name = "EUI")]
    pub euis: Vec<String>,
    /// New CUPS URI (https://host:port)
    #[arg(long, value_name = "URI", conflicts_with = "clear_cups_uri",
        value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub cups_uri: Option<String>,
    /// Drop the gateway's own CUPS URI (the configured CUPS_URI applies)
    #[arg(long)]
    pub clear_cups_uri: bool,
    /// New LNS URI (wss://host:port)
    #[arg(long, value_name = "URI", conflicts_with = "clear_tc_uri",
        value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub tc_uri: Option<String>,
    /// Drop the gateway's own LNS URI (the configured TC_URI applies)
    #[arg(long)]
    pub clear_tc_uri: bool,
}

/// `gateway renew`.
#[derive(Args, Debug)]
pub struct GatewayRenewArgs {
    /// Gateway EUI(s) (any form)
    #[arg(
        value_name = "EUI",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub euis: Vec<String>,
    /// Every registered gateway
    #[arg(long)]
    pub all: bool,
    /// Renew the CUPS credentials (without --cups and --tc: both)
    #[arg(long)]
    pub cups: bool,
    /// Renew the TC (LNS) credentials (without --cups and --tc: both)
    #[arg(long)]
    pub tc: bool,
}

/// `gateway export`.
#[derive(Args, Debug)]
pub struct GatewayExportArgs {
    /// Gateway EUI (any form)
    pub eui: String,
    /// Directory to write (created; must be empty unless --force)
    #[arg(long, value_name = "DIR")]
    pub station_home: PathBuf,
    /// Write the CUPS set as cups-boot.* (bootstrap set) instead of cups.*
    #[arg(long)]
    pub bootstrap: bool,
    /// Replace the station files in an existing non-empty directory
    #[arg(long)]
    pub force: bool,
    /// File format of certificates and keys (der: byte-identical to the blob, so the first
    /// contact sends no credentials; pem: readable with openssl)
    #[arg(long, value_enum, default_value_t = ExportFormat::Der)]
    pub format: ExportFormat,
    /// station.conf log_level
    #[arg(long, value_name = "LEVEL", default_value = crate::export::DEFAULT_LOG_LEVEL)]
    pub log_level: String,
    /// station.conf CUPS_RESYNC_INTV (e.g. 5s; station default 1m)
    #[arg(long, value_name = "SPAN")]
    pub cups_resync_intv: Option<String>,
    /// station.conf CUPS_OKSYNC_INTV (e.g. 1h; station default 24h)
    #[arg(long, value_name = "SPAN")]
    pub cups_oksync_intv: Option<String>,
    /// Any other station_conf entry KEY=VALUE (VALUE is JSON if it parses, else a string), repeatable
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// `firmware ...`.
#[derive(Subcommand, Debug)]
pub enum FirmwareCommand {
    /// Register an update image for a model and target version (signed once per signing key)
    #[command(after_help = FIRMWARE_ADD_EXAMPLES)]
    Add(FirmwareAddArgs),
    /// List update images
    #[command(after_help = FIRMWARE_LIST_EXAMPLES)]
    List {
        /// JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Remove an update image
    #[command(after_help = FIRMWARE_REMOVE_EXAMPLES)]
    Remove {
        /// Firmware id (see `firmware list`)
        id: String,
    },
}

/// `firmware add`.
#[derive(Args, Debug)]
pub struct FirmwareAddArgs {
    /// Station model it is for (the request's `model`: linux, rpi, corecell, ...)
    #[arg(long, value_name = "MODEL")]
    pub model: String,
    /// The `package` version gateways report after applying it
    #[arg(long, value_name = "VERSION")]
    pub version: String,
    /// Offer it only to gateways reporting this package, repeatable (default: any other)
    #[arg(long = "from", value_name = "VERSION")]
    pub from: Vec<String>,
    /// Identifier (default: MODEL-VERSION)
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// The image file
    pub file: PathBuf,
}

/// `plan`.
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Gateway EUI (any form)
    pub eui: String,
    /// A station request body (JSON) to plan for (default: what the gateway last confirmed)
    #[arg(long, value_name = "FILE")]
    pub request: Option<PathBuf>,
    /// JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// `config`.
#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// JSON instead of a table
    #[arg(long)]
    pub json: bool,
    /// Print the documentation table of every setting (Markdown) instead
    #[arg(long)]
    pub docs: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::Cli;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
