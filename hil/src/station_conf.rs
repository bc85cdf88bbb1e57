//! `station.conf` for a station under test: the file `cups-server gateway export` wrote,
//! with short timers and the log settings the harness needs merged into `station_conf`.
//!
//! Setting names and value syntax are the station's own (`src/s2conf.h`, `src-linux/sys_linux.c`):
//! time spans are JSON strings such as `"5s"`, `"2m"`; `log_file` is a path (relative to the
//! home) or `"stderr"`; `log_level` is a level name (`VERBOSE`, `INFO`, ...); `routerid` is the
//! EUI and is never changed here.

use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

/// Name of the file in the station home.
pub const FILE_NAME: &str = "station.conf";
/// The top-level object the station reads.
pub const SECTION: &str = "station_conf";
/// Log level the harness runs stations at: `Connected to MUXS.` and the HTTP status of a
/// rejected CUPS request are logged at VERBOSE.
pub const LOG_LEVEL: &str = "VERBOSE";
/// `log_file` the harness sets: the station logs to stderr, which the harness reads through
/// the process's pipe (locally, or through `ssh`).
pub const LOG_FILE: &str = "stderr";
/// Shortest timer the writer accepts (the station's timers are whole seconds in practice).
pub const MIN_TIMER: Duration = Duration::from_secs(1);
/// Longest timer the writer accepts (the station's own default `CUPS_OKSYNC_INTV` is 24 h).
pub const MAX_TIMER: Duration = Duration::from_secs(24 * 3600);
/// Keys the harness never overrides (set by `gateway export` from the record).
pub const RESERVED_KEYS: &[&str] = &["routerid"];

/// The timers of a station under test.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Timers {
    /// `CUPS_RESYNC_INTV`: next CUPS attempt after a failure or a CUPS change (station: 1m).
    pub cups_resync: Duration,
    /// `CUPS_OKSYNC_INTV`: next CUPS check after a quiet success (station: 24h).
    pub cups_oksync: Duration,
    /// `CUPS_CONN_TIMEOUT`: CUPS connection timeout (station: 60s).
    pub cups_conn_timeout: Duration,
    /// `TC_TIMEOUT`: TC connection timeout (station: 60s).
    pub tc_timeout: Duration,
}

impl Default for Timers {
    /// Short timers so a scenario takes seconds.
    fn default() -> Self {
        Self {
            cups_resync: Duration::from_secs(3),
            cups_oksync: Duration::from_secs(20),
            cups_conn_timeout: Duration::from_secs(10),
            tc_timeout: Duration::from_secs(10),
        }
    }
}

/// Why `station.conf` could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StationConfError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The exported file is not the JSON object the station reads.
    #[error("{path} is not a station.conf object with a \"station_conf\" section: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A timer outside [`MIN_TIMER`]..=[`MAX_TIMER`].
    #[error("{name} = {value:?} is outside 1s..=24h")]
    Timer {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: Duration,
    },
    /// An extra entry tried to replace a reserved key.
    #[error("station.conf key {0:?} is set by `gateway export` and cannot be overridden")]
    Reserved(String),
}

/// A time span in the station's syntax: whole seconds (`"5s"`), or minutes/hours when exact.
#[must_use]
pub fn span(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// The `station_conf` entries the harness sets: timers, `log_file`, `log_level`, plus
/// `extra` (which may not replace `routerid`).
///
/// # Errors
/// A timer out of range or a reserved key in `extra`.
pub fn harness_entries(
    timers: &Timers,
    log_file: &str,
    extra: &Map<String, Value>,
) -> Result<Map<String, Value>, StationConfError> {
    let mut m = Map::new();
    for (name, value) in [
        ("CUPS_RESYNC_INTV", timers.cups_resync),
        ("CUPS_OKSYNC_INTV", timers.cups_oksync),
        ("CUPS_CONN_TIMEOUT", timers.cups_conn_timeout),
        ("TC_TIMEOUT", timers.tc_timeout),
    ] {
        if value < MIN_TIMER || value > MAX_TIMER {
            return Err(StationConfError::Timer { name, value });
        }
        m.insert(name.to_owned(), Value::String(span(value)));
    }
    m.insert("log_file".to_owned(), Value::String(log_file.to_owned()));
    m.insert("log_level".to_owned(), Value::String(LOG_LEVEL.to_owned()));
    for (k, v) in extra {
        if RESERVED_KEYS.contains(&k.as_str()) {
            return Err(StationConfError::Reserved(k.clone()));
        }
        m.insert(k.clone(), v.clone());
    }
    Ok(m)
}

/// Merge `entries` into the `station_conf` section of `text` (an exported `station.conf`);
/// everything else is kept.
///
/// # Errors
/// `text` is not a JSON object with a `station_conf` object.
pub fn merge(text: &str, entries: &Map<String, Value>) -> Result<String, StationConfError> {
    let malformed = |reason: String| StationConfError::Malformed {
        path: FILE_NAME.to_owned(),
        reason,
    };
    let mut root: Value = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
    let section = root
        .get_mut(SECTION)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| malformed("no station_conf object".to_owned()))?;
    for (k, v) in entries {
        if RESERVED_KEYS.contains(&k.as_str()) {
            return Err(StationConfError::Reserved(k.clone()));
        }
        section.insert(k.clone(), v.clone());
    }
    serde_json::to_string_pretty(&root)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| malformed(e.to_string()))
}

