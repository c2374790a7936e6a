//! The console in a real browser (headless Chromium): sign in, edit a schedule and see
//! the page and the dashboard follow without a reload, see a validation message, run a
//! job and watch its log tail, sign out. Screenshots go to `artifacts/`.
//!
//! Without Chromium these tests print SKIP and pass (see [`crate::browser_driver`]).

use batchboard::schedule::Schedule;
use batchboard::store::{JobRecord, RunStatus};
use serde_json::json;

use crate::browser_driver::{self, Browser};
use crate::helpers::{ADMIN_PASSWORD, TestApp, spawn_app_with, test_settings};

const JOB: &str = "inventory-sync";

/// The app of [`crate::helpers::spawn_app`], except that `inventory-sync` never fails
/// by chance and waits one second of the manual clock per item, so the test decides
/// when its run moves on; and run logs are captured.
async fn spawn_deterministic_app() -> TestApp {
    // Run logs are captured by a layer of the global subscriber, as in `main`.
    batchboard::telemetry::init_for_tests();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut settings = test_settings(dir.path());
    let job = settings
        .jobs
        .iter_mut()
        .find(|job| job.name == JOB)
        .expect("the test settings have inventory-sync");
    job.params = Some(json!({ "items": 3, "item_delay_ms": 1000, "fail_chance": 0.0 }));
    spawn_app_with(settings, dir).await
}

/// Signs in as admin through the login form; the browser ends on the dashboard.
pub(crate) async fn sign_in(browser: &Browser, app: &TestApp) {
    browser.goto(&app.url("/login")).await;
    browser.type_into("#name", "admin").await;
    browser.type_into("#password", ADMIN_PASSWORD).await;
    browser
        .click("form[action='/login'] button[type=submit]")
        .await;
    browser.wait_for_path("/").await;
}

async fn job(app: &TestApp) -> JobRecord {
    app.store
        .job_by_name(JOB)
        .await
        .expect("the store answers")
        .expect("the job exists")
}

fn interval_of(job: &JobRecord) -> Option<String> {
    job.effective_settings()
        .expect("the job's settings decode")
        .every
}

/// How the console words an interval ("every 10 minutes").
fn described(every: &str) -> String {
    Schedule::parse(Some(every), None, None)
        .expect("a valid interval")
        .describe()
}

const JOB_ROW: &str = "#jobs-table tbody tr:has(a[href='/jobs/inventory-sync'])";
const SAVE: &str = "#schedule-form .actions button[type=submit]:not([form])";

#[tokio::test]
async fn an_operator_edits_an_interval_and_the_page_and_dashboard_follow_without_a_reload() {
    let Some(browser) = browser_driver::start().await else {
        return;
    };
    let app = spawn_deterministic_app().await;
    sign_in(&browser, &app).await;

    // The dashboard lists the jobs, with their schedules in words.
    browser.wait_for_text(JOB_ROW, &described("5m")).await;
    browser.wait_for_text("#jobs-table", "price-refresh").await;
    browser.mark_page().await;
    let dashboard = browser.client.window().await.expect("the dashboard's tab");

    // The job page opens in a second tab, so the dashboard stays open in the first.
    let job_tab = browser.client.new_window(true).await.expect("a new tab");
    browser
        .client
        .switch_to_window(job_tab.handle)
        .await
        .expect("the new tab is selected");
    browser.goto(&app.url(&format!("/jobs/{JOB}"))).await;
    browser
        .wait_for_text("#job-summary", &described("5m"))
        .await;
    browser.mark_page().await;
    let before = job(&app).await;

    // Typing shows the next fires of what is typed, before anything is saved.
    browser.type_into("#every", "10m").await;
    browser
        .wait_for_text("#schedule-preview", &described("10m"))
        .await;

    browser.click(SAVE).await;
    browser.wait_for_text("#schedule .notice", "Saved").await;
    let saved = job(&app).await;
    assert_eq!(interval_of(&saved).as_deref(), Some("10m"));
    assert_eq!(saved.version, before.version + 1);
    let next = saved.next_run_at.expect("the job is scheduled");
    assert_ne!(Some(next), before.next_run_at, "the next fire moved");
    browser
        .wait_for_text(
            "#schedule .notice",
            &next.format("%Y-%m-%d %H:%M:%S").to_string(),
        )
        .await;
    // The summary above the form fetched itself again after the save.
    browser
        .wait_for_text("#job-summary", &described("10m"))
        .await;
    let shown_next = browser
        .attr_of("#job-summary .facts time", "datetime")
        .await
        .expect("the summary shows the next run");
    let shown_next = chrono::DateTime::parse_from_rfc3339(&shown_next).expect("an RFC 3339 time");
    assert_eq!(shown_next, next, "the summary shows the new next run");
    browser.assert_not_reloaded("after a valid save").await;
    browser.screenshot("job-page").await;

    // An invalid interval: the message sits next to the field, and nothing is saved.
    browser.type_into("#every", "soon").await;
    browser.click(SAVE).await;
    let message = browser.wait_for_text("#every-error", "").await;
    assert!(
        !message.is_empty(),
        "the field's message says what is wrong"
    );
    assert_eq!(
        browser.attr_of("#every", "aria-invalid").await.as_deref(),
        Some("true")
    );
    assert_eq!(
        browser
            .attr_of("#every", "aria-describedby")
            .await
            .as_deref(),
        Some("every-origin every-error"),
        "the message is tied to its field"
    );
    let after_invalid = job(&app).await;
    assert_eq!(after_invalid.version, saved.version, "nothing was saved");
    assert_eq!(interval_of(&after_invalid).as_deref(), Some("10m"));
    assert_eq!(after_invalid.next_run_at, saved.next_run_at);
    browser.assert_not_reloaded("after a refused save").await;
    browser.screenshot("job-page-invalid-interval").await;

    // Back on the dashboard, its row has followed through the table's own refresh.
    browser
        .client
        .switch_to_window(dashboard)
        .await
        .expect("the dashboard's tab is selected");
    browser.wait_for_text(JOB_ROW, &described("10m")).await;
    browser.assert_not_reloaded("the dashboard").await;
    browser.screenshot("dashboard").await;

    browser.close().await;
}

