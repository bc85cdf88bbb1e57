//! The binary `update-info` response: six little-endian length-prefixed segments.
//!
//! | # | segment | prefix | length 0 means |
//! |---|---|---|---|
//! | 1 | cupsUri | u8 | keep current |
//! | 2 | tcUri | u8 | keep current |
//! | 3 | cupsCred | u16 | keep current |
//! | 4 | tcCred | u16 | keep current |
//! | 5 | sig | u32 | no signature |
//! | 6 | update | u32 | no update |

pub mod decoder;
pub mod encoder;

pub use decoder::{DecodeError, Decoder, Event};
pub use encoder::{ResponseHead, encode_head};

/// "Nothing to do": all six length fields zero.
pub const NO_CHANGE: [u8; NO_CHANGE_LEN] = [0; NO_CHANGE_LEN];
/// Length of [`NO_CHANGE`] and of the shortest valid body (1+1+2+2+4+4).
pub const NO_CHANGE_LEN: usize = 14;
/// Longest URI segment the station accepts (it refuses URIs of 128 bytes or more).
pub const MAX_URI_LEN: usize = 127;
/// Longest credential segment (u16 prefix).
pub const MAX_CRED_LEN: usize = 65_535;
/// Shortest signature segment (keyCRC + 4 bytes of DER).
pub const MIN_SIG_SEGMENT_LEN: u32 = 8;
/// Longest signature segment: keyCRC + the station's 128-byte signature buffer.
pub const MAX_SIG_SEGMENT_LEN: u32 = 132;
/// Length of the keyCRC that starts the signature segment.
pub const KEY_CRC_LEN: usize = 4;
/// Longest DER signature in the segment.
pub const MAX_SIG_DER_LEN: usize = 128;
/// Update lengths must stay below 2^31 (the station reads them as a signed int).
pub const MAX_UPDATE_LEN: u32 = 0x7FFF_FFFF;

/// Which of the six segments.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Segment {
    /// New CUPS URI.
    CupsUri,
    /// New TC (LNS) URI.
    TcUri,
    /// New CUPS credential blob.
    CupsCred,
    /// New TC credential blob.
    TcCred,
    /// keyCRC + DER signature of the update.
    Sig,
    /// The update bytes.
    Update,
}

/// Which credential category a blob is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CredKind {
    /// The CUPS server's credentials (`cups.*`).
    Cups,
    /// The LNS credentials (`tc.*`).
    Tc,
}
