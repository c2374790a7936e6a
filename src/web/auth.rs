//! Who is signed in, and what their role allows.
//!
//! CONTRACT STUB: the real implementation (axum-login backend, sessions in the database,
//! login/logout, the guard that answers 303 to `/login?next=…` for pages and 401 JSON for
//! the API) replaces the bodies here, keeping these names and signatures.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};

use super::error::WebError;

/// What a user may do. Ordered: each role can do everything the ones before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Also edits schedules, runs, pauses and cancels jobs.
    Operator,
    /// Also manages users.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
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

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = WebError;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // STUB: replaced by the session lookup.
        Ok(CurrentUser {
            id: 1,
            name: "admin".into(),
            role: Role::Admin,
        })
    }
}
