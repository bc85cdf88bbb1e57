//! The station's files and the storage trait behind them.
//!
//! A real station keeps its state in files in its home directory (`cups.uri`, `tc-bak.key`,
//! `version.txt`, `sig-0.key`, ...) and in `/tmp/update.bin`. [`FileId`] names each of them;
//! [`StationStore`] is the small file API the state machine needs; [`MemStore`] (feature
//! `alloc`) keeps them in memory for tests and simulators. Firmware implements the trait over
//! its flash.

use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};

pub use crate::response::CredKind;

/// One of the three credential sets a station holds per category, tried in this order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum CredSet {
    /// The regular set (`cups.*`, `tc.*`), the only one CUPS updates.
    Reg,
    /// The backup set (`*-bak.*`): a copy of the regular set, made once.
    Bak,
    /// The bootstrap set (`*-boot.*`), provisioned by hand.
    Boot,
}

impl CredSet {
    /// All sets in rotation order.
    pub const ALL: [CredSet; 3] = [CredSet::Reg, CredSet::Bak, CredSet::Boot];

    /// The next set in the station's rotation REG → BAK → BOOT → REG.
    #[must_use]
    pub const fn next(self) -> Self {
        match self {
            Self::Reg => Self::Bak,
            Self::Bak => Self::Boot,
            Self::Boot => Self::Reg,
        }
    }
}

/// A set of credential files on disk: the three [`CredSet`]s plus the temporary set CUPS
/// updates are written to before they are committed.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum FileSet {
    /// `cups.*`.
    Reg,
    /// `cups-bak.*`.
    Bak,
    /// `cups-boot.*`.
    Boot,
    /// `cups-temp.*`.
    Temp,
}

impl FileSet {
    const fn index(self) -> u8 {
        match self {
            Self::Reg => 0,
            Self::Bak => 1,
            Self::Boot => 2,
            Self::Temp => 3,
        }
    }

    /// The file name infix (`""`, `"-bak"`, `"-boot"`, `"-temp"`).
    #[must_use]
    pub const fn infix(self) -> &'static str {
        match self {
            Self::Reg => "",
            Self::Bak => "-bak",
            Self::Boot => "-boot",
            Self::Temp => "-temp",
        }
    }
}

impl From<CredSet> for FileSet {
    fn from(s: CredSet) -> Self {
        match s {
            CredSet::Reg => Self::Reg,
            CredSet::Bak => Self::Bak,
            CredSet::Boot => Self::Boot,
        }
    }
}

/// The four files of a credential set.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum CredFile {
    /// `*.trust`: the server's CA.
    Trust,
    /// `*.crt`: the client certificate (empty in token and server-auth mode).
    Cert,
    /// `*.key`: the client key, or the token header lines.
    Key,
    /// `*.uri`: the server URI.
    Uri,
}

impl CredFile {
    /// The four files, in the station's order.
    pub const ALL: [CredFile; 4] = [
        CredFile::Trust,
        CredFile::Cert,
        CredFile::Key,
        CredFile::Uri,
    ];
    /// The three files the credential CRC covers, in CRC order.
    pub const CRED: [CredFile; 3] = [CredFile::Trust, CredFile::Cert, CredFile::Key];

    const fn index(self) -> u8 {
        match self {
            Self::Trust => 0,
            Self::Cert => 1,
            Self::Key => 2,
            Self::Uri => 3,
        }
    }

    /// The file name extension.
    #[must_use]
    pub const fn ext(self) -> &'static str {
        match self {
            Self::Trust => "trust",
            Self::Cert => "crt",
            Self::Key => "key",
            Self::Uri => "uri",
        }
    }
}

const fn kind_index(kind: CredKind) -> u8 {
    match kind {
        CredKind::Cups => 0,
        CredKind::Tc => 1,
    }
}

const fn kind_name(kind: CredKind) -> &'static str {
    match kind {
        CredKind::Cups => "cups",
        CredKind::Tc => "tc",
    }
}

/// A station file.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FileId {
    /// A credential or URI file, e.g. `cups-bak.trust`.
    Cred {
        /// Category.
        kind: CredKind,
        /// Set.
        set: FileSet,
        /// Which file.
        file: CredFile,
    },
    /// `{cups,tc}-temp.upd`: commit marker (temp set being renamed over the regular set).
    CommitMarker(CredKind),
    /// `{cups,tc}-temp.cpy`: backup marker (regular set being copied to the backup set).
    CopyMarker(CredKind),
    /// `{cups,tc}-bak.done`: the backup was made; it is never made again.
    BackupDone(CredKind),
    /// `version.txt`: the `package` value.
    Version,
    /// `sig-N.key`: a raw 64-byte P-256 public key for update signatures.
    SigKey(u8),
    /// `/tmp/update.bi_`: the update while it streams.
    UpdateTemp,
    /// `/tmp/update.bin`: the received update, run by the caller.
    Update,
}

impl FileId {
    /// A credential-set file.
    #[must_use]
    pub const fn cred(kind: CredKind, set: FileSet, file: CredFile) -> Self {
        Self::Cred { kind, set, file }
    }

