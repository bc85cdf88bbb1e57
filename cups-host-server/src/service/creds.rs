//! The credential state of a gateway record — own-credential use (closes bootstrap), rotation
//! confirmation, first minting and renewal — applied with ETag-conditional writes.
//!
//! [`Service::reconcile`] computes the next record from the one read, mints what is missing
//! (in memory), and writes it with `PutMode::Update(etag)`. A lost race throws the minted
//! material away, re-reads the record and starts over from the winner's state: so however many
//! requests (on however many instances) race for one gateway, exactly one credential set is
//! stored, and every response carries what is stored.

use std::fmt;

use cups_core::Eui64;
use cups_core::crc::crc32;
use cups_core::cred::check_station_safe;
use time::OffsetDateTime;

use super::auth::{Denied, Presented, check_against_record};
use super::{MAX_WRITE_ATTEMPTS, Service, ServiceError, ServiceMetrics, to_json};
use crate::model::{
    CredSlot, CupsAuth, GatewayRecord, IssuedCred, PreviousCred, TcMode, TokenEntry, TokenUsage,
};
use crate::pki::{self, ClientUsage};
use crate::store::{ETag, PutMode, keys};

/// Which credential slot of a record.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Slot {
    /// CUPS credentials.
    Cups,
    /// TC (LNS) credentials.
    Tc,
}

impl Slot {
    fn usage(self) -> ClientUsage {
        match self {
            Self::Cups => ClientUsage::Cups,
            Self::Tc => ClientUsage::Tc,
        }
    }

    fn token_usage(self) -> TokenUsage {
        match self {
            Self::Cups => TokenUsage::Cups,
            Self::Tc => TokenUsage::Tc,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cups => "cups",
            Self::Tc => "tc",
        })
    }
}

/// The form of a credential blob.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Form {
    /// Client certificate + key.
    Cert,
    /// Bearer token header line.
    Token,
    /// Trust only.
    ServerAuth,
}

impl Form {
    /// What the record's mode asks for in `slot`.
    pub(super) fn wanted(record: &GatewayRecord, slot: Slot) -> Self {
        match slot {
            Slot::Cups => match record.cups_auth {
                CupsAuth::ClientCert => Self::Cert,
                CupsAuth::Token => Self::Token,
            },
            Slot::Tc => match record.tc_mode {
                TcMode::ClientCert => Self::Cert,
                TcMode::Token => Self::Token,
                TcMode::ServerAuth => Self::ServerAuth,
            },
        }
    }

    /// The form an issued credential has.
    pub(super) fn of(cred: &IssuedCred) -> Self {
        if cred.serial.is_some() {
            Self::Cert
        } else if cred.token_sha256.is_some() {
            Self::Token
        } else {
            Self::ServerAuth
        }
    }
}

/// What the gateway reported holding.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Reported {
    /// `cupsCredCrc`.
    pub(super) cups_crc: u32,
    /// `tcCredCrc`.
    pub(super) tc_crc: u32,
}

/// What one reconciliation changed (for metrics and the audit line).
#[derive(Clone, Default, Debug)]
pub(super) struct Effects {
    /// Slots that got their first credentials (or new ones after a mode change).
    pub(super) minted: Vec<Slot>,
    /// Slots whose client certificate was renewed before expiry.
    pub(super) renewed: Vec<Slot>,
    /// Slots whose current credentials the gateway confirmed holding.
    pub(super) confirmed: Vec<Slot>,
    /// The gateway used its own credentials for the first time.
    pub(super) bootstrap_closed: bool,
    /// Token index entries to create before the record is written.
    new_tokens: Vec<(String, TokenEntry)>,
    /// Token index entries no longer named by the record, to delete after it is written.
    retired_tokens: Vec<String>,
}

impl Effects {
    /// Count what happened.
    pub(super) fn count(&self, metrics: &ServiceMetrics) {
        for _ in &self.minted {
            ServiceMetrics::bump(&metrics.credentials_minted);
        }
        for _ in &self.renewed {
            ServiceMetrics::bump(&metrics.credentials_renewed);
        }
        for _ in &self.confirmed {
            ServiceMetrics::bump(&metrics.credentials_confirmed);
        }
    }

    /// One word per event, for the audit line (`minted:cups renewed:tc confirmed:cups ...`).
    pub(super) fn describe(&self) -> String {
        let mut out = Vec::new();
        out.extend(self.minted.iter().map(|s| format!("minted:{s}")));
        out.extend(self.renewed.iter().map(|s| format!("renewed:{s}")));
        out.extend(self.confirmed.iter().map(|s| format!("confirmed:{s}")));
        if self.bootstrap_closed {
            out.push("bootstrap-closed".to_owned());
        }
        if out.is_empty() {
            "-".to_owned()
        } else {
            out.join(" ")
        }
    }
}

