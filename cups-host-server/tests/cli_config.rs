//! Configuration precedence (flags > environment > `.env` > defaults) on `config.rs` directly,
//! with injected environment maps; plus `cups-server config` end to end.

mod cli_support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use cups_host_server::config::{
    ConfigError, Environment, MAX_CREDENTIAL_VALID_DAYS, Overrides, Settings, Source,
    settings_markdown,
};
use serde_json::Value;

fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn env(vars: &[(&str, &str)], dotenv: &[(&str, &str)]) -> Environment {
    Environment::from_maps(map(vars), map(dotenv))
}

/// One setting of the precedence table.
struct Row {
    /// Environment name.
    var: &'static str,
    /// Values given as flag, in the environment and in `.env` (all different).
    values: [&'static str; 3],
    /// The default, as `get` renders it.
    default: &'static str,
    /// Set the flag from text.
    set_flag: fn(&mut Overrides, &str),
    /// The value (rendered) and its source.
    get: fn(&Settings) -> (String, Source),
}

fn path_text(p: &Path) -> String {
    p.display().to_string()
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            var: "CUPS_DATA_DIR",
            values: ["/flag", "/env", "/dotenv"],
            default: "data",
            set_flag: |o, v| o.data_dir = Some(PathBuf::from(v)),
            get: |s| (path_text(&s.data_dir.value), s.data_dir.source.clone()),
        },
        Row {
            var: "CERT_PATH",
            values: ["/f", "/e", "/d"],
            default: "certs",
            set_flag: |o, v| o.cert_path = Some(PathBuf::from(v)),
            get: |s| (path_text(&s.cert_path.value), s.cert_path.source.clone()),
        },
        Row {
            var: "CUPS_LOG_FORMAT",
            values: ["json", "text", "json"],
            default: "text",
            set_flag: |o, v| o.log_format = Some(v.parse_with_clap()),
            get: |s| (s.log_format.value.to_string(), s.log_format.source.clone()),
        },
        Row {
            var: "CUPS_URI",
            values: [
                "https://flag.example:1",
                "https://env.example:2",
                "https://dotenv.example:3",
            ],
            default: "-",
            set_flag: |o, v| o.cups_uri = Some(v.to_owned()),
            get: |s| {
                (
                    s.cups_uri.value.clone().unwrap_or_else(|| "-".into()),
                    s.cups_uri.source.clone(),
                )
            },
        },
        Row {
            var: "TC_URI",
            values: ["wss://f:1", "wss://e:2", "wss://d:3"],
            default: "-",
            set_flag: |o, v| o.tc_uri = Some(v.to_owned()),
            get: |s| {
                (
                    s.tc_uri.value.clone().unwrap_or_else(|| "-".into()),
                    s.tc_uri.source.clone(),
                )
            },
        },
        Row {
            var: "CUPS_LISTEN",
            values: ["127.0.0.1:1", "127.0.0.1:2", "[::1]:3"],
            default: "0.0.0.0:16050",
            set_flag: |o, v| o.listen = Some(v.parse().expect("addr")),
            get: |s| (s.listen.value.to_string(), s.listen.source.clone()),
        },
        Row {
            var: "CUPS_ADMIN_LISTEN",
            values: ["off", "127.0.0.1:2", "127.0.0.1:3"],
            default: "127.0.0.1:16051",
            set_flag: |o, v| o.admin_listen = Some(v.parse().expect("admin")),
            get: |s| {
                (
                    s.admin_listen.value.to_string(),
                    s.admin_listen.source.clone(),
                )
            },
        },
        Row {
            var: "CUPS_MAX_CONNECTIONS",
            values: ["1", "2", "3"],
            default: "4096",
            set_flag: |o, v| o.max_connections = Some(v.parse().expect("n")),
            get: |s| {
                (
                    s.max_connections.value.to_string(),
                    s.max_connections.source.clone(),
                )
            },
        },
        Row {
            var: "CUPS_CREDENTIAL_VALID_DAYS",
            values: ["100", "200", "300"],
            default: "365",
            set_flag: |o, v| o.credential_valid_days = Some(v.parse().expect("n")),
            get: |s| {
                (
                    s.credential_valid_days.value.to_string(),
                    s.credential_valid_days.source.clone(),
                )
            },
        },
        Row {
            var: "CREDENTIAL_MIN_VALID_DAYS",
            values: ["1", "2", "3"],
            default: "30",
            set_flag: |o, v| o.min_valid_days = Some(v.parse().expect("n")),
            get: |s| {
                (
                    s.min_valid_days.value.to_string(),
                    s.min_valid_days.source.clone(),
                )
            },
        },
        Row {
            var: "CUPS_ALLOW_UNSIGNED",
            values: ["true", "no", "yes"],
            default: "false",
            set_flag: |o, v| o.allow_unsigned = Some(v == "true"),
            get: |s| {
                (
                    s.allow_unsigned.value.to_string(),
                    s.allow_unsigned.source.clone(),
                )
            },
        },
        Row {
            var: "CUPS_BOOTSTRAP_TOKEN_SHA256",
            values: [
                "1111111111111111111111111111111111111111111111111111111111111111",
                "2222222222222222222222222222222222222222222222222222222222222222",
                "3333333333333333333333333333333333333333333333333333333333333333",
            ],
            default: "",
            set_flag: |o, v| o.bootstrap_token_sha256 = vec![v.to_owned()],
            get: |s| {
                (
                    s.bootstrap_token_sha256.value.join(","),
                    s.bootstrap_token_sha256.source.clone(),
                )
            },
        },
        Row {
            var: "CUPS_CACHE_CAPACITY",
            values: ["0", "7", "9"],
            default: "10000",
            set_flag: |o, v| o.cache_capacity = Some(v.parse().expect("n")),
            get: |s| {
                (
                    s.cache_capacity.value.to_string(),
                    s.cache_capacity.source.clone(),
                )
            },
        },
    ]
}

