//! The console's pages. Each module owns its routes, handlers and view structs; its
//! templates live in `templates/` under the same name (partials end in `_partial.html`).

pub mod chrome;
pub mod dashboard;
pub mod history;
pub mod job;
pub mod run;
pub mod schedule;
pub mod svg;
pub mod tokens;
pub mod users;

use axum::Router;

use super::AppState;

/// Every page route.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(dashboard::routes())
        .merge(job::routes())
        .merge(run::routes())
        .merge(schedule::routes())
        .merge(history::routes())
        .merge(users::routes())
        .merge(tokens::routes())
}
