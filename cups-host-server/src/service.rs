//! The CUPS service: everything between "a TLS connection proved identity X and sent this
//! body" and "these response bytes (and maybe this update) go back" — authentication bound to
//! the gateway's identity, credential minting/renewal with conditional writes, the planner,
//! the audit line. No sockets here: `serve` owns the network.
//!
//! ```text
//! IncomingRequest ─▶ decode ─▶ authenticate ─▶ reconcile record ─▶ plan ─▶ encode head ─▶ Outcome
//!   (peer, auth     (400)     (401/403/404)    (own creds used,     (pure)   (+ update stream)
//!    header, body)                             confirm, mint/renew:
//!                                              conditional writes)
//! ```
//!
//! * **Identity first**: a gateway gets secrets only after proving it is the gateway named in
//!   `router` (client certificate of the gateway CA with the current or previous serial, its own
//!   CUPS token, or — while bootstrap is open — a fleet-wide bootstrap certificate or token).
//! * **Stored before sent**: every credential blob is written to the gateway record with an
//!   ETag-conditional update before any response carries it; a lost race re-reads the record
//!   and serves the winner's blob, so concurrent first requests (on one or several instances)
//!   end with one credential set.
//! * **Storage trouble is not the gateway's fault**: an authenticated gateway whose state cannot
//!   be read or written gets 200 "nothing to do" (14 zero bytes), counted and logged — never a
//!   500 and never a non-200 that would push it onto backup credentials.
//! * **One audit line per decision** (`target: "audit"`), never a secret.
//!
//! The administration operations the CLI uses (register, list, show, remove gateways;
//! add, list, remove firmware; dry-run planning) live here too, so the CLI and the server
//! apply the same rules to either store.

mod admin;
mod auth;
mod cache;
mod creds;
mod firmware;
mod metrics;
mod respond;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use cups_core::Eui64;
use cups_core::cred::UnsafeBlob;
use cups_core::request::{RequestError, UpdateInfo};
use cups_core::response::{EncodeError, NO_CHANGE, NO_CHANGE_LEN, UriError};
use time::OffsetDateTime;

use crate::model::GatewayRecord;
use crate::pki::{Pki, PkiError};
use crate::planner::Plan;
use crate::store::{ETag, ObjectStream, Store, StoreError, keys};

pub use admin::{GatewaySpec, Registered, RenewSlots, RenewalRequested, UriChange, UriUpdate};
pub use auth::AuthMethod;
pub use firmware::{FirmwareSource, FirmwareSpec};
pub use metrics::{MetricsSnapshot, RequestOutcome, ServiceMetrics};

use cache::BoundedCache;

/// Default validity of minted client certificates, in days.
pub const DEFAULT_CREDENTIAL_VALIDITY_DAYS: u32 = 365;
/// Default renewal threshold (`CREDENTIAL_MIN_VALID_DAYS`): a client certificate expiring
/// within this many days is replaced.
pub const DEFAULT_MIN_VALID_DAYS: u32 = 30;
/// Default number of gateway records (and, separately, token index entries) kept parsed in
/// memory.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;
/// Fewest gateways whose last service time the rate limiter remembers (it forgets the oldest
/// beyond its capacity, which only makes it more lenient).
pub const RATE_LIMIT_TRACKED: usize = 100_000;
/// Default time the firmware catalogue is reused before it is listed again.
pub const DEFAULT_FIRMWARE_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// Most conditional writes one request attempts on a gateway record before it gives up (and
/// answers "nothing to do"). Each retry starts from a fresh read, so losing this many races in
/// a row needs as many concurrent writers of one gateway.
pub const MAX_WRITE_ATTEMPTS: usize = 8;
/// Concurrent store reads when listing gateways or firmware.
pub const LIST_CONCURRENCY: usize = 16;

/// What the TLS layer established about the peer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PeerIdentity {
    /// A client certificate that rustls verified against the gateway CA or the bootstrap CA
    /// (leaf DER; which CA issued it is decided by the service with `Pki`).
    ClientCert {
        /// Leaf certificate, DER.
        leaf_der: Vec<u8>,
    },
    /// No client certificate (token mode, or no credentials at all).
    Anonymous,
}

/// A request as the network layer hands it over.
#[derive(Clone, Debug)]
pub struct IncomingRequest {
    /// Who the TLS layer says the peer is.
    pub peer: PeerIdentity,
    /// The `Authorization` header value, if any (e.g. `Bearer xyz`). Never logged.
    pub authorization: Option<String>,
    /// The request body (at most the server's body limit).
    pub body: bytes::Bytes,
}

