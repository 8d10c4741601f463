//! What podrun knows about a run: the application, the caller's values and
//! the limits that apply. Hooks receive it as the WIT `application` record
//! (converted at the hook boundary); everything else uses this type, which
//! a server can store as JSON.

use serde::{Deserialize, Serialize};

/// A run's context, as every hook of the run sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunContext {
    /// The application's name from `pod-runner.yaml` (for a bare manifest,
    /// the pod's name).
    pub name: String,
    /// The run's unique id; `.UniqueId` in templates.
    pub run_id: String,
    /// The namespace the pod will run in, when known.
    pub namespace: Option<String>,
    /// The container image from the config.
    pub image: String,
    /// The command the caller asked for, split into arguments: user input.
    pub arguments: Vec<String>,
    /// The user id from the config, as written there.
    pub uid: Option<String>,
    /// The group id from the config, as written there.
    pub gid: Option<String>,
    /// Resource requests from the config.
    pub requests: Resources,
    /// Resource limits from the config.
    pub limits: Resources,
    /// Runtime parameters: the caller's, or the application's defaults.
    pub params: Vec<Param>,
    /// The application's restart policy, when its config sets one.
    pub restart_policy: Option<String>,
    /// The run's deadline in seconds, when the config or the caller sets one.
    pub timeout_seconds: Option<u64>,
    /// How long the pod may stay Pending, in seconds, when set.
    pub pending_timeout_seconds: Option<u64>,
    /// The tenant the run is for. Hooks get no field for it (the WIT
    /// record is frozen): they read the pod's `podrun.dev/tenant` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// CPU and memory quantities, as written in the config (`100m`, `64Mi`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU.
    pub cpu: Option<String>,
    /// Memory.
    pub memory: Option<String>,
}

/// A runtime parameter the application accepts, with its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    /// As declared under `parameters:`.
    pub name: String,
    /// The caller's value, or the declared default.
    pub value: String,
}

impl RunContext {
    /// A context with only a name and a run id: for runs without an
    /// application config, and for tests.
    pub fn bare(name: &str, run_id: &str) -> Self {
        RunContext {
            name: name.to_string(),
            run_id: run_id.to_string(),
            ..RunContext::default()
        }
    }
}
