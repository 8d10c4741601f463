//! Compiled components, cached on disk.
//!
//! Compiling a component takes from tens of milliseconds to seconds; loading
//! a precompiled one takes well under a millisecond. But a cache file is
//! native code that podrun runs, so the cache trusts only what podrun wrote:
//! - the directory is the user's own and 0700;
//! - a file is opened without following symlinks, and used only if it is
//!   owned by the user and writable by no one else;
//! - each file ends with a keyed BLAKE3 MAC of its name and contents under
//!   a per-user key kept outside the cache tree (0600), checked before the
//!   file is deserialized: a file planted under a key, or copied from
//!   another key, fails it;
//! - files are written to a fresh temporary file and renamed into place;
//! - a file is read once, and the copy that was checked is the one loaded:
//!   wasmtime never maps the file, whose pages could change after the check.
//!
//! A file that fails any check is reported and compiled again. Artifacts
//! are keyed by the component's BLAKE3 hash and by the engine's compatibility
//! hash (wasmtime version and settings), so a change of either compiles
//! again.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre, Linker};

use super::CacheOptions;
use super::sandbox::HostState;

const MAC_LEN: usize = blake3::OUT_LEN;
const KEY_LEN: usize = 32;
/// The largest cache file read: compiled code of the largest component
/// compiled, with room to spare.
const MAX_ARTIFACT: u64 = 1 << 30;

pub(crate) struct Cache {
    disk: Option<Disk>,
    /// Per key, the component once compiled (or why it cannot be: the
    /// same bytes fail the same way). Loads of one component wait for the
    /// first to compile it: a thousand runs starting at once compile each
    /// hook once, not a thousand times.
    loaded: Mutex<HashMap<String, Slot>>,
    /// The keys of built-in hooks already loaded, by name: built-ins are
    /// part of podrun, so a second load skips hashing their bytes.
    builtins: Mutex<HashMap<&'static str, String>>,
    /// Components compiled (not found in memory or on disk) so far.
    pub(crate) compiled: AtomicU64,
}

/// One component's place in memory: filled once, by the first load.
pub(crate) type Slot = Arc<OnceCell<Result<Compiled, String>>>;

/// A component, compiled and linked: what every load of it shares.
#[derive(Clone)]
pub(crate) struct Compiled {
    pub(crate) component: Component,
    /// Ready to instantiate, or why podrun's imports do not satisfy it.
    pub(crate) pre: Result<InstancePre<HostState>, String>,
}

/// The cache directory and the key that signs its files.
struct Disk {
    dir: PathBuf,
    key: [u8; KEY_LEN],
}

