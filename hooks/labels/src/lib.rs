//! Built-in mutate hook `labels`: marks every pod podrun creates, so that
//! runs can be found, re-attached to and cleaned up (`podrun gc`). Labels on
//! a Job or CronJob also go on the pods it creates.
//!
//! | label | value |
//! |---|---|
//! | `app.kubernetes.io/managed-by` | `podrun` |
//! | `app.kubernetes.io/name` | the application's name |
//! | `podrun.dev/run-id` | the run's unique id |
//!
//! The `extra:` setting adds more labels (a map of name to value).

use std::collections::BTreeMap;

use podrun_hook_sdk::serde::Deserialize;
use podrun_hook_sdk::serde_json::{Value, json};
use podrun_hook_sdk::{Context, Mutate, Mutation, Object, Refusal, export_mutate};

/// The hook.
pub struct Labels;

/// The label that marks podrun's pods.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The label that carries the application's name.
pub const APPLICATION: &str = "app.kubernetes.io/name";
/// The label that carries the run id.
pub const RUN_ID: &str = "podrun.dev/run-id";

#[derive(Deserialize, Default)]
#[serde(crate = "podrun_hook_sdk::serde", default, deny_unknown_fields)]
struct Settings {
    extra: BTreeMap<String, String>,
}

impl Mutate for Labels {
    fn mutate(ctx: &Context, object: &Object) -> Result<Mutation, Refusal> {
        let settings: Settings = ctx.settings()?;
        let app = &ctx.application;
        let mut labels = settings.extra;
        labels.insert(MANAGED_BY.into(), "podrun".into());
        labels.insert(APPLICATION.into(), app.name.clone());
        labels.insert(RUN_ID.into(), app.run_id.clone());
        let metadata = json!({ "labels": labels });
        // The pods a Job or CronJob makes carry the labels too: their
        // template sits just above the pod spec.
        let template_path = match object.pod_spec_path() {
            Some(path) => &path[..path.len() - 1],
            None => &[],
        };
        let mut patch = template_path.iter().rev().fold(
            json!({ "metadata": metadata }),
            |inner, key| json!({ *key: inner }),
        );
        if let Value::Object(top) = &mut patch {
            top.insert("metadata".into(), metadata);
        }
        Mutation::merge(&patch)
    }
}

export_mutate!(Labels);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_a_pod() {
        let ctx = Context::for_test("report").with_settings(json!({"extra": {"team": "data"}}));
        let m = Labels::mutate(&ctx, &Object::pod(&json!({}))).unwrap();
        let Mutation::MergePatch(p) = m else {
            panic!("{m:?}")
        };
        let p: Value = podrun_hook_sdk::serde_json::from_str(&p).unwrap();
        assert_eq!(
            p,
            json!({"metadata": {"labels": {
                "app.kubernetes.io/managed-by": "podrun",
                "app.kubernetes.io/name": "report",
                "podrun.dev/run-id": "test",
                "team": "data"
            }}})
        );
    }

    #[test]
    fn labels_a_jobs_pods() {
        let mut job = Object::pod(&json!({}));
        job.kind = "Job".into();
        let Mutation::MergePatch(p) = Labels::mutate(&Context::for_test("r"), &job).unwrap() else {
            panic!()
        };
        let p: Value = podrun_hook_sdk::serde_json::from_str(&p).unwrap();
        assert_eq!(p["spec"]["template"]["metadata"]["labels"][RUN_ID], "test");
        assert_eq!(p["metadata"]["labels"][RUN_ID], "test");
    }
}
