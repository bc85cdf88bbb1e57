//! The Basics Station log, line by line, into typed events.
//!
//! The station writes one line per message (`src/log.c`):
//!
//! ```text
//! 2026-11-26 17:32:25.123 [CUP:INFO] Connecting to CUPS-boot ... https://localhost:16050 (try #3)
//! └─ UTC, milliseconds ─┘ └mod┘└lvl┘ └─ message ────────────────────────────────────────────────┘
//! ```
//!
//! The module is three characters (`SYS`, `CUP`, `TCE`, `AIO`, `any`, ..., or `S00`.. for radio
//! slave processes), the level one of `XDEB DEBU VERB INFO NOTI WARN ERRO CRIT`. Messages are
//! matched against the texts the station prints in `src/cups.c` and `src/tc.c` (release 2.0.6);
//! anything else is [`StationEvent::Other`]. Parsing never fails on input: a line without the
//! header is [`ParsedLine::Raw`].
//!
//! Some events the scenarios need are logged at `VERB` (`Connected to MUXS.`, the HTTP status
//! of a rejected CUPS request): [`crate::station_conf`] sets `log_level` to `VERBOSE`.

use std::fmt;

/// Longest log line the parser looks at (the station's own buffer is `LOGLINE_LEN` = 512
/// bytes; longer input is cut there).
pub const MAX_LINE_LEN: usize = 512;
/// Length of the timestamp the station writes (`YYYY-MM-DD HH:MM:SS.mmm`).
pub const TIMESTAMP_LEN: usize = 23;
/// Length of a module name in the header.
pub const MODULE_LEN: usize = 3;
/// Length of a level name in the header.
pub const LEVEL_LEN: usize = 4;

/// A station log level (`LVLSTR` in `src/log.c`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, serde::Serialize)]
pub enum Level {
    /// `XDEB`.
    XDebug,
    /// `DEBU`.
    Debug,
    /// `VERB`.
    Verbose,
    /// `INFO`.
    Info,
    /// `NOTI`.
    Notice,
    /// `WARN`.
    Warning,
    /// `ERRO`.
    Error,
    /// `CRIT`.
    Critical,
}

impl Level {
    /// From the four letters of the header.
    #[must_use]
    pub fn from_tag(tag: &str) -> Option<Self> {
        Some(match tag {
            "XDEB" => Self::XDebug,
            "DEBU" => Self::Debug,
            "VERB" => Self::Verbose,
            "INFO" => Self::Info,
            "NOTI" => Self::Notice,
            "WARN" => Self::Warning,
            "ERRO" => Self::Error,
            "CRIT" => Self::Critical,
            _ => return None,
        })
    }
}

/// Which credential set the station used for a CUPS attempt (`sys_credset2str`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
pub enum CredSet {
    /// `cups.*` (no suffix).
    Regular,
    /// `cups-bak.*`.
    Backup,
    /// `cups-boot.*`.
    Bootstrap,
}

impl CredSet {
    /// From the suffix after `CUPS` (``, `-bak`, `-boot`).
    fn from_suffix(s: &str) -> Option<Self> {
        match s {
            "" => Some(Self::Regular),
            "-bak" => Some(Self::Backup),
            "-boot" => Some(Self::Bootstrap),
            _ => None,
        }
    }
}

/// CUPS or TC credentials.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
pub enum CredKind {
    /// `cups.*`.
    Cups,
    /// `tc.*`.
    Tc,
}

