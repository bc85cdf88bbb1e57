//! Writing a ready-to-run Basics Station home directory for one gateway
//! (`cups-server gateway export`; protocol doc §5).
//!
//! | file | content | mode |
//! |---|---|---|
//! | `station.conf` | `{"station_conf": {"routerid": "<16 hex>", "log_level": "INFO", ...}}` | 0644 |
//! | `cups.uri` | the CUPS URI, no newline | 0644 |
//! | `cups.trust` | the certificate anchoring the server certificate | 0644 |
//! | `cups.crt` | the gateway's CUPS client certificate; empty in token and server-auth mode | 0644 |
//! | `cups.key` | its SEC1 P-256 key, or `Authorization: Bearer <token>\r\n` in token mode | 0600 |
//! | `sig-0.key` ... | raw 64-byte update-signing public keys | 0644 |
//!
//! With `bootstrap` the CUPS set is written as `cups-boot.*` instead (the station tries it after
//! its regular and backup sets; the first answer then installs the same credentials as its
//! regular set). `tc.*` is never written: CUPS fills it on first contact.
//!
//! # DER or PEM
//!
//! The station reads either. [`ExportFormat::Der`] (the default) writes the three parts of the
//! record's credential blob byte for byte — exactly the files the station itself writes when
//! it stores a blob from CUPS — so the CRC it reports on first contact,
//! `crc32(trust ‖ cert ‖ key)`, already equals `crc32(blob)` and the server sends no
//! credential segment (no spurious reconnect). [`ExportFormat::Pem`] is easier to inspect with
//! `openssl`, but the first contact then replaces the files with the DER blob once.
//!
//! Files are written to a temporary name and renamed, with their final mode from creation on.
//! An existing non-empty directory is refused unless `force` is set; with `force`, the files
//! listed above are replaced and nothing else in the directory is touched.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cups_core::Eui64;
use cups_core::cred::{BlobForm, SafeBlob, UnsafeBlob};
use cups_core::sig::SigKey;
use serde_json::{Map, Value};

/// Mode of files holding a private key or token.
pub const KEY_FILE_MODE: u32 = 0o600;
/// Mode of the other files.
pub const PUBLIC_FILE_MODE: u32 = 0o644;
/// Mode of a station home directory created here (it holds a private key).
pub const DIR_MODE: u32 = 0o700;
/// `log_level` written into `station.conf` unless overridden.
pub const DEFAULT_LOG_LEVEL: &str = "INFO";
/// Longest CUPS URI a station accepts (`src/sys.c`: 128 bytes or more are refused).
pub const MAX_STATION_URI_LEN: usize = cups_core::response::MAX_URI_LEN;
/// `station.conf` keys this module sets itself and extra entries may not replace.
pub const RESERVED_CONF_KEYS: &[&str] = &["routerid"];

/// File names of a station home.
pub mod files {
    /// The station configuration.
    pub const STATION_CONF: &str = "station.conf";
    /// Base name of the regular CUPS set.
    pub const CUPS: &str = "cups";
    /// Base name of the bootstrap CUPS set.
    pub const CUPS_BOOT: &str = "cups-boot";

    /// `sig-<n>.key`.
    #[must_use]
    pub fn sig_key(n: usize) -> String {
        format!("sig-{n}.key")
    }
}

/// How certificates and keys are written.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, clap::ValueEnum)]
pub enum ExportFormat {
    /// DER, byte-identical to the blob parts (see the module docs).
    #[default]
    Der,
    /// PEM (`CERTIFICATE`, `EC PRIVATE KEY`).
    Pem,
}

/// The client credential part of a CUPS set.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientCred {
    /// Client certificate (DER) and SEC1 key (DER).
    Mtls {
        /// Certificate, DER.
        cert_der: Vec<u8>,
        /// SEC1 key, DER.
        key_sec1_der: Vec<u8>,
    },
    /// Token header lines (`Authorization: Bearer ...\r\n`).
    Token {
        /// The header lines.
        header_lines: Vec<u8>,
    },
    /// Server authentication only.
    ServerAuth,
}

impl std::fmt::Debug for ClientCred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Mtls { .. } => "Mtls(<redacted>)",
            Self::Token { .. } => "Token(<redacted>)",
            Self::ServerAuth => "ServerAuth",
        })
    }
}

