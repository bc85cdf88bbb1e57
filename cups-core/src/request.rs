//! The station's `POST /update-info` JSON body: decoded without allocation (strings borrow
//! from the input), encoded byte-exact as the station writes it, plus the station's HTTP head.
//!
//! # Decoding ([`UpdateInfo::decode`])
//!
//! A single forward pass of a small `Reader` cursor over the body; no allocation, no
//! recursion. What it accepts:
//!
//! | input | policy |
//! |---|---|
//! | field order | any |
//! | unknown fields | skipped, whatever their JSON value, nested up to [`MAX_SKIP_DEPTH`] levels; the skipped text is still checked to be JSON |
//! | a known field twice | [`RequestErrorKind::DuplicateField`] (unknown duplicates are not tracked) |
//! | `router`, `cupsCredCrc`, `tcCredCrc` | **required** ([`RequestErrorKind::MissingField`]) |
//! | `cupsUri`, `tcUri`, `package` | string or `null`; missing = `null` (`None`) |
//! | `station`, `model` | string (not `null`); missing = `""` — informational only, never key on them |
//! | `keys` | array of u32, at most [`MAX_KEYS`]; missing = `[]` |
//! | `router` | a plain string parsed by [`Eui64::parse`] (any form the station accepts); an escaped router is refused (the station never escapes it) |
//! | CRCs and keys | JSON integers `0..=u32::MAX`: no sign, fraction, exponent or leading zero |
//! | whitespace | JSON whitespace (space, tab, CR, LF) between any tokens, before and after the object |
//! | encoding | the body must be UTF-8, as JSON requires (checked first, in one fast pass: an invalid byte anywhere is [`RequestErrorKind::InvalidUtf8`]) |
//! | strings | escapes `\" \\ \/ \b \f \n \r \t \uXXXX` (surrogates only as pairs); raw control characters refused |
//! | lengths | body ≤ [`MAX_BODY_LEN`]; the *unescaped* UTF-8 length of `cupsUri`/`tcUri` ≤ [`MAX_URI_LEN`], `station` ≤ [`MAX_STATION_LEN`], `model` ≤ [`MAX_MODEL_LEN`], `package` ≤ [`MAX_PACKAGE_LEN`] |
//! | not accepted | comments (the station's own JSON reader allows `/* */`, but it never writes them), trailing commas, anything after the object |
//!
//! Every error carries the byte offset where it was found ([`RequestError::offset`]).
//!
//! # Encoding ([`UpdateInfo::encode`], [`UpdateInfo::encode_to`])
//!
//! Exactly the station's bytes (`src/cups.c:227-246` with the `uj` encoder of `src/uj.c`):
//! compact, fixed field order, `null` for `None`, `router` in ID6, no trailing newline.
//! Strings decoded from a body are written back **raw** (escapes as received); strings made
//! with [`JsonStr::from_plain`] are escaped as the station's `uj_encStr` does: `\"`, `\\`,
//! `\b \f \n \r \t`, other control bytes as `\u00XX` (uppercase hex), everything else
//! (including `/`, DEL and non-ASCII UTF-8) verbatim.
//!
//! Anything decoded here re-encodes within [`MAX_ENCODED_LEN`] ≤ [`MAX_BODY_LEN`] bytes, and
//! decodes again to an equal [`UpdateInfo`].

use core::convert::Infallible;
use core::fmt;

use crate::eui::{Eui64, EuiError, ID6_MAX_LEN};

/// Largest request body the station sends (its CUPS buffer, `CUPS_BUFSZ`).
pub const MAX_BODY_LEN: usize = 8192;
/// Longest URI the station holds (`MAX_URI_LEN` 128 including the NUL).
pub const MAX_URI_LEN: usize = 127;
/// Most `sig-N.key` CRCs accepted in `keys`.
pub const MAX_KEYS: usize = 16;
/// Longest `station` value (unescaped UTF-8 bytes). The station sends `CFG_version " "
/// CFG_bdate`, about 40 bytes.
pub const MAX_STATION_LEN: usize = 256;
/// Longest `model` value (unescaped UTF-8 bytes). The station sends its `CFG_platform`
/// (`linux`, `rpi`, `corecell`, ...).
pub const MAX_MODEL_LEN: usize = 64;
/// Longest `package` value (unescaped UTF-8 bytes): the trimmed content of `version.txt`.
pub const MAX_PACKAGE_LEN: usize = 256;
/// Deepest nesting of objects/arrays inside the value of an unknown field.
pub const MAX_SKIP_DEPTH: usize = 32;
/// Most bytes one unescaped byte takes in JSON string text (`\u0000`).
pub const MAX_ESCAPE_EXPANSION: usize = 6;
/// Decimal digits of `u32::MAX`.
pub const U32_MAX_DIGITS: usize = 10;

/// The encoding with every value left out; values are inserted after each `:`.
const SKELETON: &[u8] = br#"{"router":,"cupsUri":,"tcUri":,"cupsCredCrc":,"tcCredCrc":,"station":,"model":,"package":,"keys":[]}"#;

/// Longest JSON string (with its quotes) whose unescaped length is at most `max`.
const fn max_json_string(max: usize) -> usize {
    MAX_ESCAPE_EXPANSION.saturating_mul(max).saturating_add(2)
}

/// Longest encoding of an [`UpdateInfo`] within the decode limits (what
/// [`UpdateInfo::check_limits`] accepts). Never more than [`MAX_BODY_LEN`].
pub const MAX_ENCODED_LEN: usize = SKELETON.len()
    + (2 + ID6_MAX_LEN)
    + 2 * max_json_string(MAX_URI_LEN)
    + 2 * U32_MAX_DIGITS
    + max_json_string(MAX_STATION_LEN)
    + max_json_string(MAX_MODEL_LEN)
    + max_json_string(MAX_PACKAGE_LEN)
    + MAX_KEYS * (U32_MAX_DIGITS + 1);

const _: () = assert!(MAX_ENCODED_LEN <= MAX_BODY_LEN);

/// Width of the station's `Content-Length` template (`00000`): unused digits become spaces.
pub const CONTENT_LENGTH_WIDTH: usize = 5;
/// Largest `Content-Length` the station's 5-digit template can hold.
pub const MAX_STATION_CONTENT_LEN: usize = 99_999;
/// The request line the station sends.
pub const REQUEST_LINE: &str = "POST /update-info HTTP/1.1\r\n";

const HEAD_HOST: &[u8] = b"Host: ";
const HEAD_AFTER_HOST: &[u8] = b"\r\nContent-Type: application/json\r\nContent-Length: ";
const CRLF: &[u8] = b"\r\n";

// ---------------------------------------------------------------------------------------------
// Fields and errors
// ---------------------------------------------------------------------------------------------

/// A field of the request body, in the station's order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Field {
    /// `router`
    Router,
    /// `cupsUri`
    CupsUri,
    /// `tcUri`
    TcUri,
    /// `cupsCredCrc`
    CupsCredCrc,
    /// `tcCredCrc`
    TcCredCrc,
    /// `station`
    Station,
    /// `model`
    Model,
    /// `package`
    Package,
    /// `keys`
    Keys,
}

impl Field {
    /// All fields, in the station's order.
    pub const ALL: [Field; 9] = [
        Field::Router,
        Field::CupsUri,
        Field::TcUri,
        Field::CupsCredCrc,
        Field::TcCredCrc,
        Field::Station,
        Field::Model,
        Field::Package,
        Field::Keys,
    ];

