//! What the scenario runner needs from the server side ([`Admin`]), and the store-level
//! operations both implementations share (URI changes and renewal where the CLI has no
//! command yet; corrupting a stored image).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cups_core::Eui64;
use cups_host_server::model::GatewayRecord;
use cups_host_server::store::{PutMode, Store, StoreError, keys};
use serde::Serialize;

/// Attempts of a conditional record update that keeps losing races.
pub const RECORD_UPDATE_ATTEMPTS: u32 = 5;
/// A renewed credential's recorded expiry is moved to this long from now: inside the
/// server's renew-before window (`CREDENTIAL_MIN_VALID_DAYS`, ≥ 1 day), so the next request
/// gets freshly minted credentials, and not yet expired.
pub const RENEW_MARK_VALID: time::Duration = time::Duration::hours(1);

/// The server's view of one gateway (what `cups-server gateway show --json` tells).
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize)]
pub struct ServerGateway {
    /// CRC of the current CUPS credential blob, once minted.
    pub cups_crc: Option<u32>,
    /// The gateway reported that CRC (rotation confirmed).
    pub cups_confirmed: bool,
    /// CRC of the current TC credential blob, once minted.
    pub tc_crc: Option<u32>,
    /// The gateway reported that CRC.
    pub tc_confirmed: bool,
    /// Its own CUPS URI (None: the server's default).
    pub cups_uri: Option<String>,
    /// Its own TC URI.
    pub tc_uri: Option<String>,
    /// Bootstrap credentials are still honoured (it never used its own).
    pub bootstrap_open: bool,
}

impl ServerGateway {
    /// From a stored record.
    #[must_use]
    pub fn from_record(r: &GatewayRecord) -> Self {
        Self {
            cups_crc: r.cups_cred.as_ref().map(|s| s.current.crc),
            cups_confirmed: r
                .cups_cred
                .as_ref()
                .is_some_and(|s| s.current.confirmed_at.is_some()),
            tc_crc: r.tc_cred.as_ref().map(|s| s.current.crc),
            tc_confirmed: r
                .tc_cred
                .as_ref()
                .is_some_and(|s| s.current.confirmed_at.is_some()),
            cups_uri: r.cups_uri.clone(),
            tc_uri: r.tc_uri.clone(),
            bootstrap_open: r.bootstrap_open(),
        }
    }
}

/// A firmware image to add.
#[derive(Clone, Debug)]
pub struct FirmwareImage {
    /// Station model it is for.
    pub model: String,
    /// The version it installs (the `package` reported afterwards).
    pub version: String,
    /// Offered only to gateways reporting one of these (empty: any other version).
    pub from: Vec<String>,
    /// The image.
    pub bytes: Vec<u8>,
}

/// How the server goes down in the server-outage scenario.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub enum OutageMode {
    /// The admin owns the server: it is stopped (process killed / task shut down) and
    /// restarted.
    StopServer,
    /// The server is not ours: the simulator's uplink refuses every connection (a route cut).
    RouteCut,
}

/// Server-side failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// A `cups-server` command failed.
    #[error("`cups-server {command}` failed ({status}): {stderr}")]
    Command {
        /// The subcommand line.
        command: String,
        /// Exit status.
        status: String,
        /// Its stderr (last lines).
        stderr: String,
        /// A usage error: this `cups-server` does not know the subcommand or a flag.
        usage: bool,
    },
    /// A process could not be started or talked to.
    #[error("{what}: {source}")]
    Io {
        /// What was attempted.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A command's output was not what was expected.
    #[error("unexpected output of {what}: {detail}")]
    Output {
        /// The command.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// The store.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The service.
    #[error("service: {0}")]
    Service(String),
    /// A gateway or image is not there.
    #[error("{0} not found")]
    NotFound(String),
    /// The factory CA was just installed as the running (external) server's
    /// `bootstrap-ca.crt`; a server reads its PKI when it starts.
    #[error(
        "installed the factory CA as {}; the running server loaded its PKI before that and would \
         refuse every factory certificate: restart it (cups-server serve) and run again",
        path.display()
    )]
    RestartNeeded {
        /// The file written.
        path: std::path::PathBuf,
    },
    /// The admin cannot do this.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// The server did not come up in time.
    #[error("the server did not start within {0:?}")]
    StartTimeout(Duration),
}

