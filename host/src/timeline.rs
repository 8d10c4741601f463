//! A run's timeline: every observation its classifiers were given (the
//! pod, its recent events, the time since it was created) and the verdict
//! with the hook that gave it. `podrun run --record` writes one; `podrun
//! hook replay` feeds one to a classifier chain exactly as the run did, so
//! that a classifier is tested on recorded history, not on one status.
//!
//! The format is JSON, versioned by its `version` field ([`VERSION`]): a
//! reader refuses a version it does not know. Environment values and the
//! command's arguments are redacted as they are recorded.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::RunContext;
use crate::hooks::{Hook, HookError, classify};

/// The format's version.
pub const VERSION: u32 = 1;

/// What replaces a redacted value.
pub const REDACTED: &str = "(redacted)";

/// A recorded timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timeline {
    /// [`VERSION`].
    pub version: u32,
    /// The run's context as its classifiers saw it, arguments and
    /// parameter values redacted.
    pub context: RunContext,
    /// What the classifiers were given, in order.
    pub observations: Vec<Observation>,
    /// The verdict that ended the run, if a classifier gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Decision>,
}

/// One call of the classifier chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Observation {
    /// Milliseconds since the pod was created.
    pub elapsed_ms: u64,
    /// The pod, status included.
    pub pod: Value,
    /// Its recent events (a list of `v1` Events), as the classifiers got
    /// them.
    pub events: Value,
}

/// A verdict, where it was given and by which hook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Decision {
    /// The observation it was given on, from 0.
    pub observation: usize,
    /// The hook that gave it.
    pub hook: String,
    /// `running`, `succeeded` or `failed`.
    pub outcome: String,
    /// Its reason.
    pub reason: String,
    /// Its message.
    pub message: String,
    /// The exit code it sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Whether running again may succeed.
    pub retryable: bool,
    /// The evidence.
    #[serde(default)]
    pub evidence: Vec<String>,
    /// The rule that matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl Decision {
    fn of(observation: usize, hook: &str, v: &classify::Verdict) -> Decision {
        Decision {
            observation,
            hook: hook.to_string(),
            outcome: match v.outcome {
                classify::Outcome::Running => "running",
                classify::Outcome::Succeeded => "succeeded",
                classify::Outcome::Failed => "failed",
            }
            .into(),
            reason: v.reason.clone(),
            message: v.message.clone(),
            exit_code: v.exit_code,
            retryable: v.retryable,
            evidence: v.evidence.clone(),
            rule: v.rule.clone(),
        }
    }

    /// Whether it ends the run.
    pub fn is_final(&self) -> bool {
        self.outcome != "running"
    }
}

/// Why a timeline cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    /// Not a timeline.
    #[error("not a podrun timeline: {0}")]
    Format(#[from] serde_json::Error),
    /// A version this podrun does not read.
    #[error("a timeline of version {found}; this podrun reads version {VERSION}")]
    Version {
        /// The file's.
        found: u32,
    },
}

impl Timeline {
    /// An empty timeline for a run of `context`.
    pub fn new(context: &RunContext) -> Timeline {
        let mut context = context.clone();
        context.arguments = context.arguments.iter().map(|_| REDACTED.into()).collect();
        for p in &mut context.params {
            p.value = REDACTED.into();
        }
        Timeline {
            version: VERSION,
            context,
            observations: Vec::new(),
            verdict: None,
        }
    }

    /// Reads a timeline from JSON text.
    pub fn parse(text: &str) -> Result<Timeline, TimelineError> {
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let Versioned { version } = serde_json::from_str(text)?;
        if version != VERSION {
            return Err(TimelineError::Version { found: version });
        }
        Ok(serde_json::from_str(text)?)
    }

