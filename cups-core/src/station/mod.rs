//! A sans-IO LoRa Basics Station CUPS *client*: the state machine of `src/cups.c` and the file
//! handling of `src/sys.c` (Release 2.0.6), so that a simulator or firmware talks to a CUPS
//! server exactly like a real gateway does.
//!
//! The station never touches a socket, a clock or a file system: the caller
//!
//! * asks [`Station::poll`] what to do at `now` ([`Action::Connect`] a CUPS URI with the
//!   credentials of the set in use) and [`Station::poll_timeout`] when to ask again;
//! * writes the exact request with [`Station::write_request`] into its own buffer;
//! * feeds the response back: [`Station::on_response_status`], [`Station::on_response_body`]
//!   (any split), [`Station::on_response_end`], or [`Station::on_error`];
//! * drains [`Station::poll_event`]: segments applied, credentials rejected, the update to
//!   run, the LNS (TC) connection to restart, the outcome and the next check.
//!
//! Files live behind [`StationStore`] ([`MemStore`] in memory with feature `alloc`); update
//! signatures are checked by any [`EcdsaP256Verifier`].
//!
//! ```
//! # #[cfg(feature = "alloc")] {
//! use cups_core::station::*;
//! use cups_core::sig::NoVerifier;
//! use cups_core::Eui64;
//!
//! let store = MemStore::new()
//!     .with(FileId::cred(CredKind::Cups, FileSet::Reg, CredFile::Uri), "http://cups.example:80");
//! let config = StationConfig::new(Eui64::new(0x0016_c001_ff10_a235).unwrap(), "2.0.6", "linux");
//! let mut now = Instant::from_millis(0);
//! let mut station = Station::new(store, NoVerifier, config, now);
//! let mut buf = [0u8; 1024];
//! for _round in 0..2 {
//!     match station.poll(now) {
//!         Action::Connect(target) => {
//!             assert_eq!(target.host, "cups.example");
//!             // ... open TCP (and TLS with the target set's files), then:
//!             let n = station.write_request(&mut buf).unwrap();
//!             assert!(buf[..n].starts_with(b"POST /update-info HTTP/1.1\r\n"));
//!             // ... send it, read the response:
//!             station.on_response_status(now, 200);
//!             station.on_response_body(now, &[0u8; 14]); // "nothing to do"
//!             station.on_response_end(now);
//!         }
//!         Action::Wait => {}
//!     }
//!     while let Some(event) = station.poll_event() {
//!         if let StationEvent::InteractionDone { next_in, .. } = event {
//!             assert_eq!(next_in, CUPS_OKSYNC_INTV);
//!         }
//!     }
//!     now = station.poll_timeout().unwrap();
//! }
//! # }
//! ```
//!
//! ## What it reproduces
//!
//! * Credential sets REG/BAK/BOOT per category; rotation REG → BAK → BOOT → REG after a
//!   non-200 status or a missing URI, or after more than [`FAIL_CNT_THRES`] failures in a row;
//!   back to REG after a success.
//! * The next check: [`CUPS_OKSYNC_INTV`] after a success without CUPS changes,
//!   [`CUPS_RESYNC_INTV`] after a failure or a CUPS URI/credential change, always
//!   OKSYNC while the LNS is connected ([`Station::set_tc_connected`]).
//! * The first 200 on the regular set copies it to the backup set, once ever (a marker file
//!   remembers it); the TC set is backed up the first time the LNS connects.
//! * Segments go to temporary files, committed (renamed over the regular set, with a commit
//!   marker for roll-forward) when the update segment starts or at the end of the body — not
//!   atomic: they stay committed when the signature then fails; nothing is committed when the
//!   body breaks before that point.
//! * Credential blobs are split while they stream ([`CredSplitter`]) with the station's quirks;
//!   a blob it cannot split is dropped ([`StationEvent::CredsRejected`]) and the interaction
//!   still succeeds.
//! * Signature policy: a signature must verify with one of the 64-byte `sig-N.key` files
//!   (tried in order, keyCRC ignored); no signature but `sig-0.key` present aborts; no
//!   signature and no key runs unsigned. Aborting deletes the update.
//!
//! Deliberate deviations (all about inputs the real station mishandles): blobs the station
//! would split by reading past its buffer are rejected; a request field read from a file that
//! is not UTF-8 (or a `version.txt` longer than [`request::MAX_PACKAGE_LEN`]) makes
//! [`Station::write_request`] fail; at most [`request::MAX_KEYS`] key CRCs are reported.

mod split;
mod store;
mod uri;

pub use split::{
    ABSENT_CERT_LEN, CredCuts, CredPart, CredReject, CredSplitter, ELEMENT_HEADER_LEN,
    LOG_LOOKBEHIND, SEQUENCE_TAG,
};
pub use store::{CredFile, CredKind, CredSet, FileId, FileName, FileSet, StationStore};
#[cfg(feature = "alloc")]
pub use store::{MemStore, MemStoreError};

use core::fmt;
use core::time::Duration;

use heapless::Deque;

use crate::crc::{Crc32, EMPTY_FILE};
use crate::eui::Eui64;
use crate::request::{self, JsonStr, UpdateInfo};
use crate::response::{
    DecodeError, Decoder, Event, MAX_SIG_DER_LEN, Segment, station_effective_uri,
};
use crate::sig::{
    DIGEST_LEN, EcdsaP256Verifier, EcdsaSignature, SIG_KEY_LEN, SigKey, UpdateHasher,
};

use uri::{BadToken, TokenNormalizer, TokenTrim, check_host_port_uri};
pub use uri::{MAX_HOST_LEN, MAX_PORT_LEN};

/// Retry interval after a failure or a CUPS URI/credential change (`CUPS_RESYNC_INTV`, 1 min).
pub const CUPS_RESYNC_INTV: Duration = Duration::from_secs(60);
/// Regular check interval after a success (`CUPS_OKSYNC_INTV`, 24 h).
pub const CUPS_OKSYNC_INTV: Duration = Duration::from_secs(24 * 3600);
/// Connection timeout, re-armed by every response chunk (`CUPS_CONN_TIMEOUT`, 60 s).
pub const CUPS_CONN_TIMEOUT: Duration = Duration::from_secs(60);
/// Failures in a row after which every further failure rotates the credential set
/// (`FAIL_CNT_THRES`): the 8th failure in a row is the first to rotate.
pub const FAIL_CNT_THRES: u32 = 6;
/// Events held before [`Station::poll_event`] drains them (more are counted and dropped).
pub const EVENT_QUEUE_LEN: usize = 16;
/// Longest URI the station uses (`MAX_URI_LEN` 128 with the NUL); longer counts as missing.
pub const MAX_URI_LEN: usize = request::MAX_URI_LEN;
/// Bytes moved per store read while copying, hashing or scanning files (stack buffer).
pub const IO_CHUNK_LEN: usize = 64;
/// Highest `sig-N.key` index looked at when verifying (file ids are `u8`).
pub const MAX_SIG_KEY_INDEX: u8 = u8::MAX;

/// The characters `trimEnd` removes from the end of `*.uri` and `version.txt`.
const TRIM_CHARS: &[u8] = b" \t\r\n";
/// Bit per category in the pending-commit mask.
const fn kind_bit(kind: CredKind) -> u8 {
    match kind {
        CredKind::Cups => 1,
        CredKind::Tc => 2,
    }
}
const KINDS: [CredKind; 2] = [CredKind::Cups, CredKind::Tc];

/// Update flags (`UPDATE_FLAG(...)` in `cups.c`).
mod uflag {
    pub(super) const CUPS_URI: u8 = 1;
    pub(super) const TC_URI: u8 = 2;
    pub(super) const CUPS_CRED: u8 = 4;
    pub(super) const TC_CRED: u8 = 8;
    pub(super) const SIGNATURE: u8 = 16;
    pub(super) const UPDATE: u8 = 32;
}

// ----------------------------------------------------------------------------------- time

/// A point in time in milliseconds since an arbitrary epoch chosen by the caller.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Instant(pub u64);

impl Instant {
    /// `ms` milliseconds after the epoch.
    #[must_use]
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the epoch.
    #[must_use]
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating.
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }

    /// `self - earlier`, zero if `earlier` is later.
    #[must_use]
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

