//! The chains view in a real browser (headless Chromium): a chain that has run draws
//! its jobs coloured by their last outcome, and a node opens its job's page. The
//! screenshot goes to `artifacts/chains-view.png`.
//!
//! Without Chromium this test prints SKIP and passes (see [`crate::browser_driver`]).

use batchboard::job::JobSettings;
use batchboard::store::RunStatus;

use crate::browser::sign_in;
use crate::browser_driver;
use crate::helpers::{ADMIN_PASSWORD, TestApp, job, spawn_app_with, test_settings};

fn following(name: &str, after: &[&str], after_failure: &[&str]) -> JobSettings {
    let names =
        |list: &[&str]| (!list.is_empty()).then(|| list.iter().map(|n| (*n).to_owned()).collect());
    JobSettings {
        every: None,
        after: names(after),
        after_failure: names(after_failure),
        ..job(name, "1h")
    }
}

/// Whether `name` has a run that ended.
async fn ran(app: &TestApp, name: &str) -> bool {
    let Some(job) = app
        .store
        .job_by_name(name)
        .await
        .expect("the store answers")
    else {
        return false;
    };
    let latest = app
        .store
        .latest_runs_of(&[job.id])
        .await
        .expect("the store answers");
    latest
        .get(&job.id)
        .is_some_and(|run| run.finished_at.is_some() && run.status != RunStatus::Running)
}

#[tokio::test]
async fn the_chains_view_shows_each_jobs_last_outcome_and_a_node_opens_its_job() {
    let Some(browser) = browser_driver::start().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut settings = test_settings(dir.path());
    settings.jobs = vec![
        job("extract-orders", "1h"),
        following("build-report", &["extract-orders"], &[]),
        following("publish-report", &["build-report"], &[]),
        following("alert-on-call", &[], &["extract-orders", "build-report"]),
    ];
    let app = spawn_app_with(settings, dir).await;
    // Run the first link by hand and let the chain follow it.
    app.login_ok("admin", ADMIN_PASSWORD).await;
    let token = app.csrf_token().await;
    let started = app
        .client
        .post(app.url("/api/v1/jobs/extract-orders/run"))
        .header("X-CSRF-Token", token)
        .send()
        .await
        .expect("answered");
    assert!(started.status().is_success(), "{}", started.status());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ran(&app, "publish-report").await {
        assert!(
            std::time::Instant::now() < deadline,
            "the chain never reached publish-report"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    sign_in(&browser, &app).await;
    browser.click("nav a[href='/chains']").await;
    browser.wait_for_path("/chains").await;
    let outcome = browser
        .text_of("svg.chain a[href='/jobs/publish-report'] text.outcome")
        .await
        .expect("the node says its outcome");
    assert!(
        ["succeeded", "dead", "failed"].contains(&outcome.as_str()),
        "{outcome}"
    );
    assert_eq!(
        browser
            .text_of("svg.chain a[href='/jobs/alert-on-call'] text.outcome")
            .await
            .as_deref(),
        Some("not run yet")
    );
    browser.screenshot("chains-view").await;

    browser
        .click("svg.chain a[href='/jobs/build-report']")
        .await;
    browser.wait_for_path("/jobs/build-report").await;
    browser.wait_for_text("#chain-h", "Chain").await;
    browser.close().await;
}
