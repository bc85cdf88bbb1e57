//! Authentication bound to identity: a request gets anything only once its credential is proven
//! to belong to the gateway named in `router` (or is a bootstrap credential honoured for that
//! gateway).
//!
//! Two steps, so that the record-dependent part can be re-checked on every fresh read of the
//! record during conditional-write retries:
//! 1. [`Service::presented`]: which credential the request carries and whether it names
//!    `router` — client certificate (gateway CA or bootstrap CA), own CUPS token (token index),
//!    or bootstrap token (hash in the settings);
//! 2. [`check_against_record`]: the record still accepts it — certificate serial / token hash
//!    is the current or previous CUPS credential, or bootstrap is still open.

use std::fmt;

use cups_core::Eui64;
use time::OffsetDateTime;

use super::{IncomingRequest, PeerIdentity, RequestOutcome, Service, ServiceError, from_json};
use crate::model::{GatewayRecord, TokenEntry, TokenUsage};
use crate::pki;
use crate::store::keys;

/// How a request authenticated.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AuthMethod {
    /// A client certificate issued by the gateway CA to this gateway.
    GatewayCert,
    /// A factory certificate from the bootstrap CA.
    BootstrapCert,
    /// The gateway's own CUPS token.
    Token,
    /// The fleet-wide bootstrap token.
    BootstrapToken,
}

impl AuthMethod {
    /// Whether these are the gateway's own credentials (using them closes bootstrap access).
    #[must_use]
    pub const fn is_own(self) -> bool {
        matches!(self, Self::GatewayCert | Self::Token)
    }

    /// Short name for logs and metrics.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::GatewayCert => "client-cert",
            Self::BootstrapCert => "bootstrap-cert",
            Self::Token => "token",
            Self::BootstrapToken => "bootstrap-token",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The credential a request presented, already bound to `router`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(super) enum Presented {
    /// Gateway-CA certificate for `router` with this serial.
    GatewayCert { serial_hex: String },
    /// Bootstrap-CA certificate (fleet-wide, or naming `router`).
    BootstrapCert,
    /// A CUPS token of `router`, by hash.
    Token { sha256: String },
    /// The fleet-wide bootstrap token.
    BootstrapToken,
}

impl Presented {
    /// The method.
    pub(super) fn method(&self) -> AuthMethod {
        match self {
            Self::GatewayCert { .. } => AuthMethod::GatewayCert,
            Self::BootstrapCert => AuthMethod::BootstrapCert,
            Self::Token { .. } => AuthMethod::Token,
            Self::BootstrapToken => AuthMethod::BootstrapToken,
        }
    }
}

/// A refusal: status (via the outcome) and a one-line reason without secrets.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(super) struct Denied {
    pub(super) outcome: RequestOutcome,
    pub(super) reason: String,
}

impl Denied {
    fn unauthenticated(reason: impl Into<String>) -> Self {
        Self {
            outcome: RequestOutcome::Unauthenticated,
            reason: reason.into(),
        }
    }

    fn forbidden(reason: impl Into<String>) -> Self {
        Self {
            outcome: RequestOutcome::Forbidden,
            reason: reason.into(),
        }
    }

    pub(super) fn not_registered(eui: Eui64) -> Self {
        Self {
            outcome: RequestOutcome::NotRegistered,
            reason: format!("gateway {eui} is not registered"),
        }
    }
}

/// Why authentication did not succeed.
#[derive(Debug)]
pub(super) enum AuthError {
    /// Refused.
    Denied(Denied),
    /// The store could not be asked.
    Store(ServiceError),
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
fn parse_bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer")
        && !token.is_empty()
        && !token.contains(|c: char| c.is_ascii_whitespace() || c.is_ascii_control()))
    .then_some(token)
}

