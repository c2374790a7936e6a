//! The API tokens page: every signed-in user lists, creates and revokes their own tokens.
//! A new token is shown once, in the answer to the form that created it; afterwards only
//! its name and dates are known.
//!
//! Tokens are managed from a signed-in browser session only ([`SessionUser`]): a request
//! made with a token gets 403, even to read the list, since otherwise a leaked viewer
//! token of an admin could mint itself an admin token, or revoke its owner's other tokens.

use std::collections::BTreeMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::chrome::{Chrome, TimeView};
use crate::store::{ApiToken, NewApiToken, Role, StoreError, TokenRef};
use crate::web::auth::{CurrentUser, SessionUser, see_other};
use crate::web::csrf::CsrfToken;
use crate::web::error::{WebError, WebResult};
use crate::web::state::AppState;

/// The lifetime the create form suggests.
const SUGGESTED_LIFETIME: &str = "90d";

/// A token as listed.
struct TokenRow {
    id: i64,
    name: String,
    role: Role,
    created: TimeView,
    expires: Option<TimeView>,
    expired: bool,
    last_used: Option<TimeView>,
}

impl TokenRow {
    fn new(token: ApiToken, now: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            expired: token.is_expired(now),
            id: token.id,
            name: token.name,
            role: token.role,
            created: TimeView::new(token.created_at),
            expires: token.expires_at.map(TimeView::new),
            last_used: token.last_used_at.map(TimeView::new),
        }
    }
}

/// A token just created: the only time its text is shown.
struct CreatedToken {
    name: String,
    secret: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "tokens.html")]
pub(crate) struct TokensPage {
    chrome: Chrome,
    csrf: String,
    tokens: Vec<TokenRow>,
    /// The roles the user may give a token: theirs and the ones below.
    roles: Vec<Role>,
    created: Option<CreatedToken>,
    /// The create form as submitted, when it was refused (else its defaults).
    new_name: String,
    new_role: Role,
    new_expires: String,
    /// Messages for the create form, by field.
    errors: BTreeMap<&'static str, String>,
}

impl TokensPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field).map(String::as_str)
    }
}

async fn page(state: &AppState, me: CurrentUser, csrf: String) -> WebResult<TokensPage> {
    let now = state.clock.now();
    let tokens = state.store.tokens_of_user(me.id).await?;
    let roles = Role::ALL
        .into_iter()
        .filter(|role| *role <= me.role)
        .collect();
    Ok(TokensPage {
        chrome: Chrome::new(me, CsrfToken(csrf.clone())),
        csrf,
        tokens: tokens
            .into_iter()
            .map(|token| TokenRow::new(token, now))
            .collect(),
        roles,
        created: None,
        new_name: String::new(),
        new_role: Role::Viewer,
        new_expires: SUGGESTED_LIFETIME.into(),
        errors: BTreeMap::new(),
    })
}

/// `GET /tokens`.
pub(super) async fn list(
    State(state): State<AppState>,
    SessionUser(me): SessionUser,
    CsrfToken(csrf): CsrfToken,
) -> WebResult<TokensPage> {
    page(&state, me, csrf).await
}

/// The create form.
#[derive(Deserialize)]
pub(crate) struct CreateForm {
    name: String,
    role: Role,
    #[serde(default)]
    expires: String,
}

/// `POST /tokens`: creates a token and answers the page with it shown once (never
/// cached), or 422 with the form's messages.
pub(super) async fn create(
    State(state): State<AppState>,
    SessionUser(me): SessionUser,
    CsrfToken(csrf): CsrfToken,
    Form(form): Form<CreateForm>,
) -> WebResult<Response> {
    let now = state.clock.now();
    // The stored user, not the request's view of it: `issue` checks the role against
    // the current one and refuses a disabled owner.
    let owner = state
        .store
        .user_by_id(me.id)
        .await?
        .ok_or(WebError::Unauthorized)?;
    let name = form.name.trim();
    let issued = NewApiToken::issue(&owner, name, form.role, Some(&form.expires), now);
    let errors = match issued {
        Ok((token, secret)) => match state.store.create_token(&token, now).await {
            Ok(_) => {
                let mut view = page(&state, me, csrf).await?;
                view.created = Some(CreatedToken {
                    name: token.name,
                    secret: secret.expose().to_owned(),
                });
                let no_store = [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
                return Ok((StatusCode::CREATED, no_store, view).into_response());
            }
            Err(StoreError::Conflict) => {
                BTreeMap::from([("name", "you already have a token with this name".into())])
            }
            Err(error) => return Err(error.into()),
        },
        Err(refused) => refused.0,
    };
    let mut view = page(&state, me, csrf).await?;
    view.new_name = name.to_owned();
    view.new_role = form.role;
    view.new_expires = form.expires;
    view.errors = errors;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, view).into_response())
}

/// `POST /tokens/{id}/revoke`: revokes one of the user's own tokens.
pub(super) async fn revoke(
    State(state): State<AppState>,
    SessionUser(me): SessionUser,
    Path(id): Path<i64>,
) -> WebResult<Response> {
    match state
        .store
        .revoke_token(me.id, TokenRef::Id(id), state.clock.now())
        .await
    {
        Ok(_) => Ok(see_other("/tokens")),
        // Someone else's token looks exactly like a missing one.
        Err(StoreError::NotFound) => Err(WebError::NotFound("no such token".into())),
        Err(error) => Err(error.into()),
    }
}
