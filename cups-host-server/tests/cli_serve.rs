//! `cups-server serve` on a fresh directory: creates the PKI, listens, answers `/healthz`,
//! serves an exported gateway over real TLS, and exits cleanly on SIGTERM.

mod cli_support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use cli_support::{command, http_get, ok, workdir};

/// How long the server may take to start (PKI generation included).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long it may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

struct Server {
    child: Child,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    /// `serve` on ephemeral loopback ports (`admin`: the `--admin-listen` value).
    fn start(dir: &Path, admin: &str, extra: &[&str]) -> Self {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--admin-listen", admin];
        args.extend_from_slice(extra);
        let mut child = command(dir, &args, &[])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(err).read_to_string(&mut s);
            s
        });
        Self {
            child,
            lines,
            stdout: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// Wait for a stdout line starting with `prefix`; the rest of it.
    fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push(line.clone());
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                }
                Err(e) => {
                    let _ = self.child.kill();
                    panic!("no {prefix:?} line ({e}); stdout so far: {:?}", self.stdout);
                }
            }
        }
    }

    /// SIGTERM, then wait for the exit; (status, remaining stdout, stderr).
    fn terminate(mut self) -> (ExitStatus, Vec<String>, String) {
        self.stop()
    }

    fn stop(&mut self) -> (ExitStatus, Vec<String>, String) {
        let pid = self.child.id().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(killed.success());
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("serve did not stop within {STOP_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.stdout.extend(self.lines.try_iter());
        let stderr = self
            .stderr
            .take()
            .map(|t| t.join().expect("stderr thread"))
            .unwrap_or_default();
        (status, std::mem::take(&mut self.stdout), stderr)
    }
}

impl Drop for Server {
    /// A failing assertion must not leave the server running.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn fresh_directory_starts_answers_and_stops_on_sigterm() {
    let dir = workdir();
    let mut server = Server::start(dir.path(), "127.0.0.1:0", &[]);
    let cups = server.wait_line("listening cups https://");
    let admin = server.wait_line("listening admin http://");
    assert!(cups.starts_with("127.0.0.1:"), "{cups}");
    assert_ne!(cups, "127.0.0.1:0");

    let (status, body) = http_get(&admin, "/healthz");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(body.trim(), "ok");
    let (status, _) = http_get(&admin, "/readyz");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let (status, metrics) = http_get(&admin, "/metrics");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(metrics.contains("# TYPE cups_service_"), "{metrics}");

    // The development PKI and the store exist.
    for f in [
        "ca.crt",
        "ca.key",
        "cups.crt",
        "cups.key",
        "sig-0.pem",
        "sig-0.key",
    ] {
        assert!(dir.path().join("certs").join(f).is_file(), "{f}");
    }
    assert_eq!(cli_support::mode(&dir.path().join("certs/ca.key")), 0o600);
    assert!(dir.path().join("data").is_dir());

    let (status, stdout, stderr) = server.terminate();
    assert!(status.success(), "{status}\n{stdout:?}\n{stderr}");
    let text = stdout.join("\n");
    assert!(text.contains("created a development PKI"), "{text}");
    assert!(text.contains("created certs/ca.key"), "{text}");
    assert!(text.contains("cups-server gateway add"), "{text}");
    assert_eq!(stdout.last().map(String::as_str), Some("stopped"), "{text}");
    assert!(stderr.contains("TC_URI is not set"), "{stderr}");

    // A second start keeps the PKI; plain HTTP only on request, with a loud warning.
    let mut again = Server::start(dir.path(), "off", &["--insecure-http"]);
    again.wait_line("listening cups http://");
    let (status, stdout, stderr) = again.terminate();
    assert!(status.success());
    assert!(!stdout.join("\n").contains("created certs"), "{stdout:?}");
    assert!(stderr.contains("PLAIN HTTP"), "{stderr}");
}

