//! Objects that mutate hooks receive, and what they return.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::SettingsError;

/// A Kubernetes object as JSON, with its type spelled out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// `v1`, `batch/v1`…
    pub api_version: String,
    /// `Pod`, `Job`, `CronJob`…
    pub kind: String,
    /// The whole object as JSON.
    pub json: String,
}

/// What a mutate hook does to an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// Nothing to change.
    Unchanged,
    /// A JSON merge patch (RFC 7386): `null` removes a field, lists are
    /// replaced whole.
    MergePatch(String),
    /// The whole new object as JSON.
    Replace(String),
}

/// Why a mutate hook returns no mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Policy says this object must not run; the message is for the user.
    Denied(String),
    /// The hook cannot work with this object or its settings.
    Invalid(String),
}

impl From<SettingsError> for Refusal {
    fn from(e: SettingsError) -> Self {
        Refusal::Invalid(e.to_string())
    }
}

impl Object {
    /// An object from a JSON value (for tests).
    pub fn pod(value: &serde_json::Value) -> Self {
        Object {
            api_version: "v1".into(),
            kind: "Pod".into(),
            json: value.to_string(),
        }
    }

    /// Deserializes the object into `T`: a full typed object
    /// (`k8s_openapi::api::core::v1::Pod`) or a struct of only the fields
    /// the hook needs, which is much cheaper.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Refusal> {
        serde_json::from_str(&self.json)
            .map_err(|e| Refusal::Invalid(format!("cannot read the {}: {e}", self.kind)))
    }

    /// Where the pod spec sits in this kind of object, as field names:
    /// `["spec"]` for a Pod, `["template", "spec"]` for a PodTemplate,
    /// `["spec", "template", "spec"]` for a Job and
    /// `["spec", "jobTemplate", "spec", "template", "spec"]` for a CronJob.
    /// `None` for objects that hold no pod.
    pub fn pod_spec_path(&self) -> Option<&'static [&'static str]> {
        match self.kind.as_str() {
            "Pod" => Some(&["spec"]),
            "Job" | "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => {
                Some(&["spec", "template", "spec"])
            }
            // A v1 PodTemplate has no spec of its own.
            "PodTemplate" => Some(&["template", "spec"]),
            "CronJob" => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
            _ => None,
        }
    }

    /// A merge patch that sets `fields` in the object's pod spec, wherever
    /// this kind keeps it. Refuses objects without a pod spec.
    pub fn patch_pod_spec(&self, fields: serde_json::Value) -> Result<Mutation, Refusal> {
        let path = self.pod_spec_path().ok_or_else(|| {
            Refusal::Invalid(format!("a {} has no pod spec to change", self.kind))
        })?;
        let patch = path
            .iter()
            .rev()
            .fold(fields, |inner, key| serde_json::json!({ *key: inner }));
        Mutation::merge(&patch)
    }
}

impl Mutation {
    /// A merge patch from any serializable value. Fields that are `None`
    /// must be skipped (`#[serde(skip_serializing_if = "Option::is_none")]`),
    /// or they remove the field from the object.
    pub fn merge(patch: &impl Serialize) -> Result<Self, Refusal> {
        serde_json::to_string(patch)
            .map(Mutation::MergePatch)
            .map_err(|e| Refusal::Invalid(format!("cannot write the patch: {e}")))
    }

    /// Replaces the whole object.
    pub fn replace(object: &impl Serialize) -> Result<Self, Refusal> {
        serde_json::to_string(object)
            .map(Mutation::Replace)
            .map_err(|e| Refusal::Invalid(format!("cannot write the object: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_pod_spec_nests_by_kind() {
        let mut obj = Object::pod(&serde_json::json!({}));
        let fields = serde_json::json!({"restartPolicy": "Never"});
        assert_eq!(
            obj.patch_pod_spec(fields.clone()).unwrap(),
            Mutation::MergePatch(r#"{"spec":{"restartPolicy":"Never"}}"#.into())
        );
        obj.kind = "CronJob".into();
        assert_eq!(
            obj.patch_pod_spec(fields.clone()).unwrap(),
            Mutation::MergePatch(
                r#"{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"restartPolicy":"Never"}}}}}}"#
                    .into()
            )
        );
        obj.kind = "PodTemplate".into();
        assert_eq!(
            obj.patch_pod_spec(fields.clone()).unwrap(),
            Mutation::MergePatch(r#"{"template":{"spec":{"restartPolicy":"Never"}}}"#.into())
        );
        obj.kind = "ConfigMap".into();
        assert!(matches!(
            obj.patch_pod_spec(fields),
            Err(Refusal::Invalid(_))
        ));
    }
}
