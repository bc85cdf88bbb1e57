//! S3-compatible object storage (AWS S3, MinIO, Ceph RGW, Garage, moto) through
//! `object_store`'s `AmazonS3`, for several server instances sharing one bucket.
//!
//! * Conditional writes are HTTP preconditions: [`PutMode::Create`] is `If-None-Match: *`,
//!   [`PutMode::Update`] is `If-Match: <etag>` (`S3ConditionalPut::ETagMatch`). Losing either
//!   race maps to [`StoreError::AlreadyExists`] / [`StoreError::Precondition`].
//! * Requests are path-style (`http://host/bucket/key`), which MinIO, Ceph and moto need and
//!   AWS still accepts.
//! * Every operation is bounded: connect [`S3Timeouts::connect`], the whole request
//!   [`S3Timeouts::op`] (plus [`S3_MIN_TRANSFER_RATE`] worth of time for large bodies), at most
//!   [`S3_MAX_RETRIES`] retries inside that budget. A store that hangs fails with
//!   [`StoreError::Backend`] within seconds, and the server answers "nothing to do".
//! * A streaming read is bounded until its first byte by the same budget; afterwards the
//!   consumer sets the pace (a slow gateway), and only a body stalled for
//!   [`S3Timeouts::stream_read`] fails.
//!
//! ## Configuration (the replaced system's environment names)
//!
//! | [`S3Config`] field | environment | notes |
//! |---|---|---|
//! | `bucket` | `S3_BUCKET_NAME` | required: its presence selects this backend |
//! | `region` | `S3_BUCKET_REGION` | default `us-east-1` (MinIO ignores it) |
//! | `endpoint` | `S3_BUCKET_ENDPOINT` | e.g. `http://minio:9000`; unset = AWS for the region |
//! | `access_key_id` | `S3_ACCESS_KEY_ID` | empty = AWS's default chain (web identity, IMDS) |
//! | `secret_access_key` | `S3_SECRET_ACCESS_KEY` | never logged (`Debug` redacts it) |
//! | `allow_http` | — | true iff the endpoint is `http://` |
//! | `prefix` | — | optional key prefix, to share a bucket (e.g. `cups`) |
//!
//! [`S3Config::from_lookup`] applies that mapping to any variable source (the config layer
//! passes flags > environment > `.env`).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutOptions, PutPayload, RetryConfig,
    UpdateVersion,
};

use super::{
    ETag, Object, ObjectStream, PutMode, Store, StoreError, validate_key, validate_prefix,
};

/// Environment name of [`S3Config::bucket`].
pub const ENV_BUCKET: &str = "S3_BUCKET_NAME";
/// Environment name of [`S3Config::region`].
pub const ENV_REGION: &str = "S3_BUCKET_REGION";
/// Environment name of [`S3Config::endpoint`].
pub const ENV_ENDPOINT: &str = "S3_BUCKET_ENDPOINT";
/// Environment name of [`S3Config::access_key_id`].
pub const ENV_ACCESS_KEY_ID: &str = "S3_ACCESS_KEY_ID";
/// Environment name of [`S3Config::secret_access_key`].
pub const ENV_SECRET_ACCESS_KEY: &str = "S3_SECRET_ACCESS_KEY";
/// Region used when [`ENV_REGION`] is unset.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Default budget of one operation (request, retries and a small body).
pub const S3_OP_TIMEOUT: Duration = Duration::from_secs(5);
/// Default TCP/TLS connect timeout.
pub const S3_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default longest pause between two body chunks of a streaming read once it started.
pub const S3_STREAM_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Retries of a failed request (connection errors, 5xx, timeouts) within the budget.
pub const S3_MAX_RETRIES: usize = 2;
/// Slowest transfer rate (bytes/s) a large `put`/`get` is granted time for beyond the op budget.
pub const S3_MIN_TRANSFER_RATE: u64 = 1024 * 1024;
/// Key (below the prefix) that [`S3Store::ping`] lists: one cheap request proving the bucket
/// exists and the credentials work.
const PING_MARKER: &str = "cups-ping";

