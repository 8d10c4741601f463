//! Submitting, reading, listing, cancelling and releasing runs.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::Extension;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State as Shared_};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use podrun::cancel::Reason;
use podrun::exit::Code;
use podrun::pipeline::{Explain, PipelineError, Request};
use podrun::result::RunResult;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Caller, too_many};
use super::request::HookChanges;
use super::view::{RunView, view};
use super::{ApiError, App, ErrorBody, find};
use crate::Shared;
use crate::state::State;
use crate::store::{Filter, Inserted, NewRun, Run};

/// The longest idempotency key accepted.
const MAX_KEY: usize = 255;
/// A tenant's dry runs a minute, per submit it may make.
const DRY_RUNS_PER_SUBMIT: u32 = 10;
/// Runs in one page of a list, at most.
const MAX_PAGE: i64 = 500;

/// `POST /v1/runs`'s body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Submit {
    /// An application of the server's config.
    application: String,
    /// Split as `podrun run -c` splits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<String>,
    /// The command's arguments as they are (instead of `command`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    args: Option<Vec<String>>,
    /// Values of the application's declared parameters.
    #[serde(default)]
    params: BTreeMap<String, String>,
    /// Where the pod runs, if not the application's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    /// Input for the `worker` container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stdin: Option<String>,
    /// Where the run's end is POSTed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    callback_url: Option<String>,
    /// The run's deadline in seconds, if the application allows callers
    /// to set it (and no more than its maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout: Option<u64>,
    /// The container image, if the application allows callers to set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    /// A JSON merge patch over the rendered pod, before the mutate hooks,
    /// if the application allows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pod_override: Option<serde_json::Value>,
    /// Cpu and memory over the config's, if the application allows it
    /// (within its `max-resources`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resources: Option<SubmitResources>,
}

/// `requests` and `limits`, each with `cpu` and `memory` (Kubernetes
/// quantities).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitResources {
    #[serde(default)]
    requests: Quantities,
    #[serde(default)]
    limits: Quantities,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Quantities {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory: Option<String>,
}

impl From<&Quantities> for podrun::context::Resources {
    fn from(q: &Quantities) -> Self {
        podrun::context::Resources {
            cpu: q.cpu.clone(),
            memory: q.memory.clone(),
        }
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY && k.chars().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::bad(format!(
                "the Idempotency-Key must be 1 to {MAX_KEY} printable ASCII characters"
            ))
        })?;
    Ok(Some(key.to_string()))
}

/// The original run for a replayed key, or 422 if the body differs.
fn replay(existing: Run, hash: &str) -> Result<Response, ApiError> {
    if existing.body_hash != hash {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            format!(
                "the Idempotency-Key was used for run {} with a different body",
                existing.id
            ),
        ));
    }
    Ok((StatusCode::OK, Json(view(existing))).into_response())
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SubmitQuery {
    /// Check the run as a submit would (hooks included) and answer the
    /// pod it would make, queueing nothing.
    #[serde(default)]
    dry_run: bool,
}

/// What a dry run would have made.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DryRun {
    /// The pod, redacted as `GET /v1/runs/{id}/pod` shows it.
    #[schema(value_type = Object)]
    pod: serde_json::Value,
    /// What each hook changed.
    changes: Vec<HookChanges>,
}

/// Submit a run: its render and mutate hooks run now, so a denial or a
/// broken hook is the answer and nothing is queued. With `dryRun=true`,
/// only the answer: the pod the run would make, or the same error a
/// submit would get.
#[utoipa::path(post, path = "/v1/runs", tag = "runs", request_body = Submit,
    params(SubmitQuery, ("Idempotency-Key" = Option<String>, Header, description = "A retried submit with the same key and body answers the first run; with another body, 422")),
    responses(
        (status = 201, description = "Queued", body = RunView),
        (status = 200, description = "Submitted before with this key (a dry run: the pod it would make, as DryRun)", body = RunView),
        (status = 400, description = "A bad request", body = ErrorBody),
        (status = 401, description = "No token, or not a tenant's", body = ErrorBody),
        (status = 403, description = "Denied by a policy hook; a parameter, application, namespace or callback host the caller may not use", body = ErrorBody),
        (status = 404, description = "No such application", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "An unknown field, a hook that failed, or a reused key", body = ErrorBody),
        (status = 429, description = "Over the tenant's submits per minute; `Retry-After` says when to retry", body = ErrorBody),
        (status = 503, description = "The store does not answer", body = ErrorBody),
    ))]
