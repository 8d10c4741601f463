//! A run's log: read, followed as server-sent events, and the worker's
//! output as its result.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State as Shared_};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use super::auth::Caller;
use super::{ApiError, App, ErrorBody, find};
use crate::Shared;
use crate::state::State;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogQuery {
    /// The first line to give, from 0 (a follower that reconnects may
    /// send `Last-Event-ID` instead).
    offset: Option<i64>,
    /// Stream lines as server-sent events until the run ends.
    #[serde(default)]
    follow: bool,
}

/// Lines read from the store at a time.
const LOG_PAGE: i64 = 1000;

/// A run's stored log, as text; or, with `follow=true`, server-sent
/// events: `line` events (`{"container", "line"}`, the event id is the
/// line's offset) and an `end` event with the final state.
#[utoipa::path(get, path = "/v1/runs/{id}/logs", tag = "runs",
    params(("id" = String, Path, description = "The run id"), LogQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The last line a reconnecting follower got")),
    responses(
        (status = 200, description = "The log from `offset`; `Podrun-Next-Offset` says where to go on", content((String = "text/plain"), (String = "text/event-stream"))),
        (status = 400, description = "A bad offset", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 503, description = "The store does not answer", body = ErrorBody),
    ))]
pub(crate) async fn logs(
    Shared_(shared): App,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    find(&shared, &caller, &id).await?;
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

/// The output of the run's `worker` container.
#[utoipa::path(get, path = "/v1/runs/{id}/result", tag = "runs",
    params(("id" = String, Path, description = "The run id")),
    responses(
        (status = 200, description = "What the worker printed", body = String, content_type = "text/plain"),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 503, description = "The store does not answer", body = ErrorBody),
    ))]
pub(crate) async fn result(
    Shared_(shared): App,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    find(&shared, &caller, &id).await?;
    let (text, _) = read_log(&shared, &id, 0, Some("worker")).await?;
    Ok(plain(text))
}

/// Container output as it was printed: text, in no particular encoding.
fn plain(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], bytes).into_response()
}
