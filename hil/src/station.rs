//! The station under test: a local `station` process, or a station on a gateway reached over
//! SSH (files copied with `scp`, the process run through `ssh`; all through those binaries).
//! Its log (stderr) is followed line by line and parsed into [`StationEvent`]s.
//!
//! Over SSH the gateway reaches the server and the LNS through reverse tunnels (`ssh -R
//! PORT:localhost:PORT`), so the URIs stay `https://localhost:PORT` / `wss://localhost:PORT`
//! on both sides and nothing here listens beyond loopback.

use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::log::{Level, ParsedLine, StationEvent, parse_line};

/// Environment variable naming a local station binary.
pub const STATION_ENV: &str = "CUPS_HIL_STATION";
/// Name of the temp directory created inside a station home.
pub const TEMP_DIR: &str = "tmp";
/// Most log lines kept per station (older ones are dropped from the report, not from the
/// event list the checks use).
pub const MAX_KEPT_LINES: usize = 20_000;
/// Options every `ssh`/`scp` call gets: never prompt, give up on a dead link.
pub const SSH_OPTIONS: &[&str] = &[
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "ServerAliveInterval=5",
];
/// Longest time one `ssh`/`scp` helper command may take.
pub const SSH_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the station runs.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum StationTarget {
    /// A `station` binary on this machine, run with its own home and temp directory.
    Local {
        /// The binary.
        path: PathBuf,
    },
    /// A gateway reached with `ssh DEST`; the station's home there is `home`.
    Ssh {
        /// `user@host` (anything `ssh` accepts).
        dest: String,
        /// The station home directory on the gateway.
        home: String,
    },
}

/// A gateway reached over SSH, and the tools to reach it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SshGateway {
    /// `user@host` (anything `ssh` accepts).
    pub dest: String,
    /// The station home on the gateway (absolute).
    pub home: String,
    /// The station binary on the gateway (a name in its `PATH` or a path).
    pub station_bin: String,
    /// The `ssh` program.
    pub ssh: PathBuf,
    /// The `scp` program.
    pub scp: PathBuf,
}

impl SshGateway {
    /// `dest:home` with `station` in the gateway's `PATH` and this machine's `ssh` and `scp`.
    #[must_use]
    pub fn new(dest: &str, home: &str) -> Self {
        Self {
            dest: dest.to_owned(),
            home: home.to_owned(),
            station_bin: "station".to_owned(),
            ssh: PathBuf::from("ssh"),
            scp: PathBuf::from("scp"),
        }
    }
}

/// Why the station could not be run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StationError {
    /// The process could not be started.
    #[error("cannot run {what}: {source}")]
    Spawn {
        /// What was run.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A helper command (`scp`, `ssh mkdir`, ...) failed.
    #[error("`{what}` failed: {detail}")]
    Helper {
        /// The command.
        what: String,
        /// Exit status and output.
        detail: String,
    },
    /// Local file trouble.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A remote path that cannot be quoted safely.
    #[error("remote path {0:?} must be absolute and free of control characters")]
    BadRemotePath(String),
}

