//! A loaded hook and its calls.
//!
//! Every call runs asynchronously on a fiber: the guest yields the thread
//! at each epoch tick, so runs, log followers and servers keep going while
//! a hook computes. Each call has three bounds: its deadline (the time it
//! runs, host calls included, plus what it sleeps), a wall-clock limit
//! around the whole call, and the store's caps on memory, instances and
//! tables.

use crate::context::RunContext;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::component::{
    ComponentExportIndex, ComponentNamedList, Instance, InstancePre, Lift, Lower,
};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::bindings::{classify, mutate, render, script, types};
use super::output::{Budget, MESSAGE_SLACK, TooLarge};
use super::sandbox::{self, HostState, OUTPUT_CAPACITY, Stopped};
use super::text::{MESSAGE_LIMIT, shown, shown_lines};
use super::ticker::Ticker;
use super::{Called, HookError, Kind};

/// A hook's limits, with the engine's defaults filled in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resolved {
    pub(crate) deadline: Duration,
    pub(crate) memory: usize,
    pub(crate) output: usize,
}

impl Resolved {
    /// The wall-clock bound of one call: its deadline, plus as much again
    /// and a second for time spent waiting for a busy CPU.
    fn wall(&self) -> Duration {
        self.deadline * 2 + Duration::from_secs(1)
    }
}

/// A script hook's script, and the interpreter's `load` export.
pub(crate) struct Script {
    pub(crate) path: String,
    pub(crate) text: String,
    pub(crate) load: ComponentExportIndex,
}

/// An instance with its store and its place in the pool.
pub(super) struct Live {
    store: Store<HostState>,
    instance: Instance,
    output: MemoryOutputPipe,
    _slot: OwnedSemaphorePermit,
}

/// A loaded hook, ready to be called. Every call runs in a fresh instance,
/// except a script hook's, which keeps one instance while it is loaded.
pub struct Hook {
    pub(super) name: String,
    /// The engine's, shared: the hook never reaches back into the engine.
    pub(super) engine: wasmtime::Engine,
    /// Instances at once, across every hook of the engine.
    pub(super) pool: Arc<tokio::sync::Semaphore>,
    /// The engine's epoch, kept ticking while this hook runs.
    pub(super) ticker: Arc<Ticker>,
    pub(super) pre: InstancePre<HostState>,
    pub(super) kind: Kind,
    pub(super) func: ComponentExportIndex,
    pub(super) limits: Resolved,
    pub(super) settings: String,
    pub(super) script: Option<Script>,
    pub(super) live: Mutex<Option<Live>>,
    pub(super) instances: AtomicU64,
}

impl Hook {
    /// The hook's name for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kind the hook was loaded as.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// How many instances this hook has made: one per call, but one per
    /// run for a script hook (and one more after each failure).
    pub fn instances(&self) -> u64 {
        self.instances.load(Ordering::Relaxed)
    }

    fn context(&self, app: &RunContext) -> types::Context {
        types::Context {
            application: app.into(),
            settings: self.settings.clone(),
        }
    }

    /// Renders `template`; the result is the object as JSON.
    pub async fn render(
        &self,
        app: &RunContext,
        template: &render::Template,
    ) -> Result<Called<String>, HookError> {
        self.expect(Kind::Render)?;
        let ctx = self.context(app);
        self.call::<_, (Result<String, String>,), _>((&ctx, template), |r, (out,)| match out {
            Ok(json) => Ok(Ok(r.string(json)?)),
            Err(message) => Ok(Err(HookError::Failed {
                hook: self.name.clone(),
                message: r.message(message)?,
            })),
        })
        .await
    }

    /// Asks the hook what to change in `object`.
    pub async fn mutate(
        &self,
        app: &RunContext,
        object: &types::Object,
    ) -> Result<Called<mutate::Mutation>, HookError> {
        self.expect(Kind::Mutate)?;
        let ctx = self.context(app);
        let hook = || self.name.clone();
        self.call::<_, (Result<mutate::Mutation, mutate::Refusal>,), _>(
            (&ctx, object),
            |r, (out,)| {
                Ok(match out {
                    Ok(m) => Ok(r.mutation(m)?),
                    Err(refusal) => Err(match r.refusal(refusal)? {
                        mutate::Refusal::Denied(message) => HookError::Denied {
                            hook: hook(),
                            message,
                        },
                        mutate::Refusal::Invalid(message) => HookError::Failed {
                            hook: hook(),
                            message,
                        },
                    }),
                })
            },
        )
        .await
    }

