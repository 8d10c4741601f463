//! The hook engine: loads WebAssembly components, checks what they export,
//! and calls them in a sandbox with a deadline, a memory cap, caps on what
//! they return and log, and no access to the host.
//!
//! Each call gets a fresh instance (pre-instantiated once per component, so
//! a call costs tens of microseconds): nothing a hook keeps in memory
//! survives into the next call, run or tenant. Script hooks are the
//! exception within a run: compiling a script costs more than a call, so a
//! script's instance is kept for the calls of one loaded hook (one run) and
//! dropped after any failure.

mod bindings;
pub mod builtin;
mod cache;
mod engine;
mod hook;
mod output;
mod sandbox;
pub mod text;
mod ticker;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use bindings::{classify, log, mutate, render, script, types};
pub use engine::{CacheOptions, Defaults, EngineOptions, Hooks};
pub use hook::Hook;

use crate::context::RunContext;
use crate::exit::Code;

impl From<&RunContext> for types::Application {
    fn from(c: &RunContext) -> Self {
        let resources = |r: &crate::context::Resources| types::Resources {
            cpu: r.cpu.clone(),
            memory: r.memory.clone(),
        };
        types::Application {
            name: c.name.clone(),
            run_id: c.run_id.clone(),
            namespace: c.namespace.clone(),
            image: c.image.clone(),
            arguments: c.arguments.clone(),
            uid: c.uid.clone(),
            gid: c.gid.clone(),
            requests: resources(&c.requests),
            limits: resources(&c.limits),
            params: c
                .params
                .iter()
                .map(|p| types::Param {
                    name: p.name.clone(),
                    value: p.value.clone(),
                })
                .collect(),
            restart_policy: c.restart_policy.clone(),
            timeout_seconds: c.timeout_seconds,
            pending_timeout_seconds: c.pending_timeout_seconds,
        }
    }
}

/// The version of the WIT contract (`wit/hook.wit`) this podrun speaks.
pub const CONTRACT: &str = "0.1.0";

/// Whether a hook built for contract `version` works with [`CONTRACT`]:
/// semver's rule, where before 1.0 the minor version is the major one. A
/// pre-release (`0.2.0-rc.1`) promises nothing: only the same one works.
pub fn compatible(version: &str) -> bool {
    if version == CONTRACT {
        return true;
    }
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.splitn(3, '.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        // A patch number, maybe with build metadata (`1+abc`), which
        // semver ignores.
        let patch = parts.next()?;
        let patch = patch.split_once('+').map_or(patch, |(p, _)| p);
        patch.parse::<u64>().ok()?;
        Some((major, minor))
    };
    match (parse(version), parse(CONTRACT)) {
        (Some((0, minor)), Some((0, ours))) => minor == ours,
        (Some((major, minor)), Some((our_major, ours))) => major == our_major && minor <= ours,
        _ => false,
    }
}

/// The first contract version a component names (in an import or an
/// export of `podrun:hook`) that [`compatible`] refuses.
fn other_contract(component: &wasmtime::component::Component) -> Option<String> {
    let ty = component.component_type();
    let engine = component.engine();
    let names: Vec<String> = ty
        .imports(engine)
        .map(|(n, _)| n.to_string())
        .chain(ty.exports(engine).map(|(n, _)| n.to_string()))
        .collect();
    names.iter().find_map(|name| {
        let rest = name.strip_prefix("podrun:hook/")?;
        let version = rest.split_once('@').map_or("", |(_, v)| v);
        (!compatible(version)).then(|| {
            if version.is_empty() {
                "(no version)".to_string()
            } else {
                text::shown(version, 64)
            }
        })
    })
}

/// The three kinds of hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Template → object.
    Render,
    /// Object → changed object, or a refusal.
    Mutate,
    /// Pod status → verdict.
    Classify,
}

impl Kind {
    /// The function of [`Kind::interface`] that podrun calls.
    pub fn function(self) -> &'static str {
        match self {
            Kind::Render => "render",
            Kind::Mutate => "mutate",
            Kind::Classify => "classify",
        }
    }

    /// The WIT interface a hook of this kind exports.
    pub fn interface(self) -> &'static str {
        match self {
            Kind::Render => "podrun:hook/render@0.1.0",
            Kind::Mutate => "podrun:hook/mutate@0.1.0",
            Kind::Classify => "podrun:hook/classify@0.1.0",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Kind::Render => "render",
            Kind::Mutate => "mutate",
            Kind::Classify => "classify",
        })
    }
}

/// A hook's own limits; where one is `None` the engine's default holds
/// (see [`Defaults`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Deadline of one call: the time it computes and sleeps.
    pub deadline: Option<Duration>,
    /// The most linear memory one call may use, all memories together.
    pub memory: Option<usize>,
    /// The most bytes one call may return.
    pub output: Option<usize>,
}

impl Limits {
    /// The largest memory cap a hook may ask for.
    pub const MAX_MEMORY: usize = 1 << 30;
    /// The largest output cap a hook may ask for.
    pub const MAX_OUTPUT: usize = 256 << 20;
}