// ----------------------------------------------------------------------------------- config

/// What the station reports about itself, and its timers (`station.conf`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StationConfig<'a> {
    /// Gateway EUI (`router`).
    pub router: Eui64,
    /// Version and build date (`station`), e.g. `2.0.6(linux/testsim) 2026-11-26 17:38:27`.
    pub station: &'a str,
    /// Platform (`model`), e.g. `linux`.
    pub model: &'a str,
    /// `CUPS_RESYNC_INTV`.
    pub resync_intv: Duration,
    /// `CUPS_OKSYNC_INTV`.
    pub oksync_intv: Duration,
    /// `CUPS_CONN_TIMEOUT`.
    pub conn_timeout: Duration,
}

impl<'a> StationConfig<'a> {
    /// A configuration with the station's default timers.
    #[must_use]
    pub const fn new(router: Eui64, station: &'a str, model: &'a str) -> Self {
        Self {
            router,
            station,
            model,
            resync_intv: CUPS_RESYNC_INTV,
            oksync_intv: CUPS_OKSYNC_INTV,
            conn_timeout: CUPS_CONN_TIMEOUT,
        }
    }
}

// ----------------------------------------------------------------------------------- types

/// How a credential set authenticates (`sys_cred`; a file counts when it is non-empty).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AuthMode {
    /// No trust: TLS cannot be set up.
    None,
    /// Trust only (cert or key missing): server authentication only.
    Server,
    /// Trust, client cert and key: mutual TLS.
    Both,
    /// Trust and key but no cert: the key file holds `Authorization` header lines.
    Token,
}

/// What the caller should do now.
#[must_use]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Action<'s> {
    /// Nothing before [`Station::poll_timeout`].
    Wait,
    /// Connect to CUPS, then call [`Station::write_request`].
    Connect(Connect<'s>),
}

/// Where and how to connect for a CUPS interaction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Connect<'s> {
    /// The credential set in use: TLS uses its `cups*.trust`, `.crt`, `.key`.
    pub set: CredSet,
    /// The set's CUPS URI.
    pub uri: &'s str,
    /// Host to connect to (without IPv6 brackets).
    pub host: &'s str,
    /// Port.
    pub port: &'s str,
    /// `Some` for `https`: the authentication mode of the set's files; `None` for `http`.
    pub tls: Option<AuthMode>,
    /// 1 + failures in a row so far (the station's "try #N").
    pub attempt: u32,
}

impl Connect<'_> {
    /// The set's file `file` (e.g. the trust for TLS).
    #[must_use]
    pub fn file(&self, file: CredFile) -> FileId {
        FileId::cred(CredKind::Cups, self.set.into(), file)
    }
}

/// How the connection failed, as reported by the caller.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TransportError {
    /// TCP connect failed.
    ConnectFailed,
    /// The TLS handshake failed.
    TlsFailed,
    /// No progress within the connection timeout (also raised by [`Station::poll`]).
    TimedOut,
    /// The connection closed before the response was complete.
    Closed,
}

/// Why an interaction failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum FailReason {
    /// The set has no URI, or one of 128 bytes or more (`CUPS_ERR_NOURI`: rotates).
    NoUri,
    /// The URI is not `http(s)://host:port`.
    BadUri,
    /// `https` without a trust, or a malformed token in the key file.
    TlsSetup,
    /// Transport failure.
    Transport(TransportError),
    /// A status other than 200 (`CUPS_ERR_REJECTED`: rotates).
    Rejected {
        /// The status.
        status: u16,
    },
    /// The body broke the protocol (see [`Station::last_decode_error`]).
    Protocol,
    /// [`Station::write_request`] could not build the request from the stored files.
    Request,
}

/// Why a received update was not run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UpdateReject {
    /// No key verified the signature (`No key could verify signature. Tried N keys`).
    NotVerified {
        /// `sig-N.key` files looked at.
        tried: u16,
    },
    /// `Keyfile present, but no signature provided. Aborting update.`
    KeyWithoutSignature,
}

/// A failed store operation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StoreOp {
    /// [`StationStore::size`].
    Size,
    /// [`StationStore::read`].
    Read,
    /// [`StationStore::create`].
    Create,
    /// [`StationStore::write`].
    Write,
    /// [`StationStore::remove`].
    Remove,
    /// [`StationStore::rename`].
    Rename,
}

/// Something that happened; drain with [`Station::poll_event`].
#[must_use]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum StationEvent {
    /// Run the update in [`FileId::Update`] (the caller runs it; a real update deletes the
    /// file and bumps `version.txt`; while it exists it is run again at every start).
    RunUpdate {
        /// Found at start (a pending update from before a restart).
        at_start: bool,
    },
    /// The regular set of `kind` was copied to the backup set (once ever).
    BackupCreated {
        /// Category.
        kind: CredKind,
    },
    /// A URI segment was written to the temporary set.
    SegmentApplied {
        /// [`Segment::CupsUri`] or [`Segment::TcUri`].
        segment: Segment,
    },
    /// A credential blob was split and written to the temporary set.
    CredsStored {
        /// Category.
        kind: CredKind,
        /// Where it was cut.
        cuts: CredCuts,
    },
    /// A credential blob was dropped (`Failed to parse ... credentials`); the interaction
    /// goes on and still counts as a TC/CUPS credential update.
    CredsRejected {
        /// Category.
        kind: CredKind,
        /// Blob length.
        len: u16,
        /// Why.
        reason: CredReject,
    },
    /// Temporary files were renamed over the regular set.
    ConfigCommitted {
        /// CUPS files committed.
        cups: bool,
        /// TC files committed.
        tc: bool,
    },
    /// The update was received whole into [`FileId::Update`].
    UpdateReceived {
        /// Its length.
        len: u32,
    },
    /// The signature verified with `sig-<key_index>.key`.
    UpdateVerified {
        /// Key index.
        key_index: u8,
    },
    /// No signature and no `sig-0.key`: the update runs unsigned.
    UpdateUnsigned,
    /// The update was deleted without running.
    UpdateRejected {
        /// Why.
        reason: UpdateReject,
    },
    /// The TC URI or credentials changed: restart the LNS connection now.
    TcRestart {
        /// The URI changed.
        uri: bool,
        /// The credentials changed (even if they were then rejected).
        cred: bool,
    },
    /// The interaction succeeded.
    InteractionDone {
        /// Time to the next interaction.
        next_in: Duration,
        /// The CUPS URI or credentials changed (hence the short interval).
        cups_changed: bool,
    },
    /// The interaction failed.
    InteractionFailed {
        /// Why.
        reason: FailReason,
        /// Time to the next interaction.
        next_in: Duration,
        /// The set the next interaction uses, if this failure rotated it.
        rotated_to: Option<CredSet>,
    },
    /// A store operation failed (the station carries on like the real one does).
    StoreFailed {
        /// The operation.
        op: StoreOp,
        /// The file.
        file: FileId,
    },
}

/// Why [`Station::write_request`] wrote nothing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum WriteRequestError {
    /// No connection is expected now (call after [`Action::Connect`], before the status).
    NotConnecting,
    /// `out` is too small; nothing else changed, retry with `needed` bytes.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
    /// A request field read from `file` is not UTF-8.
    NotUtf8 {
        /// The file.
        file: FileId,
    },
    /// `version.txt` is longer than [`request::MAX_PACKAGE_LEN`].
    PackageTooLong,
    /// The token in the key file is malformed.
    BadToken,
    /// The head could not be written (host or body length out of the station's limits).
    Head(request::HeadError),
}

impl fmt::Display for WriteRequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotConnecting => f.write_str("no CUPS connection is expected now"),
            Self::BufferTooSmall { needed } => write!(f, "buffer too small: {needed} bytes needed"),
            Self::NotUtf8 { file } => write!(f, "{file} is not UTF-8"),
            Self::PackageTooLong => write!(
                f,
                "version.txt is longer than {} bytes",
                request::MAX_PACKAGE_LEN
            ),
            Self::BadToken => f.write_str("malformed auth token"),
            Self::Head(e) => write!(f, "request head: {e}"),
        }
    }
}

impl core::error::Error for WriteRequestError {}

// ----------------------------------------------------------------------------------- events

