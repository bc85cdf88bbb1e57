//! Gateway EUI-64: parse every text form the station accepts, render ID6 for stations and
//! 16 lowercase hex digits as the canonical name everywhere else.
//!
//! # Accepted text forms
//!
//! The station's reader (`rt_readEui`, `src/rt.c:427-495`) scans hex digits, `-` and `:`;
//! a text with exactly 2 or 3 colons is **ID6**, anything else is **hex digits with optional
//! separators**. [`Eui64::parse`] accepts the same two families, but only in their
//! unambiguous shapes, and always requires the *whole* text to be consumed:
//!
//! | form | examples | rule here |
//! |---|---|---|
//! | ID6 | `16:c001:ff10:a235`, `::1`, `::ffff:1`, `1234::`, `1::2`, `1::2:3` | exactly 2 or 3 colons and no `-` (the station's rule). Four groups of 1..=4 hex digits, or groups around exactly one `::` (which stands for one or more zero groups, as in IPv6) |
//! | plain hex | `0016c001ff10a235`, `0016C001FF10A235` | exactly 16 hex digits |
//! | separated hex | `00-16-C0-01-FF-10-A2-35`, `00:16:c0:01:ff:10:a2:35`, `0016-c001-ff10-a235` | exactly 16 hex digits in non-empty groups separated by one kind of separator (`-` or `:`, at most 7 of them) |
//!
//! Upper and lower case hex are both fine everywhere. The zero EUI is refused
//! ([`EuiError::Zero`]).
//!
//! # Where this parser is stricter than the station
//!
//! | text | station | here |
//! |---|---|---|
//! | trailing garbage (`0016c001ff10a235 x`) | stops at the first other byte and returns the prefix | [`EuiError::InvalidChar`] |
//! | fewer than 16 digits in hex form (`1`, `16c001ff10a235`, MAC-48 `00:16:c0:01:ff:10`) | pads with leading zeros | [`EuiError::TooFewDigits`] |
//! | empty hex groups (`-0016…`, `00--16…`, `…35:`) | ignored | [`EuiError::EmptyGroup`] |
//! | three ID6 groups without `::` (`1:2:3`) | right-aligns them (`0:1:2:3`) | [`EuiError::TooFewGroups`] |
//! | `::` in a text with more than 3 colons (`::1:2:3`, `1:2::3:4`) | not ID6: reads the hex digits (`0x123`), unlike IPv6 | [`EuiError::AmbiguousZeroRun`] |
//! | the zero EUI (`::0`, `0000000000000000`) | returns 0 = "no EUI" | [`EuiError::Zero`] |
//! | more than [`MAX_TEXT_LEN`] bytes | no length limit | [`EuiError::TooLong`] |
//!
//! Everything [`Eui64::parse`] accepts, the station parses to the same value (property-tested in
//! `tests/eui_forms.rs` against a model of `rt_readEui`).
//!
//! # Rendering
//!
//! [`Id6`] reproduces the station's ID6 encoder (`encId6`, `src/uj.c`): lowercase hex groups
//! without leading zeros; a run of **two or more** zero groups is written as `::` (the longest
//! run, the first one when two runs are equally long — only possible for the zero EUI, which
//! does not exist here); a single zero group is written as `0` (`1:0:2:3`), as RFC 5952 does for
//! IPv6. [`Canonical`] is 16 lowercase hex digits.

use core::fmt;

/// Longest ID6 rendering: `"ffff:ffff:ffff:ffff"`.
pub const ID6_MAX_LEN: usize = 19;
/// Length of the canonical rendering: 16 lowercase hex digits.
pub const CANONICAL_LEN: usize = 16;
/// Longest EUI text accepted by [`Eui64::parse`] (`00-16-C0-01-FF-10-A2-35` is 23 bytes).
pub const MAX_TEXT_LEN: usize = 23;
/// Hex digits in an EUI-64 (also the exact count required by the hex forms).
pub const HEX_DIGITS: usize = 16;
/// Most hex digits in one ID6 group (16 bits).
pub const ID6_GROUP_MAX_DIGITS: usize = 4;
/// Groups in an EUI-64 written as ID6.
pub const ID6_GROUPS: usize = 4;

/// A non-zero gateway EUI-64.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Eui64(u64);