/// Why a reconciliation ended without a record to serve.
#[derive(Debug)]
pub(super) enum ReconcileError {
    /// The (re-read) record refuses the credential, or is gone.
    Denied(Denied),
    /// Store, PKI or contention.
    Service(ServiceError),
}

impl From<ServiceError> for ReconcileError {
    fn from(e: ServiceError) -> Self {
        Self::Service(e)
    }
}

/// A minted credential and, for token forms, the token itself (to show once at registration).
pub(super) struct Minted {
    pub(super) cred: IssuedCred,
    pub(super) token: Option<String>,
    pub(super) token_entry: Option<(String, TokenEntry)>,
}

impl Service {
    /// Bring `record` (read with `etag`) to the state this request implies and store it:
    /// mark own-credential use, confirm rotations the gateway `reported`, mint missing or
    /// expiring credentials. Returns the record as stored (the only thing a response may be
    /// built from) and what changed. With `presented`, the credential is re-checked against
    /// every fresh read of the record.
    pub(super) async fn reconcile(
        &self,
        mut record: GatewayRecord,
        mut etag: ETag,
        presented: Option<&Presented>,
        reported: Option<Reported>,
        now: OffsetDateTime,
    ) -> Result<(GatewayRecord, Effects), ReconcileError> {
        let eui = record.eui;
        let key = keys::gateway(eui);
        for _ in 0..MAX_WRITE_ATTEMPTS {
            if let Some(p) = presented {
                check_against_record(p, &record).map_err(ReconcileError::Denied)?;
            }
            let mut next = record.clone();
            let fx = self.apply(&mut next, presented, reported, now)?;
            if next == record {
                return Ok((record, fx));
            }
            let bytes = to_json(&key, &next)?;
            // Index entries first: a stored record never names a token the index lacks.
            if let Err(e) = self.create_token_entries(&fx.new_tokens).await {
                self.delete_tokens(fx.new_tokens.iter().map(|(h, _)| h))
                    .await;
                return Err(e.into());
            }
            match self
                .store
                .put(&key, bytes, PutMode::Update(etag.clone()))
                .await
            {
                Ok(new_etag) => {
                    self.cache_record(&next, &new_etag);
                    self.delete_tokens(fx.retired_tokens.iter()).await;
                    return Ok((next, fx));
                }
                Err(e) if e.is_conflict() => {
                    ServiceMetrics::bump(&self.metrics.write_conflicts);
                    tracing::debug!(eui = %eui, "gateway record changed concurrently; re-reading");
                    self.delete_tokens(fx.new_tokens.iter().map(|(h, _)| h))
                        .await;
                    match self.read_record(eui).await? {
                        Some((r, t)) => {
                            record = r;
                            etag = t;
                        }
                        None => return Err(ReconcileError::Denied(Denied::not_registered(eui))),
                    }
                }
                Err(e) => {
                    self.delete_tokens(fx.new_tokens.iter().map(|(h, _)| h))
                        .await;
                    return Err(ServiceError::Store(e).into());
                }
            }
        }
        Err(ServiceError::Contention {
            key,
            attempts: MAX_WRITE_ATTEMPTS,
        }
        .into())
    }

    /// Compute the next state of `rec` in memory (minting as needed).
    fn apply(
        &self,
        rec: &mut GatewayRecord,
        presented: Option<&Presented>,
        reported: Option<Reported>,
        now: OffsetDateTime,
    ) -> Result<Effects, ServiceError> {
        let mut fx = Effects::default();
        if presented.is_some_and(|p| p.method().is_own()) && rec.own_creds_used_at.is_none() {
            rec.own_creds_used_at = Some(now);
            fx.bootstrap_closed = true;
        }
        if let Some(r) = reported {
            confirm(&mut rec.cups_cred, r.cups_crc, Slot::Cups, now, &mut fx);
            confirm(&mut rec.tc_cred, r.tc_crc, Slot::Tc, now, &mut fx);
        }
        let eui = rec.eui;
        let cups_form = Form::wanted(rec, Slot::Cups);
        let tc_form = Form::wanted(rec, Slot::Tc);
        self.ensure(&mut rec.cups_cred, eui, Slot::Cups, cups_form, now, &mut fx)?;
        self.ensure(&mut rec.tc_cred, eui, Slot::Tc, tc_form, now, &mut fx)?;
        Ok(fx)
    }

