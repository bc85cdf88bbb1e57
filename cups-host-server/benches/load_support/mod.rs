//! What the load benchmark and the two-process race test share: a fleet of registered
//! gateways with their minted credentials, station request bodies, a TLS client that reads
//! one response as a stream, and a server child process (`--serve`) with a kill-on-drop guard.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cups_core::Eui64;
use cups_host_server::pki::{ClientUsage, Pki};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// CUPS URI the fleet is configured with (and reports back).
pub(crate) const CUPS_URI: &str = "https://localhost:16140";
/// TC URI the fleet is configured with (and reports back).
pub(crate) const TC_URI: &str = "wss://localhost:16138";
/// Station `model` of the fleet.
pub(crate) const MODEL: &str = "linux";
/// `package` the fleet runs.
pub(crate) const PACKAGE: &str = "1.0.0";
/// First EUI of the fleet (gateway `i` is `EUI_BASE + i`).
pub(crate) const EUI_BASE: u64 = 0x0016_c001_0000_0000;
/// Line the server child prints once it listens.
pub(crate) const LISTEN_PREFIX: &str = "LISTEN ";
/// Bound on one exchange (handshake, request, whole response).
pub(crate) const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(120);

/// Gateway number `i` of the fleet.
pub(crate) fn fleet_eui(i: usize) -> Eui64 {
    Eui64::new(EUI_BASE + i as u64).expect("non-zero EUI")
}

/// What a provisioned gateway holds: its own credential blobs and their CRCs.
#[derive(Clone)]
pub(crate) struct Gateway {
    /// Its EUI.
    pub(crate) eui: Eui64,
    /// The CUPS blob (trust ‖ cert ‖ key).
    pub(crate) cups_blob: Vec<u8>,
    /// CRC the station reports for its CUPS credentials.
    pub(crate) cups_crc: u32,
    /// CRC the station reports for its TC credentials.
    pub(crate) tc_crc: u32,
}

impl Gateway {
    /// From the two blobs a station would store.
    pub(crate) fn from_blobs(eui: Eui64, cups_blob: Vec<u8>, tc_blob: &[u8]) -> Self {
        let split = cups_core::cred::station_split(&cups_blob).expect("CUPS blob splits");
        let cups_crc = split.stored_crc(&cups_blob).expect("CUPS crc");
        let tc = cups_core::cred::station_split(tc_blob).expect("TC blob splits");
        let tc_crc = tc.stored_crc(tc_blob).expect("TC crc");
        Self {
            eui,
            cups_blob,
            cups_crc,
            tc_crc,
        }
    }

    /// The client certificate (leaf DER) of the CUPS blob.
    pub(crate) fn leaf_der(&self) -> Vec<u8> {
        let split = cups_core::cred::station_split(&self.cups_blob).expect("split");
        let (_, cert, _) = split.slices(&self.cups_blob).expect("slices");
        cert.to_vec()
    }

    /// A rustls client as the station connects with its CUPS credentials: trust from the
    /// blob, client certificate and SEC1 key from the blob, no session resumption.
    pub(crate) fn client_config(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        let split = cups_core::cred::station_split(&self.cups_blob).expect("split");
        let (trust, cert, key) = split.slices(&self.cups_blob).expect("slices");
        client_config(
            CertificateDer::from(trust.to_vec()),
            Some((
                CertificateDer::from(cert.to_vec()),
                PrivateKeyDer::Sec1(key.to_vec().into()),
            )),
            versions,
        )
    }

    /// The body of a station request reporting what this gateway holds.
    pub(crate) fn request_body(&self, package: &str, keys: &[u32]) -> Vec<u8> {
        station_body(
            self.eui,
            Some(TC_URI),
            self.cups_crc,
            self.tc_crc,
            Some(package),
            keys,
        )
    }
}

/// A rustls client trusting `root`, presenting `client` if any, without resumption.
pub(crate) fn client_config(
    root: CertificateDer<'static>,
    client: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).expect("trust anchor");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots);
    let mut cfg = match client {
        Some((cert, key)) => b
            .with_client_auth_cert(vec![cert], key)
            .expect("client auth"),
        None => b.with_no_client_auth(),
    };
    cfg.resumption = rustls::client::Resumption::disabled();
    Arc::new(cfg)
}

/// The CUPS trust anchor a station holds (the server's CA).
pub(crate) fn cups_trust(pki: &Pki) -> CertificateDer<'static> {
    CertificateDer::from(pki.trust_der(ClientUsage::Cups).to_vec())
}

