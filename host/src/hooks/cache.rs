//! Compiled components, cached on disk.
//!
//! Compiling a component takes from tens of milliseconds to seconds; loading
//! a precompiled one takes well under a millisecond. Artifacts are keyed by
//! the component's SHA-256 and by the engine's compatibility hash (wasmtime
//! version and settings), so a change of either compiles again.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

pub(crate) struct Cache {
    dir: Option<PathBuf>,
    loaded: Mutex<HashMap<String, Component>>,
}

impl Cache {
    /// A cache in `dir`; `None` keeps compiled components in memory only.
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        Cache {
            dir,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// The compiled component for `bytes`: from memory, from disk, or
    /// compiled now and written to disk.
    pub(crate) fn component(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
        let key = key(engine, bytes);
        if let Some(c) = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(c.clone());
        }
        let file = self.dir.as_ref().map(|d| d.join(format!("{key}.cwasm")));
        let component = match file.as_deref().and_then(|f| load(engine, f)) {
            Some(c) => c,
            None => {
                let c = Component::new(engine, bytes)?;
                if let Some(file) = &file {
                    store(&c, file);
                }
                c
            }
        };
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, component.clone());
        Ok(component)
    }
}

fn key(engine: &Engine, bytes: &[u8]) -> String {
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let digest = Sha256::digest(bytes);
    let mut key = String::with_capacity(80);
    for b in digest {
        key.push_str(&format!("{b:02x}"));
    }
    key.push_str(&format!("-{:016x}", h.finish()));
    key
}

fn load(engine: &Engine, file: &Path) -> Option<Component> {
    if !file.is_file() {
        return None;
    }
    // SAFETY: the file is an artifact this program wrote (named by the
    // hash of its source and of the engine's settings) in the user's own
    // cache directory; wasmtime checks that it matches this engine.
    match unsafe { Component::deserialize_file(engine, file) } {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::debug!("ignoring cached component {}: {e}", file.display());
            None
        }
    }
}

fn store(component: &Component, file: &Path) {
    let result = (|| -> anyhow::Result<()> {
        let dir = file.parent().expect("cache files live in a directory");
        std::fs::create_dir_all(dir)?;
        let bytes = component.serialize()?;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{}-{n}.tmp", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, file)?;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!(
            "cannot cache the compiled hook in {}: {e}",
            file.parent().unwrap_or(file).display()
        );
    }
}
