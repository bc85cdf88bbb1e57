//! The station's `POST /update-info` JSON body: decoded without allocation (strings borrow
//! from the input), encoded byte-exact as the station writes it.
//!
//! SKELETON: API fixed, bodies to be written.

use crate::eui::Eui64;

/// Largest request body the station sends (its CUPS buffer, `CUPS_BUFSZ`).
pub const MAX_BODY_LEN: usize = 8192;
/// Longest URI the station holds (`MAX_URI_LEN` 128 including the NUL).
pub const MAX_URI_LEN: usize = 127;
/// Most `sig-N.key` CRCs accepted in `keys`.
pub const MAX_KEYS: usize = 16;

/// A JSON string as it appears in the body: the raw text between the quotes, escapes kept.
/// Compare and print it through [`JsonStr::unescaped`]; re-encoding writes `raw` unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct JsonStr<'a> {
    raw: &'a str,
}

impl<'a> JsonStr<'a> {
    /// The raw JSON text between the quotes (escapes not resolved).
    #[must_use]
    pub fn raw(&self) -> &'a str {
        self.raw
    }
}

/// The fields of one station request, in the station's order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UpdateInfo<'a> {
    /// The gateway EUI (`router`, sent as ID6).
    pub router: Eui64,
    /// Its regular `cups.uri` (`null` when it has none).
    pub cups_uri: Option<JsonStr<'a>>,
    /// Its regular `tc.uri` (`null` when it has none).
    pub tc_uri: Option<JsonStr<'a>>,
    /// CRC of its regular CUPS credential files.
    pub cups_cred_crc: u32,
    /// CRC of its regular TC credential files.
    pub tc_cred_crc: u32,
    /// Version and build date; never key on it.
    pub station: JsonStr<'a>,
    /// Platform (`linux`, `rpi`, `corecell`, ...).
    pub model: JsonStr<'a>,
    /// Trimmed `version.txt` (`null` when missing).
    pub package: Option<JsonStr<'a>>,
    /// CRC32 of each raw `sig-N.key` it holds.
    pub keys: heapless::Vec<u32, MAX_KEYS>,
}