    /// Adds what the classifiers were given and what they decided.
    pub fn record(
        &mut self,
        pod: &Pod,
        events: &str,
        elapsed: Duration,
        decided: Option<(&str, &classify::Verdict)>,
    ) {
        let mut pod = serde_json::to_value(pod).unwrap_or_default();
        redact(&mut pod);
        self.observations.push(Observation {
            elapsed_ms: elapsed.as_millis() as u64,
            pod,
            events: serde_json::from_str(events).unwrap_or(Value::Array(Vec::new())),
        });
        if let Some((hook, v)) = decided {
            let decision = Decision::of(self.observations.len() - 1, hook, v);
            // The first verdict that ends the run is the run's.
            if !self.verdict.as_ref().is_some_and(Decision::is_final) {
                self.verdict = Some(decision);
            }
        }
    }
}

/// Takes out what a timeline must not keep: environment values (which
/// may hold secrets) and the server's bookkeeping.
fn redact(pod: &mut Value) {
    if let Some(metadata) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
        if let Some(annotations) = metadata
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let Some(containers) = pod
            .pointer_mut(&format!("/spec/{list}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in containers {
            for field in ["command", "args"] {
                if let Some(words) = c.get_mut(field).and_then(Value::as_array_mut) {
                    for w in words {
                        *w = Value::String(REDACTED.into());
                    }
                }
            }
            let env = c.get_mut("env").and_then(Value::as_array_mut);
            for var in env.into_iter().flatten() {
                if let Some(value) = var.get_mut("value") {
                    *value = Value::String(REDACTED.into());
                }
            }
        }
    }
}

/// What a replay found.
#[derive(Debug)]
pub struct Replayed {
    /// The verdict that ends the run, or the last one given (a run that
    /// ended undecided), with where it was given.
    pub verdict: Option<Decision>,
    /// Observations fed before it ended.
    pub fed: usize,
}

/// Feeds `timeline`'s observations to `classifiers` in order, as a run
/// does, until one gives a verdict that ends the run.
pub async fn replay(classifiers: &[Hook], timeline: &Timeline) -> Result<Replayed, HookError> {
    let mut last = None;
    for (i, o) in timeline.observations.iter().enumerate() {
        // A pod that does not read as a Pod cannot have been recorded.
        let pod: Pod = serde_json::from_value(o.pod.clone()).map_err(|e| HookError::Output {
            hook: "(timeline)".into(),
            message: format!("observation {i}: not a Pod: {e}"),
        })?;
        let events = o.events.to_string();
        let elapsed = Duration::from_millis(o.elapsed_ms);
        let found = crate::lifecycle::classify_with_hook(
            classifiers,
            &timeline.context,
            &pod,
            &events,
            elapsed,
        )
        .await?;
        if let Some((h, v)) = found {
            let decision = Decision::of(i, classifiers[h].name(), &v);
            if decision.is_final() {
                return Ok(Replayed {
                    verdict: Some(decision),
                    fed: i + 1,
                });
            }
            last = Some(decision);
        }
    }
    Ok(Replayed {
        verdict: last,
        fed: timeline.observations.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_commands_are_redacted_and_versions_checked() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "managedFields": [{"manager": "x"}]},
            "spec": {"containers": [{"name": "main", "args": ["--password", "hunter2"],
                "env": [{"name": "TOKEN", "value": "s3cret"}, {"name": "FROM", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]}
        }))
        .unwrap();
        let mut context = RunContext::bare("app", "r1");
        context.arguments = vec!["hunter2".into()];
        let mut timeline = Timeline::new(&context);
        timeline.record(&pod, "[]", Duration::from_millis(5), None);
        let text = serde_json::to_string(&timeline).unwrap();
        for secret in ["hunter2", "s3cret", "managedFields"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("secretKeyRef"), "a reference is not a secret");
        assert_eq!(Timeline::parse(&text).unwrap(), timeline);
        let newer = text.replace("\"version\":1", "\"version\":2");
        assert!(matches!(
            Timeline::parse(&newer),
            Err(TimelineError::Version { found: 2 })
        ));
        assert!(Timeline::parse("{\"version\": 1}").is_err());
    }
}
