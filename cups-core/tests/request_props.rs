//! Property tests: encode → decode round trips (strings needing escapes included), bodies
//! written by other JSON producers decode to the same values, and arbitrary bytes never panic.

use cups_core::Eui64;
use cups_core::request::{
    JsonStr, MAX_ENCODED_LEN, MAX_KEYS, MAX_MODEL_LEN, MAX_PACKAGE_LEN, MAX_STATION_LEN,
    MAX_URI_LEN, UpdateInfo,
};
use proptest::prelude::*;
use serde_json::Value;

/// An owned request, so that `UpdateInfo` can borrow from it.
#[derive(Clone, Debug)]
struct Owned {
    router: u64,
    cups_uri: Option<String>,
    tc_uri: Option<String>,
    cups_cred_crc: u32,
    tc_cred_crc: u32,
    station: String,
    model: String,
    package: Option<String>,
    keys: Vec<u32>,
}

impl Owned {
    fn info(&self) -> UpdateInfo<'_> {
        UpdateInfo {
            router: Eui64::new(self.router).unwrap(),
            cups_uri: self.cups_uri.as_deref().map(JsonStr::from_plain),
            tc_uri: self.tc_uri.as_deref().map(JsonStr::from_plain),
            cups_cred_crc: self.cups_cred_crc,
            tc_cred_crc: self.tc_cred_crc,
            station: JsonStr::from_plain(&self.station),
            model: JsonStr::from_plain(&self.model),
            package: self.package.as_deref().map(JsonStr::from_plain),
            keys: heapless::Vec::from_slice(&self.keys).unwrap(),
        }
    }

    fn check(&self, info: &UpdateInfo<'_>) {
        assert_eq!(info.router.as_u64(), self.router);
        let opt = |got: Option<JsonStr<'_>>, want: &Option<String>| match (got, want) {
            (None, None) => {}
            (Some(g), Some(w)) => {
                assert!(g.eq_str(w), "{g} != {w}");
                assert_eq!(g.unescaped().collect::<String>(), *w);
                assert_eq!(g.unescaped_len(), w.len());
            }
            (g, w) => panic!("{g:?} vs {w:?}"),
        };
        opt(info.cups_uri, &self.cups_uri);
        opt(info.tc_uri, &self.tc_uri);
        assert_eq!(info.cups_cred_crc, self.cups_cred_crc);
        assert_eq!(info.tc_cred_crc, self.tc_cred_crc);
        assert_eq!(info.station.to_string(), self.station);
        assert_eq!(info.model.to_string(), self.model);
        opt(info.package, &self.package);
        assert_eq!(info.keys.as_slice(), self.keys.as_slice());
    }
}

/// Any characters (control characters, quotes, backslashes, non-ASCII, astral) within
/// `max_bytes` UTF-8 bytes.
fn text(max_bytes: usize) -> impl Strategy<Value = String> {
    let chars = prop_oneof![
        4 => any::<char>(),
        2 => prop::sample::select(vec!['"', '\\', '/', '\n', '\t', '\u{0}', '\u{1f}', '\u{7f}', 'é', '😀']),
        4 => prop::char::range('a', 'z'),
    ];
    prop::collection::vec(chars, 0..=max_bytes / 4).prop_map(String::from_iter)
}

fn owned() -> impl Strategy<Value = Owned> {
    (
        1u64..=u64::MAX,
        prop::option::of(text(MAX_URI_LEN)),
        prop::option::of(text(MAX_URI_LEN)),
        any::<u32>(),
        any::<u32>(),
        text(MAX_STATION_LEN),
        text(MAX_MODEL_LEN),
        prop::option::of(text(MAX_PACKAGE_LEN)),
        prop::collection::vec(any::<u32>(), 0..=MAX_KEYS),
    )
        .prop_map(
            |(
                router,
                cups_uri,
                tc_uri,
                cups_cred_crc,
                tc_cred_crc,
                station,
                model,
                package,
                keys,
            )| Owned {
                router,
                cups_uri,
                tc_uri,
                cups_cred_crc,
                tc_cred_crc,
                station,
                model,
                package,
                keys,
            },
        )
}

/// Arbitrary JSON for unknown fields.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        text(24).prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text(12), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON string escaping every character as `\uXXXX` (surrogate pairs for astral ones).
fn escape_all(s: &str) -> String {
    let mut out = String::from("\"");
    for unit in s.encode_utf16() {
        out.push_str(&format!("\\u{unit:04x}"));
    }
    out.push('"');
    out
}

