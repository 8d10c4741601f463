//! Rules that change the default verdict, in the vocabulary of a Job's
//! podFailurePolicy: each rule matches container exit codes (`In` or
//! `NotIn`, optionally for one container), pod conditions, or waiting and
//! terminated reasons, and names an action. The first rule that matches
//! wins, and the verdict names it.
//!
//! ```yaml
//! rules:
//! - name: nothing-to-do        # exit 3 means "no work today": a success
//!   action: ignore
//!   on-exit-codes: {container: main, operator: In, values: [3]}
//! - name: retry-on-75
//!   action: fail-retryable
//!   on-exit-codes: {operator: In, values: [75]}
//! - name: disrupted
//!   action: fail-retryable
//!   on-pod-conditions: [{type: DisruptionTarget}]
//! ```
//!
//! Actions: `fail` (a final failure), `fail-retryable` (a failure worth
//! retrying), `ignore` (what matched is not a failure: an exit code counts
//! as 0, a condition or reason as absent), `count` (the default verdict,
//! with the rule named).

use podrun_hook_sdk::k8s_openapi::api::core::v1::Pod;
use podrun_hook_sdk::serde::Deserialize;
use podrun_hook_sdk::{Outcome, Verdict};

/// One rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    crate = "podrun_hook_sdk::serde",
    deny_unknown_fields,
    rename_all = "kebab-case"
)]
pub struct Rule {
    /// Its name, reported in the verdict.
    pub name: String,
    /// What to do when it matches.
    pub action: Action,
    /// Matches containers that exited with these codes.
    #[serde(default)]
    pub on_exit_codes: Option<ExitCodes>,
    /// Matches pods with these conditions.
    #[serde(default)]
    pub on_pod_conditions: Vec<Condition>,
    /// Matches these waiting or terminated reasons (of a container or the pod).
    #[serde(default)]
    pub on_reasons: Vec<String>,
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(crate = "podrun_hook_sdk::serde", rename_all = "kebab-case")]
pub enum Action {
    /// Fail, not retryable.
    Fail,
    /// Fail, retryable.
    FailRetryable,
    /// Not a failure.
    Ignore,
    /// The default verdict.
    Count,
}

/// Exit codes to match.
#[derive(Debug, Clone, Deserialize)]
#[serde(crate = "podrun_hook_sdk::serde", deny_unknown_fields)]
pub struct ExitCodes {
    /// Only this container's exit code.
    #[serde(default)]
    pub container: Option<String>,
    /// `In` or `NotIn`.
    pub operator: Operator,
    /// The codes.
    pub values: Vec<i32>,
}

/// How exit codes are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(crate = "podrun_hook_sdk::serde")]
pub enum Operator {
    /// The code is one of the values.
    In,
    /// The code is none of the values.
    NotIn,
}

/// A pod condition to match.
#[derive(Debug, Clone, Deserialize)]
#[serde(crate = "podrun_hook_sdk::serde", deny_unknown_fields)]
pub struct Condition {
    /// Its type (`DisruptionTarget`).
    #[serde(rename = "type")]
    pub type_: String,
    /// Its status (default `True`).
    #[serde(default = "truth")]
    pub status: String,
}

fn truth() -> String {
    "True".into()
}

/// What in the pod a rule matched.
enum Matched {
    /// Containers (by name) whose exit code matched.
    ExitCodes(Vec<String>),
    Condition(String),
    Reason(String),
}

