//! Reading what a request names, the same way for the console and the API.

use super::error::{WebError, WebResult};
use super::state::AppState;
use crate::store::JobRecord;

/// The job named `name`.
///
/// # Errors
/// [`WebError::NotFound`] when there is none; [`WebError::Internal`] when the store
/// fails.
pub async fn load_job(state: &AppState, name: &str) -> WebResult<JobRecord> {
    state
        .store
        .job_by_name(name)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("there is no job named {name:?}")))
}
