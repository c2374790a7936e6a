//! Security headers on every response, HSTS when configured, and `no-store` on
//! everything that shows signed-in data.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use super::state::WebConfig;

/// No inline script or style anywhere: every script and stylesheet is a file under
/// `/static`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";

const HEADERS: [(HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
];

/// Middleware: adds the headers to whatever the inner service answered, and
/// `Strict-Transport-Security` when `[web] hsts` is set. HSTS goes on plain-HTTP answers
/// too: browsers ignore it there, and behind a TLS-terminating proxy the server only
/// ever sees plain HTTP.
pub async fn headers(
    State(config): State<Arc<WebConfig>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let target = response.headers_mut();
    for (name, value) in HEADERS {
        target.insert(name, HeaderValue::from_static(value));
    }
    if let Some(max_age) = config.hsts {
        let value = format!("max-age={}", max_age.as_secs());
        if let Ok(value) = HeaderValue::from_str(&value) {
            target.insert(header::STRICT_TRANSPORT_SECURITY, value);
        }
    }
    response
}

/// Middleware for everything behind sign-in (pages, htmx partials, the API) and the
/// sign-in page: `Cache-Control: no-store`, so neither a shared browser's cache nor a
/// proxy keeps job details, logs or the sign-in form's token. Replaces whatever a
/// handler set: nothing here may be cached.
pub async fn no_store(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
