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
    /// The pod, status included; absent when it is the one before's (a
    /// run asks its classifiers every half second while it waits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Value>,
    /// Its recent events (a list of `v1` Events), as the classifiers got
    /// them; absent when they are the ones before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Value>,
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
}

/// Records a run's timeline as its classifiers are called.
#[derive(Debug)]
pub struct Recorder {
    timeline: Timeline,
    last_pod: Option<Value>,
    last_events: Option<Value>,
    /// The decision of the latest call, final or not.
    latest: Option<Decision>,
    /// The caller's values, taken out wherever the template put them.
    secrets: Vec<String>,
}

/// Values shorter than this are left where they appear (`1`, `on`): they
/// would blank out half the pod.
const SHORTEST_SECRET: usize = 4;

impl Recorder {
    /// A recorder for a run of `context`.
    pub fn new(context: &RunContext) -> Recorder {
        let mut secrets: Vec<String> = context
            .arguments
            .iter()
            .chain(context.params.iter().map(|p| &p.value))
            .filter(|v| v.len() >= SHORTEST_SECRET)
            .cloned()
            .collect();
        // The longest first, so that one holding another goes whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut context = context.clone();
        context.arguments = context.arguments.iter().map(|_| REDACTED.into()).collect();
        for p in &mut context.params {
            p.value = REDACTED.into();
        }
        Recorder {
            timeline: Timeline {
                version: VERSION,
                context,
                observations: Vec::new(),
                verdict: None,
            },
            last_pod: None,
            last_events: None,
            latest: None,
            secrets,
        }
    }

    /// Adds what the classifiers were given and what they decided;
    /// returns whether that differs from the observation before in more
    /// than its time.
    pub fn record(
        &mut self,
        pod: &Pod,
        events: &str,
        elapsed: Duration,
        decided: Option<(&str, &classify::Verdict)>,
    ) -> bool {
        let mut pod = serde_json::to_value(pod).unwrap_or_default();
        redact(&mut pod);
        let mut events: Value = serde_json::from_str(events).unwrap_or(Value::Array(Vec::new()));
        for event in events.as_array_mut().into_iter().flatten() {
            if let Some(metadata) = event.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata.remove("managedFields");
            }
        }
        hide(&mut pod, &self.secrets);
        hide(&mut events, &self.secrets);
        let pod = (self.last_pod.as_ref() != Some(&pod)).then(|| {
            self.last_pod = Some(pod.clone());
            pod
        });
        let events = (self.last_events.as_ref() != Some(&events)).then(|| {
            self.last_events = Some(events.clone());
            events
        });
        let changed = pod.is_some() || events.is_some();
        self.timeline.observations.push(Observation {
            elapsed_ms: elapsed.as_millis() as u64,
            pod,
            events,
        });
        let at = self.timeline.observations.len() - 1;
        self.latest = decided.map(|(hook, v)| {
            let mut d = Decision::of(at, hook, v);
            let mut shown = serde_json::to_value(&d).unwrap_or_default();
            hide(&mut shown, &self.secrets);
            if let Ok(hidden) = serde_json::from_value(shown) {
                d = hidden;
            }
            d
        });
        // The first verdict that ends the run is the run's.
        if self.timeline.verdict.is_none()
            && let Some(d) = self.latest.as_ref().filter(|d| d.is_final())
        {
            self.timeline.verdict = Some(d.clone());
        }
        changed || decided.is_some_and(|(_, v)| v.outcome != classify::Outcome::Running)
    }

    /// The timeline so far: a run that ended undecided has the decision
    /// of its last call, as the run does.
    pub fn timeline(&self) -> Timeline {
        let mut timeline = self.timeline.clone();
        if timeline.verdict.is_none() {
            timeline.verdict = self.latest.clone();
        }
        timeline
    }
}

