//! The filters of a listing of runs across jobs, as the URL gives them: the same for the
//! runs view (`GET /runs`) and the API (`GET /api/v1/runs`), so a filtered view's address
//! and an API call say the same thing.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::store::{RunFilter, RunStatus, SharedStore, Trigger};
use crate::web::pages::chrome::query_string;

/// The longest error text searched for.
const MAX_ERROR_TEXT: usize = 200;

/// A listing's filters and page, as in the URL. Empty values are ignored, as a form
/// sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    /// A status (`failed`, `dead`, …), or `failures` for any failed one (failed,
    /// retrying, dead, timed out).
    pub status: Option<String>,
    /// Only runs of the job with this name.
    pub job: Option<String>,
    /// `schedule`, `manual`, `retry`, `dependency` or `catch_up`.
    pub trigger: Option<String>,
    /// Only runs that started at or after this: RFC 3339, or `YYYY-MM-DDTHH:MM` or
    /// `YYYY-MM-DD` in UTC.
    pub from: Option<String>,
    /// Only runs that started before this, written as `from` is.
    pub until: Option<String>,
    /// Only runs whose error message contains this text, whatever the case.
    pub error: Option<String>,
    /// Only runs with a smaller id: the previous page's last (`next_before`).
    pub before: Option<i64>,
    /// At most this many runs (API only; 1 to 200, default 50).
    pub limit: Option<u32>,
}

/// A filter that cannot be applied: the field and a sentence for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub field: &'static str,
    pub message: String,
}

/// Why a listing could not be filtered.
#[derive(Debug)]
pub enum FilterFailure {
    /// The query asks for something that cannot be: 422 naming the field.
    Invalid(FilterError),
    /// The job could not be looked up.
    Store(crate::store::StoreError),
}

impl From<FilterError> for FilterFailure {
    fn from(error: FilterError) -> Self {
        Self::Invalid(error)
    }
}

fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn refuse(field: &'static str, message: impl Into<String>) -> FilterError {
    FilterError {
        field,
        message: message.into(),
    }
}

/// `text` as an instant: RFC 3339, or a date and time (or a date) in UTC.
fn instant(field: &'static str, text: &str) -> Result<DateTime<Utc>, FilterError> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(time.and_utc());
        }
    }
    if let Some(midnight) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
    {
        return Ok(midnight.and_utc());
    }
    Err(refuse(
        field,
        format!("{text:?} is not a time: write 2026-11-30T14:00 (UTC) or an RFC 3339 time"),
    ))
}

impl RunsQuery {
    /// The store's filter for this query, `limit` runs at most; the job is looked up by
    /// name.
    ///
    /// # Errors
    /// [`FilterFailure::Invalid`] naming the first field that cannot be applied;
    /// [`FilterFailure::Store`] when the job cannot be looked up.
    pub async fn filter(
        &self,
        store: &SharedStore,
        limit: u32,
    ) -> Result<RunFilter, FilterFailure> {
        let mut filter = RunFilter {
            before: self.before,
            limit,
            ..RunFilter::default()
        };
        match given(&self.status) {
            None => {}
            Some("failures") => filter.any_status = RunStatus::FAILURES.to_vec(),
            Some(status) => {
                filter.status = Some(
                    status
                        .parse()
                        .map_err(|_| refuse("status", format!("unknown status {status:?}")))?,
                );
            }
        }
        if let Some(trigger) = given(&self.trigger) {
            filter.trigger = Some(
                trigger
                    .parse::<Trigger>()
                    .map_err(|_| refuse("trigger", format!("unknown trigger {trigger:?}")))?,
            );
        }
        filter.started_from = given(&self.from).map(|t| instant("from", t)).transpose()?;
        filter.started_before = given(&self.until)
            .map(|t| instant("until", t))
            .transpose()?;
        if let (Some(from), Some(until)) = (filter.started_from, filter.started_before)
            && until <= from
        {
            return Err(refuse(
                "until",
                "the end of the time range must come after its start",
            )
            .into());
        }
        if let Some(text) = given(&self.error) {
            if text.chars().count() > MAX_ERROR_TEXT {
                return Err(refuse(
                    "error",
                    format!("search for at most {MAX_ERROR_TEXT} characters of an error"),
                )
                .into());
            }
            filter.error_contains = Some(text.to_owned());
        }
        if let Some(name) = given(&self.job) {
            let job = store
                .job_by_name(name)
                .await
                .map_err(FilterFailure::Store)?
                .ok_or_else(|| refuse("job", format!("there is no job named {name:?}")))?;
            filter.job_id = Some(job.id);
        }
        Ok(filter)
    }

    /// The query string of these filters (without the page), for links that keep them.
    pub fn filters_query(&self) -> String {
        query_string(&self.filter_pairs())
    }

    /// The query string of these filters on the page before run `before`.
    pub fn page_query(&self, before: i64) -> String {
        let before = before.to_string();
        let mut pairs = self.filter_pairs();
        pairs.push(("before", Some(before.as_str())));
        query_string(&pairs)
    }

    fn filter_pairs(&self) -> Vec<(&'static str, Option<&str>)> {
        vec![
            ("status", given(&self.status)),
            ("job", given(&self.job)),
            ("trigger", given(&self.trigger)),
            ("from", given(&self.from)),
            ("until", given(&self.until)),
            ("error", given(&self.error)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_in_the_forms_people_and_browsers_write() {
        let at = |text| instant("from", text).map(|t| t.to_rfc3339());
        assert_eq!(
            at("2026-11-30T14:05"),
            Ok("2026-11-30T14:05:00+00:00".into())
        );
        assert_eq!(at("2026-11-30"), Ok("2026-11-30T00:00:00+00:00".into()));
        assert_eq!(
            at("2026-11-30T14:05:00+01:00"),
            Ok("2026-11-30T13:05:00+00:00".into())
        );
        let refused = at("yesterday").expect_err("not a time");
        assert!(
            refused.message.starts_with("\"yesterday\" is not a time"),
            "{refused:?}"
        );
    }

    #[test]
    fn links_keep_the_filters_and_drop_empty_ones() {
        let query = RunsQuery {
            status: Some("failures".into()),
            job: Some(String::new()),
            error: Some("time out & retry".into()),
            ..RunsQuery::default()
        };
        assert_eq!(
            query.filters_query(),
            "?status=failures&error=time%20out%20%26%20retry"
        );
        assert_eq!(
            query.page_query(42),
            "?status=failures&error=time%20out%20%26%20retry&before=42"
        );
    }
}