/// A station request body (the field order and shapes of `station/src/cups.c`).
pub(crate) fn station_body(
    eui: Eui64,
    tc_uri: Option<&str>,
    cups_crc: u32,
    tc_crc: u32,
    package: Option<&str>,
    keys: &[u32],
) -> Vec<u8> {
    let opt = |v: Option<&str>| v.map_or_else(|| "null".to_owned(), |v| format!("\"{v}\""));
    let keys: Vec<String> = keys.iter().map(u32::to_string).collect();
    format!(
        "{{\"router\":\"{}\",\"cupsUri\":\"{CUPS_URI}\",\"tcUri\":{},\"cupsCredCrc\":{cups_crc},\"tcCredCrc\":{tc_crc},\"station\":\"2.0.6(linux/std) 2026-11-26 00:00:00\",\"model\":\"{MODEL}\",\"package\":{},\"keys\":[{}]}}",
        eui.id6(),
        opt(tc_uri),
        opt(package),
        keys.join(",")
    )
    .into_bytes()
}

/// The full request as the station sends it (space-padded `Content-Length`).
pub(crate) fn station_request(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST /update-info HTTP/1.1\r\nHost: localhost:16140\r\nContent-Type: application/json\r\nContent-Length: {:>5}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// Status and length of a response whose body went to a sink.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResponseHead {
    /// HTTP status.
    pub(crate) status: u16,
    /// `Content-Length`.
    pub(crate) content_length: u64,
}

/// One exchange over a fresh connection with a full TLS handshake: send `request`, read the
/// response head, hand the body (exactly `Content-Length` bytes) to `sink` as it arrives.
pub(crate) async fn exchange(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    request: &[u8],
    mut sink: impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<ResponseHead, String> {
    let fut = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from("localhost").expect("name");
        let mut tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tls.write_all(request)
            .await
            .map_err(|e| format!("send: {e}"))?;
        tls.flush().await.map_err(|e| format!("send: {e}"))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut head = Vec::new();
        let (status, len, rest) = loop {
            let n = tls
                .read(&mut buf)
                .await
                .map_err(|e| format!("read head: {e}"))?;
            if n == 0 {
                return Err("closed before a response head".to_owned());
            }
            head.extend_from_slice(&buf[..n]);
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&head[..end]).into_owned();
                let status: u16 = text
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("bad status line: {text}"))?;
                let len: u64 = text
                    .split("\r\n")
                    .filter_map(|l| l.split_once(':'))
                    .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse().ok())
                    .ok_or_else(|| format!("no Content-Length: {text}"))?;
                break (status, len, head.split_off(end + 4));
            }
        };
        let mut got = rest.len() as u64;
        if got > len {
            return Err(format!("{got} body bytes for Content-Length {len}"));
        }
        sink(&rest)?;
        while got < len {
            let n = tls
                .read(&mut buf)
                .await
                .map_err(|e| format!("read body after {got} of {len} bytes: {e}"))?;
            if n == 0 {
                return Err(format!("body ended after {got} of {len} bytes"));
            }
            got += n as u64;
            if got > len {
                return Err(format!("{got} body bytes for Content-Length {len}"));
            }
            sink(&buf[..n])?;
        }
        Ok(ResponseHead {
            status,
            content_length: len,
        })
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, fut)
        .await
        .map_err(|_| "exchange timed out".to_owned())?
}

/// What a response body held, decoded with cups-core as it streams in. The update bytes
/// are hashed, not kept.
#[derive(Default)]
pub(crate) struct BodyCheck {
    decoder: cups_core::response::Decoder,
    hasher: cups_core::sig::UpdateHasher,
    /// Bytes of the body seen.
    pub(crate) body_len: u64,
    /// The whole body, while it is short (≤ 64 KiB): credential responses, NO_CHANGE.
    pub(crate) small_body: Vec<u8>,
    /// New CUPS URI.
    pub(crate) cups_uri: Option<Vec<u8>>,
    /// New TC URI.
    pub(crate) tc_uri: Option<Vec<u8>>,
    /// CUPS credential blob.
    pub(crate) cups_cred: Vec<u8>,
    /// TC credential blob.
    pub(crate) tc_cred: Vec<u8>,
    /// The signature segment.
    pub(crate) signature: Option<(u32, Vec<u8>)>,
    /// Update length announced.
    pub(crate) update_len: Option<u32>,
    /// Update bytes received.
    pub(crate) update_got: u64,
    /// `Done` seen.
    pub(crate) done: bool,
}