/// What one station log message means for the scenarios.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize)]
#[non_exhaustive]
pub enum StationEvent {
    /// `Starting a CUPS session in N seconds.`
    CupsScheduled {
        /// Delay in seconds.
        delay_secs: u32,
    },
    /// `Connecting to CUPS[-bak|-boot] ... URI (try #N)`.
    CupsConnecting {
        /// The credential set.
        set: CredSet,
        /// The URI.
        uri: String,
        /// Attempt number (1 = first).
        attempt: u32,
    },
    /// `No CUPS[-bak|-boot] URI configured`.
    CupsNoUri {
        /// The credential set.
        set: CredSet,
    },
    /// `Failed to retrieve TCURI from CUPS: (STATUS) TEXT` (a non-200 answer; VERBOSE).
    CupsRejected {
        /// HTTP status.
        status: u16,
    },
    /// `CUPS connect failed - URI: ...` or `Bad CUPS URI: ...`.
    CupsConnectFailed,
    /// `CUPS timed out`.
    CupsTimeout,
    /// `CUPS Protocol error. Closing connection.`
    CupsProtocolError,
    /// `CUPS URI updated: URI`.
    CupsUriUpdated {
        /// The new URI.
        uri: String,
    },
    /// `TC URI updated: URI`.
    TcUriUpdated {
        /// The new URI.
        uri: String,
    },
    /// `CUPS credentials updated (N bytes)` / `TC credentials updated (N bytes)`.
    CredentialsUpdated {
        /// Which set.
        kind: CredKind,
        /// Blob length.
        len: u32,
    },
    /// `Update received (N bytes)`.
    UpdateReceived {
        /// Update length.
        len: u32,
    },
    /// `CUPS provided signature len=N keycrc=XXXXXXXX`.
    SignatureProvided {
        /// DER signature length.
        len: u32,
        /// The key CRC the server named.
        key_crc: u32,
    },
    /// `ECDSA key#N -> VERIFIED` / `-> NOT verified`.
    KeyChecked {
        /// `sig-N.key` index.
        key: u32,
        /// Whether it verified the signature.
        verified: bool,
    },
    /// `No key could verify signature. Tried N keys`.
    SignatureRejected {
        /// Keys tried.
        tried: u32,
    },
    /// `Keyfile present, but no signature provided. Aborting update.`
    SignatureMissing,
    /// `No Key. No Sig. UPDATE.` (an unsigned update run by a station without keys).
    UnsignedUpdateAccepted,
    /// `Running update.bin as background process`.
    UpdateRunning,
    /// `Aborting update.`
    UpdateAborted,
    /// `CUPS provided TC updates (uri|credentials|uri/credentials) ...`.
    TcUpdatesProvided {
        /// `uri`, `credentials` or `uri/credentials`.
        what: String,
    },
    /// `CUPS provided CUPS updates (...) - reconnecting in SPAN`.
    CupsUpdatesProvided {
        /// `uri`, `credentials` or `uri/credentials`.
        what: String,
        /// When it reconnects (station's time-span text).
        next: String,
    },
    /// `Interaction with CUPS done[ (no updates)] - next regular check in SPAN`.
    CupsDone {
        /// The server had nothing to send.
        no_updates: bool,
        /// When it checks next.
        next: String,
    },
    /// `Interaction with CUPS failed - retrying in SPAN`.
    CupsFailed {
        /// When it retries.
        next: String,
    },
    /// `Starting TC engine`.
    TcStarting,
    /// `Terminating TC engine`.
    TcStopping,
    /// `Connecting to INFOS: URI`.
    TcInfosConnecting {
        /// The TC URI.
        uri: String,
    },
    /// `Infos: ROUTER MUXS URI` (router-info answered).
    TcInfos {
        /// The router id echoed by the LNS.
        router: String,
        /// The muxs id.
        muxs: String,
        /// The muxs URI.
        uri: String,
    },
    /// `Infos error: ROUTER ERROR` (router-info refused).
    TcInfosError {
        /// The error text.
        error: String,
    },
    /// `Connected to MUXS.` (VERBOSE).
    TcMuxsConnected,
    /// `Connection to MUXS closed in state N` (VERBOSE).
    TcMuxsClosed {
        /// The TC state number.
        state: i32,
    },
    /// `TC engine timed out`.
    TcTimeout,
    /// `TC connect failed - URI: ...` / `Muxs connect failed - URI: ...`.
    TcConnectFailed,
    /// `No TC URI configured`.
    TcNoUri,
    /// `MUXS|INFOS reconnect backoff Ns (retry N)`.
    TcBackoff {
        /// Backoff for the muxs socket (else router-info).
        muxs: bool,
        /// Seconds.
        secs: u32,
        /// Retry count.
        retry: u32,
    },
    /// `Router rejected or retry limit reached. Invoking CUPS.`
    TcGaveUpInvokingCups,
    /// Anything else.
    Other,
}