    /// The JSON name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Field::Router => "router",
            Field::CupsUri => "cupsUri",
            Field::TcUri => "tcUri",
            Field::CupsCredCrc => "cupsCredCrc",
            Field::TcCredCrc => "tcCredCrc",
            Field::Station => "station",
            Field::Model => "model",
            Field::Package => "package",
            Field::Keys => "keys",
        }
    }

    /// The limit on the unescaped length of a string field.
    #[must_use]
    pub const fn max_len(self) -> Option<usize> {
        match self {
            Field::CupsUri | Field::TcUri => Some(MAX_URI_LEN),
            Field::Station => Some(MAX_STATION_LEN),
            Field::Model => Some(MAX_MODEL_LEN),
            Field::Package => Some(MAX_PACKAGE_LEN),
            Field::Router | Field::CupsCredCrc | Field::TcCredCrc | Field::Keys => None,
        }
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }

    fn from_name(name: &[u8]) -> Option<Field> {
        Some(match name {
            b"router" => Field::Router,
            b"cupsUri" => Field::CupsUri,
            b"tcUri" => Field::TcUri,
            b"cupsCredCrc" => Field::CupsCredCrc,
            b"tcCredCrc" => Field::TcCredCrc,
            b"station" => Field::Station,
            b"model" => Field::Model,
            b"package" => Field::Package,
            b"keys" => Field::Keys,
            _ => return None,
        })
    }

    fn from_key(key: &JsonStr<'_>) -> Option<Field> {
        match key.as_plain() {
            Some(plain) => Field::from_name(plain.as_bytes()),
            None => Field::ALL.into_iter().find(|f| key.eq_str(f.name())),
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What went wrong while decoding a request body (see [`RequestError`] for the offset).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum RequestErrorKind {
    /// The body is longer than [`MAX_BODY_LEN`] (offset: [`MAX_BODY_LEN`]).
    BodyTooLong {
        /// Body length.
        len: usize,
    },
    /// The body ends inside the JSON value (offset: the body length).
    UnexpectedEnd,
    /// The body does not start with `{`.
    ExpectedObject,
    /// Expected a `"` starting an object key.
    ExpectedKey,
    /// Expected `:` after an object key.
    ExpectedColon,
    /// Expected `,` or `}` after an object member.
    ExpectedCommaOrObjectEnd,
    /// Expected `,` or `]` after an array element.
    ExpectedCommaOrArrayEnd,
    /// No JSON value starts here.
    ExpectedValue,
    /// A misspelled `true`, `false` or `null`.
    InvalidLiteral,
    /// Bytes after the closing `}` (other than whitespace).
    TrailingData,
    /// An unknown field's value nests deeper than [`MAX_SKIP_DEPTH`].
    NestingTooDeep,
    /// A raw control character (below U+0020) inside a string.
    ControlCharInString,
    /// A backslash followed by something other than `" \ / b f n r t u`.
    InvalidEscape,
    /// `\u` not followed by four hex digits.
    InvalidUnicodeEscape,
    /// A `\uD800`–`\uDFFF` escape that is not a high+low surrogate pair.
    LoneSurrogate,
    /// The body is not valid UTF-8 (offset: the first invalid byte).
    InvalidUtf8,
    /// A malformed JSON number (in a skipped value).
    InvalidNumber,
    /// A CRC or key is negative.
    NegativeNumber,
    /// A number has a leading zero (`012`).
    LeadingZero,
    /// A CRC or key has a fraction (`1.0`).
    FractionNotAllowed,
    /// A CRC or key has an exponent (`1e3`).
    ExponentNotAllowed,
    /// A CRC or key is above `u32::MAX` (offset: its first digit).
    NumberTooLarge,
    /// The field needs a string (or `null` for `cupsUri`, `tcUri`, `package`).
    ExpectedString {
        /// The field.
        field: Field,
    },
    /// The field (or a `keys` element) needs an integer.
    ExpectedInteger {
        /// The field.
        field: Field,
    },
    /// The field needs an array.
    ExpectedArray {
        /// The field.
        field: Field,
    },
    /// A known field appears twice (offset: the second key).
    DuplicateField {
        /// The field.
        field: Field,
    },
    /// A required field is missing (offset: the closing `}`).
    MissingField {
        /// The field.
        field: Field,
    },
    /// A string field is longer than its limit (offset: the string's first byte).
    StringTooLong {
        /// The field.
        field: Field,
        /// Its unescaped UTF-8 length.
        len: usize,
        /// The limit ([`Field::max_len`]).
        max: usize,
    },
    /// `keys` has more than [`MAX_KEYS`] elements (offset: the first one too many).
    TooManyKeys,
    /// `router` is not an EUI (offset: the string's first byte; the [`EuiError`] offsets are
    /// relative to it).
    InvalidRouter(EuiError),
}

impl fmt::Display for RequestErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BodyTooLong { len } => {
                write!(f, "body of {len} bytes is longer than {MAX_BODY_LEN}")
            }
            Self::UnexpectedEnd => f.write_str("unexpected end of body"),
            Self::ExpectedObject => f.write_str("expected a JSON object"),
            Self::ExpectedKey => f.write_str("expected an object key"),
            Self::ExpectedColon => f.write_str("expected ':'"),
            Self::ExpectedCommaOrObjectEnd => f.write_str("expected ',' or '}'"),
            Self::ExpectedCommaOrArrayEnd => f.write_str("expected ',' or ']'"),
            Self::ExpectedValue => f.write_str("expected a JSON value"),
            Self::InvalidLiteral => f.write_str("invalid literal"),
            Self::TrailingData => f.write_str("data after the JSON object"),
            Self::NestingTooDeep => {
                write!(
                    f,
                    "unknown value nested deeper than {MAX_SKIP_DEPTH} levels"
                )
            }
            Self::ControlCharInString => f.write_str("raw control character in string"),
            Self::InvalidEscape => f.write_str("invalid escape in string"),
            Self::InvalidUnicodeEscape => f.write_str("invalid \\u escape"),
            Self::LoneSurrogate => f.write_str("unpaired UTF-16 surrogate escape"),
            Self::InvalidUtf8 => f.write_str("body is not valid UTF-8"),
            Self::InvalidNumber => f.write_str("invalid number"),
            Self::NegativeNumber => f.write_str("negative number"),
            Self::LeadingZero => f.write_str("number with a leading zero"),
            Self::FractionNotAllowed => f.write_str("fraction in an integer"),
            Self::ExponentNotAllowed => f.write_str("exponent in an integer"),
            Self::NumberTooLarge => f.write_str("integer above u32::MAX"),
            Self::ExpectedString { field } => write!(f, "'{field}' must be a string"),
            Self::ExpectedInteger { field } => write!(f, "'{field}' must hold integers"),
            Self::ExpectedArray { field } => write!(f, "'{field}' must be an array"),
            Self::DuplicateField { field } => write!(f, "'{field}' appears twice"),
            Self::MissingField { field } => write!(f, "'{field}' is missing"),
            Self::StringTooLong { field, len, max } => {
                write!(f, "'{field}' is {len} bytes long, more than {max}")
            }
            Self::TooManyKeys => write!(f, "more than {MAX_KEYS} keys"),
            Self::InvalidRouter(e) => write!(f, "invalid router: {e}"),
        }
    }
}

/// A request body could not be decoded: what ([`kind`](Self::kind)) and where
/// ([`offset`](Self::offset), a byte offset into the body).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RequestError {
    kind: RequestErrorKind,
    at: usize,
}

