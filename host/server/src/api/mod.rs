//! The HTTP API: JSON in camelCase, errors with a stable code, and an
//! OpenAPI document generated from the handlers (`/openapi.json`).
//!
//! - `runs`: submit, show, list, cancel, release;
//! - `logs`: a run's log, followed live, and its result;
//! - `request`: the pod a run made and what it asked for;
//! - `applications`: what a caller may submit;
//! - `view`: how a run is shown;
//! - `web`: the page, and the security headers of every answer.

mod applications;
mod auth;
mod logs;
mod request;
mod runs;
mod view;
mod web;

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, State as Shared_};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Shared;
use crate::store::StoreError;

pub(crate) use view::view;

/// The largest request body accepted (413 above it): room for a command,
/// parameters and a stdin of up to about a megabyte.
pub const MAX_BODY: usize = 1 << 20;

type App = Shared_<Arc<Shared>>;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "podrun serve",
        description = "Runs submitted over HTTP: each runs a command in a pod and reports how it went."
    ),
    tags((name = "runs", description = "Runs and their logs"), (name = "server", description = "Health and metrics"))
)]
struct Doc;

/// The routes, and the OpenAPI document made from their handlers.
fn routes() -> (Router<Arc<Shared>>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(Doc::openapi())
        .routes(routes!(runs::submit, runs::list))
        .routes(routes!(runs::show, runs::release))
        .routes(routes!(runs::cancel))
        .routes(routes!(logs::logs))
        .routes(routes!(logs::result))
        .routes(routes!(request::pod))
        .routes(routes!(applications::list))
        .routes(routes!(healthz))
        .routes(routes!(ready))
        .routes(routes!(metrics))
        .split_for_parts()
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let (routes, doc) = routes();
    let doc = Arc::new(doc);
    routes
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc) }
            }),
        )
        .route("/", get(web::index))
        .route("/ui/app.js", get(web::script))
        .route("/ui/app.css", get(web::style))
        .route("/favicon.ico", get(web::icon))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn(web::secure))
        .with_state(shared)
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
struct ErrorDetail {
    /// Stable: what a client matches on (`bad-json`, `run-not-found`…).
    code: String,
    /// For people.
    message: String,
    /// The request's field it is about, when it is about one (`params.NAME`,
    /// `namespace`, `timeout`, `image`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

/// An error answer: `{"error": {"code": …, "message": …}}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// The same error, about the request's `field`.
    pub(crate) fn on(self, field: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.into()),
            ..self
        }
    }

    pub(crate) fn bad(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad-request", message)
    }

    pub(crate) fn no_run(id: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "run-not-found",
            format!("no run {id}"),
        )
    }
}

pub(crate) use auth::RateLimits;

/// Run `id`, or the 404 for it: also for another tenant's run, so that
/// ids cannot be probed.
pub(crate) async fn find(
    shared: &Shared,
    caller: &auth::Caller,
    id: &str,
) -> Result<crate::store::Run, ApiError> {
    shared
        .store
        .get(id)
        .await?
        .filter(|run| caller.owns(run.tenant.as_deref()))
        .ok_or_else(|| ApiError::no_run(id))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.into(),
                message: self.message,
                field: self.field,
            },
        };
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

/// The server is up.
#[utoipa::path(get, path = "/healthz", tag = "server", responses((status = 200, description = "Up", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// The server can serve: its store answers.
#[utoipa::path(get, path = "/readyz", tag = "server", responses(
    (status = 200, description = "Ready", body = String, content_type = "text/plain"),
    (status = 503, description = "The store does not answer", body = ErrorBody),
))]
async fn ready(Shared_(shared): App) -> Result<&'static str, ApiError> {
    shared.store.ping().await?;
    Ok("ready\n")
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "server", responses(
    (status = 200, description = "In OpenMetrics' text format", body = String, content_type = "application/openmetrics-text"),
    (status = 503, description = "The store does not answer", body = ErrorBody),
))]
async fn metrics(Shared_(shared): App) -> Result<Response, ApiError> {
    let counts = shared.store.counts().await?;
    let text = shared
        .metrics
        .text(&counts, shared.slots.available_permits());
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(response)
}
