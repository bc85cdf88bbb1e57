//! The crate-level error: one enum over the specific errors of each module.

use core::fmt;

/// Any error of this crate. Each module also exposes its own specific error type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Error {
    /// An EUI could not be parsed.
    Eui(crate::eui::EuiError),
    /// A response body could not be decoded.
    Decode(crate::response::DecodeError),
    /// A response could not be encoded.
    Encode(crate::response::encoder::EncodeError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Eui(e) => write!(f, "EUI: {e:?}"),
            Self::Decode(e) => write!(f, "response decode: {e:?}"),
            Self::Encode(e) => write!(f, "response encode: {e:?}"),
        }
    }
}

impl core::error::Error for Error {}