impl StationEvent {
    /// A stable name of the event's kind (for logs and metrics).
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::RunUpdate { .. } => "run-update",
            Self::BackupCreated { .. } => "backup-created",
            Self::SegmentApplied { .. } => "segment-applied",
            Self::CredsStored { .. } => "creds-stored",
            Self::CredsRejected { .. } => "creds-rejected",
            Self::ConfigCommitted { .. } => "config-committed",
            Self::UpdateReceived { .. } => "update-received",
            Self::UpdateVerified { .. } => "update-verified",
            Self::UpdateUnsigned => "update-unsigned",
            Self::UpdateRejected { .. } => "update-rejected",
            Self::TcRestart { .. } => "tc-restart",
            Self::InteractionDone { .. } => "interaction-done",
            Self::InteractionFailed { .. } => "interaction-failed",
            Self::StoreFailed { .. } => "store-failed",
        }
    }

    /// Whether the event reports something going wrong (logged as a warning).
    #[must_use]
    pub const fn is_problem(&self) -> bool {
        matches!(
            self,
            Self::CredsRejected { .. }
                | Self::UpdateRejected { .. }
                | Self::InteractionFailed { .. }
                | Self::StoreFailed { .. }
        )
    }
}

/// Every event also goes to the logging facade chosen by feature (`log` or `defmt`); without
/// either, nothing is logged and nothing is linked.
fn log_event(ev: &StationEvent) {
    #[cfg(feature = "log")]
    {
        let level = if ev.is_problem() {
            log::Level::Warn
        } else {
            log::Level::Info
        };
        log::log!(target: "cups_core::station", level, "{}: {:?}", ev.name(), ev);
    }
    #[cfg(feature = "defmt")]
    {
        if ev.is_problem() {
            defmt::warn!("station {=str}", ev.name());
        } else {
            defmt::info!("station {=str}", ev.name());
        }
    }
    #[cfg(not(any(feature = "log", feature = "defmt")))]
    let _ = ev;
}

/// Bounded event queue.
#[derive(Debug)]
struct Events {
    q: Deque<StationEvent, EVENT_QUEUE_LEN>,
    dropped: u32,
}

impl Events {
    fn push(&mut self, ev: StationEvent) {
        log_event(&ev);
        if self.q.push_back(ev).is_err() {
            self.dropped = self.dropped.saturating_add(1);
        }
    }
}

// ----------------------------------------------------------------------------------- io

/// Store access that reports failures as events.
struct Io<'a, S: StationStore> {
    store: &'a mut S,
    events: &'a mut Events,
}

/// Result of reading a trimmed C string from a file.
enum Trimmed {
    Missing,
    TooLong,
    Ok(usize),
}

impl<S: StationStore> Io<'_, S> {
    fn failed(&mut self, op: StoreOp, file: FileId) {
        self.events.push(StationEvent::StoreFailed { op, file });
    }

    fn size(&mut self, file: FileId) -> Option<u32> {
        match self.store.size(file) {
            Ok(s) => s,
            Err(_) => {
                self.failed(StoreOp::Size, file);
                None
            }
        }
    }

    fn exists(&mut self, file: FileId) -> bool {
        self.size(file).is_some()
    }

    fn read(&mut self, file: FileId, offset: u32, buf: &mut [u8]) -> Option<usize> {
        match self.store.read(file, offset, buf) {
            Ok(n) => Some(n.min(buf.len())),
            Err(_) => {
                self.failed(StoreOp::Read, file);
                None
            }
        }
    }

    fn create(&mut self, file: FileId) -> bool {
        let ok = self.store.create(file).is_ok();
        if !ok {
            self.failed(StoreOp::Create, file);
        }
        ok
    }

    fn write(&mut self, file: FileId, offset: u32, data: &[u8]) -> bool {
        let ok = self.store.write(file, offset, data).is_ok();
        if !ok {
            self.failed(StoreOp::Write, file);
        }
        ok
    }

    fn remove(&mut self, file: FileId) -> bool {
        let ok = self.store.remove(file).is_ok();
        if !ok {
            self.failed(StoreOp::Remove, file);
        }
        ok
    }

    fn rename(&mut self, from: FileId, to: FileId) -> bool {
        let ok = self.store.rename(from, to).is_ok();
        if !ok {
            self.failed(StoreOp::Rename, to);
        }
        ok
    }

    /// `writeFile`: create (truncate) and write `data`.
    fn write_file(&mut self, file: FileId, data: &[u8]) -> bool {
        self.create(file) && (data.is_empty() || self.write(file, 0, data))
    }

    /// Visit a file's contents in chunks; `false` if it is missing or a read fails.
    fn for_each_chunk(&mut self, file: FileId, mut f: impl FnMut(&[u8])) -> bool {
        let Some(size) = self.size(file) else {
            return false;
        };
        let mut buf = [0u8; IO_CHUNK_LEN];
        let mut off = 0u32;
        while off < size {
            let Some(n) = self.read(file, off, &mut buf) else {
                return false;
            };
            if n == 0 {
                break;
            }
            f(buf.get(..n).unwrap_or_default());
            off = off.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        }
        true
    }

    /// Copy `from` to `to` (`readFile` + `writeFile`); `true` if `from` is missing.
    fn copy(&mut self, from: FileId, to: FileId) -> bool {
        let Some(size) = self.size(from) else {
            return true;
        };
        if !self.create(to) {
            return false;
        }
        let mut buf = [0u8; IO_CHUNK_LEN];
        let mut off = 0u32;
        while off < size {
            let Some(n) = self.read(from, off, &mut buf) else {
                return false;
            };
            if n == 0 {
                break;
            }
            if !self.write(to, off, buf.get(..n).unwrap_or_default()) {
                return false;
            }
            off = off.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        }
        true
    }

    /// `readFileAsString` / `sys_uri`: the contents up to the first NUL, trailing blanks
    /// trimmed, into `buf`.
    fn read_trimmed(&mut self, file: FileId, buf: &mut [u8]) -> Trimmed {
        let mut end = 0usize;
        let mut pos = 0usize;
        let mut ended = false;
        let ok = self.for_each_chunk(file, |chunk| {
            for &b in chunk {
                if ended || b == 0 {
                    ended = true;
                    return;
                }
                if let Some(slot) = buf.get_mut(pos) {
                    *slot = b;
                }
                pos = pos.saturating_add(1);
                if !TRIM_CHARS.contains(&b) {
                    end = pos;
                }
            }
        });
        if !ok {
            Trimmed::Missing
        } else if end > buf.len() {
            Trimmed::TooLong
        } else {
            Trimmed::Ok(end)
        }
    }

    /// `sys_crcCred`: CRC over trust, cert, key of a set, empty/missing = four zero bytes.
    fn cred_crc(&mut self, kind: CredKind, set: FileSet) -> u32 {
        let mut crc = Crc32::new();
        for f in CredFile::CRED {
            let file = FileId::cred(kind, set, f);
            let mut c = crc.clone();
            let mut any = false;
            let ok = self.for_each_chunk(file, |chunk| {
                any |= !chunk.is_empty();
                c.update(chunk);
            });
            if ok && any {
                crc = c;
            } else {
                crc.update(&EMPTY_FILE);
            }
        }
        crc.finish()
    }

    /// CRC of a whole file, `None` if missing or unreadable.
    fn file_crc(&mut self, file: FileId) -> Option<u32> {
        let mut c = Crc32::new();
        self.for_each_chunk(file, |chunk| c.update(chunk))
            .then(|| c.finish())
    }

    /// `sys_cred`: the authentication mode of a set.
    fn auth_mode(&mut self, kind: CredKind, set: FileSet) -> AuthMode {
        let mut present = [false; 3];
        for (p, f) in present.iter_mut().zip(CredFile::CRED) {
            *p = self.size(FileId::cred(kind, set, f)).is_some_and(|s| s > 0);
        }
        match present {
            [false, _, _] => AuthMode::None,
            [true, false, true] => AuthMode::Token,
            [true, true, true] => AuthMode::Both,
            [true, _, _] => AuthMode::Server,
        }
    }

    /// `validateAuthToken` over a key file, streaming the normalised lines into `out`.
    fn token(&mut self, file: FileId, mut out: impl FnMut(&[u8])) -> Result<(), BadToken> {
        let mut trim = TokenTrim::default();
        if !self.for_each_chunk(file, |chunk| chunk.iter().for_each(|&b| trim.push(b))) {
            return Err(BadToken);
        }
        let limit = trim.len();
        let mut norm = TokenNormalizer::new();
        let mut result = Ok(());
        let mut seen = 0u32;
        let ok = self.for_each_chunk(file, |chunk| {
            for &b in chunk {
                if seen >= limit || result.is_err() {
                    return;
                }
                seen = seen.saturating_add(1);
                result = norm.push(b, &mut out);
            }
        });
        if !ok {
            return Err(BadToken);
        }
        result?;
        norm.finish(&mut out)
    }

    /// `updateConfigFiles`: rename the temp set over the regular set under a commit marker.
    fn update_config_files(&mut self, kind: CredKind, roll_forward: bool) -> bool {
        let marker = FileId::CommitMarker(kind);
        if !roll_forward && !self.write_file(marker, &[]) {
            self.remove(marker);
            return false;
        }
        for f in CredFile::ALL {
            let temp = FileId::cred(kind, FileSet::Temp, f);
            if self.exists(temp) {
                self.rename(temp, FileId::cred(kind, FileSet::Reg, f));
            }
        }
        self.remove(marker);
        true
    }

    /// `backupConfigFiles`: copy the regular set to the backup set, once ever.
    fn backup_config_files(&mut self, kind: CredKind, roll_forward: bool, done: &mut bool) -> bool {
        if *done {
            return true;
        }
        let marker = FileId::CopyMarker(kind);
        if !roll_forward && !self.write_file(marker, &[]) {
            self.remove(marker);
            return false;
        }
        if !self.remove(FileId::BackupDone(kind)) {
            return false;
        }
        for f in CredFile::ALL {
            if !self.remove(FileId::cred(kind, FileSet::Bak, f)) {
                return false;
            }
        }
        for f in CredFile::ALL {
            let reg = FileId::cred(kind, FileSet::Reg, f);
            if !self.copy(reg, FileId::cred(kind, FileSet::Bak, f)) {
                return false;
            }
        }
        if !self.write_file(FileId::BackupDone(kind), &[]) {
            return false;
        }
        self.remove(marker);
        *done = true;
        self.events.push(StationEvent::BackupCreated { kind });
        true
    }

    /// `sys_resetConfigUpdate`: drop commit markers and temp files.
    fn reset_config_update(&mut self) {
        for kind in KINDS {
            self.remove(FileId::CommitMarker(kind));
            for f in CredFile::ALL {
                self.remove(FileId::cred(kind, FileSet::Temp, f));
            }
        }
    }
}

