//! EUI-64 text forms: every form the station accepts, the renderings, the errors, the limits,
//! and agreement with a model of the station's own parser (`rt_readEui`, `src/rt.c`).

use cups_core::eui::{CANONICAL_LEN, Eui64, EuiError, ID6_MAX_LEN, MAX_TEXT_LEN};
use proptest::prelude::*;

const EUI: u64 = 0x0016_c001_ff10_a235;

#[test]
fn golden_renderings() {
    for (v, id6) in [
        (EUI, "16:c001:ff10:a235"),
        (1, "::1"),
        (0x0000_0000_ffff_0001, "::ffff:1"),
        (0x1234_0000_0000_0000, "1234::"),
    ] {
        let eui = Eui64::new(v).unwrap();
        assert_eq!(eui.id6().to_string(), id6);
        let mut buf = [0u8; ID6_MAX_LEN];
        assert_eq!(eui.write_id6(&mut buf), id6);
        assert_eq!(eui.canonical().to_string(), format!("{v:016x}"));
        assert_eq!(eui.to_string(), format!("{v:016x}"));
        assert_eq!(Eui64::parse(id6), Ok(eui));
    }
    assert_eq!(
        format!("{:>20}", Eui64::new(1).unwrap().id6()),
        "                 ::1"
    );
}

#[test]
fn accepted_forms() {
    let table: &[(&str, u64)] = &[
        // ID6
        ("16:c001:ff10:a235", EUI),
        ("16:C001:FF10:A235", EUI),
        ("0016:c001:ff10:a235", EUI),
        ("::1", 1),
        ("::ffff:1", 0x0000_0000_ffff_0001),
        ("1234::", 0x1234_0000_0000_0000),
        ("1::2", 0x0001_0000_0000_0002),
        ("1:2::3", 0x0001_0002_0000_0003),
        ("1::2:3", 0x0001_0000_0002_0003),
        ("1:2::", 0x0001_0002_0000_0000),
        ("::1:2", 0x0000_0000_0001_0002),
        ("0:0:0:1", 1),
        ("1:0:2:3", 0x0001_0000_0002_0003),
        // plain hex
        ("0016c001ff10a235", EUI),
        ("0016C001FF10A235", EUI),
        ("ffffffffffffffff", u64::MAX),
        // separated hex
        ("00-16-C0-01-FF-10-A2-35", EUI),
        ("00-16-c0-01-ff-10-a2-35", EUI),
        ("00:16:c0:01:ff:10:a2:35", EUI),
        ("0016-c001-ff10-a235", EUI),
        ("0016c001-ff10a235", EUI),
        ("0016c001:ff10a235", EUI),
        ("0016:c001:ff10:a2:35", EUI),
    ];
    for &(text, v) in table {
        assert_eq!(Eui64::parse(text).map(Eui64::as_u64), Ok(v), "{text:?}");
        assert_eq!(text.parse::<Eui64>().map(u64::from), Ok(v), "{text:?}");
        assert_eq!(
            station_read_eui(text.as_bytes()),
            Some(v),
            "station disagrees on {text:?}"
        );
    }
}

