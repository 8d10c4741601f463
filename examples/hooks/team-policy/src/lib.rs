//! An example policy hook, written as a platform team would: every pod must
//! set memory limits on all its containers, and gets a `team` label from the
//! run's `team` parameter (or the hook's `default-team` setting).
//!
//! ```yaml
//! hooks:
//!   mutate: [restart-never, deadline, labels, {hook: team_policy.wasm, with: {default-team: platform}}, api-token]
//! parameters: [{name: team, default: ""}]
//! ```

use podrun_hook_sdk::k8s_openapi::api::core::v1::PodSpec;
use podrun_hook_sdk::serde::Deserialize;
use podrun_hook_sdk::serde_json::json;
use podrun_hook_sdk::{Context, Mutate, Mutation, Object, Refusal, export_mutate, log};

/// The hook.
pub struct TeamPolicy;

#[derive(Deserialize, Default)]
#[serde(
    crate = "podrun_hook_sdk::serde",
    default,
    deny_unknown_fields,
    rename_all = "kebab-case"
)]
struct Settings {
    default_team: Option<String>,
}

/// The only part of the pod this policy reads.
#[derive(Deserialize)]
#[serde(crate = "podrun_hook_sdk::serde")]
struct PodView {
    spec: PodSpec,
}

impl Mutate for TeamPolicy {
    fn mutate(ctx: &Context, object: &Object) -> Result<Mutation, Refusal> {
        if object.kind != "Pod" {
            return Ok(Mutation::Unchanged);
        }
        let settings: Settings = ctx.settings()?;
        let pod: PodView = object.parse()?;
        let unlimited: Vec<&str> = pod
            .spec
            .containers
            .iter()
            .filter(|c| {
                let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
                !limits.is_some_and(|l| l.contains_key("memory"))
            })
            .map(|c| c.name.as_str())
            .collect();
        if !unlimited.is_empty() {
            return Err(Refusal::Denied(format!(
                "every container needs a memory limit; {} has none",
                unlimited.join(", ")
            )));
        }
        let team = ctx
            .param("team")
            .filter(|t| !t.is_empty())
            .or(settings.default_team.as_deref())
            .ok_or_else(|| Refusal::Denied("no team: pass --param team=NAME".into()))?;
        log::info(&format!("labelling the pod for team {team}"));
        Mutation::merge(&json!({ "metadata": { "labels": { "team": team } } }))
    }
}

export_mutate!(TeamPolicy);

#[cfg(test)]
mod tests {
    use super::*;
    use podrun_hook_sdk::serde_json::Value;

    fn pod(limits: Value) -> Object {
        Object::pod(
            &json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [
            {"name": "main", "image": "busybox", "resources": {"limits": limits}}]}}),
        )
    }

    #[test]
    fn labels_a_limited_pod_with_the_team() {
        let ctx = Context::for_test("report").with_param("team", "data");
        let m = TeamPolicy::mutate(&ctx, &pod(json!({"memory": "64Mi"}))).unwrap();
        assert_eq!(
            m,
            Mutation::MergePatch(r#"{"metadata":{"labels":{"team":"data"}}}"#.into())
        );
    }

    #[test]
    fn denies_a_pod_without_limits() {
        let ctx = Context::for_test("report").with_param("team", "data");
        let err = TeamPolicy::mutate(&ctx, &pod(json!({}))).unwrap_err();
        assert!(matches!(err, Refusal::Denied(m) if m.contains("main has none")));
    }

    #[test]
    fn falls_back_to_the_default_team_or_denies() {
        let ctx = Context::for_test("report").with_settings(json!({"default-team": "platform"}));
        assert!(
            matches!(TeamPolicy::mutate(&ctx, &pod(json!({"memory": "1Gi"}))), Ok(Mutation::MergePatch(p)) if p.contains("platform"))
        );
        let ctx = Context::for_test("report");
        assert!(matches!(
            TeamPolicy::mutate(&ctx, &pod(json!({"memory": "1Gi"}))),
            Err(Refusal::Denied(_))
        ));
    }
}
