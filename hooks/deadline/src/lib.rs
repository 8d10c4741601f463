//! Built-in mutate hook `deadline`: every run's pod gets
//! `activeDeadlineSeconds`, so that a pod left behind by a crash still ends
//! by itself. The run's timeout (`timeout:` in the config or `--timeout`)
//! wins; otherwise a deadline already in the template stays; otherwise the
//! hook's `seconds:` setting (default one day) applies.

use podrun_hook_sdk::serde::Deserialize;
use podrun_hook_sdk::serde_json::json;
use podrun_hook_sdk::{Context, Mutate, Mutation, Object, Refusal, export_mutate};

/// The deadline when neither the run nor the template sets one: one day.
pub const DEFAULT_SECONDS: u64 = 86_400;

/// The hook.
pub struct Deadline;

#[derive(Deserialize)]
#[serde(crate = "podrun_hook_sdk::serde", default, deny_unknown_fields)]
struct Settings {
    seconds: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            seconds: DEFAULT_SECONDS,
        }
    }
}

/// Only the fields this hook reads: parsing them skips the rest of the pod.
#[derive(Deserialize, Default)]
#[serde(crate = "podrun_hook_sdk::serde", default, rename_all = "camelCase")]
struct PodView {
    spec: SpecView,
}

#[derive(Deserialize, Default)]
#[serde(crate = "podrun_hook_sdk::serde", default, rename_all = "camelCase")]
struct SpecView {
    active_deadline_seconds: Option<i64>,
}

impl Mutate for Deadline {
    fn mutate(ctx: &Context, object: &Object) -> Result<Mutation, Refusal> {
        let settings: Settings = ctx.settings()?;
        if settings.seconds == 0 {
            return Err(Refusal::Invalid("seconds must be at least 1".into()));
        }
        if object.kind != "Pod" {
            // A Job's pods restart under the Job; its own deadline is the
            // Job's business (activeDeadlineSeconds on the Job spec).
            return Ok(Mutation::Unchanged);
        }
        let seconds = match ctx.application.timeout_seconds {
            Some(s) => s,
            None => match object.parse::<PodView>()?.spec.active_deadline_seconds {
                Some(_) => return Ok(Mutation::Unchanged),
                None => settings.seconds,
            },
        };
        Mutation::merge(&json!({ "spec": { "activeDeadlineSeconds": seconds } }))
    }
}

export_mutate!(Deadline);

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(deadline: Option<i64>) -> Object {
        Object::pod(
            &json!({"apiVersion": "v1", "kind": "Pod", "spec": {"activeDeadlineSeconds": deadline, "containers": []}}),
        )
    }

    fn patch(seconds: u64) -> Mutation {
        Mutation::MergePatch(format!(
            r#"{{"spec":{{"activeDeadlineSeconds":{seconds}}}}}"#
        ))
    }

    #[test]
    fn default_deadline_when_nothing_sets_one() {
        assert_eq!(
            Deadline::mutate(&Context::for_test("a"), &pod(None)).unwrap(),
            patch(DEFAULT_SECONDS)
        );
        let ctx = Context::for_test("a").with_settings(json!({"seconds": 60}));
        assert_eq!(Deadline::mutate(&ctx, &pod(None)).unwrap(), patch(60));
    }

    #[test]
    fn template_deadline_is_kept() {
        assert_eq!(
            Deadline::mutate(&Context::for_test("a"), &pod(Some(30))).unwrap(),
            Mutation::Unchanged
        );
    }

    #[test]
    fn run_timeout_wins() {
        let mut ctx = Context::for_test("a");
        ctx.application.timeout_seconds = Some(900);
        assert_eq!(Deadline::mutate(&ctx, &pod(Some(30))).unwrap(), patch(900));
    }

    #[test]
    fn zero_is_refused() {
        let ctx = Context::for_test("a").with_settings(json!({"seconds": 0}));
        assert!(matches!(
            Deadline::mutate(&ctx, &pod(None)),
            Err(Refusal::Invalid(_))
        ));
    }
}
