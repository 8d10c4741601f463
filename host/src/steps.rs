//! The steps of a sequenced pod (the `sequence` hook's
//! `podrun.dev/steps` annotation) and which one is running, read from the
//! pod's status alone, for `podrun status` and the progress line.
//!
//! Both strategies fit one reading: steps run in the annotation's order, so
//! the first step whose container has not ended is the current one. Later
//! containers may already run (the entrypoint strategy starts them all,
//! waiting), but they are waiting for their turn.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde::Serialize;

/// The annotation the `sequence` hook writes: container names, in order.
pub const ANNOTATION: &str = "podrun.dev/steps";

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "state", content = "exitCode")]
pub enum State {
    /// Its turn has not come.
    Waiting,
    /// It runs now.
    Running,
    /// It ended with exit code 0.
    Done,
    /// It ended with this exit code; the steps after it do not run.
    Failed(i32),
    /// An earlier step failed.
    Skipped,
}

/// One step of a sequenced pod: a container that runs after the one before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The container's name.
    pub name: String,
    /// Where it is.
    #[serde(flatten)]
    pub state: State,
}

/// The pod's steps with their states, or `None` for a pod that is not a
/// sequence.
pub fn steps(pod: &Pod) -> Option<Vec<Step>> {
    let names = pod.metadata.annotations.as_ref()?.get(ANNOTATION)?;
    let status = pod.status.as_ref();
    let statuses: Vec<&ContainerStatus> = status
        .into_iter()
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .collect();
    let mut earlier_failed = false;
    let mut current_seen = false;
    let steps = names
        .split(',')
        .filter(|n| !n.is_empty())
        .map(|name| {
            let state = statuses
                .iter()
                .find(|c| c.name == name)
                .and_then(|c| c.state.as_ref());
            let ended = state
                .and_then(|s| s.terminated.as_ref())
                .map(|t| t.exit_code);
            let state = match ended {
                _ if earlier_failed => State::Skipped,
                Some(0) => State::Done,
                Some(code) => {
                    earlier_failed = true;
                    State::Failed(code)
                }
                None if current_seen => State::Waiting,
                None => {
                    current_seen = true;
                    if state.is_some_and(|s| s.running.is_some()) {
                        State::Running
                    } else {
                        State::Waiting
                    }
                }
            };
            Step {
                name: name.to_string(),
                state,
            }
        })
        .collect();
    Some(steps)
}

/// The running step as `(position from 1, step)`.
pub fn running(steps: &[Step]) -> Option<(usize, &Step)> {
    steps
        .iter()
        .enumerate()
        .find(|(_, s)| s.state == State::Running)
        .map(|(i, s)| (i + 1, s))
}

/// `step 2/3 build`, for a progress line.
pub fn progress(pod: &Pod) -> Option<String> {
    let steps = steps(pod)?;
    let (n, step) = running(&steps)?;
    Some(format!("step {n}/{} {}", steps.len(), step.name))
}

/// What `podrun status` prints: the pod's phase, and its steps with the
/// running one, or its containers for a pod that is not a sequence.
pub fn describe(pod: &Pod) -> String {
    use std::fmt::Write;
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let mut out = format!("pod {ns}/{name}: {phase}");
    if let Some(reason) = status.and_then(|s| s.reason.as_deref()) {
        let _ = write!(out, " ({reason})");
    }
    out.push('\n');
    match steps(pod) {
        Some(steps) => {
            match running(&steps) {
                Some((n, step)) => {
                    let _ = writeln!(out, "step {n}/{}: {} is running", steps.len(), step.name);
                }
                None => {
                    let _ = writeln!(out, "no step is running");
                }
            }
            let width = steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
            for (i, s) in steps.iter().enumerate() {
                let _ = writeln!(out, "  {:>2}. {:<width$}  {}", i + 1, s.name, s.state);
            }
        }
        None => {
            let containers = crate::result::containers(Some(pod));
            let width = containers.iter().map(|c| c.name.len()).max().unwrap_or(0);
            for c in containers {
                let kind = if c.init { "init " } else { "" };
                let detail = match (c.exit_code, c.reason) {
                    (Some(code), _) => format!(" (exit code {code})"),
                    (None, Some(reason)) => format!(" ({reason})"),
                    (None, None) => String::new(),
                };
                let _ = writeln!(out, "  {kind}{:<width$}  {}{detail}", c.name, c.state);
            }
        }
    }
    out
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::Waiting => f.write_str("waiting"),
            State::Running => f.write_str("running"),
            State::Done => f.write_str("done"),
            State::Failed(code) => write!(f, "failed (exit code {code})"),
            State::Skipped => f.write_str("skipped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(inits: serde_json::Value, containers: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "annotations": {ANNOTATION: "one,two,three"}},
            "status": {"initContainerStatuses": inits, "containerStatuses": containers}
        }))
        .unwrap()
    }

    fn status(name: &str, state: serde_json::Value) -> serde_json::Value {
        json!({"name": name, "image": "busybox", "imageID": "", "ready": false, "restartCount": 0, "state": state})
    }

    fn states(pod: &Pod) -> Vec<State> {
        steps(pod).unwrap().into_iter().map(|s| s.state).collect()
    }

    const RUNNING: fn() -> serde_json::Value = || json!({"running": {}});
    fn ended(code: i32) -> serde_json::Value {
        json!({"terminated": {"exitCode": code}})
    }

    #[test]
    fn init_containers_strategy() {
        let p = pod(
            json!([status("one", ended(0)), status("two", RUNNING())]),
            json!([status(
                "three",
                json!({"waiting": {"reason": "PodInitializing"}})
            )]),
        );
        assert_eq!(states(&p), [State::Done, State::Running, State::Waiting]);
        assert_eq!(progress(&p).as_deref(), Some("step 2/3 two"));
    }

    #[test]
    fn entrypoint_strategy_later_steps_wait_while_running() {
        let p = pod(
            json!([]),
            json!([
                status("one", ended(0)),
                status("two", RUNNING()),
                status("three", RUNNING())
            ]),
        );
        assert_eq!(states(&p), [State::Done, State::Running, State::Waiting]);
    }

    #[test]
    fn a_failed_step_skips_the_rest() {
        let p = pod(
            json!([]),
            json!([
                status("one", ended(4)),
                status("two", ended(0)),
                status("three", RUNNING())
            ]),
        );
        assert_eq!(
            states(&p),
            [State::Failed(4), State::Skipped, State::Skipped]
        );
        assert_eq!(progress(&p), None);
    }

    #[test]
    fn describe_names_the_running_step() {
        let mut p = pod(
            json!([status("one", ended(0)), status("two", RUNNING())]),
            json!([status(
                "three",
                json!({"waiting": {"reason": "PodInitializing"}})
            )]),
        );
        p.metadata.namespace = Some("batch".into());
        assert_eq!(
            describe(&p),
            "pod batch/p: Pending\nstep 2/3: two is running\n   1. one    done\n   2. two    running\n   3. three  waiting\n"
        );
    }

    #[test]
    fn a_pod_without_the_annotation_is_no_sequence() {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}})).unwrap();
        assert_eq!(steps(&p), None);
        // Before any status, the first step is the next one.
        let fresh = pod(json!(null), json!(null));
        assert_eq!(
            states(&fresh),
            [State::Waiting, State::Waiting, State::Waiting]
        );
    }
}