/// Why an EUI text or value was refused. Offsets (`at`) are byte offsets into the text.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum EuiError {
    /// The text is empty.
    Empty,
    /// The text is longer than [`MAX_TEXT_LEN`].
    TooLong,
    /// The zero EUI is not a gateway.
    Zero,
    /// A byte that is neither a hex digit nor `-` / `:`.
    InvalidChar {
        /// Offset of the byte.
        at: usize,
    },
    /// Both `-` and `:` are used as separators.
    MixedSeparators {
        /// Offset of the first separator that differs from the first one seen.
        at: usize,
    },
    /// A group is empty: a leading, trailing or doubled separator outside an ID6 `::`.
    EmptyGroup {
        /// Offset where the empty group starts.
        at: usize,
    },
    /// An ID6 group has more than [`ID6_GROUP_MAX_DIGITS`] hex digits.
    GroupTooLong {
        /// Offset of the group's first digit.
        at: usize,
    },
    /// A `::` in a text with more than 3 colons (`::1:2:3`): IPv6 would read it as zero
    /// groups, but the station only treats texts with 2 or 3 colons as ID6 and reads this one
    /// as the hex digits `123`.
    AmbiguousZeroRun {
        /// Offset of the `::`.
        at: usize,
    },
    /// ID6 without `::` and fewer than [`ID6_GROUPS`] groups (`1:2:3`).
    TooFewGroups {
        /// Groups found.
        count: usize,
    },
    /// More than one `::` (`:::`, `1:::2`).
    MultipleZeroRuns {
        /// Offset of the second `::`.
        at: usize,
    },
    /// More than [`HEX_DIGITS`] hex digits in a hex form.
    TooManyDigits {
        /// Offset of the first digit too many.
        at: usize,
    },
    /// Fewer than [`HEX_DIGITS`] hex digits in a hex form (no implicit leading zeros).
    TooFewDigits {
        /// Digits found.
        count: usize,
    },
}

impl fmt::Display for EuiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty EUI"),
            Self::TooLong => write!(f, "EUI text longer than {MAX_TEXT_LEN} bytes"),
            Self::Zero => f.write_str("the zero EUI is not a gateway"),
            Self::InvalidChar { at } => write!(f, "invalid character in EUI at byte {at}"),
            Self::MixedSeparators { at } => {
                write!(f, "EUI mixes '-' and ':' separators (byte {at})")
            }
            Self::EmptyGroup { at } => write!(f, "empty EUI group at byte {at}"),
            Self::GroupTooLong { at } => write!(
                f,
                "ID6 group at byte {at} has more than {ID6_GROUP_MAX_DIGITS} hex digits"
            ),
            Self::AmbiguousZeroRun { at } => write!(
                f,
                "'::' at byte {at} in a text with more than 3 colons (the station would not read it as ID6)"
            ),
            Self::TooFewGroups { count } => write!(
                f,
                "ID6 without '::' needs {ID6_GROUPS} groups, found {count}"
            ),
            Self::MultipleZeroRuns { at } => write!(f, "second '::' in ID6 at byte {at}"),
            Self::TooManyDigits { at } => {
                write!(f, "more than {HEX_DIGITS} hex digits in EUI (byte {at})")
            }
            Self::TooFewDigits { count } => {
                write!(f, "EUI needs {HEX_DIGITS} hex digits, found {count}")
            }
        }
    }
}

impl core::error::Error for EuiError {}

/// Value of an ASCII hex digit.
#[inline]
const fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c.wrapping_sub(b'0')),
        b'a'..=b'f' => Some(c.wrapping_sub(b'a' - 10)),
        b'A'..=b'F' => Some(c.wrapping_sub(b'A' - 10)),
        _ => None,
    }
}

/// Lowercase hex digit for a nibble (the argument is masked to 4 bits).
#[inline]
const fn hex_digit(nibble: u64) -> u8 {
    let n = (nibble & 0xF) as u8;
    if n < 10 {
        b'0'.wrapping_add(n)
    } else {
        b'a'.wrapping_add(n.wrapping_sub(10))
    }
}

/// A bounded ASCII writer: bytes that do not fit are dropped (callers size the buffer).
struct AsciiOut<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl AsciiOut<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        for &c in bytes {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = c;
                self.len = self.len.saturating_add(1);
            }
        }
    }

    /// A 16-bit group in lowercase hex without leading zeros (`0` for zero).
    #[inline]
    fn group(&mut self, g: u64) {
        let g = g & 0xFFFF;
        let bits = 64u32.saturating_sub(g.leading_zeros()).max(1);
        let nibbles = bits.div_ceil(4);
        for k in (0..nibbles).rev() {
            self.put(&[hex_digit(
                g.checked_shr(4u32.saturating_mul(k)).unwrap_or(0),
            )]);
        }
    }
}

