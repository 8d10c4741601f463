//! Write [podrun](https://github.com/podrun/podrun) hooks in Rust.
//!
//! A hook is a WebAssembly component that podrun calls at one step of a run:
//! **render** turns an application's template into a Pod, **mutate** changes
//! (or refuses) an object before it runs, **classify** decides how a run is
//! going from the pod's status. This crate is all a hook author needs: the
//! contract's types in plain Rust, typed Kubernetes objects
//! ([`k8s_openapi`]), one trait and one export macro per hook kind, and
//! helpers for settings and logging.
//!
//! Hook logic is ordinary Rust: test it with `cargo test` on your machine,
//! then build the component with `cargo build --target wasm32-wasip2`.
//!
//! # A complete mutate hook
//!
//! ```
//! use podrun_hook_sdk::{Context, Mutate, Mutation, Object, Refusal, export_mutate};
//! use serde::Deserialize;
//!
//! /// Settings from the `with:` map in `pod-runner.yaml`.
//! #[derive(Deserialize, Default)]
//! #[serde(default, deny_unknown_fields)]
//! struct Settings {
//!     team: Option<String>,
//! }
//!
//! struct TeamLabel;
//!
//! impl Mutate for TeamLabel {
//!     fn mutate(ctx: &Context, object: &Object) -> Result<Mutation, Refusal> {
//!         let settings: Settings = ctx.settings()?;
//!         let team = ctx
//!             .param("team")
//!             .or(settings.team.as_deref())
//!             .ok_or_else(|| Refusal::Denied("every run needs a team: pass --param team=NAME".into()))?;
//!         // A merge patch names only what changes: the object is never
//!         // parsed, and the host applies the patch.
//!         Mutation::merge(&serde_json::json!({
//!             "metadata": { "labels": { "team": team } }
//!         }))
//!     }
//! }
//!
//! export_mutate!(TeamLabel);
//!
//! // The same logic, tested on the host.
//! let ctx = Context::for_test("report").with_param("team", "data");
//! let pod = Object::pod(&serde_json::json!({"apiVersion": "v1", "kind": "Pod"}));
//! let change = TeamLabel::mutate(&ctx, &pod).unwrap();
//! assert_eq!(change, Mutation::MergePatch(r#"{"metadata":{"labels":{"team":"data"}}}"#.into()));
//! ```
//!
//! # Reading the object
//!
//! [`Object::parse`] deserializes the object's JSON into any type: a full
//! [`k8s_openapi::api::core::v1::Pod`], or a small struct of only the fields
//! the hook reads, which is much cheaper (unknown fields are skipped).
//! Return [`Mutation::merge`] with only the changed fields where you can, and
//! [`Mutation::replace`] when rewriting the object is simpler.
//!
//! # The sandbox
//!
//! A hook sees no files, network, environment variables or real clock, and
//! its random numbers are deterministic. Each call has a CPU deadline and a
//! memory cap (see the README). Use [`log`] for messages the user should see;
//! a panic fails the run and its message is shown.
#![deny(missing_docs)]

mod context;
mod export;
pub mod log;
mod object;
mod verdict;

pub use context::{Application, Context, Resources, Template};
pub use object::{Mutation, Object, Refusal};
pub use verdict::{Observation, Outcome, Verdict};

pub use k8s_openapi;
pub use serde;
pub use serde_json;

/// A render hook: turns an application's template into an object.
pub trait Render {
    /// Returns the rendered object as Kubernetes JSON, or a message saying
    /// why the template cannot be rendered.
    fn render(ctx: &Context, template: &Template) -> Result<String, String>;
}

/// A mutate hook: changes an object before it runs, or refuses it.
pub trait Mutate {
    /// Returns what to change in `object`, or why it must not run.
    fn mutate(ctx: &Context, object: &Object) -> Result<Mutation, Refusal>;
}

/// A classify hook: decides how a run is going.
pub trait Classify {
    /// Returns a verdict, `None` to leave the decision to the next
    /// classifier, or an error when the observation cannot be read.
    fn classify(ctx: &Context, observation: &Observation) -> Result<Option<Verdict>, String>;
}

/// The hook function a script must define, for [`Script::load`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// `render`.
    Render,
    /// `mutate`.
    Mutate,
    /// `classify`.
    Classify,
}

/// A script interpreter: a component that runs hooks written in a script
/// language. podrun calls [`Script::load`] once on a fresh instance, then the
/// hook function of the script's kind any number of times during one run,
/// so the interpreter keeps the compiled script between calls. Export it
/// with [`export_script!`].
pub trait Script: Render + Mutate + Classify {
    /// Compiles the script `text` (read from `path`, for messages) and checks
    /// that it defines what a `kind` hook needs. An error should name the
    /// line and column.
    fn load(path: &str, text: &str, kind: HookKind) -> Result<(), String>;
}

#[doc(hidden)]
pub mod __private {
    pub use crate::export::*;
}
