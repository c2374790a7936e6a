//! Who is signed in, and what their role allows: the axum-login backend over the store,
//! sessions kept in the database, API tokens (`Authorization: Bearer`, judged once per
//! request by [`bearer`]), the [`CurrentUser`] extractor and the guard in front of every
//! protected route.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_login::{AuthManagerLayer, AuthUser, AuthnBackend};

use super::error::WebError;
use super::state::AppState;
pub use crate::store::Role;
use crate::store::{SessionRows, SharedStore, StoreError, TOKEN_PREFIX, User, hash_token};

/// The axum-login session of this request.
pub type AuthSession = axum_login::AuthSession<Backend>;

/// The session and sign-in layers, to wrap around every route.
pub type AuthLayer = AuthManagerLayer<Backend, SessionRows>;

impl AuthUser for User {
    type Id = i64;

    fn id(&self) -> i64 {
        self.id
    }

    // A new password changes the hash, which ends every session opened with the old one.
    fn session_auth_hash(&self) -> &[u8] {
        self.password_hash.as_bytes()
    }
}

/// What the sign-in form submits, with the slot its password check runs in (so no check
/// can run outside the bound of [`crate::password_checks`]).
pub struct Credentials {
    pub name: String,
    pub password: String,
    pub slot: crate::password_checks::CheckSlot,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("name", &self.name)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Why the backend could not answer (never "wrong password": that is `Ok(None)`).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hashing(#[from] anyhow::Error),
}

/// Users and passwords from the store.
#[derive(Clone)]
pub struct Backend {
    store: SharedStore,
}

impl Backend {
    /// A backend over `store`.
    pub fn new(store: SharedStore) -> Self {
        Self { store }
    }
}

impl AuthnBackend for Backend {
    type User = User;
    type Credentials = Credentials;
    type Error = BackendError;

    async fn authenticate(&self, credentials: Credentials) -> Result<Option<User>, BackendError> {
        let user = self.store.user_by_name(&credentials.name).await?;
        let hash = user.as_ref().map(|user| user.password_hash.clone());
        let matches =
            crate::users::verify_password(credentials.password, hash, credentials.slot).await?;
        // Disabled users are refused only after the check, so the answer and its timing
        // say nothing about which part was wrong.
        Ok(user.filter(|user| matches && !user.disabled))
    }

    async fn get_user(&self, id: &i64) -> Result<Option<User>, BackendError> {
        // A user disabled since signing in loses their sessions at the next request.
        Ok(self
            .store
            .user_by_id(*id)
            .await?
            .filter(|user| !user.disabled))
    }
}

/// The signed-in user of this request. Extracting it from a request without a session
/// fails with [`WebError::Unauthorized`] (which the guard turns into a redirect or 401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentUser {
    pub id: i64,
    pub name: String,
    pub role: Role,
}

impl CurrentUser {
    /// Fails with [`WebError::Forbidden`] unless the user's role is at least `role`.
    ///
    /// # Errors
    /// [`WebError::Forbidden`].
    pub fn require(&self, role: Role) -> Result<(), WebError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(WebError::Forbidden)
        }
    }
}

impl From<&User> for CurrentUser {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            name: user.name.clone(),
            role: user.role,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = WebError;

    /// The token's user when the request carries a bearer token (a refused token is no
    /// user, whatever the cookie says), else the session's.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<BearerAuth>() {
            Some(BearerAuth::Valid(user)) => Ok(user.clone()),
            Some(BearerAuth::Refused(_)) => Err(WebError::Unauthorized),
            None => parts
                .extensions
                .get::<AuthSession>()
                .and_then(|auth| auth.user.as_ref())
                .map(CurrentUser::from)
                .ok_or(WebError::Unauthorized),
        }
    }
}

/// What an API token gets on user and token management.
pub const SESSION_REQUIRED: &str = "managing users, API tokens and passwords needs a \
     signed-in browser session; an API token cannot be used here";