/// clap's parser for a `ValueEnum`, so the table can set typed flags from text.
trait ParseWithClap {
    fn parse_with_clap<T: clap::ValueEnum>(&self) -> T;
}

impl ParseWithClap for str {
    fn parse_with_clap<T: clap::ValueEnum>(&self) -> T {
        T::from_str(self, true).expect("valid value")
    }
}

/// Flags, environment, `.env`, expected value, expected source.
type Case<'a> = (
    &'a Overrides,
    &'a [(&'a str, &'a str)],
    &'a [(&'a str, &'a str)],
    String,
    Source,
);

#[test]
fn precedence_table() {
    for row in rows() {
        let [flag_v, env_v, dotenv_v] = row.values;
        let mut flags = Overrides::default();
        (row.set_flag)(&mut flags, flag_v);
        let render = |text: &str| {
            // Values the setting normalises or renders differently.
            match (row.var, text) {
                ("CUPS_ALLOW_UNSIGNED", "yes") => "true".to_owned(),
                ("CUPS_ALLOW_UNSIGNED", "no") => "false".to_owned(),
                ("CUPS_LISTEN", "[::1]:3") => "[::1]:3".to_owned(),
                _ => text.to_owned(),
            }
        };
        let cases: [Case<'_>; 4] = [
            (
                &flags,
                &[(row.var, env_v)],
                &[(row.var, dotenv_v)],
                render(flag_v),
                Source::Flag(""),
            ),
            (
                &Overrides::default(),
                &[(row.var, env_v)],
                &[(row.var, dotenv_v)],
                render(env_v),
                Source::Env(row.var),
            ),
            (
                &Overrides::default(),
                &[],
                &[(row.var, dotenv_v)],
                render(dotenv_v),
                Source::DotEnv(row.var),
            ),
            (
                &Overrides::default(),
                &[],
                &[],
                row.default.to_owned(),
                Source::Default,
            ),
        ];
        for (i, (f, vars, dotenv, want, want_source)) in cases.into_iter().enumerate() {
            let s = Settings::resolve(f, &env(vars, dotenv))
                .unwrap_or_else(|e| panic!("{} case {i}: {e}", row.var));
            let (value, source) = (row.get)(&s);
            assert_eq!(value, want, "{} case {i}", row.var);
            match want_source {
                Source::Flag(_) => assert!(
                    matches!(source, Source::Flag(_)),
                    "{} case {i}: {source:?}",
                    row.var
                ),
                other => assert_eq!(source, other, "{} case {i}", row.var),
            }
        }
    }
}

#[test]
fn empty_values_count_as_unset() {
    // The replaced system's .env.example leaves CREDENTIAL_MIN_VALID_DAYS empty.
    let s = Settings::resolve(
        &Overrides::default(),
        &env(
            &[("CREDENTIAL_MIN_VALID_DAYS", ""), ("CUPS_URI", "")],
            &[("CREDENTIAL_MIN_VALID_DAYS", "7")],
        ),
    )
    .expect("resolves");
    assert_eq!(s.min_valid_days.value, 7);
    assert_eq!(
        s.min_valid_days.source,
        Source::DotEnv("CREDENTIAL_MIN_VALID_DAYS")
    );
    assert_eq!(s.cups_uri.value, None);
}

