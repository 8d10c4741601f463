//! Built-in validate hook `pod-security`: the Kubernetes Pod Security
//! Standards, checked on the pod podrun is about to run, plus checks an
//! application cannot opt out of.
//!
//! Settings:
//! - `level`: `baseline` (the default) or `restricted`, as the standards
//!   define them (<https://kubernetes.io/docs/concepts/security/pod-security-standards/>);
//! - `require`: any of `deadline` (the pod has an `activeDeadlineSeconds`),
//!   `no-token` (`automountServiceAccountToken: false`) and
//!   `no-finalizers` (no `metadata.finalizers`).
//!
//! It never changes the pod: it allows it, or denies it with one line per
//! broken rule, each naming the field. As an operator's `policy.validate`
//! hook it runs after every mutate hook, so no hook can undo what it
//! checks.

mod rules;
#[cfg(test)]
mod tests;

use podrun_hook_sdk::serde::Deserialize;
use podrun_hook_sdk::serde_json::Value;
use podrun_hook_sdk::{Context, Mutate, Mutation, Object, Refusal, export_mutate};

/// The hook.
pub struct PodSecurity;

/// A Pod Security Standards level.
#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(crate = "podrun_hook_sdk::serde", rename_all = "lowercase")]
pub enum Level {
    /// Prevents known privilege escalations.
    #[default]
    Baseline,
    /// Baseline, and the hardening best practices.
    Restricted,
}

/// A check beyond the standards.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(crate = "podrun_hook_sdk::serde", rename_all = "kebab-case")]
pub enum Requirement {
    /// The pod has a deadline.
    Deadline,
    /// The pod gets no service-account token.
    NoToken,
    /// The pod has no finalizers (it can always be deleted).
    NoFinalizers,
}

#[derive(Deserialize, Default)]
#[serde(crate = "podrun_hook_sdk::serde", deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    level: Level,
    #[serde(default)]
    require: Vec<Requirement>,
}

impl Mutate for PodSecurity {
    fn mutate(ctx: &Context, object: &Object) -> Result<Mutation, Refusal> {
        let settings: Settings = ctx.settings()?;
        let Some(path) = object.pod_spec_path() else {
            return Err(Refusal::Denied(format!(
                "pod-security: a {} holds no pod to check",
                object.kind
            )));
        };
        let whole: Value = object.parse()?;
        let broken = rules::check(&whole, path, settings.level, &settings.require);
        if broken.is_empty() {
            return Ok(Mutation::Unchanged);
        }
        let level = match settings.level {
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        };
        Err(Refusal::Denied(format!(
            "pod-security ({level}): {}",
            broken.join("; ")
        )))
    }
}

export_mutate!(PodSecurity);
