//! The users page (admins only, from a signed-in browser session: an API token is
//! refused): list, add, change role, disable or enable, reset a password. Every change is
//! checked with `validator` first; on an error nothing is saved and the message is shown
//! next to its field.
//!
//! A change to a user takes effect on their sessions at once: a new role, disabling (or
//! enabling again) and a password reset end every session of that user; disabling and a
//! reset also revoke their API tokens. A password an admin sets for someone else (a new
//! user's or a reset one) must be changed by its user at the next sign-in: two people
//! know it. An admin resetting their own password keeps their current session.

use std::collections::BTreeMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use validator::{Validate, ValidationErrors};

use super::chrome::Chrome;
use crate::store::{NewUser, Role, StoreError, User, UserUpdate};
use crate::users::{hash_password, validate_name, validate_password};
use crate::web::auth::{AuthSession, CurrentUser, SessionUser, see_other};
use crate::web::csrf::CsrfToken;
use crate::web::error::{WebError, WebResult};
use crate::web::state::AppState;

/// A user as listed.
struct UserRow {
    id: i64,
    name: String,
    role: Role,
    disabled: bool,
    must_change_password: bool,
    created_at: String,
    created_title: String,
}

impl From<User> for UserRow {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            name: user.name,
            role: user.role,
            disabled: user.disabled,
            must_change_password: user.must_change_password,
            created_at: user.created_at.to_rfc3339(),
            created_title: user.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "users.html")]
pub(crate) struct UsersPage {
    chrome: Chrome,
    csrf: String,
    users: Vec<UserRow>,
    roles: [Role; 3],
    /// The add form as submitted, when it was refused.
    new_name: String,
    new_role: Role,
    /// Messages for the add form, by field.
    errors: BTreeMap<String, String>,
    /// A refused change on one user's row: (user id, message).
    row_error: Option<(i64, String)>,
}

impl UsersPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field).map(String::as_str)
    }

    // Askama hands loop fields over by reference.
    fn row_error_for(&self, id: &i64) -> Option<&str> {
        match &self.row_error {
            Some((row, message)) if row == id => Some(message),
            _ => None,
        }
    }
}

async fn page(state: &AppState, csrf: String, me: CurrentUser) -> WebResult<UsersPage> {
    let users = state.store.users().await?;
    Ok(UsersPage {
        chrome: Chrome::new(me, CsrfToken(csrf.clone())),
        csrf,
        users: users.into_iter().map(UserRow::from).collect(),
        roles: Role::ALL,
        new_name: String::new(),
        new_role: Role::Viewer,
        errors: BTreeMap::new(),
        row_error: None,
    })
}

fn refused(page: UsersPage) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
}

/// `GET /users`.
pub(super) async fn list(
    State(state): State<AppState>,
    SessionUser(me): SessionUser,
    CsrfToken(csrf): CsrfToken,
) -> WebResult<UsersPage> {
    me.require(Role::Admin)?;
    page(&state, csrf, me).await
}

fn check_name(name: &str) -> Result<(), validator::ValidationError> {
    validate_name(name)
}

fn check_password(password: &str) -> Result<(), validator::ValidationError> {
    validate_password(password)
}

/// The add form.
#[derive(Deserialize, Validate)]
pub(crate) struct AddForm {
    #[validate(custom(function = "check_name"))]
    name: String,
    role: Role,
    #[validate(custom(function = "check_password"))]
    password: String,
}

fn messages(errors: &ValidationErrors) -> BTreeMap<String, String> {
    errors
        .field_errors()
        .into_iter()
        .filter_map(|(field, errors)| {
            let message = errors.first()?.message.as_ref()?.to_string();
            Some((field.to_string(), message))
        })
        .collect()
}

/// `POST /users`: adds a user.
pub(super) async fn add(
    State(state): State<AppState>,
    SessionUser(me): SessionUser,
    CsrfToken(csrf): CsrfToken,
    Form(form): Form<AddForm>,
) -> WebResult<Response> {
    me.require(Role::Admin)?;
    let mut errors = form
        .validate()
        .err()
        .map(|e| messages(&e))
        .unwrap_or_default();
    if errors.is_empty() {
        let user = NewUser {
            name: form.name.clone(),
            password_hash: hash_password(form.password).await?,
            role: form.role,
            must_change_password: true,
        };
        match state.store.create_user(&user, state.clock.now()).await {
            Ok(_) => return Ok(see_other("/users")),
            Err(StoreError::Conflict) => {
                errors.insert("name".into(), "this name is taken".into());
            }
            Err(error) => return Err(error.into()),
        }
    }
    let mut view = page(&state, csrf, me).await?;
    view.new_name = form.name;
    view.new_role = form.role;
    view.errors = errors;
    Ok(refused(view))
}