/// Quote `s` for a POSIX shell (single quotes; `'` as `'\''`).
#[must_use]
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The command line a station is started with (after the binary).
#[must_use]
pub fn station_args(home: &str, temp: &str) -> Vec<String> {
    [
        "--home",
        home,
        "--temp",
        temp,
        "--log-file",
        "-",
        "--log-level",
        crate::station_conf::LOG_LEVEL,
        "--force",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// The remote shell command for an SSH station: `cd HOME && mkdir -p TEMP && exec station ...`.
///
/// # Errors
/// [`StationError::BadRemotePath`].
pub fn remote_command(station_bin: &str, home: &str) -> Result<String, StationError> {
    check_remote_path(home)?;
    let temp = format!("{}/{TEMP_DIR}", home.trim_end_matches('/'));
    let args: Vec<String> = station_args(home, &temp)
        .iter()
        .map(|a| shell_quote(a))
        .collect();
    Ok(format!(
        "cd {h} && mkdir -p {t} && rm -f {t}/update.bin && exec {bin} {args}",
        h = shell_quote(home),
        t = shell_quote(&temp),
        bin = shell_quote(station_bin),
        args = args.join(" ")
    ))
}

/// Station files a previous run may have left in a remote home (credential sets, URIs, keys,
/// package version, configuration); removed before the new home is copied.
pub const REMOTE_STALE_FILES: &[&str] = &[
    "cups.*",
    "cups-bak.*",
    "cups-boot.*",
    "tc.*",
    "tc-bak.*",
    "tc-boot.*",
    "sig-*.key",
    "version.txt",
    "station.conf",
];

/// The remote shell command that prepares an SSH station home: create it and remove the
/// station files of an earlier run (only those: see [`REMOTE_STALE_FILES`]).
///
/// # Errors
/// [`StationError::BadRemotePath`].
pub fn remote_prepare_command(home: &str) -> Result<String, StationError> {
    check_remote_path(home)?;
    Ok(format!(
        "mkdir -p {h} && cd {h} && rm -f {files}",
        h = shell_quote(home),
        files = REMOTE_STALE_FILES.join(" ")
    ))
}

fn check_remote_path(home: &str) -> Result<(), StationError> {
    if !home.starts_with('/') || home.chars().any(char::is_control) {
        return Err(StationError::BadRemotePath(home.to_owned()));
    }
    Ok(())
}

/// One station event, when it was seen.
#[derive(Clone, PartialEq, Debug, serde::Serialize)]
pub struct TimedEvent {
    /// Time since the station was started.
    pub at: Duration,
    /// Its level.
    pub level: Level,
    /// What it means.
    pub event: StationEvent,
    /// The message text.
    pub message: String,
}

/// A running station and its parsed log.
#[derive(Debug)]
pub struct StationProcess {
    child: Child,
    rx: mpsc::Receiver<String>,
    started: Instant,
    events: Vec<TimedEvent>,
    lines: Vec<String>,
    stop_remote: Option<SshGateway>,
}

impl StationProcess {
    /// Start a local station in `home` (its temp directory is `home/tmp`).
    ///
    /// # Errors
    /// The temp directory or the process cannot be created.
    pub fn start_local(bin: &Path, home: &Path) -> Result<Self, StationError> {
        let temp = home.join(TEMP_DIR);
        std::fs::create_dir_all(&temp).map_err(|source| StationError::Io {
            path: temp.display().to_string(),
            source,
        })?;
        let args = station_args(&home.display().to_string(), &temp.display().to_string());
        // The process starts in `home`: a relative path must not be resolved from there.
        let bin = std::fs::canonicalize(bin).unwrap_or_else(|_| bin.to_path_buf());
        let mut cmd = Command::new(&bin);
        cmd.args(&args).current_dir(home);
        Self::spawn(cmd, bin.display().to_string(), None)
    }

    /// Copy `local_home`'s files to the gateway's home and start the station there over SSH,
    /// with a reverse tunnel for each of `ports` (server and LNS listeners on this machine's
    /// loopback).
    ///
    /// # Errors
    /// `ssh`/`scp` failures or a bad remote path.
    pub fn start_ssh(
        gw: &SshGateway,
        local_home: &Path,
        ports: &[u16],
    ) -> Result<Self, StationError> {
        let (dest, home) = (gw.dest.as_str(), gw.home.as_str());
        ssh_run(gw, &remote_prepare_command(home)?)?;
        let mut files = Vec::new();
        let entries = std::fs::read_dir(local_home).map_err(|source| StationError::Io {
            path: local_home.display().to_string(),
            source,
        })?;
        for e in entries.flatten() {
            if e.path().is_file() {
                files.push(e.path());
            }
        }
        let mut scp = Command::new(&gw.scp);
        scp.args(SSH_OPTIONS).arg("-q").arg("-p").args(&files);
        scp.arg(format!("{dest}:{home}/"));
        run_helper(scp, "scp station home")?;
        let mut cmd = Command::new(&gw.ssh);
        cmd.args(SSH_OPTIONS)
            .args(["-o", "ExitOnForwardFailure=yes"]);
        for p in ports {
            cmd.arg("-R").arg(format!("{p}:localhost:{p}"));
        }
        cmd.arg(dest).arg(remote_command(&gw.station_bin, home)?);
        Self::spawn(cmd, format!("ssh {dest}"), Some(gw.clone()))
    }

    fn spawn(
        mut cmd: Command,
        what: String,
        stop_remote: Option<SshGateway>,
    ) -> Result<Self, StationError> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| StationError::Spawn { what, source })?;
        let (tx, rx) = mpsc::channel();
        follow(child.stdout.take(), tx.clone());
        follow(child.stderr.take(), tx);
        Ok(Self {
            child,
            rx,
            started: Instant::now(),
            events: Vec::new(),
            lines: Vec::new(),
            stop_remote,
        })
    }

    /// Take in the lines logged so far.
    pub fn pump(&mut self) {
        while let Ok(line) = self.rx.try_recv() {
            self.take_line(line);
        }
    }

    fn take_line(&mut self, line: String) {
        if let ParsedLine::Entry {
            level,
            message,
            event,
            ..
        } = parse_line(&line)
        {
            self.events.push(TimedEvent {
                at: self.started.elapsed(),
                level,
                event,
                message: message.to_owned(),
            });
        }
        if self.lines.len() < MAX_KEPT_LINES {
            self.lines.push(line);
        }
    }

    /// The events so far.
    #[must_use]
    pub fn events(&self) -> &[TimedEvent] {
        &self.events
    }

    /// The raw log lines so far (at most [`MAX_KEPT_LINES`]).
    #[must_use]
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Index of the first event at or after `from` matching `pred`, waiting up to `timeout`
    /// for it.
    pub fn wait_for(
        &mut self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&StationEvent) -> bool,
    ) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        let mut next = from;
        loop {
            self.pump();
            if let Some(i) = self
                .events
                .get(next..)
                .and_then(|evs| evs.iter().position(|e| pred(&e.event)))
            {
                return Some(next + i);
            }
            next = self.events.len().max(from);
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            match self.rx.recv_timeout(deadline - now) {
                Ok(line) => self.take_line(line),
                Err(mpsc::RecvTimeoutError::Timeout) => return None,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // The station exited: nothing more will come.
                    self.pump();
                    return self
                        .events
                        .get(next..)
                        .and_then(|evs| evs.iter().position(|e| pred(&e.event)))
                        .map(|i| next + i);
                }
            }
        }
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stop the station (and, over SSH, `station --kill` on the gateway).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(gw) = self.stop_remote.take() {
            let cmd = format!(
                "cd {} && {} --home {} --kill",
                shell_quote(&gw.home),
                shell_quote(&gw.station_bin),
                shell_quote(&gw.home)
            );
            if let Err(e) = ssh_run(&gw, &cmd) {
                tracing::warn!(error = %e, "could not stop the remote station");
            }
        }
        self.pump();
    }
}

