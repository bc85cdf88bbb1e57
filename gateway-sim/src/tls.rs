//! TLS for a CUPS connection: a rustls client configuration built from a station's credential
//! set the way the station's mbedTLS setup reads its files, and a sans-IO session that the
//! gateway driver pumps against its smoltcp socket.
//!
//! Reading the files (`conn_setup_tls` in `src/net.c`, mbedTLS `x509_crt_parse` /
//! `pk_parse_key`):
//!
//! * trust and client certificate: PEM (every `CERTIFICATE` block) or DER (the first element;
//!   the station's DER slices from a CUPS blob are exactly one certificate);
//! * key: PEM or DER, SEC1 (`EC PRIVATE KEY`) or PKCS#8 — both are accepted, like mbedTLS;
//! * [`AuthMode::Both`] = mutual TLS; [`AuthMode::Server`] and [`AuthMode::Token`] = server
//!   authentication only (in token mode the station writes the header lines into the request
//!   itself);
//! * the server name (SNI and certificate check) is the URI host; no session resumption (the
//!   station makes a fresh session per interaction).
//!
//! [`TlsVersions::Tls12`] is the default: the station's mbedTLS 2.28 speaks TLS 1.2.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};
use std::sync::Arc;

use cups_core::station::{AuthMode, CredFile, CredKind, CredSet, FileId, MemStore};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Marker of PEM data (mbedTLS tries PEM when it finds it).
const PEM_MARKER: &[u8] = b"-----BEGIN";
/// Plaintext read from the session per call.
pub const PLAINTEXT_CHUNK: usize = 4 * 1024;

/// Which TLS versions a simulated gateway offers.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize)]
pub enum TlsVersions {
    /// TLS 1.2 only, like the station (mbedTLS 2.28).
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
    /// Both (1.3 preferred).
    Both,
}

impl TlsVersions {
    fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static TLS12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
        static TLS13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        static BOTH: [&rustls::SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        match self {
            Self::Tls12 => &TLS12,
            Self::Tls13 => &TLS13,
            Self::Both => &BOTH,
        }
    }
}

/// Why TLS could not be set up from a credential set (the station reports these as a TLS
/// failure of the interaction).
#[derive(Clone, PartialEq, Debug)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// The set has no trust.
    NoTrust,
    /// The trust file holds no certificate rustls accepts as a root.
    BadTrust,
    /// The client certificate file holds no certificate.
    BadCert,
    /// The key file holds no private key.
    BadKey,
    /// The URI host is not a valid server name.
    BadServerName,
    /// rustls refused the configuration (e.g. key and certificate do not match).
    Rustls(rustls::Error),
}

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoTrust => f.write_str("no trust configured"),
            Self::BadTrust => f.write_str("trust certificates rejected"),
            Self::BadCert => f.write_str("client certificate rejected"),
            Self::BadKey => f.write_str("client key rejected"),
            Self::BadServerName => f.write_str("URI host is not a valid server name"),
            Self::Rustls(e) => write!(f, "TLS configuration: {e}"),
        }
    }
}

impl std::error::Error for TlsSetupError {}

/// The three credential files of a set, as stored.
#[derive(Clone, Copy, Debug)]
pub struct SetFiles<'a> {
    /// `*.trust`.
    pub trust: &'a [u8],
    /// `*.crt`.
    pub cert: &'a [u8],
    /// `*.key`.
    pub key: &'a [u8],
}

impl<'a> SetFiles<'a> {
    /// The files of `set` in category `kind` (missing files read as empty).
    #[must_use]
    pub fn of(store: &'a MemStore, kind: CredKind, set: CredSet) -> Self {
        let get = |f| {
            store
                .get(FileId::cred(kind, set.into(), f))
                .unwrap_or_default()
        };
        Self {
            trust: get(CredFile::Trust),
            cert: get(CredFile::Cert),
            key: get(CredFile::Key),
        }
    }
}

/// Builds client configurations; holds the crypto provider shared by all gateways.
#[derive(Clone, Debug)]
pub struct TlsFactory {
    provider: Arc<CryptoProvider>,
    versions: TlsVersions,
}

impl TlsFactory {
    /// A factory offering `versions` (ring crypto).
    #[must_use]
    pub fn new(versions: TlsVersions) -> Self {
        Self {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            versions,
        }
    }

