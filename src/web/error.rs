//! One error type for every web handler. Each variant maps to a status; `Internal` logs
//! its cause and shows the user nothing of it. Pages get an HTML error page, the JSON
//! API (`/api/…`) a JSON body, so a handler only says what went wrong.

use std::collections::BTreeMap;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// What went wrong while answering a request.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Not signed in.
    #[error("sign in to continue")]
    Unauthorized,
    /// Signed in, but the role does not allow this.
    #[error("your role does not allow this")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    /// An optimistic-concurrency conflict or a state that forbids the change.
    #[error("{0}")]
    Conflict(String),
    /// Bad input: a summary and a message per field.
    #[error("{error}")]
    Invalid {
        error: String,
        fields: BTreeMap<String, String>,
    },
    /// A malformed request (not a validation problem).
    #[error("{0}")]
    BadRequest(String),
    /// The database does not answer (busy, unreachable, full); the cause is logged.
    #[error(
        "the database is not answering right now; runs already going go on, and what they \
         record is written once it is back. Try again in a moment."
    )]
    Unavailable(anyhow::Error),
    /// Anything else; the cause is logged, never shown.
    #[error("something went wrong on our side")]
    Internal(#[from] anyhow::Error),
}

impl WebError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error as the API's JSON: `{"error": "...", "fields": {...}}`.
    pub fn into_json_response(self) -> Response {
        self.log();
        let fields = match &self {
            Self::Invalid { fields, .. } => serde_json::to_value(fields).unwrap_or_default(),
            _ => serde_json::json!({}),
        };
        let body = serde_json::json!({ "error": self.to_string(), "fields": fields });
        (self.status(), axum::Json(body)).into_response()
    }

    fn log(&self) {
        match self {
            Self::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed");
            }
            Self::Unavailable(cause) => {
                tracing::warn!(
                    error = format!("{cause:#}"),
                    "request failed: the database is not answering"
                );
            }
            _ => {}
        }
    }
}

impl From<crate::store::StoreError> for WebError {
    fn from(error: crate::store::StoreError) -> Self {
        match error {
            crate::store::StoreError::Conflict => Self::Conflict(error.to_string()),
            crate::store::StoreError::NotFound => Self::NotFound("not found".into()),
            other if other.is_transient() => Self::Unavailable(other.into()),
            other => Self::Internal(other.into()),
        }
    }
}

/// A refused scheduler command: an unknown job is 404, a state that forbids the command
/// (removed, already running, not running, cannot run) 409, the rest internal.
impl From<crate::scheduler::CommandError> for WebError {
    fn from(error: crate::scheduler::CommandError) -> Self {
        use crate::scheduler::CommandError;
        let message = error.to_string();
        match error {
            CommandError::UnknownJob(_) => Self::NotFound(message),
            CommandError::Removed(_)
            | CommandError::AlreadyRunning { .. }
            | CommandError::NotRunning(_)
            | CommandError::Invalid { .. } => Self::Conflict(message),
            CommandError::Stopped | CommandError::Store(_) => {
                Self::Internal(anyhow::anyhow!(message))
            }
        }
    }
}

/// A refused edit: an unknown job is 404, a removed job or a stale version 409, invalid
/// settings 422 naming each field, the rest internal. The console shows the 422 and 409
/// in its form instead; every other case, and every API answer, comes from here.
impl From<crate::scheduler::EditError> for WebError {
    fn from(error: crate::scheduler::EditError) -> Self {
        use crate::scheduler::EditError;
        let message = error.to_string();
        match error {
            EditError::UnknownJob(_) => Self::NotFound(message),
            EditError::Removed(_) | EditError::Conflict => Self::Conflict(message),
            EditError::Invalid(settings) => Self::Invalid {
                error: "the settings are invalid; nothing was saved".into(),
                fields: settings
                    .fields
                    .into_iter()
                    .map(|(field, message)| (field.to_owned(), message))
                    .collect(),
            },
            EditError::Stopped | EditError::Store(_) => Self::Internal(anyhow::anyhow!(message)),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: String,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        self.log();
        let status = self.status();
        let page = ErrorPage {
            status: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error"),
            message: self.to_string(),
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, self.to_string()).into_response(),
        }
    }
}

/// The result of a web handler.
pub type WebResult<T> = Result<T, WebError>;

/// A refused maintenance: a bad reason is 422 naming `reason`, one already under way (or
/// none to end) 409.
impl From<crate::maintenance::MaintenanceError> for WebError {
    fn from(error: crate::maintenance::MaintenanceError) -> Self {
        use crate::maintenance::MaintenanceError;
        let message = error.to_string();
        match error {
            MaintenanceError::NoReason | MaintenanceError::ReasonTooLong => Self::Invalid {
                error: "maintenance did not begin".into(),
                fields: BTreeMap::from([("reason".to_owned(), message)]),
            },
            MaintenanceError::AlreadyOn { .. } | MaintenanceError::NotOn => Self::Conflict(message),
            MaintenanceError::Store(error) => error.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn a_database_that_does_not_answer_is_a_503_that_says_so_without_its_cause() {
        let error = WebError::from(StoreError::Database(sqlx::Error::PoolTimedOut));
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
        let message = error.to_string();
        assert!(message.contains("database is not answering"), "{message}");
        assert!(!message.contains("pool"), "{message}");
        let refused = WebError::from(StoreError::Decode("bad row".into()));
        assert_eq!(refused.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
