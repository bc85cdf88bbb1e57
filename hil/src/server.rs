//! The real `cups-server` binary as a process: provisioning commands in a scratch working
//! directory (its `certs/` and `data/`), and `serve` on loopback with JSON logs whose audit
//! lines are collected.

use std::io::{BufRead as _, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::audit::{AuditEvent, parse_audit_line};

/// Name of the server binary.
pub const CUPS_SERVER_BIN: &str = "cups-server";
/// Longest time one provisioning command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait for `serve` to print its listening address.
pub const SERVE_START_TIMEOUT: Duration = Duration::from_secs(30);
/// Poll interval while waiting for a child process.
const POLL: Duration = Duration::from_millis(20);
/// Most output lines of a failing command kept for its error.
pub const MAX_ERROR_OUTPUT: usize = 4096;

/// Why a `cups-server` step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// No binary at the given path, next to this executable, or in `PATH`.
    #[error(
        "cups-server not found ({0}); build it with `cargo build -p cups-host-server --bin cups-server` or pass --cups-server PATH"
    )]
    NotFound(String),
    /// The process could not be started.
    #[error("cannot run {bin}: {source}")]
    Spawn {
        /// The binary.
        bin: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A command exited with an error.
    #[error("`cups-server {args}` failed ({status}): {stderr}")]
    Failed {
        /// The arguments.
        args: String,
        /// Exit status text.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// A command did not finish in time.
    #[error("`cups-server {args}` did not finish within {timeout:?}")]
    Timeout {
        /// The arguments.
        args: String,
        /// The limit.
        timeout: Duration,
    },
    /// `serve` did not print its address.
    #[error("`cups-server serve` did not report its address within {0:?}")]
    NoAddress(Duration),
    /// The scratch directory could not be created.
    #[error("scratch directory: {0}")]
    Io(#[source] std::io::Error),
}

/// Find `cups-server`: `explicit` if given, else next to the running executable (or its
/// parent directory, for test binaries in `target/debug/deps`), else in `PATH`.
///
/// # Errors
/// [`ServerError::NotFound`].
pub fn locate_cups_server(explicit: Option<&Path>) -> Result<PathBuf, ServerError> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(ServerError::NotFound(format!(
                "{} is not a file",
                p.display()
            )))
        };
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join(CUPS_SERVER_BIN);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(CUPS_SERVER_BIN);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(ServerError::NotFound(
        "not next to this executable and not in PATH".to_owned(),
    ))
}

/// The tail of `text`, at most [`MAX_ERROR_OUTPUT`] bytes.
fn tail(text: &str) -> String {
    let mut start = text.len().saturating_sub(MAX_ERROR_OUTPUT);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].trim().to_owned()
}

/// Read a child's pipe to the end on a thread.
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut out = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut out);
        }
        out
    })
}

/// A scratch working directory for `cups-server` (its default `certs/` and `data/` live
/// here), and the binary.
#[derive(Debug)]
pub struct Workspace {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Workspace {
    /// A fresh directory for `bin`.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn new(bin: PathBuf) -> Result<Self, ServerError> {
        let dir = tempfile::Builder::new()
            .prefix("hil-cups-")
            .tempdir()
            .map_err(ServerError::Io)?;
        Ok(Self { dir, bin })
    }