impl RequestError {
    /// An error of `kind` at byte offset `at`.
    #[must_use]
    pub const fn new(kind: RequestErrorKind, at: usize) -> Self {
        Self { kind, at }
    }

    /// What went wrong.
    #[must_use]
    pub const fn kind(&self) -> RequestErrorKind {
        self.kind
    }

    /// Byte offset into the body.
    #[must_use]
    pub const fn offset(&self) -> usize {
        self.at
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.at)
    }
}

impl core::error::Error for RequestError {}

/// A request body could not be encoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum RequestEncodeError {
    /// The output buffer is shorter than the encoding.
    BufferTooSmall {
        /// Bytes the encoding needs ([`UpdateInfo::encoded_len`]).
        needed: usize,
    },
}

impl fmt::Display for RequestEncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall { needed } => {
                write!(f, "output buffer too small: {needed} bytes needed")
            }
        }
    }
}

impl core::error::Error for RequestEncodeError {}

/// The station's HTTP head could not be written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum HeadError {
    /// The output buffer is shorter than the head.
    BufferTooSmall {
        /// Bytes the head needs ([`station_head_len`]).
        needed: usize,
    },
    /// The body length does not fit the 5-digit template ([`MAX_STATION_CONTENT_LEN`]).
    ContentTooLong {
        /// The body length.
        len: usize,
    },
    /// `host:port` is empty or has a byte outside visible ASCII (`0x21..=0x7E`).
    InvalidHost {
        /// Offset of the byte (0 when empty).
        at: usize,
    },
    /// `host:port` is longer than [`MAX_URI_LEN`].
    HostTooLong {
        /// Its length.
        len: usize,
    },
    /// The auth lines are not complete `Name: value\r\n` header lines.
    InvalidAuthLines {
        /// Offset of the offending byte.
        at: usize,
    },
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall { needed } => {
                write!(f, "output buffer too small: {needed} bytes needed")
            }
            Self::ContentTooLong { len } => write!(
                f,
                "content length {len} does not fit the station's template (max {MAX_STATION_CONTENT_LEN})"
            ),
            Self::InvalidHost { at } => write!(f, "invalid host:port at byte {at}"),
            Self::HostTooLong { len } => {
                write!(f, "host:port of {len} bytes is longer than {MAX_URI_LEN}")
            }
            Self::InvalidAuthLines { at } => write!(f, "invalid auth header lines at byte {at}"),
        }
    }
}

impl core::error::Error for HeadError {}

// ---------------------------------------------------------------------------------------------
// JsonStr
// ---------------------------------------------------------------------------------------------

/// How a [`JsonStr`] holds its text. Word-sized: `JsonStr` pads to three words anyway, and a
/// one-byte tag copied as a word stalls store forwarding on the decode hot path.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(usize)]
enum Form {
    /// The text is both the JSON string content and its value: no backslash, and nothing the
    /// station would escape.
    Verbatim,
    /// Validated JSON string content with at least one escape.
    Escaped,
    /// Plain text with bytes that need escaping when encoded.
    Plain,
}

/// A JSON string value, held without copying in one of two ways:
///
/// * **decoded** from a body ([`UpdateInfo::decode`]): the raw text between the quotes,
///   escapes kept and already validated; re-encoding writes it back unchanged;
/// * **plain** text to be sent ([`JsonStr::from_plain`]): escaped on encoding the way the
///   station escapes.
///
/// Either way, [`unescaped`](Self::unescaped), [`eq_str`](Self::eq_str), `Display` and `==`
/// work on the *value* (so a decoded `"a\/b"` equals `from_plain("a/b")`);
/// [`as_plain`](Self::as_plain) gives the value as a `&str` when no unescaping is needed, and
/// [`raw`](Self::raw) the JSON text when it exists in memory. With the `alloc` feature,
/// `to_string()` (from `Display`) gives the unescaped value.
#[derive(Clone, Copy, Debug)]
pub struct JsonStr<'a> {
    text: &'a str,
    form: Form,
}

/// Bytes the station escapes in a string (`uj_encStr`).
#[inline]
const fn needs_escape(c: u8) -> bool {
    c == b'"' || c == b'\\' || c < 0x20
}

impl<'a> JsonStr<'a> {
    /// A plain-text value, escaped on encoding as the station does.
    #[must_use]
    pub fn from_plain(text: &'a str) -> Self {
        let form = if text.bytes().any(needs_escape) {
            Form::Plain
        } else {
            Form::Verbatim
        };
        Self { text, form }
    }

    /// The empty string.
    #[must_use]
    pub const fn empty() -> Self {
        Self {
            text: "",
            form: Form::Verbatim,
        }
    }

    /// The raw JSON text between the quotes (escapes not resolved), as decoded or as it will
    /// be encoded; `None` for a [`from_plain`](Self::from_plain) value that needs escaping
    /// (its JSON text does not exist in memory; see [`escaped_len`](Self::escaped_len)).
    #[must_use]
    pub fn raw(&self) -> Option<&'a str> {
        match self.form {
            Form::Verbatim | Form::Escaped => Some(self.text),
            Form::Plain => None,
        }
    }

    /// The value as a `&str` when that needs no unescaping (always for plain values, and for
    /// decoded strings without escapes — everything a station sends).
    #[must_use]
    pub fn as_plain(&self) -> Option<&'a str> {
        match self.form {
            Form::Verbatim | Form::Plain => Some(self.text),
            Form::Escaped => None,
        }
    }

    /// The value's characters, escapes resolved.
    #[must_use]
    pub fn unescaped(&self) -> Unescaped<'a> {
        Unescaped {
            rest: self.text,
            escaped: self.form == Form::Escaped,
        }
    }

    /// Whether the value equals `s`.
    #[must_use]
    pub fn eq_str(&self, s: &str) -> bool {
        match self.as_plain() {
            Some(p) => p == s,
            None => self.unescaped().eq(s.chars()),
        }
    }

    /// Whether the value is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Length of the value in UTF-8 bytes (escapes resolved).
    #[must_use]
    pub fn unescaped_len(&self) -> usize {
        match self.as_plain() {
            Some(p) => p.len(),
            None => self
                .unescaped()
                .map(char::len_utf8)
                .fold(0, usize::saturating_add),
        }
    }

    /// Length of the JSON text between the quotes as [`UpdateInfo::encode`] writes it.
    #[must_use]
    pub fn escaped_len(&self) -> usize {
        match self.form {
            Form::Verbatim | Form::Escaped => self.text.len(),
            Form::Plain => self
                .text
                .bytes()
                .map(escaped_width)
                .fold(0, usize::saturating_add),
        }
    }

    /// Write the JSON text between the quotes.
    fn write_content<S: Sink>(&self, s: &mut S) -> Result<(), S::Error> {
        match self.form {
            Form::Verbatim | Form::Escaped => s.put(self.text.as_bytes()),
            Form::Plain => {
                let bytes = self.text.as_bytes();
                let mut rest = bytes;
                while let Some(i) = rest.iter().position(|&c| needs_escape(c)) {
                    let (run, tail) = rest.split_at_checked(i).unwrap_or((rest, &[]));
                    s.put(run)?;
                    let Some((&c, tail)) = tail.split_first() else {
                        break;
                    };
                    s.put(escape_sequence(c).as_bytes())?;
                    rest = tail;
                }
                s.put(rest)
            }
        }
    }

    /// Write the value as a quoted JSON string.
    fn write_json<S: Sink>(&self, s: &mut S) -> Result<(), S::Error> {
        s.put(b"\"")?;
        self.write_content(s)?;
        s.put(b"\"")
    }
}