/// Where and how to reach the bucket. See the module docs for the environment names.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// Bucket name (`S3_BUCKET_NAME`).
    pub bucket: String,
    /// Region (`S3_BUCKET_REGION`).
    pub region: String,
    /// Endpoint URL for non-AWS stores (`S3_BUCKET_ENDPOINT`).
    pub endpoint: Option<String>,
    /// Access key id (`S3_ACCESS_KEY_ID`).
    pub access_key_id: String,
    /// Secret access key (`S3_SECRET_ACCESS_KEY`).
    pub secret_access_key: String,
    /// Permit a plain-HTTP endpoint.
    pub allow_http: bool,
    /// Optional key prefix (valid key syntax, no leading or trailing `/`).
    pub prefix: Option<String>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("allow_http", &self.allow_http)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl S3Config {
    /// Build from the replaced system's variable names, read through `lookup` (empty values
    /// count as unset). `None` if [`ENV_BUCKET`] is unset: the S3 backend is not configured.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Option<S3Config> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let bucket = get(ENV_BUCKET)?;
        let endpoint = get(ENV_ENDPOINT);
        Some(S3Config {
            bucket,
            region: get(ENV_REGION).unwrap_or_else(|| DEFAULT_REGION.to_owned()),
            allow_http: endpoint
                .as_deref()
                .is_some_and(|e| e.to_ascii_lowercase().starts_with("http://")),
            endpoint,
            access_key_id: get(ENV_ACCESS_KEY_ID).unwrap_or_default(),
            secret_access_key: get(ENV_SECRET_ACCESS_KEY).unwrap_or_default(),
            prefix: None,
        })
    }
}

/// The time bounds of an [`S3Store`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct S3Timeouts {
    /// Budget of one operation (all retries included) before its body, and of a small body.
    pub op: Duration,
    /// Connect timeout.
    pub connect: Duration,
    /// Longest stall of a streaming read's body.
    pub stream_read: Duration,
}

impl Default for S3Timeouts {
    fn default() -> Self {
        Self {
            op: S3_OP_TIMEOUT,
            connect: S3_CONNECT_TIMEOUT,
            stream_read: S3_STREAM_READ_TIMEOUT,
        }
    }
}

/// A configuration the S3 client cannot be built from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3ConfigError {
    /// The bucket name is empty.
    #[error("S3 bucket name is empty")]
    NoBucket,
    /// The prefix is not of the key syntax.
    #[error("invalid S3 key prefix {prefix:?}: {reason}")]
    InvalidPrefix {
        /// The prefix.
        prefix: String,
        /// Why.
        reason: &'static str,
    },
    /// `object_store` rejected the configuration (bad endpoint URL, ...).
    #[error("S3 client configuration: {0}")]
    Client(#[source] object_store::Error),
}

/// An operation that exceeded its time budget.
#[derive(Debug, thiserror::Error)]
#[error("S3 {what} did not complete within {budget:?}")]
struct TimedOut {
    what: &'static str,
    budget: Duration,
}

/// The S3 [`Store`].
pub struct S3Store {
    store: AmazonS3,
    bucket: String,
    endpoint: Option<String>,
    prefix: Option<String>,
    timeouts: S3Timeouts,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the inner client: its Debug includes the credentials.
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

fn backend(key: &str, source: object_store::Error) -> StoreError {
    StoreError::Backend {
        key: key.to_owned(),
        source: Box::new(source),
    }
}

fn timed_out(key: &str, what: &'static str, budget: Duration) -> StoreError {
    StoreError::Backend {
        key: key.to_owned(),
        source: Box::new(TimedOut { what, budget }),
    }
}

/// Run `fut` within `budget`.
async fn bounded<T>(
    key: &str,
    what: &'static str,
    budget: Duration,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(budget, fut).await {
        Ok(r) => r,
        Err(_) => Err(timed_out(key, what, budget)),
    }
}

fn etag_of(key: &str, e_tag: Option<String>) -> Result<ETag, StoreError> {
    e_tag.map(ETag).ok_or_else(|| StoreError::Backend {
        key: key.to_owned(),
        source: "the S3 server returned no ETag".into(),
    })
}

impl S3Store {
    /// A client for the bucket with the default [`S3Timeouts`]. Makes no request (see
    /// [`Store::ping`]).
    pub fn new(config: S3Config) -> Result<S3Store, S3ConfigError> {
        Self::with_timeouts(config, S3Timeouts::default())
    }

