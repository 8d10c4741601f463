//! What a run was asked for: the pod podrun made of it (redacted), what
//! each hook changed, and the request's command, parameters, namespace,
//! timeout and image, for the page's pod view and its "submit again".

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Extension, Path, State as Shared_};
use podrun::context::RunContext;
use podrun::pipeline::Prepared;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::{ApiError, App, ErrorBody, find};

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunRequest {
    /// The pod as podrun created it, after every hook, with what may hold
    /// secrets redacted (environment values, commands, probe headers).
    #[schema(value_type = Object)]
    pod: serde_json::Value,
    /// What each hook changed, in order (values redacted as the pod's).
    changes: Vec<HookChanges>,
    /// The run's request, as `POST /v1/runs` takes it.
    request: Again,
}

/// One hook's part in making the pod: `podrun render --explain`'s lines.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct HookChanges {
    /// The hook.
    hook: String,
    /// `render` or `mutate`.
    kind: String,
    /// One line per change (`add /path = value`, `replace …`, `remove …`).
    changes: Vec<String>,
}

impl HookChanges {
    pub(crate) fn of(prepared: &Prepared) -> Vec<HookChanges> {
        prepared
            .steps
            .iter()
            .map(|step| HookChanges {
                hook: step.hook.clone(),
                kind: step.kind.to_string(),
                changes: step.changes.clone(),
            })
            .collect()
    }
}

/// A request to submit the same run again.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Again {
    application: String,
    args: Vec<String>,
    params: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<u64>,
    image: String,
}

/// The pod a run made and what it was asked for.
#[utoipa::path(get, path = "/v1/runs/{id}/pod", tag = "runs",
    params(("id" = String, Path, description = "The run id")),
    responses(
        (status = 200, description = "The pod and the request", body = RunRequest),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 503, description = "The store does not answer", body = ErrorBody),
    ))]
pub(crate) async fn pod(
    Shared_(shared): App,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<RunRequest>, ApiError> {
    find(&shared, &caller, &id).await?;
    // Released in between: gone like the run.
    let work = shared
        .store
        .work(&id)
        .await?
        .ok_or_else(|| ApiError::no_run(&id))?;
    let stored = |what: &str, e: serde_json::Error| {
        tracing::warn!("run {id}: the stored {what} does not parse: {e}");
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "stored-run-unreadable",
            format!("run {id}: its stored {what} cannot be read"),
        )
    };
    let mut pod = serde_json::from_str(&work.pod).map_err(|e| stored("pod", e))?;
    // The config's and the operator's hooks' values are not the caller's.
    podrun::timeline::redact(&mut pod);
    let context: RunContext =
        serde_json::from_str(&work.context).map_err(|e| stored("context", e))?;
    // Runs stored before changes were kept have none.
    let changes = match shared.store.changes(&id).await? {
        Some(json) => serde_json::from_str(&json).map_err(|e| stored("changes", e))?,
        None => Vec::new(),
    };
    Ok(Json(RunRequest {
        pod,
        changes,
        request: Again {
            application: work.application,
            args: context.arguments,
            params: context
                .params
                .into_iter()
                .map(|p| (p.name, p.value))
                .collect(),
            namespace: context.namespace,
            timeout: context.timeout_seconds,
            image: context.image,
        },
    }))
}
