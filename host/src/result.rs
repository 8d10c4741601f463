//! The outcome of a run, as printed with `-o json` or written with
//! `--result-file`.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde::{Deserialize, Serialize};

use crate::hooks::classify;

/// How a run ended.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    /// The run's id.
    pub run_id: String,
    /// The pod's name.
    pub pod: String,
    /// Where it ran (`local`).
    pub runtime: String,
    /// `succeeded`, `failed` or `interrupted` (and, from a server, `lost`).
    pub outcome: String,
    /// Whether running it again may succeed.
    pub retryable: bool,
    /// A short CamelCase reason.
    pub reason: String,
    /// A sentence for the user.
    pub message: String,
    /// podrun's exit code.
    pub exit_code: u8,
    /// The evidence behind the verdict.
    pub evidence: Vec<String>,
    /// The classifier rule that matched, if any.
    pub rule: Option<String>,
    /// Each container's last state.
    pub containers: Vec<ContainerResult>,
    /// Timings in milliseconds.
    pub timings: Timings,
}

/// One container's last state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerResult {
    /// Its name.
    pub name: String,
    /// Whether it is an init container.
    pub init: bool,
    /// `waiting`, `running` or `terminated`.
    pub state: String,
    /// Its exit code, when terminated.
    pub exit_code: Option<i32>,
    /// The state's reason.
    pub reason: Option<String>,
    /// How often it was restarted.
    pub restarts: i32,
}

/// How long the steps took, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timings {
    /// Rendering and mutating the pod.
    pub prepare_ms: u64,
    /// From starting the pod to its end.
    pub run_ms: u64,
}

/// The containers' last states from the pod's status.
pub fn containers(pod: Option<&Pod>) -> Vec<ContainerResult> {
    let Some(status) = pod.and_then(|p| p.status.as_ref()) else {
        return Vec::new();
    };
    let one = |s: &ContainerStatus, init: bool| {
        let st = s.state.clone().unwrap_or_default();
        let (state, exit_code, reason) = if let Some(t) = st.terminated {
            ("terminated", Some(t.exit_code), t.reason)
        } else if st.running.is_some() {
            ("running", None, None)
        } else {
            ("waiting", None, st.waiting.and_then(|w| w.reason))
        };
        ContainerResult {
            name: s.name.clone(),
            init,
            state: state.into(),
            exit_code,
            reason,
            restarts: s.restart_count,
        }
    };
    let inits = status
        .init_container_statuses
        .iter()
        .flatten()
        .map(|s| one(s, true));
    inits
        .chain(
            status
                .container_statuses
                .iter()
                .flatten()
                .map(|s| one(s, false)),
        )
        .collect()
}

/// The verdict's outcome in words.
pub fn outcome(o: classify::Outcome) -> &'static str {
    match o {
        classify::Outcome::Running => "running",
        classify::Outcome::Succeeded => "succeeded",
        classify::Outcome::Failed => "failed",
    }
}