    /// The client configuration for `files` in `mode`.
    ///
    /// # Errors
    /// A [`TlsSetupError`] saying which file was refused.
    pub fn client_config(
        &self,
        files: &SetFiles<'_>,
        mode: AuthMode,
    ) -> Result<Arc<ClientConfig>, TlsSetupError> {
        if files.trust.is_empty() || mode == AuthMode::None {
            return Err(TlsSetupError::NoTrust);
        }
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certificates(files.trust));
        if added == 0 {
            return Err(TlsSetupError::BadTrust);
        }
        let builder = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(self.versions.versions())
            .map_err(TlsSetupError::Rustls)?
            .with_root_certificates(roots);
        let mut config = if mode == AuthMode::Both {
            let chain = certificates(files.cert);
            if chain.is_empty() {
                return Err(TlsSetupError::BadCert);
            }
            let key = private_key(files.key).ok_or(TlsSetupError::BadKey)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(TlsSetupError::Rustls)?
        } else {
            builder.with_no_client_auth()
        };
        config.resumption = Resumption::disabled();
        Ok(Arc::new(config))
    }
}

/// Certificates in a file: every PEM block, or the first DER element.
#[must_use]
pub fn certificates(data: &[u8]) -> Vec<CertificateDer<'static>> {
    if contains(data, PEM_MARKER) {
        CertificateDer::pem_slice_iter(data)
            .filter_map(Result::ok)
            .collect()
    } else {
        der_element(data)
            .map(|d| vec![CertificateDer::from(d.to_vec())])
            .unwrap_or_default()
    }
}

/// The private key in a file: PEM (SEC1 or PKCS#8) or DER (the first element, either form).
#[must_use]
pub fn private_key(data: &[u8]) -> Option<PrivateKeyDer<'static>> {
    if contains(data, PEM_MARKER) {
        PrivateKeyDer::from_pem_slice(data).ok()
    } else {
        let der = der_element(data)?;
        PrivateKeyDer::try_from(der).ok().map(|k| k.clone_key())
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The first DER element (`30 len ...`) of `data`, as mbedTLS reads a DER file.
fn der_element(data: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = data.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = rest.get(..n)?;
        let len = bytes.iter().fold(0usize, |v, &b| (v << 8) | usize::from(b));
        (len, 2 + n)
    };
    data.get(..header.checked_add(len)?)
}

/// What [`Session::read_plaintext`] found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PlainRead {
    /// This many bytes.
    Data(usize),
    /// Nothing yet.
    WouldBlock,
    /// The peer closed: `clean` with a TLS `close_notify` (or a plain TCP FIN).
    Eof {
        /// Whether the close was clean.
        clean: bool,
    },
}

/// A failed session.
#[derive(Debug)]
pub struct SessionError(pub rustls::Error);

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS: {}", self.0)
    }
}

impl std::error::Error for SessionError {}

/// The byte pipe of one connection: TLS, or plain for `http://` URIs.
#[derive(Debug)]
pub enum Session {
    /// Plain TCP.
    Plain(PlainSession),
    /// TLS.
    Tls(Box<ClientConnection>),
}

/// Plain TCP buffers.
#[derive(Debug, Default)]
pub struct PlainSession {
    out: VecDeque<u8>,
    input: VecDeque<u8>,
    eof: bool,
}

impl Session {
    /// A TLS session to `host`.
    ///
    /// # Errors
    /// [`TlsSetupError::BadServerName`] or a rustls refusal.
    pub fn tls(config: Arc<ClientConfig>, host: &str) -> Result<Self, TlsSetupError> {
        let name =
            ServerName::try_from(host.to_owned()).map_err(|_| TlsSetupError::BadServerName)?;
        let conn = ClientConnection::new(config, name).map_err(TlsSetupError::Rustls)?;
        Ok(Self::Tls(Box::new(conn)))
    }

    /// A plain session.
    #[must_use]
    pub fn plain() -> Self {
        Self::Plain(PlainSession::default())
    }

    /// Whether the TLS handshake is still running.
    #[must_use]
    pub fn is_handshaking(&self) -> bool {
        match self {
            Self::Plain(_) => false,
            Self::Tls(c) => c.is_handshaking(),
        }
    }

    /// The negotiated TLS version, once known.
    #[must_use]
    pub fn tls_version(&self) -> Option<rustls::ProtocolVersion> {
        match self {
            Self::Plain(_) => None,
            Self::Tls(c) => c.protocol_version(),
        }
    }

    /// Queue plaintext to send (sent after the handshake).
    pub fn write_plaintext(&mut self, data: &[u8]) {
        match self {
            Self::Plain(p) => p.out.extend(data),
            Self::Tls(c) => {
                // The writer buffers without limit (no `set_buffer_limit`).
                let _ = io::Write::write_all(&mut c.writer(), data);
            }
        }
    }

