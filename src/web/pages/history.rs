//! The history of configuration changes: who changed which setting of which job, when,
//! from what to what. Paged by keyset (`?before=<id>`), filtered by job (`?job=<name>`).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::chrome::{Chrome, query_string};
use crate::secrets::RedactionList;
use crate::store::{ChangeFilter, JobChangeRecord};
use crate::web::auth::CurrentUser;
use crate::web::csrf::CsrfToken;
use crate::web::error::WebResult;
use crate::web::htmx::{aims_at, push_url};
use crate::web::lookup::load_job;
use crate::web::redacted::shown_change;
use crate::web::state::AppState;

/// Changes per page.
const PAGE_SIZE: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct HistoryQuery {
    before: Option<i64>,
    #[serde(default)]
    job: String,
}

/// One change as the table shows it.
struct ChangeRow {
    /// RFC 3339 UTC, for `<time datetime>`.
    at_iso: String,
    at_text: String,
    actor: String,
    job: String,
    field: String,
    old_value: String,
    new_value: String,
}

impl From<JobChangeRecord> for ChangeRow {
    fn from(change: JobChangeRecord) -> Self {
        Self {
            at_iso: change
                .changed_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            at_text: change
                .changed_at
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
            actor: change.actor,
            job: change.job_name,
            field: change.field,
            old_value: shown(change.old_value.as_ref()),
            new_value: shown(change.new_value.as_ref()),
        }
    }
}

/// A stored JSON value as a person reads it: text without quotes, "not set" for none.
fn shown(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => "not set".into(),
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "history.html")]
pub(crate) struct HistoryPage {
    chrome: Chrome,
    changes: ChangesView,
}

/// The id of the changes' element, which its filter and pages swap.
const CHANGES: &str = "changes";

/// The changes with their filter and pages: the page's body, and alone the answer to an
/// htmx filter or page (see [`CHANGES`]).
#[derive(Template, WebTemplate)]
#[template(path = "history_changes_partial.html")]
pub(crate) struct ChangesView {
    job: String,
    changes: Vec<ChangeRow>,
    /// The address of the next (older) page, if there is one.
    next_url: Option<String>,
    /// The address of what this view shows, for the address bar after an htmx swap.
    url: String,
}

// The template escapes every value it shows; the page writes its output as it is.
impl askama::filters::HtmlSafe for ChangesView {}

impl ChangesView {
    /// `changes` of `job` (empty: of every job) from `before`, one more than a page when
    /// an older page exists.
    fn new(
        job: String,
        mut changes: Vec<JobChangeRecord>,
        before: Option<i64>,
        redaction: &RedactionList,
    ) -> Self {
        let url = |before: Option<i64>| {
            let before = before.map(|id| id.to_string());
            format!(
                "/history{}",
                query_string(&[("job", Some(job.as_str())), ("before", before.as_deref())])
            )
        };
        let next_before = if changes.len() > PAGE_SIZE as usize {
            changes.truncate(PAGE_SIZE as usize);
            changes.last().map(|change| change.id)
        } else {
            None
        };
        Self {
            next_url: next_before.map(|before| url(Some(before))),
            url: url(before),
            changes: changes
                .into_iter()
                .map(|change| ChangeRow::from(shown_change(change, redaction)))
                .collect(),
            job,
        }
    }
}

pub(super) async fn history(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    headers: HeaderMap,
    Query(query): Query<HistoryQuery>,
) -> WebResult<Response> {
    let job = query.job.trim().to_owned();
    let job_id = if job.is_empty() {
        None
    } else {
        Some(load_job(&state, &job).await?.id)
    };
    // One more than a page, to know whether an older page exists without counting.
    let changes = state
        .store
        .job_changes(&ChangeFilter {
            job_id,
            before: query.before,
            limit: PAGE_SIZE + 1,
        })
        .await?;
    let changes = ChangesView::new(job, changes, query.before, &state.redaction);
    if aims_at(&headers, CHANGES) {
        let url = changes.url.clone();
        return Ok(push_url(changes.into_response(), &url));
    }
    Ok(HistoryPage {
        chrome: Chrome::new(user, csrf),
        changes,
    }
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    #[test]
    fn html_in_a_job_name_or_value_renders_as_text() {
        let page = HistoryPage {
            chrome: Chrome::new(
                CurrentUser {
                    id: 1,
                    name: "viewer".into(),
                    role: crate::web::auth::Role::Viewer,
                },
                CsrfToken("t".into()),
            ),
            changes: ChangesView::new(
                String::new(),
                (0..=PAGE_SIZE)
                    .map(|_| JobChangeRecord {
                        id: 3,
                        job_id: 1,
                        job_name: "<i>sync</i>".into(),
                        actor: "<b>ada</b>".into(),
                        field: "cron".into(),
                        old_value: None,
                        new_value: Some("<script>x</script>".into()),
                        changed_at: DateTime::<Utc>::UNIX_EPOCH,
                    })
                    .collect(),
                None,
                &RedactionList::default(),
            ),
        };
        let html = page.render().expect("renders");
        assert!(!html.contains("<script>x"), "{html}");
        assert!(!html.contains("<b>ada"));
        assert!(!html.contains("<i>sync"));
        assert!(html.contains("&#60;script&#62;x"));
        assert!(html.contains("not set"));
        assert!(html.contains(r#"datetime="1970-01-01T00:00:00Z""#));
        assert!(html.contains("before=3"));
    }

    #[test]
    fn values_read_as_text_not_json() {
        assert_eq!(shown(Some(&"5m".into())), "5m");
        assert_eq!(shown(Some(&true.into())), "true");
        assert_eq!(shown(None), "not set");
    }
}