    /// A unique number per file, for ordering and hashing.
    const fn key(self) -> u32 {
        match self {
            Self::Cred { kind, set, file } => {
                (kind_index(kind) as u32) << 4 | (set.index() as u32) << 2 | file.index() as u32
            }
            Self::CommitMarker(k) => 0x100 | kind_index(k) as u32,
            Self::CopyMarker(k) => 0x110 | kind_index(k) as u32,
            Self::BackupDone(k) => 0x120 | kind_index(k) as u32,
            Self::Version => 0x200,
            Self::SigKey(n) => 0x300 | n as u32,
            Self::UpdateTemp => 0x400,
            Self::Update => 0x401,
        }
    }

    /// The station's file name (relative to its home; the update files live in `/tmp`).
    #[must_use]
    pub const fn name(self) -> FileName {
        FileName(self)
    }
}

impl PartialOrd for FileId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for FileId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl Hash for FileId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

/// `Display` of a [`FileId`] as the station names the file (see [`FileId::name`]).
#[derive(Clone, Copy, Debug)]
pub struct FileName(FileId);

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            FileId::Cred { kind, set, file } => {
                write!(f, "{}{}.{}", kind_name(kind), set.infix(), file.ext())
            }
            FileId::CommitMarker(k) => write!(f, "{}-temp.upd", kind_name(k)),
            FileId::CopyMarker(k) => write!(f, "{}-temp.cpy", kind_name(k)),
            FileId::BackupDone(k) => write!(f, "{}-bak.done", kind_name(k)),
            FileId::Version => f.write_str("version.txt"),
            FileId::SigKey(n) => write!(f, "sig-{n}.key"),
            FileId::UpdateTemp => f.write_str("/tmp/update.bi_"),
            FileId::Update => f.write_str("/tmp/update.bin"),
        }
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.name(), f)
    }
}

/// The file operations the station needs. Offsets and sizes are `u32` (files are small).
///
/// Semantics follow POSIX files: `create` truncates, `write` may extend a file (the station
/// always writes at or before the current end), `rename` replaces the target, `remove` of an
/// absent file succeeds.
pub trait StationStore {
    /// Why an operation failed.
    type Error: fmt::Debug;

    /// Size of `file` in bytes, or `None` when it does not exist.
    fn size(&mut self, file: FileId) -> Result<Option<u32>, Self::Error>;

    /// Read into `buf` from `offset`; returns the bytes read (fewer at the end of the file,
    /// 0 at or past it). Reading an absent file is an error.
    fn read(&mut self, file: FileId, offset: u32, buf: &mut [u8]) -> Result<usize, Self::Error>;

    /// Create `file` empty, truncating it if it exists.
    fn create(&mut self, file: FileId) -> Result<(), Self::Error>;

    /// Write `data` at `offset` (at most the current size) into an existing file.
    fn write(&mut self, file: FileId, offset: u32, data: &[u8]) -> Result<(), Self::Error>;

    /// Remove `file`; succeeds when it does not exist.
    fn remove(&mut self, file: FileId) -> Result<(), Self::Error>;

    /// Rename `from` (which exists) to `to`, replacing `to`.
    fn rename(&mut self, from: FileId, to: FileId) -> Result<(), Self::Error>;
}

impl<S: StationStore + ?Sized> StationStore for &mut S {
    type Error = S::Error;
    fn size(&mut self, file: FileId) -> Result<Option<u32>, Self::Error> {
        (**self).size(file)
    }
    fn read(&mut self, file: FileId, offset: u32, buf: &mut [u8]) -> Result<usize, Self::Error> {
        (**self).read(file, offset, buf)
    }
    fn create(&mut self, file: FileId) -> Result<(), Self::Error> {
        (**self).create(file)
    }
    fn write(&mut self, file: FileId, offset: u32, data: &[u8]) -> Result<(), Self::Error> {
        (**self).write(file, offset, data)
    }
    fn remove(&mut self, file: FileId) -> Result<(), Self::Error> {
        (**self).remove(file)
    }
    fn rename(&mut self, from: FileId, to: FileId) -> Result<(), Self::Error> {
        (**self).rename(from, to)
    }
}

#[cfg(feature = "alloc")]
pub use mem::{MemStore, MemStoreError};

#[cfg(feature = "alloc")]
mod mem {
    use super::{FileId, StationStore};
    use alloc::collections::{BTreeMap, BTreeSet};
    use alloc::vec::Vec;
    use core::fmt;

    /// An in-memory [`StationStore`] (feature `alloc`), for tests and simulators. Files can be
    /// made to fail ([`fail`](Self::fail)) to test storage errors.
    #[derive(Clone, Default, PartialEq, Eq, Debug)]
    pub struct MemStore {
        files: BTreeMap<FileId, Vec<u8>>,
        failing: BTreeSet<FileId>,
    }

