//! The JSON API over HTTP: every endpoint, every error status, both roles, and the
//! OpenAPI document against the router's own table of routes.

use std::time::Duration;

use batchboard::job::JobSettings;
use batchboard::store::{ChangeFilter, Role, RunFilter, RunStatus};
use batchboard::web::api::{MAX_BODY_BYTES, ROUTES, is_catch_all};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, TestApp, TestClient, spawn_app_with, test_settings};
use crate::helpers::{app_with_jobs, capture_run_logs, job, signed_in};

const JOB: &str = "inventory-sync";
const SLOW: &str = "slow-sync";

/// A job whose run waits on the manual clock, so it stays running until cancelled.
fn slow_job() -> JobSettings {
    JobSettings {
        name: SLOW.into(),
        handler: "demo_inventory".into(),
        every: Some("1d".into()),
        params: Some(json!({"items": 5, "item_delay_ms": 5_000, "fail_chance": 0})),
        ..JobSettings::default()
    }
}

async fn app() -> TestApp {
    app_with_jobs(vec![job(JOB, "5m"), job("price-refresh", "1h"), slow_job()]).await
}

/// An answer's status and JSON body (`null` when the body is not JSON).
pub(crate) async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("a body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn get(client: &TestClient, path: &str) -> (StatusCode, Value) {
    answer(client.get(path).await).await
}

/// A state-changing request with the session's CSRF header and, if given, a JSON body.
pub(crate) async fn send(
    client: &TestClient,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let token = client.csrf_token().await;
    let mut request = client
        .client
        .request(method, client.url(path))
        .header("X-CSRF-Token", token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    answer(request.send().await.expect("the request is answered")).await
}

/// A state-changing request with a raw body.
async fn send_raw(client: &TestClient, method: Method, path: &str, body: String) -> StatusCode {
    let token = client.csrf_token().await;
    let response = client
        .client
        .request(method, client.url(path))
        .header("X-CSRF-Token", token)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the request is answered");
    let status = response.status();
    let body = answer(response).await.1;
    assert!(
        body["error"].is_string(),
        "{status}: not the JSON error shape: {body}"
    );
    status
}

async fn admin(app: &TestApp) -> TestClient {
    let client = app.with_new_client();
    client.login_ok("admin", ADMIN_PASSWORD).await;
    client
}

async fn version_of(app: &TestApp, name: &str) -> i64 {
    app.store
        .job_by_name(name)
        .await
        .expect("the store answers")
        .expect("the job exists")
        .version
}

/// Everything a change could touch, to check that a refused one touched nothing.
async fn snapshot(app: &TestApp) -> String {
    let jobs = app.store.jobs().await.expect("the store answers");
    let changes = app
        .store
        .job_changes(&ChangeFilter {
            limit: 1000,
            ..ChangeFilter::default()
        })
        .await
        .expect("the store answers");
    let runs = app
        .store
        .runs(&RunFilter {
            limit: 1000,
            ..RunFilter::default()
        })
        .await
        .expect("the store answers");
    let jobs: Vec<_> = jobs
        .iter()
        .map(|j| (&j.name, &j.overrides, j.paused, j.version, j.next_run_at))
        .collect();
    format!("{jobs:?} {} {}", changes.len(), runs.len())
}

/// A route's path with its parameters filled in.
fn concrete(path: &str, run_id: i64) -> String {
    path.replace("{name}", JOB)
        .replace("{id}", &run_id.to_string())
        .replace("{*rest}", "nowhere")
}

fn method_of(route: &str) -> Method {
    match route {
        "ANY" => Method::GET,
        other => other.parse().expect("an HTTP method"),
    }
}

/// Waits (with a deadline) until run `id` is over; returns it as the API shows it.
async fn finished_run(client: &TestClient, id: i64) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, run) = get(client, &format!("/api/v1/runs/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{run}");
        if run["status"] != "running" {
            return run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run did not end"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run_to_the_end(client: &TestClient, job: &str) -> Value {
    let (status, started) = send(
        client,
        Method::POST,
        &format!("/api/v1/jobs/{job}/run"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let id = started["run_id"].as_i64().expect("a run id");
    finished_run(client, id).await
}

/// Every `$ref` in `value`.
fn collect_refs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => into.push(reference.clone()),
                    _ => collect_refs(value, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, into)),
        _ => {}
    }
}

