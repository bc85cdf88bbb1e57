//! The rustls server configuration and the peer identity it establishes.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::pki::Pki;
use crate::service::PeerIdentity;

/// Why a TLS server configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A client CA certificate could not be used as a trust anchor.
    #[error("client CA certificate #{index} is not a usable trust anchor: {source}")]
    ClientRoot {
        /// Position in the `client_roots` list.
        index: usize,
        /// What rustls/webpki said.
        source: rustls::Error,
    },
    /// The client certificate verifier could not be built.
    #[error("cannot build the client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The protocol versions or the certificate/key pair were refused.
    #[error("TLS server configuration refused: {0}")]
    Config(#[from] rustls::Error),
}

/// The rustls configuration of the CUPS listener:
///
/// * TLS 1.2 and TLS 1.3, the `ring` provider's default cipher suites and groups;
/// * the server identity `cert_chain` (leaf first) and its `key` — ECDSA (P-256) and RSA keys
///   both work;
/// * client certificates **optional**: a certificate that is presented must chain to one of
///   `client_roots` (the gateway CA and the bootstrap CA) and be valid now, else the
///   handshake fails; a client that presents none is accepted as
///   [`PeerIdentity::Anonymous`] (token mode). With no `client_roots` at all, client
///   certificates are not requested.
/// * no ALPN (stations send none; HTTP/1.1 is implied).
pub fn server_config(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_roots: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = if client_roots.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        for (index, der) in client_roots.iter().enumerate() {
            roots
                .add(der.clone())
                .map_err(|source| TlsConfigError::ClientRoot { index, source })?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated()
            .build()?;
        builder.with_client_cert_verifier(verifier)
    };
    let config = builder.with_single_cert(cert_chain, key)?;
    Ok(Arc::new(config))
}

/// [`server_config`] for the server identity of `pki` (`cups.crt`/`cups.key`), with the
/// gateway CA and the bootstrap CAs as client roots.
pub fn server_config_from_pki(pki: &Pki) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
    server_config(
        pki.server_cert_chain(),
        pki.server_key(),
        &pki.client_verifier_roots(),
    )
}

/// The identity of a TLS peer after the handshake: the verified leaf certificate, if the
/// client presented one (rustls only completes a handshake whose certificate verified).
#[must_use]
pub fn peer_identity(conn: &rustls::ServerConnection) -> PeerIdentity {
    match conn.peer_certificates().and_then(|chain| chain.first()) {
        Some(leaf) => PeerIdentity::ClientCert {
            leaf_der: leaf.as_ref().to_vec(),
        },
        None => PeerIdentity::Anonymous,
    }
}
