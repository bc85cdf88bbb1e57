//! Update images: added once (hashed once with SHA-512, signed once per signing key, stored
//! with `PutMode::Create`), listed, removed; and the catalogue the planner chooses from, cached
//! for a short time so that a request storm does not list the store on every request.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use time::OffsetDateTime;

use super::{LIST_CONCURRENCY, Service, ServiceError, from_json, to_json};
use crate::model::{FirmwareMeta, FirmwareSignature};
use crate::store::{PutMode, StoreError, keys, validate_key};

/// What an image is for.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FirmwareSpec {
    /// Identifier; default `<model>-<version>` (characters outside `[A-Za-z0-9._-]` become `_`).
    pub id: Option<String>,
    /// Station `model` it is for.
    pub model: String,
    /// The `package` version the gateway reports after applying it.
    pub version: String,
    /// Only offered to gateways reporting one of these packages (empty: any other version).
    pub from_versions: Vec<String>,
}

/// Where the image bytes come from.
#[derive(Clone, Debug)]
pub enum FirmwareSource {
    /// The bytes themselves.
    Bytes(Bytes),
    /// A file to read.
    File(PathBuf),
}

/// The firmware catalogue cache.
#[derive(Debug)]
pub(super) struct Catalogue {
    ttl: Duration,
    cached: Mutex<Option<(Instant, Arc<Vec<FirmwareMeta>>)>>,
}

impl Catalogue {
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            cached: Mutex::new(None),
        }
    }

    fn fresh(&self) -> Option<Arc<Vec<FirmwareMeta>>> {
        let guard = self.cached.lock().ok()?;
        let (at, list) = guard.as_ref()?;
        (at.elapsed() < self.ttl).then(|| Arc::clone(list))
    }

    fn set(&self, list: Arc<Vec<FirmwareMeta>>) {
        if let Ok(mut guard) = self.cached.lock() {
            *guard = Some((Instant::now(), list));
        }
    }

    fn invalidate(&self) {
        if let Ok(mut guard) = self.cached.lock() {
            *guard = None;
        }
    }
}

