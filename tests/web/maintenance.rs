//! Maintenance: an admin pauses every job at once with a reason (API and console); the
//! banner shows on every page, escaped; ending it resumes only the jobs it paused; each
//! pause and resume is in the history; other roles are refused.

use reqwest::{Method, StatusCode};
use serde_json::json;

use batchboard::store::Role;

use crate::api::send;
use crate::helpers::{TestClient, app_with_jobs, job, signed_in};

async fn paused(client: &TestClient, job: &str) -> bool {
    let (status, body) = send(client, Method::GET, &format!("/api/v1/jobs/{job}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["paused"].as_bool().expect("paused")
}

#[tokio::test]
async fn maintenance_pauses_every_job_shows_a_banner_and_resumes_only_what_it_paused() {
    let app = app_with_jobs(vec![
        job("sync", "5m"),
        job("report", "1h"),
        job("held", "1h"),
    ])
    .await;
    let admin = signed_in(&app, "ada", Role::Admin).await;
    let operator = signed_in(&app, "olga", Role::Operator).await;
    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    let (status, _) = send(&operator, Method::POST, "/api/v1/jobs/held/pause", None).await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = send(
        &operator,
        Method::POST,
        "/api/v1/maintenance",
        Some(json!({"reason": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, refused) = send(
        &admin,
        Method::POST,
        "/api/v1/maintenance",
        Some(json!({"reason": "  "})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused["fields"]["reason"].as_str().is_some(), "{refused}");

    let reason = "database <b>upgrade</b>";
    let (status, begun) = send(
        &admin,
        Method::POST,
        "/api/v1/maintenance",
        Some(json!({"reason": reason})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{begun}");
    assert_eq!(begun["active"], true);
    assert_eq!(begun["paused_jobs"], json!(["report", "sync"]));
    for name in ["sync", "report", "held"] {
        assert!(paused(&viewer, name).await, "{name} is paused");
    }
    let (status, again) = send(
        &admin,
        Method::POST,
        "/api/v1/maintenance",
        Some(json!({"reason": "again"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert!(
        again["error"]
            .as_str()
            .unwrap_or_default()
            .contains("begun by ada"),
        "{again}"
    );

    for path in ["/", "/runs", "/jobs/sync", "/alerts"] {
        let page = viewer.get(path).await.text().await.expect("a body");
        assert!(
            page.contains("class=\"maintenance-banner\""),
            "{path}: {page}"
        );
        assert!(
            page.contains("database &#60;b&#62;upgrade&#60;/b&#62;"),
            "{path} escapes the reason: {page}"
        );
        assert!(!page.contains("<b>upgrade"), "{path}");
    }
    let (status, shown) = send(&viewer, Method::GET, "/api/v1/maintenance", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["reason"], reason);
    assert_eq!(shown["started_by"], "ada");

    let (status, _) = send(&operator, Method::DELETE, "/api/v1/maintenance", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, ended) = send(&admin, Method::DELETE, "/api/v1/maintenance", None).await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    assert!(!paused(&viewer, "sync").await);
    assert!(!paused(&viewer, "report").await);
    assert!(
        paused(&viewer, "held").await,
        "paused before, so still paused"
    );
    let (status, _) = send(&admin, Method::DELETE, "/api/v1/maintenance", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let page = viewer.get("/").await.text().await.expect("a body");
    assert!(!page.contains("maintenance-banner"), "{page}");

    let (_, history) = send(&viewer, Method::GET, "/api/v1/history?job=sync", None).await;
    let actors: Vec<&str> = history["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|change| change["actor"].as_str())
        .collect();
    assert_eq!(
        actors,
        [
            "ada (maintenance: database <b>upgrade</b>)",
            "ada (maintenance: database <b>upgrade</b>)"
        ],
        "{history}"
    );
}

#[tokio::test]
async fn the_console_form_begins_and_ends_maintenance_for_admins_only() {
    let app = app_with_jobs(vec![job("sync", "5m")]).await;
    let admin = signed_in(&app, "ada", Role::Admin).await;
    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    assert_eq!(
        viewer.get("/maintenance").await.status(),
        StatusCode::FORBIDDEN
    );
    let token = viewer.csrf_token().await;
    let refused = viewer
        .post_form(
            "/maintenance",
            &[("csrf_token", &token), ("reason", "nope")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    let token = admin.csrf_token().await;
    let empty = admin
        .post_form("/maintenance", &[("csrf_token", &token), ("reason", "")])
        .await;
    assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = empty.text().await.expect("a body");
    assert!(page.contains("say why"), "{page}");

    let begun = admin
        .post_form(
            "/maintenance",
            &[("csrf_token", &token), ("reason", "moving racks")],
        )
        .await;
    assert_eq!(begun.status(), StatusCode::SEE_OTHER);
    let page = admin
        .get("/maintenance")
        .await
        .text()
        .await
        .expect("a body");
    assert!(
        page.contains("moving racks") && page.contains("href=\"/jobs/sync\""),
        "{page}"
    );
    assert!(paused(&admin, "sync").await);

    let ended = admin
        .post_form("/maintenance/end", &[("csrf_token", &token)])
        .await;
    assert_eq!(ended.status(), StatusCode::SEE_OTHER);
    assert!(!paused(&admin, "sync").await);
    let page = admin
        .get("/maintenance")
        .await
        .text()
        .await
        .expect("a body");
    assert!(page.contains("Pause every job"), "{page}");
}