#[tokio::test]
async fn filters_swap_their_part_in_place_and_put_their_address_in_the_bar() {
    let Some(browser) = browser_driver::start().await else {
        return;
    };
    let app = spawn_deterministic_app().await;
    // A change to find in the history, made by another session.
    app.login_ok("admin", ADMIN_PASSWORD).await;
    let token = app.csrf_token().await;
    app.post_form(&format!("/jobs/{JOB}/pause"), &[("csrf_token", &token)])
        .await;
    sign_in(&browser, &app).await;

    browser.goto(&app.url("/history")).await;
    browser.mark_page().await;
    browser.type_into("#history-job", JOB).await;
    browser.click("#changes form button[type=submit]").await;
    browser
        .wait_for_address(&format!("/history?job={JOB}"))
        .await;
    browser
        .wait_for_text("#changes h1", &format!("History of {JOB}"))
        .await;
    browser.wait_for_text("#changes tbody", "paused").await;
    browser.assert_not_reloaded("the history's filter").await;

    browser.goto(&app.url(&format!("/jobs/{JOB}"))).await;
    browser.mark_page().await;
    browser
        .find("#h-status")
        .await
        .select_by_value("skipped")
        .await
        .expect("a status is chosen");
    browser.click("#runs form button[type=submit]").await;
    browser
        .wait_for_address(&format!("/jobs/{JOB}?status=skipped"))
        .await;
    browser.wait_for_text("#runs", "No runs match").await;
    browser.find("#schedule-form").await;
    browser.assert_not_reloaded("the run filters").await;

    browser.close().await;
}

#[tokio::test]
async fn a_dashboard_whose_session_ended_goes_to_sign_in_instead_of_showing_it_in_the_table() {
    let Some(browser) = browser_driver::start().await else {
        return;
    };
    let app = spawn_deterministic_app().await;
    sign_in(&browser, &app).await;
    browser.goto(&app.url("/?state=enabled")).await;
    browser.wait_for_text("#jobs-table", JOB).await;
    let dashboard = browser.client.window().await.expect("the dashboard's tab");

    // Signing out in another tab ends the session the dashboard's poll relies on.
    let other = browser.client.new_window(true).await.expect("a new tab");
    browser
        .client
        .switch_to_window(other.handle)
        .await
        .expect("the new tab is selected");
    browser.goto(&app.url("/users")).await;
    browser
        .click("header form[action='/logout'] button[type=submit]")
        .await;
    browser.wait_for_path("/login").await;
    browser.client.close_window().await.expect("the tab closes");
    browser
        .client
        .switch_to_window(dashboard)
        .await
        .expect("the dashboard's tab is selected");

    // Its next poll navigates to the sign-in page, which leads back to the dashboard.
    browser
        .wait_for_address("/login?next=/%3Fstate%3Denabled")
        .await;
    browser.find("#password").await;
    assert!(
        browser.text_of("#jobs-table").await.is_none(),
        "the sign-in page is a page of its own, not the table's content"
    );

    browser.close().await;
}