/// Some whitespace.
fn ws(seed: u8) -> &'static str {
    ["", " ", "\n", "\t ", "\r\n  "][usize::from(seed) % 5]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_decode_round_trip(o in owned()) {
        let info = o.info();
        prop_assert_eq!(info.check_limits(), Ok(()));
        let mut out = vec![0u8; MAX_ENCODED_LEN];
        let n = info.encode(&mut out).unwrap();
        prop_assert_eq!(n, info.encoded_len());
        prop_assert!(n <= MAX_ENCODED_LEN);
        let body = &out[..n];

        let decoded = UpdateInfo::decode(body).unwrap();
        prop_assert_eq!(&decoded, &info);
        o.check(&decoded);

        // Decoded strings are written back raw: the same bytes again.
        let mut again = vec![0u8; MAX_ENCODED_LEN];
        let m = decoded.encode(&mut again).unwrap();
        prop_assert_eq!(&again[..m], body);

        // The encoding is JSON other parsers agree with, in the station's field order.
        let v: Value = serde_json::from_slice(body).unwrap();
        prop_assert_eq!(v["router"].as_str().unwrap(), info.router.id6().to_string());
        prop_assert_eq!(v["station"].as_str().unwrap(), o.station.as_str());
        prop_assert_eq!(v["cupsUri"].as_str(), o.cups_uri.as_deref());
        prop_assert_eq!(v["package"].as_str(), o.package.as_deref());
        let text = std::str::from_utf8(body).unwrap();
        let order = ["router", "cupsUri", "tcUri", "cupsCredCrc", "tcCredCrc", "station", "model", "package", "keys"];
        let positions: Vec<usize> = order.iter().map(|k| text.find(&format!("\"{k}\":")).unwrap()).collect();
        prop_assert!(positions.windows(2).all(|w| w[0] < w[1]));
        prop_assert!(!text.ends_with('\n'));

        // The writer path agrees.
        let mut buf = vec![0u8; MAX_ENCODED_LEN];
        let mut w: &mut [u8] = &mut buf;
        info.encode_to(&mut w).unwrap();
        let written = MAX_ENCODED_LEN - w.len();
        prop_assert_eq!(&buf[..written], body);
    }

    #[test]
    fn foreign_producers_decode(
        o in owned(),
        extras in prop::collection::vec(("[a-zA-Z]{1,8}", json_value()), 0..4),
        order in Just((0..9usize).collect::<Vec<_>>()).prop_shuffle(),
        router_form in 0u8..4,
        escape in any::<[bool; 5]>(),
        spaces in any::<[u8; 8]>(),
        omit_nulls in any::<bool>(),
    ) {
        let eui = Eui64::new(o.router).unwrap();
        let router = match router_form {
            0 => eui.id6().to_string(),
            1 => eui.canonical().to_string(),
            2 => eui.canonical().to_string().to_uppercase(),
            _ => o.router.to_be_bytes().map(|b| format!("{b:02X}")).join("-"),
        };
        let string = |s: &str, all: bool| if all { escape_all(s) } else { serde_json::to_string(s).unwrap() };
        let opt = |s: &Option<String>, all: bool| s.as_deref().map_or("null".to_owned(), |s| string(s, all));
        let members = [
            ("router", serde_json::to_string(&router).unwrap()),
            ("cupsUri", opt(&o.cups_uri, escape[0])),
            ("tcUri", opt(&o.tc_uri, escape[1])),
            ("cupsCredCrc", o.cups_cred_crc.to_string()),
            ("tcCredCrc", o.tc_cred_crc.to_string()),
            ("station", string(&o.station, escape[2])),
            ("model", string(&o.model, escape[3])),
            ("package", opt(&o.package, escape[4])),
            ("keys", serde_json::to_string(&o.keys).unwrap()),
        ];
        let mut parts = Vec::new();
        for (i, &k) in order.iter().enumerate() {
            let (name, value) = &members[k];
            if omit_nulls && value == "null" {
                continue;
            }
            parts.push(format!("{}\"{name}\"{}:{}{value}", ws(spaces[i % 8]), ws(spaces[(i + 1) % 8]), ws(spaces[(i + 2) % 8])));
            if let Some((key, v)) = extras.get(i) {
                let v = if spaces[i % 8] % 2 == 0 { serde_json::to_string(v) } else { serde_json::to_string_pretty(v) };
                parts.push(format!("\"x{key}\":{}", v.unwrap()));
            }
        }
        let body = format!("{}{{{}}}{}", ws(spaces[0]), parts.join(","), ws(spaces[1]));
        let info = UpdateInfo::decode(body.as_bytes()).unwrap_or_else(|e| panic!("{e}: {body}"));
        o.check(&info);
        prop_assert_eq!(&info, &o.info());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(info) = UpdateInfo::decode(&data) {
            let mut out = vec![0u8; MAX_ENCODED_LEN];
            let n = info.encode(&mut out).unwrap();
            prop_assert_eq!(UpdateInfo::decode(&out[..n]).unwrap(), info);
        }
    }

    #[test]
    fn json_like_bytes_never_panic(data in "[{}\\[\\]\":,0-9a-z \\\\.eE+-]{0,200}") {
        let body = format!(r#"{{"router":"::1","cupsCredCrc":1,"tcCredCrc":2,"x":{data}"#);
        let _ = UpdateInfo::decode(body.as_bytes());
        let _ = UpdateInfo::decode(data.as_bytes());
    }
}
