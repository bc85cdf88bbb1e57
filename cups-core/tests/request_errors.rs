//! Malformed request bodies each give their specific error at the right offset, and every
//! limit is tested at, below and above.

use cups_core::eui::EuiError;
use cups_core::request::{
    Field, HeadError, JsonStr, MAX_BODY_LEN, MAX_ENCODED_LEN, MAX_KEYS, MAX_MODEL_LEN,
    MAX_PACKAGE_LEN, MAX_SKIP_DEPTH, MAX_STATION_CONTENT_LEN, MAX_STATION_LEN, MAX_URI_LEN,
    RequestErrorKind as K, UpdateInfo, write_station_head,
};

/// The required fields; tests append more members and a closing `}`.
const P: &str = r#"{"router":"::1","cupsCredCrc":1,"tcCredCrc":2"#;

/// Where an error is expected.
#[derive(Clone, Copy)]
enum At {
    /// Byte offset.
    Idx(usize),
    /// Offset of the last occurrence of the needle.
    Last(&'static str),
    /// Offset of the first occurrence of the needle after `P`.
    AfterP(&'static str),
    /// The body's length.
    End,
}

fn check(body: &[u8], kind: K, at: At) {
    let shown = String::from_utf8_lossy(body);
    let want = match at {
        At::Idx(i) => i,
        At::Last(n) => shown
            .rfind(n)
            .unwrap_or_else(|| panic!("{n:?} not in {shown}")),
        At::AfterP(n) => {
            P.len()
                + shown[P.len()..]
                    .find(n)
                    .unwrap_or_else(|| panic!("{n:?} not in {shown}"))
        }
        At::End => body.len(),
    };
    let err = UpdateInfo::decode(body).expect_err(&shown);
    assert_eq!((err.kind(), err.offset()), (kind, want), "{shown}");
    assert!(err.to_string().contains(&format!("at byte {want}")));
}

#[test]
fn structure_errors() {
    let cases: &[(&str, K, At)] = &[
        ("", K::UnexpectedEnd, At::Idx(0)),
        ("  \n", K::UnexpectedEnd, At::Idx(3)),
        ("[]", K::ExpectedObject, At::Idx(0)),
        ("\u{feff}{}", K::ExpectedObject, At::Idx(0)),
        ("null", K::ExpectedObject, At::Idx(0)),
        ("{", K::UnexpectedEnd, At::Idx(1)),
        ("{ ", K::UnexpectedEnd, At::Idx(2)),
        (
            "{}",
            K::MissingField {
                field: Field::Router,
            },
            At::Idx(1),
        ),
        (
            r#"{"router":"::1"}"#,
            K::MissingField {
                field: Field::CupsCredCrc,
            },
            At::Last("}"),
        ),
        (
            r#"{"router":"::1","cupsCredCrc":1}"#,
            K::MissingField {
                field: Field::TcCredCrc,
            },
            At::Last("}"),
        ),
        (
            r#"{"cupsCredCrc":1,"tcCredCrc":2}"#,
            K::MissingField {
                field: Field::Router,
            },
            At::Last("}"),
        ),
        ("{router:1}", K::ExpectedKey, At::Idx(1)),
        (r#"{"router" "::1"}"#, K::ExpectedColon, At::Idx(10)),
        (r#"{"router""#, K::UnexpectedEnd, At::End),
        (
            r#"{"router":"::1" "x":1}"#,
            K::ExpectedCommaOrObjectEnd,
            At::Idx(16),
        ),
        (r#"{"router":"::1",}"#, K::ExpectedKey, At::Idx(16)),
        (r#"{"router":"::1","#, K::UnexpectedEnd, At::End),
        (r#"{"router":"::1""#, K::UnexpectedEnd, At::End),
        (
            r#"{"router":"::1","cupsCredCrc":1,"tcCredCrc":2} x"#,
            K::TrailingData,
            At::Last("x"),
        ),
        (
            r#"{"router":"::1","cupsCredCrc":1,"tcCredCrc":2}{}"#,
            K::TrailingData,
            At::Last("{"),
        ),
        (
            r#"{"router":"::1","router":"::2","cupsCredCrc":1,"tcCredCrc":2}"#,
            K::DuplicateField {
                field: Field::Router,
            },
            At::Idx(16),
        ),
        (
            r#"{"router":"::1","cupsCredCrc":1,"tcCredCrc":2,"keys":[],"keys":[]}"#,
            K::DuplicateField { field: Field::Keys },
            At::Last("\"keys\""),
        ),
        // An escaped key is the same key.
        (
            r#"{"router":"::1","rout\u0065r":"::2","cupsCredCrc":1,"tcCredCrc":2}"#,
            K::DuplicateField {
                field: Field::Router,
            },
            At::Idx(16),
        ),
    ];
    for &(body, kind, at) in cases {
        check(body.as_bytes(), kind, at);
    }
}

#[test]
fn field_type_errors() {
    let cases: &[(&str, K, At)] = &[
        (
            r#"{"router":1}"#,
            K::ExpectedString {
                field: Field::Router,
            },
            At::Idx(10),
        ),
        (
            r#"{"router":null}"#,
            K::ExpectedString {
                field: Field::Router,
            },
            At::Idx(10),
        ),
        (
            r#"{"router":"0"}"#,
            K::InvalidRouter(EuiError::TooFewDigits { count: 1 }),
            At::Idx(11),
        ),
        (
            r#"{"router":"::"}"#,
            K::InvalidRouter(EuiError::Zero),
            At::Idx(11),
        ),
        (
            r#"{"router":""}"#,
            K::InvalidRouter(EuiError::Empty),
            At::Idx(11),
        ),
        (
            r#"{"router":"\u0031::"}"#,
            K::InvalidRouter(EuiError::InvalidChar { at: 0 }),
            At::Idx(11),
        ),
        (
            r#"{"router":"::1 "}"#,
            K::InvalidRouter(EuiError::InvalidChar { at: 3 }),
            At::Idx(11),
        ),
        (
            r#"{"cupsUri":1}"#,
            K::ExpectedString {
                field: Field::CupsUri,
            },
            At::Idx(11),
        ),
        (
            r#"{"tcUri":[]}"#,
            K::ExpectedString {
                field: Field::TcUri,
            },
            At::Idx(9),
        ),
        (
            r#"{"package":true}"#,
            K::ExpectedString {
                field: Field::Package,
            },
            At::Idx(11),
        ),
        (r#"{"cupsUri":nul}"#, K::InvalidLiteral, At::Idx(11)),
        (r#"{"cupsUri":nulL}"#, K::InvalidLiteral, At::Idx(11)),
        (r#"{"cupsUri":nu"#, K::UnexpectedEnd, At::End),
        (
            r#"{"station":null}"#,
            K::ExpectedString {
                field: Field::Station,
            },
            At::Idx(11),
        ),
        (
            r#"{"model":5}"#,
            K::ExpectedString {
                field: Field::Model,
            },
            At::Idx(9),
        ),
        (
            r#"{"cupsCredCrc":"1"}"#,
            K::ExpectedInteger {
                field: Field::CupsCredCrc,
            },
            At::Idx(15),
        ),
        (
            r#"{"tcCredCrc":null}"#,
            K::ExpectedInteger {
                field: Field::TcCredCrc,
            },
            At::Idx(13),
        ),
        (
            r#"{"keys":{}}"#,
            K::ExpectedArray { field: Field::Keys },
            At::Idx(8),
        ),
        (
            r#"{"keys":null}"#,
            K::ExpectedArray { field: Field::Keys },
            At::Idx(8),
        ),
        (
            r#"{"keys":[1,]}"#,
            K::ExpectedInteger { field: Field::Keys },
            At::Idx(11),
        ),
        (
            r#"{"keys":["1"]}"#,
            K::ExpectedInteger { field: Field::Keys },
            At::Idx(9),
        ),
        (r#"{"keys":[1 2]}"#, K::ExpectedCommaOrArrayEnd, At::Idx(11)),
        (r#"{"keys":[1}"#, K::ExpectedCommaOrArrayEnd, At::Idx(10)),
        (r#"{"keys":[1"#, K::UnexpectedEnd, At::End),
        (r#"{"keys":[-1]}"#, K::NegativeNumber, At::Idx(9)),
    ];
    for &(body, kind, at) in cases {
        check(body.as_bytes(), kind, at);
    }
}

#[test]
fn number_errors() {
    let cases: &[(&str, K, At)] = &[
        ("-1", K::NegativeNumber, At::AfterP("-")),
        ("-0", K::NegativeNumber, At::AfterP("-")),
        ("01", K::LeadingZero, At::AfterP("0")),
        ("00", K::LeadingZero, At::AfterP("0")),
        ("1.0", K::FractionNotAllowed, At::AfterP(".")),
        ("0.5", K::FractionNotAllowed, At::AfterP(".")),
        ("1e3", K::ExponentNotAllowed, At::Last("e")),
        ("1E3", K::ExponentNotAllowed, At::AfterP("E")),
        ("4294967296", K::NumberTooLarge, At::AfterP("4")),
        ("99999999999999999999", K::NumberTooLarge, At::AfterP("9")),
        (
            "+1",
            K::ExpectedInteger { field: Field::Keys },
            At::AfterP("+"),
        ),
        ("1x", K::ExpectedCommaOrArrayEnd, At::AfterP("x")),
    ];
    for &(num, kind, at) in cases {
        let body = format!(r#"{P},"keys":[{num}]}}"#);
        check(body.as_bytes(), kind, at);
    }
    // The CRC fields use the same rules.
    check(
        br#"{"router":"::1","cupsCredCrc":4294967296,"tcCredCrc":2}"#,
        K::NumberTooLarge,
        At::Idx(30),
    );
    check(
        br#"{"router":"::1","cupsCredCrc":1,"tcCredCrc":2.5}"#,
        K::FractionNotAllowed,
        At::Last("."),
    );
    // u32::MAX and 0 are fine.
    let ok =
        UpdateInfo::decode(br#"{"router":"::1","cupsCredCrc":4294967295,"tcCredCrc":0}"#).unwrap();
    assert_eq!((ok.cups_cred_crc, ok.tc_cred_crc), (u32::MAX, 0));
}

#[test]
fn string_errors() {
    let cases: &[(&[u8], K, At)] = &[
        (b"\"a\x01b\"", K::ControlCharInString, At::AfterP("\x01")),
        (b"\"a\tb\"", K::ControlCharInString, At::AfterP("\t")),
        (b"\"a\nb\"", K::ControlCharInString, At::AfterP("\n")),
        (br#""a\xb""#, K::InvalidEscape, At::AfterP("\\")),
        (br#""a\'b""#, K::InvalidEscape, At::AfterP("\\")),
        (br#""\u12G4""#, K::InvalidUnicodeEscape, At::AfterP("\\")),
        (br#""\u12""#, K::InvalidUnicodeEscape, At::AfterP("\\")),
        (br#""\uDC00""#, K::LoneSurrogate, At::AfterP("\\")),
        (br#""\uD800""#, K::LoneSurrogate, At::AfterP("\\")),
        (br#""\uD800x""#, K::LoneSurrogate, At::AfterP("\\")),
        (br#""\uD800\n""#, K::LoneSurrogate, At::AfterP("\\")),
        (br#""\uD800\u0041""#, K::LoneSurrogate, At::AfterP("\\")),
        (br#""\uD800\uD800""#, K::LoneSurrogate, At::AfterP("\\")),
        (
            br#""\uD800\uZZZZ""#,
            K::InvalidUnicodeEscape,
            At::Last("\\u"),
        ),
        (b"\"a\xffb\"", K::InvalidUtf8, At::End),
        (b"\"\xc3\"", K::InvalidUtf8, At::End),
        (b"\"\xed\xa0\x80\"", K::InvalidUtf8, At::End),
    ];
    for &(value, kind, at) in cases {
        for field in ["station", "unknown"] {
            let mut body = format!(r#"{P},"{field}":"#).into_bytes();
            body.extend_from_slice(value);
            body.push(b'}');
            // Invalid UTF-8: the offset is the first byte that is not valid.
            let at = match kind {
                K::InvalidUtf8 => At::Idx(body.iter().position(|&b| b >= 0x80).unwrap()),
                _ => at,
            };
            check(&body, kind, at);
        }
    }
    // Truncated strings.
    for tail in [
        r#""abc"#,
        r#""ab\"#,
        r#""\u12"#,
        r#""\uD800"#,
        r#""\uD800\"#,
        r#""\uD800\u"#,
        r#""\uD800\uDC0"#,
    ] {
        let body = format!(r#"{P},"station":{tail}"#);
        check(body.as_bytes(), K::UnexpectedEnd, At::End);
    }
}

#[test]
fn skipped_value_errors() {
    let cases: &[(&str, K, At)] = &[
        ("tru}", K::InvalidLiteral, At::AfterP("t")),
        ("fals", K::UnexpectedEnd, At::End),
        ("-}", K::InvalidNumber, At::AfterP("}")),
        ("-a}", K::InvalidNumber, At::AfterP("a")),
        ("1.}", K::InvalidNumber, At::AfterP("}")),
        ("1e}", K::InvalidNumber, At::AfterP("}")),
        ("1e+}", K::InvalidNumber, At::AfterP("}")),
        ("01}", K::LeadingZero, At::AfterP("0")),
        ("-01}", K::LeadingZero, At::AfterP("0")),
        ("[1,]}", K::ExpectedValue, At::AfterP("]")),
        ("[}", K::ExpectedValue, At::AfterP("}")),
        ("[1}", K::ExpectedCommaOrArrayEnd, At::AfterP("}")),
        ("{\"a\"}}", K::ExpectedColon, At::AfterP("}")),
        ("{\"a\":1,}}", K::ExpectedKey, At::AfterP("}")),
        ("{\"a\":1]}", K::ExpectedCommaOrObjectEnd, At::AfterP("]")),
        ("{1:2}}", K::ExpectedKey, At::AfterP("1")),
        ("@}", K::ExpectedValue, At::AfterP("@")),
        ("}", K::ExpectedValue, At::AfterP("}")),
        ("[[[", K::UnexpectedEnd, At::End),
        ("{\"a\":", K::UnexpectedEnd, At::End),
        ("\"\\q\"}", K::InvalidEscape, At::AfterP("\\")),
    ];
    for &(value, kind, at) in cases {
        let body = format!(r#"{P},"x":{value}"#);
        check(body.as_bytes(), kind, at);
    }
}

#[test]
fn accepted_variations() {
    // Whitespace everywhere, any order, unknown fields of every type, nulls, missing optionals.
    let body = " \r\n\t{ \"keys\" : [ 1 , 2 ] , \"x\" : { \"a\" : [ true , false , null , -1.5e-3 , \"s\\\"\" , { } , [ ] ] } ,\n\"tcCredCrc\" : 0 , \"router\" : \"00-16-C0-01-FF-10-A2-35\" ,\"cupsUri\":null, \"cupsCredCrc\" : 7 , \"os\":\"linux\" } \n";
    let info = UpdateInfo::decode(body.as_bytes()).unwrap();
    assert_eq!(info.router.as_u64(), 0x0016_c001_ff10_a235);
    assert_eq!((info.cups_cred_crc, info.tc_cred_crc), (7, 0));
    assert_eq!(info.keys.as_slice(), &[1, 2]);
    assert_eq!(
        (info.cups_uri, info.tc_uri, info.package),
        (None, None, None)
    );
    assert!(info.station.is_empty() && info.model.is_empty());
    // Re-encoding is the station's canonical form.
    let mut out = [0u8; 512];
    let n = info.encode(&mut out).unwrap();
    assert_eq!(
        std::str::from_utf8(&out[..n]).unwrap(),
        r#"{"router":"16:c001:ff10:a235","cupsUri":null,"tcUri":null,"cupsCredCrc":7,"tcCredCrc":0,"station":"","model":"","package":null,"keys":[1,2]}"#
    );
    // Escaped strings are kept raw and compare by value.
    let body = format!(r#"{P},"cupsUri":"https:\/\/h\u006fst:1","station":"\u00e9\ud83d\ude00"}}"#);
    let info = UpdateInfo::decode(body.as_bytes()).unwrap();
    let uri = info.cups_uri.unwrap();
    assert!(uri.eq_str("https://host:1"));
    assert_eq!(uri.raw(), Some(r"https:\/\/h\u006fst:1"));
    assert_eq!(uri.as_plain(), None);
    assert_eq!(info.station.to_string(), "é😀");
    let n = info.encode(&mut out).unwrap();
    assert!(
        std::str::from_utf8(&out[..n])
            .unwrap()
            .contains(r#""cupsUri":"https:\/\/h\u006fst:1""#)
    );
}

/// A valid body padded with trailing whitespace to `len` bytes.
fn padded(len: usize) -> Vec<u8> {
    let mut body = format!("{P}}}").into_bytes();
    body.resize(len, b' ');
    body
}

#[test]
fn body_limit() {
    assert!(UpdateInfo::decode(&padded(MAX_BODY_LEN)).is_ok());
    assert!(UpdateInfo::decode(&padded(MAX_BODY_LEN - 1)).is_ok());
    let err = UpdateInfo::decode(&padded(MAX_BODY_LEN + 1)).unwrap_err();
    assert_eq!(
        (err.kind(), err.offset()),
        (
            K::BodyTooLong {
                len: MAX_BODY_LEN + 1
            },
            MAX_BODY_LEN
        )
    );
    const { assert!(MAX_ENCODED_LEN <= MAX_BODY_LEN) };
}

fn string_limit(field: Field, max: usize) {
    let name = field.name();
    let body_with = |value: String| format!(r#"{P},"{name}":"{value}"}}"#);
    // Plain ASCII, escaped ASCII (6 bytes per character) and 2-byte UTF-8: the limit is on the
    // unescaped UTF-8 length.
    let forms: [(&str, usize); 3] = [("a", 1), (r"\u0061", 1), ("é", 2)];
    for (unit, width) in forms {
        for len in [max - 1, max, max + 1] {
            if len % width != 0 {
                continue;
            }
            let body = body_with(unit.repeat(len / width));
            let res = UpdateInfo::decode(body.as_bytes());
            if len <= max {
                let info = res.unwrap_or_else(|e| panic!("{name} {len}: {e}"));
                assert_eq!(info.check_limits(), Ok(()));
            } else {
                let err = res.unwrap_err();
                let start = body.find(&format!(r#""{name}":""#)).unwrap() + name.len() + 4;
                assert_eq!(
                    (err.kind(), err.offset()),
                    (K::StringTooLong { field, len, max }, start),
                    "{name} {unit}"
                );
            }
        }
    }
    // check_limits applies the same limits to values built from plain text.
    let long = "a".repeat(max + 1);
    let base = format!("{P}}}");
    let mut info = UpdateInfo::decode(base.as_bytes()).unwrap();
    let v = JsonStr::from_plain(&long);
    match field {
        Field::CupsUri => info.cups_uri = Some(v),
        Field::TcUri => info.tc_uri = Some(v),
        Field::Station => info.station = v,
        Field::Model => info.model = v,
        Field::Package => info.package = Some(v),
        _ => unreachable!(),
    }
    assert_eq!(
        info.check_limits(),
        Err(K::StringTooLong {
            field,
            len: max + 1,
            max
        })
    );
}

#[test]
fn string_limits() {
    string_limit(Field::CupsUri, MAX_URI_LEN);
    string_limit(Field::TcUri, MAX_URI_LEN);
    string_limit(Field::Station, MAX_STATION_LEN);
    string_limit(Field::Model, MAX_MODEL_LEN);
    string_limit(Field::Package, MAX_PACKAGE_LEN);
    assert_eq!(Field::CupsUri.max_len(), Some(MAX_URI_LEN));
    assert_eq!(Field::Router.max_len(), None);
}

#[test]
fn keys_limit() {
    let keys = |n: usize| (1..=n).map(|k| k.to_string()).collect::<Vec<_>>().join(",");
    for n in [0, MAX_KEYS - 1, MAX_KEYS] {
        let body = format!(r#"{P},"keys":[{}]}}"#, keys(n));
        assert_eq!(UpdateInfo::decode(body.as_bytes()).unwrap().keys.len(), n);
    }
    let body = format!(r#"{P},"keys":[{}]}}"#, keys(MAX_KEYS + 1));
    let err = UpdateInfo::decode(body.as_bytes()).unwrap_err();
    let at = body.rfind(&format!(",{}]", MAX_KEYS + 1)).unwrap() + 1;
    assert_eq!((err.kind(), err.offset()), (K::TooManyKeys, at));
}

#[test]
fn skip_depth_limit() {
    for (open, close) in [("[", "]"), (r#"{"a":"#, "}")] {
        for depth in [MAX_SKIP_DEPTH - 1, MAX_SKIP_DEPTH] {
            let body = format!(
                r#"{P},"x":{}1{}}}"#,
                open.repeat(depth),
                close.repeat(depth)
            );
            assert!(UpdateInfo::decode(body.as_bytes()).is_ok(), "depth {depth}");
        }
        let depth = MAX_SKIP_DEPTH + 1;
        let body = format!(
            r#"{P},"x":{}1{}}}"#,
            open.repeat(depth),
            close.repeat(depth)
        );
        let err = UpdateInfo::decode(body.as_bytes()).unwrap_err();
        let at = P.len() + 5 + MAX_SKIP_DEPTH * open.len();
        assert_eq!((err.kind(), err.offset()), (K::NestingTooDeep, at));
    }
    // Deep but unterminated input is an error, not a stack overflow.
    let body = format!(r#"{P},"x":{}"#, "[".repeat(MAX_BODY_LEN - P.len() - 10));
    assert_eq!(
        UpdateInfo::decode(body.as_bytes()).unwrap_err().kind(),
        K::NestingTooDeep
    );
}

#[test]
fn head_content_length_limit() {
    let mut out = [0u8; 256];
    for (len, field) in [
        (0, "Content-Length:     0\r\n"),
        (7, "Content-Length:     7\r\n"),
        (220, "Content-Length:   220\r\n"),
        (MAX_STATION_CONTENT_LEN - 1, "Content-Length: 99998\r\n"),
        (MAX_STATION_CONTENT_LEN, "Content-Length: 99999\r\n"),
    ] {
        let n = write_station_head("h:1", len, b"", &mut out).unwrap();
        assert!(
            std::str::from_utf8(&out[..n]).unwrap().contains(field),
            "{len}"
        );
    }
    assert_eq!(
        write_station_head("h:1", MAX_STATION_CONTENT_LEN + 1, b"", &mut out),
        Err(HeadError::ContentTooLong {
            len: MAX_STATION_CONTENT_LEN + 1
        })
    );
}

#[test]
fn head_host_and_auth_validation() {
    let mut out = [0u8; 512];
    let at_limit = "h".repeat(MAX_URI_LEN);
    assert!(write_station_head(&at_limit, 1, b"", &mut out).is_ok());
    assert!(write_station_head(&at_limit[1..], 1, b"", &mut out).is_ok());
    let above = "h".repeat(MAX_URI_LEN + 1);
    assert_eq!(
        write_station_head(&above, 1, b"", &mut out),
        Err(HeadError::HostTooLong {
            len: MAX_URI_LEN + 1
        })
    );
    for (host, at) in [("", 0), ("a b:1", 1), ("a\r\nX: y", 1), ("h:1\u{e9}", 3)] {
        assert_eq!(
            write_station_head(host, 1, b"", &mut out),
            Err(HeadError::InvalidHost { at }),
            "{host:?}"
        );
    }
    assert!(write_station_head("[::1]:443", 1, b"", &mut out).is_ok());
    let auth_ok: &[&[u8]] = &[b"", b"Authorization: Bearer x\r\n", b"A:b\r\nB: c d\te\r\n"];
    for auth in auth_ok {
        assert!(
            write_station_head("h:1", 1, auth, &mut out).is_ok(),
            "{auth:?}"
        );
    }
    let auth_bad: &[(&[u8], usize)] = &[
        (b"Authorization: x", 16),
        (b"Authorization x\r\n", 13),
        (b"Authorization\r\n", 13),
        (b"\r\n", 0),
        (b": x\r\n", 0),
        (b"A: x\nB: y\r\n", 4),
        (b"A: x\r\n\r\n", 6),
        (b"A: x\rB: y\r\n", 4),
        (b"A b: x\r\n", 1),
        (b"A: x\x00\r\n", 4),
    ];
    for &(auth, at) in auth_bad {
        assert_eq!(
            write_station_head("h:1", 1, auth, &mut out),
            Err(HeadError::InvalidAuthLines { at }),
            "{:?}",
            String::from_utf8_lossy(auth)
        );
    }
}
