//! One `update-info` request from body to [`Outcome`]: decode, authenticate, reconcile the
//! record, plan, encode the head, open the update stream — and the audit line.

use std::fmt;

use bytes::Bytes;
use cups_core::Eui64;
use cups_core::crc::{EMPTY_SET_CRC, crc32};
use cups_core::request::{JsonStr, UpdateInfo};
use cups_core::response::{ResponseParts, encode_head, head_len};
use time::OffsetDateTime;

use super::auth::{AuthError, AuthMethod, Denied};
use super::creds::{ReconcileError, Reported};
use super::{IncomingRequest, Outcome, RequestOutcome, Service, ServiceError, ServiceMetrics};
use crate::model::{FirmwareMeta, GatewayRecord};
use crate::planner::{self, Plan};
use crate::store::{ObjectStream, keys};

impl Service {
    /// The planner over this request, record and catalogue.
    pub(super) fn plan(
        &self,
        info: &UpdateInfo<'_>,
        record: &GatewayRecord,
        catalogue: &[FirmwareMeta],
    ) -> Plan {
        let defaults = planner::Defaults {
            cups_uri: self.settings.cups_uri.clone().unwrap_or_default(),
            tc_uri: self.settings.tc_uri.clone().unwrap_or_default(),
        };
        let key_crcs = self.pki.key_crcs();
        planner::plan(
            info,
            record,
            &defaults,
            catalogue,
            &key_crcs,
            planner::Policy {
                allow_unsigned: self.settings.allow_unsigned,
            },
        )
    }

    /// The whole request; fills `audit`.
    pub(super) async fn handle(
        &self,
        req: &IncomingRequest,
        now: OffsetDateTime,
        audit: &mut Audit,
    ) -> Outcome {
        let info = match UpdateInfo::decode(&req.body) {
            Ok(info) => info,
            Err(e) => {
                return audit.reject(
                    RequestOutcome::BadRequest,
                    format!("malformed update-info request: {e}"),
                );
            }
        };
        let router = info.router;
        audit.eui = Some(router);
        audit.reported = Some((info.cups_cred_crc, info.tc_cred_crc));
        let presented = match self.presented(req, router, now).await {
            Ok(p) => p,
            Err(AuthError::Denied(d)) => return audit.deny(d),
            Err(AuthError::Store(e)) => return self.fallback(audit, &e),
        };
        audit.auth = Some(presented.method());
        let (record, etag) = match self.read_record(router).await {
            Ok(Some(found)) => found,
            Ok(None) => return audit.deny(Denied::not_registered(router)),
            Err(e) => return self.fallback(audit, &e),
        };
        let reported = Reported {
            cups_crc: info.cups_cred_crc,
            tc_crc: info.tc_cred_crc,
        };
        let (record, fx) = match self
            .reconcile(record, etag, Some(&presented), Some(reported), now)
            .await
        {
            Ok(done) => done,
            Err(ReconcileError::Denied(d)) => return audit.deny(d),
            Err(ReconcileError::Service(e)) => return self.fallback(audit, &e),
        };
        fx.count(&self.metrics);
        audit.events = Some(fx.describe());
        // Rate limit only after authentication is complete, so nobody can throttle another
        // gateway by naming it. What was stored above is sent on a later request.
        if self.rate_limited(router, now) {
            audit.outcome = RequestOutcome::RateLimited;
            return Outcome::no_change();
        }
        // From here on the record is stored: whatever fails now only loses the update.
        let catalogue = match self.firmware_catalogue().await {
            Ok(c) => c,
            Err(e) => {
                ServiceMetrics::bump(&self.metrics.storage_errors);
                tracing::warn!(eui = %router, error = %e, "firmware catalogue unavailable; no update offered");
                std::sync::Arc::new(Vec::new())
            }
        };
        let plan = self.plan(&info, &record, &catalogue);
        audit.plan = Some(plan_summary(&plan));
        self.respond(&plan, &record, audit).await
    }

