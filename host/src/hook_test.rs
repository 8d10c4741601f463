//! `podrun hook test`: runs one hook on a fixture and prints what it
//! returned, or, with an expectation, whether it matched.

use serde_json::Value;

use crate::context::RunContext;
use crate::hooks::{Hook, HookError, Kind, classify, render};
use crate::pipeline;

/// What a hook made of a fixture, as a YAML-able value.
pub async fn run(
    hook: &Hook,
    kind: Kind,
    fixture: &str,
    context: &RunContext,
) -> Result<Value, HookError> {
    let fixture_value = || -> Result<Value, HookError> {
        serde_saphyr::from_str(fixture).map_err(|e| HookError::Failed {
            hook: hook.name().to_string(),
            message: format!("the fixture is not YAML: {e}"),
        })
    };
    match kind {
        Kind::Mutate => {
            let mut object = fixture_value()?;
            pipeline::apply(hook, context, &mut object).await?;
            Ok(object)
        }
        Kind::Render => {
            let template = render::Template {
                source: "fixture".into(),
                text: fixture.to_string(),
            };
            let called = hook.render(context, &template).await?;
            serde_json::from_str(&called.value).map_err(|e| HookError::Output {
                hook: hook.name().to_string(),
                message: e.to_string(),
            })
        }
        Kind::Classify => {
            let pod = fixture_value()?;
            let observation = classify::Observation {
                pod: pod.to_string(),
                events: "[]".into(),
                elapsed_ms: 0,
            };
            let verdict = hook.classify(context, &observation).await?.value;
            Ok(match verdict {
                None => Value::Null,
                Some(v) => serde_json::json!({
                    "outcome": crate::result::outcome(v.outcome),
                    "retryable": v.retryable,
                    "reason": v.reason,
                    "message": v.message,
                    "exitCode": v.exit_code,
                    "rule": v.rule,
                    "evidence": v.evidence,
                }),
            })
        }
    }
}

/// The differences between what was expected and what came, one line per
/// JSON Patch operation that turns one into the other; empty when equal.
pub fn differences(expected: &Value, actual: &Value) -> Vec<String> {
    json_patch::diff(expected, actual)
        .0
        .iter()
        .map(|op| match op {
            json_patch::PatchOperation::Add(o) => format!("unexpected {} = {}", o.path, o.value),
            json_patch::PatchOperation::Remove(o) => format!("missing {}", o.path),
            json_patch::PatchOperation::Replace(o) => format!("{} is {}", o.path, o.value),
            other => other.to_string(),
        })
        .map(|line| crate::hooks::text::shown(&line, crate::hooks::text::MESSAGE_LIMIT))
        .collect()
}