/// Rewrite `home/station.conf` with `entries` merged in.
///
/// # Errors
/// Read/write failure or a malformed file.
pub fn rewrite(home: &Path, entries: &Map<String, Value>) -> Result<(), StationConfError> {
    let path = home.join(FILE_NAME);
    let io = |source| StationConfError::Io {
        path: path.display().to_string(),
        source,
    };
    let text = std::fs::read_to_string(&path).map_err(io)?;
    let merged = merge(&text, entries)?;
    std::fs::write(&path, merged).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORTED: &str = r#"{
  "station_conf": {
    "routerid": "0016c001ff10a235",
    "log_level": "INFO",
    "TLS_SNI": false
  }
}"#;

    #[test]
    fn spans_use_the_station_syntax() {
        assert_eq!(span(Duration::from_secs(5)), "5s");
        assert_eq!(span(Duration::from_secs(90)), "90s");
        assert_eq!(span(Duration::from_secs(120)), "2m");
        assert_eq!(span(Duration::from_secs(7200)), "2h");
        assert_eq!(span(Duration::from_secs(86400)), "24h");
    }

    #[test]
    fn merge_keeps_routerid_and_sets_timers_and_log() {
        let entries = harness_entries(&Timers::default(), LOG_FILE, &Map::new()).expect("ok");
        let merged = merge(EXPORTED, &entries).expect("merge");
        let v: Value = serde_json::from_str(&merged).expect("json");
        let c = &v[SECTION];
        assert_eq!(c["routerid"], "0016c001ff10a235");
        assert_eq!(c["TLS_SNI"], false);
        assert_eq!(c["log_level"], LOG_LEVEL);
        assert_eq!(c["log_file"], LOG_FILE);
        assert_eq!(c["CUPS_RESYNC_INTV"], "3s");
        assert_eq!(c["CUPS_OKSYNC_INTV"], "20s");
        assert_eq!(c["CUPS_CONN_TIMEOUT"], "10s");
        assert_eq!(c["TC_TIMEOUT"], "10s");
    }

    #[test]
    fn timer_limits() {
        let with = |d| Timers {
            cups_resync: d,
            ..Timers::default()
        };
        assert!(harness_entries(&with(MIN_TIMER), LOG_FILE, &Map::new()).is_ok());
        assert!(harness_entries(&with(MAX_TIMER), LOG_FILE, &Map::new()).is_ok());
        assert!(
            harness_entries(
                &with(MAX_TIMER - Duration::from_secs(1)),
                LOG_FILE,
                &Map::new()
            )
            .is_ok()
        );
        assert!(matches!(
            harness_entries(
                &with(MIN_TIMER - Duration::from_millis(1)),
                LOG_FILE,
                &Map::new()
            ),
            Err(StationConfError::Timer {
                name: "CUPS_RESYNC_INTV",
                ..
            })
        ));
        assert!(
            harness_entries(
                &with(MAX_TIMER + Duration::from_secs(1)),
                LOG_FILE,
                &Map::new()
            )
            .is_err()
        );
    }

    #[test]
    fn reserved_and_malformed() {
        let mut extra = Map::new();
        extra.insert("routerid".into(), Value::String("::1".into()));
        assert!(matches!(
            harness_entries(&Timers::default(), LOG_FILE, &extra),
            Err(StationConfError::Reserved(_))
        ));
        assert!(merge(EXPORTED, &extra).is_err());
        for bad in ["", "[]", "{}", r#"{"station_conf": 1}"#] {
            assert!(
                matches!(
                    merge(bad, &Map::new()),
                    Err(StationConfError::Malformed { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn rewrite_in_place() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join(FILE_NAME), EXPORTED).expect("write");
        let mut extra = Map::new();
        extra.insert("TLS_SNI".into(), Value::Bool(true));
        let entries = harness_entries(&Timers::default(), "stderr", &extra).expect("ok");
        rewrite(dir.path(), &entries).expect("rewrite");
        let v: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(FILE_NAME)).expect("read"),
        )
        .expect("json");
        assert_eq!(v[SECTION]["TLS_SNI"], true);
        assert_eq!(v[SECTION]["log_file"], "stderr");
        assert!(rewrite(&dir.path().join("missing"), &entries).is_err());
    }
}