/// Parse `:`-separated ID6 groups (each 1..=4 hex digits) of `part`, which starts at `base` in
/// the text. Returns (value with the groups right-aligned, number of groups). An empty `part`
/// has no groups. With at most 3 colons in the text there are at most 4 groups.
fn id6_groups(part: &[u8], base: usize) -> Result<(u64, usize), EuiError> {
    if part.is_empty() {
        return Ok((0, 0));
    }
    let mut value = 0u64;
    let mut groups = 0usize;
    let mut digits = 0usize;
    let mut group_start = base;
    for (i, &c) in part.iter().enumerate() {
        let at = base.saturating_add(i);
        if c == b':' {
            if digits == 0 {
                return Err(EuiError::EmptyGroup { at });
            }
            groups = groups.saturating_add(1);
            digits = 0;
            group_start = at.saturating_add(1);
            continue;
        }
        if digits >= ID6_GROUP_MAX_DIGITS {
            return Err(EuiError::GroupTooLong { at: group_start });
        }
        // The caller checked every byte is a hex digit or ':'.
        let nibble = hex_value(c).ok_or(EuiError::InvalidChar { at })?;
        // A new group shifts the previous ones up by 16 bits; a digit shifts its group's
        // previous digits up by one nibble (a group has at most 4 digits, so stays in 16 bits).
        if digits == 0 {
            value = value.checked_shl(16).unwrap_or(0);
        }
        value = (value & !0xFFFF) | (((value & 0xFFF) << 4) | u64::from(nibble));
        digits = digits.saturating_add(1);
    }
    if digits == 0 {
        return Err(EuiError::EmptyGroup {
            at: base.saturating_add(part.len()),
        });
    }
    Ok((value, groups.saturating_add(1)))
}

/// ID6 form (the caller checked: only hex digits and 2 or 3 colons).
fn parse_id6(b: &[u8]) -> Result<u64, EuiError> {
    let Some(p) = b.windows(2).position(|w| w == b"::") else {
        let (value, groups) = id6_groups(b, 0)?;
        if groups != ID6_GROUPS {
            return Err(EuiError::TooFewGroups { count: groups });
        }
        return Ok(value);
    };
    let tail_start = p.saturating_add(2);
    let head = b.get(..p).unwrap_or_default();
    let tail = b.get(tail_start..).unwrap_or_default();
    if let Some(q) = tail.windows(2).position(|w| w == b"::") {
        return Err(EuiError::MultipleZeroRuns {
            at: tail_start.saturating_add(q),
        });
    }
    if tail.first() == Some(&b':') {
        // ":::" — the third colon starts a second zero run.
        return Err(EuiError::MultipleZeroRuns {
            at: p.saturating_add(1),
        });
    }
    let (hi, nhi) = id6_groups(head, 0)?;
    let (lo, nlo) = id6_groups(tail, tail_start)?;
    // With at most 3 colons, `::` leaves room for at most 3 explicit groups.
    if nhi.saturating_add(nlo) >= ID6_GROUPS {
        return Err(EuiError::AmbiguousZeroRun { at: p });
    }
    // nhi <= 2 here, so the shift is 32..=64 bits (64 only when nhi == 0 and hi == 0).
    let shift = 16u32.saturating_mul(4u32.saturating_sub(nhi as u32));
    Ok(hi.checked_shl(shift).unwrap_or(0) | lo)
}

