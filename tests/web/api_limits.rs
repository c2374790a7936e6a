//! `PATCH /api/v1/jobs/{name}` holds to the schedule form's length limits.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, TestApp, spawn_app};

async fn patch(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let token = app.csrf_token().await;
    let response = app
        .client
        .patch(app.url("/api/v1/jobs/inventory-sync"))
        .header("X-CSRF-Token", token)
        .json(&body)
        .send()
        .await
        .expect("answered");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn a_ten_thousand_character_field_in_a_patch_gets_422_naming_it_and_nothing_is_saved() {
    let app = spawn_app().await;
    app.login_ok("admin", ADMIN_PASSWORD).await;
    let before = app
        .store
        .job_by_name("inventory-sync")
        .await
        .expect("the store answers")
        .expect("the job exists");
    let huge = "1".repeat(10_000);
    for (body, field) in [
        (json!({ "version": before.version, "every": huge }), "every"),
        (
            json!({ "version": before.version, "timezone": huge, "cron": "0 3 * * *" }),
            "timezone",
        ),
        (
            json!({ "version": before.version, "schedule": { "cron": huge } }),
            "schedule.cron",
        ),
        (
            json!({ "version": before.version, "timeout": huge }),
            "timeout",
        ),
        (
            json!({ "version": before.version, "max_backoff": huge }),
            "max_backoff",
        ),
    ] {
        let (status, answer) = patch(&app, body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {answer}"
        );
        let message = answer["fields"][field].as_str().unwrap_or_default();
        assert!(message.contains("at most"), "{field}: {answer}");
        assert!(
            !answer.to_string().contains(&huge),
            "the value is not echoed back"
        );
    }
    let after = app
        .store
        .job_by_name("inventory-sync")
        .await
        .expect("the store answers")
        .expect("the job exists");
    assert_eq!(after.version, before.version, "nothing was saved");
    assert_eq!(after.overrides, before.overrides);
    // A value within the limits still goes through.
    let (status, answer) = patch(&app, json!({ "version": before.version, "every": "10m" })).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}
