//! The console's pages through the real router: the guard on every page, roles, HTML
//! escaping, dashboard filters and paging, and a run's log.

use std::time::Duration;

use batchboard::job::JobSettings;
use batchboard::store::Role;
use reqwest::StatusCode;

use crate::helpers::{
    app_with_jobs, assert_redirect_to, capture_run_logs, job, run_to_the_end, signed_in,
};

const HOSTILE: &str = "<script>alert(1)</script>";

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

/// GET `path` as htmx does when it swaps the element `target`.
async fn htmx_get(
    client: &crate::helpers::TestClient,
    path: &str,
    target: &str,
) -> reqwest::Response {
    client
        .client
        .get(client.url(path))
        .header("HX-Request", "true")
        .header("HX-Target", target)
        .send()
        .await
        .expect("the request is answered")
}

#[tokio::test]
async fn filters_answered_by_htmx_swap_their_part_and_set_the_address() {
    let app = app_with_jobs(vec![job("inventory-sync", "5m")]).await;
    let admin = signed_in(&app, "ada", Role::Admin).await;
    run_to_the_end(&app, &admin, "inventory-sync").await;
    let token = admin.csrf_token().await;
    let paused = admin
        .post_form("/jobs/inventory-sync/pause", &[("csrf_token", &token)])
        .await;
    assert_redirect_to(&paused, "/jobs/inventory-sync");

    // The job page's run filters: the runs alone, the address without empty filters.
    let runs = htmx_get(
        &admin,
        "/jobs/inventory-sync?status=&trigger=manual",
        "runs",
    )
    .await;
    assert_eq!(runs.status(), StatusCode::OK);
    assert_eq!(
        runs.headers()["HX-Push-Url"],
        "/jobs/inventory-sync?trigger=manual"
    );
    let html = runs.text().await.expect("a body");
    assert!(
        html.trim_start().starts_with("<section id=\"runs\""),
        "{html}"
    );
    assert!(
        html.contains("<option value=\"manual\" selected>"),
        "{html}"
    );
    assert!(!html.contains("id=\"schedule\""), "only the runs: {html}");

    // The settings' refresh reads the whole page (it selects its part itself).
    let page = htmx_get(&admin, "/jobs/inventory-sync", "job-settings").await;
    assert!(page.headers().get("HX-Push-Url").is_none());
    assert!(
        page.text()
            .await
            .expect("a body")
            .contains("id=\"job-settings\"")
    );

    // The history's job filter.
    let changes = htmx_get(&admin, "/history?job=inventory-sync", "changes").await;
    assert_eq!(changes.status(), StatusCode::OK);
    assert_eq!(
        changes.headers()["HX-Push-Url"],
        "/history?job=inventory-sync"
    );
    let html = changes.text().await.expect("a body");
    assert!(
        html.trim_start().starts_with("<section id=\"changes\""),
        "{html}"
    );
    assert!(html.contains("<code>paused</code>"), "{html}");
    let all = htmx_get(&admin, "/history?job=", "changes").await;
    assert_eq!(all.headers()["HX-Push-Url"], "/history");

    // Without htmx, the same addresses are whole pages.
    let whole = admin.get("/history?job=inventory-sync").await;
    assert!(whole.headers().get("HX-Push-Url").is_none());
    assert!(whole.text().await.expect("a body").contains("<html"));
}