/// A role change.
#[derive(Deserialize)]
pub(crate) struct RoleForm {
    role: Role,
}

/// A disable or enable.
#[derive(Deserialize)]
pub(crate) struct DisabledForm {
    disabled: bool,
}

/// A password reset.
#[derive(Deserialize, Validate)]
pub(crate) struct PasswordForm {
    #[validate(custom(function = "check_password"))]
    password: String,
}

/// Refuses changes that would lock the acting admin out of this page.
fn check_not_self(me: &CurrentUser, id: i64, what: &str) -> Result<(), String> {
    if me.id == id {
        Err(format!(
            "you cannot {what} your own account; ask another admin"
        ))
    } else {
        Ok(())
    }
}

/// What a change to a user ends besides itself.
#[derive(Debug, Clone, Copy)]
struct Ends {
    sessions: bool,
    tokens: bool,
}

async fn apply(
    state: &AppState,
    me: CurrentUser,
    auth: &mut AuthSession,
    csrf: String,
    id: i64,
    change: Result<(UserUpdate, Ends), String>,
) -> WebResult<Response> {
    if state.store.user_by_id(id).await?.is_none() {
        return Err(WebError::NotFound("no such user".into()));
    }
    match change {
        Ok((update, ends)) => {
            let now = state.clock.now();
            let updated = state.store.update_user(id, &update, now).await?;
            let is_me = id == me.id;
            if ends.sessions {
                let keep = is_me.then_some(&auth.session);
                state.sessions.end_sessions_of(id, keep).await?;
            }
            if ends.tokens {
                state.store.revoke_tokens_of_user(id, now).await?;
            }
            if is_me && update.password_hash.is_some() {
                // The session remembers the password hash it was opened with; without
                // this, the admin's own next request would find it changed and sign out.
                state.sessions.sign_in(auth, &updated, now).await?;
            }
            Ok(see_other("/users"))
        }
        Err(message) => {
            let mut view = page(state, csrf, me).await?;
            view.row_error = Some((id, message));
            Ok(refused(view))
        }
    }
}

/// `POST /users/{id}/role`.
pub(super) async fn set_role(
    State(state): State<AppState>,
    mut auth: AuthSession,
    SessionUser(me): SessionUser,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<i64>,
    Form(form): Form<RoleForm>,
) -> WebResult<Response> {
    me.require(Role::Admin)?;
    let change = check_not_self(&me, id, "change the role of").map(|()| {
        let update = UserUpdate {
            role: Some(form.role),
            ..UserUpdate::default()
        };
        let ends = Ends {
            sessions: true,
            tokens: false,
        };
        (update, ends)
    });
    apply(&state, me, &mut auth, csrf, id, change).await
}

/// `POST /users/{id}/disabled`.
pub(super) async fn set_disabled(
    State(state): State<AppState>,
    mut auth: AuthSession,
    SessionUser(me): SessionUser,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<i64>,
    Form(form): Form<DisabledForm>,
) -> WebResult<Response> {
    me.require(Role::Admin)?;
    // Enabling ends sessions too: none opened before the user was disabled comes back.
    let change = check_not_self(&me, id, "disable").map(|()| {
        let update = UserUpdate {
            disabled: Some(form.disabled),
            ..UserUpdate::default()
        };
        let ends = Ends {
            sessions: true,
            tokens: form.disabled,
        };
        (update, ends)
    });
    apply(&state, me, &mut auth, csrf, id, change).await
}

/// `POST /users/{id}/password`.
pub(super) async fn reset_password(
    State(state): State<AppState>,
    mut auth: AuthSession,
    SessionUser(me): SessionUser,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<i64>,
    Form(form): Form<PasswordForm>,
) -> WebResult<Response> {
    me.require(Role::Admin)?;
    let change = match form.validate() {
        Ok(()) => {
            let update = UserUpdate {
                password_hash: Some(hash_password(form.password).await?),
                // Someone else's new password is known to two people until its user
                // replaces it; an admin's own is theirs alone.
                must_change_password: Some(id != me.id),
                ..UserUpdate::default()
            };
            let ends = Ends {
                sessions: true,
                tokens: true,
            };
            Ok((update, ends))
        }
        Err(errors) => Err(messages(&errors)
            .remove("password")
            .unwrap_or_else(|| "invalid password".into())),
    };
    apply(&state, me, &mut auth, csrf, id, change).await
}