#[test]
fn store_choice() {
    let fs_default = Settings::resolve(&Overrides::default(), &env(&[], &[])).expect("ok");
    assert_eq!(fs_default.store.value.to_string(), "fs");
    // A bucket selects S3 unless a store is chosen.
    let s3 = Settings::resolve(
        &Overrides::default(),
        &env(
            &[],
            &[("S3_BUCKET_NAME", "cups"), ("S3_SECRET_ACCESS_KEY", "hush")],
        ),
    )
    .expect("ok");
    assert_eq!(s3.store.value.to_string(), "s3");
    assert!(matches!(s3.store.source, Source::Derived(_)));
    let b = s3.s3.as_ref().expect("s3 settings");
    assert_eq!(b.region.value, "us-east-1");
    assert!(!format!("{b:?}").contains("hush"), "Debug leaks the secret");
    let rows = s3.rows();
    assert!(rows.iter().all(|r| !r.value.contains("hush")), "{rows:?}");
    let secret = rows
        .iter()
        .find(|r| r.key == "s3_secret_access_key")
        .expect("row");
    assert_eq!(secret.source, ".env S3_SECRET_ACCESS_KEY");
    let forced_fs = Settings::resolve(
        &Overrides::default(),
        &env(&[("CUPS_STORE", "fs")], &[("S3_BUCKET_NAME", "cups")]),
    )
    .expect("ok");
    assert_eq!(forced_fs.store.value.to_string(), "fs");
    // S3 without a bucket is an error naming the variable.
    let err = Settings::resolve(&Overrides::default(), &env(&[("CUPS_STORE", "s3")], &[]))
        .expect_err("no bucket");
    assert!(matches!(err, ConfigError::S3WithoutBucket { .. }));
    assert!(err.to_string().contains("S3_BUCKET_NAME"), "{err}");
}