/// A log line a hook left during a call (cut and escaped).
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

/// Where a hook's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Built into podrun.
    Builtin(&'static str),
    /// A `.wasm` file.
    File(PathBuf),
    /// A script, run by the built-in interpreter.
    Script(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Builtin(name) => f.write_str(name),
            Source::File(path) | Source::Script(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A hook as the config names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Where the component comes from.
    pub source: Source,
    /// The kind the config uses it as.
    pub kind: Kind,
    /// Its `with:` settings.
    pub settings: serde_json::Value,
    /// Its per-call limits.
    pub limits: Limits,
}

/// A hook that failed, or refused the run.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The component could not be read or compiled.
    #[error("hook {hook}: cannot load it: {message}")]
    Load {
        /// The hook.
        hook: String,
        /// What went wrong.
        message: String,
    },
    /// The script does not compile, or lacks the function its kind needs.
    #[error("{message}")]
    Script {
        /// The script.
        hook: String,
        /// What is wrong, starting with `path:line:column:` where known.
        message: String,
    },
    /// The component was built for a version of the contract this podrun
    /// does not speak.
    #[error(
        "hook {hook} is built for podrun:hook@{found}, and this podrun speaks podrun:hook@{CONTRACT}: \
         rebuild it with a podrun-hook-sdk for {CONTRACT}"
    )]
    Contract {
        /// The hook.
        hook: String,
        /// The version it names.
        found: String,
    },
    /// The component does not export the interface its kind needs.
    #[error("hook {hook} cannot serve as a {kind} hook: it does not export {}", kind.interface())]
    WrongKind {
        /// The hook.
        hook: String,
        /// The kind the config uses it as.
        kind: Kind,
    },
    /// A call ran past its CPU deadline.
    #[error("hook {hook} ran past its deadline of {} ms and was stopped", deadline.as_millis())]
    Deadline {
        /// The hook.
        hook: String,
        /// The deadline.
        deadline: Duration,
    },
    /// A call went past one of the sandbox's caps: what it returned, its
    /// log calls or output, its instances, memories or tables, or the size
    /// of its `.wasm` file.
    #[error("hook {hook} went past a limit of the sandbox and was stopped: {what}")]
    Limit {
        /// The hook.
        hook: String,
        /// Which limit, and by how much.
        what: String,
    },
    /// A call tried to use more memory than its cap.
    #[error("hook {hook} tried to use more than its {} MiB of memory and was stopped", limit >> 20)]
    Memory {
        /// The hook.
        hook: String,
        /// The cap in bytes.
        limit: usize,
    },
    /// The component trapped (a panic, an `unreachable`, a bad access).
    #[error("hook {hook} crashed: {trap}{}", output_suffix(output))]
    Trap {
        /// The hook.
        hook: String,
        /// The trap.
        trap: String,
        /// What the hook wrote to stdout and stderr (a panic message).
        output: String,
    },
    /// The hook returned something that is not what the contract says.
    #[error("hook {hook} returned malformed output: {message}")]
    Output {
        /// The hook.
        hook: String,
        /// What is wrong with it.
        message: String,
    },
    /// A policy hook refused the run.
    #[error("hook {hook} denied the run: {message}")]
    Denied {
        /// The hook.
        hook: String,
        /// Its reason.
        message: String,
    },
    /// The hook returned an error.
    #[error("hook {hook} failed: {message}")]
    Failed {
        /// The hook.
        hook: String,
        /// Its message.
        message: String,
    },
}

fn output_suffix(output: &str) -> String {
    let output = output.trim();
    if output.is_empty() {
        String::new()
    } else {
        format!("\n  hook output:\n    {}", output.replace('\n', "\n    "))
    }
}

impl HookError {
    /// The exit code this failure ends podrun with.
    pub fn exit_code(&self) -> Code {
        match self {
            HookError::Denied { .. } => Code::Denied,
            HookError::Load { .. }
            | HookError::Script { .. }
            | HookError::WrongKind { .. }
            | HookError::Contract { .. } => Code::Usage,
            _ => Code::HookFailed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{CONTRACT, compatible};

    #[test]
    fn the_sdk_carries_the_contract_as_it_is_and_podrun_speaks_its_version() {
        let contract = include_str!("../../../wit/hook.wit");
        assert!(
            include_str!("../../../guest-sdk/wit/hook.wit") == contract,
            "guest-sdk/wit/hook.wit differs from wit/hook.wit: copy it over"
        );
        assert!(contract.contains(&format!("package podrun:hook@{CONTRACT};")));
    }

    #[test]
    fn contract_versions_follow_semver_with_minor_as_major_before_one() {
        for version in ["0.1.0", "0.1.7", "0.1.2+build.5"] {
            assert!(compatible(version), "{version}");
        }
        for version in [
            "0.2.0",
            "0.0.1",
            "1.0.0",
            "",
            "0.1",
            "x.y.z",
            "0.1.0.0x",
            "0.1.1-rc.1",
            "0.2.0-rc.1",
        ] {
            assert!(!compatible(version), "{version}");
        }
    }
}
