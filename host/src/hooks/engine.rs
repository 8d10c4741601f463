//! The hook engine: a value the caller builds and shares, owning the
//! wasmtime engine, the linker that grants hooks what they may use, the
//! compiled-component cache and the instance pool.

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use wasmtime::component::{ComponentExportIndex, Linker, WasmStr};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, StoreContextMut,
};

use super::bindings::log;
use super::cache::Cache;
use super::hook::{Hook, Resolved, Script};
use super::sandbox::{self, HostState, VirtualClock};
use super::ticker::Ticker;
use super::{HookError, Limits, Source, Spec, builtin};

/// How an engine is built.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How many hook instances may exist at once; a call waits for a free
    /// one. A script hook's instance is held until its hook is dropped.
    pub pool_size: u32,
    /// Limits for hooks that set none.
    pub defaults: Defaults,
    /// The largest `.wasm` file compiled, in bytes.
    pub max_component: u64,
    /// Where compiled components are kept between processes (none: only
    /// in memory), and the file holding the key that signs them.
    pub cache: Option<CacheOptions>,
}

/// The limits of a hook whose config sets none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// Deadline of one call: the time it computes and sleeps.
    pub deadline: Duration,
    /// The most linear memory one call may use in total, in bytes.
    pub memory: usize,
    /// The most bytes one call may return (all strings of its result).
    pub output: usize,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            deadline: Duration::from_millis(100),
            memory: 64 << 20,
            output: 4 << 20,
        }
    }
}

/// Where compiled components are cached.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// The cache directory (made 0700 if missing).
    pub dir: PathBuf,
    /// The file with the key that authenticates cache files (made 0600 if
    /// missing). It must live outside `dir`.
    pub key: PathBuf,
}

impl CacheOptions {
    /// A cache in `dir`, with its key in the user's local data directory
    /// (`$XDG_DATA_HOME/podrun/cache.key`), away from the cache tree: a
    /// restored or shared cache brings no key of its own. `None` where
    /// there is no data directory.
    pub fn in_dir(dir: PathBuf) -> Option<Self> {
        let key = dirs::data_local_dir()?.join("podrun").join("cache.key");
        Some(CacheOptions { dir, key })
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            pool_size: 128,
            defaults: Defaults::default(),
            max_component: 128 << 20,
            cache: None,
        }
    }
}

/// Loads hooks. Cheap to clone: clones share the engine, the cache and
/// the pool.
#[derive(Clone)]
pub struct Hooks {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) engine: Engine,
    linker: Linker<HostState>,
    cache: Cache,
    pub(crate) pool: Arc<Semaphore>,
    ticker: Arc<Ticker>,
    options: EngineOptions,
}

impl Hooks {
    /// An engine built as `options` say, its epoch ticking on a thread of
    /// its own until it is dropped.
    pub fn new(options: EngineOptions) -> Result<Self, HookError> {
        let link = |e: wasmtime::Error| HookError::Load {
            hook: "(engine)".into(),
            message: format!("{e:#}"),
        };
        let engine = Engine::new(&config(Some(options.pool_size)))
            .or_else(|e| {
                // Pooling reserves address space up front; where that is
                // refused (ulimit -v), allocate on demand instead.
                tracing::debug!("pooling allocator unavailable ({e}); allocating on demand");
                Engine::new(&config(None))
            })
            .map_err(link)?;
        let ticker = Ticker::start(&engine).map_err(|e| HookError::Load {
            hook: "(engine)".into(),
            message: format!("cannot start the epoch thread: {e}"),
        })?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
        // Hooks get a clock whose sleeps return at once and are charged to
        // the call's deadline, in place of WASI's real timers.
        linker.allow_shadowing(true);
        wasmtime_wasi::p2::bindings::clocks::monotonic_clock::add_to_linker::<_, VirtualClock>(
            &mut linker,
            |s| s,
        )
        .map_err(link)?;
        linker.allow_shadowing(false);
        linker
            .instance("podrun:hook/log@0.1.0")
            .and_then(|mut log| {
                // The message is read in place and cut before it is copied.
                log.func_wrap(
                    "log",
                    |mut store: StoreContextMut<'_, HostState>,
                     (level, message): (log::Level, WasmStr)| {
                        let text = message.to_str(&store)?;
                        let text = cut(&text, sandbox::MAX_LOG_LINE + 4).to_string();
                        store.data_mut().log(level, &text)
                    },
                )
            })
            .map_err(link)?;
        let cache = Cache::new(options.cache.clone());
        Ok(Hooks {
            shared: Arc::new(Shared {
                engine,
                linker,
                cache,
                pool: Arc::new(Semaphore::new(options.pool_size as usize)),
                ticker,
                options,
            }),
        })
    }

