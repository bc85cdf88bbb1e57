//! Credential blobs as CUPS sends them: build the three forms, split a blob exactly as the
//! station does (quirks included), and check that a blob is one the station handles right.
//!
//! SKELETON: API fixed, bodies to be written.

use core::ops::Range;

/// Largest blob: the segment length is a u16.
pub const MAX_BLOB_LEN: usize = 65_535;
/// The four zero bytes that stand for "no client certificate" / "no key".
pub const ABSENT: [u8; 4] = [0; 4];

/// Where the station cuts a blob: the byte ranges it stores as trust, cert and key.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StationSplit {
    /// Stored as `*.trust`.
    pub trust: Range<usize>,
    /// Stored as `*.crt` (empty range = empty file).
    pub cert: Range<usize>,
    /// Stored as `*.key` (a SEC1 key, or the token header lines; empty = empty file).
    pub key: Range<usize>,
}