/// Why the cache on disk is not used, or a file in it is refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    #[error("{path} is owned by uid {owner}, not by this user ({me})")]
    Owner { path: PathBuf, owner: u32, me: u32 },
    #[error("{path} is writable by other users (mode {mode:o})")]
    Writable { path: PathBuf, mode: u32 },
    #[error("{path} is readable by other users (mode {mode:o})")]
    Readable { path: PathBuf, mode: u32 },
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path} fails its integrity check: podrun did not write it")]
    Integrity { path: PathBuf },
    #[error("{path} is larger than any compiled hook ({size} bytes)")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("the key {path} must not be inside the cache directory")]
    KeyInCache { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Cache {
    /// A cache on disk as `options` say; `None` keeps compiled components
    /// in memory only. A directory or key that cannot be trusted leaves the
    /// cache in memory, with a warning.
    pub(crate) fn new(options: Option<CacheOptions>) -> Self {
        let disk = options.and_then(|o| match Disk::open(&o) {
            Ok(disk) => Some(disk),
            Err(e) => {
                tracing::warn!("not caching compiled hooks on disk: {e}");
                None
            }
        });
        Cache {
            disk,
            loaded: Mutex::new(HashMap::new()),
            builtins: Mutex::new(HashMap::new()),
            compiled: AtomicU64::new(0),
        }
    }

    /// The key of the built-in hook `name`, once known.
    pub(crate) fn builtin_key(&self, name: &str) -> Option<String> {
        self.builtins.lock().ok()?.get(name).cloned()
    }

    /// The key of the built-in hook `name`, remembered. Blocking: it hashes.
    pub(crate) fn remember_builtin(
        &self,
        engine: &Engine,
        name: &'static str,
        bytes: &[u8],
    ) -> String {
        if let Some(key) = self.builtin_key(name) {
            return key;
        }
        let key = key(engine, bytes);
        if let Ok(mut b) = self.builtins.lock() {
            b.insert(name, key.clone());
        }
        key
    }

    /// The cache key of `bytes`. Blocking: it hashes.
    pub(crate) fn key(&self, engine: &Engine, bytes: &[u8]) -> String {
        key(engine, bytes)
    }

    /// Where the component with `key` is, or will be once compiled.
    pub(crate) fn cell(&self, key: &str) -> Slot {
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_string())
            .or_default()
            .clone()
    }

    /// The component for `bytes` from disk, or compiled now and written to
    /// disk; linked with `linker`. Blocking.
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        linker: &Linker<HostState>,
        key: &str,
        bytes: &[u8],
    ) -> Result<Compiled, String> {
        let cached = self.disk.as_ref().and_then(|d| match d.load(engine, key) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("ignoring a cached hook: {e}; compiling it again");
                None
            }
        });
        let component = match cached {
            Some(c) => c,
            None => {
                self.compiled.fetch_add(1, Ordering::Relaxed);
                let c = Component::new(engine, bytes).map_err(|e| format!("{e:#}"))?;
                if let Some(disk) = &self.disk
                    && let Err(e) = disk.store(&c, key)
                {
                    tracing::warn!("cannot cache the compiled hook: {e}");
                }
                c
            }
        };
        Ok(Compiled {
            pre: linker
                .instantiate_pre(&component)
                .map_err(|e| format!("{e:#}")),
            component,
        })
    }
}

fn key(engine: &Engine, bytes: &[u8]) -> String {
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let mut key = blake3::hash(bytes).to_hex().to_string();
    key.push_str(&format!("-{:016x}", h.finish()));
    key
}

fn me() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Checks that what `meta` describes is ours and not writable by others;
/// with `private`, not readable by others either.
fn check_owned(path: &Path, meta: &fs::Metadata, private: bool) -> Result<(), Refused> {
    let path = path.to_path_buf();
    let mode = meta.mode() & 0o7777;
    if meta.uid() != me() {
        return Err(Refused::Owner {
            path,
            owner: meta.uid(),
            me: me(),
        });
    }
    if mode & 0o022 != 0 {
        return Err(Refused::Writable { path, mode });
    }
    if private && mode & 0o077 != 0 {
        return Err(Refused::Readable { path, mode });
    }
    Ok(())
}

