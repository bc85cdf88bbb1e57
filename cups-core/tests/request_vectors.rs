//! Golden request vectors from a real station: every body decodes to the fields of
//! `requests/index.json` and re-encodes byte for byte; every `.http` request is reproduced byte
//! for byte by `write_station_head` + `encode`.

use std::path::PathBuf;

use cups_core::Eui64;
use cups_core::request::{
    HeadError, JsonStr, MAX_BODY_LEN, UpdateInfo, station_head_len, write_station_head,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `$CUPS_VECTORS`, else `<crate>/../../shared/vectors`. Missing vectors fail the tests.
fn vectors_dir() -> PathBuf {
    match std::env::var("CUPS_VECTORS") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors")),
    }
}

fn read(name: &str) -> Vec<u8> {
    let p = vectors_dir().join("requests").join(name);
    std::fs::read(&p)
        .unwrap_or_else(|e| panic!("request vector {}: {e} (set CUPS_VECTORS)", p.display()))
}

fn index() -> Vec<(String, Value)> {
    let index: Value = serde_json::from_slice(&read("index.json")).unwrap();
    let entries: Vec<(String, Value)> = index
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(entries.len(), 4, "expected the four golden requests");
    entries
}

fn assert_opt(field: &str, got: Option<JsonStr<'_>>, want: &Value) {
    match want {
        Value::Null => assert!(got.is_none(), "{field}: want null, got {got:?}"),
        Value::String(s) => {
            let got = got.unwrap_or_else(|| panic!("{field}: want {s:?}, got null"));
            assert!(got.eq_str(s), "{field}: {got} != {s}");
            assert_eq!(got.as_plain(), Some(s.as_str()));
        }
        other => panic!("{field}: unexpected manifest value {other}"),
    }
}

