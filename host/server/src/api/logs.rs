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
use super::view::GapView;
use super::{ApiError, App, ErrorBody, find};
use crate::Shared;
use crate::state::State;
use crate::store::Gap;

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
/// line's offset), `gap` events where lines may be missing (`{"line",
/// "container", "message"}`, no id) and an `end` event with the final
/// state.
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

/// Where a follower is.
struct Following {
    shared: Arc<Shared>,
    id: String,
    /// The next line to send.
    offset: i64,
    changes: tokio::sync::watch::Receiver<u64>,
    /// Gaps read and not yet sent, in order.
    gaps: std::collections::VecDeque<Gap>,
    /// The number of the next gap to read.
    next_gap: i64,
    /// The line the follower started at: gaps before it are not its.
    from: i64,
    ended: bool,
}

impl Following {
    /// Reads the gaps stored since the last read; whether it could. Each
    /// is stored with the lines before it, so once those lines have been
    /// read, so can it be.
    async fn read_gaps(&mut self) -> bool {
        match self.shared.store.gaps_from(&self.id, self.next_gap).await {
            Ok(gaps) => {
                for (seq, gap) in gaps {
                    self.next_gap = seq + 1;
                    self.gaps.push_back(gap);
                }
                true
            }
            Err(_) => false,
        }
    }

    /// `gap` events for the gaps that lie before line `before`.
    fn gaps_before(&mut self, before: i64, events: &mut Vec<Result<Event, Infallible>>) {
        while self.gaps.front().is_some_and(|g| g.at <= before) {
            let Some(gap) = self.gaps.pop_front() else {
                break;
            };
            if gap.at < self.from {
                continue;
            }
            let data = serde_json::to_string(&GapView::from(gap)).unwrap_or_default();
            events.push(Ok(Event::default().event("gap").data(data)));
        }
    }
}

/// The log as server-sent events from `offset` (each `line` event's id is
/// its line's offset), `gap` events where lines may be missing, then an
/// `end` event once the run has ended and every line is sent.
fn follow(
    shared: Arc<Shared>,
    id: String,
    offset: i64,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let changes = shared.changes.subscribe();
    let following = Following {
        shared,
        id,
        offset,
        changes,
        gaps: Default::default(),
        next_gap: 0,
        from: offset,
        ended: false,
    };
    futures::stream::unfold(following, |mut f| async move {
        if f.ended {
            return None;
        }
        loop {
            // Marked before reading: a change after the read wakes us.
            f.changes.borrow_and_update();
            let run = f.shared.store.get(&f.id).await;
            let finished = match &run {
                Ok(Some(run)) => run.state.is_final().then_some(run.state),
                Ok(None) => Some(State::Lost),
                Err(_) => None,
            };
            // Gaps stored (a count, read with the state) and not read yet.
            let unread = matches!(&run, Ok(Some(run)) if run.log_gaps > f.next_gap);
            let mut events = Vec::new();
            match f.shared.store.logs(&f.id, f.offset, LOG_PAGE).await {
                // Gaps are read after the lines, so that every gap among
                // them is in; lines are not sent without their gaps.
                Ok(lines) if !lines.is_empty() && f.read_gaps().await => {
                    events.reserve(lines.len());
                    for l in &lines {
                        f.gaps_before(l.seq, &mut events);
                        let data = serde_json::to_string(&LineEvent {
                            container: &l.container,
                            line: String::from_utf8_lossy(&l.line),
                        })
                        .unwrap_or_default();
                        events.push(Ok(Event::default()
                            .id(l.seq.to_string())
                            .event("line")
                            .data(data)));
                        f.offset = l.seq + 1;
                    }
                    f.gaps_before(f.offset, &mut events);
                    return Some((futures::stream::iter(events), f));
                }
                // The state was read before the lines: a run seen ended
                // has no line after the ones just read.
                Ok(lines) if lines.is_empty() && finished.is_some() && f.read_gaps().await => {
                    f.gaps_before(i64::MAX, &mut events);
                    let state = finished.map(State::as_str).unwrap_or("lost");
                    events.push(Ok(Event::default()
                        .event("end")
                        .data(serde_json::json!({"state": state}).to_string())));
                    f.ended = true;
                    return Some((futures::stream::iter(events), f));
                }
                // Nothing new: a gap said since (a stream given up) is
                // sent now, not with the next line.
                Ok(lines) if lines.is_empty() && unread && f.read_gaps().await => {
                    f.gaps_before(f.offset, &mut events);
                    if !events.is_empty() {
                        return Some((futures::stream::iter(events), f));
                    }
                }
                _ => {}
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), f.changes.changed()).await;
        }
    })
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