    /// The working directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The PKI directory (`certs/`).
    #[must_use]
    pub fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// The binary.
    #[must_use]
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args).current_dir(self.dir.path()).env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            c.env("PATH", path);
        }
        c
    }

    /// Run one command to completion; its stdout.
    ///
    /// # Errors
    /// Spawn failure, non-zero exit, or [`COMMAND_TIMEOUT`].
    pub fn run(&self, args: &[&str]) -> Result<String, ServerError> {
        let joined = args.join(" ");
        tracing::debug!(args = %joined, "cups-server");
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| ServerError::Spawn {
                bin: self.bin.display().to_string(),
                source,
            })?;
        let out = drain(child.stdout.take());
        let err = drain(child.stderr.take());
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if start.elapsed() < COMMAND_TIMEOUT => std::thread::sleep(POLL),
                Ok(None) | Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ServerError::Timeout {
                        args: joined,
                        timeout: COMMAND_TIMEOUT,
                    });
                }
            }
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        if status.success() {
            Ok(stdout)
        } else {
            Err(ServerError::Failed {
                args: joined,
                status: status.to_string(),
                stderr: tail(&stderr),
            })
        }
    }

    /// `cups-server init` (development PKI: gateway CA, server certificate for localhost,
    /// one signing key).
    ///
    /// # Errors
    /// See [`Workspace::run`].
    pub fn init(&self) -> Result<(), ServerError> {
        self.run(&["init"]).map(drop)
    }

    /// `cups-server gateway add EUI --cups-uri .. --tc-uri ..`.
    ///
    /// # Errors
    /// See [`Workspace::run`].
    pub fn add_gateway(&self, eui: &str, cups_uri: &str, tc_uri: &str) -> Result<(), ServerError> {
        self.run(&[
            "gateway",
            "add",
            eui,
            "--cups-uri",
            cups_uri,
            "--tc-uri",
            tc_uri,
        ])
        .map(drop)
    }

    /// `cups-server gateway export EUI --station-home HOME [--bootstrap]` (DER files).
    ///
    /// # Errors
    /// See [`Workspace::run`].
    pub fn export(&self, eui: &str, home: &Path, bootstrap: bool) -> Result<(), ServerError> {
        let home = home.display().to_string();
        let mut args = vec!["gateway", "export", eui, "--station-home", &home, "--force"];
        if bootstrap {
            args.push("--bootstrap");
        }
        self.run(&args).map(drop)
    }

    /// `cups-server gateway set EUI --tc-uri URI`.
    ///
    /// # Errors
    /// See [`Workspace::run`].
    pub fn set_tc_uri(&self, eui: &str, uri: &str) -> Result<(), ServerError> {
        self.run(&["gateway", "set", eui, "--tc-uri", uri])
            .map(drop)
    }

    /// `cups-server gateway set EUI --cups-uri URI`.
    ///
    /// # Errors
    /// See [`Workspace::run`].
    pub fn set_cups_uri(&self, eui: &str, uri: &str) -> Result<(), ServerError> {
        self.run(&["gateway", "set", eui, "--cups-uri", uri])
            .map(drop)
    }

    /// `cups-server gateway renew EUI` (CUPS and TC credentials).
    ///
    /// # Errors
    /// See [`Workspace::run`].
    pub fn renew(&self, eui: &str) -> Result<(), ServerError> {
        self.run(&["gateway", "renew", eui]).map(drop)
    }

    /// `cups-server firmware add --model M --version V --id ID FILE`.
    ///
    /// # Errors
    /// See [`Workspace::run`].
    pub fn firmware_add(
        &self,
        model: &str,
        version: &str,
        id: &str,
        file: &Path,
    ) -> Result<(), ServerError> {
        let file = file.display().to_string();
        self.run(&[
            "firmware",
            "add",
            "--model",
            model,
            "--version",
            version,
            "--id",
            id,
            &file,
        ])
        .map(drop)
    }

    /// `cups-server gateway show EUI --json`.
    ///
    /// # Errors
    /// See [`Workspace::run`]; output that is not JSON is [`ServerError::Failed`].
    pub fn show(&self, eui: &str) -> Result<serde_json::Value, ServerError> {
        let out = self.run(&["gateway", "show", eui, "--json"])?;
        serde_json::from_str(&out).map_err(|e| ServerError::Failed {
            args: format!("gateway show {eui} --json"),
            status: "output is not JSON".to_owned(),
            stderr: e.to_string(),
        })
    }

    /// Start `cups-server serve --listen LISTEN --admin-listen off --log-format json`.
    ///
    /// # Errors
    /// Spawn failure or no address within [`SERVE_START_TIMEOUT`].
    pub fn serve(&self, listen: SocketAddr) -> Result<ServerProcess, ServerError> {
        let listen = listen.to_string();
        let mut child = self
            .command(&[
                "serve",
                "--listen",
                &listen,
                "--admin-listen",
                "off",
                "--log-format",
                "json",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| ServerError::Spawn {
                bin: self.bin.display().to_string(),
                source,
            })?;
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take();
        std::thread::spawn(move || {
            let Some(out) = stdout else { return };
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line
                    .strip_prefix("listening cups https://")
                    .or_else(|| line.strip_prefix("listening cups http://"))
                    && let Ok(addr) = addr.trim().parse::<SocketAddr>()
                {
                    let _ = tx.send(addr);
                }
            }
        });
        let audit = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take();
        let (a, l) = (Arc::clone(&audit), Arc::clone(&log));
        std::thread::spawn(move || {
            let Some(err) = stderr else { return };
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if let Some(ev) = parse_audit_line(&line)
                    && let Ok(mut v) = a.lock()
                {
                    v.push(ev);
                }
                if let Ok(mut text) = l.lock() {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
        });
        match rx.recv_timeout(SERVE_START_TIMEOUT) {
            Ok(addr) => Ok(ServerProcess {
                child,
                addr,
                audit,
                log,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(ServerError::NoAddress(SERVE_START_TIMEOUT))
            }
        }
    }
}

/// A running `cups-server serve`; killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    audit: Arc<Mutex<Vec<AuditEvent>>>,
    log: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// The CUPS listener.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every audit event so far.
    #[must_use]
    pub fn audit(&self) -> Vec<AuditEvent> {
        self.audit.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Its stderr so far (JSON log lines; never holds secrets: the server logs none).
    #[must_use]
    pub fn log_text(&self) -> String {
        self.log.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Stop it (SIGKILL: an outage, not a drain) and wait for the exit.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_path_must_exist() {
        let dir = tempfile::tempdir().expect("tmp");
        let missing = dir.path().join("cups-server");
        assert!(matches!(
            locate_cups_server(Some(&missing)),
            Err(ServerError::NotFound(_))
        ));
        std::fs::write(&missing, b"").expect("write");
        assert_eq!(locate_cups_server(Some(&missing)).expect("found"), missing);
    }

    #[test]
    fn tail_keeps_the_end() {
        let long = format!("{}end", "é".repeat(MAX_ERROR_OUTPUT));
        let t = tail(&long);
        assert!(t.ends_with("end"));
        assert!(t.len() <= MAX_ERROR_OUTPUT);
        assert_eq!(tail(" short \n"), "short");
    }
}