/// The exported directory is all a gateway needs: its files authenticate it over TLS and the
/// server sends no CUPS credentials back (the CRC of the exported files is the blob's).
#[test]
fn exported_home_works_against_the_server() {
    let dir = workdir();
    let d = dir.path();
    let mut server = Server::start(
        d,
        "off",
        &[
            "--default-tc-uri",
            "wss://lns.example.org:8887",
            "--log-format",
            "json",
        ],
    );
    let cups = server.wait_line("listening cups https://");
    ok(d, &["gateway", "add", "0016c001ff10a235"]);
    ok(
        d,
        &[
            "gateway",
            "export",
            "0016c001ff10a235",
            "--station-home",
            "gw",
        ],
    );
    let read = |f: &str| std::fs::read(d.join("gw").join(f)).expect("exported file");
    let (trust, crt, key) = (read("cups.trust"), read("cups.crt"), read("cups.key"));
    let crc = cups_core::crc::cred_set_crc(&trust, &crt, &key);

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(trust.clone()))
        .expect("trust");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![rustls_pki_types::CertificateDer::from(crt.clone())],
            rustls_pki_types::PrivateKeyDer::Sec1(key.clone().into()),
        )
        .expect("client cert");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("conn");
    let tcp = TcpStream::connect(&cups).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let body = format!(
        "{{\"router\":\"16:c001:ff10:a235\",\"cupsUri\":\"https://localhost:16050\",\"tcUri\":null,\
         \"cupsCredCrc\":{crc},\"tcCredCrc\":2077607535,\"station\":\"2.0.6(linux/std) 2026-11-26 17:32:25\",\
         \"model\":\"linux\",\"package\":null,\"keys\":[]}}"
    );
    write!(
        tls,
        "POST /update-info HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {:5}\r\n\r\n{body}",
        body.len()
    )
    .expect("request");
    // Read like the station: the head, then exactly Content-Length bytes (the server keeps
    // the connection open for clients that reuse it).
    let mut resp = Vec::new();
    let mut byte = [0u8; 1];
    while !resp.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).expect("response head");
        resp.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&resp).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().expect("length"))
        })
        .expect("Content-Length");
    let mut b = vec![0u8; len];
    tls.read_exact(&mut b).expect("body");
    // cupsUri (u8), tcUri (u8), cupsCred (u16 LE), tcCred (u16 LE), ...
    let cups_uri_len = usize::from(b[0]);
    let tc_uri_len = usize::from(b[1 + cups_uri_len]);
    let tc_uri = &b[2 + cups_uri_len..2 + cups_uri_len + tc_uri_len];
    assert_eq!(tc_uri, b"wss://lns.example.org:8887");
    let at = 2 + cups_uri_len + tc_uri_len;
    let cups_cred_len = u16::from_le_bytes([b[at], b[at + 1]]);
    let tc_cred_len = u16::from_le_bytes([b[at + 2], b[at + 3]]);
    assert_eq!(
        cups_cred_len, 0,
        "the exported CUPS credentials are current"
    );
    assert!(tc_cred_len > 0, "TC credentials are sent on first contact");

    let (status, _, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
    // JSON logs: one object per line (warnings included), no secret.
    assert!(stderr.contains("CUPS_URI is not set"), "{stderr}");
    for line in stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.get("level").is_some(), "{line}");
    }
    assert!(!stderr.contains(&hex::encode(&key)), "a key was logged");
}

#[test]
fn startup_failures_are_one_line_errors() {
    let dir = workdir();
    let d = dir.path();
    // The port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = cli_support::run_env(
        d,
        &["serve", "--listen", &addr, "--admin-listen", "off"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("error: cannot listen on {addr}")),
        "{err}"
    );

    // A partial PKI is never completed implicitly.
    let other = workdir();
    std::fs::create_dir(other.path().join("certs")).expect("dir");
    std::fs::copy(d.join("certs/ca.crt"), other.path().join("certs/ca.crt")).expect("copy");
    let out = cli_support::run_env(
        other.path(),
        &["serve", "--listen", "127.0.0.1:0", "--admin-listen", "off"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("init --inspect"), "{err}");
    assert!(!other.path().join("certs/ca.key").exists());
}
