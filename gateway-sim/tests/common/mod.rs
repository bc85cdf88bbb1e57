//! Test helpers: the golden PKI and vectors, a device CA minted with rcgen, and a small CUPS
//! server (std `TcpListener` + rustls on 127.0.0.1:0, a thread per connection) answering
//! `POST /update-info` with whatever the test's handler builds.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cups_core::Eui64;
use cups_core::cred::BlobParts;
use cups_core::response::{ResponseParts, encode_full};
use cups_core::station::{CredFile, CredKind, FileId, FileSet, MemStore};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};

/// The vectors directory: `CUPS_VECTORS`, else `../../shared/vectors` from the crate.
pub fn vectors_dir() -> PathBuf {
    match std::env::var("CUPS_VECTORS") {
        Ok(d) => d.into(),
        Err(_) => concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors").into(),
    }
}

/// A vector file (missing vectors fail the test).
pub fn vector(rel: &str) -> Vec<u8> {
    let p = vectors_dir().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("vector {} (set CUPS_VECTORS): {e}", p.display()))
}

/// The golden PKI (`pki/`): CA, server (CN=localhost), the cups client of router
/// 0016c001ff10a235, and the update-signing keys.
pub struct Golden {
    pub ca_der: Vec<u8>,
    pub ca_pem: Vec<u8>,
    pub server_der: Vec<u8>,
    pub server_key_der: Vec<u8>,
    pub client_der: Vec<u8>,
    pub client_pem: Vec<u8>,
    pub client_key_der: Vec<u8>,
    pub client_key_pem: Vec<u8>,
    pub tc_der: Vec<u8>,
    pub tc_key_der: Vec<u8>,
    pub sig0_key: Vec<u8>,
    pub sig1_key: Vec<u8>,
    pub sig0_pem: Vec<u8>,
}

impl Golden {
    pub fn load() -> Self {
        Self {
            ca_der: vector("pki/ca.crt.der"),
            ca_pem: vector("pki/ca.crt.pem"),
            server_der: vector("pki/server.crt.der"),
            server_key_der: vector("pki/server.key.der"),
            client_der: vector("pki/cups-0016c001ff10a235.crt.der"),
            client_pem: vector("pki/cups-0016c001ff10a235.crt.pem"),
            client_key_der: vector("pki/cups-0016c001ff10a235.key.der"),
            client_key_pem: vector("pki/cups-0016c001ff10a235.key.pem"),
            tc_der: vector("pki/tc-0016c001ff10a235.crt.der"),
            tc_key_der: vector("pki/tc-0016c001ff10a235.key.der"),
            sig0_key: vector("pki/sig-0.key"),
            sig1_key: vector("pki/sig-1.key"),
            sig0_pem: vector("pki/sig-0.pem"),
        }
    }

    /// The server identity (CN=localhost) trusting `extra_roots` plus the golden CA for
    /// client certificates.
    pub fn server_tls(&self, extra_roots: &[Vec<u8>]) -> ServerTls {
        let mut roots = vec![self.ca_der.clone()];
        roots.extend(extra_roots.iter().cloned());
        ServerTls {
            chain: vec![self.server_der.clone()],
            key: PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(self.server_key_der.clone())),
            client_roots: roots,
        }
    }

    /// A station home with the PEM bootstrap credentials in the regular set (like the
    /// vectors' `first-contact`), pointing at `uri`.
    pub fn home(&self, uri: &str) -> MemStore {
        let f = |file| FileId::cred(CredKind::Cups, FileSet::Reg, file);
        MemStore::new()
            .with(f(CredFile::Uri), uri)
            .with(f(CredFile::Trust), self.ca_pem.clone())
            .with(f(CredFile::Cert), self.client_pem.clone())
            .with(f(CredFile::Key), self.client_key_pem.clone())
    }

    /// The mTLS blob CA ‖ cups client ‖ SEC1 key (= full.bin's CUPS credentials).
    pub fn cups_blob(&self) -> Vec<u8> {
        blob(&self.ca_der, &self.client_der, &self.client_key_der)
    }

    /// The mTLS blob CA ‖ tc client ‖ SEC1 key (= full.bin's TC credentials).
    pub fn tc_blob(&self) -> Vec<u8> {
        blob(&self.ca_der, &self.tc_der, &self.tc_key_der)
    }
}

