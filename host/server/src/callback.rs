//! Callbacks: a run's end POSTed to the URL its submitter gave, retried
//! with back-off, never holding the run up. Deliveries are kept in the
//! store, so another server, or this one restarted, finishes what one
//! began.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{StatusCode, Uri};
use tokio::sync::Semaphore;

use crate::Shared;
use crate::api::{ApiError, view};
use crate::store::{Callback, now};

/// Tries per callback, at most: 1 s, 2 s, 4 s… apart (about 8.5 minutes
/// in all).
pub(crate) const MAX_ATTEMPTS: i64 = 10;

/// How long one try may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// How long a taken callback is held from other servers: longer than a
/// try, so that it is never sent twice at once.
const HOLD: Duration = Duration::from_secs(60);

/// Deliveries at once.
const AT_ONCE: usize = 8;

/// The longest URL taken.
const URL_LIMIT: usize = 2048;

/// Checks a submitted callback URL: http or https, no credentials, and a
/// host the operator allows (`*` allows any; a host alone allows any of
/// its ports).
pub(crate) fn check(url: &str, allowed: &[String]) -> Result<(), ApiError> {
    if url.len() > URL_LIMIT {
        return Err(ApiError::bad(format!(
            "callbackUrl: longer than {URL_LIMIT} bytes"
        )));
    }
    let uri: Uri = url
        .parse()
        .map_err(|e| ApiError::bad(format!("callbackUrl: not a URL: {e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(ApiError::bad("callbackUrl: an http:// or https:// URL"));
    }
    let Some(authority) = uri.authority() else {
        return Err(ApiError::bad("callbackUrl: no host"));
    };
    if authority.as_str().contains('@') {
        return Err(ApiError::bad("callbackUrl: no credentials in the URL"));
    }
    let host = authority.host().to_ascii_lowercase();
    let with_port = authority.as_str().to_ascii_lowercase();
    let ok = allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(&host) || a.eq_ignore_ascii_case(&with_port));
    if !ok {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "callback-not-allowed",
            format!("callbackUrl: this server does not call {host} back (see --callback-host)"),
        ));
    }
    Ok(())
}

/// Delivers due callbacks for as long as the server runs.
pub(crate) async fn deliver(shared: Arc<Shared>) {
    let places = Arc::new(Semaphore::new(AT_ONCE));
    loop {
        let Ok(place) = places.clone().acquire_owned().await else {
            return;
        };
        match shared.store.due_callback(HOLD).await {
            Ok(Some(callback)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    one(&shared, callback).await;
                    drop(place);
                });
            }
            Ok(None) => {
                drop(place);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                drop(place);
                tracing::warn!("cannot read due callbacks: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn one(shared: &Shared, callback: Callback) {
    let run = match shared.store.get(&callback.id).await {
        Ok(Some(run)) => run,
        // Released meanwhile: nothing to say.
        Ok(None) => return,
        // Due again once the hold runs out.
        Err(e) => return tracing::warn!("cannot read run {}: {e}", callback.id),
    };
    let body = serde_json::to_vec(&view(run)).unwrap_or_default();
    let url = callback.url.clone();
    // Allowed when submitted, but maybe not by this server, or not now.
    let allowed = check(&url, &shared.callback_hosts).is_ok();
    let sent = if allowed {
        tokio::task::spawn_blocking(move || post(&url, body))
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
    } else {
        Err("its host is not one this server calls back".into())
    };
    let (state, next) = match sent {
        Ok(()) => ("delivered", None),
        Err(why) if callback.attempt >= MAX_ATTEMPTS || !allowed => {
            tracing::warn!(
                "giving up the callback of run {} after {} tries: {why}",
                callback.id,
                callback.attempt
            );
            ("failed", None)
        }
        Err(why) => {
            tracing::info!(
                "the callback of run {} failed: {why}; retrying",
                callback.id
            );
            let wait = 1000_i64 << (callback.attempt - 1).clamp(0, 20);
            ("pending", Some(now() + wait))
        }
    };
    shared.metrics.callback_tried(match (state, next) {
        ("delivered", _) => "delivered",
        (_, Some(_)) => "retrying",
        _ => "given-up",
    });
    if let Err(e) = shared
        .store
        .callback_tried(&callback.id, callback.attempt, state, next)
        .await
    {
        tracing::warn!("cannot record the callback of run {}: {e}", callback.id);
    }
    shared.changed();
}

/// POSTs `body`: a 2xx answer delivers it. Redirects are not followed:
/// the operator allowed the host named, not wherever it points.
fn post(url: &str, body: Vec<u8>) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_connect(Some(Duration::from_secs(3)))
        .timeout_global(Some(TIMEOUT))
        .user_agent(concat!("podrun/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let response = agent
        .post(url)
        .header("content-type", "application/json")
        .send(&body[..])
        .map_err(|e| e.to_string())?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("answered {status}"))
    }
}