    /// Encode the head `plan` asks for from the stored `record`, with the update stream.
    async fn respond(&self, plan: &Plan, record: &GatewayRecord, audit: &mut Audit) -> Outcome {
        let mut parts = match plan.response_parts(record) {
            Ok(parts) => parts,
            Err(e) => return self.fallback(audit, &ServiceError::Parts(e)),
        };
        let mut update = None;
        if let Some(planned) = plan.update() {
            match self.open_image(&planned.firmware_id, planned.len).await {
                Ok(stream) => update = Some((stream, planned.firmware_id.clone())),
                Err(e) => {
                    // The credentials are stored: send them, just not the update.
                    ServiceMetrics::bump(&self.metrics.storage_errors);
                    tracing::warn!(eui = %record.eui, firmware = %planned.firmware_id, error = %e,
                        "update image unavailable; answering without it");
                    parts.sig = None;
                    parts.update_len = 0;
                }
            }
        }
        if parts == ResponseParts::default() {
            audit.outcome = RequestOutcome::NoChange;
            return Outcome::no_change();
        }
        let encoded = head_len(&parts).and_then(|len| {
            let mut buf = vec![0u8; len];
            encode_head(&parts, &mut buf).map(|head| (buf, head))
        });
        let (buf, head) = match encoded {
            Ok(done) => done,
            Err(e) => return self.fallback(audit, &ServiceError::Encode(e)),
        };
        audit.outcome = RequestOutcome::Updated;
        audit.sent_cups_crc = parts.cups_cred.map(crc32);
        audit.sent_tc_crc = parts.tc_cred.map(crc32);
        audit.sent_uris = (parts.cups_uri.is_some(), parts.tc_uri.is_some());
        audit.key_crc = parts.sig.map(|s| s.key_crc);
        if let Some((_, id)) = &update {
            ServiceMetrics::bump(&self.metrics.updates_served);
            audit.firmware = Some(id.clone());
        }
        Outcome::Respond {
            head: Bytes::from(buf),
            content_length: head.body_len,
            update: update.map(|(stream, _)| stream),
        }
    }

    /// Open firmware `id`'s image, which must be `len` bytes long.
    async fn open_image(&self, id: &str, len: u32) -> Result<ObjectStream, ServiceError> {
        let stream = self
            .store
            .get_stream(&keys::firmware_image(id))
            .await?
            .ok_or_else(|| ServiceError::FirmwareNotFound { id: id.to_owned() })?;
        if stream.len != u64::from(len) {
            return Err(ServiceError::FirmwareIncomplete { id: id.to_owned() });
        }
        Ok(stream)
    }

    /// 200 "nothing to do" after a failure the gateway is not to blame for.
    fn fallback(&self, audit: &mut Audit, e: &ServiceError) -> Outcome {
        let storage = matches!(
            e,
            ServiceError::Store(_) | ServiceError::Corrupt { .. } | ServiceError::Contention { .. }
        );
        if storage {
            if !matches!(e, ServiceError::Contention { .. }) {
                ServiceMetrics::bump(&self.metrics.storage_errors);
            }
            tracing::warn!(eui = %OptEui(audit.eui), error = %e, "storage failure: answering nothing-to-do");
            audit.outcome = RequestOutcome::StorageFallback;
        } else {
            ServiceMetrics::bump(&self.metrics.internal_errors);
            tracing::error!(eui = %OptEui(audit.eui), error = %e, "internal failure: answering nothing-to-do");
            audit.outcome = RequestOutcome::InternalFallback;
        }
        audit.reason = Some(e.to_string());
        Outcome::no_change()
    }
}

/// The plan on one line for the audit log: every segment with its decision and reason, then
/// the notes (`cupsUri keep: same as reported: ...; tcUri send: ...; note: ...`).
fn plan_summary(plan: &Plan) -> String {
    let mut parts: Vec<String> = plan
        .segments()
        .iter()
        .map(|s| match &s.action {
            planner::Action::Keep(r) => format!("{} keep: {r}", s.segment.name()),
            planner::Action::Send(r) => format!("{} send: {r}", s.segment.name()),
        })
        .collect();
    parts.extend(plan.notes().iter().map(|n| format!("note: {n}")));
    parts.join("; ")
}