/// Hex form with one kind of optional separator (the caller checked: only hex digits and
/// that separator).
fn parse_hex(b: &[u8]) -> Result<u64, EuiError> {
    let mut value = 0u64;
    let mut digits = 0usize;
    let mut prev_sep = true; // a separator at offset 0 is an empty group
    for (at, &c) in b.iter().enumerate() {
        match hex_value(c) {
            Some(n) => {
                if digits >= HEX_DIGITS {
                    return Err(EuiError::TooManyDigits { at });
                }
                value = (value << 4) | u64::from(n);
                digits = digits.saturating_add(1);
                prev_sep = false;
            }
            None => {
                if prev_sep {
                    return Err(EuiError::EmptyGroup { at });
                }
                prev_sep = true;
            }
        }
    }
    if prev_sep {
        return Err(EuiError::EmptyGroup { at: b.len() });
    }
    if digits != HEX_DIGITS {
        return Err(EuiError::TooFewDigits { count: digits });
    }
    Ok(value)
}

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
    /// hex digits with `-` or `:` separators (`00-16-C0-01-FF-10-A2-35`). See the
    /// [module documentation](self) for the exact rules and where they are stricter than the
    /// station's.
    pub fn parse(text: &str) -> Result<Self, EuiError> {
        let b = text.as_bytes();
        if b.is_empty() {
            return Err(EuiError::Empty);
        }
        if b.len() > MAX_TEXT_LEN {
            return Err(EuiError::TooLong);
        }
        let mut colons = 0usize;
        let mut first_sep = None;
        for (at, &c) in b.iter().enumerate() {
            match c {
                b':' | b'-' => {
                    match first_sep {
                        None => first_sep = Some(c),
                        Some(s) if s != c => return Err(EuiError::MixedSeparators { at }),
                        Some(_) => {}
                    }
                    if c == b':' {
                        colons = colons.saturating_add(1);
                    }
                }
                _ if hex_value(c).is_some() => {}
                _ => return Err(EuiError::InvalidChar { at }),
            }
        }
        // The station's rule: 2 or 3 colons (and no dash) is ID6, anything else hex.
        let value = if first_sep == Some(b':') && (colons == 2 || colons == 3) {
            parse_id6(b)?
        } else {
            if let Some(at) = b.windows(2).position(|w| w == b"::") {
                return Err(EuiError::AmbiguousZeroRun { at });
            }
            parse_hex(b)?
        };
        Self::new(value)
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

    /// Write the ID6 rendering into `out` (no `core::fmt`) and return it.
    pub fn write_id6(self, out: &mut [u8; ID6_MAX_LEN]) -> &str {
        let v = self.0;
        let g = [
            (v >> 48) & 0xFFFF,
            (v >> 32) & 0xFFFF,
            (v >> 16) & 0xFFFF,
            v & 0xFFFF,
        ];
        let mut w = AsciiOut { buf: out, len: 0 };
        // The station's cases, in its order (`encId6`, `src/uj.c`).
        match g {
            [0, 0, 0, g3] => {
                w.put(b"::");
                w.group(g3);
            }
            [0, 0, g2, g3] => {
                w.put(b"::");
                w.group(g2);
                w.put(b":");
                w.group(g3);
            }
            [g0, 0, 0, 0] => {
                w.group(g0);
                w.put(b"::");
            }
            [g0, g1, 0, 0] => {
                w.group(g0);
                w.put(b":");
                w.group(g1);
                w.put(b"::");
            }
            [g0, 0, 0, g3] => {
                w.group(g0);
                w.put(b"::");
                w.group(g3);
            }
            [g0, g1, g2, g3] => {
                w.group(g0);
                for gi in [g1, g2, g3] {
                    w.put(b":");
                    w.group(gi);
                }
            }
        }
        let len = w.len;
        out.get(..len)
            .and_then(|s| core::str::from_utf8(s).ok())
            .unwrap_or_default()
    }

    /// Write the canonical rendering (16 lowercase hex digits) into `out` and return it.
    pub fn write_canonical(self, out: &mut [u8; CANONICAL_LEN]) -> &str {
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 60u32.saturating_sub(4u32.saturating_mul(i as u32));
            *slot = hex_digit(self.0 >> shift);
        }
        core::str::from_utf8(out).unwrap_or_default()
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
        let mut buf = [0u8; CANONICAL_LEN];
        f.pad(self.0.write_canonical(&mut buf))
    }
}

impl fmt::Display for Id6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; ID6_MAX_LEN];
        f.pad(self.0.write_id6(&mut buf))
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

impl From<Eui64> for u64 {
    fn from(eui: Eui64) -> u64 {
        eui.0
    }
}

impl TryFrom<u64> for Eui64 {
    type Error = EuiError;
    fn try_from(value: u64) -> Result<Self, EuiError> {
        Self::new(value)
    }
}

