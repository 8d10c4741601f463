//! The wasmtime engine, loading hooks, and calling them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Instance, InstancePre, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::bindings::{ScriptHook, classify, log, mutate, render, script, types};
use super::cache::Cache;
use super::sandbox::{HostState, OUTPUT_CAPACITY};
use super::{HookError, Kind, Limits, Source, Spec, builtin};

/// How often the epoch advances: the granularity of call deadlines.
const TICK: Duration = Duration::from_millis(1);

/// The process's wasmtime engine, with its epoch ticking.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let engine = Engine::new(&config(true))
            .or_else(|e| {
                // Pooling reserves address space up front; where that is
                // refused (ulimit -v), allocate on demand instead.
                tracing::debug!("pooling allocator unavailable ({e}); allocating on demand");
                Engine::new(&config(false))
            })
            .expect("wasmtime accepts its default configuration");
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("podrun-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })
            .expect("a thread can be started");
        engine
    })
}

fn config(pooling: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(64)
            .total_core_instances(256)
            .total_memories(128)
            .total_tables(128)
            .max_memory_size(Limits::MAX_MEMORY)
            // Hooks are called synchronously: no fiber stacks (each one
            // costs a guard page to set up at start).
            .total_stacks(0);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// A log line a hook left during a call.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// How important it is.
    pub level: log::Level,
    /// The message.
    pub message: String,
}

/// The result of a successful call, with what it cost.
#[derive(Debug)]
pub struct Called<T> {
    /// What the hook returned.
    pub value: T,
    /// What it logged.
    pub logs: Vec<LogLine>,
    /// Wall time of the call, instantiation included.
    pub elapsed: Duration,
}

/// Loads hooks, with a cache of compiled components.
pub struct Hooks {
    linker: Linker<HostState>,
    cache: Cache,
}

impl Hooks {
    /// A hook loader caching compiled components in `cache_dir` (or only in
    /// memory when `None`).
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, HookError> {
        let engine = engine();
        let mut linker = Linker::new(engine);
        let link = |e: wasmtime::Error| HookError::Load {
            hook: "(engine)".into(),
            message: e.to_string(),
        };
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(link)?;
        ScriptHook::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(link)?;
        Ok(Hooks {
            linker,
            cache: Cache::new(cache_dir),
        })
    }

    /// Loads the hook `spec` names and checks it can serve as its kind.
    pub fn load(&self, spec: &Spec) -> Result<Hook, HookError> {
        let name = spec.source.to_string();
        let load_err = |message: String| HookError::Load {
            hook: name.clone(),
            message,
        };
        let file_bytes;
        let mut script_text = None;
        let bytes: &[u8] = match &spec.source {
            Source::Builtin(b) => {
                builtin::wasm(b).ok_or_else(|| load_err("no such built-in hook".into()))?
            }
            Source::File(path) => {
                file_bytes = std::fs::read(path).map_err(|e| load_err(e.to_string()))?;
                &file_bytes
            }
            Source::Script(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| load_err(e.to_string()))?;
                script_text = Some((path.display().to_string(), text));
                builtin::wasm(builtin::SCRIPT_INTERPRETER)
                    .ok_or_else(|| load_err("no script interpreter is built in".into()))?
            }
        };
        let component = self
            .cache
            .component(engine(), bytes)
            .map_err(|e| load_err(format!("not a valid component: {e:#}")))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| load_err(format!("it needs more than podrun gives hooks: {e:#}")))?;
        let wrong_kind = |_| HookError::WrongKind {
            hook: name.clone(),
            kind: spec.kind,
        };
        let exports = match spec.kind {
            Kind::Render => Exports::Render(render::GuestIndices::new(&pre).map_err(wrong_kind)?),
            Kind::Mutate => Exports::Mutate(mutate::GuestIndices::new(&pre).map_err(wrong_kind)?),
            Kind::Classify => {
                Exports::Classify(classify::GuestIndices::new(&pre).map_err(wrong_kind)?)
            }
        };
        let script = match script_text {
            Some((path, text)) => Some(Script {
                path,
                text,
                indices: script::GuestIndices::new(&pre)
                    .map_err(|e| load_err(format!("not a script interpreter: {e:#}")))?,
            }),
            None => None,
        };
        let hook = Hook {
            name,
            pre,
            exports,
            limits: spec.limits,
            settings: spec.settings.to_string(),
            script,
            live: Mutex::new(None),
            instances: AtomicU64::new(0),
        };
        // A script is compiled now, so that its errors come before the run
        // starts; the instance is kept for the run's calls.
        if hook.script.is_some() {
            let live = hook.instantiate()?;
            hook.keep(live);
        }
        Ok(hook)
    }
}