    /// A client for the bucket with the given time bounds.
    pub fn with_timeouts(config: S3Config, timeouts: S3Timeouts) -> Result<S3Store, S3ConfigError> {
        if config.bucket.is_empty() {
            return Err(S3ConfigError::NoBucket);
        }
        let prefix = match config.prefix.as_deref().map(|p| p.trim_matches('/')) {
            None | Some("") => None,
            Some(p) => match validate_key(p) {
                Ok(()) => Some(p.to_owned()),
                Err(StoreError::InvalidKey { reason, .. }) => {
                    return Err(S3ConfigError::InvalidPrefix {
                        prefix: p.to_owned(),
                        reason,
                    });
                }
                Err(_) => {
                    return Err(S3ConfigError::InvalidPrefix {
                        prefix: p.to_owned(),
                        reason: "invalid",
                    });
                }
            },
        };
        let options = ClientOptions::new()
            .with_allow_http(config.allow_http)
            .with_connect_timeout(timeouts.connect)
            // The whole-request bound is ours (`bounded`), so that streamed bodies can be
            // consumed at a slow gateway's pace; a stalled body still fails.
            .with_timeout_disabled()
            .with_read_timeout(timeouts.stream_read);
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(500),
                base: 2.0,
            },
            max_retries: S3_MAX_RETRIES,
            retry_timeout: timeouts.op,
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_virtual_hosted_style_request(false)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            // A plain `DELETE /key` rather than `POST ?delete`: every S3 clone supports it.
            .with_disable_bulk_delete(true)
            .with_client_options(options)
            .with_retry(retry);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if !config.access_key_id.is_empty() || !config.secret_access_key.is_empty() {
            builder = builder
                .with_access_key_id(&config.access_key_id)
                .with_secret_access_key(&config.secret_access_key);
        }
        let store = builder.build().map_err(S3ConfigError::Client)?;
        Ok(S3Store {
            store,
            bucket: config.bucket,
            endpoint: config.endpoint,
            prefix,
            timeouts,
        })
    }

    /// The bucket name.
    #[must_use]
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The object path of a (validated) key or `/`-less prefix.
    fn path(&self, key: &str) -> Result<Path, StoreError> {
        let full = match &self.prefix {
            Some(p) if key.is_empty() => p.clone(),
            Some(p) => format!("{p}/{key}"),
            None => key.to_owned(),
        };
        Path::parse(&full).map_err(|e| backend(key, object_store::Error::from(e)))
    }

    /// The key of an object path, if it is below our prefix and of the key syntax.
    fn key_of(&self, path: &Path) -> Option<String> {
        let s = path.as_ref();
        let key = match &self.prefix {
            Some(p) => s.strip_prefix(p.as_str())?.strip_prefix('/')?,
            None => s,
        };
        validate_key(key).ok().map(|()| key.to_owned())
    }

    /// The budget of an operation moving `len` body bytes.
    fn budget(&self, len: u64) -> Duration {
        self.timeouts
            .op
            .saturating_add(Duration::from_secs(len / S3_MIN_TRANSFER_RATE))
    }
}

#[async_trait]
impl Store for S3Store {
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        validate_key(key)?;
        let path = self.path(key)?;
        let op = self.timeouts.op;
        let res = bounded(key, "get", op, async {
            match self.store.get(&path).await {
                Ok(r) => Ok(Some(r)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(backend(key, e)),
            }
        })
        .await?;
        let Some(res) = res else { return Ok(None) };
        let etag = etag_of(key, res.meta.e_tag.clone())?;
        let budget = self.budget(res.meta.size);
        let bytes = bounded(key, "get body", budget, async {
            res.bytes().await.map_err(|e| backend(key, e))
        })
        .await?;
        Ok(Some(Object { bytes, etag }))
    }

