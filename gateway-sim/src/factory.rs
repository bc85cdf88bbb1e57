//! The simulated manufacturer: a factory CA that issues one certificate per gateway EUI
//! (CN = the 16-hex EUI, clientAuth), and the bootstrap station home (`cups-boot.*`) each
//! simulated gateway leaves the factory with.
//!
//! The operator installs the factory CA certificate as the CUPS server's `bootstrap-ca.crt`
//! (see the cups-host-server PKI docs): the server then honours these certificates for
//! registered gateways that never used their own credentials.
//!
//! On disk ([`FactoryCa::create`] / [`FactoryCa::load`]): `factory-ca.crt` (PEM) and
//! `factory-ca.key` (PEM, created 0600).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use cups_core::Eui64;
use cups_core::station::{CredFile, CredKind, FileId, FileSet, MemStore};

/// File name of the factory CA certificate (PEM) in a factory directory.
pub const FACTORY_CA_CERT: &str = "factory-ca.crt";
/// File name of the factory CA key (PEM, mode 0600) in a factory directory.
pub const FACTORY_CA_KEY: &str = "factory-ca.key";
/// Common name of a factory CA made by [`FactoryCa::generate`].
pub const FACTORY_CA_CN: &str = "gateway-sim factory CA";
/// The package every gateway leaves the factory with (`version.txt`).
pub const FACTORY_PACKAGE: &str = "1.0.0";

/// Why the factory failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FactoryError {
    /// Certificate or key generation / parsing.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A minted key could not be converted to SEC1.
    #[error("key conversion: {0:?}")]
    Key(cups_host_server::pki::KeyProblem),
    /// The directory already holds a factory CA.
    #[error("{0} exists: refusing to overwrite a factory CA")]
    Exists(PathBuf),
}

/// One gateway's factory credentials.
#[derive(Clone)]
pub struct FactoryCred {
    /// Certificate, DER (CN = EUI).
    pub cert_der: Vec<u8>,
    /// Private key, SEC1 DER (the form stations keep).
    pub key_sec1_der: Vec<u8>,
}

impl std::fmt::Debug for FactoryCred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FactoryCred")
            .field("cert_der_len", &self.cert_der.len())
            .finish_non_exhaustive()
    }
}

/// The factory CA.
pub struct FactoryCa {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl std::fmt::Debug for FactoryCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FactoryCa").finish_non_exhaustive()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FactoryError + '_ {
    move |source| FactoryError::Io {
        path: path.to_owned(),
        source,
    }
}

impl FactoryCa {
    /// A fresh CA in memory (P-256).
    ///
    /// # Errors
    /// [`FactoryError::Cert`].
    pub fn generate() -> Result<Self, FactoryError> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, FACTORY_CA_CN);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Self {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        })
    }

    /// Generate a CA and write it into `dir` (created if missing): the certificate 0644, the
    /// key 0600. Refuses to overwrite an existing CA.
    ///
    /// # Errors
    /// A [`FactoryError`].
    pub fn create(dir: &Path) -> Result<Self, FactoryError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let cert_path = dir.join(FACTORY_CA_CERT);
        let key_path = dir.join(FACTORY_CA_KEY);
        for p in [&cert_path, &key_path] {
            if p.exists() {
                return Err(FactoryError::Exists(p.clone()));
            }
        }
        let ca = Self::generate()?;
        write_private(&key_path, ca.issuer.key().serialize_pem().as_bytes())?;
        std::fs::write(&cert_path, &ca.pem).map_err(io_err(&cert_path))?;
        Ok(ca)
    }

    /// Load the CA from `dir`.
    ///
    /// # Errors
    /// A [`FactoryError`].
    pub fn load(dir: &Path) -> Result<Self, FactoryError> {
        let cert_path = dir.join(FACTORY_CA_CERT);
        let key_path = dir.join(FACTORY_CA_KEY);
        let pem = std::fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
        let key = rcgen::KeyPair::from_pem(&key_pem)?;
        let issuer = rcgen::Issuer::from_ca_cert_pem(&pem, key)?;
        Ok(Self { pem, issuer })
    }

    /// Load the CA from `dir`, or create it there when `dir` holds none.
    ///
    /// # Errors
    /// A [`FactoryError`].
    pub fn load_or_create(dir: &Path) -> Result<Self, FactoryError> {
        if dir.join(FACTORY_CA_CERT).exists() {
            Self::load(dir)
        } else {
            Self::create(dir)
        }
    }

    /// The CA certificate, PEM: install it as the server's `bootstrap-ca.crt`.
    #[must_use]
    pub fn cert_pem(&self) -> &str {
        &self.pem
    }

    /// Mint the factory certificate of `eui` (CN = 16-hex EUI, clientAuth) and its key.
    ///
    /// # Errors
    /// A [`FactoryError`].
    pub fn mint(&self, eui: Eui64) -> Result<FactoryCred, FactoryError> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, eui.canonical().to_string());
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer)?;
        let key_sec1_der = cups_host_server::pki::pkcs8_to_sec1_p256(&key.serialize_der())
            .map_err(FactoryError::Key)?;
        Ok(FactoryCred {
            cert_der: cert.der().to_vec(),
            key_sec1_der,
        })
    }
}