/// One log line, split.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ParsedLine<'a> {
    /// A line with the station's header.
    Entry {
        /// `YYYY-MM-DD HH:MM:SS.mmm` (UTC).
        time: &'a str,
        /// Module tag (`CUP`, `TCE`, `SYS`, `any`, `S00`, ...).
        module: &'a str,
        /// Level.
        level: Level,
        /// The message.
        message: &'a str,
        /// What it means.
        event: StationEvent,
    },
    /// A line without the header (continuations, output of update scripts, ...).
    Raw(&'a str),
}

/// Split one line (without its newline) and classify its message.
#[must_use]
pub fn parse_line(line: &str) -> ParsedLine<'_> {
    let line = cut(line.trim_end_matches(['\r', '\n']), MAX_LINE_LEN);
    match header(line) {
        Some((time, module, level, message)) => ParsedLine::Entry {
            time,
            module,
            level,
            message,
            event: classify(message),
        },
        None => ParsedLine::Raw(line),
    }
}

/// `line` cut to at most `max` bytes on a character boundary.
fn cut(line: &str, max: usize) -> &str {
    if line.len() <= max {
        return line;
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// `TIME [MOD:LVL] message`.
fn header(line: &str) -> Option<(&str, &str, Level, &str)> {
    let time = line.get(..TIMESTAMP_LEN)?;
    let b = time.as_bytes();
    let digits_ok = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22]
        .iter()
        .all(|&i| b.get(i).is_some_and(u8::is_ascii_digit));
    let seps_ok = [
        (4, b'-'),
        (7, b'-'),
        (10, b' '),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ]
    .iter()
    .all(|&(i, c)| b.get(i) == Some(&c));
    if !digits_ok || !seps_ok {
        return None;
    }
    let rest = line.get(TIMESTAMP_LEN..)?.strip_prefix(" [")?;
    let module = rest.get(..MODULE_LEN)?;
    let rest = rest.get(MODULE_LEN..)?.strip_prefix(':')?;
    let level = Level::from_tag(rest.get(..LEVEL_LEN)?)?;
    let rest = rest.get(LEVEL_LEN..)?.strip_prefix(']')?;
    let message = rest.strip_prefix(' ').unwrap_or(rest);
    Some((time, module, level, message))
}

/// A decimal number at the start of `s`, and the rest.
fn number(s: &str) -> Option<(u32, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n = s.get(..end)?.parse().ok()?;
    Some((n, &s[end..]))
}

/// `(N bytes)` at the start of `s`.
fn bytes_len(s: &str) -> Option<u32> {
    let (n, rest) = number(s.strip_prefix('(')?)?;
    (rest == " bytes)").then_some(n)
}

/// The time span after `marker` (the station's `%~T`).
fn span_after(s: &str, marker: &str) -> Option<String> {
    s.split_once(marker).map(|(_, span)| span.trim().to_owned())
}

/// Map a message to its event.
#[must_use]
pub fn classify(msg: &str) -> StationEvent {
    classify_cups(msg)
        .or_else(|| classify_update(msg))
        .or_else(|| classify_tc(msg))
        .unwrap_or(StationEvent::Other)
}

fn classify_cups(msg: &str) -> Option<StationEvent> {
    use StationEvent as E;
    if let Some(rest) = msg.strip_prefix("Starting a CUPS session in ") {
        let (delay_secs, rest) = number(rest)?;
        return (rest == " seconds.").then_some(E::CupsScheduled { delay_secs });
    }
    if let Some(rest) = msg.strip_prefix("Connecting to CUPS") {
        let (suffix, rest) = rest.split_once(" ... ")?;
        let set = CredSet::from_suffix(suffix)?;
        let (uri, tail) = rest.rsplit_once(" (try #")?;
        let (attempt, end) = number(tail)?;
        return (end == ")").then(|| E::CupsConnecting {
            set,
            uri: uri.to_owned(),
            attempt,
        });
    }
    if let Some(rest) = msg.strip_prefix("No CUPS") {
        let suffix = rest.strip_suffix(" URI configured")?;
        return Some(E::CupsNoUri {
            set: CredSet::from_suffix(suffix)?,
        });
    }
    if let Some(rest) = msg.strip_prefix("Failed to retrieve TCURI from CUPS: (") {
        let (status, _) = rest.split_once(')')?;
        return Some(E::CupsRejected {
            status: status.trim().parse().ok()?,
        });
    }
    if msg.starts_with("CUPS connect failed - URI: ") || msg.starts_with("Bad CUPS URI: ") {
        return Some(E::CupsConnectFailed);
    }
    if msg == "CUPS timed out" {
        return Some(E::CupsTimeout);
    }
    if msg == "CUPS Protocol error. Closing connection." {
        return Some(E::CupsProtocolError);
    }
    if let Some(uri) = msg.strip_prefix("CUPS URI updated: ") {
        return Some(E::CupsUriUpdated {
            uri: uri.to_owned(),
        });
    }
    if let Some(uri) = msg.strip_prefix("TC URI updated: ") {
        return Some(E::TcUriUpdated {
            uri: uri.to_owned(),
        });
    }
    for (prefix, kind) in [
        ("CUPS credentials updated ", CredKind::Cups),
        ("TC credentials updated ", CredKind::Tc),
    ] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            return Some(E::CredentialsUpdated {
                kind,
                len: bytes_len(rest)?,
            });
        }
    }
    if let Some(rest) = msg.strip_prefix("CUPS provided TC updates (") {
        let (what, _) = rest.split_once(')')?;
        return Some(E::TcUpdatesProvided {
            what: what.to_owned(),
        });
    }
    if let Some(rest) = msg.strip_prefix("CUPS provided CUPS updates (") {
        let (what, tail) = rest.split_once(')')?;
        return Some(E::CupsUpdatesProvided {
            what: what.to_owned(),
            next: span_after(tail, "reconnecting in ")?,
        });
    }
    if let Some(rest) = msg.strip_prefix("Interaction with CUPS done") {
        return Some(E::CupsDone {
            no_updates: rest.starts_with(" (no updates)"),
            next: span_after(rest, "next regular check in ")?,
        });
    }
    if let Some(rest) = msg.strip_prefix("Interaction with CUPS failed") {
        return Some(E::CupsFailed {
            next: span_after(rest, "retrying in ")?,
        });
    }
    None
}