/// A station-safe mTLS blob.
pub fn blob(trust: &[u8], cert: &[u8], key: &[u8]) -> Vec<u8> {
    let parts = BlobParts::Mtls { trust, cert, key };
    let mut out = vec![0; parts.len()];
    parts.write_checked(&mut out).expect("station-safe blob");
    out
}

/// A device CA minted with rcgen, for per-gateway client certificates.
pub struct DeviceCa {
    pub cert_der: Vec<u8>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl DeviceCa {
    pub fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "gateway-sim test device CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Self {
            cert_der: cert.der().to_vec(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A client certificate for `eui` (CN = canonical EUI) and its SEC1 key (121 bytes).
    pub fn mint(&self, eui: Eui64) -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, eui.canonical().to_string());
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.der().to_vec(), pkcs8_to_sec1(&key.serialize_der()))
    }
}

/// One DER TLV: (tag, content, rest).
fn tlv(d: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = d[0];
    let (len, hdr) = if d[1] < 0x80 {
        (d[1] as usize, 2)
    } else {
        let n = (d[1] & 0x7f) as usize;
        (
            d[2..2 + n].iter().fold(0usize, |v, &b| v << 8 | b as usize),
            2 + n,
        )
    };
    (tag, &d[hdr..hdr + len], &d[hdr + len..])
}

/// A P-256 PKCS#8 key as the 121-byte SEC1 `ECPrivateKey` with curve and public key.
pub fn pkcs8_to_sec1(pkcs8: &[u8]) -> Vec<u8> {
    let (_, outer, _) = tlv(pkcs8);
    let (_, _version, rest) = tlv(outer);
    let (_, _alg, rest) = tlv(rest);
    let (_, inner, _) = tlv(rest); // OCTET STRING { ECPrivateKey }
    let (_, ec, _) = tlv(inner);
    let (_, _v, rest) = tlv(ec);
    let (_, d, mut rest) = tlv(rest);
    let mut point = None;
    while !rest.is_empty() {
        let (tag, content, r) = tlv(rest);
        if tag == 0xa1 {
            let (_, bits, _) = tlv(content);
            point = Some(bits[1..].to_vec());
        }
        rest = r;
    }
    let point = point.expect("public key in PKCS#8");
    assert_eq!((d.len(), point.len()), (32, 65));
    let mut out = vec![0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20];
    out.extend_from_slice(d);
    out.extend_from_slice(&[
        0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ]);
    out.extend_from_slice(&[0xa1, 0x44, 0x03, 0x42, 0x00]);
    out.extend_from_slice(&point);
    assert_eq!(out.len(), 121);
    // rustls must accept it back (as the simulated station will).
    let _ = PrivatePkcs8KeyDer::from(pkcs8.to_vec());
    out
}

/// The server's TLS identity and the roots it accepts client certificates from.
pub struct ServerTls {
    pub chain: Vec<Vec<u8>>,
    pub key: PrivateKeyDer<'static>,
    pub client_roots: Vec<Vec<u8>>,
}

/// A request as the test server saw it.
#[derive(Clone, Debug)]
pub struct CupsRequest {
    pub router: Eui64,
    pub cups_uri: Option<String>,
    pub tc_uri: Option<String>,
    pub cups_crc: u32,
    pub tc_crc: u32,
    pub package: Option<String>,
    pub keys: Vec<u32>,
    /// The client certificate of the TLS session.
    pub client_cert: Option<Vec<u8>>,
    /// `Authorization` header, if any.
    pub authorization: Option<String>,
    pub tls13: bool,
}

/// What the handler answers.
pub struct CupsResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl CupsResponse {
    pub fn nochange() -> Self {
        Self::body(vec![0; 14])
    }

