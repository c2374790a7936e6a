//! The JSON API under `/api/v1`: everything the console shows or does, for scripts and
//! monitoring, with the same validation, roles and history.
//!
//! Every route is one row of [`ROUTES`]: that table builds the router, and a test checks
//! each row against the OpenAPI document, so a route cannot be added without being
//! documented. Errors are always `{"error": "...", "fields": {...}}` (see [`ApiError`]);
//! the extractors here turn axum's own rejections into that shape too.

pub mod extract;
pub mod history;
pub mod instances;
pub mod jobs;
pub mod maintenance;
pub mod runs;
pub mod settings;
pub mod status;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, delete, get, patch, post};
use utoipa::OpenApi;

use super::error::WebError;
use crate::web::state::AppState;

pub use extract::{ApiAdmin, ApiJson, ApiOperator, ApiPath, ApiQuery, ApiUser};

/// The largest request body the API reads; a larger one is refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// One route of the API: its method, its path (axum and OpenAPI share the `{param}`
/// syntax) and how to build its handler.
#[derive(Clone, Copy)]
pub struct ApiRoute {
    /// The HTTP method, upper case.
    pub method: &'static str,
    /// The full path, `/api/v1/...`.
    pub path: &'static str,
    handler: fn() -> MethodRouter<AppState>,
}

/// Every API route. The router is built from this table and the tests check every row
/// against the OpenAPI document and the router.
pub const ROUTES: [ApiRoute; 21] = [
    route("GET", "/api/v1/jobs", || get(jobs::list_jobs)),
    route("GET", "/api/v1/jobs/{name}", || get(jobs::get_job)),
    route("PATCH", "/api/v1/jobs/{name}", || patch(jobs::patch_job)),
    route("POST", "/api/v1/jobs/{name}/reset", || {
        post(jobs::reset_job)
    }),
    route("POST", "/api/v1/jobs/{name}/run", || post(jobs::run_job)),
    route("POST", "/api/v1/jobs/{name}/pause", || {
        post(jobs::pause_job)
    }),
    route("POST", "/api/v1/jobs/{name}/resume", || {
        post(jobs::resume_job)
    }),
    route("GET", "/api/v1/jobs/{name}/runs", || get(runs::list_runs)),
    route("GET", "/api/v1/runs", || get(runs::list_all_runs)),
    route("GET", "/api/v1/runs/{id}", || get(runs::get_run)),
    route("GET", "/api/v1/runs/{id}/logs", || get(runs::run_logs)),
    route("POST", "/api/v1/runs/{id}/cancel", || {
        post(runs::cancel_run)
    }),
    route("GET", "/api/v1/history", || get(history::list_changes)),
    route("GET", "/api/v1/status", || get(status::scheduler_status)),
    route("GET", "/api/v1/instances", || {
        get(instances::list_instances)
    }),
    route("GET", "/api/v1/maintenance", || {
        get(maintenance::get_maintenance)
    }),
    route("POST", "/api/v1/maintenance", || {
        post(maintenance::begin_maintenance)
    }),
    route("DELETE", "/api/v1/maintenance", || {
        delete(maintenance::end_maintenance)
    }),
    route("GET", "/api/v1/openapi.json", || get(openapi_json)),
    // Unknown API paths answer the JSON 404, not the console's HTML one.
    route("ANY", "/api/v1", || any(not_found)),
    route("ANY", "/api/v1/{*rest}", || any(not_found)),
];

const fn route(
    method: &'static str,
    path: &'static str,
    handler: fn() -> MethodRouter<AppState>,
) -> ApiRoute {
    ApiRoute {
        method,
        path,
        handler,
    }
}

/// The API's routes, with their body limit; mounted behind the login guard.
pub fn routes() -> Router<AppState> {
    ROUTES
        .iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, (route.handler)())
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(map_response(json_method_not_allowed))
}

/// axum answers a known path with the wrong method by an empty 405: give it the API's
/// error shape (keeping its `Allow` header).
async fn json_method_not_allowed(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let body = serde_json::json!({
        "error": "this endpoint does not answer that method",
        "fields": {},
    });
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let json = axum::Json(body).into_response();
    let (json_parts, json_body) = json.into_parts();
    parts.headers.extend(json_parts.headers);
    Response::from_parts(parts, json_body)
}

/// Whether `route` is one of the catch-all rows that only answer 404 (not documented).
pub fn is_catch_all(route: &ApiRoute) -> bool {
    route.path == "/api/v1" || route.path.contains("{*")
}

/// The OpenAPI 3 description of the API, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Batchboard API",
        description = "Jobs, runs, logs, history and scheduler status. Sign in with the \
                       console's session cookie (state-changing requests also need the \
                       X-CSRF-Token header) or send Authorization: Bearer <token>."
    ),
    paths(
        jobs::list_jobs,
        jobs::get_job,
        jobs::patch_job,
        jobs::reset_job,
        jobs::run_job,
        jobs::pause_job,
        jobs::resume_job,
        runs::list_runs,
        runs::list_all_runs,
        runs::get_run,
        runs::run_logs,
        runs::cancel_run,
        history::list_changes,
        status::scheduler_status,
        instances::list_instances,
        maintenance::get_maintenance,
        maintenance::begin_maintenance,
        maintenance::end_maintenance,
        openapi_json,
    ),
    components(schemas(ErrorBody))
)]
pub struct ApiDoc;

/// The error body of every API error.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in a sentence.
    pub error: String,
    /// For 422: each bad field with its message; empty otherwise.
    #[schema(value_type = Object)]
    pub fields: std::collections::BTreeMap<String, String>,
}

/// `GET /api/v1/openapi.json`: this API's OpenAPI 3 document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json"))
)]
pub async fn openapi_json() -> Response {
    axum::Json(ApiDoc::openapi()).into_response()
}

async fn not_found() -> Response {
    ApiError(WebError::NotFound("there is no such API endpoint".into())).into_response()
}

/// A [`WebError`] answered as JSON.
#[derive(Debug)]
pub struct ApiError(pub WebError);

impl<E: Into<WebError>> From<E> for ApiError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.into_json_response()
    }
}

/// The result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// A 422 naming one field.
pub fn invalid_field(field: &str, message: impl Into<String>) -> ApiError {
    let mut fields = std::collections::BTreeMap::new();
    fields.insert(field.to_owned(), message.into());
    ApiError(WebError::Invalid {
        error: format!("the {field} is invalid"),
        fields,
    })
}

/// A 413 in the API's error shape (there is no [`WebError`] for it: only the API limits
/// bodies this way).
pub fn payload_too_large() -> Response {
    let body = serde_json::json!({
        "error": format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        "fields": {},
    });
    (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response()
}

/// A page size from `?limit=`: `default` when absent, else 1 to `max`.
///
/// # Errors
/// 422 naming `limit` when out of range.
pub fn page_limit(limit: Option<u32>, default: u32, max: u32) -> ApiResult<u32> {
    match limit {
        None => Ok(default),
        Some(limit) if (1..=max).contains(&limit) => Ok(limit),
        Some(_) => Err(invalid_field(
            "limit",
            format!("give a limit from 1 to {max}"),
        )),
    }
}