#[tokio::test]
async fn every_api_route_refuses_a_request_without_credentials_with_json_401() {
    let app = app().await;
    let anonymous = app.with_new_client();
    for route in ROUTES {
        let path = concrete(route.path, 1);
        let method = method_of(route.method);
        // A session without a user still passes the CSRF check, so the guard answers.
        let (status, body) = send(&anonymous, method.clone(), &path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
        assert!(body["error"].is_string(), "{method} {path}: {body}");
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_of_the_router() {
    let app = app().await;
    let client = admin(&app).await;
    let (status, document) = get(&client, "/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{document}"
    );
    let run = run_to_the_end(&client, JOB).await["id"]
        .as_i64()
        .expect("a run id");
    for route in ROUTES.iter().filter(|route| !is_catch_all(route)) {
        let method = route.method.to_ascii_lowercase();
        assert!(
            document["paths"][route.path][&method].is_object(),
            "{} {} is not in the OpenAPI document",
            route.method,
            route.path
        );
        // The router answers the row (a missing route would be the JSON 404 catch-all
        // or a 405).
        let path = concrete(route.path, run);
        let (status, body) = if route.method == "GET" {
            get(&client, &path).await
        } else {
            send(&client, method_of(route.method), &path, Some(json!({}))).await
        };
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert!(
            body["error"] != "there is no such API endpoint",
            "{} {path} is not routed",
            route.method
        );
    }
    let mut references = Vec::new();
    collect_refs(&document, &mut references);
    assert!(!references.is_empty());
    for reference in references {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .expect("a schema reference");
        assert!(
            document["components"]["schemas"][name].is_object(),
            "{reference} does not resolve"
        );
    }
    let documented = document["paths"].as_object().expect("paths").len();
    let routed = ROUTES
        .iter()
        .filter(|route| !is_catch_all(route))
        .map(|route| route.path)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert_eq!(documented, routed, "every documented path is routed");
}

#[tokio::test]
async fn jobs_are_listed_with_schedule_state_next_run_last_run_and_version() {
    let app = app().await;
    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    let (status, body) = get(&viewer, "/api/v1/jobs").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let jobs = body["jobs"].as_array().expect("a list");
    let names: Vec<_> = jobs
        .iter()
        .map(|j| j["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, ["inventory-sync", "price-refresh", SLOW]);
    let job = &jobs[0];
    assert_eq!(job["handler"], "demo_inventory");
    assert_eq!(job["schedule"], json!({"every": "5m"}));
    assert_eq!(job["enabled"], true);
    assert_eq!(job["paused"], false);
    assert_eq!(job["state"], "enabled");
    assert_eq!(job["last_run"], Value::Null);
    assert!(job["version"].is_i64());
    let next = job["next_run_at"].as_str().expect("a next run");
    assert!(
        chrono::DateTime::parse_from_rfc3339(next).is_ok() && next.ends_with('Z'),
        "RFC 3339 UTC: {next}"
    );

    let operator = signed_in(&app, "olga", Role::Operator).await;
    let run = run_to_the_end(&operator, JOB).await;
    let (_, body) = get(&viewer, "/api/v1/jobs").await;
    assert_eq!(body["jobs"][0]["last_run"]["id"], run["id"]);
    assert_eq!(body["jobs"][0]["last_run"]["status"], "succeeded");
}

#[tokio::test]
async fn one_job_shows_its_file_defaults_overrides_and_settings_in_force() {
    let app = app().await;
    let operator = signed_in(&app, "olga", Role::Operator).await;
    let version = version_of(&app, JOB).await;
    let (status, body) = send(
        &operator,
        Method::PATCH,
        &format!("/api/v1/jobs/{JOB}"),
        Some(json!({"version": version, "max_attempts": 7})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, job) = get(&operator, &format!("/api/v1/jobs/{JOB}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(job["name"], JOB);
    assert_eq!(job["defaults"]["every"], "5m");
    assert_eq!(job["defaults"]["max_attempts"], Value::Null);
    assert_eq!(job["overrides"], json!({"max_attempts": 7}));
    assert_eq!(job["effective"]["max_attempts"], 7);
    assert_eq!(job["max_attempts"], 7);

    let (status, body) = get(&operator, "/api/v1/jobs/no-such-job").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("no-such-job"))
    );
    assert_eq!(body["fields"], json!({}));
}

#[tokio::test]
async fn a_patch_changes_the_schedule_and_policies_and_is_recorded_in_the_history() {
    let app = app().await;
    let operator = signed_in(&app, "olga", Role::Operator).await;
    let version = version_of(&app, JOB).await;
    let (status, job) = send(
        &operator,
        Method::PATCH,
        &format!("/api/v1/jobs/{JOB}"),
        Some(json!({
            "version": version,
            "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Berlin"},
            "timeout": "10m",
            "max_attempts": 4,
            "backoff": "30s",
            "max_backoff": "1h",
            "concurrency": "allow",
            "misfire": "skip",
            "paused": true,
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(
        job["schedule"],
        json!({"cron": "0 3 * * *", "timezone": "Europe/Berlin"})
    );
    assert_eq!(job["timeout"], "10m");
    assert_eq!(job["concurrency"], "allow");
    assert_eq!(job["misfire"], "skip");
    assert_eq!(job["paused"], true);
    assert_eq!(job["state"], "paused");
    assert!(job["version"].as_i64() > Some(version));

    let (status, history) = get(&operator, &format!("/api/v1/history?job={JOB}")).await;
    assert_eq!(status, StatusCode::OK);
    let fields: Vec<_> = history["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            assert_eq!(c["actor"], "olga");
            c["field"].as_str().expect("a field").to_owned()
        })
        .collect();
    for field in [
        "cron",
        "timezone",
        "every",
        "timeout",
        "max_attempts",
        "paused",
    ] {
        assert!(fields.iter().any(|f| f == field), "{field} in {fields:?}");
    }

    // Back to an interval, flat fields this time, and un-paused.
    let version = job["version"].as_i64().expect("a version");
    let (status, job) = send(
        &operator,
        Method::PATCH,
        &format!("/api/v1/jobs/{JOB}"),
        Some(json!({"version": version, "every": "15m", "paused": false, "enabled": false})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["schedule"], json!({"every": "15m"}));
    assert_eq!(
        (job["paused"].clone(), job["enabled"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(job["state"], "disabled");
}

#[tokio::test]
async fn a_patch_of_settings_and_paused_together_is_one_change_with_one_version() {
    let app = app().await;
    let operator = signed_in(&app, "olga", Role::Operator).await;
    let version = version_of(&app, JOB).await;
    let (status, job) = send(
        &operator,
        Method::PATCH,
        &format!("/api/v1/jobs/{JOB}"),
        Some(json!({"version": version, "every": "15m", "paused": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(
        job["version"],
        json!(version + 1),
        "one version bump: {job}"
    );
    assert_eq!(
        (job["paused"].clone(), job["next_run_at"].clone()),
        (json!(true), json!(null))
    );
    assert_eq!(version_of(&app, JOB).await, version + 1);

    let (status, history) = get(&operator, &format!("/api/v1/history?job={JOB}")).await;
    assert_eq!(status, StatusCode::OK);
    let changes: Vec<_> = history["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                c["field"].clone(),
                c["new_value"].clone(),
                c["changed_at"].clone(),
            )
        })
        .collect();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(
        (&changes[0].0, &changes[0].1),
        (&json!("paused"), &json!(true))
    );
    assert_eq!(
        (&changes[1].0, &changes[1].1),
        (&json!("every"), &json!("15m"))
    );
    assert_eq!(changes[0].2, changes[1].2, "saved together");
}

#[tokio::test]
async fn a_patch_with_a_stale_version_is_a_conflict_and_changes_nothing() {
    let app = app().await;
    let operator = signed_in(&app, "olga", Role::Operator).await;
    let stale = version_of(&app, JOB).await;
    let (status, _) = send(
        &operator,
        Method::PATCH,
        &format!("/api/v1/jobs/{JOB}"),
        Some(json!({"version": stale, "every": "10m"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let before = snapshot(&app).await;
    for body in [
        json!({"version": stale, "every": "20m"}),
        json!({"version": stale, "paused": true}),
    ] {
        let (status, answer) = send(
            &operator,
            Method::PATCH,
            &format!("/api/v1/jobs/{JOB}"),
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|e| e.contains("changed"))
        );
    }
    let (status, _) = send(
        &operator,
        Method::POST,
        &format!("/api/v1/jobs/{JOB}/reset"),
        Some(json!({"version": stale})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(snapshot(&app).await, before, "nothing changed");
}

#[tokio::test]
async fn invalid_settings_are_refused_naming_each_field_and_change_nothing() {
    let app = app().await;
    let operator = signed_in(&app, "olga", Role::Operator).await;
    let version = version_of(&app, JOB).await;
    let before = snapshot(&app).await;
    let path = format!("/api/v1/jobs/{JOB}");
    for (body, field) in [
        (json!({"version": version, "every": "0s"}), "every"),
        (
            json!({"version": version, "schedule": {"every": "soon"}}),
            "schedule.every",
        ),
        (
            json!({"version": version, "schedule": {"cron": "61 * * * *"}}),
            "schedule.cron",
        ),
        (
            json!({"version": version, "cron": "0 3 * * *", "timezone": "Mars/Olympus"}),
            "timezone",
        ),
        (
            json!({"version": version, "concurrency": "sometimes"}),
            "concurrency",
        ),
        (
            json!({"version": version, "max_attempts": "many"}),
            "max_attempts",
        ),
        (json!({"version": version, "colour": "blue"}), "colour"),
        (
            json!({"version": version, "schedule": {"hourly": true}}),
            "schedule",
        ),
        (json!({"every": "10m"}), "version"),
        (
            json!({"version": version, "paused": true, "misfire": "never"}),
            "misfire",
        ),
    ] {
        let (status, answer) = send(&operator, Method::PATCH, &path, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
        assert!(
            answer["fields"][field].is_string(),
            "{body}: expected {field} in {answer}"
        );
    }
    let (status, answer) = send(
        &operator,
        Method::POST,
        &format!("/api/v1/jobs/{JOB}/reset"),
        Some(json!({"version": version, "field": "colour"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(snapshot(&app).await, before, "nothing changed");
}

#[tokio::test]
async fn malformed_json_is_a_bad_request_and_an_oversized_body_is_refused() {
    let app = app().await;
    let operator = signed_in(&app, "olga", Role::Operator).await;
    let before = snapshot(&app).await;
    let path = format!("/api/v1/jobs/{JOB}");
    assert_eq!(
        send_raw(&operator, Method::PATCH, &path, "{\"version\": 1,".into()).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send_raw(&operator, Method::PATCH, &path, "[1, 2]".into()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "JSON that is not an object"
    );
    let huge = format!(
        "{{\"version\": 1, \"description\": \"{}\"}}",
        "x".repeat(MAX_BODY_BYTES)
    );
    assert_eq!(
        send_raw(&operator, Method::PATCH, &path, huge).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(snapshot(&app).await, before, "nothing changed");
}

#[tokio::test]
async fn a_viewer_reads_everything_but_every_change_is_forbidden() {
    let app = app().await;
    let operator = signed_in(&app, "olga", Role::Operator).await;
    let run = run_to_the_end(&operator, JOB).await["id"]
        .as_i64()
        .expect("a run id");
    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    let before = snapshot(&app).await;
    let version = version_of(&app, JOB).await;
    for route in ROUTES.iter().filter(|route| !is_catch_all(route)) {
        let path = concrete(route.path, run);
        if route.method == "GET" {
            let (status, body) = get(&viewer, &path).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
        } else {
            let body = json!({"version": version, "every": "1m"});
            let (status, answer) = send(&viewer, method_of(route.method), &path, Some(body)).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{} {path}: {answer}",
                route.method
            );
            assert!(answer["error"].is_string(), "{answer}");
        }
    }
    // A session request without its CSRF header is refused, in the API's shape too.
    let response = operator
        .client
        .patch(operator.url(&format!("/api/v1/jobs/{JOB}")))
        .json(&json!({"version": version, "every": "1m"}))
        .send()
        .await
        .expect("the request is answered");
    let (status, body) = answer(response).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["error"].is_string(), "{body}");
    assert_eq!(snapshot(&app).await, before, "nothing changed");
}

#[tokio::test]
async fn reset_drops_the_overrides_so_the_file_settings_apply_again() {
    let app = app().await;
    let operator = signed_in(&app, "olga", Role::Operator).await;
    let version = version_of(&app, JOB).await;
    let path = format!("/api/v1/jobs/{JOB}");
    let (_, job) = send(
        &operator,
        Method::PATCH,
        &path,
        Some(json!({"version": version, "every": "10m", "timeout": "1m"})),
    )
    .await;
    let version = job["version"].as_i64().expect("a version");
    let (status, job) = send(
        &operator,
        Method::POST,
        &format!("{path}/reset"),
        Some(json!({"version": version, "field": "schedule"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["overrides"], json!({"timeout": "1m"}));
    let version = job["version"].as_i64().expect("a version");
    let (status, job) = send(
        &operator,
        Method::POST,
        &format!("{path}/reset"),
        Some(json!({"version": version})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["overrides"], json!({}));
    assert_eq!(job["schedule"], json!({"every": "5m"}));
}

#[tokio::test]
async fn run_now_answers_202_and_the_run_its_page_of_runs_and_its_logs_can_be_read() {
    capture_run_logs();
    let app = app().await;
    let operator = signed_in(&app, "olga", Role::Operator).await;
    let first = run_to_the_end(&operator, JOB).await;
    let second = run_to_the_end(&operator, JOB).await;
    for field in [
        "status",
        "trigger",
        "attempt",
        "scheduled_for",
        "started_at",
        "finished_at",
    ] {
        assert!(!second[field].is_null(), "{field} in {second}");
    }
    assert_eq!(second["status"], "succeeded");
    assert_eq!(second["trigger"], "manual");
    assert_eq!(second["job"], JOB);

    // Newest first, by keyset.
    let path = format!("/api/v1/jobs/{JOB}/runs");
    let (status, page) = get(&operator, &format!("{path}?limit=1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["runs"][0]["id"], second["id"]);
    let before = page["next_before"].as_i64().expect("a next page");
    let (_, page) = get(&operator, &format!("{path}?limit=1&before={before}")).await;
    assert_eq!(page["runs"][0]["id"], first["id"]);
    assert_eq!(page["next_before"], Value::Null);
    let (_, page) = get(&operator, &format!("{path}?status=failed")).await;
    assert_eq!(page["runs"], json!([]));
    let (_, page) = get(
        &operator,
        &format!("{path}?trigger=manual&status=succeeded"),
    )
    .await;
    assert_eq!(page["runs"].as_array().map(Vec::len), Some(2));
    for (query, field) in [
        ("limit=201", "limit"),
        ("limit=0", "limit"),
        ("status=sleepy", "status"),
        ("trigger=whim", "trigger"),
        ("limit=lots", "query"),
    ] {
        let (status, body) = get(&operator, &format!("{path}?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert!(body["fields"][field].is_string(), "{query}: {body}");
    }
    let (status, _) = get(&operator, "/api/v1/jobs/no-such-job/runs").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Logs, tailed with the cursor. They are written in batches beside the run: wait
    // for the last line.
    let id = second["id"].as_i64().expect("an id");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let logs = loop {
        let (status, logs) = get(&operator, &format!("/api/v1/runs/{id}/logs")).await;
        assert_eq!(status, StatusCode::OK, "{logs}");
        let text = logs["logs"].to_string();
        if text.contains("finished") {
            break logs;
        }
        assert!(tokio::time::Instant::now() < deadline, "no log: {logs}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let lines = logs["logs"].as_array().expect("lines");
    assert!(!lines.is_empty(), "the demo job logs");
    for line in lines {
        for field in ["ts", "level", "message", "fields"] {
            assert!(!line[field].is_null(), "{field} in {line}");
        }
    }
    assert_eq!(logs["finished"], true);
    let after = logs["next_after"].as_i64().expect("a cursor");
    let (_, rest) = get(&operator, &format!("/api/v1/runs/{id}/logs?after={after}")).await;
    assert_eq!(rest["logs"], json!([]));
    assert_eq!(rest["next_after"], after);
    let (_, errors) = get(&operator, &format!("/api/v1/runs/{id}/logs?level=error")).await;
    assert!(
        errors["logs"].as_array().map(Vec::len) < Some(lines.len()),
        "info lines are left out: {errors}"
    );
    assert_eq!(
        errors["next_after"], logs["next_after"],
        "the cursor passes them"
    );
    assert!(
        errors["logs"]
            .as_array()
            .expect("lines")
            .iter()
            .all(|line| line["level"]
                .as_str()
                .is_some_and(|l| l.eq_ignore_ascii_case("error"))),
        "{errors}"
    );
    let (_, two) = get(&operator, &format!("/api/v1/runs/{id}/logs?limit=1")).await;
    assert_eq!(two["logs"].as_array().map(Vec::len), Some(1));
    let (status, body) = get(&operator, &format!("/api/v1/runs/{id}/logs?level=loud")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["fields"]["level"].is_string());

    for path in ["/api/v1/runs/999999", "/api/v1/runs/999999/logs"] {
        let (status, body) = get(&operator, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body["error"].is_string());
    }
    let (status, body) = get(&operator, "/api/v1/runs/abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = send(&operator, Method::DELETE, "/api/v1/jobs", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert!(body["error"].is_string());
    let (status, body) = get(&operator, "/api/v1/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"].is_string());
    let (status, _) = send(
        &operator,
        Method::POST,
        "/api/v1/jobs/no-such-job/run",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_running_run_shows_in_the_status_with_progress_and_can_be_cancelled() {
    let app = app().await;
    let operator = signed_in(&app, "olga", Role::Operator).await;
    let (status, started) = send(
        &operator,
        Method::POST,
        &format!("/api/v1/jobs/{SLOW}/run"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let id = started["run_id"].as_i64().expect("a run id");

    let (status, body) = get(&operator, "/api/v1/status").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["instance_id"].as_str().is_some_and(|i| !i.is_empty()));
    assert_eq!(body["queue_depth"], 0, "{body}");
    assert!(body["max_concurrent_runs"].as_u64() > Some(0), "{body}");
    let running = body["running"].as_array().expect("running runs");
    let live = running
        .iter()
        .find(|r| r["run_id"] == id)
        .expect("the run is listed");
    assert_eq!(live["job"], SLOW);
    assert!(live["progress"]["total"].is_u64(), "{live}");
    let fires: Vec<_> = body["next_fires"]
        .as_array()
        .expect("next fires")
        .iter()
        .map(|f| f["job"].as_str().expect("a job").to_owned())
        .collect();
    assert_eq!(fires[0], JOB, "the soonest first: {fires:?}");

    let (_, run) = get(&operator, &format!("/api/v1/runs/{id}")).await;
    assert_eq!(run["status"], "running");
    assert!(run["progress"].is_object(), "{run}");
    let (_, logs) = get(&operator, &format!("/api/v1/runs/{id}/logs")).await;
    assert_eq!(logs["finished"], false);

    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    let (status, _) = send(
        &viewer,
        Method::POST,
        &format!("/api/v1/runs/{id}/cancel"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = send(
        &operator,
        Method::POST,
        &format!("/api/v1/runs/{id}/cancel"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["run_id"], id);
    let run = finished_run(&operator, id).await;
    assert_eq!(run["status"], "cancelled");
    assert_eq!(
        app.store.run(id).await.expect("store").map(|r| r.status),
        Some(RunStatus::Cancelled)
    );

    let (status, body) = send(
        &operator,
        Method::POST,
        &format!("/api/v1/runs/{id}/cancel"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "a finished run: {body}");
    let (status, _) = send(&operator, Method::POST, "/api/v1/runs/999999/cancel", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pause_and_resume_change_the_state_and_the_history_names_the_operator() {
    let app = app().await;
    let operator = signed_in(&app, "olga", Role::Operator).await;
    let path = format!("/api/v1/jobs/{JOB}");
    let (status, job) = send(&operator, Method::POST, &format!("{path}/pause"), None).await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(
        (job["paused"].clone(), job["state"].clone()),
        (json!(true), json!("paused"))
    );
    let (_, body) = get(&operator, "/api/v1/status").await;
    assert!(
        body["next_fires"]
            .as_array()
            .expect("fires")
            .iter()
            .all(|f| f["job"] != JOB),
        "a paused job has no next fire: {body}"
    );
    let (status, job) = send(&operator, Method::POST, &format!("{path}/resume"), None).await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["state"], "enabled");
    let (status, _) = send(
        &operator,
        Method::POST,
        "/api/v1/jobs/no-such-job/pause",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The history pages by keyset, newest first.
    let (_, page) = get(&operator, "/api/v1/history?limit=1").await;
    let newest = &page["changes"][0];
    assert_eq!(
        (
            newest["field"].clone(),
            newest["actor"].clone(),
            newest["new_value"].clone()
        ),
        (json!("paused"), json!("olga"), json!(false))
    );
    let before = page["next_before"].as_i64().expect("a next page");
    let (_, page) = get(
        &operator,
        &format!("/api/v1/history?limit=1&before={before}"),
    )
    .await;
    assert_eq!(page["changes"][0]["new_value"], true);
    let (status, _) = get(&operator, "/api/v1/history?job=no-such-job").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = get(&operator, "/api/v1/history?limit=500").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["fields"]["limit"].is_string());
}

/// An app with one slot and two slow jobs, both just run by hand: one runs, one waits.
async fn two_slow_runs_on_one_slot() -> (TestApp, TestClient) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut settings = test_settings(dir.path());
    let mut second = slow_job();
    second.name = "slow-prices".into();
    settings.jobs = vec![slow_job(), second];
    settings.scheduler.max_concurrent_runs = 1;
    let app = spawn_app_with(settings, dir).await;
    let operator = signed_in(&app, "olga", Role::Operator).await;
    for job in [SLOW, "slow-prices"] {
        let (status, body) = send(
            &operator,
            Method::POST,
            &format!("/api/v1/jobs/{job}/run"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    (app, operator)
}

#[tokio::test]
async fn runs_beyond_the_free_slots_count_in_the_queue_depth() {
    let (_app, operator) = two_slow_runs_on_one_slot().await;
    let (status, body) = get(&operator, "/api/v1/status").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["max_concurrent_runs"], 1, "{body}");
    assert_eq!(body["running"].as_array().map(Vec::len), Some(2), "{body}");
    assert_eq!(body["queue_depth"], 1, "{body}");
}

#[tokio::test]
async fn a_run_waiting_for_a_free_slot_reads_queued_with_its_wait_on_the_api_dashboard_and_metrics()
{
    let (app, operator) = two_slow_runs_on_one_slot().await;
    // Time moves on in small steps until the quarter second after which a waiting run
    // is marked queued has passed for it (it counts from when its task asked for a slot).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let queued = loop {
        let (_, status) = get(&operator, "/api/v1/status").await;
        let waiting = status["running"]
            .as_array()
            .and_then(|runs| runs.iter().find(|run| run["started_at"].is_null()))
            .cloned();
        if let Some(waiting) = waiting {
            let id = waiting["run_id"].as_i64().expect("an id");
            let (_, run) = get(&operator, &format!("/api/v1/runs/{id}")).await;
            if run["status"] == "queued" {
                break run;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no run became queued"
        );
        app.clock.advance(chrono::Duration::milliseconds(100));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(queued["started_at"].is_null(), "{queued}");
    assert!(queued["duration_ms"].is_null(), "{queued}");
    assert!(
        queued["queued_ms"].as_i64().is_some_and(|ms| ms >= 250),
        "the wait is shown: {queued}"
    );
    let dashboard = operator.get("/").await.text().await.expect("a page");
    assert!(
        dashboard.contains("queued for a free slot"),
        "the dashboard counts queued runs"
    );
    let metrics = operator
        .get("/metrics")
        .await
        .text()
        .await
        .expect("metrics");
    assert!(
        metrics.contains("batchboard_runs_queued 1"),
        "queued runs are counted in /metrics"
    );
}

#[tokio::test]
async fn a_job_removed_from_the_settings_file_can_be_read_but_not_changed() {
    let app = app().await;
    let operator = signed_in(&app, "olga", Role::Operator).await;
    let kept: Vec<JobSettings> = vec![job("price-refresh", "1h"), slow_job()];
    app.store
        .sync_jobs(&kept, crate::helpers::start_time())
        .await
        .expect("the store answers");
    let (status, job) = get(&operator, &format!("/api/v1/jobs/{JOB}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (job["removed"].clone(), job["state"].clone()),
        (json!(true), json!("removed"))
    );
    let version = job["version"].as_i64().expect("a version");
    let before = snapshot(&app).await;
    let (status, body) = send(
        &operator,
        Method::PATCH,
        &format!("/api/v1/jobs/{JOB}"),
        Some(json!({"version": version, "every": "1m"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = send(
        &operator,
        Method::POST,
        &format!("/api/v1/jobs/{JOB}/resume"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(snapshot(&app).await, before, "nothing changed");
}
