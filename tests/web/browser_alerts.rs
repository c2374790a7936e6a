//! The alerts page in a real browser (headless Chromium): the targets with a webhook's
//! host only, a test alert sent with the button and listed as delivered, and the
//! maintenance banner once an admin pauses everything. Screenshots go to
//! `artifacts/alerts.png` and `artifacts/maintenance-banner.png`.
//!
//! Without Chromium this test prints SKIP and passes (see [`crate::browser_driver`]).

use batchboard::alerts::{AlertEvent, AlertSettings, AlertTarget, Destination};

use crate::browser::sign_in;
use crate::browser_driver;
use crate::helpers::{job, spawn_app_with, test_settings};

#[tokio::test]
async fn a_test_alert_sent_from_the_alerts_page_is_listed_as_delivered() {
    let Some(browser) = browser_driver::start().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut settings = test_settings(dir.path());
    settings.jobs = vec![job("nightly-export", "1h")];
    settings.alerts = AlertSettings {
        targets: vec![
            AlertTarget {
                name: "journal".into(),
                destination: Destination::Log,
                events: vec![AlertEvent::Dead, AlertEvent::Failed],
                jobs: None,
            },
            AlertTarget {
                name: "ops-chat".into(),
                destination: Destination::Webhook {
                    url: "https://hooks.example.com/services/T000/B000/secret"
                        .parse()
                        .expect("a URL"),
                    headers: reqwest::header::HeaderMap::new(),
                },
                events: AlertEvent::DEFAULT.to_vec(),
                jobs: Some(vec!["nightly-export".into()]),
            },
        ],
        ..AlertSettings::default()
    };
    let app = spawn_app_with(settings, dir).await;

    sign_in(&browser, &app).await;
    browser.click("nav a[href='/alerts']").await;
    browser.wait_for_path("/alerts").await;
    let shown = browser
        .wait_for_text("#target-ops-chat", "hooks.example.com")
        .await;
    assert!(
        !shown.contains("secret") && !shown.contains("B000"),
        "{shown}"
    );
    browser.click("#target-journal button[type=submit]").await;
    browser.wait_for_path("/alerts").await;
    // The delivery runs in the background: reload until it is listed as delivered.
    let mut listed = String::new();
    for _ in 0..50 {
        browser.goto(&app.url("/alerts")).await;
        listed = browser
            .text_of("table.alert-deliveries")
            .await
            .unwrap_or_default();
        if listed.contains("delivered") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        listed.contains("test") && listed.contains("journal") && listed.contains("delivered"),
        "{listed}"
    );
    browser.screenshot("alerts").await;

    browser.goto(&app.url("/maintenance")).await;
    browser
        .type_into("#reason", "moving the database to a new host")
        .await;
    browser
        .click("form.maintenance-form button[type=submit]")
        .await;
    browser
        .wait_for_text(".maintenance-banner", "moving the database to a new host")
        .await;
    browser.screenshot("maintenance-banner").await;
    browser.close().await;
}