    /// Feed bytes received from the transport; returns how many were taken (fewer when the
    /// session's buffers are full: feed the rest after reading plaintext).
    ///
    /// # Errors
    /// A TLS error (bad record, alert, certificate refused, ...).
    pub fn read_transport(&mut self, mut data: &[u8]) -> Result<usize, SessionError> {
        match self {
            Self::Plain(p) => {
                p.input.extend(data);
                Ok(data.len())
            }
            Self::Tls(c) => {
                let total = data.len();
                while !data.is_empty() {
                    match c.read_tls(&mut data) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            c.process_new_packets().map_err(SessionError)?;
                        }
                    }
                }
                Ok(total - data.len())
            }
        }
    }

    /// The transport closed (TCP FIN received and all data fed).
    ///
    /// # Errors
    /// A TLS error surfaced by the close.
    pub fn transport_eof(&mut self) -> Result<(), SessionError> {
        match self {
            Self::Plain(p) => p.eof = true,
            Self::Tls(c) => {
                let _ = c.read_tls(&mut io::empty());
                c.process_new_packets().map_err(SessionError)?;
            }
        }
        Ok(())
    }

    /// Read plaintext into `out`.
    pub fn read_plaintext(&mut self, out: &mut [u8]) -> PlainRead {
        match self {
            Self::Plain(p) => {
                if p.input.is_empty() {
                    return if p.eof {
                        PlainRead::Eof { clean: true }
                    } else {
                        PlainRead::WouldBlock
                    };
                }
                let n = p.input.read(out).unwrap_or(0);
                PlainRead::Data(n)
            }
            Self::Tls(c) => match c.reader().read(out) {
                Ok(0) => PlainRead::Eof { clean: true },
                Ok(n) => PlainRead::Data(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => PlainRead::WouldBlock,
                Err(_) => PlainRead::Eof { clean: false },
            },
        }
    }

    /// Whether bytes wait to go to the transport.
    #[must_use]
    pub fn wants_write(&self) -> bool {
        match self {
            Self::Plain(p) => !p.out.is_empty(),
            Self::Tls(c) => c.wants_write(),
        }
    }

    /// Write transport bytes into `out`; returns how many.
    pub fn write_transport(&mut self, mut out: &mut [u8]) -> usize {
        match self {
            Self::Plain(p) => {
                let n = out.len().min(p.out.len());
                for (o, b) in out.iter_mut().zip(p.out.drain(..n)) {
                    *o = b;
                }
                n
            }
            Self::Tls(c) => c.write_tls(&mut out).unwrap_or(0),
        }
    }

    /// Start a clean close (TLS `close_notify`).
    pub fn close(&mut self) {
        if let Self::Tls(c) = self {
            c.send_close_notify();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_element_reads_short_and_long_forms() {
        assert_eq!(der_element(&[0x30, 1, 5, 9, 9]), Some(&[0x30, 1, 5][..]));
        let mut long = vec![0x30, 0x82, 0x01, 0x00];
        long.extend(vec![0; 256]);
        long.extend([1, 2, 3]);
        assert_eq!(der_element(&long).map(<[u8]>::len), Some(260));
        assert_eq!(der_element(&[0x30, 0x82, 0x01]), None);
        assert_eq!(der_element(&[0x31, 0]), None);
        assert_eq!(der_element(&[0x30, 5, 0]), None);
        assert_eq!(der_element(&[]), None);
    }

    #[test]
    fn plain_session_pipes_bytes() {
        let mut s = Session::plain();
        s.write_plaintext(b"hello");
        assert!(s.wants_write());
        let mut buf = [0u8; 3];
        assert_eq!(s.write_transport(&mut buf), 3);
        assert_eq!(&buf, b"hel");
        assert_eq!(s.read_transport(b"abc").unwrap(), 3);
        let mut out = [0u8; 8];
        assert_eq!(s.read_plaintext(&mut out), PlainRead::Data(3));
        assert_eq!(s.read_plaintext(&mut out), PlainRead::WouldBlock);
        s.transport_eof().unwrap();
        assert_eq!(s.read_plaintext(&mut out), PlainRead::Eof { clean: true });
    }

    #[test]
    fn setup_errors() {
        let f = TlsFactory::new(TlsVersions::Tls12);
        let empty = SetFiles {
            trust: b"",
            cert: b"",
            key: b"",
        };
        assert_eq!(
            f.client_config(&empty, AuthMode::Server).unwrap_err(),
            TlsSetupError::NoTrust
        );
        let junk = SetFiles {
            trust: b"junk",
            cert: b"",
            key: b"",
        };
        assert_eq!(
            f.client_config(&junk, AuthMode::Server).unwrap_err(),
            TlsSetupError::BadTrust
        );
    }
}