pub(crate) async fn submit(
    Shared_(shared): App,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    query: Result<Query<SubmitQuery>, QueryRejection>,
    body: Result<Json<Submit>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let tenant = caller.tenant.as_ref().and_then(|t| shared.config.tenant(t));
    if let (Some(name), Some(per_minute)) =
        (&caller.tenant, tenant.and_then(|t| t.submits_per_minute))
    {
        // Dry runs (a form checking its edits) have a budget of their own,
        // so that checking never uses up the submits.
        let taken = if query.dry_run {
            let bucket: Arc<str> = format!("{name}\ndry runs").into();
            shared.rates.take(
                &bucket,
                per_minute.get().saturating_mul(DRY_RUNS_PER_SUBMIT),
            )
        } else {
            shared.rates.take(name, per_minute.get())
        };
        if let Err(wait) = taken {
            return Ok(too_many(wait));
        }
    }
    if query.dry_run {
        return queue(&shared, &caller, None, body).await;
    }
    let start = std::time::Instant::now();
    // A tenant's keys are its own: another's cannot find its runs by them.
    let key = idempotency_key(&headers)?.map(|k| match &caller.tenant {
        Some(t) => format!("{t}\n{k}"),
        None => k,
    });
    let answer = queue(&shared, &caller, Some(key), body).await;
    shared.metrics.submitted(start.elapsed());
    answer
}

/// Prepares the run and queues it; `key` is `None` for a dry run (which
/// queues nothing) and holds the idempotency key otherwise.
async fn queue(
    shared: &Arc<Shared>,
    caller: &Caller,
    key: Option<Option<String>>,
    body: Result<Json<Submit>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let dry_run = key.is_none();
    let key = key.flatten();
    let hash = blake3::hash(&serde_json::to_vec(&body).unwrap_or_default())
        .to_hex()
        .to_string();
    if let Some(key) = &key
        && let Some(existing) = shared.store.by_key(key).await?
    {
        return replay(existing, &hash);
    }
    if let Some(url) = &body.callback_url {
        crate::callback::check(url, &shared.callback_hosts)?;
    }
    if let Some(tenant) = caller.tenant.as_ref().and_then(|t| shared.config.tenant(t)) {
        if !tenant.may_run(&body.application) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "not-allowed",
                format!(
                    "application: tenant {} may not run {:?}",
                    tenant.name.value, body.application
                ),
            ));
        }
        podrun::pipeline::check_runtime(
            &shared.config,
            Some(&tenant.name.value.0),
            shared.runtime.name(),
        )
        .map_err(|e| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "local-runtime-not-allowed",
                e.to_string(),
            )
        })?;
    }
    if shared.config.application(&body.application).is_err() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown-application",
            format!("no application {:?} in the config", body.application),
        ));
    }
    let arguments = match (&body.command, &body.args) {
        (Some(_), Some(_)) => return Err(ApiError::bad("give command or args, not both")),
        (Some(command), None) => podrun::command::shell_words(command)
            .map_err(|e| ApiError::bad(format!("command: {e}")))?,
        (None, Some(args)) => args.clone(),
        (None, None) => Vec::new(),
    };
    let request = Request {
        application: body.application.clone(),
        arguments,
        params: body.params.clone().into_iter().collect(),
        namespace: body.namespace.clone(),
        run_id: Some(podrun::run_id::new()),
        timeout: body.timeout,
        image: body.image.clone(),
        pod_override: body.pod_override.clone(),
        resources: body
            .resources
            .as_ref()
            .map(|r| podrun::pipeline::ResourceRequest {
                requests: (&r.requests).into(),
                limits: (&r.limits).into(),
            }),
        tenant: caller.tenant.as_deref().map(str::to_string),
        explain: Explain::Redacted,
        ..Request::default()
    };
    // Render and mutate now: a denial or a broken hook is the submitter's
    // answer, and nothing is queued.
    let hooks = std::time::Instant::now();
    let prepared = podrun::pipeline::prepare(&shared.hooks, &shared.config, &request).await;
    shared.metrics.prepared(hooks.elapsed());
    let prepared = prepared.map_err(prepare_error)?;
    let changes = HookChanges::of(&prepared);
    if dry_run {
        let mut pod = serde_json::to_value(&prepared.pod).unwrap_or_default();
        podrun::timeline::redact(&mut pod);
        return Ok(Json(DryRun { pod, changes }).into_response());
    }
    let pod = serde_json::to_string(&prepared.pod).unwrap_or_default();
    let context = serde_json::to_string(&prepared.context).unwrap_or_default();
    let changes = serde_json::to_string(&changes).unwrap_or_default();
    let new = NewRun {
        id: &prepared.run_id,
        application: &body.application,
        idempotency_key: key.as_deref(),
        body_hash: &hash,
        pod: &pod,
        context: &context,
        stdin: body.stdin.as_deref().map(str::as_bytes),
        callback_url: body.callback_url.as_deref(),
        tenant: caller.tenant.as_deref(),
        changes: Some(&changes),
    };
    let run = match shared.store.insert(&new).await? {
        Inserted::Created(run) => run,
        // The same key, submitted at the same time: one run.
        Inserted::Existing(existing) => return replay(existing, &hash),
    };
    shared.queued.notify_one();
    shared.changed();
    let location = HeaderValue::from_str(&format!("/v1/runs/{}", run.id)).ok();
    let mut response = (StatusCode::CREATED, Json(view(run))).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