// ----------------------------------------------------------------------------------- body

/// Per-interaction state of the response body (everything but the decoder).
struct Apply {
    /// `uflags`.
    flags: u8,
    /// Categories with temp files to commit (`updateState`).
    pending: u8,
    /// A temp URI could not be written: nothing is committed (`UPD_ERROR`).
    update_error: bool,
    /// The credential blob being split.
    cred: Option<(CredKind, u16, CredSplitter)>,
    /// Writing the temp credential files failed.
    cred_store_failed: bool,
    /// keyCRC of the signature segment (logged only).
    sig_crc: u32,
    sig: [u8; MAX_SIG_DER_LEN],
    sig_len: u8,
    hasher: UpdateHasher,
    /// Writing the update is still fine.
    update_ok: bool,
}

/// What the body handler wants next.
enum Flow {
    Continue,
    Done,
    Fail,
}

impl Apply {
    fn new() -> Self {
        Self {
            flags: 0,
            pending: 0,
            update_error: false,
            cred: None,
            cred_store_failed: false,
            sig_crc: 0,
            sig: [0; MAX_SIG_DER_LEN],
            sig_len: 0,
            hasher: UpdateHasher::new(),
            update_ok: false,
        }
    }

    fn handle<S: StationStore>(&mut self, io: &mut Io<'_, S>, ev: Event<'_>) -> Flow {
        match ev {
            Event::CupsUri(raw) => self.uri(io, CredKind::Cups, raw),
            Event::TcUri(raw) => self.uri(io, CredKind::Tc, raw),
            Event::CredStart { kind, len } => {
                self.flags |= match kind {
                    CredKind::Cups => uflag::CUPS_CRED,
                    CredKind::Tc => uflag::TC_CRED,
                };
                self.pending |= kind_bit(kind);
                self.cred = Some((kind, len, CredSplitter::new(len)));
                self.cred_store_failed = false;
                for f in CredFile::CRED {
                    if !io.create(FileId::cred(kind, FileSet::Temp, f)) {
                        self.cred_store_failed = true;
                    }
                }
            }
            Event::CredChunk { data, .. } => {
                let failed = &mut self.cred_store_failed;
                if let Some((kind, _, split)) = self.cred.as_mut() {
                    let kind = *kind;
                    split.feed(data, &mut |part, off, bytes| {
                        if !*failed && !io.write(part_file(kind, part), off, bytes) {
                            *failed = true;
                        }
                    });
                }
            }
            Event::CredEnd { .. } => {
                let failed = &mut self.cred_store_failed;
                if let Some((kind, len, mut split)) = self.cred.take() {
                    let result = split.finish(&mut |part, off, bytes| {
                        if !*failed && !io.write(part_file(kind, part), off, bytes) {
                            *failed = true;
                        }
                    });
                    let result = if *failed {
                        Err(CredReject::Store)
                    } else {
                        result
                    };
                    match result {
                        Ok(cuts) => io.events.push(StationEvent::CredsStored { kind, cuts }),
                        Err(reason) => {
                            for f in CredFile::CRED {
                                io.remove(FileId::cred(kind, FileSet::Temp, f));
                            }
                            io.events
                                .push(StationEvent::CredsRejected { kind, len, reason });
                        }
                    }
                }
            }
            Event::Signature { key_crc, der } => {
                let Some(dst) = self.sig.get_mut(..der.len()) else {
                    return Flow::Fail;
                };
                dst.copy_from_slice(der);
                self.sig_len = u8::try_from(der.len()).unwrap_or(0);
                self.sig_crc = key_crc;
                self.flags |= uflag::SIGNATURE;
                self.hasher = UpdateHasher::new();
            }
            Event::UpdateStart { .. } => {
                self.commit(io);
                self.update_ok = io.create(FileId::UpdateTemp);
            }
            Event::UpdateChunk { offset, data } => {
                self.hasher.update(data);
                if self.update_ok && !io.write(FileId::UpdateTemp, offset, data) {
                    self.update_ok = false;
                }
            }
            Event::UpdateEnd => {
                if self.update_ok {
                    // The station logs a failed rename and carries on as if it worked.
                    io.rename(FileId::UpdateTemp, FileId::Update);
                    self.flags |= uflag::UPDATE;
                    let len = u32::try_from(self.hasher.bytes_hashed()).unwrap_or(u32::MAX);
                    io.events.push(StationEvent::UpdateReceived { len });
                } else {
                    io.remove(FileId::UpdateTemp);
                }
            }
            Event::Done => {
                self.commit(io);
                return Flow::Done;
            }
        }
        Flow::Continue
    }

    /// `sys_saveUri` into the temp set.
    fn uri<S: StationStore>(&mut self, io: &mut Io<'_, S>, kind: CredKind, raw: &[u8]) {
        let file = FileId::cred(kind, FileSet::Temp, CredFile::Uri);
        if !io.write_file(file, station_effective_uri(raw)) {
            self.update_error = true;
        }
        self.pending |= kind_bit(kind);
        let (flag, segment) = match kind {
            CredKind::Cups => (uflag::CUPS_URI, Segment::CupsUri),
            CredKind::Tc => (uflag::TC_URI, Segment::TcUri),
        };
        self.flags |= flag;
        io.events.push(StationEvent::SegmentApplied { segment });
    }

    /// `sys_commitConfigUpdate`.
    fn commit<S: StationStore>(&mut self, io: &mut Io<'_, S>) {
        if self.update_error || self.pending == 0 {
            return;
        }
        for kind in KINDS {
            if self.pending & kind_bit(kind) != 0 {
                io.update_config_files(kind, false);
            }
        }
        let cups = self.pending & kind_bit(CredKind::Cups) != 0;
        let tc = self.pending & kind_bit(CredKind::Tc) != 0;
        self.pending = 0;
        io.events.push(StationEvent::ConfigCommitted { cups, tc });
    }
}