#[tokio::test]
async fn a_run_started_from_the_job_page_shows_its_status_and_log_live_then_sign_out_works() {
    let Some(browser) = browser_driver::start().await else {
        return;
    };
    let app = spawn_deterministic_app().await;
    sign_in(&browser, &app).await;

    browser.goto(&app.url(&format!("/jobs/{JOB}"))).await;
    browser
        .click(&format!(
            "form[action='/jobs/{JOB}/run'] button[type=submit]"
        ))
        .await;
    let path = browser.wait_for_path_starting("/runs/").await;
    let run_id: i64 = path
        .trim_start_matches("/runs/")
        .parse()
        .expect("the run page's path ends with the run's id");

    // The run waits on the manual clock before its first item: it is running, and its
    // first line is already in the log.
    browser
        .wait_for_text("#run-summary .badge", "running")
        .await;
    browser
        .wait_for_text("#log-lines", "checking stock levels")
        .await;
    browser.mark_page().await;

    // Let it finish, one item per second of the manual clock.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let run = app
            .store
            .run(run_id)
            .await
            .expect("the store answers")
            .expect("the run exists");
        if run.status != RunStatus::Running {
            assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the run never ended");
        app.clock.advance(chrono::Duration::seconds(1));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // The page's log tail picks up the end without a reload.
    browser
        .wait_for_text("#run-summary .badge", "succeeded")
        .await;
    browser
        .wait_for_text("#log-lines", "stock check finished")
        .await;
    browser
        .wait_for_text("#log-tail", "The run has ended")
        .await;
    browser.assert_not_reloaded("the run page").await;
    browser.screenshot("run-page").await;

    // Signing out lands on the sign-in page, and the session is gone.
    browser
        .click("header form[action='/logout'] button[type=submit]")
        .await;
    browser.wait_for_path("/login").await;
    browser.find("#password").await;
    browser.goto(&app.url("/")).await;
    browser.wait_for_path("/login").await;

    browser.close().await;
}

#[tokio::test]
async fn a_generated_first_password_must_be_changed_before_anything_else_opens() {
    let Some(browser) = browser_driver::start().await else {
        return;
    };
    let (app, generated) = crate::account::spawn_app_with_generated_admin().await;
    browser.goto(&app.url("/login?next=/history")).await;
    browser.type_into("#name", "admin").await;
    browser.type_into("#password", &generated).await;
    browser
        .click("form[action='/login'] button[type=submit]")
        .await;
    browser.wait_for_path("/account/password").await;
    browser
        .wait_for_text("#password-reason", "choose your own")
        .await;

    // Any other page leads back here.
    browser.goto(&app.url("/")).await;
    browser.wait_for_path("/account/password").await;
    browser.goto(&app.url("/history")).await;
    browser.wait_for_path("/account/password").await;

    // A mistyped confirmation is refused next to its field, and nothing is saved.
    browser.type_into("#current", &generated).await;
    browser
        .type_into("#new_password", "the-admins-own-password")
        .await;
    browser
        .type_into("#confirm", "the-admins-own-pasword")
        .await;
    browser.click("#password-form button[type=submit]").await;
    browser.wait_for_text("#confirm-error", "differ").await;
    assert_eq!(
        browser
            .attr_of("#confirm", "aria-describedby")
            .await
            .as_deref(),
        Some("confirm-error")
    );
    browser.screenshot("password-change-refused").await;
    let admin = |app: &TestApp| {
        let store = app.store.clone();
        async move {
            store
                .user_by_name("admin")
                .await
                .expect("the store answers")
                .expect("the admin exists")
        }
    };
    assert!(admin(&app).await.must_change_password);

    browser.type_into("#current", &generated).await;
    browser
        .type_into("#new_password", "the-admins-own-password")
        .await;
    browser
        .type_into("#confirm", "the-admins-own-password")
        .await;
    browser.click("#password-form button[type=submit]").await;
    // On to the page that was asked for at sign-in.
    browser.wait_for_path("/history").await;
    assert!(!admin(&app).await.must_change_password);
    browser.goto(&app.url("/")).await;
    browser.wait_for_path("/").await;
    browser.wait_for_text("#jobs-table", JOB).await;
    browser.screenshot("password-changed-dashboard").await;

    browser.close().await;
}