/// A script hook's script, and the interpreter's `script` export.
struct Script {
    path: String,
    text: String,
    indices: script::GuestIndices,
}

/// An instance with its store, between the calls of a script hook.
struct Live {
    store: Store<HostState>,
    instance: Instance,
    output: MemoryOutputPipe,
}

enum Exports {
    Render(render::GuestIndices),
    Mutate(mutate::GuestIndices),
    Classify(classify::GuestIndices),
}

/// A loaded hook, ready to be called. Every call runs in a fresh instance.
pub struct Hook {
    name: String,
    pre: InstancePre<HostState>,
    exports: Exports,
    limits: Limits,
    settings: String,
    script: Option<Script>,
    live: Mutex<Option<Live>>,
    instances: AtomicU64,
}

impl Hook {
    /// The hook's name for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many instances this hook has made: one per call, but one per
    /// run for a script hook (and one more after each failure).
    pub fn instances(&self) -> u64 {
        self.instances.load(Ordering::Relaxed)
    }

    fn context(&self, app: &types::Application) -> types::Context {
        types::Context {
            application: app.clone(),
            settings: self.settings.clone(),
        }
    }

    /// Renders `template`; the result is the object as JSON.
    pub fn render(
        &self,
        app: &types::Application,
        template: &render::Template,
    ) -> Result<Called<String>, HookError> {
        let Exports::Render(indices) = &self.exports else {
            return Err(self.wrong_kind(Kind::Render));
        };
        let ctx = self.context(app);
        let called = self.call(|store, instance| {
            indices
                .load(&mut *store, instance)?
                .call_render(store, &ctx, template)
        })?;
        match called.value {
            Ok(json) => Ok(Called {
                value: json,
                logs: called.logs,
                elapsed: called.elapsed,
            }),
            Err(message) => Err(HookError::Failed {
                hook: self.name.clone(),
                message,
            }),
        }
    }

    /// Asks the hook what to change in `object`.
    pub fn mutate(
        &self,
        app: &types::Application,
        object: &types::Object,
    ) -> Result<Called<mutate::Mutation>, HookError> {
        let Exports::Mutate(indices) = &self.exports else {
            return Err(self.wrong_kind(Kind::Mutate));
        };
        let ctx = self.context(app);
        let called = self.call(|store, instance| {
            indices
                .load(&mut *store, instance)?
                .call_mutate(store, &ctx, object)
        })?;
        let hook = self.name.clone();
        match called.value {
            Ok(m) => Ok(Called {
                value: m,
                logs: called.logs,
                elapsed: called.elapsed,
            }),
            Err(mutate::Refusal::Denied(message)) => Err(HookError::Denied { hook, message }),
            Err(mutate::Refusal::Invalid(message)) => Err(HookError::Failed { hook, message }),
        }
    }

    /// Asks the hook for a verdict on `observation`.
    pub fn classify(
        &self,
        app: &types::Application,
        observation: &classify::Observation,
    ) -> Result<Called<Option<classify::Verdict>>, HookError> {
        let Exports::Classify(indices) = &self.exports else {
            return Err(self.wrong_kind(Kind::Classify));
        };
        let ctx = self.context(app);
        let called = self.call(|store, instance| {
            indices
                .load(&mut *store, instance)?
                .call_classify(store, &ctx, observation)
        })?;
        match called.value {
            Ok(v) => Ok(Called {
                value: v,
                logs: called.logs,
                elapsed: called.elapsed,
            }),
            Err(message) => Err(HookError::Failed {
                hook: self.name.clone(),
                message,
            }),
        }
    }