/// The temp file a credential part goes to.
fn part_file(kind: CredKind, part: CredPart) -> FileId {
    let f = match part {
        CredPart::Trust => CredFile::Trust,
        CredPart::Cert => CredFile::Cert,
        CredPart::Key => CredFile::Key,
    };
    FileId::cred(kind, FileSet::Temp, f)
}

// ----------------------------------------------------------------------------------- station

/// Where the station is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Next interaction at `at`; `triggered` = started by [`Station::trigger`] (a pending
    /// session, which further triggers do not move) rather than the regular timer.
    Waiting { at: Instant, triggered: bool },
    /// [`Action::Connect`] was returned; waiting for the status.
    Connecting { deadline: Instant },
    /// Status 200 seen; reading the body.
    Receiving { deadline: Instant },
    /// No CUPS URI in any set at start (`sys_noCUPS`): CUPS is never contacted.
    Disabled,
}

/// The connection target of the current interaction.
struct Target {
    set: CredSet,
    uri: [u8; MAX_URI_LEN],
    uri_len: u8,
    hostport: u8,
    host: (u8, u8),
    port: (u8, u8),
    tls: Option<AuthMode>,
}

impl Target {
    const fn empty() -> Self {
        Self {
            set: CredSet::Reg,
            uri: [0; MAX_URI_LEN],
            uri_len: 0,
            hostport: 0,
            host: (0, 0),
            port: (0, 0),
            tls: None,
        }
    }

    fn slice(&self, (a, b): (u8, u8)) -> &str {
        let bytes = self
            .uri
            .get(usize::from(a)..usize::from(b))
            .unwrap_or_default();
        core::str::from_utf8(bytes).unwrap_or_default()
    }

    fn uri(&self) -> &str {
        self.slice((0, self.uri_len))
    }

    fn host_port(&self) -> &str {
        self.slice((self.hostport, self.uri_len))
    }
}

/// The station. `S` holds its files, `V` checks update signatures. See the module docs.
pub struct Station<'c, S: StationStore, V: EcdsaP256Verifier> {
    store: S,
    verifier: V,
    config: StationConfig<'c>,
    phase: Phase,
    /// `cups_credset`.
    credset: CredSet,
    /// `cups_failCnt`.
    fail_cnt: u32,
    /// The last interaction failed (`sys_statusCUPS() < 0`).
    last_failed: bool,
    /// The LNS (MUXS) connection is up.
    tc_connected: bool,
    /// `bakDone` per category.
    bak_done: [bool; 2],
    /// `write_request` failed for this interaction.
    request_failed: bool,
    last_decode_error: Option<DecodeError>,
    events: Events,
    target: Target,
    decoder: Decoder,
    apply: Apply,
}

impl<S: StationStore, V: EcdsaP256Verifier> fmt::Debug for Station<'_, S, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Station")
            .field("phase", &self.phase)
            .field("credset", &self.credset)
            .field("fail_cnt", &self.fail_cnt)
            .field("tc_connected", &self.tc_connected)
            .finish_non_exhaustive()
    }
}

impl<'c, S: StationStore, V: EcdsaP256Verifier> Station<'c, S, V> {
    /// Start a station on `store` at `now`, like the real one starts: finish interrupted
    /// commits and backups, queue [`StationEvent::RunUpdate`] if an update is pending, and
    /// contact CUPS right away (unless no set has a CUPS URI).
    pub fn new(store: S, verifier: V, config: StationConfig<'c>, now: Instant) -> Self {
        let mut st = Self {
            store,
            verifier,
            config,
            phase: Phase::Waiting {
                at: now,
                triggered: true,
            },
            credset: CredSet::Reg,
            fail_cnt: 0,
            last_failed: false,
            tc_connected: false,
            bak_done: [false; 2],
            request_failed: false,
            last_decode_error: None,
            events: Events {
                q: Deque::new(),
                dropped: 0,
            },
            target: Target::empty(),
            decoder: Decoder::new(),
            apply: Apply::new(),
        };
        let mut io = Io {
            store: &mut st.store,
            events: &mut st.events,
        };
        // checkRollForward.
        for (kind, done) in KINDS.into_iter().zip(st.bak_done.iter_mut()) {
            if io.exists(FileId::CommitMarker(kind)) {
                io.update_config_files(kind, true);
            }
            if io.exists(FileId::CopyMarker(kind)) {
                io.backup_config_files(kind, true, done);
            }
            if io.exists(FileId::BackupDone(kind)) {
                *done = true;
            }
        }
        // checkUris: no CUPS URI anywhere means no CUPS at all.
        let any_uri = CredSet::ALL
            .into_iter()
            .any(|set| io.exists(FileId::cred(CredKind::Cups, set.into(), CredFile::Uri)));
        if !any_uri {
            st.phase = Phase::Disabled;
        }
        // startupMaster: run a pending update.
        if io.exists(FileId::Update) {
            io.events.push(StationEvent::RunUpdate { at_start: true });
        }
        st
    }

    fn io(&mut self) -> Io<'_, S> {
        Io {
            store: &mut self.store,
            events: &mut self.events,
        }
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<StationEvent> {
        self.events.q.pop_front()
    }

    /// Events dropped because the queue was full ([`EVENT_QUEUE_LEN`]).
    #[must_use]
    pub fn dropped_events(&self) -> u32 {
        self.events.dropped
    }