/// A request as if `record`'s gateway reported what it was last confirmed to hold (for a dry
/// run without a request body): confirmed CRCs (else the previous set's, else the empty set's),
/// the target URIs once anything was confirmed, no model, package or keys.
pub(super) fn last_known_request<'a>(
    record: &'a GatewayRecord,
    settings: &'a super::ServiceSettings,
) -> UpdateInfo<'a> {
    let held = |slot: &Option<crate::model::CredSlot>| match slot {
        Some(s) if s.current.confirmed_at.is_some() => s.current.crc,
        Some(s) => s.previous.as_ref().map_or(EMPTY_SET_CRC, |p| p.crc),
        None => EMPTY_SET_CRC,
    };
    let confirmed = [&record.cups_cred, &record.tc_cred]
        .iter()
        .any(|s| s.as_ref().is_some_and(|s| s.current.confirmed_at.is_some()));
    let uri = |own: &'a Option<String>, default: &'a Option<String>| {
        confirmed
            .then(|| own.as_deref().or(default.as_deref()))
            .flatten()
            .map(JsonStr::from_plain)
    };
    UpdateInfo {
        router: record.eui,
        cups_uri: uri(&record.cups_uri, &settings.cups_uri),
        tc_uri: uri(&record.tc_uri, &settings.tc_uri),
        cups_cred_crc: held(&record.cups_cred),
        tc_cred_crc: held(&record.tc_cred),
        station: JsonStr::from_plain("cups-server plan"),
        model: JsonStr::empty(),
        package: None,
        keys: Default::default(),
    }
}

/// Everything the audit line says about one request. Never holds a secret.
#[derive(Debug)]
pub(super) struct Audit {
    pub(super) eui: Option<Eui64>,
    pub(super) auth: Option<AuthMethod>,
    pub(super) reported: Option<(u32, u32)>,
    pub(super) plan: Option<String>,
    pub(super) events: Option<String>,
    pub(super) sent_cups_crc: Option<u32>,
    pub(super) sent_tc_crc: Option<u32>,
    pub(super) sent_uris: (bool, bool),
    pub(super) key_crc: Option<u32>,
    pub(super) firmware: Option<String>,
    pub(super) outcome: RequestOutcome,
    pub(super) reason: Option<String>,
}

impl Default for Audit {
    fn default() -> Self {
        Self {
            eui: None,
            auth: None,
            reported: None,
            plan: None,
            events: None,
            sent_cups_crc: None,
            sent_tc_crc: None,
            sent_uris: (false, false),
            key_crc: None,
            firmware: None,
            outcome: RequestOutcome::NoChange,
            reason: None,
        }
    }
}

impl Audit {
    /// Record a refusal and build its outcome.
    fn reject(&mut self, outcome: RequestOutcome, reason: String) -> Outcome {
        self.outcome = outcome;
        self.reason = Some(reason.clone());
        Outcome::Reject {
            status: outcome.status(),
            reason,
        }
    }

    fn deny(&mut self, d: Denied) -> Outcome {
        self.reject(d.outcome, d.reason)
    }

    /// Write the audit line.
    pub(super) fn emit(&self) {
        let (cups_rep, tc_rep) = self.reported.unzip();
        tracing::info!(
            target: "audit",
            eui = %OptEui(self.eui),
            auth = %self.auth.map_or("-", AuthMethod::label),
            outcome = %self.outcome.label(),
            status = self.outcome.status(),
            segments = %self.plan.as_deref().unwrap_or("-"),
            events = %self.events.as_deref().unwrap_or("-"),
            cups_crc_reported = %OptCrc(cups_rep),
            tc_crc_reported = %OptCrc(tc_rep),
            cups_crc_sent = %OptCrc(self.sent_cups_crc),
            tc_crc_sent = %OptCrc(self.sent_tc_crc),
            cups_uri_sent = self.sent_uris.0,
            tc_uri_sent = self.sent_uris.1,
            key_crc = %OptCrc(self.key_crc),
            firmware = %self.firmware.as_deref().unwrap_or("-"),
            reason = %self.reason.as_deref().unwrap_or("-"),
            "update-info"
        );
    }
}

/// An optional EUI, `-` when absent.
struct OptEui(Option<Eui64>);

impl fmt::Display for OptEui {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(eui) => write!(f, "{eui}"),
            None => f.write_str("-"),
        }
    }
}

/// An optional CRC as `0x` + 8 hex digits, `-` when absent.
struct OptCrc(Option<u32>);

impl fmt::Display for OptCrc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(crc) => write!(f, "{crc:#010x}"),
            None => f.write_str("-"),
        }
    }
}
