//! The page: `/` and its two assets, embedded in the binary (no CDN, works
//! offline), and the headers every answer carries so that a browser runs
//! no inline script and talks to no other origin.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../../web/index.html");
const SCRIPT: &str = include_str!("../../web/app.js");
const STYLE: &str = include_str!("../../web/app.css");

/// The page's paths; anyone may load them (they hold no data: the page
/// asks the API for it, with the tenant's token).
pub(crate) const PATHS: &[&str] = &["/", "/ui/app.js", "/ui/app.css", "/favicon.ico"];

/// Scripts and styles from this origin's files only, requests to this
/// origin only, no frames, no plugins, no forms posted elsewhere.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

pub(crate) async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

/// No icon: an empty answer, not a 401 for every page load.
pub(crate) async fn icon() -> axum::http::StatusCode {
    axum::http::StatusCode::NO_CONTENT
}

pub(crate) async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

pub(crate) async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // A new podrun brings new assets: the browser asks each time.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Sets the security headers on every answer, the API's included.
pub(crate) async fn secure(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}