    /// When [`poll`](Self::poll) must be called next (`None`: never, CUPS is disabled).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Waiting { at, .. } => Some(at),
            Phase::Connecting { deadline } | Phase::Receiving { deadline } => Some(deadline),
            Phase::Disabled => None,
        }
    }

    /// What to do at `now`: start an interaction when it is due, time out a stalled one.
    pub fn poll(&mut self, now: Instant) -> Action<'_> {
        let phase = self.phase;
        match phase {
            Phase::Waiting { at, .. } if now >= at && self.start(now) => {
                return Action::Connect(self.connect_target_inner());
            }
            Phase::Connecting { deadline } | Phase::Receiving { deadline } if now >= deadline => {
                self.fail_transport(now, TransportError::TimedOut);
            }
            _ => {}
        }
        Action::Wait
    }

    /// The target of the interaction in progress (as returned by [`poll`](Self::poll)).
    #[must_use]
    pub fn connect_target(&self) -> Option<Connect<'_>> {
        matches!(
            self.phase,
            Phase::Connecting { .. } | Phase::Receiving { .. }
        )
        .then(|| self.connect_target_inner())
    }

    fn connect_target_inner(&self) -> Connect<'_> {
        let t = &self.target;
        Connect {
            set: t.set,
            uri: t.uri(),
            host: t.slice(t.host),
            port: t.slice(t.port),
            tls: t.tls,
            attempt: self.fail_cnt.saturating_add(1),
        }
    }

    /// `cups_start`: pick the set's URI and check it; `true` if a connection is to be made.
    fn start(&mut self, now: Instant) -> bool {
        match self.prepare() {
            Ok(()) => {
                let deadline = now.saturating_add(self.config.conn_timeout);
                self.phase = Phase::Connecting { deadline };
                true
            }
            Err(reason) => {
                self.finish(now, Err(reason));
                false
            }
        }
    }

    fn prepare(&mut self) -> Result<(), FailReason> {
        self.decoder = Decoder::new();
        self.apply = Apply::new();
        self.request_failed = false;
        self.last_decode_error = None;
        let set = self.credset;
        self.target = Target::empty();
        self.target.set = set;
        let mut io = Io {
            store: &mut self.store,
            events: &mut self.events,
        };
        let file = FileId::cred(CredKind::Cups, set.into(), CredFile::Uri);
        let len = match io.read_trimmed(file, &mut self.target.uri) {
            Trimmed::Ok(n) => n,
            Trimmed::Missing | Trimmed::TooLong => return Err(FailReason::NoUri),
        };
        let uri = self.target.uri.get(..len).unwrap_or_default();
        let parsed = match check_host_port_uri(uri, b"http") {
            Some(hp) if core::str::from_utf8(uri).is_ok() => hp,
            _ => return Err(FailReason::BadUri),
        };
        let as_u8 = |v: usize| u8::try_from(v).unwrap_or(0);
        self.target.uri_len = as_u8(len);
        self.target.hostport = as_u8(parsed.hostport);
        self.target.host = (as_u8(parsed.host.0), as_u8(parsed.host.1));
        self.target.port = (as_u8(parsed.port.0), as_u8(parsed.port.1));
        if parsed.tls {
            // conn_setup_tls.
            let mode = io.auth_mode(CredKind::Cups, set.into());
            let key = FileId::cred(CredKind::Cups, set.into(), CredFile::Key);
            let ok = match mode {
                AuthMode::None => false,
                AuthMode::Token => io.token(key, |_| {}).is_ok(),
                AuthMode::Server | AuthMode::Both => true,
            };
            if !ok {
                return Err(FailReason::TlsSetup);
            }
            self.target.tls = Some(mode);
        }
        Ok(())
    }

    /// Write the request (head and body, exactly as the station does) into `out`; returns
    /// its length. Call once connected, after [`Action::Connect`].
    ///
    /// On an error other than [`WriteRequestError::BufferTooSmall`] the request cannot be
    /// built: close the connection and report it with [`on_error`](Self::on_error) (the
    /// interaction then fails with [`FailReason::Request`]).
    pub fn write_request(&mut self, out: &mut [u8]) -> Result<usize, WriteRequestError> {
        if !matches!(self.phase, Phase::Connecting { .. }) {
            return Err(WriteRequestError::NotConnecting);
        }
        let r = self.build_request(out);
        if r.is_err_and(|e| !matches!(e, WriteRequestError::BufferTooSmall { .. })) {
            self.request_failed = true;
        }
        r
    }

    fn build_request(&mut self, out: &mut [u8]) -> Result<usize, WriteRequestError> {
        let head_err = |e: request::HeadError| match e {
            request::HeadError::BufferTooSmall { needed } => {
                WriteRequestError::BufferTooSmall { needed }
            }
            other => WriteRequestError::Head(other),
        };
        let host_port = self.target.host_port();
        // The head without auth lines (its length does not depend on the body length). When
        // it does not fit, go on with an empty body buffer to learn the total size needed.
        let (base, head_fits) = match request::write_station_head(host_port, 0, &[], out) {
            Ok(n) => (n, true),
            Err(request::HeadError::BufferTooSmall { needed }) => (needed, false),
            Err(e) => return Err(WriteRequestError::Head(e)),
        };
        let key = FileId::cred(CredKind::Cups, self.target.set.into(), CredFile::Key);
        let token = self.target.tls == Some(AuthMode::Token);
        let mut io = Io {
            store: &mut self.store,
            events: &mut self.events,
        };
        let mut tok_len = 0usize;
        if token {
            io.token(key, |b| tok_len = tok_len.saturating_add(b.len()))
                .map_err(|BadToken| WriteRequestError::BadToken)?;
        }
        let head_len = base.saturating_add(tok_len);
        let body_len = {
            let body_out = if head_fits {
                out.get_mut(head_len..)
            } else {
                None
            };
            encode_body(
                &mut io,
                &self.config,
                body_out.unwrap_or_default(),
                head_len,
            )?
        };
        if !head_fits {
            let needed = head_len.saturating_add(body_len);
            return Err(WriteRequestError::BufferTooSmall { needed });
        }
        let blank = base.saturating_sub(2);
        let head = out.get_mut(..base).unwrap_or_default();
        request::write_station_head(host_port, body_len, &[], head).map_err(head_err)?;
        // Auth lines go between the last header and the blank line.
        let mut at = blank;
        if token {
            io.token(key, |b| {
                let end = at.saturating_add(b.len());
                if let Some(dst) = out.get_mut(at..end) {
                    dst.copy_from_slice(b);
                }
                at = end;
            })
            .map_err(|BadToken| WriteRequestError::BadToken)?;
        }
        if let Some(dst) = out.get_mut(at..at.saturating_add(2)) {
            dst.copy_from_slice(b"\r\n");
        }
        Ok(head_len.saturating_add(body_len))
    }

    /// The response status line arrived.
    pub fn on_response_status(&mut self, now: Instant, status: u16) {
        if !matches!(self.phase, Phase::Connecting { .. }) {
            return;
        }
        if status != 200 {
            self.finish(now, Err(FailReason::Rejected { status }));
            return;
        }
        let mut io = Io {
            store: &mut self.store,
            events: &mut self.events,
        };
        if self.target.set == CredSet::Reg {
            let [done, _] = &mut self.bak_done;
            io.backup_config_files(CredKind::Cups, false, done);
        }
        io.reset_config_update();
        self.phase = Phase::Receiving {
            deadline: now.saturating_add(self.config.conn_timeout),
        };
    }

    /// Body bytes arrived (any split). Bytes after the end of the body are ignored.
    pub fn on_response_body(&mut self, now: Instant, data: &[u8]) {
        if !matches!(self.phase, Phase::Receiving { .. }) {
            return;
        }
        self.phase = Phase::Receiving {
            deadline: now.saturating_add(self.config.conn_timeout),
        };
        let mut rest = data;
        loop {
            let mut io = Io {
                store: &mut self.store,
                events: &mut self.events,
            };
            let flow = match self.decoder.decode(rest) {
                Err(e) => {
                    self.last_decode_error = Some(e);
                    Flow::Fail
                }
                Ok(step) => {
                    rest = rest.get(step.consumed..).unwrap_or_default();
                    match step.event {
                        None => return,
                        Some(ev) => self.apply.handle(&mut io, ev),
                    }
                }
            };
            match flow {
                Flow::Continue => {}
                Flow::Done => {
                    self.finish(now, Ok(()));
                    return;
                }
                Flow::Fail => {
                    self.finish(now, Err(FailReason::Protocol));
                    return;
                }
            }
        }
    }

    /// The body ended (Content-Length reached or the connection closed).
    pub fn on_response_end(&mut self, now: Instant) {
        match self.phase {
            Phase::Connecting { .. } => {
                self.fail_transport(now, TransportError::Closed);
            }
            Phase::Receiving { .. } => {
                // Done was not reached: "Unexpected end of data".
                self.last_decode_error = self.decoder.finish().err();
                self.finish(now, Err(FailReason::Protocol));
            }
            Phase::Waiting { .. } | Phase::Disabled => {}
        }
    }

    /// The connection failed.
    pub fn on_error(&mut self, now: Instant, error: TransportError) {
        if matches!(
            self.phase,
            Phase::Connecting { .. } | Phase::Receiving { .. }
        ) {
            self.fail_transport(now, error);
        }
    }

    fn fail_transport(&mut self, now: Instant, error: TransportError) {
        let reason = if self.request_failed {
            FailReason::Request
        } else {
            FailReason::Transport(error)
        };
        self.finish(now, Err(reason));
    }

    /// `sys_triggerCUPS`: start an interaction after `delay` (`None`: [`CUPS_RESYNC_INTV`]),
    /// unless one is already pending or in progress. The station does this when its LNS
    /// rejects it or after 10 failed LNS connection attempts.
    pub fn trigger(&mut self, now: Instant, delay: Option<Duration>) {
        if let Phase::Waiting {
            triggered: false, ..
        } = self.phase
        {
            let delay = delay.unwrap_or(self.config.resync_intv);
            self.phase = Phase::Waiting {
                at: now.saturating_add(delay),
                triggered: true,
            };
        }
    }

    /// The LNS (MUXS) connection went up or down. The first time it goes up the regular TC
    /// set is backed up (once ever), and a failed CUPS state is put on the long interval.
    pub fn set_tc_connected(&mut self, now: Instant, connected: bool) {
        let was = self.tc_connected;
        self.tc_connected = connected;
        if !connected || was {
            return;
        }
        let mut io = Io {
            store: &mut self.store,
            events: &mut self.events,
        };
        let [_, done] = &mut self.bak_done;
        io.backup_config_files(CredKind::Tc, false, done);
        // sys_delayCUPS.
        if self.last_failed
            && matches!(
                self.phase,
                Phase::Waiting {
                    triggered: false,
                    ..
                }
            )
        {
            let at = now.saturating_add(self.config.oksync_intv);
            self.phase = Phase::Waiting {
                at,
                triggered: false,
            };
        }
    }

    /// `cups_ondone`.
    fn finish(&mut self, now: Instant, outcome: Result<(), FailReason>) {
        let mut next_in = self.config.resync_intv;
        let event = match outcome {
            Err(reason) => {
                let rotate = self.fail_cnt > FAIL_CNT_THRES
                    || matches!(reason, FailReason::Rejected { .. } | FailReason::NoUri);
                if rotate {
                    self.credset = self.credset.next();
                }
                self.fail_cnt = self.fail_cnt.saturating_add(1);
                self.last_failed = true;
                if self.tc_connected {
                    next_in = self.config.oksync_intv;
                }
                StationEvent::InteractionFailed {
                    reason,
                    next_in,
                    rotated_to: rotate.then_some(self.credset),
                }
            }
            Ok(()) => {
                let flags = self.apply.flags;
                if flags & uflag::UPDATE != 0 {
                    self.run_or_abort(flags & uflag::SIGNATURE != 0);
                }
                if flags & (uflag::TC_URI | uflag::TC_CRED) != 0 {
                    self.events.push(StationEvent::TcRestart {
                        uri: flags & uflag::TC_URI != 0,
                        cred: flags & uflag::TC_CRED != 0,
                    });
                    self.tc_connected = false;
                }
                let cups_changed = flags & (uflag::CUPS_URI | uflag::CUPS_CRED) != 0;
                if !cups_changed {
                    next_in = self.config.oksync_intv;
                }
                self.credset = CredSet::Reg;
                self.fail_cnt = 0;
                self.last_failed = false;
                if self.tc_connected {
                    next_in = self.config.oksync_intv;
                }
                StationEvent::InteractionDone {
                    next_in,
                    cups_changed,
                }
            }
        };
        self.events.push(event);
        self.phase = Phase::Waiting {
            at: now.saturating_add(next_in),
            triggered: false,
        };
    }

    /// The signature policy, then run (event) or abort (delete) the update.
    fn run_or_abort(&mut self, signed: bool) {
        let mut io = Io {
            store: &mut self.store,
            events: &mut self.events,
        };
        let run = if signed {
            let digest = core::mem::take(&mut self.apply.hasher).finish();
            let der = self
                .apply
                .sig
                .get(..usize::from(self.apply.sig_len))
                .unwrap_or_default();
            match verify_with_store(&mut io, &self.verifier, &digest, der) {
                Ok(key_index) => {
                    io.events.push(StationEvent::UpdateVerified { key_index });
                    true
                }
                Err(tried) => {
                    let reason = UpdateReject::NotVerified { tried };
                    io.events.push(StationEvent::UpdateRejected { reason });
                    false
                }
            }
        } else if io.exists(FileId::SigKey(0)) {
            let reason = UpdateReject::KeyWithoutSignature;
            io.events.push(StationEvent::UpdateRejected { reason });
            false
        } else {
            io.events.push(StationEvent::UpdateUnsigned);
            true
        };
        if run {
            if io.exists(FileId::Update) {
                io.events.push(StationEvent::RunUpdate { at_start: false });
            }
        } else {
            io.remove(FileId::Update);
        }
    }

    /// The credential set the next (or current) interaction uses.
    #[must_use]
    pub fn credset(&self) -> CredSet {
        self.credset
    }

    /// Failed interactions in a row.
    #[must_use]
    pub fn fail_count(&self) -> u32 {
        self.fail_cnt
    }

    /// Whether an interaction is in progress (between [`Action::Connect`] and its outcome).
    #[must_use]
    pub fn is_interacting(&self) -> bool {
        matches!(
            self.phase,
            Phase::Connecting { .. } | Phase::Receiving { .. }
        )
    }

    /// Whether CUPS is disabled (no set had a CUPS URI at start).
    #[must_use]
    pub fn is_disabled(&self) -> bool {
        self.phase == Phase::Disabled
    }

    /// Whether the LNS connection is up (as last told).
    #[must_use]
    pub fn tc_connected(&self) -> bool {
        self.tc_connected
    }

    /// Why the last body was refused, if it was.
    #[must_use]
    pub fn last_decode_error(&self) -> Option<DecodeError> {
        self.last_decode_error
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &StationConfig<'c> {
        &self.config
    }

    /// The URI of `set` in category `kind` as the station reads it (`None` when missing or
    /// 128 bytes or longer, or not UTF-8), using `buf`.
    pub fn uri<'b>(
        &mut self,
        kind: CredKind,
        set: CredSet,
        buf: &'b mut [u8; MAX_URI_LEN],
    ) -> Option<&'b str> {
        let file = FileId::cred(kind, set.into(), CredFile::Uri);
        match self.io().read_trimmed(file, buf) {
            Trimmed::Ok(n) => core::str::from_utf8(buf.get(..n)?).ok(),
            Trimmed::Missing | Trimmed::TooLong => None,
        }
    }

    /// The authentication mode of a set's files.
    pub fn auth_mode(&mut self, kind: CredKind, set: CredSet) -> AuthMode {
        self.io().auth_mode(kind, set.into())
    }

    /// The credential CRC the station reports for the regular set of `kind`.
    pub fn cred_crc(&mut self, kind: CredKind) -> u32 {
        self.io().cred_crc(kind, FileSet::Reg)
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, mutably (e.g. to apply an update the way its script would).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The verifier.
    #[must_use]
    pub fn verifier(&self) -> &V {
        &self.verifier
    }

    /// Take the store and verifier back (e.g. to restart the station on the same files).
    pub fn into_parts(self) -> (S, V) {
        (self.store, self.verifier)
    }
}