impl PartialEq for JsonStr<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self.as_plain(), other.as_plain()) {
            (Some(a), Some(b)) => a == b,
            _ => self.unescaped().eq(other.unescaped()),
        }
    }
}

impl Eq for JsonStr<'_> {}

impl fmt::Display for JsonStr<'_> {
    /// The unescaped value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_plain() {
            Some(p) => f.write_str(p),
            None => self
                .unescaped()
                .try_for_each(|c| fmt::Write::write_char(f, c)),
        }
    }
}

impl Default for JsonStr<'_> {
    fn default() -> Self {
        Self::empty()
    }
}

/// An escape sequence for a byte the station escapes (see [`needs_escape`]).
struct EscapeSeq {
    buf: [u8; MAX_ESCAPE_EXPANSION],
    len: usize,
}

impl EscapeSeq {
    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";

fn escape_sequence(c: u8) -> EscapeSeq {
    let short = match c {
        b'"' => Some(b'"'),
        b'\\' => Some(b'\\'),
        0x08 => Some(b'b'),
        0x0C => Some(b'f'),
        b'\n' => Some(b'n'),
        b'\r' => Some(b'r'),
        b'\t' => Some(b't'),
        _ => None,
    };
    match short {
        Some(e) => EscapeSeq {
            buf: [b'\\', e, 0, 0, 0, 0],
            len: 2,
        },
        None => {
            let hi = UPPER_HEX.get(usize::from(c >> 4)).copied().unwrap_or(b'0');
            let lo = UPPER_HEX.get(usize::from(c & 0xF)).copied().unwrap_or(b'0');
            EscapeSeq {
                buf: [b'\\', b'u', b'0', b'0', hi, lo],
                len: 6,
            }
        }
    }
}

/// Bytes the station writes for one byte of a plain string.
const fn escaped_width(c: u8) -> usize {
    match c {
        b'"' | b'\\' | 0x08 | 0x0C | b'\n' | b'\r' | b'\t' => 2,
        0..0x20 => MAX_ESCAPE_EXPANSION,
        _ => 1,
    }
}

/// Iterator over the characters of a [`JsonStr`] value (see [`JsonStr::unescaped`]).
#[derive(Clone, Debug)]
pub struct Unescaped<'a> {
    rest: &'a str,
    escaped: bool,
}

fn hex4(b: Option<&[u8]>) -> Option<u32> {
    let b = b?;
    if b.len() != 4 {
        return None;
    }
    b.iter().try_fold(0u32, |acc, &c| {
        let d = char::from(c).to_digit(16)?;
        Some((acc << 4) | d)
    })
}

const fn is_high_surrogate(u: u32) -> bool {
    matches!(u, 0xD800..=0xDBFF)
}

const fn is_low_surrogate(u: u32) -> bool {
    matches!(u, 0xDC00..=0xDFFF)
}

/// Combine a surrogate pair into a scalar value.
fn combine_surrogates(hi: u32, lo: u32) -> Option<char> {
    let v = hi.checked_sub(0xD800)?.checked_shl(10)?;
    let v = v
        .checked_add(lo.checked_sub(0xDC00)?)?
        .checked_add(0x1_0000)?;
    char::from_u32(v)
}

impl Iterator for Unescaped<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        let mut chars = self.rest.chars();
        let c = chars.next()?;
        if !(self.escaped && c == '\\') {
            self.rest = chars.as_str();
            return Some(c);
        }
        // Validated at decode time; anything malformed here yields U+FFFD, never a panic.
        let b = self.rest.as_bytes();
        let (ch, used) = match b.get(1) {
            Some(b'"') => ('"', 2),
            Some(b'\\') => ('\\', 2),
            Some(b'/') => ('/', 2),
            Some(b'b') => ('\u{8}', 2),
            Some(b'f') => ('\u{c}', 2),
            Some(b'n') => ('\n', 2),
            Some(b'r') => ('\r', 2),
            Some(b't') => ('\t', 2),
            Some(b'u') => match hex4(b.get(2..6)) {
                Some(hi) if is_high_surrogate(hi) => match (b.get(6..8), hex4(b.get(8..12))) {
                    (Some(b"\\u"), Some(lo)) if is_low_surrogate(lo) => (
                        combine_surrogates(hi, lo).unwrap_or(char::REPLACEMENT_CHARACTER),
                        12,
                    ),
                    _ => (char::REPLACEMENT_CHARACTER, 6),
                },
                Some(u) => (char::from_u32(u).unwrap_or(char::REPLACEMENT_CHARACTER), 6),
                None => (char::REPLACEMENT_CHARACTER, 2),
            },
            _ => (char::REPLACEMENT_CHARACTER, 1),
        };
        self.rest = self.rest.get(used..).unwrap_or_default();
        Some(ch)
    }
}

// ---------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------

/// A failed read; the error itself is in [`Reader::error`]. Keeping the error out of the hot
/// `Result`s keeps them register-sized.
struct Fail;

/// Result of one reader step.
type Step<T> = Result<T, Fail>;

/// One scanned JSON string.
#[derive(Clone, Copy)]
struct Scanned<'a> {
    value: JsonStr<'a>,
    /// Offset of the first byte after the opening quote.
    start: usize,
    /// Unescaped UTF-8 length.
    len: usize,
}

/// A cursor over the body. `pos <= buf.len() <= MAX_BODY_LEN`, so offsets never overflow.
struct Reader<'a> {
    /// The whole body, already checked to be UTF-8.
    text: &'a str,
    /// `text` as bytes.
    buf: &'a [u8],
    pos: usize,
    /// Set by the `fail*` methods.
    error: RequestError,
}