/// The signed-in user of a request that must come from a browser session: user, token
/// and password management. A request with an API token is refused (403 JSON: whoever
/// sends a token is a program), so a revocable token can never mint a permanent account,
/// another token, or a new password.
#[derive(Debug, Clone)]
pub struct SessionUser(pub CurrentUser);

impl<S: Send + Sync> FromRequestParts<S> for SessionUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.extensions.get::<BearerAuth>().is_some() {
            let body = serde_json::json!({ "error": SESSION_REQUIRED, "fields": {} });
            return Err((StatusCode::FORBIDDEN, axum::Json(body)).into_response());
        }
        CurrentUser::from_request_parts(parts, state)
            .await
            .map(Self)
            .map_err(IntoResponse::into_response)
    }
}

/// The verdict on a request's `Authorization: Bearer` token, left in the request's
/// extensions by [`bearer`]. Absent when the request carries no bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerAuth {
    /// A live token: the request acts as its user, with the lower of the token's and the
    /// user's current role.
    Valid(CurrentUser),
    /// A token that does not authenticate; the reason is safe to show its holder.
    Refused(TokenRefusal),
}

/// Why a bearer token was refused. Only whoever holds the token can learn this (lookups
/// are by its hash), so saying which case it is tells an outsider nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// Unknown, malformed, or its user disabled.
    Invalid,
    Expired,
    Revoked,
}

impl TokenRefusal {
    fn message(self) -> &'static str {
        match self {
            Self::Invalid => "the API token is not valid",
            Self::Expired => "the API token has expired",
            Self::Revoked => "the API token was revoked",
        }
    }

    /// 401 JSON in the API's error shape, with the `WWW-Authenticate` challenge of
    /// RFC 6750. Always JSON: whoever sends a bearer token is a program.
    pub fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message(), "fields": {} });
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            )],
            axum::Json(body),
        )
            .into_response()
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme in any case); `None`
/// for a request without one or with another scheme. An empty or non-text token is
/// `Some("")`, so it is refused rather than ignored.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?;
    let Ok(text) = value.to_str() else {
        return Some("");
    };
    let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Judges `token` at the app clock's now, and records its use (at most once a minute).
///
/// # Errors
/// When the store fails.
async fn judge_token(state: &AppState, token: &str) -> Result<BearerAuth, StoreError> {
    // Anything without the prefix cannot be one of ours: no lookup needed.
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(BearerAuth::Refused(TokenRefusal::Invalid));
    }
    let Some(stored) = state.store.token_by_hash(&hash_token(token)).await? else {
        return Ok(BearerAuth::Refused(TokenRefusal::Invalid));
    };
    let now = state.clock.now();
    if stored.revoked_at.is_some() {
        return Ok(BearerAuth::Refused(TokenRefusal::Revoked));
    }
    if stored.is_expired(now) {
        return Ok(BearerAuth::Refused(TokenRefusal::Expired));
    }
    let Some(owner) = state.store.user_by_id(stored.user_id).await? else {
        return Ok(BearerAuth::Refused(TokenRefusal::Invalid));
    };
    // Checked at every use, not only at creation: a demoted owner's tokens are demoted
    // with them, a disabled owner's stop working.
    let Some(role) = stored.effective_role(&owner) else {
        return Ok(BearerAuth::Refused(TokenRefusal::Invalid));
    };
    if stored.needs_touch(now) {
        // A lost last-use time is no reason to refuse the request.
        if let Err(error) = state.store.touch_token(stored.id, now).await {
            tracing::warn!(error = %error, token = stored.id, "recording a token's use failed");
        }
    }
    Ok(BearerAuth::Valid(CurrentUser {
        id: owner.id,
        name: owner.name,
        role,
    }))
}

/// Middleware around every route: when the request carries `Authorization: Bearer`,
/// judges the token once and leaves a [`BearerAuth`] in the request's extensions for
/// [`require_login`], the CSRF check and [`CurrentUser`]. It refuses nothing itself, so
/// public routes stay public whatever header they are sent.
pub async fn bearer(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(token) = bearer_token(request.headers()) else {
        return next.run(request).await;
    };
    let verdict = match judge_token(&state, token).await {
        Ok(verdict) => verdict,
        Err(error) => return WebError::from(error).into_json_response(),
    };
    request.extensions_mut().insert(verdict);
    next.run(request).await
}

