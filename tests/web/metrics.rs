//! `/metrics`: who may read it, and that runs and requests move the right series.
//!
//! The Prometheus recorder is global to the test binary, so every test here uses job
//! names no other test has, and asserts on those series only.

use std::time::Duration;

use batchboard::config::MetricsSettings;
use batchboard::job::JobSettings;
use batchboard::store::{Role, RunStatus};
use reqwest::StatusCode;

use crate::health::LiveApp;
use crate::helpers::{TestClient, USER_PASSWORD, new_client, start_time};

const TOKEN: &str = "a-metrics-token-for-tests";

/// A demo job that never fails (`fail_chance` 0) or always does (1), with
/// `max_attempts` attempts.
fn demo_job(name: &str, fail_chance: f64, max_attempts: u32) -> JobSettings {
    JobSettings {
        name: name.into(),
        handler: "demo_inventory".into(),
        every: Some("1h".into()),
        max_attempts: Some(max_attempts),
        params: Some(serde_json::json!({
            "items": 3, "item_delay_ms": 0, "fail_chance": fail_chance
        })),
        ..JobSettings::default()
    }
}

fn with_token(settings: &mut batchboard::config::Settings) {
    settings.metrics = MetricsSettings {
        token: Some(TOKEN.into()),
        bind: None,
    };
}

