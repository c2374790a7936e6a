//! The console's pages. Each module owns its routes, handlers and view structs; its
//! templates live in `templates/` under the same name (partials end in `_partial.html`).

pub mod history;
pub mod schedule;

use axum::Router;

use super::AppState;

/// Every page route.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(schedule::routes())
        .merge(history::routes())
}
