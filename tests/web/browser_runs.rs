//! The runs view in a real browser (headless Chromium): the dashboard's "failed in the
//! last 24 h" count leads to the runs view listing those failures. The screenshot goes
//! to `artifacts/runs-view.png`.
//!
//! Without Chromium this test prints SKIP and passes (see [`crate::browser_driver`]).

use batchboard::store::{NewRun, RunFinish, RunStatus, Trigger, WriteBatch};
use chrono::{Duration, Utc};

use crate::browser_driver;
use crate::helpers::{ADMIN_PASSWORD, app_with_jobs, job};

#[tokio::test]
async fn the_failure_count_on_the_dashboard_opens_the_runs_view_with_the_failures() {
    let Some(browser) = browser_driver::start().await else {
        return;
    };
    let app = app_with_jobs(vec![job("nightly-export", "1h")]).await;
    let job_id = app
        .store
        .job_by_name("nightly-export")
        .await
        .expect("reads")
        .expect("exists")
        .id;
    let started = Utc::now() - Duration::minutes(30);
    let run = NewRun {
        job_id,
        trigger: Trigger::Schedule,
        attempt: 1,
        first_run_id: None,
        status: RunStatus::Running,
        scheduled_for: started,
        started_at: started,
        finished_at: None,
        error_kind: None,
        error_message: None,
        instance_id: "seed".into(),
        exclusive: false,
    };
    let written = app
        .store
        .write_batch(&WriteBatch {
            inserts: vec![run],
            ..WriteBatch::default()
        })
        .await
        .expect("written");
    let run_id = written.inserts[0].run_id().expect("inserted");
    let finish = RunFinish {
        run_id,
        status: RunStatus::Dead,
        started_at: Some(started),
        finished_at: started + Duration::seconds(4),
        duration_ms: Some(4_000),
        items_checked: 0,
        items_updated: 0,
        items_total: None,
        error_kind: Some("retryable".into()),
        error_message: Some("the warehouse API timed out".into()),
        summary: None,
        retry_at: None,
    };
    app.store
        .write_batch(&WriteBatch {
            finishes: vec![finish],
            ..WriteBatch::default()
        })
        .await
        .expect("finished");

    browser.goto(&app.url("/login")).await;
    browser.type_into("#name", "admin").await;
    browser.type_into("#password", ADMIN_PASSWORD).await;
    browser
        .click("form[action='/login'] button[type=submit]")
        .await;
    browser.wait_for_path("/").await;
    browser.wait_for_text("#failed-24h", "1 failed").await;
    browser.click("#failed-24h").await;
    browser.wait_for_path("/runs").await;
    browser
        .wait_for_text("#runs-table", "the warehouse API timed out")
        .await;
    let status = browser
        .text_of(&format!(
            "#runs-table tr:has(a[href='/runs/{run_id}']) .badge"
        ))
        .await
        .expect("the run's status");
    assert!(status.contains("dead"), "{status}");
    browser.screenshot("runs-view").await;
    browser.close().await;
}
