//! How the API shows a run.

use serde::Serialize;
use utoipa::ToSchema;

use crate::state::State;
use crate::store::{Gap, Run};

/// A run as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunView {
    id: String,
    application: String,
    /// The tenant that submitted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    state: State,
    /// RFC 3339.
    created_at: String,
    /// When a server took it (`starting`).
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    /// When its pod was started (created, or found): `running`.
    #[serde(skip_serializing_if = "Option::is_none")]
    running_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
    cancel_requested: bool,
    /// The server that runs it, or ran it last.
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<String>,
    /// The verdict, as `podrun run -o json` prints it, once finished:
    /// `outcome`, `reason`, `message`, `exitCode`, `retryable`,
    /// `evidence`, each container's last state, timings.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    result: Option<serde_json::Value>,
    log: LogInfo,
    /// How the delivery of its end to its callback URL goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    callback: Option<CallbackInfo>,
    links: Links,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CallbackInfo {
    /// `pending`, `delivered` or `failed` (after every try failed).
    state: String,
    attempts: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct LogInfo {
    bytes: i64,
    /// Whether the log reached the size cap and the rest was not kept.
    truncated: bool,
    /// Places where lines may be missing (a log stream given up, or one
    /// that could not be shown to continue where it was cut).
    gap_count: i64,
    /// Those places (given for one run, not in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    gaps: Option<Vec<GapView>>,
}

/// A place in a run's log where lines may be missing.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GapView {
    /// The number of lines before it: it lies before line `line` (from 0).
    line: i64,
    /// The container whose lines may be missing, when it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<String>,
    message: String,
}

impl From<Gap> for GapView {
    fn from(gap: Gap) -> Self {
        GapView {
            line: gap.at,
            container: gap.container,
            message: gap.message,
        }
    }
}

impl RunView {
    /// The view with the places where its log may miss lines.
    pub(crate) fn with_gaps(mut self, gaps: Vec<Gap>) -> Self {
        self.log.gaps = Some(gaps.into_iter().map(GapView::from).collect());
        self
    }
}

#[derive(Debug, Serialize, ToSchema)]
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
        tenant: run.tenant,
        state: run.state,
        created_at: time(run.created_at),
        started_at: run.started_at.map(time),
        running_at: run.running_at.map(time),
        finished_at: run.finished_at.map(time),
        cancel_requested: run.cancel_requested,
        server: run.owner,
        result: run.result.and_then(|r| serde_json::from_str(&r).ok()),
        log: LogInfo {
            bytes: run.log_bytes,
            truncated: run.log_truncated,
            gap_count: run.log_gaps,
            gaps: None,
        },
        callback: run.callback_state.map(|state| CallbackInfo {
            state,
            attempts: run.callback_attempts,
        }),
    }
}