    pub fn body(body: Vec<u8>) -> Self {
        Self { status: 200, body }
    }

    pub fn encode(parts: &ResponseParts<'_>, update: &[u8]) -> Self {
        let mut out = vec![0; 70_000 + update.len()];
        let n = encode_full(parts, update, &mut out).expect("encodable response");
        out.truncate(n);
        Self::body(out)
    }
}

type Handler = dyn Fn(&CupsRequest) -> CupsResponse + Send + Sync;

/// The test CUPS server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<CupsRequest>>>,
}

impl TestServer {
    pub fn start(
        tls: ServerTls,
        handler: impl Fn(&CupsRequest) -> CupsResponse + Send + Sync + 'static,
    ) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for r in &tls.client_roots {
            roots.add(CertificateDer::from(r.clone())).unwrap();
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .unwrap();
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                tls.chain.into_iter().map(CertificateDer::from).collect(),
                tls.key,
            )
            .unwrap();
        config.send_tls13_tickets = 0;
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let requests = requests.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    let config = config.clone();
                    let handler = handler.clone();
                    let requests = requests.clone();
                    std::thread::spawn(move || {
                        let _ = serve(stream, config, &*handler, &requests);
                    });
                }
            });
        }
        Self { addr, requests }
    }

    /// A plain-HTTP server (for `http://` URIs).
    pub fn start_plain(
        handler: impl Fn(&CupsRequest) -> CupsResponse + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let requests = requests.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    let handler = handler.clone();
                    let requests = requests.clone();
                    std::thread::spawn(move || {
                        let _ = serve_plain(stream, &*handler, &requests);
                    });
                }
            });
        }
        Self { addr, requests }
    }

    /// `https://localhost:PORT` for this server.
    pub fn uri(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    pub fn requests(&self) -> Vec<CupsRequest> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(
    stream: TcpStream,
    config: Arc<ServerConfig>,
    handler: &Handler,
    requests: &Mutex<Vec<CupsRequest>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_nodelay(true)?;
    let conn = ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = StreamOwned::new(conn, stream);
    // Complete the handshake first to know the peer.
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    let peer = (
        tls.conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec()),
        tls.conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3),
    );
    exchange(&mut tls, peer, handler, requests)
}

fn serve_plain(
    mut stream: TcpStream,
    handler: &Handler,
    requests: &Mutex<Vec<CupsRequest>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    exchange(&mut stream, (None, false), handler, requests)
}

/// One request/response on `s`, then wait for the client to close (keep-alive).
fn exchange<S: Read + Write>(
    s: &mut S,
    (client_cert, tls13): (Option<Vec<u8>>, bool),
    handler: &Handler,
    requests: &Mutex<Vec<CupsRequest>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    let head_end = loop {
        let n = s.read(&mut byte)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&byte[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut byte)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&byte[..n]);
    }
    let body: serde_json::Value =
        serde_json::from_slice(&buf[head_end..head_end + len]).map_err(std::io::Error::other)?;
    let st = |k: &str| body.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let n = |k: &str| body.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0) as u32;
    let req = CupsRequest {
        router: Eui64::parse(&st("router").unwrap_or_default())
            .map_err(|_| std::io::Error::other("router"))?,
        cups_uri: st("cupsUri"),
        tc_uri: st("tcUri"),
        cups_crc: n("cupsCredCrc"),
        tc_crc: n("tcCredCrc"),
        package: st("package"),
        keys: body
            .get("keys")
            .and_then(|k| k.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_u64())
                    .map(|v| v as u32)
                    .collect()
            })
            .unwrap_or_default(),
        client_cert,
        authorization: header("authorization"),
        tls13,
    };
    let resp = handler(&req);
    requests.lock().unwrap().push(req);
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n",
        resp.status,
        if resp.status == 200 { "OK" } else { "Error" },
        resp.body.len()
    )
    .into_bytes();
    out.extend_from_slice(&resp.body);
    s.write_all(&out)?;
    s.flush()?;
    loop {
        match s.read(&mut byte) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(())
}