/// The default id for `model` and `version`, reduced to the key alphabet.
fn default_id(model: &str, version: &str) -> String {
    format!("{model}-{version}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An id must be one key segment.
fn check_id(id: &str) -> Result<(), ServiceError> {
    let invalid = |source| ServiceError::InvalidFirmwareId {
        id: id.to_owned(),
        source,
    };
    validate_key(id).map_err(invalid)?;
    if id.contains('/') {
        return Err(invalid(StoreError::InvalidKey {
            key: id.to_owned(),
            reason: "a firmware id is one segment: no '/'",
        }));
    }
    Ok(())
}

impl Service {
    /// The firmware catalogue (cached for `firmware_cache_ttl`).
    pub(super) async fn firmware_catalogue(&self) -> Result<Arc<Vec<FirmwareMeta>>, ServiceError> {
        if let Some(list) = self.firmware.fresh() {
            return Ok(list);
        }
        let list = Arc::new(self.load_firmware().await?);
        self.firmware.set(Arc::clone(&list));
        Ok(list)
    }

    /// Read every `firmware/<id>/meta.json`.
    async fn load_firmware(&self) -> Result<Vec<FirmwareMeta>, ServiceError> {
        let metas: Vec<String> = self
            .store
            .list(keys::FIRMWARE)
            .await?
            .into_iter()
            .filter(|k| k.ends_with("/meta.json"))
            .collect();
        let read = futures_util::stream::iter(metas)
            .map(|key| async move {
                match self.store.get(&key).await? {
                    // Removed between list and get.
                    None => Ok(None),
                    Some(obj) => from_json::<FirmwareMeta>(&key, &obj.bytes).map(Some),
                }
            })
            .buffered(LIST_CONCURRENCY)
            .collect::<Vec<Result<Option<FirmwareMeta>, ServiceError>>>()
            .await;
        let mut out = Vec::with_capacity(read.len());
        for meta in read {
            out.extend(meta?);
        }
        Ok(out)
    }

    /// Register an update image: hash it once (SHA-512), sign the digest once per configured
    /// signing key, store the image and then its metadata (both with `PutMode::Create`; the
    /// metadata makes it live).
    ///
    /// # Errors
    /// Invalid id, empty or oversized image, existing id, unreadable file, store failure.
    pub async fn add_firmware(
        &self,
        spec: FirmwareSpec,
        source: FirmwareSource,
        now: OffsetDateTime,
    ) -> Result<FirmwareMeta, ServiceError> {
        let id = spec
            .id
            .clone()
            .unwrap_or_else(|| default_id(&spec.model, &spec.version));
        check_id(&id)?;
        let image = match source {
            FirmwareSource::Bytes(b) => b,
            FirmwareSource::File(path) => match tokio::fs::read(&path).await {
                Ok(v) => Bytes::from(v),
                Err(source) => return Err(ServiceError::Io { path, source }),
            },
        };
        let len = image.len() as u64;
        if len == 0 {
            return Err(ServiceError::EmptyImage);
        }
        if len > u64::from(cups_core::response::MAX_UPDATE_LEN) {
            return Err(ServiceError::ImageTooLarge {
                len,
                max: cups_core::response::MAX_UPDATE_LEN,
            });
        }
        let meta_key = keys::firmware_meta(&id);
        if self.store.get(&meta_key).await?.is_some() {
            return Err(ServiceError::FirmwareExists { id });
        }
        let digest = cups_core::sig::sha512(&image);
        let signatures = self
            .pki
            .signers()
            .iter()
            .map(|signer| {
                let seg = signer.sign_digest(&digest);
                FirmwareSignature {
                    key_crc: seg.key_crc(),
                    der_hex: hex::encode(seg.der()),
                }
            })
            .collect();
        match self
            .store
            .put(&keys::firmware_image(&id), image, PutMode::Create)
            .await
        {
            Ok(_) => {}
            Err(StoreError::AlreadyExists { .. }) => {
                return Err(ServiceError::FirmwareIncomplete { id });
            }
            Err(e) => return Err(e.into()),
        }
        let meta = FirmwareMeta {
            id: id.clone(),
            model: spec.model,
            version: spec.version,
            from_versions: spec.from_versions,
            len,
            sha512_hex: hex::encode(digest),
            signatures,
            created_at: now,
        };
        match self
            .store
            .put(&meta_key, to_json(&meta_key, &meta)?, PutMode::Create)
            .await
        {
            Ok(_) => {}
            Err(StoreError::AlreadyExists { .. }) => {
                return Err(ServiceError::FirmwareExists { id });
            }
            Err(e) => return Err(e.into()),
        }
        self.firmware.invalidate();
        tracing::info!(
            target: "audit",
            firmware = %meta.id,
            model = %meta.model,
            version = %meta.version,
            len = meta.len,
            signatures = meta.signatures.len(),
            "firmware added"
        );
        Ok(meta)
    }

    /// Every registered image's metadata (read now, not from the cache), sorted by id.
    ///
    /// # Errors
    /// Store failure or unparsable metadata.
    pub async fn list_firmware(&self) -> Result<Vec<FirmwareMeta>, ServiceError> {
        let mut list = self.load_firmware().await?;
        list.sort_by(|a, b| a.id.cmp(&b.id));
        self.firmware.set(Arc::new(list.clone()));
        Ok(list)
    }

    /// Remove an image: metadata first (it stops being offered), then the bytes. Also cleans
    /// up an image left without metadata by an interrupted upload.
    ///
    /// # Errors
    /// Neither metadata nor image exists, invalid id, store failure.
    pub async fn remove_firmware(&self, id: &str) -> Result<(), ServiceError> {
        check_id(id)?;
        let meta_key = keys::firmware_meta(id);
        let image_key = keys::firmware_image(id);
        let had_meta = self.store.get(&meta_key).await?.is_some();
        let had_image = self.store.get_stream(&image_key).await?.is_some();
        if !had_meta && !had_image {
            return Err(ServiceError::FirmwareNotFound { id: id.to_owned() });
        }
        self.store.delete(&meta_key).await?;
        self.firmware.invalidate();
        self.store.delete(&image_key).await?;
        tracing::info!(target: "audit", firmware = %id, "firmware removed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ids_are_keys() {
        assert_eq!(default_id("linux", "2.0.0"), "linux-2.0.0");
        assert_eq!(default_id("rpi", "1.0+b/1"), "rpi-1.0_b_1");
        assert!(check_id(&default_id("a b", "ü")).is_ok());
        assert!(check_id("a/b").is_err());
        assert!(check_id("..").is_err());
        assert!(check_id("").is_err());
    }
}