#[test]
fn invalid_values_name_their_source() {
    for (vars, dotenv, needle) in [
        (&[("CUPS_LISTEN", "nowhere")][..], &[][..], "CUPS_LISTEN"),
        (
            &[],
            &[("CUPS_MAX_CONNECTIONS", "0")][..],
            "CUPS_MAX_CONNECTIONS (in .env)",
        ),
        (
            &[("CUPS_ALLOW_UNSIGNED", "perhaps")],
            &[],
            "CUPS_ALLOW_UNSIGNED",
        ),
        (&[("CUPS_URI", "ftp://x:1")], &[], "CUPS_URI"),
        (&[("TC_URI", "https://not-ws:1")], &[], "TC_URI"),
        (
            &[("CUPS_BOOTSTRAP_TOKEN_SHA256", "abc")],
            &[],
            "CUPS_BOOTSTRAP_TOKEN_SHA256",
        ),
        (&[("CUPS_STORE", "ftp")], &[], "CUPS_STORE"),
        (&[("CUPS_LOG_FORMAT", "xml")], &[], "CUPS_LOG_FORMAT"),
        (
            &[("CUPS_CREDENTIAL_VALID_DAYS", "0")],
            &[],
            "CUPS_CREDENTIAL_VALID_DAYS",
        ),
    ] {
        let err =
            Settings::resolve(&Overrides::default(), &env(vars, dotenv)).expect_err("invalid");
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
    let flags = Overrides {
        max_connections: Some(0),
        ..Overrides::default()
    };
    let err = Settings::resolve(&flags, &env(&[], &[])).expect_err("zero");
    assert!(err.to_string().contains("--max-connections"), "{err}");
}

#[test]
fn validity_limits() {
    let days = |validity: &str, min: &str| {
        Settings::resolve(
            &Overrides::default(),
            &env(
                &[
                    ("CUPS_CREDENTIAL_VALID_DAYS", validity),
                    ("CREDENTIAL_MIN_VALID_DAYS", min),
                ],
                &[],
            ),
        )
    };
    let max = MAX_CREDENTIAL_VALID_DAYS.to_string();
    let above = (MAX_CREDENTIAL_VALID_DAYS + 1).to_string();
    let below = (MAX_CREDENTIAL_VALID_DAYS - 1).to_string();
    assert!(days(&max, "30").is_ok(), "at the limit");
    assert!(days(&below, "30").is_ok(), "below the limit");
    assert!(days(&above, "30").is_err(), "above the limit");
    // The renewal threshold must be below the validity.
    assert!(days("30", "29").is_ok());
    assert!(matches!(
        days("30", "30"),
        Err(ConfigError::ValidityTooShort { .. })
    ));
    assert!(days("30", "31").is_err());
}

#[test]
fn dotenv_file_is_read_and_never_overrides_the_environment() {
    let dir = cli_support::workdir();
    let file = dir.path().join(".env");
    fs::write(
        &file,
        "# comment\nCERT_PATH=pki-from-file\nCUPS_URI=\"https://from-file.example:443\"\n",
    )
    .expect("write");
    let e = Environment::load(
        map(&[("CUPS_URI", "https://from-env.example:443")]),
        None,
        &file,
    )
    .expect("loads");
    assert_eq!(e.dotenv_path(), Some(file.as_path()));
    let s = Settings::resolve(&Overrides::default(), &e).expect("ok");
    assert_eq!(s.cert_path.value, PathBuf::from("pki-from-file"));
    assert_eq!(s.cert_path.source, Source::DotEnv("CERT_PATH"));
    assert_eq!(
        s.cups_uri.value.as_deref(),
        Some("https://from-env.example:443")
    );
    // A missing default file is fine; a missing named file is not; a malformed one is not.
    let missing = dir.path().join("nope.env");
    assert!(Environment::load(BTreeMap::new(), None, &missing).is_ok());
    assert!(matches!(
        Environment::load(BTreeMap::new(), Some(&missing), &file),
        Err(ConfigError::DotEnv { .. })
    ));
    let bad = dir.path().join("bad.env");
    fs::write(&bad, "NOT A LINE\n").expect("write");
    assert!(Environment::load(BTreeMap::new(), None, &bad).is_err());
}

#[test]
fn docs_table_lists_every_variable() {
    let md = settings_markdown();
    for var in [
        "S3_BUCKET_NAME",
        "S3_BUCKET_REGION",
        "S3_BUCKET_ENDPOINT",
        "S3_ACCESS_KEY_ID",
        "S3_SECRET_ACCESS_KEY",
        "CERT_PATH",
        "CREDENTIAL_MIN_VALID_DAYS",
        "TC_URI",
        "CUPS_URI",
        "CUPS_LISTEN",
        "CUPS_ADMIN_LISTEN",
        "CUPS_CREDENTIAL_VALID_DAYS",
        "CUPS_ALLOW_UNSIGNED",
        "CUPS_BOOTSTRAP_TOKEN_SHA256",
        "CUPS_DATA_DIR",
        "CUPS_STORE",
    ] {
        assert!(md.contains(&format!("`{var}`")), "{var} missing");
    }
}

#[test]
fn config_command_shows_sources_and_masks_secrets() {
    let dir = cli_support::workdir();
    let d = dir.path();
    fs::write(
        d.join(".env"),
        "CERT_PATH=from-dotenv\nCUPS_DATA_DIR=dotenv-loses\nS3_BUCKET_NAME=b\nS3_SECRET_ACCESS_KEY=topsecret\n",
    )
    .expect(".env");
    let out = cli_support::ok_env(
        d,
        &["--store", "fs", "config", "--json"],
        &[("CUPS_DATA_DIR", "from-env"), ("TC_URI", "wss://lns:8887")],
    );
    assert!(!out.contains("topsecret"), "{out}");
    let rows: Value = serde_json::from_str(&out).expect("json");
    let get = |key: &str| {
        rows.as_array()
            .expect("array")
            .iter()
            .find(|r| r["key"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("no {key}"))
    };
    assert_eq!(get("store")["value"], "fs");
    assert_eq!(get("store")["source"], "flag --store");
    assert_eq!(get("data_dir")["value"], "from-env");
    assert_eq!(get("data_dir")["source"], "env CUPS_DATA_DIR");
    assert_eq!(get("cert_path")["source"], ".env CERT_PATH");
    assert_eq!(get("tc_uri")["value"], "wss://lns:8887");
    assert_eq!(get("listen")["source"], "default");
    assert_eq!(get("s3_secret_access_key")["value"], "********");
    let table = cli_support::ok(d, &["config"]);
    assert!(table.contains("from-dotenv"), "{table}");
    assert!(!table.contains("topsecret"), "{table}");
    let docs = cli_support::ok(d, &["config", "--docs"]);
    assert!(
        docs.starts_with("| flag | environment | default | meaning |"),
        "{docs}"
    );
    // A bad value is one line naming its source, exit 1.
    let out = cli_support::run_env(d, &["config"], &[("CUPS_LISTEN", "bogus")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: CUPS_LISTEN: invalid value \"bogus\""),
        "{err}"
    );
}