/// What to send back.
#[derive(Debug)]
pub enum Outcome {
    /// 200 with `head` followed by the update bytes streamed from `update` (if any);
    /// `content_length` = head length + update length.
    Respond {
        /// Encoded response head (or the 14-byte NO_CHANGE body).
        head: bytes::Bytes,
        /// Total body length for `Content-Length`.
        content_length: u64,
        /// The update to stream after the head.
        update: Option<ObjectStream>,
    },
    /// A non-200: the station falls back to its backup/bootstrap credentials. Only for real
    /// authentication/authorization failures and malformed requests.
    Reject {
        /// 400, 401, 403 or 404.
        status: u16,
        /// One line, no secrets: goes to the body and the log.
        reason: String,
    },
}

impl Outcome {
    /// 200 "nothing to do": the 14 zero bytes.
    #[must_use]
    pub fn no_change() -> Self {
        Self::Respond {
            head: Bytes::from_static(&NO_CHANGE),
            content_length: NO_CHANGE_LEN as u64,
            update: None,
        }
    }

    /// The HTTP status of this outcome.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::Respond { .. } => 200,
            Self::Reject { status, .. } => *status,
        }
    }
}

/// How the service behaves; the CLI fills it from flags, environment and `.env`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ServiceSettings {
    /// The CUPS URI sent to gateways whose record names none (`CUPS_URI`).
    pub cups_uri: Option<String>,
    /// The TC URI sent to gateways whose record names none (`TC_URI`).
    pub tc_uri: Option<String>,
    /// Validity of minted client certificates, in days.
    pub credential_validity_days: u32,
    /// Renew a client certificate that expires within this many days
    /// (`CREDENTIAL_MIN_VALID_DAYS`). Must be less than `credential_validity_days`.
    pub min_valid_days: u32,
    /// Offer unsigned updates to gateways that hold no signing key.
    pub allow_unsigned: bool,
    /// SHA-256 (lowercase hex) of the fleet-wide bootstrap token(s); the tokens themselves are
    /// never held here (see [`crate::pki::token_sha256_hex`]).
    pub bootstrap_token_sha256: Vec<String>,
    /// Most gateway records (and token index entries) kept parsed in memory; 0 disables.
    pub cache_capacity: usize,
    /// How long the firmware catalogue is reused before it is listed again (zero: list on every
    /// request that could receive an update).
    pub firmware_cache_ttl: std::time::Duration,
    /// Per-EUI rate limit: an authenticated gateway served less than this long ago gets the
    /// 14-byte "nothing to do" (never a non-200, which would send it to its backup
    /// credentials). `None` = off. Keep it below the station's 60 s `CUPS_RESYNC_INTV`, or a
    /// gateway reconnecting after a credential change is turned away once.
    pub rate_limit_interval: Option<std::time::Duration>,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            cups_uri: None,
            tc_uri: None,
            credential_validity_days: DEFAULT_CREDENTIAL_VALIDITY_DAYS,
            min_valid_days: DEFAULT_MIN_VALID_DAYS,
            allow_unsigned: false,
            bootstrap_token_sha256: Vec::new(),
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            firmware_cache_ttl: DEFAULT_FIRMWARE_CACHE_TTL,
            rate_limit_interval: None,
        }
    }
}

impl ServiceSettings {
    /// Check the settings: URIs of the right form, renewal threshold below the validity.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), ServiceError> {
        check_target_uris(self.cups_uri.as_deref(), self.tc_uri.as_deref())?;
        if self.min_valid_days >= self.credential_validity_days {
            return Err(ServiceError::ValidityTooShort {
                validity_days: self.credential_validity_days,
                min_valid_days: self.min_valid_days,
            });
        }
        Ok(())
    }

    /// Certificate validity as a duration.
    #[must_use]
    pub fn credential_validity(&self) -> time::Duration {
        time::Duration::days(i64::from(self.credential_validity_days))
    }

    /// Renewal threshold as a duration.
    #[must_use]
    pub fn min_valid(&self) -> time::Duration {
        time::Duration::days(i64::from(self.min_valid_days))
    }
}

/// Which URI a [`ServiceError::InvalidUri`] is about.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UriKind {
    /// A CUPS URI (`http(s)://host:port`).
    Cups,
    /// A TC URI (`ws(s)://host:port`).
    Tc,
}

impl std::fmt::Display for UriKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Cups => "CUPS",
            Self::Tc => "TC",
        })
    }
}