fn find(rule: &Rule, pod: &Pod) -> Option<Matched> {
    let status = pod.status.as_ref()?;
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    if let Some(codes) = &rule.on_exit_codes {
        let matched: Vec<String> = containers
            .clone()
            .filter(|c| codes.container.as_ref().is_none_or(|n| *n == c.name))
            .filter_map(|c| {
                let code = c.state.as_ref()?.terminated.as_ref()?.exit_code;
                let listed = codes.values.contains(&code);
                let hit = code != 0 && (listed == (codes.operator == Operator::In));
                hit.then(|| c.name.clone())
            })
            .collect();
        if !matched.is_empty() {
            return Some(Matched::ExitCodes(matched));
        }
    }
    for want in &rule.on_pod_conditions {
        if status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == want.type_ && c.status == want.status)
        {
            return Some(Matched::Condition(want.type_.clone()));
        }
    }
    let reasons = containers.flat_map(|c| {
        let st = c.state.as_ref();
        [
            st.and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.clone()),
            st.and_then(|s| s.terminated.as_ref())
                .and_then(|t| t.reason.clone()),
        ]
    });
    let mut reasons = reasons.chain([status.reason.clone()]).flatten();
    reasons
        .find(|r| rule.on_reasons.contains(r))
        .map(Matched::Reason)
}

/// Removes what `matched` found from the pod, for `ignore`.
fn forget(pod: &mut Pod, matched: &Matched) {
    let Some(status) = pod.status.as_mut() else {
        return;
    };
    let containers = status
        .init_container_statuses
        .iter_mut()
        .flatten()
        .chain(status.container_statuses.iter_mut().flatten());
    match matched {
        Matched::ExitCodes(names) => {
            for c in containers.filter(|c| names.contains(&c.name)) {
                if let Some(t) = c.state.as_mut().and_then(|s| s.terminated.as_mut()) {
                    t.exit_code = 0;
                    t.reason = Some("Completed".into());
                }
            }
            // The pod failed only because of those codes.
            if status.phase.as_deref() == Some("Failed") && status.reason.is_none() {
                let all_ok = status.container_statuses.iter().flatten().all(|c| {
                    c.state
                        .as_ref()
                        .and_then(|s| s.terminated.as_ref())
                        .is_some_and(|t| t.exit_code == 0)
                });
                if all_ok {
                    status.phase = Some("Succeeded".into());
                }
            }
        }
        Matched::Condition(type_) => {
            if let Some(conds) = status.conditions.as_mut() {
                conds.retain(|c| c.type_ != *type_);
            }
        }
        Matched::Reason(reason) => {
            for c in containers {
                if let Some(w) = c.state.as_mut().and_then(|s| s.waiting.as_mut())
                    && w.reason.as_ref() == Some(reason)
                {
                    w.reason = None;
                }
            }
            if status.reason.as_ref() == Some(reason) {
                status.reason = None;
            }
        }
    }
}

/// The verdict for `pod` under `rules`: `classify` gives the default one.
pub fn apply(rules: &[Rule], pod: &Pod, classify: impl Fn(&Pod) -> Verdict) -> Verdict {
    let Some((rule, matched)) = rules.iter().find_map(|r| find(r, pod).map(|m| (r, m))) else {
        return classify(pod);
    };
    let what = match &matched {
        Matched::ExitCodes(names) => format!("exit code of {}", names.join(", ")),
        Matched::Condition(c) => format!("pod condition {c}"),
        Matched::Reason(r) => format!("reason {r}"),
    };
    let mut verdict = match rule.action {
        Action::Ignore => {
            let mut pod = pod.clone();
            forget(&mut pod, &matched);
            classify(&pod)
        }
        Action::Count => classify(pod),
        Action::Fail | Action::FailRetryable => {
            let mut v = classify(pod);
            if v.outcome != Outcome::Failed {
                let reason = match &matched {
                    Matched::Reason(r) | Matched::Condition(r) => r.clone(),
                    Matched::ExitCodes(_) => "Error".into(),
                };
                v = Verdict::new(
                    Outcome::Failed,
                    reason,
                    format!("rule {} matched the {what}", rule.name),
                );
                v.exit_code = Some(1);
            }
            v.retryable = rule.action == Action::FailRetryable;
            v
        }
    };
    verdict.evidence.push(format!(
        "rule {} ({:?}) matched the {what}",
        rule.name, rule.action
    ));
    verdict.rule = Some(rule.name.clone());
    verdict
}