    /// Mint into `slot` if it is empty, of another form, marked for renewal by an operator, or
    /// (certificates) expires within `min_valid_days`; keep what the gateway may still hold as
    /// `previous`. The new slot is never marked for renewal.
    fn ensure(
        &self,
        slot: &mut Option<CredSlot>,
        eui: Eui64,
        which: Slot,
        form: Form,
        now: OffsetDateTime,
        fx: &mut Effects,
    ) -> Result<(), ServiceError> {
        let renew_before = now.saturating_add(self.settings.min_valid());
        let renewal = match slot.as_ref() {
            None => false,
            Some(s) if Form::of(&s.current) != form => false,
            // An operator asked for fresh credentials (`gateway renew`).
            Some(s) if s.renew_requested => true,
            Some(s)
                if form == Form::Cert && s.current.not_after.is_none_or(|t| t < renew_before) =>
            {
                true
            }
            Some(_) => return Ok(()),
        };
        let minted = self.mint(eui, which, form, now)?;
        if let Some(entry) = minted.token_entry {
            fx.new_tokens.push(entry);
        }
        let previous = match slot.take() {
            None => None,
            Some(old) => {
                // Keep as `previous` what the gateway most likely holds: the old current if it
                // was confirmed (or nothing older is known), else the older previous.
                let keep_older = old.current.confirmed_at.is_none() && old.previous.is_some();
                if keep_older {
                    fx.retired_tokens.extend(old.current.token_sha256.clone());
                    old.previous
                } else {
                    if let Some(p) = old.previous {
                        fx.retired_tokens.extend(p.token_sha256);
                    }
                    Some(PreviousCred {
                        crc: old.current.crc,
                        serial: old.current.serial,
                        token_sha256: old.current.token_sha256,
                        not_after: old.current.not_after,
                    })
                }
            }
        };
        *slot = Some(CredSlot {
            current: minted.cred,
            previous,
            renew_requested: false,
        });
        if renewal {
            fx.renewed.push(which);
        } else {
            fx.minted.push(which);
        }
        Ok(())
    }

    /// Mint one credential of `form` for `eui`'s `which` slot and check it is station-safe.
    pub(super) fn mint(
        &self,
        eui: Eui64,
        which: Slot,
        form: Form,
        now: OffsetDateTime,
    ) -> Result<Minted, ServiceError> {
        let usage = which.usage();
        let mut token = None;
        let mut token_entry = None;
        let (blob, serial, not_after, token_sha256) = match form {
            Form::Cert => {
                let m =
                    self.pki
                        .mint_client(eui, usage, self.settings.credential_validity(), now)?;
                let blob = self.pki.mtls_blob(&m)?;
                (blob, Some(m.serial_hex), Some(m.not_after), None)
            }
            Form::Token => {
                let t = pki::new_token()?;
                let blob = self
                    .pki
                    .token_blob_for(usage, &pki::bearer_header_lines(&t))?;
                let hash = pki::token_sha256_hex(&t);
                token_entry = Some((
                    hash.clone(),
                    TokenEntry {
                        eui,
                        usage: which.token_usage(),
                    },
                ));
                token = Some(t);
                (blob, None, None, Some(hash))
            }
            Form::ServerAuth => (self.pki.server_auth_blob_for(usage)?, None, None, None),
        };
        check_station_safe(&blob).map_err(ServiceError::UnsafeBlob)?;
        Ok(Minted {
            cred: IssuedCred {
                crc: crc32(&blob),
                blob,
                not_after,
                serial,
                token_sha256,
                issued_at: now,
                confirmed_at: None,
            },
            token,
            token_entry,
        })
    }

    /// Create token index entries (`PutMode::Create`); stops at the first failure.
    pub(super) async fn create_token_entries(
        &self,
        entries: &[(String, TokenEntry)],
    ) -> Result<(), ServiceError> {
        for (hash, entry) in entries {
            let key = keys::token(hash);
            self.store
                .put(&key, to_json(&key, entry)?, PutMode::Create)
                .await?;
        }
        Ok(())
    }

    /// Delete token index entries, best effort (a leftover entry is harmless: authentication
    /// also requires the record to name the token).
    pub(super) async fn delete_tokens<'a>(&self, hashes: impl Iterator<Item = &'a String>) {
        let hashes: Vec<&String> = hashes.collect();
        for hash in &hashes {
            if let Err(e) = self.store.delete(&keys::token(hash)).await {
                ServiceMetrics::bump(&self.metrics.storage_errors);
                tracing::warn!(error = %e, "could not delete a token index entry");
            }
        }
        self.forget_tokens(hashes);
    }
}

/// The gateway reported `crc` for `slot`: if that is the current blob and not yet confirmed,
/// record the confirmation and drop `previous`.
fn confirm(
    slot: &mut Option<CredSlot>,
    crc: u32,
    which: Slot,
    now: OffsetDateTime,
    fx: &mut Effects,
) {
    let Some(s) = slot.as_mut() else {
        return;
    };
    if s.current.crc != crc || s.current.confirmed_at.is_some() {
        return;
    }
    s.current.confirmed_at = Some(now);
    if let Some(prev) = s.previous.take() {
        fx.retired_tokens.extend(prev.token_sha256);
    }
    fx.confirmed.push(which);
}
