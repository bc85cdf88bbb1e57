//! The crate-level error: one `#[non_exhaustive]` enum over the specific error of each module,
//! for callers that want a single type. Each variant keeps the specific error, which carries
//! the offsets and lengths; `Display` forwards to it.

use core::fmt;

use crate::{cred, eui, request, response, sig};

/// Any error of this crate.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Error {
    /// An EUI text was refused.
    Eui(eui::EuiError),
    /// A request body could not be decoded.
    Request(request::RequestError),
    /// A request could not be encoded.
    RequestEncode(request::RequestEncodeError),
    /// The station's HTTP head could not be written.
    Head(request::HeadError),
    /// A credential blob could not be built.
    CredBuild(cred::BuildError),
    /// The station would refuse or mis-split a credential blob.
    StationSplit(cred::StationSplitError),
    /// A credential blob is not safe to send to a station.
    UnsafeBlob(cred::UnsafeBlob),
    /// A response body could not be decoded.
    Decode(response::DecodeError),
    /// A response could not be encoded.
    Encode(response::encoder::EncodeError),
    /// A signature is not strict DER.
    SigDer(sig::DerError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Eui(e) => write!(f, "EUI: {e}"),
            Self::Request(e) => write!(f, "request: {e}"),
            Self::RequestEncode(e) => write!(f, "request encoding: {e}"),
            Self::Head(e) => write!(f, "request head: {e}"),
            Self::CredBuild(e) => write!(f, "credential blob: {e}"),
            Self::StationSplit(e) => write!(f, "station split: {e}"),
            Self::UnsafeBlob(e) => write!(f, "unsafe credential blob: {e}"),
            Self::Decode(e) => write!(f, "response: {e}"),
            Self::Encode(e) => write!(f, "response encoding: {e}"),
            Self::SigDer(e) => write!(f, "signature: {e}"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        Some(match self {
            Self::Eui(e) => e,
            Self::Request(e) => e,
            Self::RequestEncode(e) => e,
            Self::Head(e) => e,
            Self::CredBuild(e) => e,
            Self::StationSplit(e) => e,
            Self::UnsafeBlob(e) => e,
            Self::Decode(e) => e,
            Self::Encode(e) => e,
            Self::SigDer(e) => e,
        })
    }
}

macro_rules! from_specific {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Self::$variant(e)
            }
        })*
    };
}

from_specific!(
    Eui(eui::EuiError),
    Request(request::RequestError),
    RequestEncode(request::RequestEncodeError),
    Head(request::HeadError),
    CredBuild(cred::BuildError),
    StationSplit(cred::StationSplitError),
    UnsafeBlob(cred::UnsafeBlob),
    Decode(response::DecodeError),
    Encode(response::encoder::EncodeError),
    SigDer(sig::DerError),
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn wraps_and_displays_specific_errors() {
        let e: Error = eui::EuiError::Zero.into();
        assert!(e.to_string().starts_with("EUI: "));
        assert!(core::error::Error::source(&e).is_some());
        let mut d = response::Decoder::new();
        let _ = d.decode(&[0u8; 10]);
        let e: Error = d.finish().expect_err("truncated").into();
        assert_eq!(
            e.to_string(),
            "response: unexpected end of data: update length field at offset 10 needs 4 bytes, 0 left"
        );
    }
}
