//! What a caller may submit: its applications, their parameters, and the
//! runtime parameters it may set (the page builds its form from these).

use axum::Json;
use axum::extract::{Extension, State as Shared_};
use podrun::config::Allowed;
use serde::Serialize;
use utoipa::ToSchema;

use super::App;
use super::auth::Caller;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Applications {
    applications: Vec<ApplicationView>,
}

/// An application as its caller may run it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApplicationView {
    name: String,
    /// Its parameters (`params`); one without a default is required.
    parameters: Vec<ParameterView>,
    /// Whether the caller may set the command.
    command: bool,
    /// Whether the caller may name the namespace.
    namespace: bool,
    /// The namespaces a tenant may name.
    #[serde(skip_serializing_if = "Option::is_none")]
    namespaces: Option<Vec<String>>,
    /// Whether the caller may set the timeout.
    timeout: bool,
    /// The longest timeout, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_timeout_seconds: Option<u64>,
    /// Whether the caller may set the image.
    image: bool,
    /// The most cpu and memory the caller may ask for (`resources`), when
    /// it may ask at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<ResourceBounds>,
    /// Where a pod override (`podOverride`) may change the pod: dotted
    /// fields, one list per party (the application's, the tenant's); a
    /// field is open when every list holds it or a field around it. Empty:
    /// no override.
    pod_override: Vec<Vec<String>>,
}

/// Upper bounds on what a caller may ask for.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ResourceBounds {
    /// Millicores; absent: cpu may not be asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_cpu_millis: Option<u64>,
    /// Bytes; absent: memory may not be asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_memory_bytes: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ParameterView {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    default: Option<String>,
}

/// The applications the caller may run.
#[utoipa::path(get, path = "/v1/applications", tag = "runs",
    responses((status = 200, description = "The caller's applications", body = Applications)))]
pub(crate) async fn list(
    Shared_(shared): App,
    Extension(caller): Extension<Caller>,
) -> Json<Applications> {
    let config = &shared.config;
    let tenant = caller.tenant.as_deref().and_then(|t| config.tenant(t));
    let applications = config
        .applications
        .iter()
        .filter(|app| tenant.is_none_or(|t| t.may_run(&app.name.value.0)))
        .map(|app| {
            let allowed = Allowed::of(
                app.runtime_parameters.as_ref(),
                tenant.and_then(|t| t.runtime_parameters.as_ref()),
            );
            ApplicationView {
                name: app.name.value.0.clone(),
                parameters: app
                    .parameters
                    .iter()
                    .map(|p| ParameterView {
                        name: p.name.clone(),
                        default: p.default.clone(),
                    })
                    .collect(),
                command: allowed.command,
                namespace: allowed.namespace,
                // A tenant names one of its own, or else only the
                // application's (as the pipeline checks).
                namespaces: tenant.map(|t| match &t.namespaces {
                    Some(ns) => ns.iter().map(|n| n.0.clone()).collect(),
                    None => app.namespace.iter().map(|n| n.0.clone()).collect(),
                }),
                timeout: allowed.timeout,
                max_timeout_seconds: allowed.max_timeout,
                image: allowed.image,
                resources: allowed.resources.map(|b| ResourceBounds {
                    max_cpu_millis: b.cpu_millis,
                    max_memory_bytes: b.memory_bytes,
                }),
                pod_override: allowed
                    .pod_override
                    .iter()
                    .map(|fields| fields.iter().map(|f| f.0.join(".")).collect())
                    .collect(),
            }
        })
        .collect();
    Json(Applications { applications })
}