impl BodyCheck {
    /// Feed the next body bytes.
    pub(crate) fn feed(&mut self, mut input: &[u8]) -> Result<(), String> {
        use cups_core::response::{CredKind, Event};
        self.body_len += input.len() as u64;
        if self.body_len <= 64 * 1024 {
            self.small_body.extend_from_slice(input);
        }
        loop {
            let step = self
                .decoder
                .decode(input)
                .map_err(|e| format!("response does not decode: {e:?}"))?;
            input = &input[step.consumed..];
            match step.event {
                Some(Event::CupsUri(u)) => self.cups_uri = Some(u.to_vec()),
                Some(Event::TcUri(u)) => self.tc_uri = Some(u.to_vec()),
                Some(Event::CredChunk { kind, data, .. }) => match kind {
                    CredKind::Cups => self.cups_cred.extend_from_slice(data),
                    CredKind::Tc => self.tc_cred.extend_from_slice(data),
                },
                Some(Event::Signature { key_crc, der }) => {
                    self.signature = Some((key_crc, der.to_vec()));
                }
                Some(Event::UpdateStart { len }) => self.update_len = Some(len),
                Some(Event::UpdateChunk { data, .. }) => {
                    self.update_got += data.len() as u64;
                    self.hasher.update(data);
                }
                Some(Event::Done) => {
                    self.done = true;
                    if !input.is_empty() {
                        return Err("bytes after the end of the response".to_owned());
                    }
                    return Ok(());
                }
                Some(_) => {}
                None if input.is_empty() => return Ok(()),
                None => {}
            }
        }
    }

    /// The body ended: it must be a complete response.
    pub(crate) fn finish(self) -> Result<Finished, String> {
        self.decoder
            .finish()
            .map_err(|e| format!("incomplete response: {e:?}"))?;
        Ok(Finished {
            digest: self.hasher.finish(),
            body_len: self.body_len,
            small_body: self.small_body,
            cups_uri: self.cups_uri,
            tc_uri: self.tc_uri,
            cups_cred: self.cups_cred,
            tc_cred: self.tc_cred,
            signature: self.signature,
            update_len: self.update_len,
            update_got: self.update_got,
        })
    }
}

/// A completely decoded response.
pub(crate) struct Finished {
    /// SHA-512 of the update bytes.
    pub(crate) digest: [u8; 64],
    /// Body length.
    pub(crate) body_len: u64,
    /// The body if it was short.
    pub(crate) small_body: Vec<u8>,
    /// New CUPS URI.
    pub(crate) cups_uri: Option<Vec<u8>>,
    /// New TC URI.
    pub(crate) tc_uri: Option<Vec<u8>>,
    /// CUPS credential blob.
    pub(crate) cups_cred: Vec<u8>,
    /// TC credential blob.
    pub(crate) tc_cred: Vec<u8>,
    /// Signature segment.
    pub(crate) signature: Option<(u32, Vec<u8>)>,
    /// Update length announced.
    pub(crate) update_len: Option<u32>,
    /// Update bytes received.
    pub(crate) update_got: u64,
}

/// A server child process, killed (and reaped) when dropped.
pub(crate) struct ServerChild {
    /// The process.
    pub(crate) child: Child,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
}

impl ServerChild {
    /// Start `cmd` (stdin and stdout piped) and wait (at most `within`) for its
    /// [`LISTEN_PREFIX`] line. The child is expected to exit when its stdin closes.
    pub(crate) fn spawn(cmd: Command, within: Duration) -> Self {
        Self::spawn_marked(cmd, LISTEN_PREFIX, within)
    }

    /// [`ServerChild::spawn`] for a server announcing its address after `marker` on a
    /// stdout line (e.g. `listening cups https://` of `cups-server serve`).
    pub(crate) fn spawn_marked(mut cmd: Command, marker: &str, within: Duration) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn server process");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let marker = marker.to_owned();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Anywhere in the line: libtest prints `test name ... ` without a newline.
                if !sent && let Some((_, addr)) = line.split_once(marker.as_str()) {
                    let _ = tx.send(addr.trim().to_owned());
                    sent = true;
                }
            }
        });
        let guard_addr = "0.0.0.0:0".parse().expect("addr");
        let mut me = Self {
            child,
            addr: guard_addr,
        };
        let addr = rx
            .recv_timeout(within)
            .unwrap_or_else(|_| panic!("server process did not listen within {within:?}"));
        me.addr = addr.parse().expect("listen address");
        me
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Block until stdin closes (the parent died or dropped its guard).
pub(crate) async fn stdin_closed() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    })
    .await;
}

/// `(name, value in kB)` lines of `/proc/<pid>/status` (VmRSS, VmHWM).
pub(crate) fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system) of a process so far, from `/proc/<pid>/stat` (USER_HZ = 100).
pub(crate) fn proc_cpu(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = text.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}
