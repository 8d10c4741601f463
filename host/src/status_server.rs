//! `--status-addr`: the pod's health and state as JSON while it runs.
//!
//! `GET /healthy` answers 200 `{"healthy": true}` while the pod runs and all
//! its containers are ready, 503 `{"healthy": false}` otherwise. `GET
//! /status` gives the phase, each container's state, and for a sequenced pod
//! its steps (`null` otherwise).

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

/// The latest pod, shared with the server.
pub type Shared = Arc<RwLock<Option<Pod>>>;

/// Starts the server on `addr`.
pub async fn serve(addr: SocketAddr, pod: Shared) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = Router::new()
        .route("/healthy", get(healthy))
        .route("/status", get(status))
        .with_state(pod);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(())
}

fn is_healthy(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    running && ready
}

async fn healthy(State(pod): State<Shared>) -> (StatusCode, Json<Value>) {
    let ok = pod
        .read()
        .ok()
        .and_then(|p| p.as_ref().map(is_healthy))
        .unwrap_or(false);
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!({ "healthy": ok })))
}

async fn status(State(pod): State<Shared>) -> Json<Value> {
    let pod = pod.read().ok().and_then(|p| p.clone());
    let containers = crate::result::containers(pod.as_ref());
    let status = pod.as_ref().and_then(|p| p.status.as_ref());
    let ready = |name: &str| {
        pod.as_ref().is_some_and(|p| {
            crate::runtime::container_statuses(p).any(|c| c.name == name && c.ready)
        })
    };
    let containers: Vec<Value> = containers
        .iter()
        .map(|c| {
            json!({"name": c.name, "init": c.init, "state": c.state, "ready": ready(&c.name),
                        "exitCode": c.exit_code, "reason": c.reason, "restartCount": c.restarts})
        })
        .collect();
    Json(json!({
        "phase": status.and_then(|s| s.phase.clone()),
        "healthy": pod.as_ref().is_some_and(is_healthy),
        "containers": containers,
        "steps": pod.as_ref().and_then(crate::steps::steps),
    }))
}