/// The guard in front of protected routes: a request with a valid bearer token or a
/// signed-in session passes; a refused bearer token gets 401 JSON; without either, pages
/// answer 303 to `/login?next=<this path>` and the API (`/api/…`) 401 JSON. An htmx
/// request (a poll or a partial whose session expired) is told to navigate to the
/// sign-in page with `HX-Redirect`, back to the page it was made from: a 303 would be
/// followed and the sign-in page swapped into the table.
pub async fn require_login(request: Request, next: Next) -> Response {
    match request.extensions().get::<BearerAuth>() {
        Some(BearerAuth::Valid(_)) => return next.run(request).await,
        Some(BearerAuth::Refused(refusal)) => return refusal.into_response(),
        None => {}
    }
    let signed_in = request
        .extensions()
        .get::<AuthSession>()
        .is_some_and(|auth| auth.user.is_some());
    if signed_in {
        return next.run(request).await;
    }
    let uri = request.uri();
    if uri.path() == "/api" || uri.path().starts_with("/api/") {
        return WebError::Unauthorized.into_json_response();
    }
    let here = uri.path_and_query().map_or("/", |pq| pq.as_str());
    if super::htmx::is_htmx(request.headers()) {
        let page = local_path_or_root(super::htmx::current_page(request.headers()));
        return super::htmx::redirect(&format!("/login?next={}", percent_encode(page)));
    }
    let location = format!("/login?next={}", percent_encode(here));
    see_other(&location)
}

/// A 303 See Other to `location`.
/// Where a user changes their own password (and must, before anything else, when it
/// was generated or set by an admin).
pub const CHANGE_PASSWORD_PATH: &str = "/account/password";

/// A 303 to the password page, keeping where the user was going.
pub fn go_change_password(next: &str) -> Response {
    if next == "/" {
        see_other(CHANGE_PASSWORD_PATH)
    } else {
        see_other(&format!(
            "{CHANGE_PASSWORD_PATH}?next={}",
            percent_encode(next)
        ))
    }
}

pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response(),
    }
}

/// `next` when it is a path on this site, else `/`: only a single leading `/` is
/// accepted, so `//evil.example` or `https://…` cannot turn sign-in into an open redirect.
pub fn local_path_or_root(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.chars().any(char::is_control) =>
        {
            path
        }
        _ => "/",
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for a query value.
pub fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_accepted_as_next() {
        assert_eq!(local_path_or_root(Some("/jobs/a?x=1")), "/jobs/a?x=1");
        assert_eq!(local_path_or_root(Some("//evil.example")), "/");
        assert_eq!(local_path_or_root(Some("/\\evil.example")), "/");
        assert_eq!(local_path_or_root(Some("https://evil.example")), "/");
        assert_eq!(local_path_or_root(Some("jobs")), "/");
        assert_eq!(local_path_or_root(None), "/");
    }

    #[test]
    fn percent_encoding_keeps_slashes_and_escapes_query_characters() {
        assert_eq!(percent_encode("/jobs/a?x=1&y=2"), "/jobs/a%3Fx%3D1%26y%3D2");
    }

    #[test]
    fn only_the_bearer_scheme_yields_a_token() {
        let headers = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            headers
        };
        assert_eq!(bearer_token(&headers("Bearer bb_abc")), Some("bb_abc"));
        assert_eq!(bearer_token(&headers("bearer  bb_abc ")), Some("bb_abc"));
        assert_eq!(bearer_token(&headers("Bearer")), Some(""));
        assert_eq!(bearer_token(&headers("Basic YTpi")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn roles_are_ordered_by_what_they_allow() {
        let viewer = CurrentUser {
            id: 1,
            name: "v".into(),
            role: Role::Viewer,
        };
        assert!(viewer.require(Role::Viewer).is_ok());
        assert!(matches!(
            viewer.require(Role::Operator),
            Err(WebError::Forbidden)
        ));
    }
}