fn classify_update(msg: &str) -> Option<StationEvent> {
    use StationEvent as E;
    if let Some(rest) = msg.strip_prefix("Update received ") {
        // `Update received (N bytes) but failed to write (ignored)` is not a reception.
        return bytes_len(rest).map(|len| E::UpdateReceived { len });
    }
    if let Some(rest) = msg.strip_prefix("CUPS provided signature len=") {
        let (len, rest) = number(rest)?;
        let hex = rest.strip_prefix(" keycrc=")?;
        return Some(E::SignatureProvided {
            len,
            key_crc: u32::from_str_radix(hex.trim(), 16).ok()?,
        });
    }
    if let Some(rest) = msg.strip_prefix("ECDSA key#") {
        let (key, rest) = number(rest)?;
        let verified = match rest {
            " -> VERIFIED" => true,
            " -> NOT verified" => false,
            _ => return None,
        };
        return Some(E::KeyChecked { key, verified });
    }
    if let Some(rest) = msg.strip_prefix("No key could verify signature. Tried ") {
        let (tried, _) = number(rest)?;
        return Some(E::SignatureRejected { tried });
    }
    Some(match msg {
        "Keyfile present, but no signature provided. Aborting update." => E::SignatureMissing,
        "No Key. No Sig. UPDATE." => E::UnsignedUpdateAccepted,
        "Running update.bin as background process" => E::UpdateRunning,
        "Aborting update." => E::UpdateAborted,
        _ => return None,
    })
}

