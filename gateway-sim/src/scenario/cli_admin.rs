//! [`CliAdmin`]: the server side through the real `cups-server` binary (given by path), the way
//! an operator runs it: `init`, `gateway add --count`, `gateway list --json`, `gateway set`,
//! `gateway renew`, `firmware add|remove`, and (optionally) `serve` as a child process it owns
//! — then an outage kills it and recovery restarts it on the same port. Without an owned
//! server the outage is a route cut in the simulator's uplink.
//!
//! Commands that an older `cups-server` lacks (`gateway add --count`, `gateway set`,
//! `gateway renew`) fall back to what they do: one `gateway add` per EUI, and URI /
//! renewal edits of the gateway record through the cups-host-server store library on the
//! same store. Corrupting a stored image always goes through the store (that is the point:
//! the bytes change after signing).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cups_core::Eui64;
use cups_host_server::pki::{ClientUsage, Pki, PkiPaths};
use cups_host_server::store::Store;
use cups_host_server::store::fs::FsStore;
use cups_host_server::store::s3::{S3Config, S3Store};

use super::admin::{
    Admin, AdminError, FirmwareImage, OutageMode, ServerGateway, store_corrupt_image, store_renew,
    store_set_uris,
};

/// How long `cups-server serve` may take to print its listening line.
pub const SERVE_START_TIMEOUT: Duration = Duration::from_secs(20);
/// The server's firmware catalogue cache (cups-host-server `DEFAULT_FIRMWARE_CACHE_TTL`) plus
/// a margin.
pub const CLI_CATALOGUE_DELAY: Duration = Duration::from_millis(5_500);
/// Lines of a failed command's stderr kept in the error.
const STDERR_LINES: usize = 6;
/// Exit status of a clap usage error (an unknown subcommand or flag).
const USAGE_ERROR: i32 = 2;
/// What `serve` prints once listening.
const LISTENING: &str = "listening cups https://";

/// Which store the server runs on.
#[derive(Clone, Debug)]
pub enum StoreSpec {
    /// `--store fs --data-dir DIR`.
    Fs(PathBuf),
    /// `--store s3` with the `S3_*` variables of this config.
    S3(S3Config),
}

/// Where and how to run `cups-server`.
#[derive(Clone, Debug)]
pub struct CliSettings {
    /// The binary.
    pub bin: PathBuf,
    /// `--cert-path`.
    pub cert_path: PathBuf,
    /// The store.
    pub store: StoreSpec,
    /// `CUPS_URI` (what gateways are sent).
    pub cups_uri: String,
    /// `TC_URI`.
    pub tc_uri: Option<String>,
    /// Working directory of every command (no `.env` is read from elsewhere).
    pub work_dir: PathBuf,
}

/// The server side through the `cups-server` binary.
pub struct CliAdmin {
    settings: CliSettings,
    rt: tokio::runtime::Runtime,
    store: Arc<dyn Store>,
    pki: Pki,
    /// Where the server listens (owned or not).
    addr: SocketAddr,
    /// The `serve` child, when owned.
    child: Option<Child>,
    owns_server: bool,
    /// Commands this `cups-server` lacked (their store / per-EUI fallback ran instead).
    fallbacks: Vec<String>,
}

impl std::fmt::Debug for CliAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CliAdmin")
            .field("bin", &self.settings.bin)
            .field("addr", &self.addr)
            .field("owns_server", &self.owns_server)
            .finish_non_exhaustive()
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AdminError {
    let what = what.into();
    move |source| AdminError::Io { what, source }
}

