//! The CUPS service: everything between "a TLS connection proved identity X and sent this
//! body" and "these response bytes (and maybe this update) go back" — authentication bound to
//! the gateway's identity, credential minting/renewal with conditional writes, the planner,
//! the audit line. No sockets here: `serve` owns the network.
//!
//! SKELETON: API fixed, bodies to be written.

use crate::store::ObjectStream;

/// What the TLS layer established about the peer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PeerIdentity {
    /// A client certificate that rustls verified against the gateway CA or the bootstrap CA
    /// (leaf DER; which CA issued it is decided by the service with `Pki`).
    ClientCert {
        /// Leaf certificate, DER.
        leaf_der: Vec<u8>,
    },
    /// No client certificate (token mode, or no credentials at all).
    Anonymous,
}

/// A request as the network layer hands it over.
#[derive(Clone, Debug)]
pub struct IncomingRequest {
    /// Who the TLS layer says the peer is.
    pub peer: PeerIdentity,
    /// The `Authorization` header value, if any (e.g. `Bearer xyz`). Never logged.
    pub authorization: Option<String>,
    /// The request body (at most the server's body limit).
    pub body: bytes::Bytes,
}

/// What to send back.
#[derive(Debug)]
pub enum Outcome {
    /// 200 with `head` followed by the update bytes streamed from `update` (if any);
    /// `content_length` = head length + update length.
    Respond {
        /// Encoded response head (or the 14-byte NO_CHANGE body).
        head: bytes::Bytes,
        /// Total body length for `Content-Length`.
        content_length: u64,
        /// The update to stream after the head.
        update: Option<ObjectStream>,
    },
    /// A non-200: the station falls back to its backup/bootstrap credentials. Only for real
    /// authentication/authorization failures and malformed requests.
    Reject {
        /// 400, 401, 403 or 404.
        status: u16,
        /// One line, no secrets: goes to the body and the log.
        reason: String,
    },
}