impl Drop for StationProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Send each line of `pipe` to `tx` from a thread.
fn follow(pipe: Option<impl Read + Send + 'static>, tx: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        let Some(p) = pipe else { return };
        for line in BufReader::new(p).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}

/// `ssh DEST CMD` to completion.
fn ssh_run(gw: &SshGateway, remote: &str) -> Result<(), StationError> {
    let mut c = Command::new(&gw.ssh);
    c.args(SSH_OPTIONS).arg(&gw.dest).arg(remote);
    run_helper(c, &format!("ssh {}", gw.dest))
}

/// Run a helper command with [`SSH_COMMAND_TIMEOUT`].
fn run_helper(mut c: Command, what: &str) -> Result<(), StationError> {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| StationError::Spawn {
            what: what.to_owned(),
            source,
        })?;
    let err = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = err {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() < SSH_COMMAND_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stderr = reader.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(StationError::Helper {
            what: what.to_owned(),
            detail: format!("{s}: {}", stderr.trim()),
        }),
        None => Err(StationError::Helper {
            what: what.to_owned(),
            detail: format!("no answer within {SSH_COMMAND_TIMEOUT:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/a b"), "'/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn remote_command_is_quoted_and_uses_the_real_flags() {
        let cmd = remote_command("station", "/var/hil/gw 1").expect("ok");
        assert_eq!(
            cmd,
            "cd '/var/hil/gw 1' && mkdir -p '/var/hil/gw 1/tmp' && rm -f '/var/hil/gw 1/tmp'/update.bin \
             && exec 'station' '--home' '/var/hil/gw 1' '--temp' '/var/hil/gw 1/tmp' '--log-file' '-' \
             '--log-level' 'VERBOSE' '--force'"
        );
        assert!(remote_command("station", "relative").is_err());
        assert_eq!(
            remote_prepare_command("/var/hil").expect("ok"),
            "mkdir -p '/var/hil' && cd '/var/hil' && rm -f cups.* cups-bak.* cups-boot.* tc.* \
             tc-bak.* tc-boot.* sig-*.key version.txt station.conf"
        );
        assert!(remote_prepare_command("").is_err());
        assert!(remote_command("station", "/a\nb").is_err());
    }

    #[test]
    fn a_local_process_is_followed() {
        // `sh` stands in for a station binary: it prints real station log lines on stderr.
        let dir = tempfile::tempdir().expect("tmp");
        let script = dir.path().join("fake-station");
        std::fs::write(
            &script,
            "#!/bin/sh\n\
             echo '2026-11-26 17:32:25.123 [CUP:INFO] Starting a CUPS session in 0 seconds.' >&2\n\
             echo 'not a log line'\n\
             echo '2026-11-26 17:32:25.200 [TCE:VERB] Connected to MUXS.' >&2\n",
        )
        .expect("write");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut st = StationProcess::start_local(&script, dir.path()).expect("start");
        let i = st
            .wait_for(0, Duration::from_secs(10), |e| {
                *e == StationEvent::TcMuxsConnected
            })
            .expect("muxs event");
        assert!(
            st.events()[..i]
                .iter()
                .any(|e| e.event == StationEvent::CupsScheduled { delay_secs: 0 })
        );
        assert!(dir.path().join(TEMP_DIR).is_dir());
        // Nothing else will come: the wait ends when the process is gone.
        assert!(
            st.wait_for(i + 1, Duration::from_secs(5), |_| true)
                .is_none()
        );
        st.stop();
        assert_eq!(st.lines().len(), 3);
    }
}
