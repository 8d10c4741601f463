//! Who is asking: a tenant named by its bearer token, or anyone when the
//! config has no tenants. Every request leaves an audit line (tenant,
//! action, outcome), never with its token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State as Shared_};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::Shared;

/// The caller of a request, as the handlers get it.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// Its tenant; `None` only on a server without tenants.
    pub(crate) tenant: Option<Arc<str>>,
}

impl Caller {
    /// Whether the caller may see a run submitted by `tenant`.
    pub(crate) fn owns(&self, tenant: Option<&str>) -> bool {
        match &self.tenant {
            None => true,
            Some(mine) => tenant == Some(&**mine),
        }
    }
}

/// Paths anyone may read: probes and the API's description (and the
/// page's files, `web::PATHS`).
const OPEN: &[&str] = &["/healthz", "/readyz", "/metrics", "/openapi.json"];

/// Authenticates the request, then writes its audit line.
pub(crate) async fn authenticate(
    Shared_(shared): Shared_<Arc<Shared>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if OPEN.contains(&path.as_str()) || super::web::PATHS.contains(&path.as_str()) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let caller = if shared.config.tenants.is_empty() {
        Some(Caller { tenant: None })
    } else {
        bearer(&request)
            .and_then(|token| shared.config.tenant_of_token(token))
            .map(|t| Caller {
                tenant: Some(t.name.value.0.as_str().into()),
            })
    };
    let response = match caller.clone() {
        Some(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        None => unauthenticated(),
    };
    let tenant = match caller {
        Some(Caller { tenant: Some(t) }) => t.to_string(),
        Some(Caller { tenant: None }) => "-".to_string(),
        None => "(unauthenticated)".to_string(),
    };
    let action = format!("{method} {path}");
    let outcome = response.status().as_u16();
    // A server shared by tenants says who did what at the default level.
    if shared.config.tenants.is_empty() {
        tracing::debug!(target: "podrun::audit", tenant, action, outcome, "audit");
    } else {
        tracing::info!(target: "podrun::audit", tenant, action, outcome, "audit");
    }
    response
}

/// The token of an `Authorization: Bearer` header.
fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn unauthenticated() -> Response {
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "this server needs a tenant's token: Authorization: Bearer TOKEN",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Each tenant's submits in the last minute, as token buckets: a tenant
/// may submit its `submits-per-minute` at once, then one every
/// 60/`submits-per-minute` seconds.
#[derive(Default)]
pub(crate) struct RateLimits {
    buckets: Mutex<HashMap<Arc<str>, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimits {
    /// Takes one submit of `tenant`'s `per_minute`; when there is none
    /// left, how long until there is.
    pub(crate) fn take(&self, tenant: &Arc<str>, per_minute: u32) -> Result<(), Duration> {
        let now = Instant::now();
        let capacity = f64::from(per_minute);
        let rate = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(tenant.clone()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

/// The 429 for a tenant over its submit rate.
pub(crate) fn too_many(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        format!(
            "over this tenant's submits-per-minute (dry runs: ten times it): retry in {seconds} s"
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_lets_a_burst_through_then_says_when_to_retry() {
        let limits = RateLimits::default();
        let a: Arc<str> = "a".into();
        let b: Arc<str> = "b".into();
        for _ in 0..3 {
            limits.take(&a, 3).unwrap();
        }
        let wait = limits.take(&a, 3).unwrap_err();
        assert!(
            wait > Duration::from_secs(19) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        // Another tenant has its own.
        limits.take(&b, 3).unwrap();
    }
}
