//! Upcoming fires (`/upcoming`): interval and cron jobs' fires in the next 24 hours, a
//! band for a job firing every second, and paused, disabled and upstream-only jobs said
//! so. The browser test takes `artifacts/upcoming.png`.

use batchboard::store::Role;
use reqwest::StatusCode;

use crate::browser::sign_in;
use crate::browser_driver;
use crate::helpers::{app_with_jobs, job, signed_in};

#[tokio::test]
async fn upcoming_fires_show_intervals_cron_lines_bands_and_jobs_that_do_not_fire() {
    let with = |name: &str, edit: &dyn Fn(&mut batchboard::job::JobSettings)| {
        let mut settings = job(name, "1h");
        edit(&mut settings);
        settings
    };
    let app = app_with_jobs(vec![
        job("hourly", "1h"),
        with("nightly", &|s| {
            s.every = None;
            s.cron = Some("0 3 * * *".into());
        }),
        job("ticker", "1s"),
        with("switched-off", &|s| s.enabled = Some(false)),
        with("after-only", &|s| {
            s.every = None;
            s.after = Some(vec!["hourly".into()]);
        }),
        job("held", "1h"),
    ])
    .await;
    let operator = signed_in(&app, "olga", Role::Operator).await;
    let held = app
        .store
        .job_by_name("held")
        .await
        .expect("reads")
        .expect("exists");
    let token = operator.csrf_token().await;
    let paused = operator
        .client
        .post(operator.url("/api/v1/jobs/held/pause"))
        .header("X-CSRF-Token", token)
        .send()
        .await
        .expect("answered");
    assert!(paused.status().is_success(), "{}", paused.status());
    assert!(held.version > 0);

    let response = operator.get("/upcoming").await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.expect("a body");
    assert!(page.contains("<svg class=\"timeline\""), "{page}");
    let line = |job: &str| {
        let start = page
            .find(&format!(">{job}</a>: "))
            .unwrap_or_else(|| panic!("{job} is listed: {page}"));
        page[start..start + page[start..].find("</li>").expect("an end")].to_owned()
    };
    assert!(line("hourly").contains(" fires: "), "{}", line("hourly"));
    assert!(
        line("nightly").contains("1 fire: 03:00 UTC"),
        "{}",
        line("nightly")
    );
    assert!(
        line("ticker").contains("fires, the first at"),
        "{}",
        line("ticker")
    );
    assert!(
        page.contains("class=\"band\""),
        "a job firing every second is a band"
    );
    assert!(line("switched-off").contains("disabled"));
    assert!(line("held").contains("paused"));
    assert!(line("after-only").contains("runs after its upstream jobs"));
}

#[tokio::test]
async fn the_upcoming_timeline_renders_in_a_browser() {
    let Some(browser) = browser_driver::start().await else {
        return;
    };
    let mut nightly = job("nightly-export", "1h");
    nightly.every = None;
    nightly.cron = Some("0 3,15 * * *".into());
    let mut disabled = job("old-import", "6h");
    disabled.enabled = Some(false);
    let app = app_with_jobs(vec![
        job("inventory-sync", "30m"),
        nightly,
        job("order-webhook", "10s"),
        job("price-refresh", "2h"),
        disabled,
    ])
    .await;
    sign_in(&browser, &app).await;
    browser.click("nav a[href='/upcoming']").await;
    browser.wait_for_path("/upcoming").await;
    browser
        .wait_for_text(".upcoming-list", "nightly-export: 2 fires")
        .await;
    assert!(
        browser
            .attr_of("svg.timeline .band", "class")
            .await
            .is_some(),
        "the job firing every 10 s is a band"
    );
    browser.screenshot("upcoming").await;
    browser.close().await;
}
