//! The runs view in a real browser (headless Chromium): the dashboard's "failed in the
//! last 24 h" count leads to the runs view listing those failures. The screenshot goes
//! to `artifacts/runs-view.png`.
//!
//! Without Chromium this test prints SKIP and passes (see [`crate::browser_driver`]).

use batchboard::store::{RunStatus, Trigger};
use chrono::{Duration, Utc};

use crate::browser::sign_in;
use crate::browser_driver;
use crate::helpers::{app_with_jobs, finished_run, job};

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
    let run_id = finished_run(
        &app.store,
        job_id,
        Trigger::Schedule,
        Utc::now() - Duration::minutes(30),
        RunStatus::Dead,
        Some("the warehouse API timed out"),
    )
    .await;

    sign_in(&browser, &app).await;
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
