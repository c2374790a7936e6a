//! The console's pages through the real router: the guard on every page, roles, HTML
//! escaping, dashboard filters and paging, and a run's log.

use std::time::Duration;

use batchboard::job::JobSettings;
use batchboard::store::{Role, RunStatus};
use reqwest::StatusCode;

use crate::helpers::{
    TestApp, TestClient, USER_PASSWORD, assert_redirect_to, spawn_app_with, test_settings,
};

const HOSTILE: &str = "<script>alert(1)</script>";

/// A demo job that runs quickly and never fails.
pub fn job(name: &str, every: &str) -> JobSettings {
    JobSettings {
        name: name.into(),
        handler: "demo_inventory".into(),
        every: Some(every.into()),
        // Fast and certain: three items, no delay, never fails.
        params: Some(serde_json::json!({"items": 3, "item_delay_ms": 0, "fail_chance": 0})),
        ..JobSettings::default()
    }
}

/// An app whose jobs are `jobs`.
pub async fn app_with_jobs(jobs: Vec<JobSettings>) -> TestApp {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut settings = test_settings(dir.path());
    settings.jobs = jobs;
    spawn_app_with(settings, dir).await
}

/// A client signed in as a new user named `name` with `role`.
pub async fn signed_in(app: &TestApp, name: &str, role: Role) -> TestClient {
    app.create_user(name, role).await;
    let client = app.with_new_client();
    client.login_ok(name, USER_PASSWORD).await;
    client
}

