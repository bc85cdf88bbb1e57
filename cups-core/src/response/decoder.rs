//! Sans-IO push decoder for the response body: feed input in any split, get events that
//! borrow from the input (or from the decoder's small URI/signature buffer). Credentials and
//! the update are never buffered.
//!
//! SKELETON: API fixed, bodies to be written.

use super::CredKind;

/// One thing the decoder found. Events come in body order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Event<'a> {
    /// A new CUPS URI (non-empty).
    CupsUri(&'a [u8]),
    /// A new TC URI (non-empty).
    TcUri(&'a [u8]),
    /// A credential blob of `len` bytes starts.
    CredStart {
        /// Which category.
        kind: CredKind,
        /// Blob length (> 0).
        len: u16,
    },
    /// Part of a credential blob, at `offset` within it.
    CredChunk {
        /// Which category.
        kind: CredKind,
        /// Offset of `data` within the blob.
        offset: u16,
        /// The bytes.
        data: &'a [u8],
    },
    /// The credential blob is complete.
    CredEnd {
        /// Which category.
        kind: CredKind,
    },
    /// The signature segment (keyCRC + DER signature, unchecked DER).
    Signature {
        /// keyCRC from the segment.
        key_crc: u32,
        /// The signature bytes (segment length − 4).
        der: &'a [u8],
    },
    /// An update of `len` bytes starts.
    UpdateStart {
        /// Update length (> 0, < 2^31).
        len: u32,
    },
    /// Part of the update, at `offset` within it.
    UpdateChunk {
        /// Offset of `data` within the update.
        offset: u32,
        /// The bytes.
        data: &'a [u8],
    },
    /// The update is complete.
    UpdateEnd,
    /// The body is complete; nothing may follow.
    Done,
}

/// The decoder. See the module docs.
#[derive(Clone, Debug)]
pub struct Decoder {
    _state: (),
}

/// Why a body was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body ended early.
    Truncated,
}