fn classify_tc(msg: &str) -> Option<StationEvent> {
    use StationEvent as E;
    if let Some(uri) = msg.strip_prefix("Connecting to INFOS: ") {
        return Some(E::TcInfosConnecting {
            uri: uri.to_owned(),
        });
    }
    if let Some(rest) = msg.strip_prefix("Infos error: ") {
        let error = rest.split_once(' ').map_or("", |(_, e)| e);
        return Some(E::TcInfosError {
            error: error.to_owned(),
        });
    }
    if let Some(rest) = msg.strip_prefix("Infos: ") {
        let mut parts = rest.splitn(3, ' ');
        let (router, muxs, uri) = (parts.next()?, parts.next()?, parts.next()?);
        return Some(E::TcInfos {
            router: router.to_owned(),
            muxs: muxs.to_owned(),
            uri: uri.to_owned(),
        });
    }
    if let Some(rest) = msg.strip_prefix("Connection to MUXS closed in state ") {
        return Some(E::TcMuxsClosed {
            state: rest.trim().parse().ok()?,
        });
    }
    for (prefix, muxs) in [
        ("MUXS reconnect backoff ", true),
        ("INFOS reconnect backoff ", false),
    ] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            let (secs, rest) = number(rest)?;
            let (retry, end) = number(rest.strip_prefix("s (retry ")?)?;
            return (end == ")").then_some(E::TcBackoff { muxs, secs, retry });
        }
    }
    if msg.starts_with("TC connect failed - URI: ")
        || msg.starts_with("Muxs connect failed - URI: ")
    {
        return Some(E::TcConnectFailed);
    }
    Some(match msg {
        "Starting TC engine" => E::TcStarting,
        "Terminating TC engine" => E::TcStopping,
        "Connected to MUXS." => E::TcMuxsConnected,
        "TC engine timed out" => E::TcTimeout,
        "No TC URI configured" => E::TcNoUri,
        "Router rejected or retry limit reached. Invoking CUPS." => E::TcGaveUpInvokingCups,
        _ => return None,
    })
}

impl fmt::Display for CredSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Regular => "regular",
            Self::Backup => "backup",
            Self::Bootstrap => "bootstrap",
        })
    }
}