/// Everything a station home holds.
#[derive(Clone, Debug)]
pub struct StationHome {
    /// The gateway (`routerid`).
    pub eui: Eui64,
    /// `cups.uri`.
    pub cups_uri: String,
    /// The CUPS trust certificate, DER.
    pub trust_der: Vec<u8>,
    /// The CUPS client credential.
    pub cred: ClientCred,
    /// The update-signing public keys (`sig-0.key` first).
    pub sig_keys: Vec<SigKey>,
    /// Extra `station_conf` entries (timers such as `CUPS_RESYNC_INTV`, `TLS_SNI`, ...).
    pub station_conf: Map<String, Value>,
}

impl StationHome {
    /// From a gateway's stored CUPS credential blob (split exactly as the station splits it).
    ///
    /// # Errors
    /// The blob is not station-safe, or the URI is too long for a station.
    pub fn from_cups_blob(
        eui: Eui64,
        cups_uri: String,
        blob: &[u8],
        sig_keys: Vec<SigKey>,
    ) -> Result<Self, ExportError> {
        let safe = SafeBlob::new(blob).map_err(ExportError::Blob)?;
        let cred = match safe.form() {
            BlobForm::Mtls => ClientCred::Mtls {
                cert_der: safe.cert().to_vec(),
                key_sec1_der: safe.key().to_vec(),
            },
            BlobForm::Token => ClientCred::Token {
                header_lines: safe.key().to_vec(),
            },
            BlobForm::ServerAuth => ClientCred::ServerAuth,
        };
        let home = Self {
            eui,
            cups_uri,
            trust_der: safe.trust().to_vec(),
            cred,
            sig_keys,
            station_conf: Map::new(),
        };
        home.check_uri()?;
        Ok(home)
    }

    fn check_uri(&self) -> Result<(), ExportError> {
        if self.cups_uri.is_empty() || self.cups_uri.len() > MAX_STATION_URI_LEN {
            return Err(ExportError::UriLength {
                len: self.cups_uri.len(),
            });
        }
        Ok(())
    }

    /// The `station.conf` document.
    #[must_use]
    pub fn station_conf_json(&self, log_level: &str) -> Value {
        let mut conf = Map::new();
        conf.insert(
            "routerid".to_owned(),
            Value::String(self.eui.canonical().to_string()),
        );
        conf.insert("log_level".to_owned(), Value::String(log_level.to_owned()));
        for (k, v) in &self.station_conf {
            if !RESERVED_CONF_KEYS.contains(&k.as_str()) {
                conf.insert(k.clone(), v.clone());
            }
        }
        let mut root = Map::new();
        root.insert("station_conf".to_owned(), Value::Object(conf));
        Value::Object(root)
    }
}

/// How to write.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// DER or PEM.
    pub format: ExportFormat,
    /// Write the CUPS set as `cups-boot.*`.
    pub bootstrap: bool,
    /// Replace the files in an existing non-empty directory.
    pub force: bool,
    /// `log_level` in `station.conf`.
    pub log_level: String,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            format: ExportFormat::Der,
            bootstrap: false,
            force: false,
            log_level: DEFAULT_LOG_LEVEL.to_owned(),
        }
    }
}

/// One file written.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WrittenFile {
    /// Its path.
    pub path: PathBuf,
    /// Its length.
    pub len: usize,
    /// Its mode.
    pub mode: u32,
}

