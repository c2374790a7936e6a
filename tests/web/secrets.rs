//! Job secrets over HTTP: no page or answer shows them, to any role, while the names
//! of what is configured stay visible; a run's log and error have them masked.

use batchboard::job::JobSettings;
use batchboard::store::{JobChange, JobEdit, Role};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    ADMIN_PASSWORD, TestApp, TestClient, spawn_app_with, start_time, test_settings,
};
use crate::helpers::{capture_run_logs, run_to_the_end, signed_in};

const BEARER: &str = "Bearer s3cr3t-bearer-token-1";
const URL_PASSWORD: &str = "url-s3cr3t-pw";
const QUERY_TOKEN: &str = "query-s3cr3t-tok";
const IBAN: &str = "DE89370400440532013000";
const PGPASSWORD: &str = "pg-s3cr3t-value-2";
const SECRETS: [&str; 5] = [BEARER, URL_PASSWORD, QUERY_TOKEN, IBAN, PGPASSWORD];

fn http_job() -> JobSettings {
    JobSettings {
        name: "warm-cache".into(),
        handler: "http".into(),
        every: Some("1h".into()),
        params: Some(json!({
            "url": format!(
                "https://deploy:{URL_PASSWORD}@shop.example.com/warm?token={QUERY_TOKEN}&iban={IBAN}&scope=all"
            ),
            "headers": { "Authorization": BEARER },
        })),
        ..JobSettings::default()
    }
}

fn command_job() -> JobSettings {
    JobSettings {
        name: "pg-dump".into(),
        handler: "command".into(),
        every: Some("1h".into()),
        max_attempts: Some(1),
        params: Some(json!({
            "program": "sh",
            "args": ["-c", "echo \"connecting with $PGPASSWORD\"; echo \"$PGPASSWORD\" >&2"],
            "env": { "PGPASSWORD": PGPASSWORD },
        })),
        ..JobSettings::default()
    }
}

/// An app with both jobs, and `iban` on the settings' redaction list.
async fn app() -> TestApp {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut settings = test_settings(dir.path());
    settings.jobs = vec![http_job(), command_job()];
    settings.runlog.redact = vec!["iban".into()];
    spawn_app_with(settings, dir).await
}

#[track_caller]
fn assert_no_secret(what: &str, body: &str) {
    for secret in SECRETS {
        assert!(!body.contains(secret), "{what} shows {secret:?}:\n{body}");
    }
}

async fn body_of(client: &TestClient, path: &str) -> String {
    let response = client.get(path).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.text().await.expect("a body")
}

async fn admin(app: &TestApp) -> TestClient {
    let client = app.with_new_client();
    client.login_ok("admin", ADMIN_PASSWORD).await;
    client
}

#[tokio::test]
async fn no_role_sees_a_jobs_secrets_on_its_page_or_in_the_api_but_everyone_sees_their_names() {
    let app = app().await;
    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    let admin = admin(&app).await;
    for (role, client) in [("viewer", &viewer), ("admin", &admin)] {
        let page = body_of(client, "/jobs/warm-cache").await;
        assert_no_secret(&format!("the {role}'s http job page"), &page);
        assert!(page.contains("Authorization"), "{page}");
        assert!(
            page.contains("https://[redacted]@shop.example.com/warm?token=[redacted]&"),
            "{page}"
        );
        assert!(page.contains("iban=[redacted]&"), "{page}");

        let page = body_of(client, "/jobs/pg-dump").await;
        assert_no_secret(&format!("the {role}'s command job page"), &page);
        assert!(page.contains("PGPASSWORD"), "{page}");

        for name in ["warm-cache", "pg-dump"] {
            let api = body_of(client, &format!("/api/v1/jobs/{name}")).await;
            assert_no_secret(&format!("the {role}'s API answer for {name}"), &api);
        }
        let api: serde_json::Value =
            serde_json::from_str(&body_of(client, "/api/v1/jobs/warm-cache").await).expect("JSON");
        for settings in ["defaults", "effective"] {
            assert_eq!(
                api[settings]["params"]["headers"],
                json!({ "Authorization": "[redacted]" }),
                "{api}"
            );
        }
        let api: serde_json::Value =
            serde_json::from_str(&body_of(client, "/api/v1/jobs/pg-dump").await).expect("JSON");
        assert_eq!(
            api["effective"]["params"]["env"],
            json!({ "PGPASSWORD": "[redacted]" }),
            "{api}"
        );
        assert_eq!(api["effective"]["params"]["program"], "sh", "{api}");
    }
}

