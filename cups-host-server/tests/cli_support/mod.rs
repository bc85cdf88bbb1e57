//! Helpers for the `cli_*` tests: run the built `cups-server` binary in a temporary working
//! directory with a clean environment (only `PATH` and what a test adds).
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The binary under test.
pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cups-server")
}

/// A command for the binary in `dir`, with a clean environment plus `env`.
pub(crate) fn command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(bin());
    c.args(args).current_dir(dir).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        c.env("PATH", path);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Run and return the output.
pub(crate) fn run_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    command(dir, args, env).output().expect("run cups-server")
}

/// Run; it must succeed; its stdout.
pub(crate) fn ok_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = run_env(dir, args, env);
    assert!(
        out.status.success(),
        "cups-server {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 stdout")
}

/// [`ok_env`] without extra environment.
pub(crate) fn ok(dir: &Path, args: &[&str]) -> String {
    ok_env(dir, args, &[])
}

/// Run; it must fail with exit status 1; its stderr.
pub(crate) fn fails(dir: &Path, args: &[&str]) -> String {
    let out = run_env(dir, args, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "cups-server {args:?} should fail with 1:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr).expect("UTF-8 stderr")
}

/// A fresh working directory.
pub(crate) fn workdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// The golden vectors: `CUPS_VECTORS` if set, else `../../shared/vectors` beside the
/// repository. Missing vectors fail the test.
pub(crate) fn vectors_dir() -> PathBuf {
    let dir = std::env::var_os("CUPS_VECTORS").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors")),
        PathBuf::from,
    );
    assert!(
        dir.join("requests").is_dir(),
        "golden vectors not found at {} (set CUPS_VECTORS)",
        dir.display()
    );
    dir
}

/// Mode bits of a file.
pub(crate) fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A plain HTTP/1.1 GET on loopback; (status line, body).
pub(crate) fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let status = resp.lines().next().unwrap_or_default().to_owned();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The S3 endpoint for tests: `CUPS_TEST_S3_ENDPOINT`; unset fails under `CI`, else skips.
pub(crate) fn s3_endpoint() -> Option<String> {
    match std::env::var("CUPS_TEST_S3_ENDPOINT") {
        Ok(e) if !e.is_empty() => Some(e.trim_end_matches('/').to_owned()),
        _ if std::env::var_os("CI").is_some() => {
            panic!("S3 tests need CUPS_TEST_S3_ENDPOINT (scripts/s3-test-server.sh start)")
        }
        _ => {
            eprintln!("skipped: CUPS_TEST_S3_ENDPOINT is unset");
            None
        }
    }
}

/// A fresh bucket on `endpoint`, created with a plain unauthenticated `PUT /<bucket>`.
pub(crate) fn s3_bucket(endpoint: &str, tag: &str) -> String {
    let mut rnd = [0u8; 6];
    getrandom::fill(&mut rnd).expect("OS RNG");
    let bucket = format!("cups-{tag}-{}", hex::encode(rnd));
    let hostport = endpoint.strip_prefix("http://").expect("http endpoint");
    let mut s = TcpStream::connect(hostport).expect("connect to S3");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("read");
    assert!(
        resp.starts_with(b"HTTP/1.1 200"),
        "bucket creation failed: {}",
        String::from_utf8_lossy(&resp)
    );
    bucket
}