/// What a gateway's bootstrap home holds besides its own factory credentials.
#[derive(Clone, Debug)]
pub struct BootstrapSet {
    /// `cups-boot.uri`.
    pub cups_uri: String,
    /// `cups-boot.trust`: the CUPS server's trust anchor (DER or PEM).
    pub trust: Vec<u8>,
    /// `sig-N.key` files (64-byte raw public keys), in order.
    pub sig_keys: Vec<Vec<u8>>,
}

impl BootstrapSet {
    /// The station home of a gateway leaving the factory: only `cups-boot.*` (its factory
    /// certificate and key), `version.txt` = [`FACTORY_PACKAGE`], and the `sig-N.key` files.
    #[must_use]
    pub fn home(&self, cred: &FactoryCred) -> MemStore {
        let boot = |f| FileId::cred(CredKind::Cups, FileSet::Boot, f);
        let mut home = MemStore::new()
            .with(boot(CredFile::Uri), self.cups_uri.as_bytes())
            .with(boot(CredFile::Trust), self.trust.clone())
            .with(boot(CredFile::Cert), cred.cert_der.clone())
            .with(boot(CredFile::Key), cred.key_sec1_der.clone())
            .with(FileId::Version, FACTORY_PACKAGE);
        for (n, k) in self.sig_keys.iter().enumerate() {
            if let Ok(n) = u8::try_from(n) {
                home.insert(FileId::SigKey(n), k.clone());
            }
        }
        home
    }
}

/// Write `bytes` to a new file readable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), FactoryError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_load_mint() {
        let dir = tempfile::tempdir().unwrap();
        let ca = FactoryCa::create(dir.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(FACTORY_CA_KEY))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            FactoryCa::create(dir.path()),
            Err(FactoryError::Exists(_))
        ));
        let loaded = FactoryCa::load(dir.path()).unwrap();
        assert_eq!(loaded.cert_pem(), ca.cert_pem());
        let eui = Eui64::new(0x0016_c001_ff10_0001).unwrap();
        let cred = loaded.mint(eui).unwrap();
        assert_eq!(cred.key_sec1_der.len(), 121);
        let set = BootstrapSet {
            cups_uri: "https://localhost:1".into(),
            trust: vec![1, 2, 3],
            sig_keys: vec![vec![0; 64]],
        };
        let home = set.home(&cred);
        assert_eq!(
            home.get(FileId::cred(CredKind::Cups, FileSet::Boot, CredFile::Cert)),
            Some(cred.cert_der.as_slice())
        );
        assert_eq!(home.get(FileId::Version), Some(&b"1.0.0"[..]));
        assert!(home.get(FileId::SigKey(0)).is_some());
        assert!(
            home.get(FileId::cred(CredKind::Cups, FileSet::Reg, CredFile::Uri))
                .is_none()
        );
    }
}
