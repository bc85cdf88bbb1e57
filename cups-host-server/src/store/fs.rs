//! The embedded filesystem store (the default, under `data/`).
//!
//! * A key is a relative path below the root (keys are validated first, see
//!   [`validate_key`]): `gateways/0016c001ff10a235.json` is the file of that name.
//! * Directories are created with mode 0700, objects with mode 0600 from their creation on
//!   (records hold private keys and token hashes).
//! * Writes are atomic: the bytes go to a uniquely named temp file in the target's directory,
//!   which is fsynced, renamed over the target, and the directory fsynced. A reader sees the old
//!   object or the new one, never part of one; a crash leaves at most a temp file, which reads
//!   and listings ignore and [`FsStore::open`] removes once it is [`TEMP_MAX_AGE`] old.
//! * Every write takes a per-key lock (one of [`LOCK_STRIPES`] `flock`ed files under
//!   `<root>/~locks/`, after an in-process async mutex of the same stripe) around
//!   "check the condition, rename". `Create` and `Update` are therefore atomic across threads
//!   and across processes sharing the root on one host; reads take no lock.
//! * The ETag is the SHA-256 of the content (hex): exact, stable across processes and restarts,
//!   and computable by anyone. An `Update` compares it by re-hashing the current object under
//!   the lock; a streaming read hashes its open file once before streaming it (the cost is one
//!   extra sequential read, ~10 ms per 16 MiB with SHA-NI, in exchange for plain files that an
//!   operator can inspect or restore with ordinary tools).
//!
//! Temp and lock files carry a `~` in their names, a character keys cannot contain, so they can
//! never be mistaken for objects. All blocking I/O runs on tokio's blocking pool.
//!
//! Limits of a filesystem: a key cannot be both an object and a "directory" of other objects
//! (`a` and `a/b`); writing the second one fails with [`StoreError::Backend`]. The key layout
//! of [`super::keys`] never does this.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::stream;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{
    ETag, Object, ObjectStream, PutMode, Store, StoreError, validate_key, validate_prefix,
};

/// Size of the chunks [`FsStore::get_stream`] reads and yields.
pub const FS_STREAM_CHUNK: usize = 64 * 1024;

/// Number of lock stripes: keys hash onto this many lock files (and in-process mutexes).
/// Unrelated keys sharing a stripe only serialize their (short) commit step.
pub const LOCK_STRIPES: usize = 64;

/// Temp files older than this are crash leftovers that [`FsStore::open`] deletes. A live write
/// keeps its temp file for milliseconds; the margin covers slow disks and clock steps.
pub const TEMP_MAX_AGE: Duration = Duration::from_secs(60);

/// Mode of the root and of every directory the store creates.
pub const DIR_MODE: u32 = 0o700;

/// Mode of every object, temp and lock file the store creates.
pub const FILE_MODE: u32 = 0o600;

/// Directory (below the root) holding the stripe lock files. Not a valid key segment.
const LOCK_DIR: &str = "~locks";

/// Temp file names: `~<16 hex>~tmp` in the target's directory. Not a valid key segment.
const TEMP_SUFFIX: &str = "~tmp";

/// Attempts at finding an unused temp file name before giving up.
const TEMP_NAME_ATTEMPTS: usize = 8;

/// The filesystem [`Store`]. Clones share the root and the in-process locks; independent
/// instances (other processes) on the same root still exclude each other through `flock`.
#[derive(Clone)]
pub struct FsStore {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    stripes: Vec<Arc<Mutex<()>>>,
}

impl fmt::Debug for FsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsStore")
            .field("root", &self.inner.root)
            .finish()
    }
}

fn backend(key: &str, source: io::Error) -> StoreError {
    StoreError::Backend {
        key: key.to_owned(),
        source: Box::new(source),
    }
}

/// Errors that mean "no object at this path" rather than "the store failed".
fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::IsADirectory
    )
}

/// The ETag of some bytes: lowercase hex SHA-256.
fn content_etag(bytes: &[u8]) -> ETag {
    ETag(hex::encode(Sha256::digest(bytes)))
}

/// FNV-1a: a hash that is the same in every process (unlike `RandomState`), so all processes
/// agree on which stripe guards a key.
fn stripe_of(key: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // The remainder is < LOCK_STRIPES, so it fits in usize.
    usize::try_from(h % LOCK_STRIPES as u64).unwrap_or(0)
}

fn is_temp_name(name: &str) -> bool {
    name.starts_with('~') && name.ends_with(TEMP_SUFFIX)
}

