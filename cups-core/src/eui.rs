//! Gateway EUI-64: parse every text form the station accepts, render ID6 for stations and
//! 16 lowercase hex digits as the canonical name everywhere else.
//!
//! SKELETON: API fixed, bodies to be written.

use core::fmt;

/// Longest ID6 rendering: `"ffff:ffff:ffff:ffff"`.
pub const ID6_MAX_LEN: usize = 19;
/// Length of the canonical rendering: 16 lowercase hex digits.
pub const CANONICAL_LEN: usize = 16;
/// Longest EUI text accepted by [`Eui64::parse`] (`00-16-C0-01-FF-10-A2-35` is 23 bytes).
pub const MAX_TEXT_LEN: usize = 23;

/// A non-zero gateway EUI-64.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Eui64(u64);

/// Why an EUI text or value was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum EuiError {
    /// The text is empty.
    Empty,
    /// The text is longer than [`MAX_TEXT_LEN`].
    TooLong,
    /// The zero EUI is not a gateway.
    Zero,
}

impl fmt::Display for EuiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty EUI"),
            Self::TooLong => write!(f, "EUI text longer than {MAX_TEXT_LEN} bytes"),
            Self::Zero => f.write_str("the zero EUI is not a gateway"),
        }
    }
}

impl core::error::Error for EuiError {}

impl Eui64 {
    /// A non-zero EUI from its integer value.
    pub const fn new(value: u64) -> Result<Self, EuiError> {
        if value == 0 {
            Err(EuiError::Zero)
        } else {
            Ok(Self(value))
        }
    }

    /// The integer value.
    #[must_use]
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Parse any form the station accepts: ID6 (2 or 3 colons, `::` runs), 16 hex digits,
    /// hex digits with `-` or `:` separators (`00-16-C0-01-FF-10-A2-35`).
    pub fn parse(text: &str) -> Result<Self, EuiError> {
        let _ = text;
        todo!()
    }

    /// ID6 rendering (`16:c001:ff10:a235`), as the station sends `router`.
    #[must_use]
    pub fn id6(self) -> Id6 {
        Id6(self)
    }

    /// Canonical rendering (`0016c001ff10a235`) for logs, storage keys and certificate CNs.
    #[must_use]
    pub fn canonical(self) -> Canonical {
        Canonical(self)
    }
}

/// ID6 rendering of an EUI (see [`Eui64::id6`]); `Display` writes it.
#[derive(Clone, Copy, Debug)]
pub struct Id6(Eui64);

/// Canonical rendering of an EUI (see [`Eui64::canonical`]); `Display` writes it.
#[derive(Clone, Copy, Debug)]
pub struct Canonical(Eui64);

impl fmt::Display for Canonical {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0.0)
    }
}

impl fmt::Display for Id6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = f;
        todo!()
    }
}

impl fmt::Display for Eui64 {
    /// Canonical form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.canonical(), f)
    }
}

impl core::str::FromStr for Eui64 {
    type Err = EuiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
