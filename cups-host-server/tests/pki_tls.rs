//! The PKI works with rustls: real TLS handshakes on loopback with init's server certificate
//! and minted client certificates, verified by a `WebPkiClientVerifier` over the gateway CA.

mod pki_support;

use std::sync::Arc;

use cups_core::Eui64;
use cups_host_server::pki::{ClientUsage, Pki, identity_from_cert};
use pki_support::{fresh, leaf, test_ca, uri};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer, ServerName,
};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use time::{Duration, OffsetDateTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn eui() -> Eui64 {
    Eui64::parse("0016c001ff10a235").expect("eui")
}

/// Server config from the PKI, client certificates verified against the gateway CA only
/// (`WebPkiClientVerifier` from `gateway_roots`).
fn server_config(pki: &Pki) -> Arc<ServerConfig> {
    let mut roots = RootCertStore::empty();
    for root in pki.gateway_roots() {
        roots.add(root.clone()).expect("root");
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .expect("verifier");
    server_config_with(pki, verifier)
}

fn server_config_with(
    pki: &Pki,
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
) -> Arc<ServerConfig> {
    Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(pki.server_cert_chain(), pki.server_key())
            .expect("server cert"),
    )
}

fn client_config(
    pki: &Pki,
    version: &'static SupportedProtocolVersion,
    cert: Vec<u8>,
    key: PrivateKeyDer<'static>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(
            pki.trust_der(ClientUsage::Cups).to_vec(),
        ))
        .expect("trust");
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[version])
            .expect("version")
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![CertificateDer::from(cert)], key)
            .expect("client cert"),
    )
}

/// One handshake on 127.0.0.1 plus a 1-byte echo; returns the server's result (the peer's
/// leaf certificate) and whether the client completed.
async fn handshake(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
) -> (Result<Vec<u8>, std::io::Error>, bool) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = TlsAcceptor::from(server).accept(tcp).await?;
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await?;
        tls.write_all(&byte).await?;
        tls.shutdown().await?;
        Ok::<_, std::io::Error>(leaf)
    });
    let client_ok = async {
        let tcp = TcpStream::connect(addr).await.ok()?;
        let name = ServerName::try_from("localhost").ok()?;
        let mut tls = TlsConnector::from(client).connect(name, tcp).await.ok()?;
        tls.write_all(b"x").await.ok()?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.ok()?;
        Some(byte == *b"x")
    };
    let limit = std::time::Duration::from_secs(10);
    let client_ok = tokio::time::timeout(limit, client_ok)
        .await
        .expect("client timed out")
        .unwrap_or(false);
    let server = tokio::time::timeout(limit, server_task)
        .await
        .expect("server timed out")
        .expect("join");
    (server, client_ok)
}

fn is_expired(e: &std::io::Error) -> bool {
    matches!(
        e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. }
        ))
    )
}

#[tokio::test]
async fn minted_client_cert_passes_rustls_on_loopback() {
    let (_tmp, _paths, pki) = fresh();
    let server = server_config(&pki);
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let m = pki
            .mint_client(
                eui(),
                ClientUsage::Cups,
                Duration::days(30),
                OffsetDateTime::now_utc(),
            )
            .expect("mint");
        let key = PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(m.key_sec1_der.clone()));
        let client = client_config(&pki, version, m.cert_der.clone(), key);
        let (leaf, client_ok) = handshake(Arc::clone(&server), client).await;
        let leaf = leaf.expect("server accepted the minted certificate");
        assert!(client_ok, "client completed ({version:?})");
        assert_eq!(leaf, m.cert_der);
        let id = identity_from_cert(&leaf).expect("identity");
        assert_eq!(id.eui, eui());
        assert_eq!(id.serial_hex, m.serial_hex);
        assert!(pki.issued_by_gateway_ca(&leaf));
        assert!(!pki.issued_by_bootstrap(&leaf));
    }
}

#[tokio::test]
async fn expired_client_cert_is_rejected() {
    let (_tmp, _paths, pki) = fresh();
    let server = server_config(&pki);
    let long_ago = OffsetDateTime::now_utc() - Duration::days(10);
    let m = pki
        .mint_client(eui(), ClientUsage::Cups, Duration::days(1), long_ago)
        .expect("mint");
    assert!(m.not_after < OffsetDateTime::now_utc());
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let key = PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(m.key_sec1_der.clone()));
        let client = client_config(&pki, version, m.cert_der.clone(), key);
        let (result, client_ok) = handshake(Arc::clone(&server), client).await;
        let err = result.expect_err("expired certificate must be rejected");
        assert!(is_expired(&err), "{err:?}");
        assert!(!client_ok);
    }
}

#[tokio::test]
async fn certificate_from_another_ca_is_rejected() {
    let (_tmp, _paths, pki) = fresh();
    let server = server_config(&pki);
    let other = test_ca("some other CA");
    let (der, key) = leaf(
        &other,
        &["0016c001ff10a235"],
        vec![uri("urn:dev:mac:0016c001ff10a235")],
    );
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let client = client_config(&pki, &rustls::version::TLS13, der.clone(), key);
    let (result, _) = handshake(server, client).await;
    assert!(result.is_err(), "unknown issuer");
    assert!(!pki.issued_by_bootstrap(&der));
    assert!(!pki.issued_by_gateway_ca(&der));
}

#[tokio::test]
async fn bootstrap_ca_certificates_are_told_apart() {
    let (_tmp, paths, _) = fresh();
    let factory = test_ca("Factory CA");
    std::fs::write(paths.bootstrap_ca(), &factory.pem).expect("bootstrap");
    let pki = Pki::load(&paths).expect("load with bootstrap CA");
    assert_eq!(pki.bootstrap_roots().len(), 1);
    assert_eq!(pki.client_verifier_roots().len(), 2);
    assert_eq!(pki.client_root_store().len(), 2);

    // A factory certificate passes the verifier built by the PKI and is recognised.
    let server = server_config_with(
        &pki,
        pki.client_verifier(provider(), true).expect("verifier"),
    );
    let (der, key) = leaf(&factory, &["0016c001ff10a235"], vec![]);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let client = client_config(&pki, &rustls::version::TLS13, der.clone(), key);
    let (leaf_seen, client_ok) = handshake(Arc::clone(&server), client).await;
    assert_eq!(leaf_seen.expect("factory cert accepted"), der);
    assert!(client_ok);
    assert!(pki.issued_by_bootstrap(&der));
    assert!(!pki.issued_by_gateway_ca(&der));

    // Our own certificates are not bootstrap certificates.
    let m = pki
        .mint_client(
            eui(),
            ClientUsage::Cups,
            Duration::days(1),
            OffsetDateTime::now_utc(),
        )
        .expect("mint");
    assert!(!pki.issued_by_bootstrap(&m.cert_der));

    // A CA with the same name but another key does not count as the bootstrap CA.
    let impostor = test_ca("Factory CA");
    let (fake, _) = leaf(&impostor, &["0016c001ff10a235"], vec![]);
    assert!(!pki.issued_by_bootstrap(&fake));
    assert!(!pki.issued_by_bootstrap(b"not a certificate"));
}