#[test]
fn bodies_decode_to_manifest_fields() {
    for (name, entry) in index() {
        let body = read(&format!("{name}.json"));
        assert_eq!(
            body.len() as u64,
            entry["body_len"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            hex::encode(Sha256::digest(&body)),
            entry["body_sha256"].as_str().unwrap()
        );
        let f = &entry["fields"];
        let info = UpdateInfo::decode(&body).unwrap_or_else(|e| panic!("{name}: {e}"));

        let router = f["router"].as_str().unwrap();
        assert_eq!(info.router, Eui64::parse(router).unwrap());
        assert_eq!(info.router.as_u64(), 0x0016_c001_ff10_a235);
        assert_eq!(info.router.id6().to_string(), router);
        assert_opt("cupsUri", info.cups_uri, &f["cupsUri"]);
        assert_opt("tcUri", info.tc_uri, &f["tcUri"]);
        assert_eq!(
            u64::from(info.cups_cred_crc),
            f["cupsCredCrc"].as_u64().unwrap()
        );
        assert_eq!(
            u64::from(info.tc_cred_crc),
            f["tcCredCrc"].as_u64().unwrap()
        );
        assert!(info.station.eq_str(f["station"].as_str().unwrap()));
        assert!(info.model.eq_str(f["model"].as_str().unwrap()));
        assert_opt("package", info.package, &f["package"]);
        let keys: Vec<u64> = f["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_u64().unwrap())
            .collect();
        assert_eq!(
            info.keys.iter().map(|&k| u64::from(k)).collect::<Vec<_>>(),
            keys
        );
    }
}

#[test]
fn bodies_reencode_byte_for_byte() {
    for (name, _) in index() {
        let body = read(&format!("{name}.json"));
        let info = UpdateInfo::decode(&body).unwrap();
        assert_eq!(info.encoded_len(), body.len(), "{name}");

        let mut out = vec![0u8; MAX_BODY_LEN];
        let n = info.encode(&mut out).unwrap();
        assert_eq!(&out[..n], &body[..], "{name}");

        // Exactly big enough works; one byte less reports the size needed.
        let mut exact = vec![0u8; body.len()];
        assert_eq!(info.encode(&mut exact), Ok(body.len()));
        let mut short = vec![0u8; body.len() - 1];
        assert_eq!(
            info.encode(&mut short),
            Err(cups_core::request::RequestEncodeError::BufferTooSmall { needed: body.len() })
        );

        // The writer path gives the same bytes.
        let mut buf = vec![0u8; MAX_BODY_LEN];
        let mut w: &mut [u8] = &mut buf;
        info.encode_to(&mut w).unwrap();
        let written = MAX_BODY_LEN - w.len();
        assert_eq!(&buf[..written], &body[..]);

        // The same request built from plain text encodes identically.
        let rebuilt = UpdateInfo {
            router: info.router,
            cups_uri: info
                .cups_uri
                .map(|s| JsonStr::from_plain(s.as_plain().unwrap())),
            tc_uri: info
                .tc_uri
                .map(|s| JsonStr::from_plain(s.as_plain().unwrap())),
            cups_cred_crc: info.cups_cred_crc,
            tc_cred_crc: info.tc_cred_crc,
            station: JsonStr::from_plain(info.station.as_plain().unwrap()),
            model: JsonStr::from_plain(info.model.as_plain().unwrap()),
            package: info
                .package
                .map(|s| JsonStr::from_plain(s.as_plain().unwrap())),
            keys: info.keys.clone(),
        };
        assert_eq!(rebuilt, info);
        let n = rebuilt.encode(&mut out).unwrap();
        assert_eq!(&out[..n], &body[..], "{name} from plain");
    }
}

/// The `Host:` value of a captured request.
fn host_of(http: &[u8]) -> String {
    let text = std::str::from_utf8(http).unwrap();
    let line = text.lines().find(|l| l.starts_with("Host: ")).unwrap();
    line["Host: ".len()..].trim_end_matches('\r').to_owned()
}

#[test]
fn http_requests_reproduced_byte_for_byte() {
    for (name, entry) in index() {
        let http = read(&format!("{name}.http"));
        let body = read(&format!("{name}.json"));
        let head = entry["head"].as_str().unwrap().as_bytes();
        assert_eq!(&http[..head.len()], head, "{name}: manifest head vs .http");
        assert_eq!(
            &http[head.len()..],
            &body[..],
            "{name}: .http = head + body"
        );

        let host = host_of(&http);
        assert_eq!(host, "localhost:16140");
        let info = UpdateInfo::decode(&body).unwrap();
        let content_len = info.encoded_len();
        let mut out = vec![0u8; 1024];
        let n = write_station_head(&host, content_len, b"", &mut out).unwrap();
        assert_eq!(n, station_head_len(&host, b""));
        assert_eq!(&out[..n], head, "{name}");
        let m = info.encode(&mut out[n..]).unwrap();
        assert_eq!(&out[..n + m], &http[..], "{name}");
        // The vector's 3-digit length sits after 3 spaces (a 5-character template).
        let field = entry["content_length_field"].as_str().unwrap();
        assert!(
            std::str::from_utf8(&out[..n])
                .unwrap()
                .contains(&format!("{field}\r\n"))
        );
        assert_eq!(entry["content_length_spaces_after_colon"].as_u64(), Some(3));
    }
}

#[test]
fn head_with_token_lines() {
    let auth = b"Authorization: Bearer abc\r\nX-Extra: 1\r\n";
    let mut out = [0u8; 256];
    let n = write_station_head("cups.example.com:443", 7, auth, &mut out).unwrap();
    assert_eq!(
        &out[..n],
        &b"POST /update-info HTTP/1.1\r\nHost: cups.example.com:443\r\nContent-Type: application/json\r\nContent-Length:     7\r\nAuthorization: Bearer abc\r\nX-Extra: 1\r\n\r\n"[..]
    );
    assert_eq!(n, station_head_len("cups.example.com:443", auth));
    let mut short = [0u8; 64];
    assert_eq!(
        write_station_head("cups.example.com:443", 7, auth, &mut short),
        Err(HeadError::BufferTooSmall { needed: n })
    );
}