impl<'a> Reader<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    #[inline]
    fn bump(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n);
    }

    #[cold]
    #[inline(never)]
    fn fail(&mut self, kind: RequestErrorKind, at: usize) -> Fail {
        self.error = RequestError { kind, at };
        Fail
    }

    /// `kind` at the current byte, or `UnexpectedEnd` at the end of the body.
    #[cold]
    #[inline(never)]
    fn fail_here(&mut self, kind: RequestErrorKind) -> Fail {
        if self.pos >= self.buf.len() {
            self.fail(RequestErrorKind::UnexpectedEnd, self.buf.len())
        } else {
            self.fail(kind, self.pos)
        }
    }

    #[cold]
    #[inline(never)]
    fn fail_end(&mut self) -> Fail {
        self.fail(RequestErrorKind::UnexpectedEnd, self.buf.len())
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.bump(1);
        }
    }

    /// `text[start..end]` (both ends are next to ASCII delimiters, so always char boundaries).
    #[inline]
    fn slice(&mut self, start: usize, end: usize) -> Step<&'a str> {
        let text = self.text;
        match text.get(start..end) {
            Some(s) => Ok(s),
            None => Err(self.fail(RequestErrorKind::InvalidUtf8, start)),
        }
    }

    /// A string; the cursor is on its opening quote. The common case (no escape) is one scan.
    #[inline]
    fn string(&mut self) -> Step<Scanned<'a>> {
        let start = self.pos.saturating_add(1);
        let rest = self.buf.get(start..).unwrap_or_default();
        match rest.iter().position(|&c| needs_escape(c)) {
            Some(n) if rest.get(n) == Some(&b'"') => {
                let end = start.saturating_add(n);
                let text = self.slice(start, end)?;
                self.pos = end.saturating_add(1);
                Ok(Scanned {
                    value: JsonStr {
                        text,
                        form: Form::Verbatim,
                    },
                    start,
                    len: n,
                })
            }
            _ => self.string_slow(start),
        }
    }

    /// A string with escapes, a control character or no end.
    #[inline(never)]
    fn string_slow(&mut self, start: usize) -> Step<Scanned<'a>> {
        let mut i = start;
        let mut shrink = 0usize;
        let mut escaped = false;
        loop {
            let rest = self.buf.get(i..).unwrap_or_default();
            let Some(n) = rest.iter().position(|&c| needs_escape(c)) else {
                return Err(self.fail_end());
            };
            i = i.saturating_add(n);
            match self.buf.get(i) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    let (raw, out) = match self.escape(i) {
                        Ok(v) => v,
                        Err(e) => return Err(self.fail(e.kind, e.at)),
                    };
                    i = i.saturating_add(raw);
                    shrink = shrink.saturating_add(raw.saturating_sub(out));
                }
                Some(_) => return Err(self.fail(RequestErrorKind::ControlCharInString, i)),
                None => return Err(self.fail_end()),
            }
        }
        let text = self.slice(start, i)?;
        self.pos = i.saturating_add(1);
        let form = if escaped {
            Form::Escaped
        } else {
            Form::Verbatim
        };
        Ok(Scanned {
            value: JsonStr { text, form },
            start,
            len: text.len().saturating_sub(shrink),
        })
    }

    /// Validate the escape whose backslash is at `i`: (raw bytes, unescaped UTF-8 bytes).
    fn escape(&self, i: usize) -> Result<(usize, usize), RequestError> {
        let at = |k: usize| i.saturating_add(k);
        let err = |kind| RequestError::new(kind, i);
        let end = RequestError::new(RequestErrorKind::UnexpectedEnd, self.buf.len());
        match self.buf.get(at(1)) {
            None => Err(end),
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok((2, 1)),
            Some(b'u') => {
                let u = self.hex4_at(at(2), i)?;
                if is_low_surrogate(u) {
                    return Err(err(RequestErrorKind::LoneSurrogate));
                }
                if !is_high_surrogate(u) {
                    let out = if u < 0x80 {
                        1
                    } else if u < 0x800 {
                        2
                    } else {
                        3
                    };
                    return Ok((6, out));
                }
                match (self.buf.get(at(6)), self.buf.get(at(7))) {
                    (Some(b'\\'), Some(b'u')) => {}
                    (None, _) | (Some(b'\\'), None) => return Err(end),
                    _ => return Err(err(RequestErrorKind::LoneSurrogate)),
                }
                let lo = self.hex4_at(at(8), at(6))?;
                if !is_low_surrogate(lo) {
                    return Err(err(RequestErrorKind::LoneSurrogate));
                }
                Ok((12, 4))
            }
            Some(_) => Err(err(RequestErrorKind::InvalidEscape)),
        }
    }

    /// Four hex digits at `from`; errors point at `esc` (the escape's backslash).
    fn hex4_at(&self, from: usize, esc: usize) -> Result<u32, RequestError> {
        let mut v = 0u32;
        for k in 0..4 {
            let Some(&c) = self.buf.get(from.saturating_add(k)) else {
                return Err(RequestError::new(
                    RequestErrorKind::UnexpectedEnd,
                    self.buf.len(),
                ));
            };
            let Some(d) = char::from(c).to_digit(16) else {
                return Err(RequestError::new(
                    RequestErrorKind::InvalidUnicodeEscape,
                    esc,
                ));
            };
            v = (v << 4) | d;
        }
        Ok(v)
    }

    /// The literal `lit`; the cursor is on its first byte.
    fn literal(&mut self, lit: &[u8]) -> Step<()> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        if rest.starts_with(lit) {
            self.bump(lit.len());
            Ok(())
        } else if lit.starts_with(rest) {
            Err(self.fail_end())
        } else {
            Err(self.fail(RequestErrorKind::InvalidLiteral, self.pos))
        }
    }

    #[inline]
    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.bump(1);
        }
        self.pos.saturating_sub(start)
    }

    /// A u32 value of `field` (a JSON integer without sign, fraction, exponent or leading
    /// zero).
    #[inline]
    fn u32(&mut self, field: Field) -> Step<u32> {
        let start = self.pos;
        let first = match self.peek() {
            Some(c @ b'0'..=b'9') => c,
            Some(b'-') => return Err(self.fail(RequestErrorKind::NegativeNumber, start)),
            _ => return Err(self.fail_here(RequestErrorKind::ExpectedInteger { field })),
        };
        self.bump(1);
        let mut v = u32::from(first.wrapping_sub(b'0'));
        if first == b'0' {
            if let Some(b'0'..=b'9') = self.peek() {
                return Err(self.fail(RequestErrorKind::LeadingZero, start));
            }
        } else {
            while let Some(c @ b'0'..=b'9') = self.peek() {
                let next = v
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u32::from(c.wrapping_sub(b'0'))));
                match next {
                    Some(n) => v = n,
                    None => return Err(self.fail(RequestErrorKind::NumberTooLarge, start)),
                }
                self.bump(1);
            }
        }
        match self.peek() {
            Some(b'.') => Err(self.fail(RequestErrorKind::FractionNotAllowed, self.pos)),
            Some(b'e' | b'E') => Err(self.fail(RequestErrorKind::ExponentNotAllowed, self.pos)),
            _ => Ok(v),
        }
    }

    /// Any JSON number (for skipped values).
    fn skip_number(&mut self) -> Step<()> {
        if self.peek() == Some(b'-') {
            self.bump(1);
        }
        let start = self.pos;
        match self.peek() {
            Some(b'0') => {
                self.bump(1);
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.fail(RequestErrorKind::LeadingZero, start));
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.fail_here(RequestErrorKind::InvalidNumber)),
        }
        if self.peek() == Some(b'.') {
            self.bump(1);
            if self.digits() == 0 {
                return Err(self.fail_here(RequestErrorKind::InvalidNumber));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.bump(1);
            if let Some(b'+' | b'-') = self.peek() {
                self.bump(1);
            }
            if self.digits() == 0 {
                return Err(self.fail_here(RequestErrorKind::InvalidNumber));
            }
        }
        Ok(())
    }

    /// An object key and its colon, then whitespace; the cursor is on the key's quote.
    /// Returns the known field the key names, if any (only that leaves the function: a small
    /// return value keeps the hot loop free of struct copies).
    #[inline]
    fn key_colon(&mut self) -> Step<Option<Field>> {
        if self.peek() != Some(b'"') {
            return Err(self.fail_here(RequestErrorKind::ExpectedKey));
        }
        let key = self.string()?;
        self.skip_ws();
        if self.peek() != Some(b':') {
            return Err(self.fail_here(RequestErrorKind::ExpectedColon));
        }
        self.bump(1);
        self.skip_ws();
        Ok(Field::from_key(&key.value))
    }

    /// Skip any JSON value, iteratively, nesting at most [`MAX_SKIP_DEPTH`] levels; the
    /// cursor is on the value's first byte.
    fn skip_value(&mut self) -> Step<()> {
        // is_array[d]: whether nesting level d is an array (else an object).
        let mut is_array = [false; MAX_SKIP_DEPTH];
        let mut depth = 0usize;
        'value: loop {
            match self.peek() {
                Some(b'"') => {
                    self.string()?;
                }
                Some(b'-' | b'0'..=b'9') => self.skip_number()?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(open @ (b'{' | b'[')) => {
                    let array = open == b'[';
                    let Some(slot) = is_array.get_mut(depth) else {
                        return Err(self.fail(RequestErrorKind::NestingTooDeep, self.pos));
                    };
                    *slot = array;
                    depth = depth.saturating_add(1);
                    self.bump(1);
                    self.skip_ws();
                    let close = if array { b']' } else { b'}' };
                    if self.peek() == Some(close) {
                        self.bump(1);
                        depth = depth.saturating_sub(1);
                    } else {
                        if !array {
                            self.key_colon()?;
                        }
                        continue 'value;
                    }
                }
                _ => return Err(self.fail_here(RequestErrorKind::ExpectedValue)),
            }
            // After a complete value: close containers or move to the next element.
            loop {
                let Some(level) = depth.checked_sub(1) else {
                    return Ok(());
                };
                let array = is_array.get(level).copied().unwrap_or(false);
                self.skip_ws();
                match self.peek() {
                    Some(b',') => {
                        self.bump(1);
                        self.skip_ws();
                        if !array {
                            self.key_colon()?;
                        }
                        continue 'value;
                    }
                    Some(b']') if array => {
                        self.bump(1);
                        depth = level;
                    }
                    Some(b'}') if !array => {
                        self.bump(1);
                        depth = level;
                    }
                    _ => {
                        return Err(self.fail_here(if array {
                            RequestErrorKind::ExpectedCommaOrArrayEnd
                        } else {
                            RequestErrorKind::ExpectedCommaOrObjectEnd
                        }));
                    }
                }
            }
        }
    }

    /// A string value of `field` within its length limit.
    #[inline]
    fn string_field(&mut self, field: Field) -> Step<JsonStr<'a>> {
        if self.peek() != Some(b'"') {
            return Err(self.fail_here(RequestErrorKind::ExpectedString { field }));
        }
        let s = self.string()?;
        if let Some(max) = field.max_len()
            && s.len > max
        {
            return Err(self.fail(
                RequestErrorKind::StringTooLong {
                    field,
                    len: s.len,
                    max,
                },
                s.start,
            ));
        }
        Ok(s.value)
    }

    /// A string-or-null value of `field`.
    #[inline]
    fn opt_string_field(&mut self, field: Field) -> Step<Option<JsonStr<'a>>> {
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            return Ok(None);
        }
        self.string_field(field).map(Some)
    }

    /// The `router` string.
    fn router(&mut self) -> Step<Eui64> {
        let field = Field::Router;
        if self.peek() != Some(b'"') {
            return Err(self.fail_here(RequestErrorKind::ExpectedString { field }));
        }
        let s = self.string()?;
        match Eui64::parse(s.value.text) {
            Ok(eui) => Ok(eui),
            Err(e) => Err(self.fail(RequestErrorKind::InvalidRouter(e), s.start)),
        }
    }

    /// The `keys` array.
    fn keys(&mut self, keys: &mut heapless::Vec<u32, MAX_KEYS>) -> Step<()> {
        let field = Field::Keys;
        if self.peek() != Some(b'[') {
            return Err(self.fail_here(RequestErrorKind::ExpectedArray { field }));
        }
        self.bump(1);
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.bump(1);
            return Ok(());
        }
        loop {
            let at = self.pos;
            let v = self.u32(field)?;
            if keys.push(v).is_err() {
                return Err(self.fail(RequestErrorKind::TooManyKeys, at));
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.bump(1);
                    self.skip_ws();
                }
                Some(b']') => {
                    self.bump(1);
                    return Ok(());
                }
                _ => return Err(self.fail_here(RequestErrorKind::ExpectedCommaOrArrayEnd)),
            }
        }
    }

    /// The whole body: one object, then only whitespace.
    fn update_info(&mut self) -> Step<UpdateInfo<'a>> {
        self.skip_ws();
        if self.peek() != Some(b'{') {
            return Err(self.fail_here(RequestErrorKind::ExpectedObject));
        }
        self.bump(1);
        self.skip_ws();

        let mut seen = 0u16;
        let mut router = None;
        let mut cups_uri = None;
        let mut tc_uri = None;
        let mut cups_cred_crc = None;
        let mut tc_cred_crc = None;
        let mut station = JsonStr::empty();
        let mut model = JsonStr::empty();
        let mut package = None;
        let mut keys = heapless::Vec::new();

        if self.peek() == Some(b'}') {
            self.bump(1);
        } else {
            loop {
                let key_at = self.pos;
                match self.key_colon()? {
                    None => self.skip_value()?,
                    Some(field) => {
                        if seen & field.bit() != 0 {
                            return Err(
                                self.fail(RequestErrorKind::DuplicateField { field }, key_at)
                            );
                        }
                        seen |= field.bit();
                        match field {
                            Field::Router => router = Some(self.router()?),
                            Field::CupsUri => cups_uri = self.opt_string_field(field)?,
                            Field::TcUri => tc_uri = self.opt_string_field(field)?,
                            Field::CupsCredCrc => cups_cred_crc = Some(self.u32(field)?),
                            Field::TcCredCrc => tc_cred_crc = Some(self.u32(field)?),
                            Field::Station => station = self.string_field(field)?,
                            Field::Model => model = self.string_field(field)?,
                            Field::Package => package = self.opt_string_field(field)?,
                            Field::Keys => self.keys(&mut keys)?,
                        }
                    }
                }
                self.skip_ws();
                match self.peek() {
                    Some(b',') => {
                        self.bump(1);
                        self.skip_ws();
                    }
                    Some(b'}') => {
                        self.bump(1);
                        break;
                    }
                    _ => return Err(self.fail_here(RequestErrorKind::ExpectedCommaOrObjectEnd)),
                }
            }
        }
        let close = self.pos.saturating_sub(1);
        let (Some(router), Some(cups_cred_crc), Some(tc_cred_crc)) =
            (router, cups_cred_crc, tc_cred_crc)
        else {
            let field = if router.is_none() {
                Field::Router
            } else if cups_cred_crc.is_none() {
                Field::CupsCredCrc
            } else {
                Field::TcCredCrc
            };
            return Err(self.fail(RequestErrorKind::MissingField { field }, close));
        };
        self.skip_ws();
        if self.pos != self.buf.len() {
            return Err(self.fail(RequestErrorKind::TrailingData, self.pos));
        }
        Ok(UpdateInfo {
            router,
            cups_uri,
            tc_uri,
            cups_cred_crc,
            tc_cred_crc,
            station,
            model,
            package,
            keys,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// UpdateInfo
// ---------------------------------------------------------------------------------------------

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

/// Where encoded bytes go.
trait Sink {
    type Error;
    fn put(&mut self, bytes: &[u8]) -> Result<(), Self::Error>;
}

/// Counts bytes.
struct Counter(usize);

impl Sink for Counter {
    type Error = Infallible;
    #[inline]
    fn put(&mut self, bytes: &[u8]) -> Result<(), Infallible> {
        self.0 = self.0.saturating_add(bytes.len());
        Ok(())
    }
}

/// Fills a caller's buffer; fails when it is full.
struct SliceSink<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl Sink for SliceSink<'_> {
    type Error = ();
    #[inline]
    fn put(&mut self, bytes: &[u8]) -> Result<(), ()> {
        let end = self.len.checked_add(bytes.len()).ok_or(())?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(())?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }
}

/// Adapts an [`embedded_io::Write`].
struct IoSink<'w, W>(&'w mut W);

