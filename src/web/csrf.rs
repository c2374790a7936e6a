//! CSRF protection: a synchronizer token kept in the session.
//!
//! CONTRACT STUB: the real implementation keeps the token in the tower-sessions session,
//! issues a fresh one at login, and a middleware refuses (403) any POST, PUT, PATCH or
//! DELETE whose form field `csrf_token` or header `X-CSRF-Token` does not match.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::WebError;

/// The session's CSRF token, for templates: every form carries it in a hidden field
/// named `csrf_token`, and the `<body>` carries it for htmx as
/// `hx-headers='{"X-CSRF-Token": "…"}'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrfToken(pub String);

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = WebError;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // STUB: replaced by the session lookup.
        Ok(CsrfToken("stub-token".into()))
    }
}
