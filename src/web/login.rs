//! Signing in and out: `GET /login`, `POST /login` and `POST /logout`.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::{AuthSession, local_path_or_root, see_other};
use super::client_address::ClientAddress;
use super::device;
use super::error::WebResult;
use super::login_csrf;
use super::signin::{self, Verdict};
use super::throttle::Limit;
use crate::users::MAX_NAME_LEN;
use crate::web::state::AppState;

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

/// `POST /login`: judges the attempt (throttle, bounded password check; see
/// [`signin`]); on success gives the session a new id (see
/// [`super::sessions::Sessions::sign_in`]) and CSRF token, leaves a fresh device cookie,
/// and goes to `next` (by way of the password change when one is due).
pub async fn submit(
    State(state): State<AppState>,
    mut auth: AuthSession,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> WebResult<Response> {
    let next = local_path_or_root(form.next.as_deref()).to_owned();
    let name = form.name.trim();
    let secure_cookies = state.config.secure_cookies;
    let now = state.clock.now();
    let device = device::recognise(&state.signer, &headers, secure_cookies, name, now);
    let attempt = signin::Attempt {
        name,
        password: form.password,
        address,
        device: device.as_ref(),
    };
    let (status, retry_after, message) = match signin::judge(&state, &auth, attempt).await? {
        Verdict::SignedIn(user) => {
            state.sessions.sign_in(&mut auth, &user, now).await?;
            let mut response = if user.must_change_password {
                super::auth::go_change_password(&next)
            } else {
                see_other(&next)
            };
            match device::issue(&state.signer, &user.name, now, secure_cookies) {
                Some(cookie) => {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
                None => tracing::warn!(user = %user.name, "no device cookie for this user name"),
            }
            return Ok(response);
        }
        Verdict::Failed => (StatusCode::UNAUTHORIZED, None, BAD_CREDENTIALS.to_owned()),
        Verdict::Refused(refusal) => {
            let seconds = refusal.wait.as_secs();
            let wait = wait_text(seconds);
            let message = match refusal.limit {
                Limit::Name => format!(
                    "Too many failed sign-ins for this name. Try again in {wait}, or \
                     from a browser you have signed in with as this user before."
                ),
                _ => format!("Too many failed sign-ins. Try again in {wait}."),
            };
            (StatusCode::TOO_MANY_REQUESTS, Some(seconds), message)
        }
        Verdict::Busy(busy) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(busy.retry_after.as_secs()),
            "The server is busy checking other sign-ins. Try again in a moment.".to_owned(),
        ),
    };
    // A refused or failed attempt gets a fresh form token without a session row.
    let (csrf, cookie) = login_csrf::issue(&state.config, &state.signer, &headers);
    let page = LoginPage {
        csrf,
        next,
        // Shown back only as long as a name can be: the form field is not a way to make
        // the page arbitrarily large.
        name: name.chars().take(MAX_NAME_LEN).collect(),
        error: Some(message),
    };
    let mut response = (status, [(header::SET_COOKIE, cookie)], page).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    Ok(response)
}

/// A wait as people read it: seconds up to two minutes, then whole minutes (rounded up,
/// so nobody comes back too early).
fn wait_text(seconds: u64) -> String {
    if seconds < 120 {
        format!("{seconds} s")
    } else {
        format!("{} min", seconds.div_ceil(60))
    }
}

#[cfg(test)]
mod tests {
    use super::wait_text;

    #[test]
    fn waits_read_in_seconds_then_in_whole_minutes_rounded_up() {
        assert_eq!(wait_text(30), "30 s");
        assert_eq!(wait_text(119), "119 s");
        assert_eq!(wait_text(120), "2 min");
        assert_eq!(wait_text(121), "3 min");
        assert_eq!(wait_text(3600), "60 min");
    }
}