/// Opens a file for reading without following a symlink at its name.
fn open_nofollow(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        // Not blocking either: a FIFO planted there would hold the open.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

impl Disk {
    fn open(options: &CacheOptions) -> Result<Disk, Refused> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Refused::Io { path, source }
        };
        let dir = &options.dir;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        let meta = fs::symlink_metadata(dir).map_err(io(dir))?;
        if !meta.is_dir() {
            return Err(Refused::NotAFile { path: dir.clone() });
        }
        if meta.uid() != me() {
            return Err(Refused::Owner {
                path: dir.clone(),
                owner: meta.uid(),
                me: me(),
            });
        }
        if meta.mode() & 0o077 != 0 {
            // Our own directory, opened too wide: close it.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
        }
        if options.key.starts_with(dir) {
            return Err(Refused::KeyInCache {
                path: options.key.clone(),
            });
        }
        let key = read_or_make_key(&options.key)?;
        Ok(Disk {
            dir: dir.clone(),
            key,
        })
    }

    fn mac(&self, name: &str) -> blake3::Hasher {
        let mut mac = blake3::Hasher::new_keyed(&self.key);
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac
    }

    fn file(&self, key: &str) -> PathBuf {
        // Signed files have a name of their own: unsigned ones from before
        // are not read (nor reported).
        self.dir.join(format!("{key}.signed.cwasm"))
    }

    /// The component cached under `key`, if there is one podrun wrote.
    fn load(&self, engine: &Engine, key: &str) -> Result<Option<Component>, Refused> {
        let path = self.file(key);
        let io = |source| Refused::Io {
            path: path.clone(),
            source,
        };
        let file = match open_nofollow(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(Refused::NotAFile { path });
        }
        check_owned(&path, &meta, false)?;
        if meta.len() > MAX_ARTIFACT {
            return Err(Refused::TooLarge {
                path,
                size: meta.len(),
            });
        }
        // Read once, checked, and compiled from this copy: wasmtime never
        // maps the file itself, whose pages a writer could change after
        // the check.
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_ARTIFACT + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        let Some(length) = bytes.len().checked_sub(MAC_LEN) else {
            return Err(Refused::Integrity { path });
        };
        let (artifact, tag) = bytes.split_at(length);
        let mut mac = self.mac(key);
        mac.update(artifact);
        if blake3::Hash::from_slice(tag).ok() != Some(mac.finalize()) {
            return Err(Refused::Integrity { path });
        }
        // SAFETY: the bytes carry this user's MAC over this key and these
        // contents, so podrun wrote them from a component it compiled;
        // wasmtime also checks that they match this engine.
        match unsafe { Component::deserialize(engine, artifact) } {
            Ok(c) => Ok(Some(c)),
            Err(e) => {
                tracing::debug!("ignoring cached component {}: {e}", path.display());
                Ok(None)
            }
        }
    }

    /// Writes `component` under `key`: to a new temporary file (0600, a
    /// random name, created exclusively), then renamed into place.
    fn store(&self, component: &Component, key: &str) -> anyhow::Result<()> {
        let artifact = component.serialize()?;
        let mut mac = self.mac(key);
        mac.update(&artifact);
        let tag = mac.finalize();
        let mut tmp = tempfile::Builder::new()
            .prefix(".podrun-")
            .suffix(".tmp")
            .tempfile_in(&self.dir)?;
        tmp.write_all(&artifact)?;
        tmp.write_all(tag.as_bytes())?;
        tmp.as_file().sync_data()?;
        tmp.persist(self.file(key))?;
        Ok(())
    }
}

/// The key in `path`, made (random, 0600) if there is none.
fn read_or_make_key(path: &Path) -> Result<[u8; KEY_LEN], Refused> {
    let io = |source| Refused::Io {
        path: path.to_path_buf(),
        source,
    };
    match open_nofollow(path) {
        Ok(mut file) => {
            let meta = file.metadata().map_err(io)?;
            if !meta.is_file() {
                return Err(Refused::NotAFile {
                    path: path.to_path_buf(),
                });
            }
            check_owned(path, &meta, true)?;
            let mut key = [0u8; KEY_LEN];
            file.read_exact(&mut key).map_err(io)?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = path.parent().unwrap_or(Path::new("."));
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
            let mut key = [0u8; KEY_LEN];
            getrandom::fill(&mut key).map_err(|e| io(std::io::Error::other(e.to_string())))?;
            let mut tmp = tempfile::Builder::new()
                .prefix(".podrun-key-")
                .tempfile_in(dir)
                .map_err(io)?;
            tmp.write_all(&key).map_err(io)?;
            tmp.as_file().sync_data().map_err(io)?;
            // Another podrun may have made the key meanwhile: use its key.
            match tmp.persist_noclobber(path) {
                Ok(_) => Ok(key),
                Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                    read_or_make_key(path)
                }
                Err(e) => Err(io(e.error)),
            }
        }
        Err(e) => Err(io(e)),
    }
}
