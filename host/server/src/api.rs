//! The HTTP API: JSON in camelCase, errors with a stable code.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State as Shared_};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use podrun::cancel::Reason;
use podrun::exit::Code;
use podrun::pipeline::{PipelineError, Request};
use podrun::result::RunResult;
use serde::{Deserialize, Serialize};

use crate::Shared;
use crate::state::State;
use crate::store::{Filter, Inserted, NewRun, Run, StoreError};

/// The largest request body accepted (413 above it): room for a command,
/// parameters and a stdin of up to about a megabyte.
pub const MAX_BODY: usize = 1 << 20;
/// The longest idempotency key accepted.
const MAX_KEY: usize = 255;
/// Runs in one page of a list, at most.
const MAX_PAGE: i64 = 500;

type App = Shared_<Arc<Shared>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/runs", post(submit).get(list))
        .route("/v1/runs/{id}", get(show).delete(release))
        .route("/v1/runs/{id}/logs", get(logs))
        .route("/v1/runs/{id}/result", get(result))
        .route("/v1/runs/{id}/cancel", post(cancel))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

/// An error answer: `{"error": {"code": …, "message": …}}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad-request", message)
    }

    fn no_run(id: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "run-not-found",
            format!("no run {id}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::warn!("{e}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            e.to_string(),
        )
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        let code = match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => "body-too-large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "not-json",
            _ => "bad-json",
        };
        ApiError::new(e.status(), code, e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::bad(e.body_text())
    }
}

/// `POST /v1/runs`'s body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Submit {
    application: String,
    /// Split as `podrun run -c` splits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    args: Option<Vec<String>>,
    #[serde(default)]
    params: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    /// Input for the `worker` container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stdin: Option<String>,
    /// Where the run's end is POSTed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    callback_url: Option<String>,
}