fn prepare_error(e: PipelineError) -> ApiError {
    let message = e.to_string();
    match &e {
        PipelineError::NotAllowed { parameter, .. } => {
            // The config's names, as the request's fields are spelled.
            let refused = ApiError::new(StatusCode::FORBIDDEN, "not-allowed", message);
            return match *parameter {
                "pod-override" => refused.on("podOverride"),
                // Not a field: the server's.
                "runtime" => refused,
                field => refused.on(field),
            };
        }
        PipelineError::Parameter { name, .. } => {
            return ApiError::bad(message).on(format!("params.{name}"));
        }
        _ => {}
    }
    match e.exit_code() {
        Code::Denied => ApiError::new(StatusCode::FORBIDDEN, "denied", message),
        Code::HookFailed => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "hook-failed", message),
        _ => ApiError::bad(message),
    }
}

/// A run.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs", params(("id" = String, Path, description = "The run id")),
    responses(
        (status = 200, description = "The run", body = RunView),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 503, description = "The store does not answer", body = ErrorBody),
    ))]
pub(crate) async fn show(
    Shared_(shared): App,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    let run = find(&shared, &caller, &id).await?;
    let gaps = match run.log_gaps {
        0 => Vec::new(),
        _ => shared.store.gaps(&id).await?,
    };
    Ok(Json(view(run).with_gaps(gaps)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only runs in this state.
    state: Option<String>,
    /// Only runs of this application.
    application: Option<String>,
    /// Only runs submitted at or after this time (RFC 3339).
    since: Option<String>,
    /// Runs in the page: 1 to 500, 50 if not given.
    limit: Option<i64>,
    /// Where the previous page ended (its `next`).
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Page {
    runs: Vec<RunView>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// Runs, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(ListQuery),
    responses(
        (status = 200, description = "A page of runs", body = Page),
        (status = 400, description = "A bad filter", body = ErrorBody),
        (status = 503, description = "The store does not answer", body = ErrorBody),
    ))]
pub(crate) async fn list(
    Shared_(shared): App,
    Extension(caller): Extension<Caller>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let Query(q) = query?;
    let state = q
        .state
        .map(|s| s.parse::<State>())
        .transpose()
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let since = q
        .since
        .map(|s| {
            s.parse::<jiff::Timestamp>()
                .map(|t| t.as_millisecond())
                .map_err(|e| ApiError::bad(format!("since: {e}")))
        })
        .transpose()?;
    let before = q
        .cursor
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::bad("cursor: not a cursor from this API"))
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad(format!("limit: 1 to {MAX_PAGE}")));
    }
    let runs = shared
        .store
        .list(&Filter {
            state,
            application: q.application,
            since,
            before,
            limit: limit + 1,
            tenant: caller.tenant.as_deref().map(str::to_string),
        })
        .await?;
    let more = runs.len() as i64 > limit;
    let runs: Vec<Run> = runs.into_iter().take(limit as usize).collect();
    let next = more
        .then(|| runs.last().map(|r| r.seq.to_string()))
        .flatten();
    Ok(Json(Page {
        runs: runs.into_iter().map(view).collect(),
        next,
    }))
}

/// Cancel a run: a queued one ends at once, a running one once its pod
/// has stopped with its grace period.
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs", params(("id" = String, Path, description = "The run id")),
    responses(
        (status = 202, description = "Cancelled, or being cancelled", body = RunView),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run has ended", body = ErrorBody),
        (status = 503, description = "The store does not answer", body = ErrorBody),
    ))]
pub(crate) async fn cancel(
    Shared_(shared): App,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let run = find(&shared, &caller, &id).await?;
    if run.state.is_final() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "finished",
            format!("run {id} has ended ({})", run.state),
        ));
    }
    let cancelled = RunResult {
        run_id: id.clone(),
        runtime: shared.runtime.name().into(),
        outcome: "interrupted".into(),
        reason: Reason::Request.name().into(),
        message: "cancelled before it started".into(),
        exit_code: Reason::Request.exit_code().number(),
        ..RunResult::default()
    };
    let text = serde_json::to_string(&cancelled).unwrap_or_default();
    if shared.store.cancel_queued(&id, &text).await? {
        shared.metrics.run_ended(State::Cancelled);
    } else {
        // A worker has it: the flag first, then the worker's handle (a
        // worker registers its handle, then reads the flag).
        shared.store.request_cancel(&id).await?;
        let handle = shared
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .map(|h| h.cancel.clone());
        // Held by another server: it hears of the cancel at its next
        // lease renewal.
        if let Some(cancel) = handle {
            cancel.cancel(Reason::Request);
        }
    }
    shared.changed();
    let run = find(&shared, &caller, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(view(run))).into_response())
}

/// Forget an ended run: its record and log are deleted.
#[utoipa::path(delete, path = "/v1/runs/{id}", tag = "runs", params(("id" = String, Path, description = "The run id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run has not ended", body = ErrorBody),
        (status = 503, description = "The store does not answer", body = ErrorBody),
    ))]
pub(crate) async fn release(
    Shared_(shared): App,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let run = find(&shared, &caller, &id).await?;
    if !run.state.is_final() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not-finished",
            format!("run {id} is {}: cancel it first", run.state),
        ));
    }
    shared.store.release(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