/// Starts a run of `job` through the console as `client` and waits (with a deadline)
/// until the store has it finished; returns its id.
pub async fn run_to_the_end(app: &TestApp, client: &TestClient, job: &str) -> i64 {
    let token = client.csrf_token().await;
    let response = client
        .post_form(&format!("/jobs/{job}/run"), &[("csrf_token", &token)])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .expect("a Location");
    let id: i64 = location
        .strip_prefix("/runs/")
        .and_then(|id| id.parse().ok())
        .expect("a run URL");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let run = app.store.run(id).await.expect("store").expect("the run");
        if run.status != RunStatus::Running {
            assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
            return id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run did not finish in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every page a signed-in user can GET, with a run to point at.
fn page_routes(run: i64) -> Vec<String> {
    vec![
        "/".into(),
        "/jobs/inventory-sync".into(),
        format!("/runs/{run}"),
        format!("/runs/{run}/log"),
        "/history".into(),
        "/users".into(),
        "/jobs/inventory-sync/summary".into(),
        "/jobs/inventory-sync/schedule-preview?kind=interval&every=5m".into(),
    ]
}

#[tokio::test]
async fn every_page_without_a_session_redirects_to_login_with_its_path() {
    let app = app_with_jobs(vec![job("inventory-sync", "5m")]).await;
    let admin = signed_in(&app, "ada", Role::Admin).await;
    let run = run_to_the_end(&app, &admin, "inventory-sync").await;
    let anonymous = app.with_new_client();
    for path in page_routes(run) {
        let response = anonymous.get(&path).await;
        let expected = format!(
            "/login?next={}",
            path.replace('?', "%3F")
                .replace('=', "%3D")
                .replace('&', "%26")
        );
        assert_redirect_to(&response, &expected);
    }
}

#[tokio::test]
async fn a_viewer_sees_every_page_but_users() {
    let app = app_with_jobs(vec![job("inventory-sync", "5m")]).await;
    let admin = signed_in(&app, "ada", Role::Admin).await;
    let run = run_to_the_end(&app, &admin, "inventory-sync").await;
    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    for path in page_routes(run) {
        let status = viewer.get(&path).await.status();
        let expected = if path == "/users" {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::OK
        };
        assert_eq!(status, expected, "GET {path}");
    }
}

#[tokio::test]
async fn a_viewer_sees_the_schedule_read_only_and_no_action_buttons() {
    let app = app_with_jobs(vec![job("inventory-sync", "5m")]).await;
    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    let html = viewer
        .get("/jobs/inventory-sync")
        .await
        .text()
        .await
        .expect("a body");
    assert!(html.contains(r#"<section id="schedule""#), "{html}");
    assert!(html.contains(r#"value="5m""#), "the interval is shown");
    assert!(!html.contains(">Save</button>"));
    assert!(!html.contains(r#"action="/jobs/inventory-sync/run""#));
    assert!(!html.contains(r#"action="/jobs/inventory-sync/pause""#));

    let operator = signed_in(&app, "otto", Role::Operator).await;
    let html = operator
        .get("/jobs/inventory-sync")
        .await
        .text()
        .await
        .expect("a body");
    assert!(html.contains(">Save</button>"));
    assert!(html.contains(r#"action="/jobs/inventory-sync/run""#));
    assert!(html.contains(r#"action="/jobs/inventory-sync/pause""#));
    assert!(html.contains(r#"hx-get="/jobs/inventory-sync/schedule-preview""#));
    assert!(html.contains(r#"hx-trigger="job-changed from:body""#));
}

#[tokio::test]
async fn html_in_a_description_renders_as_text_on_the_job_page() {
    let mut hostile = job("inventory-sync", "5m");
    hostile.description = Some(HOSTILE.into());
    let app = app_with_jobs(vec![hostile]).await;
    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    let dashboard = viewer.get("/").await.text().await.expect("a body");
    assert!(dashboard.contains("inventory-sync"));
    assert!(!dashboard.contains(HOSTILE));
    for path in ["/jobs/inventory-sync", "/jobs/inventory-sync/summary"] {
        let html = viewer.get(path).await.text().await.expect("a body");
        assert!(!html.contains(HOSTILE), "GET {path} let markup through");
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "GET {path} does not show the description: {html}"
        );
    }
}

/// The job names linked from a dashboard page, in order.
fn dashboard_jobs(html: &str) -> Vec<String> {
    html.split(r#"href="/jobs/"#)
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .fold(Vec::new(), |mut names, name| {
            if names.last() != Some(&name) {
                names.push(name);
            }
            names
        })
}

#[tokio::test]
async fn the_dashboard_filters_by_name_and_state() {
    let app = app_with_jobs(vec![
        job("inventory-sync", "5m"),
        job("price-refresh", "1h"),
        job("inventory-audit", "1d"),
    ])
    .await;
    let operator = signed_in(&app, "otto", Role::Operator).await;
    let html = operator
        .get("/?q=inventory")
        .await
        .text()
        .await
        .expect("a body");
    assert_eq!(dashboard_jobs(&html), ["inventory-audit", "inventory-sync"]);

    let token = operator.csrf_token().await;
    let paused = operator
        .post_form("/jobs/price-refresh/pause", &[("csrf_token", &token)])
        .await;
    assert_redirect_to(&paused, "/jobs/price-refresh");
    let html = operator
        .get("/?state=paused")
        .await
        .text()
        .await
        .expect("a body");
    assert_eq!(dashboard_jobs(&html), ["price-refresh"]);
    let html = operator
        .get("/?state=enabled&q=audit")
        .await
        .text()
        .await
        .expect("a body");
    assert_eq!(dashboard_jobs(&html), ["inventory-audit"]);
}

#[tokio::test]
async fn the_dashboard_pages_by_name_after_the_last_one_shown() {
    let jobs: Vec<JobSettings> = (0..55).map(|i| job(&format!("job-{i:03}"), "1h")).collect();
    let app = app_with_jobs(jobs).await;
    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    let first = viewer.get("/").await.text().await.expect("a body");
    let names = dashboard_jobs(&first);
    assert_eq!(names.len(), 50, "{names:?}");
    assert_eq!(names.first().map(String::as_str), Some("job-000"));
    assert_eq!(names.last().map(String::as_str), Some("job-049"));
    assert!(first.contains("after=job-049"), "a link to the next page");

    let second = viewer
        .get("/?after=job-049")
        .await
        .text()
        .await
        .expect("a body");
    assert_eq!(
        dashboard_jobs(&second),
        ["job-050", "job-051", "job-052", "job-053", "job-054"]
    );
}

/// Captures runs' log lines, as the binary does at start-up: the run-log layer over the
/// process's global subscriber (once for the whole test binary).
pub fn capture_run_logs() {
    use tracing_subscriber::layer::SubscriberExt;
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber =
            tracing_subscriber::registry().with(batchboard::runlog::RunLogLayer::filtered());
        // Another test may have installed one first; then runs are captured by that one.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

#[tokio::test]
async fn a_run_page_shows_the_runs_log_lines() {
    capture_run_logs();
    let app = app_with_jobs(vec![job("price-refresh", "1h")]).await;
    let operator = signed_in(&app, "otto", Role::Operator).await;
    let run = run_to_the_end(&app, &operator, "price-refresh").await;
    // Log lines are written in batches beside the run: wait for the last one.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let stored = loop {
        let lines = app
            .store
            .run_logs(run, None, 1000)
            .await
            .expect("the log lines");
        if lines
            .iter()
            .any(|(_, line)| line.message.contains("finished"))
        {
            break lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run's log was not stored in time: {lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let html = operator
        .get(&format!("/runs/{run}"))
        .await
        .text()
        .await
        .expect("a body");
    for (_, line) in &stored {
        assert!(
            html.contains(&line.message),
            "the page misses {:?}: {html}",
            line.message
        );
    }
    let log = operator
        .get(&format!("/runs/{run}/log"))
        .await
        .text()
        .await
        .expect("a body");
    assert!(log.contains(&stored[0].1.message));
}