impl CliAdmin {
    /// Process id of the `cups-server serve` child, when this admin owns a running one (for
    /// measuring the server's CPU time from outside).
    #[must_use]
    pub fn server_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Prepare the PKI (`cups-server init` when `cert_path` holds none; then `factory_ca_pem`,
    /// if given, is installed as `bootstrap-ca.crt`), open the store, and — when `serve` is
    /// true — start `cups-server serve` on an ephemeral loopback port. With `serve` false the
    /// server must already run at `external`.
    ///
    /// # Errors
    /// An [`AdminError`].
    pub fn new(
        mut settings: CliSettings,
        factory_ca_pem: Option<&str>,
        serve: bool,
        external: Option<SocketAddr>,
    ) -> Result<Self, AdminError> {
        // Commands run in `work_dir`: relative paths mean the caller's working directory.
        settings.cert_path = std::path::absolute(&settings.cert_path).map_err(io("--cert-path"))?;
        if let StoreSpec::Fs(dir) = &mut settings.store {
            *dir = std::path::absolute(&*dir).map_err(io("--data-dir"))?;
        }
        let paths = PkiPaths::new(&settings.cert_path);
        if !paths.ca_cert().exists() {
            let mut a = Self::command(&settings, &["init"]);
            a.args(["--dns", "localhost"]);
            run_command(a, "init")?;
        }
        if let Some(pem) = factory_ca_pem {
            let path = paths.bootstrap_ca();
            let installed = std::fs::read(&path).is_ok_and(|b| b == pem.as_bytes());
            if !installed {
                std::fs::write(&path, pem).map_err(io("bootstrap-ca.crt"))?;
                if !serve {
                    return Err(AdminError::RestartNeeded { path });
                }
            }
        }
        let pki = Pki::load(&paths).map_err(|e| AdminError::Service(e.to_string()))?;
        let store: Arc<dyn Store> = match &settings.store {
            StoreSpec::Fs(dir) => Arc::new(FsStore::open(dir.clone())?),
            StoreSpec::S3(c) => {
                Arc::new(S3Store::new(c.clone()).map_err(|e| AdminError::Service(e.to_string()))?)
            }
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io("tokio runtime"))?;
        let mut admin = Self {
            settings,
            rt,
            store,
            pki,
            addr: external.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
            child: None,
            owns_server: serve,
            fallbacks: Vec::new(),
        };
        if serve {
            admin.start_server()?;
        }
        Ok(admin)
    }

    /// A `cups-server` command with the settings' environment (nothing else inherited but
    /// `PATH`).
    fn command(settings: &CliSettings, args: &[&str]) -> Command {
        let mut c = Command::new(&settings.bin);
        c.args(args)
            .arg("--cert-path")
            .arg(&settings.cert_path)
            .current_dir(&settings.work_dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CUPS_URI", &settings.cups_uri)
            .stdin(Stdio::null());
        if let Some(tc) = &settings.tc_uri {
            c.env("TC_URI", tc);
        }
        match &settings.store {
            StoreSpec::Fs(dir) => {
                c.args(["--store", "fs", "--data-dir"]).arg(dir);
            }
            StoreSpec::S3(s3) => {
                c.args(["--store", "s3"])
                    .env("S3_BUCKET_NAME", &s3.bucket)
                    .env("S3_BUCKET_REGION", &s3.region)
                    .env("S3_ACCESS_KEY_ID", &s3.access_key_id)
                    .env("S3_SECRET_ACCESS_KEY", &s3.secret_access_key);
                if let Some(e) = &s3.endpoint {
                    c.env("S3_BUCKET_ENDPOINT", e);
                }
                if let Some(p) = &s3.prefix {
                    c.env("CUPS_S3_PREFIX", p);
                }
            }
        }
        c
    }

    fn run(&self, args: &[&str]) -> Result<String, AdminError> {
        run_command(Self::command(&self.settings, args), &args.join(" "))
    }

    /// Run `args`; `Ok(None)` when this `cups-server` does not know the command or a flag.
    fn run_new(&mut self, args: &[&str]) -> Result<Option<String>, AdminError> {
        match self.run(args) {
            Ok(out) => Ok(Some(out)),
            Err(AdminError::Command { usage: true, .. }) => {
                let command = args.get(..2).unwrap_or_default().join(" ");
                tracing::info!(%command, "cups-server lacks this command: falling back");
                if !self.fallbacks.contains(&command) {
                    self.fallbacks.push(command);
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

fn run_command(mut c: Command, what: &str) -> Result<String, AdminError> {
    let out = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(io(format!("cups-server {what}")))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = lines
        .get(lines.len().saturating_sub(STDERR_LINES)..)
        .unwrap_or_default()
        .join(" | ");
    Err(AdminError::Command {
        command: what.to_owned(),
        status: out.status.to_string(),
        stderr: tail,
        usage: out.status.code() == Some(USAGE_ERROR)
            && (stderr.contains("unrecognized subcommand")
                || stderr.contains("unexpected argument")),
    })
}

fn canonical(eui: Eui64) -> String {
    eui.canonical().to_string()
}

/// `gateway list --json` → the server's view per EUI.
fn parse_list(json: &str) -> Result<BTreeMap<Eui64, ServerGateway>, AdminError> {
    let bad = |detail: String| AdminError::Output {
        what: "gateway list --json".into(),
        detail,
    };
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    let items = v.as_array().ok_or_else(|| bad("not an array".into()))?;
    let mut out = BTreeMap::new();
    for item in items {
        let eui = item
            .get("eui")
            .and_then(|e| e.as_str())
            .and_then(|e| Eui64::parse(e).ok())
            .ok_or_else(|| bad("an entry without a valid eui".into()))?;
        let slot = |name: &str| {
            let s = item.get(name).filter(|s| !s.is_null());
            let crc = s
                .and_then(|s| s.get("crc"))
                .and_then(serde_json::Value::as_u64)
                .and_then(|c| u32::try_from(c).ok());
            let confirmed = s
                .and_then(|s| s.get("confirmed_at"))
                .is_some_and(|c| !c.is_null());
            (crc, confirmed)
        };
        let text = |name: &str| item.get(name).and_then(|s| s.as_str()).map(str::to_owned);
        let (cups_crc, cups_confirmed) = slot("cups_cred");
        let (tc_crc, tc_confirmed) = slot("tc_cred");
        out.insert(
            eui,
            ServerGateway {
                cups_crc,
                cups_confirmed,
                tc_crc,
                tc_confirmed,
                cups_uri: text("cups_uri"),
                tc_uri: text("tc_uri"),
                bootstrap_open: item
                    .get("bootstrap_open")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false),
            },
        );
    }
    Ok(out)
}

/// Fuzz entry: `gateway list --json` output of any bytes never panics.
#[doc(hidden)]
pub fn fuzz_gateway_list(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_list(text);
    }
}

/// Read `serve`'s stdout until the listening line.
fn wait_listening(child: &mut Child) -> Result<SocketAddr, AdminError> {
    let stdout = child.stdout.take().ok_or(AdminError::Output {
        what: "serve".into(),
        detail: "no stdout".into(),
    })?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent && let Some(rest) = line.trim().strip_prefix(LISTENING) {
                sent = true;
                let _ = tx.send(rest.parse::<SocketAddr>().ok());
            }
            // Keep draining so the server never blocks on a full pipe.
        }
    });
    match rx.recv_timeout(SERVE_START_TIMEOUT) {
        Ok(Some(addr)) => Ok(addr),
        Ok(None) => Err(AdminError::Output {
            what: "serve".into(),
            detail: "unparsable listening line".into(),
        }),
        Err(_) => Err(AdminError::StartTimeout(SERVE_START_TIMEOUT)),
    }
}

impl Admin for CliAdmin {
    fn describe(&self) -> String {
        let fallbacks = if self.fallbacks.is_empty() {
            String::new()
        } else {
            format!(
                "; this cups-server lacks `{}` (fallbacks used)",
                self.fallbacks.join("`, `")
            )
        };
        let what = if self.owns_server {
            format!(
                "`{} serve` child process on {} (outage: the process is killed and restarted)",
                self.settings.bin.display(),
                self.addr
            )
        } else {
            format!(
                "external server at {} administered with `{}` (outage: route cut in the uplink)",
                self.addr,
                self.settings.bin.display()
            )
        };
        what + &fallbacks
    }

    fn server_addr(&self) -> SocketAddr {
        self.addr
    }

    fn cups_uri(&self) -> String {
        self.settings.cups_uri.clone()
    }

    fn tc_uri(&self) -> Option<String> {
        self.settings.tc_uri.clone()
    }

    fn pki(&self) -> &Pki {
        &self.pki
    }

    fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    fn cups_trust(&self) -> Vec<u8> {
        self.pki.trust_der(ClientUsage::Cups).to_vec()
    }

    fn sig_keys(&self) -> Vec<Vec<u8>> {
        self.pki.sig_keys().iter().map(|k| k.0.to_vec()).collect()
    }

    fn register(&mut self, first: Eui64, count: u32, tc_token: bool) -> Result<(), AdminError> {
        let first_text = canonical(first);
        let n = count.to_string();
        let tc = if tc_token { "token" } else { "cert" };
        if self
            .run_new(&["gateway", "add", &first_text, "--count", &n, "--tc", tc])?
            .is_some()
        {
            return Ok(());
        }
        for i in 0..u64::from(count) {
            let eui = first
                .as_u64()
                .checked_add(i)
                .and_then(|e| Eui64::new(e).ok())
                .ok_or(AdminError::Unsupported("EUI out of range"))?;
            self.run(&["gateway", "add", &canonical(eui), "--tc", tc])?;
        }
        Ok(())
    }

    fn gateways(&mut self, euis: &[Eui64]) -> Result<BTreeMap<Eui64, ServerGateway>, AdminError> {
        let mut all = parse_list(&self.run(&["gateway", "list", "--json"])?)?;
        let wanted: std::collections::BTreeSet<Eui64> = euis.iter().copied().collect();
        all.retain(|e, _| wanted.contains(e));
        Ok(all)
    }

    fn set_uris(
        &mut self,
        euis: &[Eui64],
        cups_uri: Option<&str>,
        tc_uri: Option<&str>,
    ) -> Result<(), AdminError> {
        let texts: Vec<String> = euis.iter().map(|&e| canonical(e)).collect();
        let mut args: Vec<&str> = vec!["gateway", "set"];
        args.extend(texts.iter().map(String::as_str));
        if let Some(u) = cups_uri {
            args.extend(["--cups-uri", u]);
        }
        if let Some(u) = tc_uri {
            args.extend(["--tc-uri", u]);
        }
        if self.run_new(&args)?.is_some() {
            return Ok(());
        }
        self.rt
            .block_on(store_set_uris(&self.store, euis, cups_uri, tc_uri))
    }

    fn renew(&mut self, euis: &[Eui64], cups: bool, tc: bool) -> Result<(), AdminError> {
        let texts: Vec<String> = euis.iter().map(|&e| canonical(e)).collect();
        let mut args: Vec<&str> = vec!["gateway", "renew"];
        args.extend(texts.iter().map(String::as_str));
        if cups {
            args.push("--cups");
        }
        if tc {
            args.push("--tc");
        }
        if self.run_new(&args)?.is_some() {
            return Ok(());
        }
        self.rt.block_on(store_renew(&self.store, euis, cups, tc))
    }

    fn add_firmware(&mut self, image: &FirmwareImage) -> Result<String, AdminError> {
        let file = self
            .settings
            .work_dir
            .join(format!("update-{}.sh", image.version));
        std::fs::write(&file, &image.bytes).map_err(io(file.display().to_string()))?;
        let id = format!("{}-{}", image.model, image.version);
        let file_text = file.display().to_string();
        let mut args = vec![
            "firmware",
            "add",
            "--model",
            &image.model,
            "--version",
            &image.version,
            "--id",
            &id,
        ];
        for f in &image.from {
            args.extend(["--from", f]);
        }
        args.push(&file_text);
        self.run(&args)?;
        Ok(id)
    }

    fn corrupt_firmware(&mut self, id: &str) -> Result<(), AdminError> {
        self.rt.block_on(store_corrupt_image(&self.store, id))
    }

    fn remove_firmware(&mut self, id: &str) -> Result<(), AdminError> {
        self.run(&["firmware", "remove", id]).map(|_| ())
    }

    fn catalogue_delay(&self) -> Duration {
        CLI_CATALOGUE_DELAY
    }

    fn outage_mode(&self) -> OutageMode {
        if self.owns_server {
            OutageMode::StopServer
        } else {
            OutageMode::RouteCut
        }
    }

    fn stop_server(&mut self) -> Result<(), AdminError> {
        if !self.owns_server {
            return Err(AdminError::Unsupported(
                "the server is not owned: cut routes",
            ));
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        Ok(())
    }

    fn start_server(&mut self) -> Result<SocketAddr, AdminError> {
        if !self.owns_server || self.child.is_some() {
            return Ok(self.addr);
        }
        let started = Instant::now();
        // The same port as before; a port taken meanwhile (or the first start) gets any.
        let mut listen = self.addr;
        loop {
            let l = listen.to_string();
            let mut c = Self::command(
                &self.settings,
                &["serve", "--listen", &l, "--admin-listen", "off"],
            );
            c.stdout(Stdio::piped()).stderr(Stdio::null());
            let mut child = c.spawn().map_err(io("cups-server serve"))?;
            match wait_listening(&mut child) {
                Ok(addr) => {
                    self.addr = addr;
                    self.child = Some(child);
                    return Ok(addr);
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    if listen.port() == 0 || started.elapsed() > SERVE_START_TIMEOUT {
                        return Err(e);
                    }
                    listen = SocketAddr::from(([127, 0, 0, 1], 0));
                }
            }
        }
    }
}

impl Drop for CliAdmin {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The `cups-server` binary next to the running executable (`target/<profile>/`), if any.
#[must_use]
pub fn find_cups_server_near(exe: &Path) -> Option<PathBuf> {
    let mut dir = exe.parent()?;
    for _ in 0..2 {
        let p = dir.join("cups-server");
        if p.is_file() {
            return Some(p);
        }
        dir = dir.parent()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_json_is_read() {
        let json = r#"[{"eui":"0016c001ff100000","cups_uri":null,"tc_uri":"wss://x:1",
            "cups_cred":{"crc":305419896,"confirmed_at":"2026-01-01T00:00:00Z"},
            "tc_cred":{"crc":1,"confirmed_at":null},"bootstrap_open":false},
            {"eui":"0016c001ff100001","cups_cred":null,"tc_cred":null,"bootstrap_open":true}]"#;
        let m = parse_list(json).unwrap();
        let a = &m[&Eui64::parse("0016c001ff100000").unwrap()];
        assert_eq!(a.cups_crc, Some(0x1234_5678));
        assert!(a.cups_confirmed);
        assert_eq!(a.tc_crc, Some(1));
        assert!(!a.tc_confirmed);
        assert_eq!(a.tc_uri.as_deref(), Some("wss://x:1"));
        let b = &m[&Eui64::parse("0016c001ff100001").unwrap()];
        assert_eq!(b.cups_crc, None);
        assert!(b.bootstrap_open);
        assert!(parse_list("{}").is_err());
        for bad in [
            &b"[{\"eui\":\"0016c001ff100000\",\"cups_cred\":{\"crc\":-1}}]"[..],
            b"[{\"eui\":1}]",
            b"[null]",
            b"\xff\xfe",
            b"[",
        ] {
            fuzz_gateway_list(bad);
        }
        assert!(parse_list(r#"[{"eui":"zz"}]"#).is_err());
    }
}