    /// How many components this engine has compiled (rather than found
    /// compiled in memory or in the cache directory).
    pub fn components_compiled(&self) -> u64 {
        self.shared
            .cache
            .compiled
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Hook instances in use now, of [`EngineOptions::pool_size`].
    pub fn instances_in_use(&self) -> usize {
        self.shared.options.pool_size as usize - self.shared.pool.available_permits()
    }

    /// The limits of hooks that set none.
    pub fn defaults(&self) -> Defaults {
        self.shared.options.defaults
    }

    /// Loads the hook `spec` names and checks it can serve as its kind.
    /// Compiling runs on a blocking thread, never on the async executor.
    pub async fn load(&self, spec: &Spec) -> Result<Hook, HookError> {
        let name = spec.source.to_string();
        let load_err = |message: String| HookError::Load {
            hook: name.clone(),
            message,
        };
        // Files are read, hashed and compiled on a blocking thread: never
        // on the async executor. A built-in's key is remembered, so a
        // thousand runs loading it at once take no blocking thread at all.
        let source = spec.source.clone();
        let cache = &self.shared.cache;
        let known = match &source {
            Source::Builtin(b) => cache.builtin_key(b).zip(builtin::wasm(b)),
            _ => None,
        };
        let (key, bytes, script_text) = match known {
            Some((key, bytes)) => (key, Cow::Borrowed(bytes), None),
            None => {
                let this = self.clone();
                let hook_name = name.clone();
                tokio::task::spawn_blocking(move || this.read(&hook_name, &source))
                    .await
                    .map_err(|e| load_err(format!("cannot read it: {e}")))??
            }
        };
        // One load compiles; the others wait for it without a thread.
        let cell = cache.cell(&key);
        let compiled = match cell.get() {
            // Compiled already: most loads.
            Some(done) => done.clone(),
            None => self
                .compile_once(cell, key, bytes)
                .await
                .map_err(load_err)?,
        };
        // The pooling allocator refuses a component with more instances,
        // memories or tables than a hook may have, as it is compiled.
        let too_big = |text: &str| {
            text.contains("exceeds the configured maximum")
                || text.contains("does not fit in pooling allocator")
        };
        let super::cache::Compiled { component, pre } = compiled.map_err(|e| {
            if too_big(&e) {
                HookError::Limit {
                    hook: name.clone(),
                    what: super::text::shown(&e, super::text::MESSAGE_LIMIT),
                }
            } else {
                load_err(format!("not a valid component: {e}"))
            }
        })?;
        // Before linking, which would only say an import is missing.
        if let Some(found) = super::other_contract(&component) {
            return Err(HookError::Contract { hook: name, found });
        }
        let pre =
            pre.map_err(|e| load_err(format!("it needs more than podrun gives hooks: {e}")))?;
        if let Some(needs) = component.resources_required()
            && (needs.num_memories as usize > sandbox::MAX_MEMORIES
                || needs.num_tables as usize > sandbox::MAX_TABLES)
        {
            return Err(HookError::Limit {
                hook: name,
                what: format!(
                    "it has {} memories and {} tables; a hook may have {} and {}",
                    needs.num_memories,
                    needs.num_tables,
                    sandbox::MAX_MEMORIES,
                    sandbox::MAX_TABLES
                ),
            });
        }
        let func =
            export(&component, spec.kind.interface(), spec.kind.function()).ok_or_else(|| {
                HookError::WrongKind {
                    hook: name.clone(),
                    kind: spec.kind,
                }
            })?;
        let script = match script_text {
            Some((path, text)) => Some(Script {
                path,
                text,
                load: export(&component, "podrun:hook/script@0.1.0", "load")
                    .ok_or_else(|| load_err("not a script interpreter".into()))?,
            }),
            None => None,
        };
        let defaults = self.shared.options.defaults;
        let limits = Resolved {
            deadline: spec.limits.deadline.unwrap_or(defaults.deadline),
            memory: spec.limits.memory.unwrap_or(defaults.memory),
            output: spec.limits.output.unwrap_or(defaults.output),
        };
        let hook = Hook {
            name,
            engine: self.shared.engine.clone(),
            pool: self.shared.pool.clone(),
            ticker: self.shared.ticker.clone(),
            pre,
            kind: spec.kind,
            func,
            limits,
            settings: spec.settings.to_string(),
            script,
            live: Default::default(),
            instances: Default::default(),
        };
        // A script is compiled now, so that its errors come before the run
        // starts; the instance is kept for the run's calls.
        hook.prepare_script().await?;
        Ok(hook)
    }

    /// Compiles `bytes` into `cell` unless another load does it first.
    /// The compile runs in a task of its own, so a load cancelled meanwhile
    /// leaves it to finish for those that wait. What the compiler says of
    /// the bytes is kept; a compiler that died is not, and the next load
    /// tries again.
    async fn compile_once(
        &self,
        cell: super::cache::Slot,
        key: String,
        bytes: Cow<'static, [u8]>,
    ) -> Result<Result<super::cache::Compiled, String>, String> {
        let this = self.clone();
        tokio::spawn(async move {
            cell.get_or_try_init(|| async {
                tokio::task::spawn_blocking(move || {
                    let shared = &this.shared;
                    shared
                        .cache
                        .load_or_compile(&shared.engine, &shared.linker, &key, &bytes)
                })
                .await
                .map_err(|e| format!("the compiler failed: {e}"))
            })
            .await
            .cloned()
        })
        .await
        .map_err(|e| format!("the compiler failed: {e}"))?
    }

    /// The bytes to compile for `source` and their cache key, with a
    /// script's path and text. Blocking: file reads and hashing.
    #[allow(clippy::type_complexity)]
    fn read(
        &self,
        name: &str,
        source: &Source,
    ) -> Result<(String, Cow<'static, [u8]>, Option<(String, String)>), HookError> {
        let load_err = |message: String| HookError::Load {
            hook: name.to_string(),
            message,
        };
        let cache = &self.shared.cache;
        let engine = &self.shared.engine;
        Ok(match source {
            Source::Builtin(b) => {
                let bytes =
                    builtin::wasm(b).ok_or_else(|| load_err("no such built-in hook".into()))?;
                (cache.remember_builtin(engine, b, bytes), bytes.into(), None)
            }
            Source::File(path) => {
                let bytes = self.read_component(name, path)?;
                (cache.key(engine, &bytes), bytes.into(), None)
            }
            Source::Script(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| load_err(e.to_string()))?;
                let bytes = builtin::wasm(builtin::SCRIPT_INTERPRETER)
                    .ok_or_else(|| load_err("no script interpreter is built in".into()))?;
                let key = cache.remember_builtin(engine, builtin::SCRIPT_INTERPRETER, bytes);
                let script = Some((path.display().to_string(), text));
                (key, bytes.into(), script)
            }
        })
    }