/// What [`write_station_home`] wrote.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ExportReport {
    /// The directory.
    pub dir: PathBuf,
    /// The files, in writing order.
    pub files: Vec<WrittenFile>,
    /// The CRC the station computes over the exported CUPS set (`crc32(trust ‖ cert ‖ key)`,
    /// empty files as four zero bytes).
    pub set_crc: u32,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The directory exists and is not empty.
    #[error("{} exists and is not empty (use --force to replace the station files in it)", dir.display())]
    NotEmpty {
        /// The directory.
        dir: PathBuf,
    },
    /// The path exists and is not a directory.
    #[error("{} exists and is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// A file or directory could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The stored blob is not one the station would take.
    #[error("the stored CUPS credential blob is not station-safe: {0}")]
    Blob(#[source] UnsafeBlob),
    /// The CUPS URI is empty or longer than a station accepts.
    #[error("the CUPS URI is {len} bytes; a station takes 1..={MAX_STATION_URI_LEN}")]
    UriLength {
        /// Its length.
        len: usize,
    },
    /// `station.conf` could not be serialized.
    #[error("station.conf: {0}")]
    Json(#[source] serde_json::Error),
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn pem(tag: &str, der: &[u8]) -> Vec<u8> {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(tag, der.to_vec()), config).into_bytes()
}

/// Check, without changing anything, that [`write_station_home`] may write into `dir`: it does
/// not exist, or is an empty directory, or is a directory and `force` is set. Call it before
/// minting credentials for an export.
///
/// # Errors
/// [`ExportError::NotEmpty`], [`ExportError::NotADirectory`], or an I/O error.
pub fn check_target(dir: &Path, force: bool) -> Result<(), ExportError> {
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(ExportError::NotADirectory {
            path: dir.to_path_buf(),
        }),
        Ok(_) => {
            let mut entries = fs::read_dir(dir).map_err(io_err(dir))?;
            if entries.next().is_some() && !force {
                return Err(ExportError::NotEmpty {
                    dir: dir.to_path_buf(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(dir)(e)),
    }
}

/// Prepare the directory: check it ([`check_target`]) and create it (mode [`DIR_MODE`]) if
/// missing.
fn prepare_dir(dir: &Path, force: bool) -> Result<(), ExportError> {
    check_target(dir, force)?;
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(io_err(dir))
}

/// Write `bytes` to `dir/name` through a temporary file created with `mode`, then rename.
fn write_file(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<WrittenFile, ExportError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed the mode; set it exactly.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    })();
    if let Err(source) = result {
        let _ = fs::remove_file(&tmp);
        return Err(ExportError::Io { path, source });
    }
    Ok(WrittenFile {
        path,
        len: bytes.len(),
        mode,
    })
}

/// Write `home` into `dir` (see the module docs).
///
/// # Errors
/// [`ExportError::NotEmpty`] without `force`, I/O errors naming the file, an unusable URI.
pub fn write_station_home(
    dir: &Path,
    home: &StationHome,
    opts: &ExportOptions,
) -> Result<ExportReport, ExportError> {
    home.check_uri()?;
    prepare_dir(dir, opts.force)?;
    let base = if opts.bootstrap {
        files::CUPS_BOOT
    } else {
        files::CUPS
    };
    let (cert_der, key_bytes): (&[u8], &[u8]) = match &home.cred {
        ClientCred::Mtls {
            cert_der,
            key_sec1_der,
        } => (cert_der, key_sec1_der),
        ClientCred::Token { header_lines } => (&[], header_lines),
        ClientCred::ServerAuth => (&[], &[]),
    };
    let (trust_file, cert_file, key_file) = match (opts.format, &home.cred) {
        (ExportFormat::Der, _) => (
            home.trust_der.clone(),
            cert_der.to_vec(),
            key_bytes.to_vec(),
        ),
        (ExportFormat::Pem, ClientCred::Mtls { .. }) => (
            pem("CERTIFICATE", &home.trust_der),
            pem("CERTIFICATE", cert_der),
            pem("EC PRIVATE KEY", key_bytes),
        ),
        (ExportFormat::Pem, _) => (
            pem("CERTIFICATE", &home.trust_der),
            Vec::new(),
            key_bytes.to_vec(),
        ),
    };
    let set_crc = cups_core::crc::cred_set_crc(&trust_file, &cert_file, &key_file);

    let conf = serde_json::to_vec_pretty(&home.station_conf_json(&opts.log_level))
        .map_err(ExportError::Json)?;
    let mut written = vec![
        write_file(dir, files::STATION_CONF, &conf, PUBLIC_FILE_MODE)?,
        write_file(
            dir,
            &format!("{base}.uri"),
            home.cups_uri.as_bytes(),
            PUBLIC_FILE_MODE,
        )?,
        write_file(dir, &format!("{base}.trust"), &trust_file, PUBLIC_FILE_MODE)?,
        write_file(dir, &format!("{base}.crt"), &cert_file, PUBLIC_FILE_MODE)?,
        write_file(dir, &format!("{base}.key"), &key_file, KEY_FILE_MODE)?,
    ];
    for (n, key) in home.sig_keys.iter().enumerate() {
        written.push(write_file(
            dir,
            &files::sig_key(n),
            &key.0,
            PUBLIC_FILE_MODE,
        )?);
    }
    if let Ok(d) = fs::File::open(dir) {
        // Make the new names durable; best effort.
        let _ = d.sync_all();
    }
    Ok(ExportReport {
        dir: dir.to_path_buf(),
        files: written,
        set_crc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home(cred: ClientCred) -> StationHome {
        StationHome {
            eui: Eui64::parse("0016c001ff10a235").expect("eui"),
            cups_uri: "https://localhost:16050".into(),
            trust_der: vec![0x30, 0x03, 1, 2, 3],
            cred,
            sig_keys: vec![SigKey([7; 64])],
            station_conf: Map::new(),
        }
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).expect("meta").permissions().mode() & 0o777
    }

    #[test]
    fn token_home_der() {
        let dir = tempfile::tempdir().expect("tmp");
        let target = dir.path().join("home");
        let lines = b"Authorization: Bearer abc\r\n".to_vec();
        let h = home(ClientCred::Token {
            header_lines: lines.clone(),
        });
        let r = write_station_home(&target, &h, &ExportOptions::default()).expect("export");
        assert_eq!(fs::read(target.join("cups.key")).expect("key"), lines);
        assert_eq!(fs::read(target.join("cups.crt")).expect("crt").len(), 0);
        assert_eq!(mode(&target.join("cups.key")), KEY_FILE_MODE);
        assert_eq!(mode(&target), DIR_MODE);
        assert_eq!(r.files.len(), 6);
        let mut blob = h.trust_der.clone();
        blob.extend_from_slice(&[0; 4]);
        blob.extend_from_slice(&lines);
        assert_eq!(
            r.set_crc,
            cups_core::crc::crc32(&blob),
            "CRC equals the blob's"
        );
        // Second export without force is refused; with force it succeeds.
        assert!(matches!(
            write_station_home(&target, &h, &ExportOptions::default()),
            Err(ExportError::NotEmpty { .. })
        ));
        let force = ExportOptions {
            force: true,
            bootstrap: true,
            ..ExportOptions::default()
        };
        write_station_home(&target, &h, &force).expect("forced");
        assert!(target.join("cups-boot.key").exists());
    }

    #[test]
    fn conf_keeps_routerid() {
        let mut h = home(ClientCred::ServerAuth);
        h.station_conf
            .insert("routerid".into(), Value::String("::1".into()));
        h.station_conf
            .insert("CUPS_RESYNC_INTV".into(), Value::String("5s".into()));
        let conf = h.station_conf_json("DEBUG");
        assert_eq!(conf["station_conf"]["routerid"], "0016c001ff10a235");
        assert_eq!(conf["station_conf"]["log_level"], "DEBUG");
        assert_eq!(conf["station_conf"]["CUPS_RESYNC_INTV"], "5s");
    }

    #[test]
    fn uri_limits() {
        let mut h = home(ClientCred::ServerAuth);
        let dir = tempfile::tempdir().expect("tmp");
        h.cups_uri = format!("https://{}:1", "a".repeat(MAX_STATION_URI_LEN - 10));
        assert_eq!(h.cups_uri.len(), MAX_STATION_URI_LEN);
        write_station_home(&dir.path().join("a"), &h, &ExportOptions::default()).expect("127");
        h.cups_uri.push('0');
        assert!(matches!(
            write_station_home(&dir.path().join("b"), &h, &ExportOptions::default()),
            Err(ExportError::UriLength { len: 128 })
        ));
        h.cups_uri.clear();
        assert!(matches!(
            write_station_home(&dir.path().join("c"), &h, &ExportOptions::default()),
            Err(ExportError::UriLength { len: 0 })
        ));
    }

    #[test]
    fn not_a_directory() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("f");
        fs::write(&file, b"x").expect("write");
        assert!(matches!(
            write_station_home(
                &file,
                &home(ClientCred::ServerAuth),
                &ExportOptions::default()
            ),
            Err(ExportError::NotADirectory { .. })
        ));
    }
}
