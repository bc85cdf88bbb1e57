//! Gateway administration for the CLI (`cups-server gateway
//! add|list|show|set|renew|remove|export`): the same rules and store layout the server uses.

use std::collections::BTreeMap;
use std::fmt;

use cups_core::Eui64;
use futures_util::StreamExt as _;
use time::OffsetDateTime;

use super::creds::{Form, Slot};
use super::{LIST_CONCURRENCY, MAX_WRITE_ATTEMPTS, Service, ServiceError, from_json, to_json};
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

/// A change of one per-gateway URI (`gateway set`).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub enum UriChange {
    /// Leave it as it is.
    #[default]
    Keep,
    /// Use this URI for the gateway (checked like [`GatewaySpec`]'s).
    Set(String),
    /// Drop the gateway's own URI: the server's configured default applies again.
    Clear,
}

impl UriChange {
    /// The URI after the change.
    fn apply(&self, current: &Option<String>) -> Option<String> {
        match self {
            Self::Keep => current.clone(),
            Self::Set(uri) => Some(uri.clone()),
            Self::Clear => None,
        }
    }

    /// The URI to validate, if one is set.
    fn uri(&self) -> Option<&str> {
        match self {
            Self::Set(uri) => Some(uri),
            Self::Keep | Self::Clear => None,
        }
    }
}

/// What `gateway set` changes in a record.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct UriUpdate {
    /// The gateway's CUPS URI.
    pub cups_uri: UriChange,
    /// The gateway's TC (LNS) URI.
    pub tc_uri: UriChange,
}

/// Which credentials `gateway renew` marks for renewal.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RenewSlots {
    /// The CUPS credentials.
    pub cups: bool,
    /// The TC (LNS) credentials.
    pub tc: bool,
}

impl RenewSlots {
    /// Both slots.
    pub const BOTH: Self = Self {
        cups: true,
        tc: true,
    };
}

/// What [`Service::request_renewal`] did.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RenewalRequested {
    /// The record as stored afterwards.
    pub record: GatewayRecord,
    /// The CUPS credentials are marked (false when none were issued yet — they are minted on
    /// first contact anyway — or they are server-auth only).
    pub cups: bool,
    /// The TC credentials are marked (same rule).
    pub tc: bool,
}

impl Service {
    /// Read `eui`'s record, let `change` edit it, and store it with a write conditional on
    /// the ETag read; on a conflict re-read and start over (at most [`MAX_WRITE_ATTEMPTS`]).
    /// Nothing is written when `change` leaves the record as it was. Returns the stored
    /// record and whether it changed.
    async fn modify_record(
        &self,
        eui: Eui64,
        change: impl Fn(&mut GatewayRecord),
    ) -> Result<(GatewayRecord, bool), ServiceError> {
        let key = keys::gateway(eui);
        for _ in 0..MAX_WRITE_ATTEMPTS {
            // A record removed meanwhile fails the write as a conflict; this read says so.
            let (record, etag) = self
                .read_record(eui)
                .await?
                .ok_or(ServiceError::NotRegistered { eui })?;
            let mut next = record.clone();
            change(&mut next);
            if next == record {
                return Ok((record, false));
            }
            let bytes = to_json(&key, &next)?;
            match self.store.put(&key, bytes, PutMode::Update(etag)).await {
                Ok(new_etag) => {
                    self.cache_record(&next, &new_etag);
                    return Ok((next, true));
                }
                Err(e) if e.is_conflict() => {
                    super::ServiceMetrics::bump(&self.metrics.write_conflicts);
                    tracing::debug!(eui = %eui, "gateway record changed concurrently; re-reading");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Contention {
            key,
            attempts: MAX_WRITE_ATTEMPTS,
        })
    }

    /// Change a gateway's own CUPS and/or TC URI (`gateway set`). The URIs are checked as at
    /// registration; the gateway's next request gets the new URI (the planner compares
    /// canonical forms, so an equivalent spelling sends nothing). Audit line
    /// `gateway updated`.
    ///
    /// # Errors
    /// Invalid URI, not registered, store failure or contention.
    pub async fn update_gateway_uris(
        &self,
        eui: Eui64,
        update: &UriUpdate,
    ) -> Result<GatewayRecord, ServiceError> {
        super::check_target_uris(update.cups_uri.uri(), update.tc_uri.uri())?;
        let (record, changed) = self
            .modify_record(eui, |r| {
                r.cups_uri = update.cups_uri.apply(&r.cups_uri);
                r.tc_uri = update.tc_uri.apply(&r.tc_uri);
            })
            .await?;
        tracing::info!(
            target: "audit",
            eui = %eui,
            cups_uri = record.cups_uri.as_deref().unwrap_or("-"),
            tc_uri = record.tc_uri.as_deref().unwrap_or("-"),
            changed,
            "gateway updated"
        );
        Ok(record)
    }

    /// Mark a gateway's credentials for renewal (`gateway renew`): on its next request the
    /// gateway gets freshly minted credentials for each marked slot, the old ones kept as
    /// `previous` (still accepted) until it reports the new CRC; counted as renewed. A slot
    /// without issued credentials is left alone (it is minted on first contact), and so is a
    /// server-auth-only slot (no secret to renew). Audit line `renewal requested`.
    ///
    /// # Errors
    /// Not registered, store failure or contention.
    pub async fn request_renewal(
        &self,
        eui: Eui64,
        which: RenewSlots,
    ) -> Result<RenewalRequested, ServiceError> {
        // A server-auth blob holds no secret of the gateway: minting it again gives the same
        // bytes, so there is nothing to renew.
        let mark = |slot: &mut Option<CredSlot>, wanted: bool| {
            if let Some(s) = slot
                .as_mut()
                .filter(|s| wanted && Form::of(&s.current) != Form::ServerAuth)
            {
                s.renew_requested = true;
            }
        };
        let (record, _) = self
            .modify_record(eui, |r| {
                mark(&mut r.cups_cred, which.cups);
                mark(&mut r.tc_cred, which.tc);
            })
            .await?;
        let marked = |slot: &Option<CredSlot>, wanted: bool| {
            wanted && slot.as_ref().is_some_and(|s| s.renew_requested)
        };
        let cups = marked(&record.cups_cred, which.cups);
        let tc = marked(&record.tc_cred, which.tc);
        tracing::info!(target: "audit", eui = %eui, cups, tc, "renewal requested");
        Ok(RenewalRequested { record, cups, tc })
    }

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
                renew_requested: false,
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