/// Fuzz entry point: any bytes, split into lines, never panic; every parsed entry keeps
/// its parts inside the line.
#[doc(hidden)]
pub fn fuzz_parse_lines(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        match parse_line(line) {
            ParsedLine::Entry { time, message, .. } => {
                assert_eq!(time.len(), TIMESTAMP_LEN);
                assert!(message.len() <= MAX_LINE_LEN);
            }
            ParsedLine::Raw(raw) => assert!(raw.len() <= MAX_LINE_LEN),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "2026-11-26 17:32:25.123";

    fn ev(line: &str) -> StationEvent {
        match parse_line(line) {
            ParsedLine::Entry { event, .. } => event,
            ParsedLine::Raw(r) => panic!("not an entry: {r}"),
        }
    }

    fn at(module: &str, level: &str, msg: &str) -> String {
        format!("{T} [{module}:{level}] {msg}")
    }

    #[test]
    fn header_is_split() {
        let line = at("CUP", "INFO", "Starting a CUPS session in 0 seconds.");
        let ParsedLine::Entry {
            time,
            module,
            level,
            message,
            event,
        } = parse_line(&line)
        else {
            panic!("entry");
        };
        assert_eq!(time, T);
        assert_eq!(module, "CUP");
        assert_eq!(level, Level::Info);
        assert_eq!(message, "Starting a CUPS session in 0 seconds.");
        assert_eq!(event, StationEvent::CupsScheduled { delay_secs: 0 });
        // Slave modules and every level tag.
        for (tag, lvl) in [
            ("XDEB", Level::XDebug),
            ("DEBU", Level::Debug),
            ("VERB", Level::Verbose),
            ("NOTI", Level::Notice),
            ("WARN", Level::Warning),
            ("ERRO", Level::Error),
            ("CRIT", Level::Critical),
        ] {
            let l = at("S00", tag, "x");
            assert!(
                matches!(parse_line(&l), ParsedLine::Entry { level, module: "S00", .. } if level == lvl)
            );
        }
        for raw in [
            "",
            "random output of update.sh",
            "2026-11-26 17:32:25.123 [CUP:WHAT] x",
            "2026-11-26 17:32:25.123 CUP:INFO x",
            "2026-11-26T17:32:25.123 [CUP:INFO] x",
            "2026-11-26 17:32:25.12",
            "2026-11-26 17:32:25.123 [CU",
        ] {
            assert!(matches!(parse_line(raw), ParsedLine::Raw(_)), "{raw:?}");
        }
        // CRLF and a trailing newline are not part of the message.
        assert!(matches!(
            parse_line(&format!("{}\r\n", at("TCE", "INFO", "Starting TC engine"))),
            ParsedLine::Entry {
                event: StationEvent::TcStarting,
                ..
            }
        ));
    }

    #[test]
    fn cups_messages() {
        use StationEvent as E;
        let cases = [
            (
                "Connecting to CUPS ... https://localhost:16050 (try #1)",
                E::CupsConnecting {
                    set: CredSet::Regular,
                    uri: "https://localhost:16050".into(),
                    attempt: 1,
                },
            ),
            (
                "Connecting to CUPS-boot ... https://localhost:16050 (try #3)",
                E::CupsConnecting {
                    set: CredSet::Bootstrap,
                    uri: "https://localhost:16050".into(),
                    attempt: 3,
                },
            ),
            (
                "No CUPS-bak URI configured",
                E::CupsNoUri {
                    set: CredSet::Backup,
                },
            ),
            (
                "Failed to retrieve TCURI from CUPS: (401) Unauthorized",
                E::CupsRejected { status: 401 },
            ),
            (
                "CUPS connect failed - URI: https://localhost:1",
                E::CupsConnectFailed,
            ),
            ("CUPS timed out", E::CupsTimeout),
            (
                "CUPS Protocol error. Closing connection.",
                E::CupsProtocolError,
            ),
            (
                "CUPS URI updated: https://cups2.example.org:443",
                E::CupsUriUpdated {
                    uri: "https://cups2.example.org:443".into(),
                },
            ),
            (
                "TC URI updated: wss://localhost:6090",
                E::TcUriUpdated {
                    uri: "wss://localhost:6090".into(),
                },
            ),
            (
                "CUPS credentials updated (842 bytes)",
                E::CredentialsUpdated {
                    kind: CredKind::Cups,
                    len: 842,
                },
            ),
            (
                "TC credentials updated (850 bytes)",
                E::CredentialsUpdated {
                    kind: CredKind::Tc,
                    len: 850,
                },
            ),
            (
                "CUPS provided TC updates (uri/credentials) - restarting TC engine",
                E::TcUpdatesProvided {
                    what: "uri/credentials".into(),
                },
            ),
            (
                "CUPS provided CUPS updates (credentials) - reconnecting in 1m",
                E::CupsUpdatesProvided {
                    what: "credentials".into(),
                    next: "1m".into(),
                },
            ),
            (
                "Interaction with CUPS done (no updates) - next regular check in 1d",
                E::CupsDone {
                    no_updates: true,
                    next: "1d".into(),
                },
            ),
            (
                "Interaction with CUPS done - next regular check in 30s",
                E::CupsDone {
                    no_updates: false,
                    next: "30s".into(),
                },
            ),
            (
                "Interaction with CUPS failed - retrying in 5s",
                E::CupsFailed { next: "5s".into() },
            ),
        ];
        for (msg, want) in cases {
            assert_eq!(ev(&at("CUP", "INFO", msg)), want, "{msg}");
        }
        // The rejected status is logged without a module (`any`).
        assert_eq!(
            ev(&at(
                "any",
                "VERB",
                "Failed to retrieve TCURI from CUPS: (404) Not Found"
            )),
            E::CupsRejected { status: 404 }
        );
    }

    #[test]
    fn update_messages() {
        use StationEvent as E;
        let cases = [
            (
                "Update received (1024 bytes)",
                E::UpdateReceived { len: 1024 },
            ),
            (
                "Update received (1024 bytes) but failed to write (ignored)",
                E::Other,
            ),
            (
                "CUPS provided signature len=71 keycrc=3B1F0C2A",
                E::SignatureProvided {
                    len: 71,
                    key_crc: 0x3b1f_0c2a,
                },
            ),
            (
                "ECDSA key#0 -> VERIFIED",
                E::KeyChecked {
                    key: 0,
                    verified: true,
                },
            ),
            (
                "ECDSA key#1 -> NOT verified",
                E::KeyChecked {
                    key: 1,
                    verified: false,
                },
            ),
            (
                "No key could verify signature. Tried 2 keys",
                E::SignatureRejected { tried: 2 },
            ),
            (
                "Keyfile present, but no signature provided. Aborting update.",
                E::SignatureMissing,
            ),
            ("No Key. No Sig. UPDATE.", E::UnsignedUpdateAccepted),
            ("Running update.bin as background process", E::UpdateRunning),
            ("Aborting update.", E::UpdateAborted),
        ];
        for (msg, want) in cases {
            assert_eq!(ev(&at("CUP", "INFO", msg)), want, "{msg}");
        }
    }

    #[test]
    fn tc_messages() {
        use StationEvent as E;
        let cases = [
            ("Starting TC engine", E::TcStarting),
            ("Terminating TC engine", E::TcStopping),
            (
                "Connecting to INFOS: wss://localhost:6038",
                E::TcInfosConnecting {
                    uri: "wss://localhost:6038".into(),
                },
            ),
            (
                "Infos: 16:c001:ff10:a235 muxs-::0 wss://localhost:6038/traffic/16:c001:ff10:a235",
                E::TcInfos {
                    router: "16:c001:ff10:a235".into(),
                    muxs: "muxs-::0".into(),
                    uri: "wss://localhost:6038/traffic/16:c001:ff10:a235".into(),
                },
            ),
            (
                "Infos error: 16:c001:ff10:a235 unknown gateway",
                E::TcInfosError {
                    error: "unknown gateway".into(),
                },
            ),
            ("Connected to MUXS.", E::TcMuxsConnected),
            (
                "Connection to MUXS closed in state -3",
                E::TcMuxsClosed { state: -3 },
            ),
            ("TC engine timed out", E::TcTimeout),
            (
                "TC connect failed - URI: wss://localhost:1",
                E::TcConnectFailed,
            ),
            ("No TC URI configured", E::TcNoUri),
            (
                "MUXS reconnect backoff 2s (retry 1)",
                E::TcBackoff {
                    muxs: true,
                    secs: 2,
                    retry: 1,
                },
            ),
            (
                "INFOS reconnect backoff 60s (retry 6)",
                E::TcBackoff {
                    muxs: false,
                    secs: 60,
                    retry: 6,
                },
            ),
            (
                "Router rejected or retry limit reached. Invoking CUPS.",
                E::TcGaveUpInvokingCups,
            ),
            ("Station EUI : 16:c001:ff10:a235", E::Other),
        ];
        for (msg, want) in cases {
            assert_eq!(ev(&at("TCE", "INFO", msg)), want, "{msg}");
        }
    }

    #[test]
    fn malformed_known_prefixes_are_other() {
        for msg in [
            "Connecting to CUPS-xyz ... https://a:1 (try #1)",
            "Connecting to CUPS ... https://a:1 (try #x)",
            "Starting a CUPS session in soon seconds.",
            "CUPS credentials updated (many bytes)",
            "ECDSA key#0 -> MAYBE",
            "CUPS provided signature len=71 keycrc=nothex",
            "MUXS reconnect backoff 2s",
            "Failed to retrieve TCURI from CUPS: (abc) x",
        ] {
            assert_eq!(ev(&at("CUP", "INFO", msg)), StationEvent::Other, "{msg}");
        }
    }

    #[test]
    fn line_length_limit() {
        let at_limit = "x".repeat(MAX_LINE_LEN);
        assert!(matches!(parse_line(&at_limit), ParsedLine::Raw(r) if r.len() == MAX_LINE_LEN));
        let below = "x".repeat(MAX_LINE_LEN - 1);
        assert!(matches!(parse_line(&below), ParsedLine::Raw(r) if r.len() == MAX_LINE_LEN - 1));
        let above = "é".repeat(MAX_LINE_LEN);
        assert!(matches!(parse_line(&above), ParsedLine::Raw(r) if r.len() <= MAX_LINE_LEN));
        let long_uri = at(
            "CUP",
            "INFO",
            &format!("TC URI updated: wss://{}", "a".repeat(600)),
        );
        assert!(
            matches!(parse_line(&long_uri), ParsedLine::Entry { message, .. } if message.len() < MAX_LINE_LEN)
        );
    }

    #[test]
    fn fuzz_body_on_samples() {
        fuzz_parse_lines(b"");
        fuzz_parse_lines(at("CUP", "INFO", "Connecting to CUPS ... x (try #1)").as_bytes());
        fuzz_parse_lines(&[0xff, b'\n', 0x00, b'2', b'0']);
        fuzz_parse_lines("2026-11-26 17:32:25.123 [CUP:INFO]".as_bytes());
        fuzz_parse_lines("2026-11-26 17:32:25.123 [é".as_bytes());
    }
}
