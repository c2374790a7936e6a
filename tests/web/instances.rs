//! The instances panel and API: the server sees itself alive, and each run names the
//! instance that ran it.

use batchboard::store::Role;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{app_with_jobs, job, run_to_the_end, signed_in};

#[tokio::test]
async fn the_instances_panel_and_api_show_this_server_alive_and_runs_name_their_instance() {
    let app = app_with_jobs(vec![job("inventory-sync", "1h")]).await;
    let operator = signed_in(&app, "otto", Role::Operator).await;
    let viewer = signed_in(&app, "vera", Role::Viewer).await;

    let answer = viewer.get("/api/v1/instances").await;
    assert_eq!(answer.status(), StatusCode::OK);
    let body: Value = answer.json().await.expect("JSON");
    let instances = body["instances"].as_array().expect("a list");
    assert_eq!(instances.len(), 1, "{body}");
    let me = &instances[0];
    assert_eq!(
        (
            me["kind"].as_str(),
            me["alive"].as_bool(),
            me["leader"].as_bool(),
            me["running_runs"].as_u64()
        ),
        (Some("serve"), Some(true), Some(true), Some(0)),
        "{body}"
    );
    let id = me["id"].as_str().expect("an id").to_owned();

    let run_id = run_to_the_end(&app, &operator, "inventory-sync").await;
    let run = app.store.run(run_id).await.expect("loads").expect("exists");
    assert_eq!(run.instance_id, id, "the run names this server");
    let run_page = viewer.get(&format!("/runs/{run_id}")).await;
    let html = run_page.text().await.expect("a page");
    assert!(html.contains(&format!("<code>{id}</code>")), "{html}");

    let panel = viewer.get("/instances").await;
    assert_eq!(panel.status(), StatusCode::OK);
    let html = panel.text().await.expect("a page");
    assert!(
        html.contains(&format!("<code>{id}</code> (this one)"))
            && html.contains("<td>alive, leader</td>"),
        "{html}"
    );
}
