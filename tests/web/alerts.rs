//! Alerts, end to end: the real application, a real webhook receiver on 127.0.0.1, and
//! the manual clock for backoff, `late` and `slow`. One `dead` per dead run, retried
//! after a 500; one `recovered`; one `late`; one `slow`; a receiver that never answers
//! holds up no run; the alerts page shows targets by host only and sends test alerts.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use batchboard::alerts::{
    AlertEvent, AlertSettings, AlertTarget, CHECK_EVERY, Destination, STALLED_AFTER,
};
use batchboard::job::JobSettings;
use batchboard::store::{DeliveryStatus, NewDelivery, Role, RunRecord, RunStatus};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde_json::Value;

use crate::helpers::{TestApp, TestClient, signed_in, spawn_app_with, test_settings};

/// What the receiver got, and the statuses it answers with next (200 once they run out).
#[derive(Default)]
struct Inbox {
    received: Vec<(Value, Option<String>)>,
    answers: Vec<StatusCode>,
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Inbox>>);

impl Receiver {
    async fn start(answers: &[StatusCode]) -> (Self, String) {
        let receiver = Receiver::default();
        receiver.lock().answers = answers.iter().rev().copied().collect();
        let app = Router::new()
            .route("/hook/T000/B000", post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bound");
        let address = listener.local_addr().expect("an address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, format!("http://{address}/hook/T000/B000"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn events(&self) -> Vec<String> {
        self.lock()
            .received
            .iter()
            .map(|(body, _)| body["event"].as_str().unwrap_or("?").to_owned())
            .collect()
    }

    /// Waits (up to 10 s) until `count` requests have arrived; returns them.
    async fn wait_for(&self, count: usize) -> Vec<(Value, Option<String>)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let received = self.lock().received.clone();
            if received.len() >= count {
                return received;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {count} alerts, got {:?}",
                self.events()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Checks for a moment that nothing more than `count` arrives.
    async fn stays_at(&self, count: usize) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(self.lock().received.len(), count, "{:?}", self.events());
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let mut inbox = receiver.lock();
    let authorization = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    inbox.received.push((
        serde_json::from_str(&body).unwrap_or(Value::Null),
        authorization,
    ));
    inbox.answers.pop().unwrap_or(StatusCode::OK)
}

fn webhook(name: &str, url: &str, events: &[AlertEvent]) -> AlertTarget {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut token = HeaderValue::from_static("Bearer s3cret-token");
    token.set_sensitive(true);
    headers.insert(AUTHORIZATION, token);
    AlertTarget {
        name: name.into(),
        destination: Destination::Webhook {
            url: url.parse().expect("a URL"),
            headers,
        },
        events: events.to_vec(),
        jobs: None,
    }
}

/// A `command` job running `script`, never scheduled within a test, one attempt.
fn shell_job(name: &str, script: &str) -> JobSettings {
    JobSettings {
        name: name.into(),
        handler: "command".into(),
        every: Some("1d".into()),
        max_attempts: Some(1),
        params: Some(serde_json::json!({ "program": "sh", "args": ["-c", script] })),
        ..JobSettings::default()
    }
}

async fn app_with(jobs: Vec<JobSettings>, alerts: AlertSettings) -> TestApp {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut settings = test_settings(dir.path());
    settings.jobs = jobs;
    settings.alerts = alerts;
    settings.web.public_url = Some("https://batchboard.example.com".parse().expect("a URL"));
    spawn_app_with(settings, dir).await
}

/// Starts a run of `job` and waits (up to 10 s) for it to end.
async fn run_until_it_ends(app: &TestApp, client: &TestClient, job: &str) -> RunRecord {
    let id = start_run(client, job).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let run = app.store.run(id).await.expect("store").expect("the run");
        if !matches!(run.status, RunStatus::Running | RunStatus::Queued) {
            return run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {id} did not end: {run:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn start_run(client: &TestClient, job: &str) -> i64 {
    let token = client.csrf_token().await;
    let response = client
        .client
        .post(client.url(&format!("/api/v1/jobs/{job}/run")))
        .header("X-CSRF-Token", token)
        .send()
        .await
        .expect("answered");
    assert!(response.status().is_success(), "{}", response.status());
    let body: Value = response.json().await.expect("JSON");
    body["run_id"].as_i64().expect("a run id")
}

#[tokio::test]
async fn a_dead_run_alerts_once_retried_after_a_500_and_the_next_success_recovers() {
    let (receiver, url) = Receiver::start(&[StatusCode::INTERNAL_SERVER_ERROR]).await;
    let marker = tempfile::tempdir().expect("a directory");
    let ok = marker.path().join("ok");
    let app = app_with(
        vec![shell_job("flaky", &format!("test -f '{}'", ok.display()))],
        AlertSettings {
            targets: vec![webhook("ops", &url, &AlertEvent::DEFAULT)],
            ..AlertSettings::default()
        },
    )
    .await;
    let operator = signed_in(&app, "olga", Role::Operator).await;

    let dead = run_until_it_ends(&app, &operator, "flaky").await;
    assert_eq!(dead.status, RunStatus::Dead);
    let first = receiver.wait_for(1).await;
    assert_eq!(first[0].0["event"], "dead");
    // The 500 is recorded; the retry waits a second on the application's clock.
    let delivery = wait_for_delivery(&app, |d| d.attempts == 1).await;
    assert_eq!(delivery.status, DeliveryStatus::Pending);
    assert!(
        delivery
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("500"),
        "{delivery:?}"
    );
    app.clock.advance(chrono::Duration::seconds(1));
    let both = receiver.wait_for(2).await;
    let (body, authorization) = &both[1];
    assert_eq!(body["event"], "dead");
    assert_eq!(body["job"], "flaky");
    assert_eq!(body["run_id"], dead.id);
    assert_eq!(body["status"], "dead");
    assert_eq!(body["attempt"], 1);
    assert_eq!(
        body["url"],
        format!("https://batchboard.example.com/runs/{}", dead.id)
    );
    let text = body["text"].as_str().expect("a text");
    assert!(text.contains("job flaky is dead after 1 attempt"), "{text}");
    assert_eq!(authorization.as_deref(), Some("Bearer s3cret-token"));
    let delivered = wait_for_delivery(&app, |d| d.status == DeliveryStatus::Delivered).await;
    assert_eq!(delivered.attempts, 2);

    std::fs::write(&ok, "").expect("written");
    let succeeded = run_until_it_ends(&app, &operator, "flaky").await;
    assert_eq!(succeeded.status, RunStatus::Succeeded);
    let all = receiver.wait_for(3).await;
    assert_eq!(all[2].0["event"], "recovered");
    assert_eq!(all[2].0["run_id"], succeeded.id);
    // A second success is no recovery.
    run_until_it_ends(&app, &operator, "flaky").await;
    receiver.stays_at(3).await;
}

async fn wait_for_delivery(
    app: &TestApp,
    wanted: impl Fn(&batchboard::store::DeliveryRecord) -> bool,
) -> batchboard::store::DeliveryRecord {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let deliveries = app.store.alerts().deliveries(None, 10).await.expect("read");
        if let Some(found) = deliveries.into_iter().find(|d| wanted(d)) {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "no such delivery");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_job_without_success_for_its_window_is_late_once_then_recovers() {
    let (receiver, url) = Receiver::start(&[]).await;
    let mut nightly = shell_job("nightly", "true");
    nightly.expect_success_within = Some("1h".into());
    let mut alerts = AlertSettings {
        targets: vec![webhook(
            "ops",
            &url,
            &[AlertEvent::Late, AlertEvent::Recovered],
        )],
        ..AlertSettings::default()
    };
    alerts.jobs.insert(
        "nightly".into(),
        batchboard::alerts::JobExpectations {
            success_within: Some(Duration::from_secs(3600)),
            ..Default::default()
        },
    );
    let app = app_with(vec![nightly], alerts).await;
    let operator = signed_in(&app, "olga", Role::Operator).await;

    app.clock.advance(chrono::Duration::minutes(59));
    receiver.stays_at(0).await;
    app.clock.advance(
        chrono::Duration::minutes(1) + chrono::Duration::from_std(CHECK_EVERY).expect("short"),
    );
    let late = receiver.wait_for(1).await;
    assert_eq!(late[0].0["event"], "late");
    assert_eq!(late[0].0["job"], "nightly");
    let text = late[0].0["text"].as_str().expect("a text");
    assert!(text.contains("expected within 1h"), "{text}");
    // Still late an hour on: no second alert.
    app.clock.advance(chrono::Duration::hours(1));
    receiver.stays_at(1).await;
    let dashboard = operator.get("/").await.text().await.expect("a body");
    assert!(
        dashboard.contains("<span class=\"number\">1</span> overdue"),
        "{dashboard}"
    );
    assert!(dashboard.contains(">overdue</span>"), "{dashboard}");

    let run = run_until_it_ends(&app, &operator, "nightly").await;
    assert_eq!(run.status, RunStatus::Succeeded);
    let both = receiver.wait_for(2).await;
    assert_eq!(both[1].0["event"], "recovered");
    // The dashboard reuses a view for moments after a run ends (on the app's clock).
    app.clock.advance(chrono::Duration::minutes(1));
    let dashboard = operator.get("/").await.text().await.expect("a body");
    assert!(!dashboard.contains("overdue</"), "{dashboard}");
}

#[tokio::test]
async fn a_run_past_its_expected_duration_is_slow_while_it_runs() {
    let (receiver, url) = Receiver::start(&[]).await;
    let marker = tempfile::tempdir().expect("a directory");
    let done = marker.path().join("done");
    // Runs until the test says so, so that it is surely going when the clock moves.
    let script = format!("while [ ! -f '{}' ]; do sleep 0.05; done", done.display());
    let mut sleepy = shell_job("sleepy", &script);
    sleepy.expect_duration_under = Some("1m".into());
    let mut alerts = AlertSettings {
        targets: vec![webhook("ops", &url, &[AlertEvent::Slow])],
        ..AlertSettings::default()
    };
    alerts.jobs.insert(
        "sleepy".into(),
        batchboard::alerts::JobExpectations {
            duration_under: Some(Duration::from_secs(60)),
            ..Default::default()
        },
    );
    let app = app_with(vec![sleepy], alerts).await;
    let operator = signed_in(&app, "olga", Role::Operator).await;
    let run_id = start_run(&operator, "sleepy").await;
    // The watcher hears of the start moments after the row is written.
    wait_for_status(&app, run_id, RunStatus::Running).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.clock.advance(chrono::Duration::seconds(30));
    receiver.stays_at(0).await;
    app.clock.advance(chrono::Duration::seconds(31));
    let slow = receiver.wait_for(1).await;
    assert_eq!(slow[0].0["event"], "slow");
    assert_eq!(slow[0].0["run_id"], run_id);
    assert_eq!(slow[0].0["status"], "running");
    std::fs::write(&done, "").expect("written");
    wait_for_status(&app, run_id, RunStatus::Succeeded).await;
    receiver.stays_at(1).await;
}

async fn wait_for_status(app: &TestApp, run_id: i64, status: RunStatus) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let run = app
            .store
            .run(run_id)
            .await
            .expect("store")
            .expect("the run");
        if run.status == status {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {run_id}: {run:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_receiver_that_never_answers_holds_up_no_run() {
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bound");
    let url = format!("http://{}/hook", silent.local_addr().expect("an address"));
    let held = Arc::new(Mutex::new(Vec::new()));
    let holding = Arc::clone(&held);
    tokio::spawn(async move {
        while let Ok((connection, _)) = silent.accept().await {
            holding
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(connection);
        }
    });
    let app = app_with(
        vec![shell_job("broken", "exit 3")],
        AlertSettings {
            targets: vec![webhook(
                "ops",
                &url,
                &[AlertEvent::Dead, AlertEvent::Failed],
            )],
            ..AlertSettings::default()
        },
    )
    .await;
    let operator = signed_in(&app, "olga", Role::Operator).await;
    for _ in 0..3 {
        let run = run_until_it_ends(&app, &operator, "broken").await;
        assert_eq!(run.status, RunStatus::Dead);
    }
    // Every delivery is still waiting for its answer, none finished.
    let deliveries = app.store.alerts().deliveries(None, 20).await.expect("read");
    assert!(
        deliveries
            .iter()
            .all(|d| d.status == DeliveryStatus::Pending && d.attempts == 0),
        "{deliveries:?}"
    );
}

#[tokio::test]
async fn the_alerts_page_shows_targets_by_host_and_operators_send_test_alerts() {
    let (receiver, url) = Receiver::start(&[]).await;
    let app = app_with(
        vec![shell_job("flaky", "exit 1")],
        AlertSettings {
            targets: vec![
                webhook("ops", &url, &AlertEvent::DEFAULT),
                AlertTarget {
                    name: "journal".into(),
                    destination: Destination::Log,
                    events: vec![AlertEvent::Failed],
                    jobs: Some(vec!["flaky".into()]),
                },
            ],
            ..AlertSettings::default()
        },
    )
    .await;
    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    let page = viewer.get("/alerts").await.text().await.expect("a body");
    assert!(page.contains("webhook to http://127.0.0.1/…"), "{page}");
    assert!(
        page.contains("the server&#39;s log") || page.contains("the server's log"),
        "{page}"
    );
    for secret in ["T000", "B000", "s3cret"] {
        assert!(!page.contains(secret), "{secret} shown: {page}");
    }
    assert!(!page.contains("Send a test alert"), "{page}");
    let token = viewer.csrf_token().await;
    let refused = viewer
        .post_form("/alerts/ops/test", &[("csrf_token", &token)])
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    let operator = signed_in(&app, "olga", Role::Operator).await;
    let page = operator.get("/alerts").await.text().await.expect("a body");
    assert!(page.contains("Send a test alert"), "{page}");
    let token = operator.csrf_token().await;
    let sent = operator
        .post_form("/alerts/ops/test", &[("csrf_token", &token)])
        .await;
    assert_eq!(sent.status(), StatusCode::SEE_OTHER);
    let test = receiver.wait_for(1).await;
    assert_eq!(test[0].0["event"], "test");
    assert!(
        test[0].0["text"]
            .as_str()
            .unwrap_or_default()
            .contains("sent by olga")
    );
    let unknown = operator
        .post_form("/alerts/nowhere/test", &[("csrf_token", &token)])
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let without_csrf = operator.post_form("/alerts/ops/test", &[]).await;
    assert_eq!(without_csrf.status(), StatusCode::FORBIDDEN);

    // A failed attempt of `flaky` goes to the log target and shows on the page.
    run_until_it_ends(&app, &operator, "flaky").await;
    wait_for_delivery(&app, |d| {
        d.target == "journal" && d.status == DeliveryStatus::Delivered
    })
    .await;
    let page = operator.get("/alerts").await.text().await.expect("a body");
    assert!(page.contains(">journal</td>"), "{page}");
    assert!(page.contains(">failed</td>"), "{page}");
    assert!(page.contains(">delivered</span>"), "{page}");
}

#[tokio::test]
async fn deliveries_under_way_are_bounded_and_a_test_alert_past_the_bound_is_refused() {
    // Accepts connections and never answers: every delivery stays under way.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bound");
    let url = format!("http://{}/hook", silent.local_addr().expect("an address"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            held.push(connection);
        }
    });
    let app = app_with(vec![shell_job("quiet", "true")], AlertSettings::default()).await;
    let alerts = batchboard::alerts::Alerts::new(
        AlertSettings {
            targets: vec![webhook("ops", &url, &AlertEvent::DEFAULT)],
            ..AlertSettings::default()
        },
        None,
        app.store.clone(),
        Arc::new(app.clock.clone()),
    );
    for _ in 0..1000 {
        alerts.send_test("ops", "olga").expect("under the bound");
    }
    assert_eq!(
        alerts.send_test("ops", "olga"),
        Err(batchboard::alerts::AlertError::Busy)
    );
}

#[tokio::test]
async fn a_job_past_its_window_is_overdue_on_the_dashboard_without_any_target() {
    let mut nightly = shell_job("nightly", "true");
    nightly.expect_success_within = Some("1h".into());
    let mut alerts = AlertSettings::default();
    alerts.jobs.insert(
        "nightly".into(),
        batchboard::alerts::JobExpectations {
            success_within: Some(Duration::from_secs(3600)),
            ..Default::default()
        },
    );
    let app = app_with(vec![nightly], alerts).await;
    let viewer = signed_in(&app, "vera", Role::Viewer).await;
    app.clock.advance(chrono::Duration::minutes(61));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let dashboard = viewer.get("/").await.text().await.expect("a body");
        if dashboard.contains(">overdue</span>") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{dashboard}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The dashboard reuses a view for a second of the app's clock.
        app.clock.advance(chrono::Duration::seconds(2));
    }
}

#[tokio::test]
async fn a_delivery_left_pending_by_a_stopped_process_is_taken_over_and_sent_once() {
    let (receiver, url) = Receiver::start(&[]).await;
    let alerts = AlertSettings {
        targets: vec![webhook("ops", &url, &[AlertEvent::Dead])],
        ..AlertSettings::default()
    };
    let app = app_with(vec![shell_job("export", "true")], alerts).await;
    // What a process killed between two attempts leaves behind: pending, two attempts
    // made, untouched since; and one for a target since removed from the settings.
    let stopped_at =
        crate::helpers::start_time() - chrono::Duration::from_std(STALLED_AFTER).expect("short");
    let store = app.store.alerts();
    let left = |target: &str| NewDelivery {
        event: "dead".into(),
        target: target.into(),
        job: Some("export".into()),
        run_id: None,
        payload: r#"{"event":"dead","job":"export","text":"left behind"}"#.into(),
        created_at: stopped_at,
    };
    let pending = store.record_delivery(&left("ops")).await.expect("write");
    let orphan = store
        .record_delivery(&left("retired"))
        .await
        .expect("write");
    for id in [pending, orphan] {
        store
            .update_delivery(id, DeliveryStatus::Pending, 2, Some("500"), stopped_at)
            .await
            .expect("write");
    }

    app.clock
        .advance(chrono::Duration::from_std(CHECK_EVERY).expect("short"));
    let got = receiver.wait_for(1).await;
    assert_eq!(
        got[0].0["text"], "left behind",
        "the stored payload, as it was"
    );
    assert_eq!(
        got[0].1.as_deref(),
        Some("Bearer s3cret-token"),
        "with the target's headers from the settings"
    );
    let sent = wait_for_delivery(&app, |d| {
        d.id == pending && d.status == DeliveryStatus::Delivered
    })
    .await;
    assert_eq!(
        sent.attempts, 3,
        "counted on from the attempts already made"
    );
    let failed = wait_for_delivery(&app, |d| {
        d.id == orphan && d.status == DeliveryStatus::Failed
    })
    .await;
    assert_eq!(
        failed.last_error.as_deref(),
        Some("the alert target is no longer configured")
    );
    // Taken over once: later looks leave it alone.
    app.clock.advance(chrono::Duration::minutes(10));
    receiver.stays_at(1).await;
}
