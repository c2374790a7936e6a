//! `after` and `after_failure` edited through `PATCH /api/v1/jobs/{name}`: the same
//! checks as the settings file (names that are jobs, no cycle), 422 naming the field and
//! nothing saved when refused, the history when saved.

use batchboard::job::JobSettings;
use batchboard::store::{ChangeFilter, Role};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestClient, app_with_jobs, job, signed_in};

async fn patch(client: &TestClient, name: &str, body: Value) -> (StatusCode, Value) {
    let token = client.csrf_token().await;
    let response = client
        .client
        .patch(client.url(&format!("/api/v1/jobs/{name}")))
        .header("X-CSRF-Token", token)
        .json(&body)
        .send()
        .await
        .expect("answered");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

async fn version_of(app: &TestApp, name: &str) -> i64 {
    app.store
        .job_by_name(name)
        .await
        .expect("the store answers")
        .expect("the job exists")
        .version
}

#[tokio::test]
async fn after_is_edited_checked_across_jobs_and_recorded() {
    let app = app_with_jobs(vec![
        job("extract", "1h"),
        job("transform", "1h"),
        job("load", "1h"),
    ])
    .await;
    let operator = signed_in(&app, "olga", Role::Operator).await;

    // transform after extract, load after transform: fine, and on record.
    for (name, upstream) in [("transform", "extract"), ("load", "transform")] {
        let version = version_of(&app, name).await;
        let (status, answer) = patch(
            &operator,
            name,
            json!({"version": version, "after": [upstream]}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["after"], json!([upstream]), "{answer}");
    }
    let changes = app
        .store
        .job_changes(&ChangeFilter {
            limit: 100,
            ..ChangeFilter::default()
        })
        .await
        .expect("the history reads");
    let after_changes: Vec<_> = changes.iter().filter(|c| c.field == "after").collect();
    assert_eq!(after_changes.len(), 2, "{changes:#?}");
    assert!(after_changes.iter().all(|c| c.actor == "olga"));

    // extract after load would loop: 422 on `after`, naming the cycle; nothing saved.
    let version = version_of(&app, "extract").await;
    let (status, answer) = patch(
        &operator,
        "extract",
        json!({"version": version, "after": ["load"]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(
        answer["fields"]["after"],
        "the chain extract → transform → load → extract leads back to where it started",
        "{answer}"
    );
    assert_eq!(version_of(&app, "extract").await, version, "nothing saved");

    // A name that is not a job, and the job itself, are refused on their field.
    for (body, field, message) in [
        (
            json!({"after_failure": ["nope"]}),
            "after_failure",
            "\"nope\" is not a job",
        ),
        (
            json!({"after": ["extract"]}),
            "after",
            "a job cannot run after itself (\"extract\")",
        ),
        (json!({"after": "load"}), "after", "wrong type"),
    ] {
        let mut body = body;
        body["version"] = json!(version);
        let (status, answer) = patch(&operator, "extract", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        let text = answer["fields"][field].as_str().unwrap_or_default();
        assert!(text.starts_with(message), "{field}: {answer}");
        assert_eq!(version_of(&app, "extract").await, version, "nothing saved");
    }

    // A viewer may not change links at all.
    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    let (status, _) = patch(
        &viewer,
        "extract",
        json!({"version": version, "after_failure": ["load"]}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_chains_view_draws_each_chain_with_links_to_its_jobs_and_job_pages_show_their_links() {
    let follows = |name: &str, after: &[&str], after_failure: &[&str]| JobSettings {
        after: (!after.is_empty()).then(|| after.iter().map(|n| (*n).to_owned()).collect()),
        after_failure: (!after_failure.is_empty())
            .then(|| after_failure.iter().map(|n| (*n).to_owned()).collect()),
        ..job(name, "1h")
    };
    let app = app_with_jobs(vec![
        job("extract", "1h"),
        follows("transform", &["extract"], &[]),
        follows("cleanup", &[], &["extract"]),
        job("lonely", "1h"),
    ])
    .await;
    let viewer = signed_in(&app, "vera", Role::Viewer).await;

    let response = viewer.get("/chains").await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.expect("a body");
    let svg_start = page.find("<svg class=\"chain\"").expect("a chain is drawn");
    let svg = &page[svg_start
        ..page[svg_start..]
            .find("</svg>")
            .map_or(page.len(), |end| svg_start + end)];
    for name in ["extract", "transform", "cleanup"] {
        assert!(
            svg.contains(&format!("<a href=\"/jobs/{name}\" class=\"node none\">")),
            "{name}: {svg}"
        );
    }
    assert!(svg.contains("class=\"edge failure\""), "{svg}");
    assert!(
        !page.contains("/jobs/lonely"),
        "a job with no link is not in a chain"
    );
    assert!(
        page.contains("runs when extract fails"),
        "the links in words"
    );

    let response = viewer.get("/jobs/extract").await;
    let page = response.text().await.expect("a body");
    assert!(page.contains("Followed by"), "{page}");
    assert!(
        page.contains("<a href=\"/jobs/transform\">transform</a> (after)"),
        "{page}"
    );
    assert!(
        page.contains("<a href=\"/jobs/cleanup\">cleanup</a> (on failure)"),
        "{page}"
    );
    let page = viewer
        .get("/jobs/transform")
        .await
        .text()
        .await
        .expect("a body");
    assert!(
        page.contains("Runs after <a href=\"/jobs/extract\">extract</a>"),
        "{page}"
    );
    let page = viewer
        .get("/jobs/lonely")
        .await
        .text()
        .await
        .expect("a body");
    assert!(
        !page.contains("id=\"chain-h\""),
        "no chain section for a lone job"
    );
}
