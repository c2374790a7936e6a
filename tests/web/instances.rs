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

/// Two servers on one PostgreSQL database: an edit made on the follower reaches the
/// leader at once (the follower's commit announces it), so the leader fires on the new
/// schedule without waiting for the old slot. On SQLite a second server is refused, so
/// this runs with `BATCHBOARD_TEST_WEB_BACKEND=postgres` only.
#[tokio::test]
async fn an_edit_made_on_a_follower_reaches_the_leader_at_once() {
    edit_on_a_follower_reaches_the_leader(true).await;
}

/// The same behind a transaction-mode pooler (`[scheduler] listen = false`): the leader
/// finds the change by polling, within seconds.
#[tokio::test]
async fn an_edit_made_on_a_follower_reaches_a_leader_that_only_polls() {
    edit_on_a_follower_reaches_the_leader(false).await;
}

async fn edit_on_a_follower_reaches_the_leader(listen: bool) {
    if !crate::helpers::on_postgres() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut settings = crate::helpers::test_settings(dir.path());
    settings.scheduler.listen = listen;
    let leader = crate::helpers::spawn_app_with(settings, dir).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let settings = crate::helpers::test_settings_on(dir.path(), &leader.database_url);
    let follower = crate::helpers::spawn_app_with(settings, dir).await;
    let operator = signed_in(&follower, "otto", Role::Operator).await;

    let job: Value = operator
        .get("/api/v1/jobs/inventory-sync")
        .await
        .json()
        .await
        .expect("JSON");
    let token = operator.csrf_token().await;
    let saved = operator
        .client
        .patch(operator.url("/api/v1/jobs/inventory-sync"))
        .header("X-CSRF-Token", token)
        .json(&serde_json::json!({"every": "1m", "version": job["version"]}))
        .send()
        .await
        .expect("answered");
    assert_eq!(saved.status(), StatusCode::OK);
    let saved: Value = saved.json().await.expect("JSON");
    let next: chrono::DateTime<chrono::Utc> = saved["next_run_at"]
        .as_str()
        .and_then(|at| at.parse().ok())
        .expect("a next fire");

    // The old schedule's next fire is 5 minutes away; the new one comes first.
    leader.clock.set(next + chrono::Duration::seconds(1));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let runs = leader
            .store
            .runs(&batchboard::store::RunFilter {
                limit: 10,
                ..batchboard::store::RunFilter::default()
            })
            .await
            .expect("runs load");
        if runs.iter().any(|run| run.scheduled_for == next) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the leader did not fire the edited schedule's slot {next}: {runs:?}"
        );
        // The leader's scheduler wakes on its own clock; nudge it.
        leader.clock.set(next + chrono::Duration::seconds(1));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Two servers on one PostgreSQL database: a run going on the leader is cancelled from
/// the follower's API; the request reaches the leader, which stops the run.
#[tokio::test]
async fn a_run_going_on_another_instance_is_cancelled_through_it() {
    if !crate::helpers::on_postgres() {
        return;
    }
    // Its run waits on the manual clock, so it goes on until cancelled.
    let slow = batchboard::job::JobSettings {
        name: "slow-sync".into(),
        handler: "demo_inventory".into(),
        every: Some("1d".into()),
        params: Some(serde_json::json!({"items": 5, "item_delay_ms": 5_000, "fail_chance": 0})),
        ..batchboard::job::JobSettings::default()
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut settings = crate::helpers::test_settings(dir.path());
    settings.jobs.push(slow.clone());
    let jobs = settings.jobs.clone();
    let leader = crate::helpers::spawn_app_with(settings, dir).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut settings = crate::helpers::test_settings_on(dir.path(), &leader.database_url);
    settings.jobs = jobs;
    let follower = crate::helpers::spawn_app_with(settings, dir).await;

    let on_leader = signed_in(&leader, "lena", Role::Operator).await;
    let token = on_leader.csrf_token().await;
    let started: Value = on_leader
        .client
        .post(on_leader.url("/api/v1/jobs/slow-sync/run"))
        .header("X-CSRF-Token", token)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    let run_id = started["run_id"].as_i64().expect("a run id");

    let on_follower = signed_in(&follower, "otto", Role::Operator).await;
    let token = on_follower.csrf_token().await;
    let answer = on_follower
        .client
        .post(on_follower.url(&format!("/api/v1/runs/{run_id}/cancel")))
        .header("X-CSRF-Token", token)
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status(), StatusCode::ACCEPTED);

    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let run = leader
            .store
            .run(run_id)
            .await
            .expect("loads")
            .expect("exists");
        if run.status == batchboard::store::RunStatus::Cancelled {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the leader did not stop the run: {run:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A run queued for whichever instance claims it (the leader's way on PostgreSQL) shows
/// that no instance has it yet, and an operator cancels it where it waits.
#[tokio::test]
async fn a_run_no_instance_has_claimed_shows_so_and_is_cancelled_where_it_waits() {
    let app = app_with_jobs(vec![job("inventory-sync", "1h")]).await;
    let operator = signed_in(&app, "otto", Role::Operator).await;
    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    let job = app
        .store
        .job_by_name("inventory-sync")
        .await
        .expect("loads")
        .expect("exists");
    // Due in a day: nobody claims it meanwhile.
    let later = chrono::Utc::now() + chrono::Duration::days(1);
    let queued = batchboard::store::NewRun {
        job_id: job.id,
        trigger: batchboard::store::Trigger::Schedule,
        attempt: 1,
        first_run_id: None,
        status: batchboard::store::RunStatus::Queued,
        scheduled_for: later,
        started_at: later,
        finished_at: None,
        error_kind: None,
        error_message: None,
        instance_id: batchboard::store::UNCLAIMED.into(),
        exclusive: true,
    };
    let written = app
        .store
        .write_batch(&batchboard::store::WriteBatch {
            inserts: vec![queued],
            ..Default::default()
        })
        .await
        .expect("written");
    let run_id = written.inserts[0].run_id().expect("inserted");

    let page = viewer.get(&format!("/runs/{run_id}")).await;
    let html = page.text().await.expect("a page");
    assert!(
        html.contains("none yet: queued for whichever instance claims it first"),
        "{html}"
    );

    let token = operator.csrf_token().await;
    let answer = operator
        .client
        .post(operator.url(&format!("/api/v1/runs/{run_id}/cancel")))
        .header("X-CSRF-Token", token)
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    let run = app.store.run(run_id).await.expect("loads").expect("exists");
    assert_eq!(run.status, batchboard::store::RunStatus::Cancelled);
    assert_eq!(run.started_at, None, "it never started");
    assert_eq!(
        run.error_message.as_deref(),
        Some("cancelled by otto before it started")
    );
}
