//! What classify hooks receive and decide.

/// What the runtime saw of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The pod as JSON, status included.
    pub pod: String,
    /// Recent events about the pod, a JSON list of `v1` Events, oldest first,
    /// while the pod does not start as usual (pending for a second, not
    /// scheduled, or a container waiting for something other than its
    /// creation); otherwise empty.
    pub events: String,
    /// Milliseconds since the pod was created.
    pub elapsed_ms: u64,
}

/// How a run is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not finished (pending or running).
    Running,
    /// Finished well.
    Succeeded,
    /// Finished badly.
    Failed,
}

/// A classifier's decision and the evidence behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Running, succeeded or failed.
    pub outcome: Outcome,
    /// When failed: whether running the same thing again may succeed.
    pub retryable: bool,
    /// A short CamelCase reason (`OOMKilled`, `ImagePullBackOff`…).
    pub reason: String,
    /// A sentence for the user.
    pub message: String,
    /// The exit code podrun should end with, when this verdict sets one.
    pub exit_code: Option<i32>,
    /// The status fields and events that decided, as short lines.
    pub evidence: Vec<String>,
    /// The rule that matched, when the classifier has rules.
    pub rule: Option<String>,
}

impl Verdict {
    /// A verdict with the given outcome and reason, and nothing else.
    pub fn new(outcome: Outcome, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Verdict {
            outcome,
            retryable: false,
            reason: reason.into(),
            message: message.into(),
            exit_code: None,
            evidence: Vec::new(),
            rule: None,
        }
    }
}