    fn wrong_kind(&self, kind: Kind) -> HookError {
        HookError::WrongKind {
            hook: self.name.clone(),
            kind,
        }
    }

    /// A new instance under the hook's limits; for a script hook, with its
    /// script loaded.
    fn instantiate(&self) -> Result<Live, HookError> {
        self.instances.fetch_add(1, Ordering::Relaxed);
        let output = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let mut store = Store::new(engine(), HostState::new(self.limits.memory, output.clone()));
        store.limiter(|s| &mut s.memory);
        self.arm(&mut store);
        let instance = match self.pre.instantiate(&mut store) {
            Ok(i) => i,
            Err(e) => return Err(self.failure(e, store.data().memory.exceeded, &output)),
        };
        let mut live = Live {
            store,
            instance,
            output,
        };
        if let Some(Script {
            path,
            text,
            indices,
        }) = &self.script
        {
            let kind = match self.exports {
                Exports::Render(_) => script::HookKind::Render,
                Exports::Mutate(_) => script::HookKind::Mutate,
                Exports::Classify(_) => script::HookKind::Classify,
            };
            let loaded = indices
                .load(&mut live.store, &live.instance)
                .and_then(|g| g.call_load(&mut live.store, path, text, kind));
            match loaded {
                Ok(Ok(())) => {}
                Ok(Err(message)) => {
                    return Err(HookError::Script {
                        hook: self.name.clone(),
                        message,
                    });
                }
                Err(e) => {
                    let exceeded = live.store.data().memory.exceeded;
                    return Err(self.failure(e, exceeded, &live.output));
                }
            }
        }
        Ok(live)
    }

    /// Gives the store a fresh CPU deadline for one call.
    fn arm(&self, store: &mut Store<HostState>) {
        let ticks = self.limits.deadline.as_millis().div_ceil(TICK.as_millis()) as u64;
        store.set_epoch_deadline(ticks.max(1) + 1);
    }

    /// Keeps a script hook's instance for the next call.
    fn keep(&self, live: Live) {
        let mut slot = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(live);
        }
    }

    /// One call under the hook's limits: in a fresh instance, or for a
    /// script hook in the run's instance (a new one after a failure).
    fn call<R>(
        &self,
        f: impl FnOnce(&mut Store<HostState>, &Instance) -> wasmtime::Result<R>,
    ) -> Result<Called<R>, HookError> {
        let start = Instant::now();
        let kept = self.live.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut live = match kept {
            Some(mut live) => {
                self.arm(&mut live.store);
                live
            }
            None => self.instantiate()?,
        };
        let result = f(&mut live.store, &live.instance);
        let elapsed = start.elapsed();
        let logs = std::mem::take(&mut live.store.data_mut().logs);
        match result {
            Ok(value) => {
                if self.script.is_some() {
                    self.keep(live);
                }
                Ok(Called {
                    value,
                    logs,
                    elapsed,
                })
            }
            Err(e) => {
                let exceeded = live.store.data().memory.exceeded;
                Err(self.failure(e, exceeded, &live.output))
            }
        }
    }

    fn failure(
        &self,
        e: wasmtime::Error,
        memory_exceeded: bool,
        output: &MemoryOutputPipe,
    ) -> HookError {
        let hook = self.name.clone();
        if let Some(Trap::Interrupt) = e.downcast_ref::<Trap>() {
            return HookError::Deadline {
                hook,
                deadline: self.limits.deadline,
            };
        }
        if memory_exceeded {
            return HookError::Memory {
                hook,
                limit: self.limits.memory,
            };
        }
        let output = String::from_utf8_lossy(&output.contents()).into_owned();
        let trap = match e.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => format!("{e:#}"),
        };
        HookError::Trap { hook, trap, output }
    }
}