#[tokio::test]
async fn the_history_of_a_params_change_shows_no_secret_on_the_page_or_in_the_api() {
    let app = app().await;
    let job = app
        .store
        .job_by_name("warm-cache")
        .await
        .expect("read")
        .expect("the job exists");
    // What an operator's change of params records: the old and the new value in force.
    let old = http_job().params.expect("params");
    let mut new = old.clone();
    new["headers"]["Authorization"] = json!(format!("{BEARER}-rotated"));
    let mut overrides = serde_json::Map::new();
    overrides.insert("params".into(), new.clone());
    let change = JobChange {
        actor: "olga".into(),
        field: "params".into(),
        old_value: Some(old),
        new_value: Some(new),
    };
    app.store
        .update_job_overrides(
            job.id,
            job.version,
            &JobEdit {
                overrides,
                paused: job.paused,
                next_run_at: job.next_run_at,
                changes: vec![change],
            },
            start_time(),
        )
        .await
        .expect("the change is saved");

    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    let admin = admin(&app).await;
    for client in [&viewer, &admin] {
        let page = body_of(client, "/history").await;
        assert_no_secret("the history page", &page);
        assert!(page.contains("Authorization"), "{page}");
        let api = body_of(client, "/api/v1/history").await;
        assert_no_secret("the history API", &api);
        let api: serde_json::Value = serde_json::from_str(&api).expect("JSON");
        assert_eq!(
            api["changes"][0]["new_value"]["headers"],
            json!({ "Authorization": "[redacted]" }),
            "{api}"
        );
        // The override itself is redacted on the job's page and in its API answer too.
        assert_no_secret(
            "the overridden job page",
            &body_of(client, "/jobs/warm-cache").await,
        );
        assert_no_secret(
            "the overridden job in the API",
            &body_of(client, "/api/v1/jobs/warm-cache").await,
        );
    }
}

#[tokio::test]
async fn a_runs_log_shows_the_jobs_secret_masked_to_every_role() {
    capture_run_logs();
    let app = app().await;
    let operator = signed_in(&app, "olga", Role::Operator).await;
    let run_id = run_to_the_end(&app, &operator, "pg-dump").await;
    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    for client in [&viewer, &operator] {
        let page = body_of(client, &format!("/runs/{run_id}")).await;
        assert_no_secret("the run page", &page);
        assert!(page.contains("connecting with [redacted]"), "{page}");
        let logs = body_of(client, &format!("/api/v1/runs/{run_id}/logs")).await;
        assert_no_secret("the run's log in the API", &logs);
        let run = body_of(client, &format!("/api/v1/runs/{run_id}")).await;
        assert_no_secret("the run in the API", &run);
    }
}

#[tokio::test]
async fn the_settings_table_shows_no_default_badge_for_an_unset_field() {
    let app = app().await;
    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    let page = body_of(&viewer, "/jobs/pg-dump").await;
    let row = |field: &str| -> String {
        let start = page
            .find(&format!("<th scope=\"row\">{field}</th>"))
            .unwrap_or_else(|| panic!("a {field} row in {page}"));
        let end = page[start..]
            .find("</tr>")
            .map_or(page.len(), |end| start + end);
        page[start..end].to_owned()
    };
    // `cron` has no value at all; `every` has the file's.
    assert!(row("cron").contains("<code>—</code>"), "{}", row("cron"));
    assert!(!row("cron").contains("badge"), "{}", row("cron"));
    assert!(row("every").contains(">default<"), "{}", row("every"));
}

#[tokio::test]
async fn the_openapi_examples_show_params_redacted() {
    let app = app().await;
    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    let document: serde_json::Value =
        serde_json::from_str(&body_of(&viewer, "/api/v1/openapi.json").await).expect("JSON");
    let detail = &document["components"]["schemas"]["JobDetailJson"];
    let example = detail["allOf"]
        .as_array()
        .into_iter()
        .flatten()
        .chain([detail])
        .find_map(|part| part["properties"]["effective"]["examples"][0].as_object())
        .unwrap_or_else(|| panic!("an example of effective settings in {detail}"));
    assert_eq!(
        example["params"]["headers"],
        json!({ "Authorization": "[redacted]" })
    );
}
