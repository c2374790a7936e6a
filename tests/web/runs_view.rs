//! The runs of every job: the runs view (`/runs`) and `GET /api/v1/runs`, with the same
//! filters in the URL (status, job, trigger, time range, error text) and keyset pages;
//! the dashboard's failure count leads there.

use batchboard::store::{Role, RunStatus, Trigger};
use chrono::{DateTime, Duration, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, TestClient, app_with_jobs, finished_run, job, signed_in};

fn at(hour: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .single()
        .expect("a valid time")
        + Duration::hours(hour)
}

/// Two jobs: `export` with 55 successes an hour apart, then `sync` with a timeout
/// (dead), a failure and a manual success.
async fn seeded_app() -> (TestApp, Vec<i64>) {
    let app = app_with_jobs(vec![job("export", "1h"), job("sync", "1h")]).await;
    let id = |name: &'static str| {
        let store = app.store.clone();
        async move {
            store
                .job_by_name(name)
                .await
                .expect("reads")
                .expect("exists")
                .id
        }
    };
    let (export, sync) = (id("export").await, id("sync").await);
    let mut ids = Vec::new();
    for hour in 0..55 {
        ids.push(
            finished_run(
                &app.store,
                export,
                Trigger::Schedule,
                at(hour),
                RunStatus::Succeeded,
                None,
            )
            .await,
        );
    }
    ids.push(
        finished_run(
            &app.store,
            sync,
            Trigger::Schedule,
            at(60),
            RunStatus::Dead,
            Some("Upstream TIMED OUT after 30s"),
        )
        .await,
    );
    ids.push(
        finished_run(
            &app.store,
            sync,
            Trigger::Retry,
            at(61),
            RunStatus::Failed,
            Some("connection refused"),
        )
        .await,
    );
    ids.push(
        finished_run(
            &app.store,
            sync,
            Trigger::Manual,
            at(62),
            RunStatus::Succeeded,
            None,
        )
        .await,
    );
    (app, ids)
}

async fn api(client: &TestClient, query: &str) -> (StatusCode, Value) {
    let response = client.get(&format!("/api/v1/runs{query}")).await;
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

fn ids_of(answer: &Value) -> Vec<i64> {
    answer["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|run| run["id"].as_i64().expect("an id"))
        .collect()
}

#[tokio::test]
async fn the_api_lists_every_jobs_runs_newest_first_by_filter_and_keyset_page() {
    let (app, ids) = seeded_app().await;
    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();

    let (status, first) = api(&viewer, "").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(ids_of(&first), newest_first[..50]);
    let next = first["next_before"].as_i64().expect("a next page");
    let (_, second) = api(&viewer, &format!("?before={next}")).await;
    assert_eq!(ids_of(&second), newest_first[50..]);
    assert_eq!(second["next_before"], Value::Null);

    let (_, failures) = api(&viewer, "?status=failures").await;
    assert_eq!(ids_of(&failures), [ids[56], ids[55]]);
    let (_, dead) = api(&viewer, "?status=dead&job=sync").await;
    assert_eq!(ids_of(&dead), [ids[55]]);
    let (_, manual) = api(&viewer, "?trigger=manual").await;
    assert_eq!(ids_of(&manual), [ids[57]]);
    let (_, window) = api(
        &viewer,
        "?job=export&from=2026-11-01T10:00&until=2026-11-01T12:00",
    )
    .await;
    assert_eq!(ids_of(&window), [ids[11], ids[10]]);
    let (_, text) = api(&viewer, "?error=timed%20out").await;
    assert_eq!(
        ids_of(&text),
        [ids[55]],
        "the error text matches whatever the case"
    );
    let (_, limited) = api(&viewer, "?limit=2&job=export").await;
    assert_eq!(ids_of(&limited), [ids[54], ids[53]]);

    for (query, field) in [
        ("?status=exploded", "status"),
        ("?trigger=cosmic", "trigger"),
        ("?job=nope", "job"),
        ("?from=yesterday", "from"),
        ("?from=2026-11-02&until=2026-11-01", "until"),
        ("?limit=5000", "limit"),
    ] {
        let (status, answer) = api(&viewer, query).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {answer}"
        );
        assert!(answer["fields"][field].is_string(), "{query}: {answer}");
    }
}

#[tokio::test]
async fn the_runs_view_filters_by_the_url_pages_with_the_filters_and_explains_a_bad_one() {
    let (app, ids) = seeded_app().await;
    let viewer = signed_in(&app, "vera", Role::Viewer).await;

    let response = viewer.get("/runs").await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.expect("a body");
    assert!(
        page.contains(&format!("href=\"/runs/{}\"", ids[57])),
        "the newest run"
    );
    assert!(
        !page.contains(&format!("href=\"/runs/{}\"", ids[0])),
        "the oldest is on page 2"
    );
    assert!(
        page.contains(&format!("href=\"/runs?before={}\"", ids[8])),
        "{page}"
    );

    let page = viewer
        .get("/runs?status=failures&error=TIMED")
        .await
        .text()
        .await
        .expect("a body");
    assert!(
        page.contains(&format!("href=\"/runs/{}\"", ids[55])),
        "{page}"
    );
    assert!(
        !page.contains(&format!("href=\"/runs/{}\"", ids[56])),
        "{page}"
    );
    assert!(page.contains("Upstream TIMED OUT after 30s"));
    assert!(
        page.contains("<option value=\"failures\" selected>"),
        "the form keeps the filter"
    );

    let page = viewer
        .get("/runs?job=export")
        .await
        .text()
        .await
        .expect("a body");
    assert!(
        page.contains(&format!("href=\"/runs?job=export&#38;before={}\"", ids[5])),
        "the next page keeps the filter: {page}"
    );

    let response = viewer.get("/runs?job=%3Cscript%3E").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.expect("a body");
    assert!(page.contains("job: there is no job named"), "{page}");
    assert!(!page.contains("<script>"), "escaped: {page}");
}

#[tokio::test]
async fn the_dashboards_failure_count_leads_to_those_failures() {
    let app = app_with_jobs(vec![job("export", "1h")]).await;
    let export = app
        .store
        .job_by_name("export")
        .await
        .expect("reads")
        .expect("exists")
        .id;
    let now = Utc::now();
    let failed = finished_run(
        &app.store,
        export,
        Trigger::Schedule,
        now - Duration::hours(1),
        RunStatus::Failed,
        Some("boom"),
    )
    .await;
    let old = finished_run(
        &app.store,
        export,
        Trigger::Schedule,
        now - Duration::days(3),
        RunStatus::Failed,
        Some("old"),
    )
    .await;
    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    let dashboard = viewer.get("/").await.text().await.expect("a body");
    let start = dashboard
        .find("id=\"failed-24h\" href=\"")
        .expect("the count links")
        + 22;
    let href = &dashboard[start..start + dashboard[start..].find('"').expect("an end")];
    let href = href.replace("&#38;", "&");
    assert!(href.starts_with("/runs?status=failures&from="), "{href}");
    let page = viewer.get(&href).await.text().await.expect("a body");
    assert!(page.contains(&format!("href=\"/runs/{failed}\"")), "{page}");
    assert!(
        !page.contains(&format!("href=\"/runs/{old}\"")),
        "outside the window"
    );
}