    /// Asks the hook for a verdict on `observation`.
    pub async fn classify(
        &self,
        app: &RunContext,
        observation: &classify::Observation,
    ) -> Result<Called<Option<classify::Verdict>>, HookError> {
        self.expect(Kind::Classify)?;
        let ctx = self.context(app);
        self.call::<_, (Result<Option<classify::Verdict>, String>,), _>(
            (&ctx, observation),
            |r, (out,)| {
                Ok(match out {
                    Ok(None) => Ok(None),
                    Ok(Some(v)) => Ok(Some(r.verdict(v)?)),
                    Err(message) => Err(HookError::Failed {
                        hook: self.name.clone(),
                        message: r.message(message)?,
                    }),
                })
            },
        )
        .await
    }

    fn expect(&self, kind: Kind) -> Result<(), HookError> {
        if self.kind == kind {
            Ok(())
        } else {
            Err(HookError::WrongKind {
                hook: self.name.clone(),
                kind,
            })
        }
    }

    /// One call of the hook's export with `params`, its result read by
    /// `read` under the output cap.
    async fn call<P, R, T>(
        &self,
        params: P,
        read: impl FnOnce(&mut Budget, R) -> Result<Result<T, HookError>, TooLarge>,
    ) -> Result<Called<T>, HookError>
    where
        P: ComponentNamedList + Lower + Send + Sync,
        R: ComponentNamedList + Lift + Send + Sync + 'static,
    {
        let start = Instant::now();
        let kept = self.live.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut live = match kept {
            Some(live) => live,
            None => self.instantiate().await?,
        };
        live.store.data_mut().arm(self.limits.deadline);
        let result = self.invoke::<P, R>(&mut live, &self.func, params).await;
        let elapsed = start.elapsed();
        let value = match result {
            Ok(raw) => {
                read(&mut Budget::new(self.limits.output), raw).map_err(|e| self.too_large(e))
            }
            Err(e) => Err(e),
        };
        let logs = std::mem::take(&mut live.store.data_mut().logs);
        match value {
            Ok(value) => {
                if self.script.is_some() {
                    self.keep(live);
                }
                value.map(|value| Called {
                    value,
                    logs,
                    elapsed,
                })
            }
            // A failed instance is not used again.
            Err(e) => Err(e),
        }
    }

