//! In-memory store: a `Mutex<BTreeMap>` with exactly the conditional-write semantics of the
//! persistent backends. For unit tests of pure logic and for the conformance suite's reference.
//!
//! ETags are a per-store counter (`m1`, `m2`, …): every write gets a new one, so an `Update`
//! with an ETag read before any other write fails even if the bytes were written back
//! unchanged (stricter than a content hash, never looser).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream;

use super::{
    ETag, Object, ObjectStream, PutMode, Store, StoreError, validate_key, validate_prefix,
};

/// Size of the chunks [`MemoryStore::get_stream`] yields (same as the filesystem store).
pub const MEMORY_STREAM_CHUNK: usize = 64 * 1024;

#[derive(Default)]
struct Inner {
    objects: BTreeMap<String, (Bytes, ETag)>,
    next_version: u64,
}

/// An in-memory [`Store`]. Cheap to create; nothing survives the value.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("objects", &self.lock().objects.len())
            .finish()
    }
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The lock; a panic in another holder cannot leave the map half-updated (every update is
    /// a single `insert`/`remove`), so a poisoned lock is still consistent.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        validate_key(key)?;
        Ok(self.lock().objects.get(key).map(|(bytes, etag)| Object {
            bytes: bytes.clone(),
            etag: etag.clone(),
        }))
    }

    async fn get_stream(&self, key: &str) -> Result<Option<ObjectStream>, StoreError> {
        let Some(Object { bytes, etag }) = self.get(key).await? else {
            return Ok(None);
        };
        let len = bytes.len() as u64;
        let mut chunks = Vec::with_capacity(bytes.len().div_ceil(MEMORY_STREAM_CHUNK));
        let mut rest = bytes;
        while !rest.is_empty() {
            let take = rest.len().min(MEMORY_STREAM_CHUNK);
            chunks.push(Ok(rest.split_to(take)));
        }
        Ok(Some(ObjectStream {
            len,
            etag,
            chunks: Box::pin(stream::iter(chunks)),
        }))
    }

    async fn put(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<ETag, StoreError> {
        validate_key(key)?;
        let mut inner = self.lock();
        match (&mode, inner.objects.get(key)) {
            (PutMode::Overwrite, _) | (PutMode::Create, None) => {}
            (PutMode::Create, Some(_)) => {
                return Err(StoreError::AlreadyExists {
                    key: key.to_owned(),
                });
            }
            (PutMode::Update(want), Some((_, have))) if want == have => {}
            (PutMode::Update(_), _) => {
                return Err(StoreError::Precondition {
                    key: key.to_owned(),
                });
            }
        }
        inner.next_version = inner.next_version.wrapping_add(1);
        let etag = ETag(format!("m{}", inner.next_version));
        inner.objects.insert(key.to_owned(), (bytes, etag.clone()));
        Ok(etag)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        self.lock().objects.remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        validate_prefix(prefix)?;
        // BTreeMap order is byte order: already sorted.
        Ok(self
            .lock()
            .objects
            .range(prefix.to_owned()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