impl Service {
    /// Step 1: the credential the request presents, bound to `router`.
    pub(super) async fn presented(
        &self,
        req: &IncomingRequest,
        router: Eui64,
        now: OffsetDateTime,
    ) -> Result<Presented, AuthError> {
        let deny = |d| Err(AuthError::Denied(d));
        if let PeerIdentity::ClientCert { leaf_der } = &req.peer {
            if self.pki.issued_by_bootstrap(leaf_der) {
                // A factory certificate may be fleet-wide (no EUI); one that names a gateway
                // must name this one.
                if let Ok(id) = pki::identity_from_cert(leaf_der)
                    && id.eui != router
                {
                    return deny(Denied::forbidden(format!(
                        "bootstrap certificate is for gateway {}, request names {router}",
                        id.eui
                    )));
                }
                return Ok(Presented::BootstrapCert);
            }
            // rustls verified the chain against the gateway and bootstrap CAs; check the
            // issuer again so that no other path can hand in a certificate of another CA.
            if !self.pki.issued_by_gateway_ca(leaf_der) {
                return deny(Denied::forbidden(
                    "client certificate is not issued by the gateway CA",
                ));
            }
            let Ok(id) = pki::identity_from_cert(leaf_der) else {
                return deny(Denied::forbidden(
                    "client certificate names no gateway EUI in its CN or SAN",
                ));
            };
            if id.eui != router {
                return deny(Denied::forbidden(format!(
                    "certificate is for gateway {}, request names {router}",
                    id.eui
                )));
            }
            if id.not_after < now {
                return deny(Denied::forbidden(format!(
                    "certificate of gateway {router} (serial {}) expired",
                    id.serial_hex
                )));
            }
            return Ok(Presented::GatewayCert {
                serial_hex: id.serial_hex,
            });
        }
        let Some(header) = req.authorization.as_deref() else {
            return deny(Denied::unauthenticated(
                "no client certificate and no bearer token",
            ));
        };
        let Some(token) = parse_bearer(header) else {
            return deny(Denied::unauthenticated(
                "the Authorization header is not a bearer token",
            ));
        };
        let sha256 = pki::token_sha256_hex(token);
        if self
            .settings
            .bootstrap_token_sha256
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&sha256))
        {
            return Ok(Presented::BootstrapToken);
        }
        let entry = match self.token_entry(&sha256).await {
            Ok(Some(entry)) => entry,
            Ok(None) => return deny(Denied::unauthenticated("unknown bearer token")),
            Err(e) => return Err(AuthError::Store(e)),
        };
        if entry.eui != router {
            return deny(Denied::forbidden(format!(
                "token is for gateway {}, request names {router}",
                entry.eui
            )));
        }
        if entry.usage != TokenUsage::Cups {
            return deny(Denied::forbidden(format!(
                "token of gateway {router} is its LNS token, not a CUPS credential"
            )));
        }
        Ok(Presented::Token { sha256 })
    }

    /// The token index entry for a token hash (cached: entries never change once written).
    async fn token_entry(&self, sha256: &str) -> Result<Option<TokenEntry>, ServiceError> {
        if let Some(entry) = self.tokens.get(&sha256.to_owned()) {
            return Ok(Some(entry));
        }
        let key = keys::token(sha256);
        let Some(obj) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let entry: TokenEntry = from_json(&key, &obj.bytes)?;
        self.tokens.insert(sha256.to_owned(), entry.clone());
        Ok(Some(entry))
    }

    /// Forget cached token entries (after deleting them).
    pub(super) fn forget_tokens<'a>(&self, hashes: impl IntoIterator<Item = &'a String>) {
        for h in hashes {
            self.tokens.remove(h);
        }
    }
}

/// Step 2: whether `record` accepts the presented credential.
pub(super) fn check_against_record(
    presented: &Presented,
    record: &GatewayRecord,
) -> Result<(), Denied> {
    let eui = record.eui;
    let cups = record.cups_cred.as_ref();
    match presented {
        Presented::GatewayCert { serial_hex } => {
            let known = cups.is_some_and(|slot| {
                slot.current.serial.as_deref() == Some(serial_hex.as_str())
                    || slot
                        .previous
                        .as_ref()
                        .is_some_and(|p| p.serial.as_deref() == Some(serial_hex.as_str()))
            });
            if known {
                Ok(())
            } else {
                Err(Denied::forbidden(format!(
                    "certificate serial {serial_hex} is not a current CUPS credential of gateway {eui}"
                )))
            }
        }
        Presented::Token { sha256 } => {
            let known = cups.is_some_and(|slot| {
                slot.current.token_sha256.as_deref() == Some(sha256.as_str())
                    || slot
                        .previous
                        .as_ref()
                        .is_some_and(|p| p.token_sha256.as_deref() == Some(sha256.as_str()))
            });
            if known {
                Ok(())
            } else {
                Err(Denied::forbidden(format!(
                    "token is no longer a CUPS credential of gateway {eui}"
                )))
            }
        }
        Presented::BootstrapCert | Presented::BootstrapToken => {
            if record.bootstrap_open() {
                Ok(())
            } else {
                Err(Denied::forbidden(format!(
                    "bootstrap access for gateway {eui} is closed: it has used its own credentials"
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(parse_bearer("Bearer abc"), Some("abc"));
        assert_eq!(parse_bearer("bearer   abc "), Some("abc"));
        assert_eq!(parse_bearer("BEARER\tabc"), Some("abc"));
        assert_eq!(parse_bearer("Bearer"), None);
        assert_eq!(parse_bearer("Bearer "), None);
        assert_eq!(parse_bearer("Basic abc"), None);
        assert_eq!(parse_bearer("Bearer a b"), None);
        assert_eq!(parse_bearer("abc"), None);
    }
}