/// Try every `sig-N.key` in order (only 64-byte files); `Ok(index)` of the first that
/// verifies, else `Err(files looked at)`.
fn verify_with_store<S: StationStore, V: EcdsaP256Verifier>(
    io: &mut Io<'_, S>,
    verifier: &V,
    digest: &[u8; DIGEST_LEN],
    der: &[u8],
) -> Result<u8, u16> {
    let well_formed = EcdsaSignature::from_der(der).is_ok();
    let mut tried = 0u16;
    for index in 0..=MAX_SIG_KEY_INDEX {
        let file = FileId::SigKey(index);
        let Some(size) = io.size(file) else { break };
        tried = tried.saturating_add(1);
        if usize::try_from(size).ok() != Some(SIG_KEY_LEN) {
            continue;
        }
        let mut key = [0u8; SIG_KEY_LEN];
        if io.read(file, 0, &mut key) != Some(SIG_KEY_LEN) {
            continue;
        }
        if well_formed && verifier.verify_prehash(&SigKey(key), digest, der) {
            return Ok(index);
        }
    }
    Err(tried)
}

/// The request body (`cups_update_info`, HTTPEV_CONNECTED) into `out`; `offset` is where
/// `out` starts in the caller's buffer (for [`WriteRequestError::BufferTooSmall`]).
fn encode_body<S: StationStore>(
    io: &mut Io<'_, S>,
    config: &StationConfig<'_>,
    out: &mut [u8],
    offset: usize,
) -> Result<usize, WriteRequestError> {
    let mut cups_buf = [0u8; MAX_URI_LEN];
    let mut tc_buf = [0u8; MAX_URI_LEN];
    let mut pkg_buf = [0u8; request::MAX_PACKAGE_LEN];
    let cups_file = FileId::cred(CredKind::Cups, FileSet::Reg, CredFile::Uri);
    let tc_file = FileId::cred(CredKind::Tc, FileSet::Reg, CredFile::Uri);
    let cups_uri = uri_field(io, cups_file, &mut cups_buf)?;
    let tc_uri = uri_field(io, tc_file, &mut tc_buf)?;
    let package = match io.read_trimmed(FileId::Version, &mut pkg_buf) {
        Trimmed::Missing => None,
        Trimmed::TooLong => return Err(WriteRequestError::PackageTooLong),
        Trimmed::Ok(n) => Some(JsonStr::from_plain(utf8(&pkg_buf, n, FileId::Version)?)),
    };
    let mut keys = heapless::Vec::<u32, { request::MAX_KEYS }>::new();
    for index in 0..request::MAX_KEYS {
        let Ok(index) = u8::try_from(index) else {
            break;
        };
        // sys_crcSigkey: a missing file (or a CRC of 0) ends the list.
        match io.file_crc(FileId::SigKey(index)) {
            Some(crc) if crc != 0 => {
                if keys.push(crc).is_err() {
                    break;
                }
            }
            _ => break,
        }
    }
    let info = UpdateInfo {
        router: config.router,
        cups_uri,
        tc_uri,
        cups_cred_crc: io.cred_crc(CredKind::Cups, FileSet::Reg),
        tc_cred_crc: io.cred_crc(CredKind::Tc, FileSet::Reg),
        station: JsonStr::from_plain(config.station),
        model: JsonStr::from_plain(config.model),
        package,
        keys,
    };
    info.encode(out).map_err(|e| match e {
        request::RequestEncodeError::BufferTooSmall { needed } => {
            WriteRequestError::BufferTooSmall {
                needed: needed.saturating_add(offset),
            }
        }
    })
}

