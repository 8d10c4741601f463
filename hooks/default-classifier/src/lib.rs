//! Built-in classify hook `default-classifier`: recognises the usual ways a
//! pod ends and says what each means for the run, with the evidence.
//!
//! | what it sees | verdict | exit code |
//! |---|---|---|
//! | phase Succeeded, or every main container exited 0 | succeeded | 0 |
//! | a container exited non-zero | failed | the container's code (137 when OOMKilled) |
//! | phase Failed, reason DeadlineExceeded | failed | 124 |
//! | phase Failed, reason Evicted, or a DisruptionTarget condition | failed, retryable | 123 |
//! | phase Failed before any container ran, refused by the node (OutOfcpu, OutOfmemory, NodeAffinity…) | failed, retryable | 123 |
//! | phase Failed before any container ran, any other reason | failed | 126 |
//! | an image error while waiting (ErrImagePull, ImagePullBackOff…), past `image-grace-seconds` | failed | 126 |
//! | a container config error (CreateContainerConfigError…), past `image-grace-seconds` | failed | 126 |
//! | still Pending past the application's pending timeout | failed | 124 |
//!
//! Settings: `image-grace-seconds` (default 5; 0 fails image errors at once),
//! `sidecars` (container names that do not keep a run alive; native
//! sidecars, init containers with `restartPolicy: Always`, never do and
//! their exit codes never fail a run), and `rules`
//! in the spirit of a Job's podFailurePolicy (see [`rules`]).

pub mod rules;

use podrun_hook_sdk::k8s_openapi::api::core::v1::{
    ContainerStateTerminated, ContainerStatus, Pod, PodStatus,
};
use podrun_hook_sdk::serde::Deserialize;
use podrun_hook_sdk::{Classify, Context, Observation, Outcome, Verdict, export_classify};

/// Exit code: the run timed out.
pub const TIMED_OUT: i32 = 124;
/// Exit code: the pod could not start.
pub const COULD_NOT_START: i32 = 126;
/// Exit code: the infrastructure failed the run.
pub const INFRASTRUCTURE: i32 = 123;

const IMAGE_ERRORS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
    "ImageInspectError",
    "SignatureValidationFailed",
];
/// Reasons a node's kubelet gives when it refuses a pod it was given
/// (beside `OutOf<resource>`): the cluster's doing, worth a retry.
const NODE_REFUSALS: &[&str] = &[
    "NodeAffinity",
    "NodeSelectorMismatch",
    "UnexpectedAdmissionError",
    "Shutdown",
    "NodeShutdown",
    "Terminated",
];
const CONFIG_ERRORS: &[&str] = &[
    "CreateContainerConfigError",
    "CreateContainerError",
    "PreCreateHookError",
    "PreStartHookError",
];

/// The hook.
pub struct DefaultClassifier;

#[derive(Deserialize)]
#[serde(
    crate = "podrun_hook_sdk::serde",
    default,
    deny_unknown_fields,
    rename_all = "kebab-case"
)]
struct Settings {
    image_grace_seconds: u64,
    sidecars: Vec<String>,
    rules: Vec<rules::Rule>,
}

/// How long image and container-config errors are given to clear up by
/// default: a registry hiccup passes, a missing image still fails fast.
pub const IMAGE_GRACE_SECONDS: u64 = 5;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            image_grace_seconds: IMAGE_GRACE_SECONDS,
            sidecars: Vec::new(),
            rules: Vec::new(),
        }
    }
}

impl Classify for DefaultClassifier {
    fn classify(ctx: &Context, obs: &Observation) -> Result<Option<Verdict>, String> {
        let settings: Settings = ctx.settings()?;
        let pod: Pod = podrun_hook_sdk::serde_json::from_str(&obs.pod)
            .map_err(|e| format!("cannot read the pod: {e}"))?;
        Ok(Some(rules::apply(&settings.rules, &pod, |pod| {
            classify(ctx, &settings, pod, obs.elapsed_ms)
        })))
    }
}

export_classify!(DefaultClassifier);

fn verdict(
    outcome: Outcome,
    reason: &str,
    message: String,
    exit_code: Option<i32>,
    evidence: Vec<String>,
) -> Verdict {
    let mut v = Verdict::new(outcome, reason, message);
    v.exit_code = exit_code;
    v.evidence = evidence;
    v
}