/// Run blocking I/O on the blocking pool.
async fn blocking<T, F>(key: &str, f: F) -> Result<T, StoreError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(join) => Err(backend(key, io::Error::other(join.to_string()))),
    }
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `mkdir -p` below `root` with [`DIR_MODE`], fsyncing the parent of each directory created.
fn ensure_dirs(root: &Path, dir: &Path) -> io::Result<()> {
    let Ok(rel) = dir.strip_prefix(root) else {
        return Err(io::Error::other("directory outside the store root"));
    };
    let mut cur = root.to_path_buf();
    for comp in rel.components() {
        let parent = cur.clone();
        cur.push(comp);
        match DirBuilder::new().mode(DIR_MODE).create(&cur) {
            Ok(()) => fsync_dir(&parent)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A temp file that is removed when dropped, unless it was renamed into place.
struct TempFile {
    path: Option<PathBuf>,
}

impl TempFile {
    /// Create, write and fsync a new temp file in `dir`.
    fn write(dir: &Path, bytes: &[u8]) -> io::Result<Self> {
        let mut last = None;
        for _ in 0..TEMP_NAME_ATTEMPTS {
            let path = dir.join(format!("~{:016x}{TEMP_SUFFIX}", random_u64()));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&path)
            {
                Ok(mut file) => {
                    let temp = Self { path: Some(path) };
                    file.write_all(bytes)?;
                    file.sync_all()?;
                    return Ok(temp);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free temp file name")))
    }

    /// Rename over `target` (atomic), then fsync the directory.
    fn commit(mut self, target: &Path) -> io::Result<()> {
        let Some(path) = self.path.take() else {
            return Err(io::Error::other("temp file already committed"));
        };
        if let Err(e) = fs::rename(&path, target) {
            self.path = Some(path);
            return Err(e);
        }
        match target.parent() {
            Some(dir) => fsync_dir(dir),
            None => Ok(()),
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            // Best effort: a leftover is ignored by reads and cleaned by `open`.
            let _ = fs::remove_file(path);
        }
    }
}

/// A random name component; falls back to time and a counter if the OS RNG fails (the
/// `create_new` open guarantees uniqueness anyway).
fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_ok() {
        return u64::from_le_bytes(b);
    }
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // Truncation is fine: this only needs to differ between attempts.
    #[allow(clippy::cast_possible_truncation)]
    let t = t as u64;
    t ^ n.rotate_left(32) ^ u64::from(std::process::id())
}

/// An exclusive `flock` on the stripe's lock file, released when dropped (on close).
struct StripeLock {
    _file: File,
}

fn lock_stripe(root: &Path, stripe: usize) -> io::Result<StripeLock> {
    let path = root.join(LOCK_DIR).join(format!("{stripe:02x}"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)?;
    file.lock()?;
    Ok(StripeLock { _file: file })
}

/// Open an object for reading; `None` if there is no object (absent, or a directory).
fn open_object(path: &Path) -> io::Result<Option<(File, u64)>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(None);
    }
    Ok(Some((file, meta.len())))
}

/// Hash an open file from its current position to its end.
fn hash_file(file: &mut File) -> io::Result<ETag> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; FS_STREAM_CHUNK];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ETag(hex::encode(hasher.finalize())))
}

/// The current ETag of the object at `path`, if any.
fn current_etag(path: &Path) -> io::Result<Option<ETag>> {
    match open_object(path)? {
        Some((mut file, _)) => hash_file(&mut file).map(Some),
        None => Ok(None),
    }
}

