//! Gateway administration for the CLI (`cups-server gateway add|list|show|remove|export`):
//! the same rules and store layout the server uses.

use std::collections::BTreeMap;
use std::fmt;

use cups_core::Eui64;
use futures_util::StreamExt as _;
use time::OffsetDateTime;

use super::creds::{Form, Slot};
use super::{LIST_CONCURRENCY, Service, ServiceError, from_json, to_json};
use crate::model::{CredSlot, CupsAuth, GatewayRecord, TcMode};
use crate::store::{PutMode, StoreError, keys};

/// What to register.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct GatewaySpec {
    /// The gateway EUI.
    pub eui: Eui64,
    /// How it authenticates to CUPS.
    pub cups_auth: CupsAuth,
    /// What it gets for the LNS.
    pub tc_mode: TcMode,
    /// CUPS URI to send it (None: the configured default).
    pub cups_uri: Option<String>,
    /// TC URI to send it (None: the configured default).
    pub tc_uri: Option<String>,
    /// Operator labels.
    pub labels: BTreeMap<String, String>,
}

impl GatewaySpec {
    /// A gateway with client certificates for CUPS and TC, default URIs, no labels.
    #[must_use]
    pub fn new(eui: Eui64) -> Self {
        Self {
            eui,
            cups_auth: CupsAuth::ClientCert,
            tc_mode: TcMode::ClientCert,
            cups_uri: None,
            tc_uri: None,
            labels: BTreeMap::new(),
        }
    }
}

/// A registered gateway.
#[derive(Clone, PartialEq, Eq)]
pub struct Registered {
    /// The stored record.
    pub record: GatewayRecord,
    /// In token mode: the CUPS token, shown once (only its hash is indexed; it is also inside
    /// the record's CUPS blob, which is what `gateway export` writes).
    pub cups_token: Option<String>,
}

impl fmt::Debug for Registered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registered")
            .field("eui", &self.record.eui)
            .field(
                "cups_token",
                &self.cups_token.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Register a gateway (the record is created with `PutMode::Create`: registering twice
    /// fails). In token mode the CUPS token is minted now (it must be provisioned on the
    /// gateway); certificates are minted on first contact or by [`Service::issue_credentials`].
    ///
    /// # Errors
    /// Invalid URI, already registered, minting or store failure.
    pub async fn register_gateway(
        &self,
        spec: GatewaySpec,
        now: OffsetDateTime,
    ) -> Result<Registered, ServiceError> {
        super::check_target_uris(spec.cups_uri.as_deref(), spec.tc_uri.as_deref())?;
        let eui = spec.eui;
        let key = keys::gateway(eui);
        if self.store.get(&key).await?.is_some() {
            return Err(ServiceError::AlreadyRegistered { eui });
        }
        let mut record = GatewayRecord::new(eui, spec.cups_auth, spec.tc_mode, now);
        record.cups_uri = spec.cups_uri;
        record.tc_uri = spec.tc_uri;
        record.labels = spec.labels;
        let mut token = None;
        let mut entries = Vec::new();
        if spec.cups_auth == CupsAuth::Token {
            let minted = self.mint(eui, Slot::Cups, Form::Token, now)?;
            token = minted.token;
            entries.extend(minted.token_entry);
            record.cups_cred = Some(CredSlot {
                current: minted.cred,
                previous: None,
            });
        }
        let bytes = to_json(&key, &record)?;
        if let Err(e) = self.create_token_entries(&entries).await {
            self.delete_tokens(entries.iter().map(|(h, _)| h)).await;
            return Err(e);
        }
        match self.store.put(&key, bytes, PutMode::Create).await {
            Ok(etag) => self.cache_record(&record, &etag),
            Err(e) => {
                self.delete_tokens(entries.iter().map(|(h, _)| h)).await;
                return Err(match e {
                    StoreError::AlreadyExists { .. } => ServiceError::AlreadyRegistered { eui },
                    other => other.into(),
                });
            }
        }
        tracing::info!(
            target: "audit",
            eui = %eui,
            cups_auth = ?record.cups_auth,
            tc_mode = ?record.tc_mode,
            "gateway registered"
        );
        Ok(Registered {
            record,
            cups_token: token,
        })
    }

    /// Every registered gateway, sorted by EUI.
    ///
    /// # Errors
    /// Store failure or an unparsable record.
    pub async fn list_gateways(&self) -> Result<Vec<GatewayRecord>, ServiceError> {
        let keys: Vec<String> = self
            .store
            .list(keys::GATEWAYS)
            .await?
            .into_iter()
            .filter(|k| k.ends_with(".json"))
            .collect();
        let read = futures_util::stream::iter(keys)
            .map(|key| async move {
                match self.store.get(&key).await? {
                    None => Ok(None),
                    Some(obj) => from_json::<GatewayRecord>(&key, &obj.bytes).map(Some),
                }
            })
            .buffered(LIST_CONCURRENCY)
            .collect::<Vec<Result<Option<GatewayRecord>, ServiceError>>>()
            .await;
        let mut out = Vec::with_capacity(read.len());
        for r in read {
            out.extend(r?);
        }
        out.sort_by_key(|r| r.eui);
        Ok(out)
    }

    /// One gateway's record.
    ///
    /// # Errors
    /// Not registered, store failure, unparsable record.
    pub async fn get_gateway(&self, eui: Eui64) -> Result<GatewayRecord, ServiceError> {
        self.read_record(eui)
            .await?
            .map(|(r, _)| r)
            .ok_or(ServiceError::NotRegistered { eui })
    }

    /// Remove a gateway: its record, then every token index entry it names. Returns the
    /// removed record.
    ///
    /// # Errors
    /// Not registered, store failure.
    pub async fn remove_gateway(&self, eui: Eui64) -> Result<GatewayRecord, ServiceError> {
        let (record, _) = self
            .read_record(eui)
            .await?
            .ok_or(ServiceError::NotRegistered { eui })?;
        self.store.delete(&keys::gateway(eui)).await?;
        self.records.remove(&eui);
        let hashes: Vec<String> = [&record.cups_cred, &record.tc_cred]
            .into_iter()
            .flatten()
            .flat_map(|slot| {
                [
                    slot.current.token_sha256.clone(),
                    slot.previous.as_ref().and_then(|p| p.token_sha256.clone()),
                ]
            })
            .flatten()
            .collect();
        self.delete_tokens(hashes.iter()).await;
        tracing::info!(target: "audit", eui = %eui, "gateway removed");
        Ok(record)
    }

    /// Make sure `eui` holds credentials for its modes (minting and storing them exactly as a
    /// first request would, with conditional writes) and return the stored record — for
    /// `gateway export`, which writes the blobs into a station home directory.
    ///
    /// # Errors
    /// Not registered, minting or store failure.
    pub async fn issue_credentials(
        &self,
        eui: Eui64,
        now: OffsetDateTime,
    ) -> Result<GatewayRecord, ServiceError> {
        let (record, etag) = self
            .read_record(eui)
            .await?
            .ok_or(ServiceError::NotRegistered { eui })?;
        match self.reconcile(record, etag, None, None, now).await {
            Ok((record, fx)) => {
                fx.count(&self.metrics);
                Ok(record)
            }
            Err(super::creds::ReconcileError::Denied(_)) => {
                Err(ServiceError::NotRegistered { eui })
            }
            Err(super::creds::ReconcileError::Service(e)) => Err(e),
        }
    }
}