    /// A `.wasm` file's bytes, refusing one larger than the engine compiles.
    fn read_component(&self, name: &str, path: &Path) -> Result<Vec<u8>, HookError> {
        let max = self.shared.options.max_component;
        let load_err = |message: String| HookError::Load {
            hook: name.to_string(),
            message,
        };
        let too_big = |size: u64| HookError::Limit {
            hook: name.to_string(),
            what: format!(
                "the file is {} MiB; the largest hook podrun compiles is {} MiB",
                size >> 20,
                max >> 20
            ),
        };
        let file = std::fs::File::open(path).map_err(|e| load_err(e.to_string()))?;
        let size = file.metadata().map_err(|e| load_err(e.to_string()))?.len();
        if size > max {
            return Err(too_big(size));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| load_err(e.to_string()))?;
        if bytes.len() as u64 > max {
            return Err(too_big(bytes.len() as u64));
        }
        Ok(bytes)
    }
}

/// The index of `function` in the exported interface `interface`.
fn export(
    component: &wasmtime::component::Component,
    interface: &str,
    function: &str,
) -> Option<ComponentExportIndex> {
    let iface = component.get_export_index(None, interface)?;
    component.get_export_index(Some(&iface), function)
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// How much of each pooled linear memory stays mapped between calls (and
/// a sixteenth of it of each table): a Rust hook's stack and data lie in
/// its first MiB or so.
const KEEP_RESIDENT: usize = 2 << 20;

/// wasmtime's settings: components, epochs, and (with a pool size) a
/// pooling allocator sized so that `pool` instances of the largest
/// component a hook may be always fit.
fn config(pool: Option<u32>) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // A pooled stack is zeroed between hooks (its kept top with memset, the
    // rest unmapped): one hook never sees what another left on it.
    config.async_stack_zeroing(true);
    if let Some(pool) = pool {
        let (instances, memories, tables) = (
            sandbox::MAX_INSTANCES as u32,
            sandbox::MAX_MEMORIES as u32,
            sandbox::MAX_TABLES as u32,
        );
        let mut p = PoolingAllocationConfig::default();
        p.total_component_instances(pool)
            .total_core_instances(pool.saturating_mul(instances))
            .total_memories(pool.saturating_mul(memories))
            .total_tables(pool.saturating_mul(tables))
            .total_stacks(pool)
            .max_core_instances_per_component(instances)
            .max_memories_per_component(memories)
            .max_tables_per_component(tables)
            .max_memories_per_module(memories)
            .max_tables_per_module(tables)
            .table_elements(sandbox::MAX_TABLE_ELEMENTS / 8)
            .max_memory_size(Limits::MAX_MEMORY)
            // A hook touches little memory per call: zeroing the start of
            // its memory with memset is cheaper than unmapping it and
            // faulting its pages in again on the next call. The whole kept
            // region is zeroed: PAGEMAP_SCAN, which would zero only the
            // pages written, skips a page that is swapped out or migrating
            // and would leave it to the next hook.
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT / 16)
            // The same for the top of each call's stack, which every call
            // touches.
            .async_stack_keep_resident(KEEP_RESIDENT / 16)
            .pagemap_scan(wasmtime::Enabled::No);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    }
    config
}