fn classify(ctx: &Context, settings: &Settings, pod: &Pod, elapsed_ms: u64) -> Verdict {
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.as_deref().unwrap_or("Pending");
    let mut evidence = vec![format!("status.phase={phase}")];
    if let Some(reason) = &status.reason {
        evidence.push(format!("status.reason={reason}"));
    }
    let message = status.message.clone().unwrap_or_default();

    // Failures of the pod as a whole.
    if status.reason.as_deref() == Some("DeadlineExceeded") {
        let m = if message.is_empty() {
            "the pod ran past its deadline (activeDeadlineSeconds)".into()
        } else {
            message
        };
        return verdict(
            Outcome::Failed,
            "DeadlineExceeded",
            m,
            Some(TIMED_OUT),
            evidence,
        );
    }
    let disrupted = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionTarget" && c.status == "True");
    if status.reason.as_deref() == Some("Evicted") || (phase == "Failed" && disrupted.is_some()) {
        if let Some(c) = disrupted {
            evidence.push(format!(
                "condition DisruptionTarget=True reason={}",
                c.reason.as_deref().unwrap_or("")
            ));
        }
        let reason = status
            .reason
            .clone()
            .or_else(|| disrupted.and_then(|c| c.reason.clone()))
            .unwrap_or_else(|| "DisruptionTarget".into());
        let mut v = verdict(
            Outcome::Failed,
            &reason,
            format!("the pod was stopped by the cluster: {message}"),
            Some(INFRASTRUCTURE),
            evidence,
        );
        v.retryable = true;
        return v;
    }

    let inits = status
        .init_container_statuses
        .as_deref()
        .unwrap_or_default();
    let mains = status.container_statuses.as_deref().unwrap_or_default();
    // Native sidecars are stopped when the main containers end, and
    // restarted when they fail: how they exit says nothing of the run.
    let native_sidecars: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.as_str())
        .collect();
    let all = || {
        inits
            .iter()
            .filter(|s| !native_sidecars.contains(&s.name.as_str()))
            .map(|s| ("initContainerStatuses", s))
            .chain(mains.iter().map(|s| ("containerStatuses", s)))
    };

    // A container that ended badly decides the run.
    let failed_now =
        |(_, s): &(&str, &ContainerStatus)| terminated(s).is_some_and(|t| t.exit_code != 0);
    let failed = all()
        .filter(failed_now)
        .find(|_| !restarts(pod) || phase == "Failed");
    if let Some((field, s, t)) = failed.and_then(|(f, s)| Some((f, s, terminated(s)?))) {
        let reason = t.reason.clone().unwrap_or_else(|| "Error".into());
        evidence.push(format!(
            "{field}[{}].state.terminated: exitCode={} reason={reason}",
            s.name, t.exit_code
        ));
        let what = if reason == "OOMKilled" {
            "was killed for exceeding its memory limit"
        } else {
            "failed"
        };
        let m = format!("container {} {what} (exit code {})", s.name, t.exit_code);
        return verdict(Outcome::Failed, &reason, m, Some(t.exit_code), evidence);
    }
    if phase == "Succeeded" {
        return verdict(
            Outcome::Succeeded,
            "Completed",
            "the pod completed".into(),
            Some(0),
            evidence,
        );
    }
    if phase == "Failed" {
        let ran = all().any(|(_, s)| {
            s.state
                .as_ref()
                .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
        });
        if !ran {
            // Refused before any container ran: by the node (a retry may
            // land elsewhere), or for a reason of the pod's own.
            let reason = status.reason.as_deref().unwrap_or("Failed");
            let refused = reason.starts_with("OutOf") || NODE_REFUSALS.contains(&reason);
            let why = if message.is_empty() {
                reason.to_string()
            } else {
                message
            };
            let (who, code) = if refused {
                ("the node refused it", INFRASTRUCTURE)
            } else {
                ("it failed", COULD_NOT_START)
            };
            evidence.push("no container ran".into());
            let mut v = verdict(
                Outcome::Failed,
                reason,
                format!("the pod never started, {who}: {why}"),
                Some(code),
                evidence,
            );
            v.retryable = refused;
            return v;
        }
        let m = if message.is_empty() {
            "the pod failed".into()
        } else {
            message
        };
        return verdict(
            Outcome::Failed,
            status.reason.as_deref().unwrap_or("Failed"),
            m,
            Some(1),
            evidence,
        );
    }

    // Containers that cannot start.
    let grace_over = elapsed_ms >= settings.image_grace_seconds.saturating_mul(1000);
    for (field, s) in all() {
        let Some(w) = s.state.as_ref().and_then(|st| st.waiting.as_ref()) else {
            continue;
        };
        let reason = w.reason.as_deref().unwrap_or("");
        let image = IMAGE_ERRORS.contains(&reason);
        if (image || CONFIG_ERRORS.contains(&reason)) && grace_over {
            evidence.push(format!(
                "{field}[{}].state.waiting: reason={reason}",
                s.name
            ));
            let what = if image {
                format!("cannot pull image {}", s.image)
            } else {
                "cannot be created".to_string()
            };
            let detail = w
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            return verdict(
                Outcome::Failed,
                reason,
                format!("container {} {what}{detail}", s.name),
                Some(COULD_NOT_START),
                evidence,
            );
        }
    }

    // Every main container has ended well; sidecars do not keep a run alive.
    let main_names: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| c.name.as_str())
        .filter(|n| !settings.sidecars.iter().any(|s| s == n))
        .collect();
    let ended_well = |name: &str| {
        mains
            .iter()
            .any(|s| s.name == name && exit_code(s) == Some(0))
    };
    if phase == "Running" && !main_names.is_empty() && main_names.iter().all(|n| ended_well(n)) {
        evidence.push(format!(
            "main containers {} exited 0",
            main_names.join(", ")
        ));
        return verdict(
            Outcome::Succeeded,
            "Completed",
            "the main containers completed".into(),
            Some(0),
            evidence,
        );
    }

    // Too long in Pending.
    if let Some(limit) = ctx.application.pending_timeout_seconds
        && phase == "Pending"
        && elapsed_ms >= limit.saturating_mul(1000)
    {
        let why = pending_reason(&status);
        evidence.push(format!(
            "pending for {} s (pending timeout {limit} s)",
            elapsed_ms / 1000
        ));
        return verdict(
            Outcome::Failed,
            "PendingTimeout",
            format!("the pod was still pending after {limit} s{why}"),
            Some(TIMED_OUT),
            evidence,
        );
    }
    verdict(Outcome::Running, phase, String::new(), None, evidence)
}

fn terminated(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.state.as_ref()?.terminated.as_ref()
}

fn exit_code(s: &ContainerStatus) -> Option<i32> {
    terminated(s).map(|t| t.exit_code)
}

/// Whether the kubelet starts failed containers again.
fn restarts(pod: &Pod) -> bool {
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    policy != "Never"
}

fn pending_reason(status: &PodStatus) -> String {
    let scheduled = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False");
    match scheduled {
        Some(c) => format!(
            ": {} {}",
            c.reason.as_deref().unwrap_or("Unschedulable"),
            c.message.as_deref().unwrap_or("")
        ),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests;
