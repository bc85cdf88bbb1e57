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
//!
//! [`encoder`] writes everything up to the update bytes into a caller buffer (the update is
//! streamed after it); [`decoder`] is a sans-IO push decoder that never buffers credentials
//! or the update.

pub mod decoder;
pub mod encoder;

pub use decoder::{DecodeError, Decoder, Event, Field, Step};
pub use encoder::{
    EncodeError, ResponseHead, ResponseParts, SigRef, UriError, encode_full, encode_head, head_len,
};

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
/// Longest URI segment the wire format can carry (u8 prefix). The decoder accepts up to this,
/// like the station's parser; the encoder only sends up to [`MAX_URI_LEN`].
pub const MAX_URI_SEGMENT_LEN: usize = 255;
/// Size of the URI length prefixes.
pub const URI_LEN_FIELD: usize = 1;
/// Size of the credential length prefixes.
pub const CRED_LEN_FIELD: usize = 2;
/// Size of the signature length prefix.
pub const SIG_LEN_FIELD: usize = 4;
/// Size of the update length prefix.
pub const UPDATE_LEN_FIELD: usize = 4;

/// The URI the station actually stores for a raw URI segment: it writes the segment as a C
/// string, so everything from the first NUL byte on is lost. The decoder delivers the raw
/// segment; use this to see what the station would keep.
#[must_use]
pub fn station_effective_uri(raw: &[u8]) -> &[u8] {
    match raw.iter().position(|&b| b == 0) {
        Some(nul) => raw.split_at(nul).0,
        None => raw,
    }
}

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

impl Segment {
    /// The six segments in body order.
    pub const ALL: [Self; 6] = [
        Self::CupsUri,
        Self::TcUri,
        Self::CupsCred,
        Self::TcCred,
        Self::Sig,
        Self::Update,
    ];

    /// Size of this segment's little-endian length prefix (1, 2 or 4 bytes).
    #[must_use]
    pub const fn len_field_size(self) -> usize {
        match self {
            Self::CupsUri | Self::TcUri => URI_LEN_FIELD,
            Self::CupsCred | Self::TcCred => CRED_LEN_FIELD,
            Self::Sig => SIG_LEN_FIELD,
            Self::Update => UPDATE_LEN_FIELD,
        }
    }

    /// The segment after this one (`None` after the update).
    #[must_use]
    pub const fn next(self) -> Option<Self> {
        match self {
            Self::CupsUri => Some(Self::TcUri),
            Self::TcUri => Some(Self::CupsCred),
            Self::CupsCred => Some(Self::TcCred),
            Self::TcCred => Some(Self::Sig),
            Self::Sig => Some(Self::Update),
            Self::Update => None,
        }
    }

    /// The name used in the golden-vector manifests and in error messages
    /// (`cupsUri`, `tcUri`, `cupsCred`, `tcCred`, `sig`, `update`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::CupsUri => "cupsUri",
            Self::TcUri => "tcUri",
            Self::CupsCred => "cupsCred",
            Self::TcCred => "tcCred",
            Self::Sig => "sig",
            Self::Update => "update",
        }
    }
}

impl core::fmt::Display for Segment {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which credential category a blob is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CredKind {
    /// The CUPS server's credentials (`cups.*`).
    Cups,
    /// The LNS credentials (`tc.*`).
    Tc,
}

impl CredKind {
    /// The credential segment of this category.
    #[must_use]
    pub const fn segment(self) -> Segment {
        match self {
            Self::Cups => Segment::CupsCred,
            Self::Tc => Segment::TcCred,
        }
    }
}

impl core::fmt::Display for CredKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Cups => "CUPS",
            Self::Tc => "TC",
        })
    }
}