#[test]
fn refused_forms() {
    use EuiError::*;
    let table: &[(&str, EuiError)] = &[
        ("", Empty),
        ("0016c001ff10a235 ", InvalidChar { at: 16 }),
        ("0x0016c001ff10a235", InvalidChar { at: 1 }),
        ("16:c001:ff10:a235\n", InvalidChar { at: 17 }),
        ("00-16-c0:01", MixedSeparators { at: 8 }),
        ("0000000000000000", Zero),
        ("::", Zero),
        ("::0", Zero),
        ("0::0", Zero),
        ("00-00-00-00-00-00-00-00", Zero),
        ("-0016c001ff10a235", EmptyGroup { at: 0 }),
        ("0016c001ff10a235:", EmptyGroup { at: 17 }),
        ("0016c001-:ff10a235", MixedSeparators { at: 9 }),
        ("00--16c001ff10a235", EmptyGroup { at: 3 }),
        ("1:2:3:", EmptyGroup { at: 6 }),
        (":1:2:3", EmptyGroup { at: 0 }),
        ("12345:1:2", GroupTooLong { at: 0 }),
        ("1:2:3:12345", GroupTooLong { at: 6 }),
        ("1:2::3:4", AmbiguousZeroRun { at: 3 }),
        ("1:2:3:4::", AmbiguousZeroRun { at: 7 }),
        ("::1:2:3", AmbiguousZeroRun { at: 0 }),
        ("1:2:3::", AmbiguousZeroRun { at: 5 }),
        ("::0:f:f", AmbiguousZeroRun { at: 0 }),
        ("1:2:3", TooFewGroups { count: 3 }),
        (":::", MultipleZeroRuns { at: 1 }),
        ("1:::2", MultipleZeroRuns { at: 2 }),
        ("1::2::3", AmbiguousZeroRun { at: 1 }),
        ("1:::", MultipleZeroRuns { at: 2 }),
        ("0016c001ff10a2350", TooManyDigits { at: 16 }),
        ("00-16-c0-01-ff-10-a2-35-0", TooLong),
        ("1", TooFewDigits { count: 1 }),
        ("16c001ff10a235", TooFewDigits { count: 14 }),
        ("00:16:c0:01:ff:10", TooFewDigits { count: 12 }),
        ("a:b", TooFewDigits { count: 2 }),
    ];
    for &(text, e) in table {
        assert_eq!(Eui64::parse(text), Err(e), "{text:?}");
        // Display never panics and says something.
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(Eui64::new(0), Err(EuiError::Zero));
}

#[test]
fn text_length_limit() {
    // at the limit
    let at = "00-16-C0-01-FF-10-A2-35";
    assert_eq!(at.len(), MAX_TEXT_LEN);
    assert_eq!(Eui64::parse(at).map(Eui64::as_u64), Ok(EUI));
    // below
    let below = "0016-C0-01-FF-10-A2-35";
    assert_eq!(below.len(), MAX_TEXT_LEN - 1);
    assert_eq!(Eui64::parse(below).map(Eui64::as_u64), Ok(EUI));
    // above: refused before looking at the content
    for above in [
        "00-16-C0-01-FF-10-A2-35 ",
        "000-16-C0-01-FF-10-A2-35",
        "x-------------------------",
    ] {
        assert!(above.len() > MAX_TEXT_LEN);
        assert_eq!(Eui64::parse(above), Err(EuiError::TooLong), "{above:?}");
    }
    // The longest renderings fit their constants.
    let max = Eui64::new(u64::MAX).unwrap();
    assert_eq!(max.id6().to_string().len(), ID6_MAX_LEN);
    assert_eq!(max.canonical().to_string().len(), CANONICAL_LEN);
}

/// RFC 5952-style reference: the longest run (>= 2) of zero groups, the first on a tie,
/// becomes `::`.
fn reference_id6(v: u64) -> String {
    let g = [
        (v >> 48) as u16,
        (v >> 32) as u16,
        (v >> 16) as u16,
        v as u16,
    ];
    let (mut best, mut best_len) = (0usize, 0usize);
    let mut i = 0;
    while i < 4 {
        if g[i] == 0 {
            let start = i;
            while i < 4 && g[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                best = start;
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    let hex = |s: &[u16]| {
        s.iter()
            .map(|x| format!("{x:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    if best_len >= 2 {
        format!("{}::{}", hex(&g[..best]), hex(&g[best + best_len..]))
    } else {
        hex(&g)
    }
}

/// A model of the station's `rt_readEui` (`src/rt.c:427-495`) over a whole text: the value,
/// or `None` when it fails, returns 0, or stops before the end.
fn station_read_eui(p: &[u8]) -> Option<u64> {
    let hex = |c: u8| (c as char).to_digit(16).map(u64::from);
    let (mut dashes, mut colons, mut digits, mut n) = (0, 0, 0, 0);
    while n < p.len() {
        match p[n] {
            b'-' => dashes += 1,
            b':' => colons += 1,
            c if hex(c).is_some() => digits += 1,
            _ => break,
        }
        n += 1;
    }
    if n != p.len() {
        return None; // the station would stop early; the caller sees trailing bytes
    }
    if digits == 0 || (dashes > 0 && colons > 0) || dashes > 7 || colons > 7 || digits > 16 {
        return None;
    }
    // One ID6 fragment: groups right-aligned; (value, bits) or None.
    let frag = |f: &[u8]| -> Option<(u64, u32)> {
        let (mut value, mut bits, mut s) = (0u64, 16u32, 0u32);
        for i in (-1..f.len() as isize).rev() {
            let x = if i < 0 { None } else { hex(f[i as usize]) };
            match x {
                None => {
                    if s == 0 || s > 16 {
                        return None;
                    }
                    if i < 0 {
                        break;
                    }
                    bits += 16;
                    s = 0;
                }
                Some(x) => {
                    value |= x.checked_shl(s + bits - 16).unwrap_or(0);
                    s += 4;
                }
            }
        }
        Some((value, bits))
    };
    let value = if colons == 2 || colons == 3 {
        match (1..n).find(|&i| p[i] == b':' && p[i - 1] == b':') {
            Some(1) => frag(&p[2..])?.0,
            Some(i) if i == n - 1 => {
                let (v, bits) = frag(&p[..n - 2])?;
                v.checked_shl(64 - bits).unwrap_or(0)
            }
            Some(i) => {
                let (hi, bits) = frag(&p[..i - 1])?;
                let (lo, _) = frag(&p[i + 1..])?;
                lo | hi.checked_shl(64 - bits).unwrap_or(0)
            }
            None => frag(p)?.0,
        }
    } else {
        p.iter()
            .filter_map(|&c| hex(c))
            .fold(0u64, |acc, d| (acc << 4) | d)
    };
    (value != 0).then_some(value)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn renderings_round_trip(v in 1u64..=u64::MAX) {
        let eui = Eui64::new(v).unwrap();
        let id6 = eui.id6().to_string();
        prop_assert!(id6.len() <= ID6_MAX_LEN);
        prop_assert_eq!(&id6, &reference_id6(v));
        let mut buf = [0u8; ID6_MAX_LEN];
        prop_assert_eq!(eui.write_id6(&mut buf), id6.as_str());
        prop_assert_eq!(Eui64::parse(&id6), Ok(eui));
        prop_assert_eq!(station_read_eui(id6.as_bytes()), Some(v));
        let canonical = eui.canonical().to_string();
        prop_assert_eq!(canonical.len(), CANONICAL_LEN);
        prop_assert_eq!(Eui64::parse(&canonical), Ok(eui));
        prop_assert_eq!(Eui64::parse(&canonical.to_uppercase()), Ok(eui));
        let bytes = v.to_be_bytes().map(|b| format!("{b:02X}"));
        prop_assert_eq!(Eui64::parse(&bytes.join("-")), Ok(eui));
        prop_assert_eq!(Eui64::parse(&bytes.join(":")), Ok(eui));
    }

    /// Sparse values exercise the `::` cases.
    #[test]
    fn sparse_round_trip(groups in proptest::array::uniform4(prop_oneof![Just(0u16), Just(1u16), any::<u16>()])) {
        let v = groups.iter().fold(0u64, |acc, &g| (acc << 16) | u64::from(g));
        prop_assume!(v != 0);
        let eui = Eui64::new(v).unwrap();
        let id6 = eui.id6().to_string();
        prop_assert_eq!(&id6, &reference_id6(v));
        prop_assert_eq!(Eui64::parse(&id6), Ok(eui));
    }

    /// Whatever we accept, the station reads as the same value.
    #[test]
    fn accepted_means_station_agrees(text in "[0-9a-fA-F:-]{0,24}") {
        if let Ok(eui) = Eui64::parse(&text) {
            prop_assert_eq!(station_read_eui(text.as_bytes()), Some(eui.as_u64()), "{:?}", text);
        }
    }

    /// Short, colon-heavy texts hit the ID6 rules often.
    #[test]
    fn id6_like_texts(text in "[01f:]{0,12}") {
        if let Ok(eui) = Eui64::parse(&text) {
            prop_assert_eq!(station_read_eui(text.as_bytes()), Some(eui.as_u64()), "{:?}", text);
        }
    }
}
