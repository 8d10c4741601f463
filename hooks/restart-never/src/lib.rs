//! Built-in mutate hook `restart-never`: a run's pod must not restart its
//! containers behind podrun's back, so restartPolicy becomes `Never` unless
//! the application (`restart-policy:`) or the hook's settings (`policy:`)
//! ask for `OnFailure` or `Always`.

use podrun_hook_sdk::serde_json::json;
use podrun_hook_sdk::{Context, Mutate, Mutation, Object, Refusal, export_mutate};

/// The hook.
pub struct RestartNever;

#[derive(podrun_hook_sdk::serde::Deserialize, Default)]
#[serde(crate = "podrun_hook_sdk::serde")]
#[serde(default, deny_unknown_fields)]
struct Settings {
    policy: Option<String>,
}

impl Mutate for RestartNever {
    fn mutate(ctx: &Context, object: &Object) -> Result<Mutation, Refusal> {
        let settings: Settings = ctx.settings()?;
        let policy = ctx
            .application
            .restart_policy
            .as_deref()
            .or(settings.policy.as_deref())
            .unwrap_or("Never");
        let allowed: &[&str] = match object.kind.as_str() {
            "Pod" => &["Never", "OnFailure", "Always"],
            _ => &["Never", "OnFailure"],
        };
        if !allowed.contains(&policy) {
            return Err(Refusal::Invalid(format!(
                "restartPolicy {policy:?} is not valid for a {} (use one of {})",
                object.kind,
                allowed.join(", ")
            )));
        }
        // No need to read the object: the patch says what it must be.
        object.patch_pod_spec(json!({ "restartPolicy": policy }))
    }
}

export_mutate!(RestartNever);

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Object {
        Object::pod(
            &json!({"apiVersion": "v1", "kind": "Pod", "spec": {"restartPolicy": "Always"}}),
        )
    }

    #[test]
    fn sets_never_by_default() {
        let m = RestartNever::mutate(&Context::for_test("a"), &pod()).unwrap();
        assert_eq!(
            m,
            Mutation::MergePatch(r#"{"spec":{"restartPolicy":"Never"}}"#.into())
        );
    }

    #[test]
    fn application_setting_wins() {
        let mut ctx = Context::for_test("a").with_settings(json!({"policy": "Always"}));
        ctx.application.restart_policy = Some("OnFailure".into());
        let m = RestartNever::mutate(&ctx, &pod()).unwrap();
        assert_eq!(
            m,
            Mutation::MergePatch(r#"{"spec":{"restartPolicy":"OnFailure"}}"#.into())
        );
    }

    #[test]
    fn always_is_refused_for_a_job() {
        let mut job = pod();
        job.kind = "Job".into();
        let ctx = Context::for_test("a").with_settings(json!({"policy": "Always"}));
        assert!(matches!(
            RestartNever::mutate(&ctx, &job),
            Err(Refusal::Invalid(_))
        ));
    }

    #[test]
    fn unknown_setting_is_an_error() {
        let ctx = Context::for_test("a").with_settings(json!({"polcy": "Never"}));
        assert!(
            matches!(RestartNever::mutate(&ctx, &pod()), Err(Refusal::Invalid(m)) if m.contains("polcy"))
        );
    }
}