/// Fuzz body: [`Eui64::parse`] never panics; whatever it accepts re-parses from both
/// renderings to the same EUI, and the renderings fit their limits.
#[cfg(any(fuzzing, test))]
pub fn fuzz_eui_parse(data: &[u8]) {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let Ok(eui) = Eui64::parse(text) else { return };
    let mut b6 = [0u8; ID6_MAX_LEN];
    let id6 = eui.write_id6(&mut b6);
    assert_eq!(Eui64::parse(id6), Ok(eui), "ID6 {id6:?} of {text:?}");
    let mut bc = [0u8; CANONICAL_LEN];
    let canonical = eui.write_canonical(&mut bc);
    assert_eq!(canonical.len(), CANONICAL_LEN);
    assert_eq!(
        Eui64::parse(canonical),
        Ok(eui),
        "canonical {canonical:?} of {text:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn golden_id6() {
        for (v, s) in [
            (0x0016_c001_ff10_a235u64, "16:c001:ff10:a235"),
            (1, "::1"),
            (0x0000_0000_ffff_0001, "::ffff:1"),
            (0x1234_0000_0000_0000, "1234::"),
            (0x0001_0000_0000_0002, "1::2"),
            (0x0001_0002_0000_0000, "1:2::"),
            (0x0001_0000_0002_0003, "1:0:2:3"),
            (0x0000_0001_0002_0003, "0:1:2:3"),
            (0x0001_0002_0003_0000, "1:2:3:0"),
            (0x0000_0001_0000_0000, "0:1::"),
            (0x0000_0000_0001_0000, "::1:0"),
            (u64::MAX, "ffff:ffff:ffff:ffff"),
        ] {
            let eui = Eui64::new(v).unwrap();
            assert_eq!(eui.id6().to_string(), s, "{v:#x}");
            let mut buf = [0u8; ID6_MAX_LEN];
            assert_eq!(eui.write_id6(&mut buf), s);
            assert_eq!(Eui64::parse(s), Ok(eui), "{s}");
        }
    }

    #[test]
    fn canonical() {
        let eui = Eui64::new(0x0016_c001_ff10_a235).unwrap();
        assert_eq!(eui.canonical().to_string(), "0016c001ff10a235");
        assert_eq!(eui.to_string(), "0016c001ff10a235");
        assert_eq!(Eui64::new(1).unwrap().to_string(), "0000000000000001");
        let mut buf = [0u8; CANONICAL_LEN];
        assert_eq!(eui.write_canonical(&mut buf), "0016c001ff10a235");
    }

    #[test]
    fn parse_forms() {
        let want = Eui64::new(0x0016_c001_ff10_a235).unwrap();
        for s in [
            "16:c001:ff10:a235",
            "0016:C001:FF10:A235",
            "0016c001ff10a235",
            "0016C001FF10A235",
            "00-16-C0-01-FF-10-A2-35",
            "00:16:c0:01:ff:10:a2:35",
            "0016-c001-ff10-a235",
            "0016c001:ff10a235",
        ] {
            assert_eq!(Eui64::parse(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn parse_errors() {
        use EuiError::*;
        for (s, e) in [
            ("", Empty),
            ("000000000000000000000000", TooLong),
            ("::", Zero),
            ("0000000000000000", Zero),
            ("0:0:0:0", Zero),
            ("0016c001ff10a23g", InvalidChar { at: 15 }),
            (" 0016c001ff10a235", InvalidChar { at: 0 }),
            ("00-16:c0", MixedSeparators { at: 5 }),
            ("-0016c001ff10a235", EmptyGroup { at: 0 }),
            ("0016c001ff10a235-", EmptyGroup { at: 17 }),
            ("0016c001--ff10a235", EmptyGroup { at: 9 }),
            ("1:2:3:", EmptyGroup { at: 6 }),
            (":1:2:3", EmptyGroup { at: 0 }),
            ("1::3:", EmptyGroup { at: 5 }),
            ("12345::1", GroupTooLong { at: 0 }),
            ("1::12345", GroupTooLong { at: 3 }),
            ("1:2::3:4", AmbiguousZeroRun { at: 3 }),
            ("::1:2:3", AmbiguousZeroRun { at: 0 }),
            ("1:2:3::", AmbiguousZeroRun { at: 5 }),
            ("1:2:3", TooFewGroups { count: 3 }),
            (":::", MultipleZeroRuns { at: 1 }),
            ("1:::2", MultipleZeroRuns { at: 2 }),
            ("1::2::3", AmbiguousZeroRun { at: 1 }),
            ("0016c001ff10a2351", TooManyDigits { at: 16 }),
            ("1", TooFewDigits { count: 1 }),
            ("00:16:c0:01:ff:10", TooFewDigits { count: 12 }),
            ("1:2", TooFewDigits { count: 2 }),
        ] {
            assert_eq!(Eui64::parse(s), Err(e), "{s:?}");
        }
    }

    #[test]
    fn fuzz_body_over_samples() {
        for s in [
            "::1",
            "1::",
            "16:c001:ff10:a235",
            "00-16-C0-01-FF-10-A2-35",
            ":::",
            "x",
            "",
        ] {
            fuzz_eui_parse(s.as_bytes());
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 24) as usize;
            let alphabet = b"0123456789abcdefABCDEF:-:-x";
            let bytes: std::vec::Vec<u8> = (0..len)
                .map(|i| alphabet[((x >> (i * 2 % 60)) as usize + i) % alphabet.len()])
                .collect();
            fuzz_eui_parse(&bytes);
            fuzz_eui_parse(&x.to_le_bytes());
        }
    }
}
