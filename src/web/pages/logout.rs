//! Signing out: a confirmation page and the form it posts.

use askama::Template;
use askama_web::WebTemplate;
use axum::response::{IntoResponse, Response};

use crate::web::auth::{AuthSession, CurrentUser, see_other};
use crate::web::csrf::CsrfToken;
use crate::web::error::{WebError, WebResult};

#[derive(Template, WebTemplate)]
#[template(path = "logout.html")]
struct LogoutPage {
    csrf: String,
    name: String,
}

/// `GET /logout`: a confirmation form, so signing out works without JavaScript from any
/// link, and any role can reach a page carrying its CSRF token.
pub async fn confirm(user: CurrentUser, CsrfToken(csrf): CsrfToken) -> impl IntoResponse {
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