impl<W: embedded_io::Write> Sink for IoSink<'_, W> {
    type Error = W::Error;
    #[inline]
    fn put(&mut self, bytes: &[u8]) -> Result<(), W::Error> {
        self.0.write_all(bytes)
    }
}

/// Decimal digits of `v` (no leading zeros), right-aligned in a buffer.
struct Decimal {
    buf: [u8; U32_MAX_DIGITS],
    start: usize,
}

impl Decimal {
    fn new(mut v: u32) -> Self {
        let mut buf = [b'0'; U32_MAX_DIGITS];
        let mut start = U32_MAX_DIGITS;
        while let Some(i) = start.checked_sub(1) {
            start = i;
            if let Some(slot) = buf.get_mut(i) {
                *slot = b'0'.wrapping_add((v % 10) as u8);
            }
            v /= 10;
            if v == 0 {
                break;
            }
        }
        Self { buf, start }
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }
}

fn write_opt<S: Sink>(s: &mut S, v: Option<&JsonStr<'_>>) -> Result<(), S::Error> {
    match v {
        Some(v) => v.write_json(s),
        None => s.put(b"null"),
    }
}

impl<'a> UpdateInfo<'a> {
    /// Decode a request body (see the [module documentation](self) for what is accepted).
    /// Strings borrow from `body`; nothing is allocated.
    pub fn decode(body: &'a [u8]) -> Result<UpdateInfo<'a>, RequestError> {
        if body.len() > MAX_BODY_LEN {
            return Err(RequestError::new(
                RequestErrorKind::BodyTooLong { len: body.len() },
                MAX_BODY_LEN,
            ));
        }
        let text = core::str::from_utf8(body)
            .map_err(|e| RequestError::new(RequestErrorKind::InvalidUtf8, e.valid_up_to()))?;
        let mut r = Reader {
            text,
            buf: body,
            pos: 0,
            error: RequestError::new(RequestErrorKind::UnexpectedEnd, 0),
        };
        match r.update_info() {
            Ok(info) => Ok(info),
            Err(Fail) => Err(r.error),
        }
    }

    fn emit<S: Sink>(&self, s: &mut S) -> Result<(), S::Error> {
        let mut id6 = [0u8; ID6_MAX_LEN];
        s.put(br#"{"router":""#)?;
        s.put(self.router.write_id6(&mut id6).as_bytes())?;
        s.put(br#"","cupsUri":"#)?;
        write_opt(s, self.cups_uri.as_ref())?;
        s.put(br#","tcUri":"#)?;
        write_opt(s, self.tc_uri.as_ref())?;
        s.put(br#","cupsCredCrc":"#)?;
        s.put(Decimal::new(self.cups_cred_crc).as_bytes())?;
        s.put(br#","tcCredCrc":"#)?;
        s.put(Decimal::new(self.tc_cred_crc).as_bytes())?;
        s.put(br#","station":"#)?;
        self.station.write_json(s)?;
        s.put(br#","model":"#)?;
        self.model.write_json(s)?;
        s.put(br#","package":"#)?;
        write_opt(s, self.package.as_ref())?;
        s.put(br#","keys":["#)?;
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                s.put(b",")?;
            }
            s.put(Decimal::new(*k).as_bytes())?;
        }
        s.put(b"]}")
    }

    /// Length of [`encode`](Self::encode)'s output.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        let mut c = Counter(0);
        match self.emit(&mut c) {
            Ok(()) => c.0,
            Err(never) => match never {},
        }
    }

    /// Encode exactly as the station does into `out`; returns the bytes written.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, RequestEncodeError> {
        let mut s = SliceSink { buf: out, len: 0 };
        match self.emit(&mut s) {
            Ok(()) => Ok(s.len),
            Err(()) => Err(RequestEncodeError::BufferTooSmall {
                needed: self.encoded_len(),
            }),
        }
    }

    /// Encode exactly as the station does into a writer.
    pub fn encode_to<W: embedded_io::Write>(&self, w: &mut W) -> Result<(), W::Error> {
        self.emit(&mut IoSink(w))
    }

    /// Check the string length limits [`decode`](Self::decode) enforces (values built with
    /// [`JsonStr::from_plain`] are not checked on construction). Within them, the encoding is
    /// at most [`MAX_ENCODED_LEN`] bytes.
    pub fn check_limits(&self) -> Result<(), RequestErrorKind> {
        let strings = [
            (Field::CupsUri, self.cups_uri.as_ref()),
            (Field::TcUri, self.tc_uri.as_ref()),
            (Field::Station, Some(&self.station)),
            (Field::Model, Some(&self.model)),
            (Field::Package, self.package.as_ref()),
        ];
        for (field, value) in strings {
            if let (Some(v), Some(max)) = (value, field.max_len()) {
                let len = v.unescaped_len();
                if len > max {
                    return Err(RequestErrorKind::StringTooLong { field, len, max });
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP head
// ---------------------------------------------------------------------------------------------

fn check_host(host_port: &str) -> Result<(), HeadError> {
    let b = host_port.as_bytes();
    if b.is_empty() {
        return Err(HeadError::InvalidHost { at: 0 });
    }
    if b.len() > MAX_URI_LEN {
        return Err(HeadError::HostTooLong { len: b.len() });
    }
    match b.iter().position(|c| !(0x21..=0x7E).contains(c)) {
        Some(at) => Err(HeadError::InvalidHost { at }),
        None => Ok(()),
    }
}

/// Auth lines: zero or more `Name: value\r\n` lines. Names are non-empty and have no
/// whitespace or control bytes; values have no control bytes other than tab.
fn check_auth_lines(lines: &[u8]) -> Result<(), HeadError> {
    let mut line_start = 0usize;
    let mut colon = false;
    let mut i = 0usize;
    while let Some(&c) = lines.get(i) {
        let bad = Err(HeadError::InvalidAuthLines { at: i });
        match c {
            b'\r' => {
                if lines.get(i.saturating_add(1)) != Some(&b'\n') || !colon {
                    return bad;
                }
                i = i.saturating_add(2);
                line_start = i;
                colon = false;
                continue;
            }
            b':' if !colon => {
                if i == line_start {
                    return bad;
                }
                colon = true;
            }
            b'\t' if colon => {}
            b' ' if colon => {}
            0..0x21 | 0x7F => return bad,
            _ => {}
        }
        i = i.saturating_add(1);
    }
    if line_start != lines.len() {
        return Err(HeadError::InvalidAuthLines { at: lines.len() });
    }
    Ok(())
}

/// Length of the head [`write_station_head`] writes.
#[must_use]
pub fn station_head_len(host_port: &str, auth_lines: &[u8]) -> usize {
    [
        REQUEST_LINE.len(),
        HEAD_HOST.len(),
        host_port.len(),
        HEAD_AFTER_HOST.len(),
        CONTENT_LENGTH_WIDTH,
        CRLF.len(),
        auth_lines.len(),
        CRLF.len(),
    ]
    .into_iter()
    .fold(0, usize::saturating_add)
}

/// Write the HTTP head the station sends before the body, byte for byte:
///
/// ```text
/// POST /update-info HTTP/1.1\r\n
/// Host: <host_port>\r\n
/// Content-Type: application/json\r\n
/// Content-Length: <content_len right-aligned in 5 characters, space padded>\r\n
/// <auth_lines>\r\n
/// ```
///
/// `auth_lines` are the raw header lines of token mode (each `Name: value\r\n`) or empty.
/// Returns the bytes written.
pub fn write_station_head(
    host_port: &str,
    content_len: usize,
    auth_lines: &[u8],
    out: &mut [u8],
) -> Result<usize, HeadError> {
    check_host(host_port)?;
    check_auth_lines(auth_lines)?;
    if content_len > MAX_STATION_CONTENT_LEN {
        return Err(HeadError::ContentTooLong { len: content_len });
    }
    let needed = station_head_len(host_port, auth_lines);
    // content_len <= 99_999 fits a u32.
    let digits = Decimal::new(u32::try_from(content_len).unwrap_or(u32::MAX));
    let digits = digits.as_bytes();
    let mut padded = [b' '; CONTENT_LENGTH_WIDTH];
    let pad = CONTENT_LENGTH_WIDTH.saturating_sub(digits.len());
    if let Some(dst) = padded.get_mut(pad..) {
        dst.copy_from_slice(digits.get(..dst.len()).unwrap_or_default());
    }
    let mut s = SliceSink { buf: out, len: 0 };
    let parts: [&[u8]; 8] = [
        REQUEST_LINE.as_bytes(),
        HEAD_HOST,
        host_port.as_bytes(),
        HEAD_AFTER_HOST,
        &padded,
        CRLF,
        auth_lines,
        CRLF,
    ];
    for part in parts {
        s.put(part)
            .map_err(|()| HeadError::BufferTooSmall { needed })?;
    }
    Ok(s.len)
}

/// Fuzz body: [`UpdateInfo::decode`] never panics; whatever it accepts is within the limits,
/// re-encodes within [`MAX_ENCODED_LEN`], and decodes again to an equal value whose encoding
/// is byte-identical.
#[cfg(any(fuzzing, test))]
#[allow(
    clippy::expect_used,
    reason = "a failed expectation is the bug the fuzzer looks for"
)]
pub fn fuzz_request_decode(data: &[u8]) {
    let Ok(info) = UpdateInfo::decode(data) else {
        return;
    };
    assert_eq!(info.check_limits(), Ok(()));
    let mut buf = [0u8; MAX_ENCODED_LEN];
    let n = info
        .encode(&mut buf)
        .expect("a decoded request re-encodes within MAX_ENCODED_LEN");
    assert_eq!(n, info.encoded_len());
    let encoded = buf.get(..n).expect("n <= MAX_ENCODED_LEN");
    let again = UpdateInfo::decode(encoded).expect("re-encoding decodes");
    assert_eq!(again, info);
    let mut buf2 = [0u8; MAX_ENCODED_LEN];
    let n2 = again.encode(&mut buf2).expect("re-encodes");
    assert_eq!(buf2.get(..n2), Some(encoded));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::string::{String, ToString};
    use std::vec::Vec;

    fn vectors_dir() -> PathBuf {
        match std::env::var("CUPS_VECTORS") {
            Ok(dir) => PathBuf::from(dir),
            Err(_) => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors")),
        }
    }

    fn bodies() -> Vec<Vec<u8>> {
        let names = [
            "first-contact",
            "with-version-sigkey",
            "steady-state",
            "two-sigkeys",
        ];
        names
            .iter()
            .map(|n| {
                let p = vectors_dir()
                    .join("requests")
                    .join(std::format!("{n}.json"));
                std::fs::read(&p).unwrap_or_else(|e| panic!("vector {}: {e}", p.display()))
            })
            .collect()
    }

    #[test]
    fn vectors_round_trip() {
        for body in bodies() {
            let info = UpdateInfo::decode(&body).unwrap();
            assert_eq!(info.encoded_len(), body.len());
            let mut out = [0u8; MAX_BODY_LEN];
            let n = info.encode(&mut out).unwrap();
            assert_eq!(&out[..n], &body[..]);
            let mut buf = [0u8; MAX_BODY_LEN];
            let mut w: &mut [u8] = &mut buf;
            info.encode_to(&mut w).unwrap();
            let left = w.len();
            assert_eq!(&buf[..MAX_BODY_LEN - left], &body[..]);
        }
    }

    #[test]
    fn fuzz_body_over_vectors_and_mutations() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let tokens: [&[u8]; 12] = [
            b"\"",
            b"\\",
            b"\\u00e9",
            b"\\ud83d\\ude00",
            b"{",
            b"}",
            b"[",
            b"]",
            b",",
            b":",
            b"null",
            b"-1.5e3",
        ];
        for body in bodies() {
            fuzz_request_decode(&body);
            for _ in 0..3000 {
                let mut m = body.clone();
                for _ in 0..(next() % 4 + 1) {
                    let r = next();
                    let at = (r >> 8) as usize % (m.len() + 1);
                    match r % 4 {
                        0 if !m.is_empty() => {
                            m.remove(at.min(m.len() - 1));
                        }
                        1 => m.insert(at, (r >> 40) as u8),
                        2 => {
                            let t = tokens[(r >> 32) as usize % tokens.len()];
                            m.splice(at..at, t.iter().copied());
                        }
                        _ => m.truncate(at),
                    }
                }
                fuzz_request_decode(&m);
            }
        }
        for _ in 0..2000 {
            let len = (next() % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            fuzz_request_decode(&bytes);
        }
    }

    #[test]
    fn json_str_forms() {
        let plain = JsonStr::from_plain("a/b");
        assert_eq!(plain.raw(), Some("a/b"));
        assert_eq!(plain.as_plain(), Some("a/b"));
        let needs = JsonStr::from_plain("a\"b\n\u{1}");
        assert_eq!(needs.raw(), None);
        assert_eq!(needs.as_plain(), Some("a\"b\n\u{1}"));
        assert_eq!(needs.escaped_len(), r#"a\"b\n\u0001"#.len());
        let mut s = SliceSink {
            buf: &mut [0u8; 32],
            len: 0,
        };
        needs.write_content(&mut s).unwrap();
        assert_eq!(&s.buf[..s.len], br#"a\"b\n\u0001"#);

        let body = br#"{"router":"::1","cupsCredCrc":0,"tcCredCrc":0,"station":"a\/b\u00e9\ud83d\ude00\t"}"#;
        let info = UpdateInfo::decode(body).unwrap();
        let st = info.station;
        assert_eq!(st.raw(), Some(r"a\/b\u00e9\ud83d\ude00\t"));
        assert_eq!(st.as_plain(), None);
        assert_eq!(st.unescaped().collect::<String>(), "a/bé😀\t");
        assert_eq!(st.to_string(), "a/bé😀\t");
        assert!(st.eq_str("a/bé😀\t"));
        assert!(!st.eq_str("a/bé😀"));
        assert_eq!(st, JsonStr::from_plain("a/bé😀\t"));
        assert_ne!(st, JsonStr::from_plain("a/b"));
        assert_eq!(st.unescaped_len(), "a/bé😀\t".len());
    }

    #[test]
    fn escapes_match_station() {
        for c in 0u8..0x20 {
            let e = escape_sequence(c);
            assert_eq!(e.as_bytes().len(), escaped_width(c));
        }
        assert_eq!(escape_sequence(0x1f).as_bytes(), br"\u001F");
        assert_eq!(escape_sequence(b'"').as_bytes(), br#"\""#);
        assert_eq!(escape_sequence(b'\\').as_bytes(), br"\\");
        assert_eq!(escape_sequence(0x08).as_bytes(), br"\b");
        assert_eq!(escaped_width(b'/'), 1);
        assert_eq!(escaped_width(0x7f), 1);
    }

    #[test]
    fn decimal() {
        for v in [0u32, 7, 10, 99, 1_238_727_903, u32::MAX] {
            assert_eq!(Decimal::new(v).as_bytes(), v.to_string().as_bytes());
        }
    }
}