    async fn get_stream(&self, key: &str) -> Result<Option<ObjectStream>, StoreError> {
        validate_key(key)?;
        let path = self.path(key)?;
        let res = bounded(key, "get", self.timeouts.op, async {
            match self.store.get(&path).await {
                Ok(r) => Ok(Some(r)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(backend(key, e)),
            }
        })
        .await?;
        let Some(res) = res else { return Ok(None) };
        let etag = etag_of(key, res.meta.e_tag.clone())?;
        let len = res.meta.size;
        let k = key.to_owned();
        let chunks = res.into_stream().map_err(move |e| backend(&k, e)).boxed();
        Ok(Some(ObjectStream { len, etag, chunks }))
    }

    async fn put(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<ETag, StoreError> {
        validate_key(key)?;
        let path = self.path(key)?;
        let budget = self.budget(bytes.len() as u64);
        let conditional = mode != PutMode::Overwrite;
        let mode = match mode {
            PutMode::Overwrite => object_store::PutMode::Overwrite,
            PutMode::Create => object_store::PutMode::Create,
            PutMode::Update(ETag(e_tag)) => object_store::PutMode::Update(UpdateVersion {
                e_tag: Some(e_tag),
                version: None,
            }),
        };
        let is_update = matches!(mode, object_store::PutMode::Update(_));
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        bounded(key, "put", budget, async {
            match self
                .store
                .put_opts(&path, PutPayload::from(bytes), opts)
                .await
            {
                Ok(r) => etag_of(key, r.e_tag),
                // A lost `Update` race may surface as 409 Conflict (AlreadyExists) on AWS.
                Err(
                    object_store::Error::Precondition { .. }
                    | object_store::Error::AlreadyExists { .. },
                ) if is_update => Err(StoreError::Precondition {
                    key: key.to_owned(),
                }),
                Err(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. },
                ) if conditional => Err(StoreError::AlreadyExists {
                    key: key.to_owned(),
                }),
                Err(e) => Err(backend(key, e)),
            }
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        let path = self.path(key)?;
        bounded(key, "delete", self.timeouts.op, async {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(backend(key, e)),
            }
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        validate_prefix(prefix)?;
        let dir = prefix.strip_suffix('/').unwrap_or(prefix);
        let base = if dir.is_empty() && self.prefix.is_none() {
            None
        } else {
            Some(self.path(dir)?)
        };
        let mut listing = self.store.list(base.as_ref());
        let mut keys = Vec::new();
        // Each page is one request: bound each, not the whole (possibly long) listing.
        loop {
            let next = bounded(prefix, "list", self.timeouts.op, async {
                Ok(listing.next().await)
            })
            .await?;
            match next {
                None => break,
                Some(Ok(meta)) => keys.extend(self.key_of(&meta.location)),
                Some(Err(e)) => return Err(backend(prefix, e)),
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let marker = self.path(PING_MARKER)?;
        bounded(PING_MARKER, "ping", self.timeouts.op, async {
            // A listing fails on a missing bucket or bad credentials, unlike a HEAD of an
            // absent object (404 either way).
            self.store
                .list_with_delimiter(Some(&marker))
                .await
                .map(|_| ())
                .map_err(|e| backend(PING_MARKER, e))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> S3Config {
        S3Config {
            bucket: "b".into(),
            region: "us-east-1".into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            access_key_id: "id".into(),
            secret_access_key: "very-secret".into(),
            allow_http: true,
            prefix: Some("/cups/".into()),
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = config();
        assert!(!format!("{c:?}").contains("very-secret"));
        let s = S3Store::new(c).expect("builds");
        assert!(!format!("{s:?}").contains("very-secret"));
    }

    #[test]
    fn env_mapping() {
        let vars = [
            (ENV_BUCKET, "fleet"),
            (ENV_ENDPOINT, "http://minio:9000"),
            (ENV_ACCESS_KEY_ID, "ak"),
            (ENV_SECRET_ACCESS_KEY, "sk"),
        ];
        let lookup = |n: &str| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        };
        let c = S3Config::from_lookup(lookup).expect("configured");
        assert_eq!(c.bucket, "fleet");
        assert_eq!(c.region, DEFAULT_REGION);
        assert_eq!(c.endpoint.as_deref(), Some("http://minio:9000"));
        assert!(c.allow_http);
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("ak", "sk")
        );
        assert!(S3Config::from_lookup(|_| None).is_none());
        assert!(S3Config::from_lookup(|_| Some(String::new())).is_none());
    }

    #[test]
    fn prefix_is_validated_and_applied() {
        let s = S3Store::new(config()).expect("builds");
        assert_eq!(s.path("a/b").expect("path").as_ref(), "cups/a/b");
        assert_eq!(s.key_of(&Path::from("cups/a/b")).as_deref(), Some("a/b"));
        assert_eq!(s.key_of(&Path::from("cupsx/a")), None);
        let mut bad = config();
        bad.prefix = Some("a/../b".into());
        assert!(matches!(
            S3Store::new(bad),
            Err(S3ConfigError::InvalidPrefix { .. })
        ));
        let mut empty = config();
        empty.bucket.clear();
        assert!(matches!(S3Store::new(empty), Err(S3ConfigError::NoBucket)));
    }
}
