//! The signed-in user's own password (`/account/password`), and the guard that sends a
//! user whose password must be changed there before anything else.
//!
//! A password must be changed when someone else chose it: the first admin's generated
//! password, or one an admin set in the console for another user. Until it is, every
//! other page redirects here and the API answers 403 saying why; signing out still works.

use std::collections::BTreeMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::store::UserUpdate;
use crate::users::{hash_password, validate_password, verify_password};
use crate::web::auth::{AuthSession, BearerAuth, SessionUser, local_path_or_root, see_other};
use crate::web::csrf::CsrfToken;
use crate::web::error::{WebError, WebResult};
use crate::web::state::AppState;

/// The page's path.
pub use crate::web::auth::CHANGE_PASSWORD_PATH as PATH;
use crate::web::auth::go_change_password;

/// Wrong current passwords a session may send before it is signed out: whoever holds a
/// stolen session cookie gets a handful of guesses at the password, not unlimited ones.
pub const MAX_WRONG_CURRENT: u32 = 5;

/// What the API answers a session whose password must be changed first.
pub const CHANGE_FIRST: &str = "your password was set for you and must be changed first: \
     open /account/password in the console";

/// One password field of the form.
struct Field {
    id: &'static str,
    label: &'static str,
    autocomplete: &'static str,
}

const FIELDS: [Field; 3] = [
    Field {
        id: "current",
        label: "Current password",
        autocomplete: "current-password",
    },
    Field {
        id: "new_password",
        label: "New password (at least 12 characters)",
        autocomplete: "new-password",
    },
    Field {
        id: "confirm",
        label: "New password again",
        autocomplete: "new-password",
    },
];

#[derive(Template, WebTemplate)]
#[template(path = "account_password.html")]
pub(crate) struct PasswordPage {
    csrf: String,
    name: String,
    next: String,
    /// The change is required, not chosen.
    forced: bool,
    fields: &'static [Field],
    /// Messages by field id.
    errors: BTreeMap<&'static str, String>,
}

impl PasswordPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field).map(String::as_str)
    }
}

/// `?next=` of the page.
#[derive(Debug, Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

/// `GET /account/password`.
pub(super) async fn show(
    auth: AuthSession,
    SessionUser(me): SessionUser,
    CsrfToken(csrf): CsrfToken,
    Query(query): Query<NextQuery>,
) -> PasswordPage {
    PasswordPage {
        csrf,
        name: me.name,
        next: local_path_or_root(query.next.as_deref()).to_owned(),
        forced: auth.user.is_some_and(|user| user.must_change_password),
        fields: &FIELDS,
        errors: BTreeMap::new(),
    }
}

/// The form.
#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /account/password`: checks the current password and the new one; on success
/// saves it, clears a pending forced change, ends the user's other sessions, gives this
/// one a new id, and goes on to `next`. Otherwise 422 with the messages next to their
/// fields, and nothing saved. After [`MAX_WRONG_CURRENT`] wrong current passwords, the
/// next attempt signs the session out unchecked.
pub(super) async fn change(
    State(state): State<AppState>,
    mut auth: AuthSession,
    SessionUser(me): SessionUser,
    CsrfToken(csrf): CsrfToken,
    Form(form): Form<PasswordForm>,
) -> WebResult<Response> {
    let user = auth.user.clone().ok_or(WebError::Unauthorized)?;
    let next = local_path_or_root(form.next.as_deref()).to_owned();
    let mut errors = BTreeMap::new();
    if let Err(error) = validate_password(&form.new_password) {
        let message = error.message.map(|m| m.to_string()).unwrap_or_default();
        errors.insert("new_password", message);
    } else if form.new_password == form.current {
        errors.insert(
            "new_password",
            "choose a password other than the current one".into(),
        );
    } else if form.confirm != form.new_password {
        errors.insert("confirm", "the two new passwords differ".into());
    }
    // Counted before the check, so parallel guesses cannot all slip under the limit.
    // The count is kept after signing out: guesses still in flight on the same cookie
    // must find it.
    if state.sessions.count_password_attempt(&auth.session) > MAX_WRONG_CURRENT {
        auth.logout()
            .await
            .map_err(|e| WebError::Internal(anyhow::anyhow!("ending a session: {e}")))?;
        return Ok(see_other("/login"));
    }
    // Behind the same bound as sign-ins: this check costs as much memory and CPU.
    let slot = match state.password_checks.acquire().await {
        Ok(slot) => slot,
        Err(busy) => {
            let retry_after = axum::http::HeaderValue::from(busy.retry_after.as_secs().max(1));
            return Ok((
                StatusCode::SERVICE_UNAVAILABLE,
                [(axum::http::header::RETRY_AFTER, retry_after)],
                "The server is busy checking other passwords. Try again in a moment.",
            )
                .into_response());
        }
    };
    // Checked even when the new one is refused, so the answer's timing says nothing.
    let current_matches =
        verify_password(form.current, Some(user.password_hash.clone()), slot).await?;
    if current_matches {
        state.sessions.forget_password_attempts(&auth.session);
    } else {
        errors.insert("current", "this is not your current password".into());
    }
    if !errors.is_empty() {
        let page = PasswordPage {
            csrf,
            name: me.name,
            next,
            forced: user.must_change_password,
            fields: &FIELDS,
            errors,
        };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    let now = state.clock.now();
    let update = UserUpdate {
        password_hash: Some(hash_password(form.new_password).await?),
        must_change_password: Some(false),
        ..UserUpdate::default()
    };
    let updated = state.store.update_user(user.id, &update, now).await?;
    // Whoever may have seen the old password may also hold a session opened with it.
    state
        .sessions
        .end_sessions_of(user.id, Some(&auth.session))
        .await?;
    state.sessions.sign_in(&mut auth, &updated, now).await?;
    Ok(see_other(&next))
}

/// Middleware behind the sign-in guard: a session whose user must change their password
/// reaches only the password page and sign-out. Pages are sent to the password page
/// (htmx requests through `HX-Redirect`, which htmx follows with a full navigation), the
/// API gets 403 JSON saying why. A request made with an API token is the token's, not
/// the session's, and passes.
pub async fn require_password_change(request: Request, next: Next) -> Response {
    let pending = request
        .extensions()
        .get::<AuthSession>()
        .and_then(|auth| auth.user.as_ref())
        .is_some_and(|user| user.must_change_password);
    let by_token = request.extensions().get::<BearerAuth>().is_some();
    let path = request.uri().path();
    if !pending || by_token || path == PATH || path == "/logout" {
        return next.run(request).await;
    }
    if path == "/api" || path.starts_with("/api/") {
        let body = serde_json::json!({ "error": CHANGE_FIRST, "fields": {} });
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    if crate::web::htmx::is_htmx(request.headers()) {
        return crate::web::htmx::redirect(PATH);
    }
    // After the change, a page that was being read opens again; a refused change does not
    // replay.
    let here = if request.method() == Method::GET {
        request.uri().path_and_query().map_or("/", |pq| pq.as_str())
    } else {
        "/"
    };
    go_change_password(here)
}