/// Read up to `want` bytes (fewer only at end of file).
fn read_chunk(file: &mut File, want: usize) -> io::Result<Bytes> {
    let mut buf = BytesMut::zeroed(want);
    let mut filled = 0;
    while filled < want {
        let Some(rest) = buf.get_mut(filled..) else {
            break;
        };
        match file.read(rest) {
            Ok(0) => break,
            Ok(n) => filled = filled.saturating_add(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf.freeze())
}

/// Delete crash leftovers: temp files older than `max_age` anywhere below `dir`.
fn clean_temp_files(dir: &Path, max_age: Duration) -> io::Result<usize> {
    let mut removed = 0usize;
    let now = SystemTime::now();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let ft = entry.file_type()?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if ft.is_dir() && name != LOCK_DIR {
            removed = removed.saturating_add(clean_temp_files(&entry.path(), max_age)?);
        } else if ft.is_file() && is_temp_name(&name) {
            let modified = entry.metadata()?.modified()?;
            let age = now.duration_since(modified).unwrap_or_default();
            if age >= max_age {
                match fs::remove_file(entry.path()) {
                    Ok(()) => removed = removed.saturating_add(1),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(removed)
}

/// Collect the keys of all objects below `dir` (whose key prefix is `prefix`).
fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if is_absent(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        // Temp files, lock files and anything else outside the key syntax are not objects.
        let Some(name) = name.to_str() else { continue };
        if name.contains('/') || validate_key(name).is_err() {
            continue;
        }
        let mut ft = entry.file_type()?;
        let mut followed = false;
        if ft.is_symlink() {
            match fs::metadata(entry.path()) {
                Ok(m) => {
                    ft = m.file_type();
                    followed = true;
                }
                Err(e) if is_absent(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        let key = format!("{prefix}{name}");
        if ft.is_file() {
            if validate_key(&key).is_ok() {
                out.push(key);
            }
        } else if ft.is_dir() && !followed {
            walk(&entry.path(), &format!("{key}/"), out)?;
        }
    }
    Ok(())
}

impl FsStore {
    /// Open (creating if needed, mode 0700) the store rooted at `root`. A root that is open
    /// to group or others is tightened to 0700 (it holds key material). Temp files left by a
    /// crash that are at least [`TEMP_MAX_AGE`] old are deleted.
    ///
    /// Blocking: call it at startup (or from `spawn_blocking`).
    pub fn open(root: PathBuf) -> Result<FsStore, StoreError> {
        let shown = root.display().to_string();
        let err = |e| backend(&shown, e);
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&root)
            .map_err(err)?;
        let meta = fs::metadata(&root).map_err(err)?;
        if !meta.is_dir() {
            return Err(err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "store root is not a directory",
            )));
        }
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                root = %shown,
                mode = format_args!("{:o}", mode & 0o7777),
                "store root is accessible to group/others; setting mode 0700"
            );
            fs::set_permissions(&root, fs::Permissions::from_mode(DIR_MODE)).map_err(err)?;
        }
        ensure_dirs(&root, &root.join(LOCK_DIR)).map_err(err)?;
        let removed = clean_temp_files(&root, TEMP_MAX_AGE).map_err(err)?;
        if removed > 0 {
            tracing::info!(root = %shown, removed, "removed temp files left by an interrupted write");
        }
        Ok(FsStore {
            inner: Arc::new(Inner {
                root,
                stripes: (0..LOCK_STRIPES)
                    .map(|_| Arc::new(Mutex::new(())))
                    .collect(),
            }),
        })
    }

    /// The root directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    fn path_of(&self, key: &str) -> PathBuf {
        self.inner.root.join(key)
    }

    /// The in-process half of the key's lock (the `flock` half is taken on the blocking pool).
    async fn lock_in_process(&self, key: &str) -> Result<(usize, OwnedMutexGuard<()>), StoreError> {
        let stripe = stripe_of(key);
        let Some(m) = self.inner.stripes.get(stripe) else {
            return Err(backend(key, io::Error::other("lock stripe out of range")));
        };
        Ok((stripe, Arc::clone(m).lock_owned().await))
    }
}

#[async_trait]
impl Store for FsStore {
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        validate_key(key)?;
        let path = self.path_of(key);
        let k = key.to_owned();
        blocking(key, move || {
            let Some((mut file, len)) = open_object(&path).map_err(|e| backend(&k, e))? else {
                return Ok(None);
            };
            let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            file.read_to_end(&mut buf).map_err(|e| backend(&k, e))?;
            let etag = content_etag(&buf);
            Ok(Some(Object {
                bytes: Bytes::from(buf),
                etag,
            }))
        })
        .await
    }

    async fn get_stream(&self, key: &str) -> Result<Option<ObjectStream>, StoreError> {
        validate_key(key)?;
        let path = self.path_of(key);
        let k = key.to_owned();
        let opened = blocking(key, move || {
            let Some((mut file, len)) = open_object(&path).map_err(|e| backend(&k, e))? else {
                return Ok(None);
            };
            // Hash and stream the same open file: a concurrent rename cannot mix versions.
            let etag = hash_file(&mut file).map_err(|e| backend(&k, e))?;
            file.seek(SeekFrom::Start(0)).map_err(|e| backend(&k, e))?;
            Ok(Some((file, len, etag)))
        })
        .await?;
        let Some((file, len, etag)) = opened else {
            return Ok(None);
        };
        let key = key.to_owned();
        let chunks = stream::try_unfold((Some(file), len), move |(file, remaining)| {
            let key = key.clone();
            async move {
                let Some(mut file) = file.filter(|_| remaining > 0) else {
                    return Ok(None);
                };
                let want = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(FS_STREAM_CHUNK);
                let k = key.clone();
                let (file, chunk) = blocking(&key, move || {
                    let chunk = read_chunk(&mut file, want).map_err(|e| backend(&k, e))?;
                    Ok((file, chunk))
                })
                .await?;
                if chunk.is_empty() {
                    return Err(backend(
                        &key,
                        io::Error::new(io::ErrorKind::UnexpectedEof, "object shrank while read"),
                    ));
                }
                let remaining = remaining.saturating_sub(chunk.len() as u64);
                Ok(Some((chunk, (Some(file), remaining))))
            }
        });
        Ok(Some(ObjectStream {
            len,
            etag,
            chunks: Box::pin(chunks),
        }))
    }

    async fn put(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<ETag, StoreError> {
        validate_key(key)?;
        let root = self.inner.root.clone();
        let target = self.path_of(key);
        let etag = content_etag(&bytes);
        // 1. Write and fsync the temp file, outside any lock.
        let (r, t, k) = (root.clone(), target.clone(), key.to_owned());
        let temp = blocking(key, move || {
            let dir = t.parent().unwrap_or(&r);
            ensure_dirs(&r, dir).map_err(|e| backend(&k, e))?;
            TempFile::write(dir, &bytes).map_err(|e| backend(&k, e))
        })
        .await?;
        // 2. Under the key's lock (threads, then processes): check the condition, rename.
        let (stripe, guard) = self.lock_in_process(key).await?;
        let k = key.to_owned();
        blocking(key, move || {
            let _guard = guard;
            let _lock = lock_stripe(&root, stripe).map_err(|e| backend(&k, e))?;
            match mode {
                PutMode::Overwrite => {}
                PutMode::Create => match fs::symlink_metadata(&target) {
                    Ok(m) if !m.is_dir() => return Err(StoreError::AlreadyExists { key: k }),
                    Ok(_) => {} // a directory: the rename below fails with a backend error
                    Err(e) if is_absent(&e) => {}
                    Err(e) => return Err(backend(&k, e)),
                },
                PutMode::Update(want) => {
                    let have = current_etag(&target).map_err(|e| backend(&k, e))?;
                    if have.as_ref() != Some(&want) {
                        return Err(StoreError::Precondition { key: k });
                    }
                }
            }
            temp.commit(&target).map_err(|e| backend(&k, e))
        })
        .await?;
        Ok(etag)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        let root = self.inner.root.clone();
        let target = self.path_of(key);
        let (stripe, guard) = self.lock_in_process(key).await?;
        let k = key.to_owned();
        blocking(key, move || {
            let _guard = guard;
            let _lock = lock_stripe(&root, stripe).map_err(|e| backend(&k, e))?;
            match fs::remove_file(&target) {
                Ok(()) => {}
                Err(e) if is_absent(&e) => return Ok(()),
                Err(e) => return Err(backend(&k, e)),
            }
            match target.parent() {
                Some(dir) => fsync_dir(dir).map_err(|e| backend(&k, e)),
                None => Ok(()),
            }
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        validate_prefix(prefix)?;
        let dir = self.inner.root.join(prefix);
        let p = prefix.to_owned();
        blocking(prefix, move || {
            let mut keys = Vec::new();
            walk(&dir, &p, &mut keys).map_err(|e| backend(&p, e))?;
            keys.sort_unstable();
            Ok(keys)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let root = self.inner.root.clone();
        blocking("", move || {
            let shown = root.display().to_string();
            for dir in [root.clone(), root.join(LOCK_DIR)] {
                let meta = fs::metadata(&dir).map_err(|e| backend(&shown, e))?;
                if !meta.is_dir() {
                    return Err(backend(
                        &shown,
                        io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
                    ));
                }
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_are_stable_and_in_range() {
        // Fixed values: every process must map a key to the same stripe.
        assert_eq!(stripe_of(""), (0xcbf2_9ce4_8422_2325u64 % 64) as usize);
        for k in ["gateways/0016c001ff10a235.json", "a", "firmware/x/image"] {
            assert!(stripe_of(k) < LOCK_STRIPES);
            assert_eq!(stripe_of(k), stripe_of(k));
        }
    }

    #[test]
    fn temp_and_lock_names_are_never_keys() {
        let temp = format!("~{:016x}{TEMP_SUFFIX}", random_u64());
        assert!(is_temp_name(&temp));
        assert!(validate_key(&temp).is_err());
        assert!(validate_key(LOCK_DIR).is_err());
        assert!(!is_temp_name("meta.json"));
    }

    #[test]
    fn etag_is_sha256_hex() {
        assert_eq!(
            content_etag(b"abc").0,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