/// Replaces each of `secrets` in every string of `value`.
fn hide(value: &mut Value, secrets: &[String]) {
    if secrets.is_empty() {
        return;
    }
    match value {
        Value::String(text) => {
            for secret in secrets {
                if text.contains(secret.as_str()) {
                    *text = text.replace(secret.as_str(), REDACTED);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| hide(v, secrets)),
        Value::Object(fields) => fields.values_mut().for_each(|v| hide(v, secrets)),
        _ => {}
    }
}

/// Takes out of a pod (as JSON) what must not be shown beyond its spec's
/// shape: environment values, commands and arguments, probe and lifecycle
/// commands and headers, termination messages (which may hold secrets) and
/// the API server's bookkeeping.
pub fn redact(pod: &mut Value) {
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
            // Probes and lifecycle handlers run commands and send headers.
            for handler in [
                "/livenessProbe",
                "/readinessProbe",
                "/startupProbe",
                "/lifecycle/postStart",
                "/lifecycle/preStop",
            ] {
                let Some(handler) = c.pointer_mut(handler) else {
                    continue;
                };
                if let Some(words) = handler
                    .pointer_mut("/exec/command")
                    .and_then(Value::as_array_mut)
                {
                    words
                        .iter_mut()
                        .for_each(|w| *w = Value::String(REDACTED.into()));
                }
                let headers = handler
                    .pointer_mut("/httpGet/httpHeaders")
                    .and_then(Value::as_array_mut);
                for header in headers.into_iter().flatten() {
                    if let Some(value) = header.get_mut("value") {
                        *value = Value::String(REDACTED.into());
                    }
                }
            }
        }
    }
    // A termination message may be the tail of the container's output.
    for list in [
        "initContainerStatuses",
        "containerStatuses",
        "ephemeralContainerStatuses",
    ] {
        let statuses = pod
            .pointer_mut(&format!("/status/{list}"))
            .and_then(Value::as_array_mut);
        for status in statuses.into_iter().flatten() {
            for state in ["/state/terminated/message", "/lastState/terminated/message"] {
                if let Some(message) = status.pointer_mut(state) {
                    *message = Value::String(REDACTED.into());
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
    let bad = |i: usize, message: String| HookError::Output {
        hook: "(timeline)".into(),
        message: format!("observation {i}: {message}"),
    };
    let mut latest = None;
    let mut pod: Option<Pod> = None;
    let mut events = String::from("[]");
    for (i, o) in timeline.observations.iter().enumerate() {
        if let Some(value) = &o.pod {
            pod = Some(
                serde_json::from_value(value.clone())
                    .map_err(|e| bad(i, format!("not a Pod: {e}")))?,
            );
        }
        let Some(pod) = &pod else {
            return Err(bad(i, "no pod yet".into()));
        };
        if let Some(value) = &o.events {
            events = value.to_string();
        }
        let elapsed = Duration::from_millis(o.elapsed_ms);
        let found = crate::lifecycle::classify_with_hook(
            classifiers,
            &timeline.context,
            pod,
            &events,
            elapsed,
        )
        .await?;
        latest = found.map(|(h, v)| Decision::of(i, classifiers[h].name(), &v));
        if latest.as_ref().is_some_and(Decision::is_final) {
            return Ok(Replayed {
                verdict: latest,
                fed: i + 1,
            });
        }
    }
    // Ended undecided: the last call's decision, as the run takes it.
    Ok(Replayed {
        verdict: latest,
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
        context.params = vec![crate::context::Param {
            name: "key".into(),
            value: "opensesame".into(),
        }];
        let mut pod = pod;
        pod.metadata.annotations =
            Some([("note".to_string(), "key=opensesame".to_string())].into());
        let mut recorder = Recorder::new(&context);
        assert!(recorder.record(&pod, "[]", Duration::from_millis(5), None));
        // The same pod again is only a time.
        assert!(!recorder.record(&pod, "[]", Duration::from_millis(505), None));
        let timeline = recorder.timeline();
        assert!(
            timeline.observations[1].pod.is_none() && timeline.observations[1].events.is_none()
        );
        let text = serde_json::to_string(&timeline).unwrap();
        for secret in ["hunter2", "s3cret", "managedFields", "opensesame"] {
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