/// What the scenario runner needs from the server side.
pub trait Admin {
    /// One line saying what this is (in-process, a `cups-server` process it owns, ...).
    fn describe(&self) -> String;
    /// Where the server listens now (a loopback address).
    fn server_addr(&self) -> SocketAddr;
    /// The CUPS URI the server sends gateways without their own (its `CUPS_URI`).
    fn cups_uri(&self) -> String;
    /// The TC URI the server sends gateways without their own (its `TC_URI`), if set.
    fn tc_uri(&self) -> Option<String>;
    /// The server's PKI (CUPS trust, signing keys; the gateway CA and server identity an LNS
    /// uses).
    fn pki(&self) -> &cups_host_server::pki::Pki;
    /// The CUPS trust anchor stations hold (DER or PEM).
    fn cups_trust(&self) -> Vec<u8>;
    /// The update-verification keys stations hold (`sig-N.key`, 64 bytes each).
    fn sig_keys(&self) -> Vec<Vec<u8>>;
    /// Register `count` consecutive EUIs from `first` (a client certificate for CUPS; for
    /// TC a client certificate or, with `tc_token`, a bearer token: `--tc token`).
    ///
    /// # Errors
    /// An [`AdminError`].
    fn register(&mut self, first: Eui64, count: u32, tc_token: bool) -> Result<(), AdminError>;
    /// The server's store (read by the LNS to check the TC tokens the server issued).
    fn store(&self) -> Arc<dyn Store>;
    /// The server's view of `euis` (missing ones are left out).
    ///
    /// # Errors
    /// An [`AdminError`].
    fn gateways(&mut self, euis: &[Eui64]) -> Result<BTreeMap<Eui64, ServerGateway>, AdminError>;
    /// Set (Some) the CUPS and/or TC URI of `euis`.
    ///
    /// # Errors
    /// An [`AdminError`].
    fn set_uris(
        &mut self,
        euis: &[Eui64],
        cups_uri: Option<&str>,
        tc_uri: Option<&str>,
    ) -> Result<(), AdminError>;
    /// The next request of each of `euis` gets freshly minted credentials.
    ///
    /// # Errors
    /// An [`AdminError`].
    fn renew(&mut self, euis: &[Eui64], cups: bool, tc: bool) -> Result<(), AdminError>;
    /// Add (and sign) a firmware image; returns its id.
    ///
    /// # Errors
    /// An [`AdminError`].
    fn add_firmware(&mut self, image: &FirmwareImage) -> Result<String, AdminError>;
    /// Change the stored image bytes of `id` after signing (same length): the signature no
    /// longer verifies.
    ///
    /// # Errors
    /// An [`AdminError`].
    fn corrupt_firmware(&mut self, id: &str) -> Result<(), AdminError>;
    /// Remove firmware `id`.
    ///
    /// # Errors
    /// An [`AdminError`].
    fn remove_firmware(&mut self, id: &str) -> Result<(), AdminError>;
    /// How long the server may keep offering a removed image or miss a new one (its
    /// firmware catalogue cache).
    fn catalogue_delay(&self) -> Duration;
    /// How the outage scenario takes the server down.
    fn outage_mode(&self) -> OutageMode;
    /// Stop the server ([`OutageMode::StopServer`] only).
    ///
    /// # Errors
    /// [`AdminError::Unsupported`] for [`OutageMode::RouteCut`].
    fn stop_server(&mut self) -> Result<(), AdminError>;
    /// Start it again (on the same port when possible); returns where it listens.
    ///
    /// # Errors
    /// An [`AdminError`].
    fn start_server(&mut self) -> Result<SocketAddr, AdminError>;
}

