//! The console's pages. Each module owns its routes, handlers and view structs; its
//! templates live in `templates/` under the same name (partials end in `_partial.html`).

pub mod account;
pub mod alerts;
pub mod bulk;
pub mod chain_graph;
pub mod chains;
pub mod chrome;
pub mod dashboard;
pub mod history;
pub mod instances;
pub mod job;
pub mod logout;
pub mod maintenance;
pub mod run;
pub mod runs;
pub mod svg;
pub mod timeline;
pub mod tokens;
pub mod upcoming;
pub mod users;

use axum::Router;
use axum::routing::{MethodRouter, get, post};

use crate::web::state::AppState;

/// One console route: its method, its path and how to build its handler.
#[derive(Clone, Copy)]
pub struct PageRoute {
    /// The HTTP method, upper case.
    pub method: &'static str,
    /// The path, with `{param}` placeholders.
    pub path: &'static str,
    handler: fn() -> MethodRouter<AppState>,
}

const fn route(
    method: &'static str,
    path: &'static str,
    handler: fn() -> MethodRouter<AppState>,
) -> PageRoute {
    PageRoute {
        method,
        path,
        handler,
    }
}

/// Every console route. The router is built from this table, and a test walks it to
/// check that each route refuses a request without credentials.
pub const ROUTES: [PageRoute; 36] = [
    route("GET", "/", || get(dashboard::dashboard)),
    route("GET", "/jobs/{name}", || get(job::page::job_page)),
    route("GET", "/jobs/{name}/summary", || {
        get(job::page::summary_partial)
    }),
    route("GET", "/jobs/{name}/schedule-preview", || {
        get(job::settings::preview)
    }),
    route("POST", "/jobs/{name}/settings", || {
        post(job::settings::save_settings)
    }),
    route("POST", "/jobs/{name}/reset", || post(job::settings::reset)),
    route("POST", "/jobs/{name}/run", || post(job::actions::run_now)),
    route("POST", "/jobs/{name}/pause", || post(job::actions::pause)),
    route("POST", "/jobs/{name}/resume", || post(job::actions::resume)),
    route("GET", "/runs", || get(runs::runs_page)),
    route("GET", "/runs/bulk/{action}", || get(bulk::confirm)),
    route("POST", "/runs/bulk/{action}", || post(bulk::apply)),
    route("GET", "/runs/{id}", || get(run::run_page)),
    route("GET", "/runs/{id}/log", || get(run::run_log)),
    route("POST", "/runs/{id}/cancel", || post(job::actions::cancel)),
    route("GET", "/history", || get(history::history)),
    route("GET", "/chains", || get(chains::chains_page)),
    route("GET", "/upcoming", || get(upcoming::upcoming)),
    route("GET", "/alerts", || get(alerts::alerts_page)),
    route("POST", "/alerts/{target}/test", || post(alerts::send_test)),
    route("GET", "/maintenance", || get(maintenance::maintenance_page)),
    route("POST", "/maintenance", || post(maintenance::begin)),
    route("POST", "/maintenance/end", || post(maintenance::end)),
    route("GET", "/instances", || get(instances::list)),
    route("GET", "/users", || get(users::list)),
    route("POST", "/users", || post(users::add)),
    route("POST", "/users/{id}/role", || post(users::set_role)),
    route("POST", "/users/{id}/disabled", || post(users::set_disabled)),
    route("POST", "/users/{id}/password", || {
        post(users::reset_password)
    }),
    route("GET", "/tokens", || get(tokens::list)),
    route("POST", "/tokens", || post(tokens::create)),
    route("POST", "/tokens/{id}/revoke", || post(tokens::revoke)),
    route("GET", "/account/password", || get(account::show)),
    route("POST", "/account/password", || post(account::change)),
    route("GET", "/logout", || get(logout::confirm)),
    route("POST", "/logout", || post(logout::logout)),
];

/// Every page route, from [`ROUTES`].
pub fn routes() -> Router<AppState> {
    ROUTES.iter().fold(Router::new(), |router, route| {
        router.route(route.path, (route.handler)())
    })
}
