//! CSRF protection: a synchronizer token kept in the session.
//!
//! The token lives in the tower-sessions session (no extra cookie), is created on first
//! use and replaced at sign-in. [`verify`] refuses (403) any POST, PUT, PATCH or DELETE
//! whose `X-CSRF-Token` header or `csrf_token` form field does not match, compared in
//! constant time. Requests authenticated by an API token (`Authorization: Bearer`) are
//! exempt: they carry no cookie a forger could ride on. `POST /login` also accepts the
//! sign-in form's own token ([`super::login_csrf`]), which needs no session.

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng as _;
use subtle::ConstantTimeEq as _;
use tower_sessions::Session;

use super::auth::{AuthSession, BearerAuth};
use super::error::WebError;
use super::login_csrf;
use crate::web::state::AppState;

/// The session key of the token.
const SESSION_KEY: &str = "csrf_token";

/// The form field carrying the token.
pub const FORM_FIELD: &str = "csrf_token";

/// The header carrying the token (htmx requests).
pub const HEADER: &str = "x-csrf-token";

/// The largest form body read to find the token.
const MAX_FORM_BYTES: usize = 1024 * 1024;

/// The session's CSRF token, for templates: every form carries it in a hidden field
/// named `csrf_token`, and the `<body>` carries it for htmx as
/// `hx-headers='{"X-CSRF-Token": "…"}'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrfToken(pub String);

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Bearer requests need no token (see `verify`); an empty one spares them a
        // session row for every page they read.
        if parts.extensions.get::<BearerAuth>().is_some() {
            return Ok(Self(String::new()));
        }
        let session = parts
            .extensions
            .get::<Session>()
            .ok_or_else(|| WebError::Internal(anyhow::anyhow!("no session layer")))?;
        Ok(Self(token(session).await?))
    }
}

/// The session's token, created (and saved in the session) when it has none.
///
/// # Errors
/// When the session store fails.
pub async fn token(session: &Session) -> Result<String, WebError> {
    let stored: Option<String> = session.get(SESSION_KEY).await.map_err(session_error)?;
    match stored {
        Some(token) => Ok(token),
        None => renew(session).await,
    }
}

/// Replaces the session's token with a fresh one (at sign-in) and returns it.
///
/// # Errors
/// When the session store fails.
pub async fn renew(session: &Session) -> Result<String, WebError> {
    let bytes: [u8; 32] = rand::rng().random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    session
        .insert(SESSION_KEY, &token)
        .await
        .map_err(session_error)?;
    Ok(token)
}

fn session_error(error: tower_sessions::session::Error) -> WebError {
    WebError::Internal(anyhow::Error::new(error).context("reading the session"))
}

/// Middleware: lets safe methods through; a state-changing request must carry the
/// session's token (or, on `POST /login`, the sign-in form's token), else 403.
pub async fn verify(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) {
        return next.run(request).await;
    }
    // A request authenticated by a bearer token (judged by `auth::bearer` before this
    // runs) cannot be forged cross-site: a browser never adds that header on its own, and
    // the cookie plays no part in it. A refused token is refused here too, not sent on to
    // the cookie check, so a bad token never falls back to a session.
    match request.extensions().get::<BearerAuth>() {
        Some(BearerAuth::Valid(_)) => return next.run(request).await,
        Some(BearerAuth::Refused(refusal)) => return refusal.into_response(),
        None => {}
    }
    // The API answers its refusals in its own JSON shape; the sign-in form comes back
    // fresh, saying why.
    let is_api = request.uri().path().starts_with("/api/");
    let sign_in_headers = (request.uri().path() == "/login").then(|| request.headers().clone());
    match (check(&state, request).await, sign_in_headers) {
        (Ok(request), _) => next.run(request).await,
        (Err(WebError::Forbidden), Some(headers)) => super::login::refused_form(&state, &headers),
        (Err(error), _) if is_api => error.into_json_response(),
        (Err(error), _) => error.into_response(),
    }
}

/// Checks the token and gives the request back (its body rebuilt when it was read).
async fn check(state: &AppState, request: Request) -> Result<Request, WebError> {
    let is_sign_in = request.uri().path() == "/login";
    let signed_in = request
        .extensions()
        .get::<AuthSession>()
        .is_some_and(|auth| auth.user.is_some());
    // A forged request can only abuse a signed-in session. Without one, every route but
    // the sign-in itself is refused by the login guard behind this check, which answers
    // what is really missing (sign in: a redirect, or 401 for the API) instead of 403.
    if !signed_in && !is_sign_in {
        return Ok(request);
    }
    let (request, sent) = sent_token(request).await?;
    let Some(sent) = sent else {
        return Err(WebError::Forbidden);
    };
    if is_sign_in && login_csrf::verify(&state.config, &state.signer, request.headers(), &sent) {
        return Ok(request);
    }
    // Reading an anonymous session writes nothing.
    let Some(session) = request.extensions().get::<Session>().cloned() else {
        return Err(WebError::Forbidden);
    };
    let expected: Option<String> = session.get(SESSION_KEY).await.map_err(session_error)?;
    match expected {
        Some(expected) if tokens_match(sent.as_bytes(), expected.as_bytes()) => Ok(request),
        _ => Err(WebError::Forbidden),
    }
}

/// The token the request carries, from its header or else its form field; the request
/// comes back with its body rebuilt when it was read.
async fn sent_token(request: Request) -> Result<(Request, Option<String>), WebError> {
    if let Some(sent) = request.headers().get(HEADER) {
        let sent = sent.to_str().ok().map(str::to_owned);
        return Ok((request, sent));
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok((request, None));
    }
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| WebError::BadRequest("the form is too large".into()))?;
    let sent = form_field(&bytes, FORM_FIELD);
    Ok((Request::from_parts(parts, Body::from(bytes)), sent))
}

fn tokens_match(sent: &[u8], expected: &[u8]) -> bool {
    // `ct_eq` on slices of different lengths is false without looking at the bytes;
    // the length of a token is no secret.
    bool::from(sent.ct_eq(expected))
}

/// The first value of `name` in an `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    body.split(|&b| b == b'&').find_map(|pair| {
        let mut halves = pair.splitn(2, |&b| b == b'=');
        let key = url_decode(halves.next()?)?;
        if key == name {
            url_decode(halves.next().unwrap_or_default())
        } else {
            None
        }
    })
}

/// Decodes `+` and `%XX` escapes; `None` when the result is not UTF-8.
fn url_decode(input: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < input.len() => {
                let hex = std::str::from_utf8(&input[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_field_is_found_among_other_fields_and_decoded() {
        let body = b"name=a+b&csrf_token=ab%2Fc&x=1";
        assert_eq!(form_field(body, "csrf_token").as_deref(), Some("ab/c"));
        assert_eq!(form_field(b"name=x", "csrf_token"), None);
        assert_eq!(
            form_field(b"csrf_token=", "csrf_token").as_deref(),
            Some("")
        );
    }

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(tokens_match(b"abc", b"abc"));
        assert!(!tokens_match(b"abd", b"abc"));
        assert!(!tokens_match(b"ab", b"abc"));
        assert!(!tokens_match(b"", b"abc"));
    }
}
