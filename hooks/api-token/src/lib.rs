//! Built-in mutate hook `api-token`: a pod gets an API token only when it
//! asks for one.
//!
//! Kubernetes mounts the token of the pod's service account into every
//! container unless told otherwise. A command run by podrun rarely talks to
//! the API, and the `default` service account usually has no rights, so the
//! token is an exposure with no use. It also costs time: the kubelet starts
//! no container before the token's volume is mounted, which it checks every
//! 300 ms, and its first fetch of the token's Secret can fail and be retried
//! a second or more later.
//!
//! A pod that sets `automountServiceAccountToken` (true or false) or names a
//! service account other than `default` is left as it is; any other pod gets
//! `automountServiceAccountToken: false`. Give the pod a service account, or
//! set the field to true in the template, to keep the token. The hook judges
//! the pod as the hooks before it left it: it belongs after any hook that
//! names a service account.

use podrun_hook_sdk::serde::Deserialize;
use podrun_hook_sdk::serde_json::{Value, json};
use podrun_hook_sdk::{Context, Mutate, Mutation, Object, Refusal, export_mutate};

/// The hook.
pub struct ApiToken;

/// No settings: leaving a pod's token alone is done in its template.
#[derive(Deserialize, Default)]
#[serde(crate = "podrun_hook_sdk::serde", deny_unknown_fields)]
struct Settings {}

impl Mutate for ApiToken {
    fn mutate(ctx: &Context, object: &Object) -> Result<Mutation, Refusal> {
        let _: Settings = ctx.settings()?;
        let Some(path) = object.pod_spec_path() else {
            return Ok(Mutation::Unchanged);
        };
        let whole: Value = object.parse()?;
        let spec = path.iter().try_fold(&whole, |v, key| v.get(key));
        let field = |name: &str| spec.and_then(|s| s.get(name)).filter(|v| !v.is_null());
        let named = |name: &str| {
            field(name)
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
        };
        // `serviceAccount` is the deprecated spelling, used by the API only
        // when `serviceAccountName` is not set.
        let account = named("serviceAccountName").or_else(|| named("serviceAccount"));
        if field("automountServiceAccountToken").is_some()
            || account.is_some_and(|a| a != "default")
        {
            return Ok(Mutation::Unchanged);
        }
        object.patch_pod_spec(json!({ "automountServiceAccountToken": false }))
    }
}

export_mutate!(ApiToken);

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Object {
        Object::pod(&json!({"apiVersion": "v1", "kind": "Pod", "spec": spec}))
    }

    fn mutate(object: &Object) -> Mutation {
        ApiToken::mutate(&Context::for_test("a"), object).unwrap()
    }

    const OFF: &str = r#"{"spec":{"automountServiceAccountToken":false}}"#;

    #[test]
    fn a_pod_that_does_not_ask_gets_no_token() {
        assert_eq!(
            mutate(&pod(json!({"containers": []}))),
            Mutation::MergePatch(OFF.into())
        );
        let default = pod(json!({"serviceAccountName": "default", "containers": []}));
        assert_eq!(mutate(&default), Mutation::MergePatch(OFF.into()));
        // The API takes serviceAccountName over the deprecated field.
        let both = pod(json!({"serviceAccountName": "default", "serviceAccount": "ci"}));
        assert_eq!(mutate(&both), Mutation::MergePatch(OFF.into()));
    }

    #[test]
    fn a_pod_that_says_what_it_wants_is_left_alone() {
        for spec in [
            json!({"automountServiceAccountToken": true}),
            json!({"automountServiceAccountToken": false}),
            json!({"serviceAccountName": "reporter"}),
            json!({"serviceAccount": "reporter"}),
        ] {
            assert_eq!(mutate(&pod(spec.clone())), Mutation::Unchanged, "{spec}");
        }
    }

    #[test]
    fn a_job_is_changed_in_its_pod_template() {
        let job = Object {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            json: json!({"spec": {"template": {"spec": {"containers": []}}}}).to_string(),
        };
        assert_eq!(
            mutate(&job),
            Mutation::MergePatch(
                r#"{"spec":{"template":{"spec":{"automountServiceAccountToken":false}}}}"#.into()
            )
        );
        let with_account = Object {
            json: json!({"spec": {"template": {"spec": {"serviceAccountName": "ci"}}}}).to_string(),
            ..job
        };
        assert_eq!(mutate(&with_account), Mutation::Unchanged);
    }

    #[test]
    fn settings_are_refused() {
        let ctx = Context::for_test("a").with_settings(json!({"mount": true}));
        assert!(matches!(
            ApiToken::mutate(&ctx, &pod(json!({}))),
            Err(Refusal::Invalid(m)) if m.contains("mount")
        ));
    }
}