    /// Calls `func`, bounded by the deadline (the epoch callback) and the
    /// wall-clock limit.
    async fn invoke<P, R>(
        &self,
        live: &mut Live,
        func: &ComponentExportIndex,
        params: P,
    ) -> Result<R, HookError>
    where
        P: ComponentNamedList + Lower + Send + Sync,
        R: ComponentNamedList + Lift + Send + Sync + 'static,
    {
        let typed = live
            .instance
            .get_typed_func::<P, R>(&mut live.store, func)
            .map_err(|e| HookError::Output {
                hook: self.name.clone(),
                message: format!("its {} export has the wrong type: {e:#}", self.kind),
            })?;
        let _busy = self.ticker.busy();
        let called = typed.call_async(&mut live.store, params);
        match tokio::time::timeout(self.limits.wall(), called).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(self.failure(e, live)),
            Err(_) => Err(self.deadline()),
        }
    }

    /// A new instance under the hook's limits, in a slot of the pool; for
    /// a script hook, with its script loaded.
    async fn instantiate(&self) -> Result<Live, HookError> {
        let slot = self
            .pool
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HookError::Load {
                hook: self.name.clone(),
                message: "the hook engine was shut down".into(),
            })?;
        self.instances.fetch_add(1, Ordering::Relaxed);
        let output = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let state = HostState::new(self.limits.memory, output.clone());
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // What wasmtime copies out of the guest at once, results included.
        store.set_hostcall_fuel(self.limits.output.saturating_add(MESSAGE_SLACK));
        store.epoch_deadline_callback(|mut cx| {
            let state = cx.data_mut();
            Ok(if state.tick_passed() {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::YieldCustom(1, Box::pin(state.yield_now()))
            })
        });
        store.set_epoch_deadline(1);
        store.data_mut().arm(self.limits.deadline);
        let busy = self.ticker.busy();
        let instantiated =
            tokio::time::timeout(self.limits.wall(), self.pre.instantiate_async(&mut store)).await;
        drop(busy);
        let instance = match instantiated {
            Ok(Ok(i)) => i,
            Ok(Err(e)) => {
                return Err(self.classify_failure(e, store.data().stop_reason(), &output));
            }
            Err(_) => return Err(self.deadline()),
        };
        let mut live = Live {
            store,
            instance,
            output,
            _slot: slot,
        };
        if let Some(Script { path, text, load }) = &self.script {
            let kind = match self.kind {
                Kind::Render => script::HookKind::Render,
                Kind::Mutate => script::HookKind::Mutate,
                Kind::Classify => script::HookKind::Classify,
            };
            let (loaded,) = self
                .invoke::<(&str, &str, script::HookKind), (Result<(), String>,)>(
                    &mut live,
                    load,
                    (path.as_str(), text.as_str(), kind),
                )
                .await?;
            if let Err(message) = loaded {
                return Err(HookError::Script {
                    hook: self.name.clone(),
                    message: shown(&message, MESSAGE_LIMIT),
                });
            }
        }
        Ok(live)
    }

    /// For a script hook: compiles the script now and keeps the instance.
    pub(crate) async fn prepare_script(&self) -> Result<(), HookError> {
        if self.script.is_some() {
            let live = self.instantiate().await?;
            self.keep(live);
        }
        Ok(())
    }

    /// Keeps a script hook's instance for the next call.
    fn keep(&self, live: Live) {
        let mut slot = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(live);
        }
    }

    fn deadline(&self) -> HookError {
        HookError::Deadline {
            hook: self.name.clone(),
            deadline: self.limits.deadline,
        }
    }

    fn too_large(&self, e: TooLarge) -> HookError {
        HookError::Limit {
            hook: self.name.clone(),
            what: format!("it returned more than {} KiB", e.limit >> 10),
        }
    }

    fn failure(&self, e: wasmtime::Error, live: &Live) -> HookError {
        self.classify_failure(e, live.store.data().stop_reason(), &live.output)
    }

    fn classify_failure(
        &self,
        e: wasmtime::Error,
        stopped: Option<Stopped>,
        output: &MemoryOutputPipe,
    ) -> HookError {
        let hook = self.name.clone();
        match stopped {
            Some(Stopped::Deadline) => return self.deadline(),
            Some(Stopped::Memory) => {
                return HookError::Memory {
                    hook,
                    limit: self.limits.memory,
                };
            }
            Some(Stopped::LogCalls) => {
                return HookError::Limit {
                    hook,
                    what: format!("it made more than {} log calls", sandbox::MAX_LOG_CALLS),
                };
            }
            Some(Stopped::Resources) => {
                return HookError::Limit {
                    hook,
                    what: format!(
                        "its tables have more than {} elements",
                        sandbox::MAX_TABLE_ELEMENTS
                    ),
                };
            }
            None => {}
        }
        // The error may carry the guest's own names (a backtrace).
        let text = shown(&format!("{e:#}"), MESSAGE_LIMIT);
        if text.contains("fuel allocated for hostcalls") {
            return HookError::Limit {
                hook,
                what: format!(
                    "it handed the host more than {} MiB at once",
                    self.limits.output.saturating_add(MESSAGE_SLACK) >> 20
                ),
            };
        }
        if text.contains("resource limit exceeded") {
            return HookError::Limit { hook, what: text };
        }
        if text.contains("invalid utf-8") {
            return HookError::Output {
                hook,
                message: shown(&text, MESSAGE_LIMIT),
            };
        }
        if text.contains("write beyond capacity") {
            return HookError::Limit {
                hook,
                what: format!(
                    "it wrote more than {} KiB to stdout and stderr",
                    OUTPUT_CAPACITY >> 10
                ),
            };
        }
        let output = output.contents();
        // A guest whose print failed on the full pipe panics over it.
        if output.len() + 4096 > OUTPUT_CAPACITY {
            return HookError::Limit {
                hook,
                what: format!(
                    "it wrote more than {} KiB to stdout and stderr",
                    OUTPUT_CAPACITY >> 10
                ),
            };
        }
        let output = String::from_utf8_lossy(&output).into_owned();
        let trap = match e.downcast_ref::<wasmtime::Trap>() {
            Some(trap) => trap.to_string(),
            None => text,
        };
        HookError::Trap {
            hook,
            trap: shown(&trap, MESSAGE_LIMIT),
            output: shown_lines(&output, MESSAGE_LIMIT),
        }
    }
}
