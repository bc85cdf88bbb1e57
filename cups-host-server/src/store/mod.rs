//! Storage: one trait, several backends.
//!
//! * [`fs::FsStore`] — the embedded default: a directory tree, atomic temp + fsync + rename,
//!   every object written with mode 0600 (records hold key material);
//! * [`s3::S3Store`] — S3-compatible object storage (MinIO, AWS S3, Ceph RGW, Garage) through
//!   `object_store`, shared by several server instances;
//! * [`memory::MemoryStore`] — in-memory, for unit tests of pure logic.
//!
//! Conditional writes are the concurrency primitive: [`PutMode::Create`] succeeds for exactly
//! one writer of a new key, [`PutMode::Update`] only if the object still has the given ETag.
//! Two server instances racing to mint the first credentials of one gateway therefore end with
//! one credential set; the loser re-reads and serves the winner's.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

pub mod fs;
pub mod memory;
pub mod s3;

/// An object's version tag, opaque to callers (S3 ETag; a content hash on the filesystem).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ETag(pub String);

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An object read whole.
#[derive(Clone, Debug)]
pub struct Object {
    /// The bytes.
    pub bytes: Bytes,
    /// Its version.
    pub etag: ETag,
}

/// An object read as a stream (firmware images: never held whole per connection).
pub struct ObjectStream {
    /// Total length in bytes.
    pub len: u64,
    /// Its version.
    pub etag: ETag,
    /// The bytes, in chunks.
    pub chunks: BoxStream<'static, Result<Bytes, StoreError>>,
}

impl fmt::Debug for ObjectStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStream")
            .field("len", &self.len)
            .field("etag", &self.etag)
            .finish()
    }
}

/// How a write treats an existing object.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PutMode {
    /// Replace whatever is there.
    Overwrite,
    /// Only if the key does not exist yet ([`StoreError::AlreadyExists`] otherwise).
    Create,
    /// Only if the object still has this ETag ([`StoreError::Precondition`] otherwise).
    Update(ETag),
}

/// Storage failures. `AlreadyExists` and `Precondition` are the expected outcomes of losing a
/// conditional-write race; everything else means the store could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `PutMode::Create` on an existing key.
    #[error("object {key} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// `PutMode::Update` whose ETag no longer matches (or the object is gone).
    #[error("object {key} changed since it was read")]
    Precondition {
        /// The key.
        key: String,
    },
    /// A key that is not of the store's key syntax (see [`validate_key`]).
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// Why.
        reason: &'static str,
    },
    /// The backend failed (I/O, network, permissions, ...): the store is unavailable.
    #[error("storage backend error on {key}: {source}")]
    Backend {
        /// The key (or prefix) involved.
        key: String,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// Whether this is a lost conditional write (`AlreadyExists` or `Precondition`).
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::AlreadyExists { .. } | Self::Precondition { .. })
    }
}

/// Longest object key.
pub const MAX_KEY_LEN: usize = 512;

/// Longest segment of a key (between `/`): the common file-name limit (`NAME_MAX`), so that
/// every valid key is also a valid relative path on the filesystem store.
pub const MAX_SEGMENT_LEN: usize = 255;

/// Keys are `/`-separated segments of `[A-Za-z0-9._-]`, no empty, `.` or `..` segment, each at
/// most [`MAX_SEGMENT_LEN`] bytes, at most [`MAX_KEY_LEN`] bytes in all. The same syntax is safe
/// as a relative path and as an S3 key, and every backend accepts exactly these keys.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    let bad = |reason| {
        Err(StoreError::InvalidKey {
            key: key.to_owned(),
            reason,
        })
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > MAX_KEY_LEN {
        return bad("too long");
    }
    for seg in key.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return bad("empty, '.' or '..' segment");
        }
        if seg.len() > MAX_SEGMENT_LEN {
            return bad("segment too long");
        }
        if !seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return bad("characters outside [A-Za-z0-9._-]");
        }
    }
    Ok(())
}

/// [`Store::list`] prefixes: empty (every key) or a valid key followed by `/` (the keys below
/// that "directory"). A prefix matches whole segments only, as on S3 through `object_store`.
pub fn validate_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix.is_empty() {
        return Ok(());
    }
    match prefix.strip_suffix('/') {
        Some(dir) => validate_key(dir).map_err(|e| match e {
            StoreError::InvalidKey { reason, .. } => StoreError::InvalidKey {
                key: prefix.to_owned(),
                reason,
            },
            other => other,
        }),
        None => Err(StoreError::InvalidKey {
            key: prefix.to_owned(),
            reason: "a list prefix is empty or ends with '/'",
        }),
    }
}

/// The object store the server runs on.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Read a whole object; `None` if absent.
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError>;
    /// Read an object as a stream of chunks; `None` if absent.
    async fn get_stream(&self, key: &str) -> Result<Option<ObjectStream>, StoreError>;
    /// Write an object; returns its new ETag.
    async fn put(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<ETag, StoreError>;
    /// Delete an object (absent is fine).
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Keys under `prefix` (empty, or ending with `/`: see [`validate_prefix`]), sorted
    /// bytewise.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// A cheap round trip proving the store is reachable (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// The key layout.
pub mod keys {
    use cups_core::Eui64;

    /// `gateways/<16 hex>.json`: a [`crate::model::GatewayRecord`].
    #[must_use]
    pub fn gateway(eui: Eui64) -> String {
        format!("gateways/{}.json", eui.canonical())
    }

    /// Prefix of all gateway records.
    pub const GATEWAYS: &str = "gateways/";

    /// `tokens/<sha256 hex>.json`: a [`crate::model::TokenEntry`].
    #[must_use]
    pub fn token(sha256_hex: &str) -> String {
        format!("tokens/{sha256_hex}.json")
    }

    /// `firmware/<id>/meta.json`: a [`crate::model::FirmwareMeta`].
    #[must_use]
    pub fn firmware_meta(id: &str) -> String {
        format!("firmware/{id}/meta.json")
    }

    /// `firmware/<id>/image`: the image bytes.
    #[must_use]
    pub fn firmware_image(id: &str) -> String {
        format!("firmware/{id}/image")
    }

    /// Prefix of all firmware.
    pub const FIRMWARE: &str = "firmware/";
}