/// Why an operation of the service failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// No record for this EUI.
    #[error("gateway {eui} is not registered")]
    NotRegistered {
        /// The EUI.
        eui: Eui64,
    },
    /// A record for this EUI exists already.
    #[error("gateway {eui} is already registered")]
    AlreadyRegistered {
        /// The EUI.
        eui: Eui64,
    },
    /// A URI the station would refuse.
    #[error("invalid {which} URI {uri:?}: {source}")]
    InvalidUri {
        /// CUPS or TC.
        which: UriKind,
        /// The URI.
        uri: String,
        /// What is wrong with it.
        #[source]
        source: UriError,
    },
    /// The renewal threshold is not below the certificate validity (every request would renew).
    #[error(
        "credential validity ({validity_days} days) must exceed the renewal threshold ({min_valid_days} days)"
    )]
    ValidityTooShort {
        /// Configured validity.
        validity_days: u32,
        /// Configured threshold.
        min_valid_days: u32,
    },
    /// A request body that does not decode.
    #[error("malformed update-info request: {0}")]
    BadRequest(#[source] RequestError),
    /// A dry-run request body names another gateway.
    #[error("the request names gateway {router}, not {eui}")]
    RouterMismatch {
        /// The gateway asked about.
        eui: Eui64,
        /// The `router` of the request body.
        router: Eui64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored object that does not parse.
    #[error("stored object {key} is not valid: {source}")]
    Corrupt {
        /// Its key.
        key: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A value could not be serialized for the store.
    #[error("cannot serialize {key}: {source}")]
    Serialize {
        /// Its key.
        key: String,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// Minting failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A minted blob failed cups-core's station-safety check (a bug: it is never stored).
    #[error("a minted credential blob is not station-safe: {0}")]
    UnsafeBlob(#[source] UnsafeBlob),
    /// A record kept changing under every conditional write.
    #[error("{key} changed {attempts} times while being updated")]
    Contention {
        /// The key.
        key: String,
        /// How many writes were tried.
        attempts: usize,
    },
    /// A firmware id that is not a single store key segment.
    #[error("invalid firmware id {id:?}: {source}")]
    InvalidFirmwareId {
        /// The id.
        id: String,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// Firmware with this id exists.
    #[error("firmware {id} already exists")]
    FirmwareExists {
        /// The id.
        id: String,
    },
    /// No firmware with this id.
    #[error("firmware {id} not found")]
    FirmwareNotFound {
        /// The id.
        id: String,
    },
    /// An image is stored for this id but no metadata (an interrupted upload).
    #[error("an image without metadata is stored for firmware {id}: remove it first")]
    FirmwareIncomplete {
        /// The id.
        id: String,
    },
    /// An update image of zero bytes (the station reads length 0 as "no update").
    #[error("the firmware image is empty")]
    EmptyImage,
    /// An update image the station cannot take (length ≥ 2^31).
    #[error("the firmware image is {len} bytes, more than the station's limit of {max}")]
    ImageTooLarge {
        /// Its length.
        len: u64,
        /// The limit.
        max: u32,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The plan names credentials the record does not hold (a bug: plan and response are
    /// built from the same record).
    #[error("plan and record disagree: {0}")]
    Parts(#[source] crate::planner::PartsError),
    /// The response could not be encoded (a URI or blob the encoder refuses).
    #[error("response cannot be encoded: {0}")]
    Encode(#[source] EncodeError),
}

/// The CUPS service. Cheap to share (`Arc<Service>`); any number of instances (in one process
/// or several) may serve the same store.
#[derive(Debug)]
pub struct Service {
    store: Arc<dyn Store>,
    pki: Arc<Pki>,
    settings: ServiceSettings,
    metrics: Arc<ServiceMetrics>,
    records: BoundedCache<Eui64, (ETag, GatewayRecord)>,
    /// When each gateway was last served (for the per-EUI rate limit).
    last_served: BoundedCache<Eui64, OffsetDateTime>,
    tokens: BoundedCache<String, crate::model::TokenEntry>,
    firmware: firmware::Catalogue,
}

impl Service {
    /// A service over `store` with `pki`.
    ///
    /// # Errors
    /// [`ServiceSettings::validate`] fails.
    pub fn new(
        store: Arc<dyn Store>,
        pki: Arc<Pki>,
        settings: ServiceSettings,
    ) -> Result<Self, ServiceError> {
        settings.validate()?;
        Ok(Self {
            store,
            pki,
            records: BoundedCache::new(settings.cache_capacity),
            tokens: BoundedCache::new(settings.cache_capacity),
            last_served: BoundedCache::new(RATE_LIMIT_TRACKED.max(settings.cache_capacity)),
            firmware: firmware::Catalogue::new(settings.firmware_cache_ttl),
            settings,
            metrics: Arc::new(ServiceMetrics::default()),
        })
    }

    /// The counters (for the metrics exporter).
    #[must_use]
    pub fn metrics(&self) -> &Arc<ServiceMetrics> {
        &self.metrics
    }

    /// The settings in use.
    #[must_use]
    pub fn settings(&self) -> &ServiceSettings {
        &self.settings
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The PKI.
    #[must_use]
    pub fn pki(&self) -> &Arc<Pki> {
        &self.pki
    }

    /// Whether the store answers (for `/readyz`).
    pub async fn ready(&self) -> bool {
        self.store.ping().await.is_ok()
    }

    /// Answer one `POST /update-info`. Never fails: every problem becomes a [`Outcome::Reject`]
    /// (authentication, authorization, malformed body) or a 200 "nothing to do" (storage),
    /// and one audit line.
    pub async fn update_info(&self, req: IncomingRequest, now: OffsetDateTime) -> Outcome {
        let mut audit = respond::Audit::default();
        let outcome = self.handle(&req, now, &mut audit).await;
        self.metrics.count_request(audit.outcome);
        audit.emit();
        outcome
    }

    /// Dry run for `cups-server plan`: what `eui` would receive now for `request_body` (a
    /// station request body; without one, a request reporting what the gateway was last
    /// confirmed to hold). Never mints, never writes; credentials the gateway has not been
    /// issued yet are therefore not in the plan.
    ///
    /// # Errors
    /// Unknown gateway, malformed body, or the store failed.
    pub async fn plan_for(
        &self,
        eui: Eui64,
        request_body: Option<&[u8]>,
        now: OffsetDateTime,
    ) -> Result<Plan, ServiceError> {
        let _ = now;
        let (record, _) = self
            .read_record(eui)
            .await?
            .ok_or(ServiceError::NotRegistered { eui })?;
        let catalogue = self.firmware_catalogue().await?;
        let info = match request_body {
            Some(body) => UpdateInfo::decode(body).map_err(ServiceError::BadRequest)?,
            None => respond::last_known_request(&record, &self.settings),
        };
        if info.router != eui {
            return Err(ServiceError::RouterMismatch {
                eui,
                router: info.router,
            });
        }
        Ok(self.plan(&info, &record, &catalogue))
    }

    /// Whether `eui` was served less than the rate-limit interval before `now`; if not, `now`
    /// is recorded as its last service.
    fn rate_limited(&self, eui: Eui64, now: OffsetDateTime) -> bool {
        let Some(min) = self.settings.rate_limit_interval else {
            return false;
        };
        if let Some(last) = self.last_served.get(&eui)
            && now >= last
            && (now - last) < min
        {
            return true;
        }
        self.last_served.insert(eui, now);
        false
    }

    /// Read a gateway record (revalidating the cached parse by ETag).
    async fn read_record(&self, eui: Eui64) -> Result<Option<(GatewayRecord, ETag)>, ServiceError> {
        let key = keys::gateway(eui);
        let Some(obj) = self.store.get(&key).await? else {
            self.records.remove(&eui);
            return Ok(None);
        };
        if let Some((etag, record)) = self.records.get(&eui)
            && etag == obj.etag
        {
            return Ok(Some((record, etag)));
        }
        let record: GatewayRecord = from_json(&key, &obj.bytes)?;
        self.records.insert(eui, (obj.etag.clone(), record.clone()));
        Ok(Some((record, obj.etag)))
    }

    /// Remember a record this instance just wrote.
    fn cache_record(&self, record: &GatewayRecord, etag: &ETag) {
        self.records
            .insert(record.eui, (etag.clone(), record.clone()));
    }
}

/// Check configured or per-gateway target URIs: each must be sendable to a station
/// (`scheme://host:port`, at most 127 bytes; http(s) for CUPS, ws(s) for TC).
pub(crate) fn check_target_uris(cups: Option<&str>, tc: Option<&str>) -> Result<(), ServiceError> {
    if let Some(uri) = cups {
        cups_core::response::encoder::check_cups_uri(uri).map_err(|source| {
            ServiceError::InvalidUri {
                which: UriKind::Cups,
                uri: uri.to_owned(),
                source,
            }
        })?;
    }
    if let Some(uri) = tc {
        cups_core::response::encoder::check_tc_uri(uri).map_err(|source| {
            ServiceError::InvalidUri {
                which: UriKind::Tc,
                uri: uri.to_owned(),
                source,
            }
        })?;
    }
    Ok(())
}

/// Compile-time check: the request future can run on a multi-threaded runtime.
#[cfg(test)]
#[allow(dead_code)]
fn update_info_is_send(
    s: &Service,
    req: IncomingRequest,
    now: OffsetDateTime,
) -> impl std::future::Future<Output = Outcome> + Send + '_ {
    s.update_info(req, now)
}

/// Serialize a value stored at `key`.
fn to_json<T: serde::Serialize>(key: &str, value: &T) -> Result<Bytes, ServiceError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|source| ServiceError::Serialize {
            key: key.to_owned(),
            source,
        })
}

/// Parse a value stored at `key`.
fn from_json<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, ServiceError> {
    serde_json::from_slice(bytes).map_err(|source| ServiceError::Corrupt {
        key: key.to_owned(),
        source,
    })
}
