//! Signing in and out: `GET /login`, `POST /login` and `POST /logout`.

use std::net::SocketAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::auth::{AuthSession, Credentials, local_path_or_root, see_other};
use super::csrf::{self, CsrfToken};
use super::error::{WebError, WebResult};
use super::login_csrf;
use super::pages::account;

/// What a failed sign-in says, whichever of name or password was wrong.
pub const BAD_CREDENTIALS: &str = "That name and password do not match an active account.";

/// What a sign-in without a valid form token says.
pub const FORM_EXPIRED: &str =
    "This sign-in form has expired or did not come from this site. Please sign in again.";

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    name: String,
    error: Option<String>,
}

/// `?next=` of the sign-in page.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// `GET /login`: the form (or straight on when already signed in). Its CSRF token is
/// the signed double submit of [`login_csrf`], so an anonymous visit writes no session.
pub async fn show(
    State(state): State<AppState>,
    auth: AuthSession,
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> Response {
    let next = local_path_or_root(query.next.as_deref()).to_owned();
    if auth.user.is_some() {
        return see_other(&next);
    }
    let (csrf, cookie) = login_csrf::issue(&state.config, &state.signer, &headers);
    let page = LoginPage {
        csrf,
        next,
        name: String::new(),
        error: None,
    };
    ([(header::SET_COOKIE, cookie)], page).into_response()
}

/// What `POST /login` gets without a valid CSRF token (a form left open past its
/// cookie's lifetime, or one not sent from this site): 403 with a fresh form that says
/// so. Nothing was checked.
pub fn refused_form(state: &AppState, headers: &HeaderMap) -> Response {
    let (csrf, cookie) = login_csrf::issue(&state.config, &state.signer, headers);
    let page = LoginPage {
        csrf,
        next: "/".into(),
        name: String::new(),
        error: Some(FORM_EXPIRED.into()),
    };
    (StatusCode::FORBIDDEN, [(header::SET_COOKIE, cookie)], page).into_response()
}

/// `POST /login`: checks the throttle, then the password; on success gives the session
/// a new id (see [`super::sessions::Sessions::sign_in`]) and CSRF token, and goes to
/// `next` (by way of the password change when one is due).
pub async fn submit(
    State(state): State<AppState>,
    mut auth: AuthSession,
    extensions: Extensions,
    Form(form): Form<LoginForm>,
) -> WebResult<Response> {
    let next = local_path_or_root(form.next.as_deref()).to_owned();
    let address = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());
    let name = form.name.trim().to_owned();
    let page = |csrf: String, error: String| LoginPage {
        csrf,
        next: next.clone(),
        name: name.clone(),
        error: Some(error),
    };
    if let Err(wait) = state.throttle.check(&name, address) {
        let csrf = csrf::token(&auth.session).await?;
        let seconds = wait.as_secs();
        let message = format!("Too many failed sign-ins. Try again in {seconds} s.");
        let retry_after = HeaderValue::from(seconds);
        return Ok((
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after)],
            page(csrf, message),
        )
            .into_response());
    }
    let credentials = Credentials {
        name: name.clone(),
        password: form.password,
    };
    let user = auth
        .authenticate(credentials)
        .await
        .map_err(|e| WebError::Internal(anyhow::anyhow!("checking a sign-in: {e}")))?;
    let Some(user) = user else {
        state.throttle.record_failure(&name, address);
        let csrf = csrf::token(&auth.session).await?;
        return Ok((StatusCode::UNAUTHORIZED, page(csrf, BAD_CREDENTIALS.into())).into_response());
    };
    state.throttle.record_success(&name);
    state
        .sessions
        .sign_in(&mut auth, &user, state.clock.now())
        .await?;
    // The signed-in session's own token, ready for the first page.
    csrf::renew(&auth.session).await?;
    if user.must_change_password {
        return Ok(account::go_change_password(&next));
    }
    Ok(see_other(&next))
}

#[derive(Template, WebTemplate)]
#[template(path = "logout.html")]
struct LogoutPage {
    csrf: String,
    name: String,
}

/// `GET /logout`: a confirmation form, so signing out works without JavaScript from any
/// link, and any role can reach a page carrying its CSRF token.
pub async fn confirm(
    user: super::auth::CurrentUser,
    CsrfToken(csrf): CsrfToken,
) -> impl IntoResponse {
    LogoutPage {
        csrf,
        name: user.name,
    }
}

/// `POST /logout`: deletes the session from the store and the cookie's value with it.
pub async fn logout(mut auth: AuthSession) -> WebResult<Response> {
    auth.logout()
        .await
        .map_err(|e| WebError::Internal(anyhow::anyhow!("ending a session: {e}")))?;
    Ok(see_other("/login"))
}
