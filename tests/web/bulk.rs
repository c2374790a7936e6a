//! Bulk actions on the runs view: a confirmation that counts the runs, a count that must
//! still hold when the button is pressed, retries of dead runs (each job once), cancels
//! of queued and running runs, history rows, and roles.

use std::time::Duration;

use batchboard::store::{Role, RunStatus, Trigger};
use reqwest::StatusCode;

use crate::helpers::{app_with_jobs, finished_run, job, signed_in, start_time};

#[tokio::test]
async fn dead_runs_matching_a_filter_are_retried_once_per_job_after_a_confirmation() {
    let app = app_with_jobs(vec![
        job("alpha", "1h"),
        job("beta", "1h"),
        job("gamma", "1h"),
    ])
    .await;
    let id = |name: &'static str| {
        let store = app.store.clone();
        async move {
            store
                .job_by_name(name)
                .await
                .expect("read")
                .expect("a job")
                .id
        }
    };
    let (alpha, beta, gamma) = (id("alpha").await, id("beta").await, id("gamma").await);
    let at = start_time() - chrono::Duration::hours(1);
    let mut dead = Vec::new();
    for (minutes, job_id) in [(0, alpha), (10, alpha), (20, beta)] {
        let started = at + chrono::Duration::minutes(minutes);
        dead.push(
            finished_run(
                &app.store,
                job_id,
                Trigger::Schedule,
                started,
                RunStatus::Dead,
                Some("boom"),
            )
            .await,
        );
    }
    finished_run(
        &app.store,
        gamma,
        Trigger::Schedule,
        at,
        RunStatus::Succeeded,
        None,
    )
    .await;

    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    assert_eq!(
        viewer.get("/runs/bulk/retry").await.status(),
        StatusCode::FORBIDDEN
    );
    let runs_page = viewer.get("/runs").await.text().await.expect("a body");
    assert!(!runs_page.contains("/runs/bulk/"), "{runs_page}");

    let operator = signed_in(&app, "olga", Role::Operator).await;
    let runs_page = operator
        .get("/runs?status=failures")
        .await
        .text()
        .await
        .expect("a body");
    assert!(
        runs_page.contains("href=\"/runs/bulk/retry?status=failures\""),
        "{runs_page}"
    );
    let confirm = operator.get("/runs/bulk/retry?status=failures").await;
    assert_eq!(confirm.status(), StatusCode::OK);
    let page = confirm.text().await.expect("a body");
    assert!(
        page.contains("<strong>3 dead run(s)</strong> of 2 job(s)"),
        "{page}"
    );
    assert!(
        operator
            .get("/runs/bulk/retry?status=succeeded")
            .await
            .text()
            .await
            .expect("a body")
            .contains("nothing to do")
    );
    assert_eq!(
        operator.get("/runs/bulk/explode").await.status(),
        StatusCode::NOT_FOUND
    );

    let token = operator.csrf_token().await;
    let stale = operator
        .post_form(
            "/runs/bulk/retry?status=failures",
            &[("csrf_token", &token), ("expected", "2")],
        )
        .await;
    assert_eq!(stale.status(), StatusCode::CONFLICT);
    assert!(
        stale
            .text()
            .await
            .expect("a body")
            .contains("2 then, 3 now")
    );

    let done = operator
        .post_form(
            "/runs/bulk/retry?status=failures",
            &[("csrf_token", &token), ("expected", "3")],
        )
        .await;
    assert_eq!(done.status(), StatusCode::OK);
    let page = done.text().await.expect("a body");
    assert_eq!(
        page.matches("started <a href=\"/runs/").count(),
        2,
        "{page}"
    );

    let manual = batchboard::store::RunFilter {
        trigger: Some(Trigger::Manual),
        limit: 10,
        ..batchboard::store::RunFilter::default()
    };
    let started = app.store.runs(&manual).await.expect("read");
    let mut jobs: Vec<&str> = started.iter().map(|run| run.job_name.as_str()).collect();
    jobs.sort_unstable();
    assert_eq!(jobs, ["alpha", "beta"]);

    let changes = app
        .store
        .job_changes(&batchboard::store::ChangeFilter {
            job_id: Some(alpha),
            limit: 10,
            ..batchboard::store::ChangeFilter::default()
        })
        .await
        .expect("read");
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].field, "bulk_retry");
    assert_eq!(changes[0].actor, "olga");
    let details = changes[0].new_value.clone().expect("details");
    assert_eq!(details["dead_runs"], serde_json::json!([dead[1], dead[0]]));
}

#[tokio::test]
async fn queued_and_running_runs_matching_a_filter_are_cancelled() {
    let marker = tempfile::tempdir().expect("a directory");
    let script = format!(
        "while [ ! -f '{}' ]; do sleep 0.05; done",
        marker.path().join("never").display()
    );
    let waiting = batchboard::job::JobSettings {
        name: "waiting".into(),
        handler: "command".into(),
        every: Some("1d".into()),
        concurrency: Some("allow".into()),
        params: Some(serde_json::json!({ "program": "sh", "args": ["-c", script] })),
        ..batchboard::job::JobSettings::default()
    };
    let app = app_with_jobs(vec![waiting, job("other", "1h")]).await;
    let operator = signed_in(&app, "olga", Role::Operator).await;
    let token = operator.csrf_token().await;
    let mut runs = Vec::new();
    for _ in 0..2 {
        let response = operator
            .client
            .post(operator.url("/api/v1/jobs/waiting/run"))
            .header("X-CSRF-Token", &token)
            .send()
            .await
            .expect("answered");
        let body: serde_json::Value = response.json().await.expect("JSON");
        runs.push(body["run_id"].as_i64().expect("a run id"));
    }
    let page = operator
        .get("/runs/bulk/cancel?job=waiting")
        .await
        .text()
        .await
        .expect("a body");
    assert!(
        page.contains("<strong>2 queued or running run(s)</strong> of 1 job(s)"),
        "{page}"
    );
    let done = operator
        .post_form(
            "/runs/bulk/cancel?job=waiting",
            &[("csrf_token", &token), ("expected", "2")],
        )
        .await;
    assert_eq!(done.status(), StatusCode::OK);
    for run_id in runs {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let run = app.store.run(run_id).await.expect("read").expect("a run");
            if run.status == RunStatus::Cancelled {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{run:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let waiting_id = app
        .store
        .job_by_name("waiting")
        .await
        .expect("read")
        .expect("a job")
        .id;
    let changes = app
        .store
        .job_changes(&batchboard::store::ChangeFilter {
            job_id: Some(waiting_id),
            limit: 10,
            ..batchboard::store::ChangeFilter::default()
        })
        .await
        .expect("read");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].field, "bulk_cancel");
}
