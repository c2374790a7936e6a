//! Changing jobs through the console: roles and CSRF on every change, validation that
//! saves nothing, saves that reach the scheduler and the history, version conflicts, and
//! the actions.

use batchboard::clock::Clock;
use batchboard::scheduler::EditError;
use batchboard::store::{ChangeFilter, JobChangeRecord, JobRecord, Role};
use reqwest::StatusCode;

use crate::helpers::{TestApp, TestClient, assert_redirect_to};
use crate::helpers::{app_with_jobs, job, signed_in};

const JOB: &str = "inventory-sync";

async fn app() -> TestApp {
    app_with_jobs(vec![job(JOB, "5m"), job("price-refresh", "1h")]).await
}

async fn stored_job(app: &TestApp) -> JobRecord {
    app.store
        .job_by_name(JOB)
        .await
        .expect("the store answers")
        .expect("the job exists")
}

async fn changes(app: &TestApp) -> Vec<JobChangeRecord> {
    app.store
        .job_changes(&ChangeFilter {
            job_id: None,
            before: None,
            limit: 1000,
        })
        .await
        .expect("the store answers")
}

/// What a change could touch: the job's editable state, its history, the runs, the users.
async fn snapshot(app: &TestApp) -> String {
    let job = stored_job(app).await;
    let runs = app
        .store
        .runs(&batchboard::store::RunFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("the store answers");
    let users = app.store.users().await.expect("the store answers");
    format!(
        "{:?} {:?} {} {:?} {} {} {:?}",
        job.overrides,
        job.next_run_at,
        job.version,
        job.paused,
        changes(app).await.len(),
        runs.len(),
        users
            .iter()
            .map(|u| (&u.name, u.role, u.disabled, &u.password_hash))
            .collect::<Vec<_>>()
    )
}

/// The schedule form as a browser would post it: only the interval filled in.
fn interval_form(every: &str, version: i64, token: &str) -> Vec<(String, String)> {
    [
        ("csrf_token", token.to_owned()),
        ("version", version.to_string()),
        ("kind", "interval".to_owned()),
        ("every", every.to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .to_vec()
}

fn cron_form(cron: &str, timezone: &str, version: i64, token: &str) -> Vec<(String, String)> {
    [
        ("csrf_token", token.to_owned()),
        ("version", version.to_string()),
        ("kind", "cron".to_owned()),
        ("cron", cron.to_owned()),
        ("timezone", timezone.to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .to_vec()
}

async fn post(client: &TestClient, path: &str, form: &[(String, String)]) -> reqwest::Response {
    client
        .client
        .post(client.url(path))
        .form(form)
        .send()
        .await
        .expect("the request is answered")
}

async fn post_htmx(
    client: &TestClient,
    path: &str,
    form: &[(String, String)],
) -> reqwest::Response {
    client
        .client
        .post(client.url(path))
        .header("HX-Request", "true")
        .form(form)
        .send()
        .await
        .expect("the request is answered")
}

/// Every change route with a form that would succeed for an operator.
async fn change_routes(app: &TestApp, token: &str) -> Vec<(String, Vec<(String, String)>)> {
    let version = stored_job(app).await.version;
    let token_only = vec![("csrf_token".to_owned(), token.to_owned())];
    let user = app
        .store
        .user_by_name("otto")
        .await
        .expect("store")
        .expect("otto");
    vec![
        (
            format!("/jobs/{JOB}/settings"),
            interval_form("1h", version, token),
        ),
        (format!("/jobs/{JOB}/run"), token_only.clone()),
        (format!("/jobs/{JOB}/pause"), token_only.clone()),
        ("/jobs/price-refresh/resume".to_owned(), token_only.clone()),
        (
            format!("/jobs/{JOB}/reset"),
            vec![
                ("csrf_token".to_owned(), token.to_owned()),
                ("version".to_owned(), version.to_string()),
                ("field".to_owned(), String::new()),
            ],
        ),
        ("/runs/1/cancel".to_owned(), token_only.clone()),
        (
            "/users".to_owned(),
            vec![
                ("csrf_token".to_owned(), token.to_owned()),
                ("name".to_owned(), "mallory".to_owned()),
                ("role".to_owned(), "admin".to_owned()),
                ("password".to_owned(), "a-long-enough-password".to_owned()),
            ],
        ),
        (
            format!("/users/{}/role", user.id),
            vec![
                ("csrf_token".to_owned(), token.to_owned()),
                ("role".to_owned(), "viewer".to_owned()),
            ],
        ),
    ]
}

#[tokio::test]
async fn a_viewer_is_refused_every_change_and_nothing_changes() {
    let app = app().await;
    let _otto = signed_in(&app, "otto", Role::Operator).await;
    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    let before = snapshot(&app).await;
    let token = viewer.csrf_token().await;
    for (path, form) in change_routes(&app, &token).await {
        let response = post(&viewer, &path, &form).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "POST {path}");
        let response = post_htmx(&viewer, &path, &form).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "htmx POST {path}");
    }
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn a_change_without_a_valid_csrf_token_is_refused_and_nothing_changes() {
    let app = app().await;
    let admin = signed_in(&app, "ada", Role::Admin).await;
    let _otto = signed_in(&app, "otto", Role::Operator).await;
    let before = snapshot(&app).await;
    let token = admin.csrf_token().await;
    for (path, form) in change_routes(&app, &token).await {
        let without: Vec<_> = form
            .iter()
            .filter(|(key, _)| key != "csrf_token")
            .cloned()
            .collect();
        let response = post(&admin, &path, &without).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "no token: {path}");
        let mut wrong = without.clone();
        wrong.push(("csrf_token".to_owned(), format!("{token}x")));
        let response = post(&admin, &path, &wrong).await;
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "wrong token: {path}"
        );
    }
    assert_eq!(snapshot(&app).await, before);
}

/// askama's escaping of text, to find a message in the HTML.
fn escaped(text: &str) -> String {
    text.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// The text of the element `id="{id}"` in `html`, up to its first tag.
fn text_of(html: &str, id: &str) -> Option<String> {
    let start = html.find(&format!(r#"id="{id}""#))?;
    let rest = &html[start..];
    let open = rest.find('>')? + 1;
    let close = rest[open..].find('<')? + open;
    Some(rest[open..close].trim().to_owned())
}

#[tokio::test]
async fn invalid_schedules_are_refused_with_their_message_and_nothing_is_saved() {
    let app = app().await;
    let operator = signed_in(&app, "otto", Role::Operator).await;
    let token = operator.csrf_token().await;
    let job = stored_job(&app).await;
    let before = snapshot(&app).await;
    let cases = [
        ("every", interval_form("0s", job.version, &token)),
        ("cron", cron_form("61 * * * *", "UTC", job.version, &token)),
        (
            "timezone",
            cron_form("0 3 * * *", "Mars/Base", job.version, &token),
        ),
    ];
    for (field, form) in cases {
        for htmx in [false, true] {
            let path = format!("/jobs/{JOB}/settings");
            let response = if htmx {
                post_htmx(&operator, &path, &form).await
            } else {
                post(&operator, &path, &form).await
            };
            assert_eq!(
                response.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{field} (htmx: {htmx})"
            );
            let html = response.text().await.expect("a body");
            let message = text_of(&html, &format!("{field}-error"))
                .unwrap_or_else(|| panic!("no message next to {field}: {html}"));
            assert!(!message.is_empty(), "an empty message for {field}");
            assert!(
                html.contains(&format!(r#"id="{field}-error""#)),
                "{field}'s message is tied to it"
            );
            if !htmx {
                assert!(html.contains("<nav aria-label=\"Main\">"), "a whole page");
            }
        }
    }
    // The engine's own words for the interval.
    let expected = batchboard::schedule::Schedule::parse(Some("0s"), None, None)
        .expect_err("0s is refused")
        .message;
    let html = post(
        &operator,
        &format!("/jobs/{JOB}/settings"),
        &interval_form("0s", job.version, &token),
    )
    .await
    .text()
    .await
    .expect("a body");
    assert!(html.contains(&escaped(&expected)), "{expected:?} in {html}");
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn a_valid_interval_moves_the_next_fire_and_is_in_the_history() {
    let app = app().await;
    let operator = signed_in(&app, "otto", Role::Operator).await;
    let token = operator.csrf_token().await;
    let job = stored_job(&app).await;
    let old_next = job.next_run_at.expect("a scheduled job");

    let response = post(
        &operator,
        &format!("/jobs/{JOB}/settings"),
        &interval_form("3h", job.version, &token),
    )
    .await;
    assert_redirect_to(&response, &format!("/jobs/{JOB}"));

    let saved = stored_job(&app).await;
    assert_eq!(saved.version, job.version + 1);
    assert_eq!(saved.overrides.get("every"), Some(&serde_json::json!("3h")));
    let new_next = saved.next_run_at.expect("still scheduled");
    assert_ne!(new_next, old_next, "the next fire moved");
    assert!(
        new_next - app.clock.now() > chrono::Duration::hours(2),
        "the next fire follows the 3 h interval: {new_next}"
    );

    let changes = changes(&app).await;
    let change = changes
        .iter()
        .find(|c| c.field == "every")
        .expect("the change is recorded");
    assert_eq!(change.actor, "otto");
    assert_eq!(change.job_name, JOB);
    assert_eq!(change.new_value, Some(serde_json::json!("3h")));

    let history = operator.get("/history").await.text().await.expect("a body");
    assert!(history.contains("otto"), "{history}");
    assert!(history.contains(">3h<"), "{history}");
    let page = operator
        .get(&format!("/jobs/{JOB}"))
        .await
        .text()
        .await
        .expect("a body");
    assert!(page.contains(&format!(r#"name="version" value="{}""#, saved.version)));
}

#[tokio::test]
async fn saving_the_form_as_it_is_shown_changes_nothing() {
    let app = app().await;
    let operator = signed_in(&app, "otto", Role::Operator).await;
    let token = operator.csrf_token().await;
    let job = stored_job(&app).await;
    let before = snapshot(&app).await;
    // What a browser posts for the untouched form: every field, the policies' selects
    // on their first choice since the job leaves them unset.
    let mut form = interval_form("5m", job.version, &token);
    for (field, value) in [
        ("cron", ""),
        ("timezone", ""),
        ("jitter", ""),
        ("timeout", ""),
        ("max_attempts", ""),
        ("backoff", ""),
        ("max_backoff", ""),
        ("concurrency", "forbid"),
        ("misfire", "run_once"),
    ] {
        form.push((field.to_owned(), value.to_owned()));
    }
    let response = post(&operator, &format!("/jobs/{JOB}/settings"), &form).await;
    assert_redirect_to(&response, &format!("/jobs/{JOB}"));
    assert_eq!(
        snapshot(&app).await,
        before,
        "no override, no history, same version"
    );
}

#[tokio::test]
async fn an_htmx_save_answers_the_new_form_and_the_job_changed_event() {
    let app = app().await;
    let operator = signed_in(&app, "otto", Role::Operator).await;
    let token = operator.csrf_token().await;
    let job = stored_job(&app).await;
    let response = post_htmx(
        &operator,
        &format!("/jobs/{JOB}/settings"),
        &interval_form("2h", job.version, &token),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get("HX-Trigger")
            .and_then(|v| v.to_str().ok()),
        Some("job-changed")
    );
    let html = response.text().await.expect("a body");
    let saved = stored_job(&app).await;
    assert_eq!(saved.version, job.version + 1);
    assert!(
        html.starts_with("<section id=\"schedule\""),
        "a partial: {html}"
    );
    assert!(
        html.contains(&format!(r#"name="version" value="{}""#, saved.version)),
        "the form carries the new version"
    );
    // The summary the event refreshes shows the new state.
    let summary = operator
        .get(&format!("/jobs/{JOB}/summary"))
        .await
        .text()
        .await
        .expect("a body");
    assert!(summary.contains("every 2 hours"), "{summary}");
    let next = saved.next_run_at.expect("scheduled");
    assert!(summary.contains(&next.format("%Y-%m-%d %H:%M:%S").to_string()));
    assert!(summary.contains(&format!("<dd>{}</dd>", saved.version)));
}

#[tokio::test]
async fn a_save_from_a_stale_page_is_refused_as_a_conflict() {
    let app = app().await;
    let first = signed_in(&app, "otto", Role::Operator).await;
    let second = signed_in(&app, "olga", Role::Operator).await;
    let job = stored_job(&app).await;
    let token = first.csrf_token().await;
    let response = post(
        &first,
        &format!("/jobs/{JOB}/settings"),
        &interval_form("2h", job.version, &token),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let before = snapshot(&app).await;

    let token = second.csrf_token().await;
    for htmx in [false, true] {
        let form = interval_form("10m", job.version, &token);
        let path = format!("/jobs/{JOB}/settings");
        let response = if htmx {
            post_htmx(&second, &path, &form).await
        } else {
            post(&second, &path, &form).await
        };
        assert_eq!(response.status(), StatusCode::CONFLICT, "htmx: {htmx}");
        let html = response.text().await.expect("a body");
        assert!(
            html.contains(&escaped(&EditError::Conflict.to_string())),
            "{html}"
        );
        // The form now holds the saved values and version, ready to try again.
        assert!(html.contains(&format!(r#"name="version" value="{}""#, job.version + 1)));
    }
    assert_eq!(snapshot(&app).await, before);
    assert_eq!(
        stored_job(&app).await.overrides.get("every"),
        Some(&serde_json::json!("2h"))
    );
}

#[tokio::test]
async fn run_now_starts_a_run_and_shows_it() {
    let app = app().await;
    let operator = signed_in(&app, "otto", Role::Operator).await;
    let token = operator.csrf_token().await;
    let response = operator
        .post_form(&format!("/jobs/{JOB}/run"), &[("csrf_token", &token)])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("a Location")
        .to_owned();
    let id: i64 = location
        .strip_prefix("/runs/")
        .and_then(|id| id.parse().ok())
        .expect("a run URL");
    let run = app.store.run(id).await.expect("store").expect("the run");
    assert_eq!(run.job_id, stored_job(&app).await.id);
    assert_eq!(run.trigger, batchboard::store::Trigger::Manual);
    assert_eq!(operator.get(&location).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn pause_and_resume_take_effect_and_are_in_the_history() {
    let app = app().await;
    let operator = signed_in(&app, "otto", Role::Operator).await;
    let token = operator.csrf_token().await;

    let response = operator
        .post_form(&format!("/jobs/{JOB}/pause"), &[("csrf_token", &token)])
        .await;
    assert_redirect_to(&response, &format!("/jobs/{JOB}"));
    assert!(stored_job(&app).await.paused);
    let page = operator
        .get(&format!("/jobs/{JOB}"))
        .await
        .text()
        .await
        .expect("a body");
    assert!(page.contains(&format!(r#"action="/jobs/{JOB}/resume""#)));

    let response = operator
        .post_form(&format!("/jobs/{JOB}/resume"), &[("csrf_token", &token)])
        .await;
    assert_redirect_to(&response, &format!("/jobs/{JOB}"));
    assert!(!stored_job(&app).await.paused);

    let recorded: Vec<_> = changes(&app)
        .await
        .into_iter()
        .filter(|c| c.job_name == JOB && c.actor == "otto")
        .collect();
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    let history = operator.get("/history").await.text().await.expect("a body");
    assert_eq!(history.matches("<td>otto</td>").count(), 2, "{history}");
}