async fn scrape_with_token(client: &TestClient) -> String {
    let response = client
        .client
        .get(client.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("the request is answered");
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.expect("a body")
}

/// The value of the sample `name{labels}` whose labels include every pair of `labels`
/// (the sum if several match); 0 when there is none.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((series_name, rest)) => (series_name, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let wanted = labels
                .iter()
                .all(|(key, value)| series_labels.contains(&format!("{key}=\"{value}\"")));
            (series_name == name && wanted).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Starts a run of `job` by hand and waits until its final row is committed and the
/// scheduler has heard that it ended (so that the next run of the job may start).
async fn run_to_the_end(app: &LiveApp, job: &str) -> RunStatus {
    let id = app.scheduler.run_now(job).await.expect("the run starts");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let run = app.store.run(id).await.expect("store").expect("the run");
        if run.status != RunStatus::Running && app.scheduler.live_runs().get(id).is_none() {
            // The executor tells the scheduler right after it lets go of the run; a
            // sync goes through the same queue, after that news.
            app.scheduler.sync().await;
            return run.status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run did not finish in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn metrics_refuse_a_request_without_credentials_or_with_a_wrong_token() {
    let app = LiveApp::start(with_token).await;
    let anonymous = app.client.get("/metrics").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let wrong = app
        .client
        .client
        .get(app.client.url("/metrics"))
        .bearer_auth("not-the-metrics-token-at-all")
        .send()
        .await
        .expect("the request is answered");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn metrics_answer_prometheus_text_to_the_token_and_to_a_signed_in_user() {
    let app = LiveApp::start(with_token).await;
    let text = scrape_with_token(&app.client).await;
    assert!(text.contains("# TYPE batchboard_jobs gauge"), "{text}");

    batchboard::users::add_user(&app.store, "mia", Role::Viewer, USER_PASSWORD, start_time())
        .await
        .expect("the user is created");
    let signed_in = TestClient {
        base: app.client.base.clone(),
        client: new_client(),
    };
    signed_in.login_ok("mia", USER_PASSWORD).await;
    let response = signed_in.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    app.stop().await;
}

#[tokio::test]
async fn without_a_token_configured_only_a_session_opens_the_metrics() {
    let app = LiveApp::start(|_| {}).await;
    let response = app
        .client
        .client
        .get(app.client.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("the request is answered");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn the_separate_metrics_address_serves_metrics_openly_and_nothing_else() {
    let app = LiveApp::start(|settings| {
        settings.metrics = MetricsSettings {
            token: None,
            bind: Some("127.0.0.1:0".parse().expect("an address")),
        };
    })
    .await;
    let address = app.metrics_address.expect("a metrics address");
    let open = TestClient {
        base: format!("http://{address}"),
        client: new_client(),
    };
    let response = open.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("a body");
    assert!(text.contains("batchboard_runs_running"), "{text}");
    assert_eq!(open.get("/login").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(open.get("/").await.status(), StatusCode::NOT_FOUND);
    // The main address still wants credentials.
    assert_eq!(
        app.client.get("/metrics").await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
}

#[tokio::test]
async fn a_scrape_after_a_few_runs_finds_the_run_counters_moved_by_exactly_those_runs() {
    let app = LiveApp::start(|settings| {
        with_token(settings);
        settings.jobs = vec![
            demo_job("metrics-steady", 0.0, 1),
            demo_job("metrics-flaky", 1.0, 3),
            demo_job("metrics-doomed", 1.0, 1),
        ];
    })
    .await;
    let before = scrape_with_token(&app.client).await;

    assert_eq!(
        run_to_the_end(&app, "metrics-steady").await,
        RunStatus::Succeeded
    );
    assert_eq!(
        run_to_the_end(&app, "metrics-steady").await,
        RunStatus::Succeeded
    );
    assert_eq!(
        run_to_the_end(&app, "metrics-flaky").await,
        RunStatus::Retrying
    );
    assert_eq!(
        run_to_the_end(&app, "metrics-doomed").await,
        RunStatus::Dead
    );

    let after = scrape_with_token(&app.client).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    let steady = [("job", "metrics-steady")];
    assert_eq!(moved("batchboard_runs_started_total", &steady), 2.0);
    assert_eq!(
        moved(
            "batchboard_runs_finished_total",
            &[("job", "metrics-steady"), ("status", "succeeded")]
        ),
        2.0
    );
    assert_eq!(moved("batchboard_run_duration_seconds_count", &steady), 2.0);
    assert_eq!(
        moved(
            "batchboard_runs_finished_total",
            &[("job", "metrics-flaky"), ("status", "retrying")]
        ),
        1.0
    );
    assert_eq!(
        moved("batchboard_retries_total", &[("job", "metrics-flaky")]),
        1.0
    );
    assert_eq!(
        moved("batchboard_dead_runs_total", &[("job", "metrics-doomed")]),
        1.0
    );
    assert_eq!(
        moved("batchboard_retries_total", &[("job", "metrics-doomed")]),
        0.0
    );
    // The running gauge is set at each scrape from the scraping app's live runs, and
    // other apps of this test process scrape too: only this app's own answer is exact.
    assert!(app.scheduler.live_runs().all().is_empty());
    // Set at each scrape from the scraping app's store; other apps in this process share
    // the gauge, so only its presence is certain here.
    assert!(
        after.contains("batchboard_jobs{state=\"scheduled\"}"),
        "{after}"
    );
    assert!(sample(&after, "batchboard_db_pool_connections", &[]) >= 1.0);
    app.stop().await;
}

#[tokio::test]
async fn http_requests_are_counted_under_their_route_template_never_the_raw_path() {
    let app = LiveApp::start(|settings| {
        with_token(settings);
        settings.jobs = vec![demo_job("metrics-route-probe", 0.0, 1)];
    })
    .await;
    // Refused (303 to the sign-in page), but still counted, under the template.
    let response = app.client.get("/jobs/metrics-route-probe").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let text = scrape_with_token(&app.client).await;
    let labels = [
        ("route", "/jobs/{name}"),
        ("method", "GET"),
        ("status", "303"),
    ];
    assert!(
        sample(&text, "batchboard_http_requests_total", &labels) >= 1.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "batchboard_http_request_duration_seconds_count",
            &[("route", "/jobs/{name}")]
        ) >= 1.0
    );
    assert!(!text.contains("metrics-route-probe\",method"), "{text}");
    assert!(
        !text.contains("route=\"/jobs/metrics-route-probe\""),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_scheduled_fire_records_how_late_its_handler_started() {
    let app = LiveApp::start(|settings| {
        with_token(settings);
        settings.jobs = vec![demo_job("metrics-late", 0.0, 1)];
    })
    .await;
    let job = app
        .store
        .job_by_name("metrics-late")
        .await
        .expect("store")
        .expect("the job");
    let due = job.next_run_at.expect("a next fire");
    let mut events = app.scheduler.subscribe();
    app.clock.set(due + chrono::Duration::seconds(30));
    app.scheduler.sync().await;
    let finished = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(batchboard::scheduler::SchedulerEvent::RunFinished { job, .. })
                    if job == "metrics-late" =>
                {
                    break;
                }
                Ok(_) => {}
                Err(error) => panic!("the scheduler's events ended: {error}"),
            }
        }
    })
    .await;
    assert!(finished.is_ok(), "the fire did not finish in time");
    let text = scrape_with_token(&app.client).await;
    let late = [("job", "metrics-late")];
    assert_eq!(
        sample(&text, "batchboard_fire_lateness_seconds_count", &late),
        1.0
    );
    assert_eq!(
        sample(&text, "batchboard_fire_lateness_seconds_sum", &late),
        30.0
    );
    assert_eq!(
        sample(
            &text,
            "batchboard_fire_lateness_seconds_bucket",
            &[("job", "metrics-late"), ("le", "30")]
        ),
        1.0
    );
    assert!(
        text.contains("# HELP batchboard_fire_lateness_seconds"),
        "{text}"
    );
    app.stop().await;
}