/// Read-modify-write one gateway record with a conditional put (retried on a lost race).
///
/// # Errors
/// [`AdminError::NotFound`], [`AdminError::Store`], [`AdminError::Output`] (a record that does
/// not parse).
pub async fn update_record(
    store: &Arc<dyn Store>,
    eui: Eui64,
    mut edit: impl FnMut(&mut GatewayRecord),
) -> Result<(), AdminError> {
    let key = keys::gateway(eui);
    let mut last = None;
    for _ in 0..RECORD_UPDATE_ATTEMPTS {
        let obj = store
            .get(&key)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("gateway {}", eui.canonical())))?;
        let mut record: GatewayRecord =
            serde_json::from_slice(&obj.bytes).map_err(|e| AdminError::Output {
                what: key.clone(),
                detail: e.to_string(),
            })?;
        edit(&mut record);
        let bytes = serde_json::to_vec_pretty(&record).map_err(|e| AdminError::Output {
            what: key.clone(),
            detail: e.to_string(),
        })?;
        match store
            .put(&key, Bytes::from(bytes), PutMode::Update(obj.etag))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.is_conflict() => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last.map_or(AdminError::Unsupported("record update"), AdminError::Store))
}

/// Set URIs through the store.
///
/// # Errors
/// See [`update_record`].
pub async fn store_set_uris(
    store: &Arc<dyn Store>,
    euis: &[Eui64],
    cups_uri: Option<&str>,
    tc_uri: Option<&str>,
) -> Result<(), AdminError> {
    for &eui in euis {
        update_record(store, eui, |r| {
            if let Some(u) = cups_uri {
                r.cups_uri = Some(u.to_owned());
            }
            if let Some(u) = tc_uri {
                r.tc_uri = Some(u.to_owned());
            }
        })
        .await?;
    }
    Ok(())
}

/// Ask for renewal through the store: the recorded expiry of the current certificate moves
/// inside the renew-before window ([`RENEW_MARK_VALID`]), so the next request renews.
///
/// # Errors
/// See [`update_record`].
pub async fn store_renew(
    store: &Arc<dyn Store>,
    euis: &[Eui64],
    cups: bool,
    tc: bool,
) -> Result<(), AdminError> {
    let soon = time::OffsetDateTime::now_utc() + RENEW_MARK_VALID;
    for &eui in euis {
        update_record(store, eui, |r| {
            for (want, slot) in [(cups, &mut r.cups_cred), (tc, &mut r.tc_cred)] {
                if want && let Some(s) = slot.as_mut() {
                    s.current.not_after = Some(soon);
                }
            }
        })
        .await?;
    }
    Ok(())
}

/// Corrupt the stored image of firmware `id`: every byte of its last line is changed (the
/// length stays, so the server still serves it; the signature no longer verifies).
///
/// # Errors
/// [`AdminError::NotFound`], [`AdminError::Store`].
pub async fn store_corrupt_image(store: &Arc<dyn Store>, id: &str) -> Result<(), AdminError> {
    let key = keys::firmware_image(id);
    let obj = store
        .get(&key)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("firmware image {id}")))?;
    let mut bytes = obj.bytes.to_vec();
    corrupt(&mut bytes);
    store
        .put(&key, Bytes::from(bytes), PutMode::Update(obj.etag))
        .await?;
    Ok(())
}

/// Change a script's version digits in place (`echo 9.9.9` → `echo 0.0.0`; any other byte
/// image: its last byte is flipped). The length never changes.
pub(crate) fn corrupt(bytes: &mut [u8]) {
    let mut changed = false;
    for b in bytes.iter_mut() {
        if b.is_ascii_digit() && *b != b'0' {
            *b = b'0';
            changed = true;
        }
    }
    if !changed && let Some(last) = bytes.last_mut() {
        *last ^= 0x01;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corruption_keeps_length_and_changes_bytes() {
        let orig = b"#!/bin/sh\necho 9.9.1 > version.txt\n".to_vec();
        let mut b = orig.clone();
        corrupt(&mut b);
        assert_eq!(b.len(), orig.len());
        assert_ne!(b, orig);
        let mut z = b"000".to_vec();
        corrupt(&mut z);
        assert_eq!(z, b"001");
        let mut e: Vec<u8> = Vec::new();
        corrupt(&mut e);
        assert!(e.is_empty());
    }
}
