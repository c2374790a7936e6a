//! `after` and `after_failure` in the console's schedule form: the names in force are
//! shown, saving the form as shown changes nothing, a change is checked across jobs and
//! recorded, and a job with no schedule of its own can be saved from the form.

use batchboard::job::JobSettings;
use batchboard::store::{ChangeFilter, Role};
use reqwest::StatusCode;

use crate::helpers::{TestApp, TestClient, app_with_jobs, job, signed_in};

async fn version_of(app: &TestApp, name: &str) -> i64 {
    app.store
        .job_by_name(name)
        .await
        .expect("the store answers")
        .expect("the job exists")
        .version
}

/// Posts the schedule form of `name` with `fields` on top of what it needs.
async fn save(
    app: &TestApp,
    client: &TestClient,
    name: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String) {
    let token = client.csrf_token().await;
    let mut form: Vec<(String, String)> = vec![
        ("csrf_token".into(), token),
        ("version".into(), version_of(app, name).await.to_string()),
    ];
    form.extend(
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let response = client
        .client
        .post(client.url(&format!("/jobs/{name}/settings")))
        .form(&form)
        .send()
        .await
        .expect("answered");
    let status = response.status();
    (status, response.text().await.expect("a body"))
}

#[tokio::test]
async fn the_schedule_form_edits_which_jobs_a_job_runs_after() {
    let app = app_with_jobs(vec![
        job("extract", "1h"),
        job("transform", "1h"),
        JobSettings {
            every: None,
            after: Some(vec!["extract".into()]),
            ..job("load", "1h")
        },
    ])
    .await;
    let operator = signed_in(&app, "olga", Role::Operator).await;

    // The form shows the names in force, and a job without a schedule says so.
    let page = operator
        .get("/jobs/load")
        .await
        .text()
        .await
        .expect("a body");
    assert!(page.contains("value=\"upstream\" checked"), "{page}");
    assert!(
        page.contains("id=\"after\" name=\"after\" value=\"extract\""),
        "{page}"
    );

    // A job with no schedule of its own saves from the form (here, a new timeout).
    let (status, body) = save(
        &app,
        &operator,
        "load",
        &[
            ("kind", "upstream"),
            ("after", "extract"),
            ("timeout", "5m"),
        ],
    )
    .await;
    assert!(
        status.is_success() || status.is_redirection(),
        "{status}: {body}"
    );
    let load = app
        .store
        .job_by_name("load")
        .await
        .expect("reads")
        .expect("exists");
    let settings = load.effective_settings().expect("decodes");
    assert_eq!(settings.timeout.as_deref(), Some("5m"));
    assert_eq!(settings.after, Some(vec!["extract".to_owned()]));

    // transform after extract, from the form; then a loop is refused beside its field.
    let (status, body) = save(
        &app,
        &operator,
        "transform",
        &[("kind", "interval"), ("every", "1h"), ("after", "extract")],
    )
    .await;
    assert!(
        status.is_success() || status.is_redirection(),
        "{status}: {body}"
    );
    let version = version_of(&app, "extract").await;
    let (status, body) = save(
        &app,
        &operator,
        "extract",
        &[
            ("kind", "interval"),
            ("every", "1h"),
            ("after_failure", "transform"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body.contains("the chain extract → transform → extract leads back to where it started"),
        "{body}"
    );
    assert_eq!(version_of(&app, "extract").await, version, "nothing saved");

    // Emptying the field removes the link; the history has both changes.
    let (status, body) = save(
        &app,
        &operator,
        "transform",
        &[("kind", "interval"), ("every", "1h"), ("after", "")],
    )
    .await;
    assert!(
        status.is_success() || status.is_redirection(),
        "{status}: {body}"
    );
    let transform = app
        .store
        .job_by_name("transform")
        .await
        .expect("reads")
        .expect("exists");
    let after = transform.effective_settings().expect("decodes").after;
    assert!(after.unwrap_or_default().is_empty(), "no upstream job left");
    let changes = app
        .store
        .job_changes(&ChangeFilter {
            job_id: Some(transform.id),
            limit: 100,
            ..ChangeFilter::default()
        })
        .await
        .expect("the history reads");
    let after: Vec<_> = changes.iter().filter(|c| c.field == "after").collect();
    assert_eq!(after.len(), 2, "{changes:#?}");
}