/// A run as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunView {
    id: String,
    application: String,
    state: State,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
    cancel_requested: bool,
    /// The server that runs it, or ran it last.
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<String>,
    /// The verdict, as `podrun run -o json` prints it, once finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<serde_json::Value>,
    log: LogInfo,
    /// How the delivery of its end to its callback URL goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    callback: Option<CallbackInfo>,
    links: Links,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CallbackInfo {
    /// `pending`, `delivered` or `failed` (after every try failed).
    state: String,
    attempts: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LogInfo {
    bytes: i64,
    /// Whether the log reached the size cap and the rest was not kept.
    truncated: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Links {
    #[serde(rename = "self")]
    this: String,
    logs: String,
    result: String,
    cancel: String,
}

fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

pub(crate) fn view(run: Run) -> RunView {
    let this = format!("/v1/runs/{}", run.id);
    RunView {
        links: Links {
            logs: format!("{this}/logs"),
            result: format!("{this}/result"),
            cancel: format!("{this}/cancel"),
            this,
        },
        id: run.id,
        application: run.application,
        state: run.state,
        created_at: time(run.created_at),
        started_at: run.started_at.map(time),
        finished_at: run.finished_at.map(time),
        cancel_requested: run.cancel_requested,
        server: run.owner,
        result: run.result.and_then(|r| serde_json::from_str(&r).ok()),
        log: LogInfo {
            bytes: run.log_bytes,
            truncated: run.log_truncated,
        },
        callback: run.callback_state.map(|state| CallbackInfo {
            state,
            attempts: run.callback_attempts,
        }),
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

async fn submit(
    Shared_(shared): App,
    headers: HeaderMap,
    body: Result<Json<Submit>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let key = idempotency_key(&headers)?;
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
        ..Request::default()
    };
    // Render and mutate now: a denial or a broken hook is the submitter's
    // answer, and nothing is queued.
    let prepared = podrun::pipeline::prepare(&shared.hooks, &shared.config, &request)
        .await
        .map_err(prepare_error)?;
    let pod = serde_json::to_string(&prepared.pod).unwrap_or_default();
    let context = serde_json::to_string(&prepared.context).unwrap_or_default();
    let new = NewRun {
        id: &prepared.run_id,
        application: &body.application,
        idempotency_key: key.as_deref(),
        body_hash: &hash,
        pod: &pod,
        context: &context,
        stdin: body.stdin.as_deref().map(str::as_bytes),
        callback_url: body.callback_url.as_deref(),
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
    match e.exit_code() {
        Code::Denied => ApiError::new(StatusCode::FORBIDDEN, "denied", message),
        Code::HookFailed => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "hook-failed", message),
        _ => ApiError::bad(message),
    }
}

async fn show(Shared_(shared): App, Path(id): Path<String>) -> Result<Json<RunView>, ApiError> {
    let run = shared
        .store
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::no_run(&id))?;
    Ok(Json(view(run)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    application: Option<String>,
    since: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    runs: Vec<RunView>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

async fn list(
    Shared_(shared): App,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    offset: Option<i64>,
    #[serde(default)]
    follow: bool,
}

/// Lines read from the store at a time.
const LOG_PAGE: i64 = 1000;

async fn logs(
    Shared_(shared): App,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    shared
        .store
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::no_run(&id))?;
    // A reconnecting event stream says where it was.
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(|last| last.checked_add(1));
    let offset = q.offset.or(resumed).unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::bad("offset: not negative"));
    }
    if q.follow {
        return Ok(Sse::new(follow(shared, id, offset))
            .keep_alive(KeepAlive::default())
            .into_response());
    }
    let (text, next) = read_log(&shared, &id, offset, None).await?;
    let mut response = plain(text);
    response
        .headers_mut()
        .insert("podrun-next-offset", HeaderValue::from(next));
    Ok(response)
}

/// The log from `offset` as text (only `container`'s lines if given), and
/// the offset after it.
async fn read_log(
    shared: &Shared,
    id: &str,
    mut offset: i64,
    container: Option<&str>,
) -> Result<(Vec<u8>, i64), ApiError> {
    let mut text = Vec::new();
    loop {
        let lines = shared.store.logs(id, offset, LOG_PAGE).await?;
        for l in &lines {
            if container.is_none_or(|c| c == l.container) {
                text.extend_from_slice(&l.line);
                text.push(b'\n');
            }
            offset = l.seq + 1;
        }
        if (lines.len() as i64) < LOG_PAGE {
            return Ok((text, offset));
        }
    }
}

#[derive(Serialize)]
struct LineEvent<'a> {
    container: &'a str,
    line: std::borrow::Cow<'a, str>,
}

/// The log as server-sent events from `offset` (each event's id is its
/// line's offset), then an `end` event once the run has ended and every
/// line is sent.
fn follow(
    shared: Arc<Shared>,
    id: String,
    offset: i64,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let changes = shared.changes.subscribe();
    futures::stream::unfold(
        (shared, id, offset, changes, false),
        |(shared, id, mut offset, mut changes, ended)| async move {
            if ended {
                return None;
            }
            loop {
                // Marked before reading: a change after the read wakes us.
                changes.borrow_and_update();
                let finished = match shared.store.get(&id).await {
                    Ok(Some(run)) => run.state.is_final().then_some(run.state),
                    Ok(None) => Some(State::Lost),
                    Err(_) => None,
                };
                match shared.store.logs(&id, offset, LOG_PAGE).await {
                    Ok(lines) if !lines.is_empty() => {
                        let mut events = Vec::with_capacity(lines.len());
                        for l in &lines {
                            let data = serde_json::to_string(&LineEvent {
                                container: &l.container,
                                line: String::from_utf8_lossy(&l.line),
                            })
                            .unwrap_or_default();
                            events.push(Ok(Event::default()
                                .id(l.seq.to_string())
                                .event("line")
                                .data(data)));
                            offset = l.seq + 1;
                        }
                        let batch = futures::stream::iter(events);
                        return Some((batch, (shared, id, offset, changes, false)));
                    }
                    // The state was read before the lines: a run seen ended
                    // has no line after the ones just read.
                    Ok(_) if finished.is_some() => {
                        let state = finished.map(State::as_str).unwrap_or("lost");
                        let end = Event::default()
                            .event("end")
                            .data(serde_json::json!({"state": state}).to_string());
                        let batch = futures::stream::iter(vec![Ok(end)]);
                        return Some((batch, (shared, id, offset, changes, true)));
                    }
                    _ => {}
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), changes.changed()).await;
            }
        },
    )
    .flatten()
}

async fn result(Shared_(shared): App, Path(id): Path<String>) -> Result<Response, ApiError> {
    shared
        .store
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::no_run(&id))?;
    let (text, _) = read_log(&shared, &id, 0, Some("worker")).await?;
    Ok(plain(text))
}

/// Container output as it was printed: text, in no particular encoding.
fn plain(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], bytes).into_response()
}

async fn cancel(Shared_(shared): App, Path(id): Path<String>) -> Result<Response, ApiError> {
    let run = shared
        .store
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::no_run(&id))?;
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
    if !shared.store.cancel_queued(&id, &text).await? {
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
    let run = shared
        .store
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::no_run(&id))?;
    Ok((StatusCode::ACCEPTED, Json(view(run))).into_response())
}

async fn release(Shared_(shared): App, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let run = shared
        .store
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::no_run(&id))?;
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

async fn ready(Shared_(shared): App) -> Result<&'static str, ApiError> {
    shared.store.ping().await?;
    Ok("ready\n")
}

async fn metrics(Shared_(shared): App) -> Result<Response, ApiError> {
    let counts = shared.store.counts().await?;
    let mut text =
        String::from("# HELP podrun_runs Runs in the store by state.\n# TYPE podrun_runs gauge\n");
    for (state, n) in counts {
        text.push_str(&format!("podrun_runs{{state=\"{state}\"}} {n}\n"));
    }
    text.push_str(&format!(
        "# HELP podrun_run_slots_free Runs that could start now.\n# TYPE podrun_run_slots_free gauge\npodrun_run_slots_free {}\n",
        shared.slots.available_permits()
    ));
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(response)
}
