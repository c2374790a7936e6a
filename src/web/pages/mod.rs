//! The console's pages. Each module owns its routes, handlers and view structs; its
//! templates live in `templates/` under the same name (partials end in `_partial.html`).

use axum::Router;

use super::AppState;

pub mod users;

/// Every page route.
pub fn routes() -> Router<AppState> {
    Router::new().merge(users::routes())
}