fn utf8(buf: &[u8], n: usize, file: FileId) -> Result<&str, WriteRequestError> {
    core::str::from_utf8(buf.get(..n).unwrap_or_default())
        .map_err(|_| WriteRequestError::NotUtf8 { file })
}

/// `sys_uri(cat, REG)` as a request field: `null` when missing or too long.
fn uri_field<'b, S: StationStore>(
    io: &mut Io<'_, S>,
    file: FileId,
    buf: &'b mut [u8; MAX_URI_LEN],
) -> Result<Option<JsonStr<'b>>, WriteRequestError> {
    match io.read_trimmed(file, buf) {
        Trimmed::Missing | Trimmed::TooLong => Ok(None),
        Trimmed::Ok(n) => Ok(Some(JsonStr::from_plain(utf8(buf, n, file)?))),
    }
}

// ----------------------------------------------------------------------------------- fuzz

/// Fuzz body: a station with a [`MemStore`] home chosen by the first byte is fed a response
/// (status chosen by the second byte, body = the rest) in splits derived from the data, and
/// the same response whole. Never panics; both runs must end with the same files and events,
/// and the station must be able to build its next request.
#[cfg(all(any(fuzzing, test), feature = "alloc"))]
pub fn fuzz_station(data: &[u8]) {
    use alloc::vec::Vec;

    let (&mode, rest) = data.split_first().unwrap_or((&0, &[]));
    let (&status_sel, body) = rest.split_first().unwrap_or((&0, &[]));
    let status = if status_sel < 0xF0 {
        200
    } else {
        400 + u16::from(status_sel & 0x0F)
    };
    let mut home = MemStore::new()
        .with(
            FileId::cred(CredKind::Cups, FileSet::Reg, CredFile::Uri),
            if mode & 1 == 0 {
                "http://cups:1".as_bytes()
            } else {
                "https://cups:443".as_bytes()
            },
        )
        .with(
            FileId::cred(CredKind::Cups, FileSet::Reg, CredFile::Trust),
            "trust",
        )
        .with(
            FileId::cred(CredKind::Cups, FileSet::Boot, CredFile::Uri),
            "http://boot:2",
        );
    if mode & 2 != 0 {
        home.insert(
            FileId::cred(CredKind::Cups, FileSet::Reg, CredFile::Key),
            "Auth: x\n",
        );
    }
    if mode & 4 != 0 {
        home.insert(FileId::SigKey(0), [7u8; SIG_KEY_LEN]);
    }
    if mode & 8 != 0 {
        home.insert(FileId::Version, "1.0.0");
    }
    let Ok(router) = Eui64::new(1) else { return };
    let config = StationConfig::new(router, "fuzz", "linux");

    let run = |chunks: &mut dyn FnMut(usize) -> usize| {
        let mut st = Station::new(home.clone(), crate::sig::NoVerifier, config, Instant(0));
        let mut events = Vec::new();
        let now = Instant(1);
        if let Action::Connect(_) = st.poll(now) {
            let mut buf = [0u8; 2048];
            let _ = st.write_request(&mut buf);
            st.on_response_status(now, status);
            let mut rest = body;
            let mut i = 0usize;
            while !rest.is_empty() {
                let n = chunks(i).clamp(1, rest.len());
                let (a, b) = rest.split_at(n);
                st.on_response_body(now, a);
                rest = b;
                i = i.wrapping_add(1);
            }
            st.on_response_end(now);
        }
        while let Some(e) = st.poll_event() {
            events.push(e);
        }
        // The next interaction still works.
        if let Some(at) = st.poll_timeout()
            && let Action::Connect(_) = st.poll(at)
        {
            let mut buf = [0u8; 2048];
            let _ = st.write_request(&mut buf);
        }
        while st.poll_event().is_some() {}
        let (store, _) = st.into_parts();
        (store, events)
    };
    let seed = data
        .iter()
        .fold(0x9E37_79B9_u32, |h, &b| h.rotate_left(5) ^ u32::from(b));
    let mut split = |i: usize| {
        let x = seed
            .wrapping_mul(0x0100_0193)
            .wrapping_add(u32::try_from(i).unwrap_or(0));
        usize::try_from((x >> 7) % 37)
            .unwrap_or(1)
            .saturating_add(1)
    };
    let split_run = run(&mut split);
    let whole_run = run(&mut |_| usize::MAX);
    assert_eq!(split_run, whole_run, "split and whole feeding differ");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::vec::Vec;

    /// Largest `Station` we accept (store and verifier are zero-sized or tiny here).
    const MAX_STATION_SIZE: usize = 2048;

    fn vectors_dir() -> PathBuf {
        match std::env::var("CUPS_VECTORS") {
            Ok(d) => d.into(),
            Err(_) => concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors").into(),
        }
    }

    /// A store with nothing in it and nothing failing: the smallest possible `S`.
    struct NullStore;

    impl StationStore for NullStore {
        type Error = ();
        fn size(&mut self, _: FileId) -> Result<Option<u32>, ()> {
            Ok(None)
        }
        fn read(&mut self, _: FileId, _: u32, _: &mut [u8]) -> Result<usize, ()> {
            Err(())
        }
        fn create(&mut self, _: FileId) -> Result<(), ()> {
            Err(())
        }
        fn write(&mut self, _: FileId, _: u32, _: &[u8]) -> Result<(), ()> {
            Err(())
        }
        fn remove(&mut self, _: FileId) -> Result<(), ()> {
            Ok(())
        }
        fn rename(&mut self, _: FileId, _: FileId) -> Result<(), ()> {
            Err(())
        }
    }

    #[test]
    fn station_size() {
        let size = core::mem::size_of::<Station<'static, NullStore, crate::sig::NoVerifier>>();
        std::println!(
            "size_of::<Station<NullStore, NoVerifier>>() = {size} (decoder {}, hasher {}, event {})",
            core::mem::size_of::<Decoder>(),
            core::mem::size_of::<UpdateHasher>(),
            core::mem::size_of::<StationEvent>(),
        );
        assert!(size <= MAX_STATION_SIZE, "{size}");
    }

    #[test]
    fn null_store_station_is_disabled() {
        let cfg = StationConfig::new(Eui64::new(1).unwrap(), "s", "m");
        let mut st = Station::new(NullStore, crate::sig::NoVerifier, cfg, Instant(0));
        assert!(st.is_disabled());
        assert!(st.poll_event().is_none());
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn fuzz_station_vectors_and_noise() {
        let dir = vectors_dir().join("responses");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("vectors (set CUPS_VECTORS)") {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|x| x == "bin") {
                let bin = std::fs::read(&path).unwrap();
                for mode in [0u8, 1, 3, 4, 15] {
                    for status in [0u8, 0xF1] {
                        let mut data = Vec::from([mode, status]);
                        data.extend_from_slice(&bin);
                        fuzz_station(&data);
                    }
                }
                n += 1;
            }
        }
        assert!(n >= 12);
        let mut x = 0x1234_5678_u32;
        for len in 0..300usize {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    // Mostly small bytes so that length fields stay small.
                    if x & 3 == 0 {
                        (x >> 8) as u8
                    } else {
                        (x >> 8) as u8 & 0x07
                    }
                })
                .collect();
            fuzz_station(&data);
        }
        fuzz_station(&[]);
        fuzz_station(&[0]);
    }
}