    /// Why a [`MemStore`] operation failed.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    #[non_exhaustive]
    pub enum MemStoreError {
        /// The file does not exist.
        NotFound(FileId),
        /// A write started past the end of the file.
        Gap {
            /// The file.
            file: FileId,
            /// Where the write started.
            offset: u32,
            /// The file's size.
            size: u32,
        },
        /// The file was made to fail with [`MemStore::fail`].
        Injected(FileId),
        /// A file would exceed `u32::MAX` bytes.
        TooLarge(FileId),
    }

    impl fmt::Display for MemStoreError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Self::NotFound(file) => write!(f, "{file}: no such file"),
                Self::Gap { file, offset, size } => {
                    write!(f, "{file}: write at {offset} past the end ({size} bytes)")
                }
                Self::Injected(file) => write!(f, "{file}: injected failure"),
                Self::TooLarge(file) => write!(f, "{file}: file too large"),
            }
        }
    }

    impl core::error::Error for MemStoreError {}

    impl MemStore {
        /// An empty store.
        #[must_use]
        pub fn new() -> Self {
            Self::default()
        }

        /// Builder: the store with `file` set to `contents`.
        #[must_use]
        pub fn with(mut self, file: FileId, contents: impl Into<Vec<u8>>) -> Self {
            self.insert(file, contents);
            self
        }

        /// Set `file` to `contents` (creating it).
        pub fn insert(&mut self, file: FileId, contents: impl Into<Vec<u8>>) {
            self.files.insert(file, contents.into());
        }

        /// The contents of `file`, if it exists.
        #[must_use]
        pub fn get(&self, file: FileId) -> Option<&[u8]> {
            self.files.get(&file).map(Vec::as_slice)
        }

        /// Whether `file` exists.
        #[must_use]
        pub fn contains(&self, file: FileId) -> bool {
            self.files.contains_key(&file)
        }

        /// Remove `file`, returning its contents.
        pub fn take(&mut self, file: FileId) -> Option<Vec<u8>> {
            self.files.remove(&file)
        }

        /// All files in [`FileId`] order.
        pub fn iter(&self) -> impl Iterator<Item = (FileId, &[u8])> + '_ {
            self.files.iter().map(|(k, v)| (*k, v.as_slice()))
        }

        /// Make every operation on `file` fail (`true`) or work again (`false`).
        pub fn fail(&mut self, file: FileId, failing: bool) {
            if failing {
                self.failing.insert(file);
            } else {
                self.failing.remove(&file);
            }
        }

        fn check(&self, file: FileId) -> Result<(), MemStoreError> {
            if self.failing.contains(&file) {
                Err(MemStoreError::Injected(file))
            } else {
                Ok(())
            }
        }
    }

    impl StationStore for MemStore {
        type Error = MemStoreError;

        fn size(&mut self, file: FileId) -> Result<Option<u32>, MemStoreError> {
            self.check(file)?;
            match self.files.get(&file) {
                None => Ok(None),
                Some(v) => u32::try_from(v.len())
                    .map(Some)
                    .map_err(|_| MemStoreError::TooLarge(file)),
            }
        }

        fn read(
            &mut self,
            file: FileId,
            offset: u32,
            buf: &mut [u8],
        ) -> Result<usize, MemStoreError> {
            self.check(file)?;
            let v = self.files.get(&file).ok_or(MemStoreError::NotFound(file))?;
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            let Some(src) = v.get(start..) else {
                return Ok(0);
            };
            let n = src.len().min(buf.len());
            if let (Some(dst), Some(src)) = (buf.get_mut(..n), src.get(..n)) {
                dst.copy_from_slice(src);
            }
            Ok(n)
        }

        fn create(&mut self, file: FileId) -> Result<(), MemStoreError> {
            self.check(file)?;
            self.files.insert(file, Vec::new());
            Ok(())
        }

        fn write(&mut self, file: FileId, offset: u32, data: &[u8]) -> Result<(), MemStoreError> {
            self.check(file)?;
            let v = self
                .files
                .get_mut(&file)
                .ok_or(MemStoreError::NotFound(file))?;
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            if start > v.len() {
                let size = u32::try_from(v.len()).unwrap_or(u32::MAX);
                return Err(MemStoreError::Gap { file, offset, size });
            }
            let end = start
                .checked_add(data.len())
                .ok_or(MemStoreError::TooLarge(file))?;
            if u32::try_from(end).is_err() {
                return Err(MemStoreError::TooLarge(file));
            }
            if end > v.len() {
                v.resize(end, 0);
            }
            if let Some(dst) = v.get_mut(start..end) {
                dst.copy_from_slice(data);
            }
            Ok(())
        }

        fn remove(&mut self, file: FileId) -> Result<(), MemStoreError> {
            self.check(file)?;
            self.files.remove(&file);
            Ok(())
        }

        fn rename(&mut self, from: FileId, to: FileId) -> Result<(), MemStoreError> {
            self.check(from)?;
            self.check(to)?;
            let v = self
                .files
                .remove(&from)
                .ok_or(MemStoreError::NotFound(from))?;
            self.files.insert(to, v);
            Ok(())
        }
    }
}
