//! An example classify hook: a container that exits with one of the codes
//! in `retry-on` (default: 75, EX_TEMPFAIL) fails the run as retryable.
//! Anything else it leaves to the next classifier, so it goes before the
//! default one:
//!
//! ```yaml
//! hooks:
//!   classify: [{hook: retry_classifier.wasm, with: {retry-on: [75]}}, default-classifier]
//! ```

use podrun_hook_sdk::k8s_openapi::api::core::v1::PodStatus;
use podrun_hook_sdk::serde::Deserialize;
use podrun_hook_sdk::{Classify, Context, Observation, Outcome, Verdict, export_classify};

/// The hook.
pub struct RetryClassifier;

#[derive(Deserialize)]
#[serde(
    crate = "podrun_hook_sdk::serde",
    default,
    deny_unknown_fields,
    rename_all = "kebab-case"
)]
struct Settings {
    retry_on: Vec<i32>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { retry_on: vec![75] }
    }
}

#[derive(Deserialize)]
#[serde(crate = "podrun_hook_sdk::serde")]
struct PodView {
    #[serde(default)]
    status: PodStatus,
}

impl Classify for RetryClassifier {
    fn classify(ctx: &Context, obs: &Observation) -> Result<Option<Verdict>, String> {
        let settings: Settings = ctx.settings()?;
        let pod: PodView =
            podrun_hook_sdk::serde_json::from_str(&obs.pod).map_err(|e| e.to_string())?;
        let ended = pod
            .status
            .container_statuses
            .iter()
            .flatten()
            .find_map(|c| {
                let t = c.state.as_ref()?.terminated.as_ref()?;
                settings
                    .retry_on
                    .contains(&t.exit_code)
                    .then(|| (c.name.clone(), t.exit_code))
            });
        Ok(ended.map(|(name, code)| {
            let mut v = Verdict::new(
                Outcome::Failed,
                "TemporaryFailure",
                format!("container {name} asked for a retry (exit code {code})"),
            );
            v.retryable = true;
            v.exit_code = Some(code);
            v.rule = Some("retry-on".into());
            v.evidence = vec![format!(
                "containerStatuses[{name}].state.terminated.exitCode={code}"
            )];
            v
        }))
    }
}

export_classify!(RetryClassifier);

#[cfg(test)]
mod tests {
    use super::*;
    use podrun_hook_sdk::serde_json::json;

    fn obs(code: i32) -> Observation {
        let pod = json!({"status": {"phase": "Failed", "containerStatuses": [{"name": "main", "image": "x", "imageID": "",
            "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": code}}}]}});
        Observation {
            pod: pod.to_string(),
            events: "[]".into(),
            elapsed_ms: 0,
        }
    }

    #[test]
    fn retries_on_listed_codes_and_passes_on_others() {
        let v = RetryClassifier::classify(&Context::for_test("a"), &obs(75))
            .unwrap()
            .unwrap();
        assert!(v.retryable && v.exit_code == Some(75));
        assert!(
            RetryClassifier::classify(&Context::for_test("a"), &obs(1))
                .unwrap()
                .is_none()
        );
        let ctx = Context::for_test("a").with_settings(json!({"retry-on": [1]}));
        assert!(RetryClassifier::classify(&ctx, &obs(1)).unwrap().is_some());
    }
}
