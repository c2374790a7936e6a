//! `/healthz` and `/readyz`: public, and `/readyz` follows the database and the
//! scheduler task. Also the harness the metrics tests share: an app whose scheduler
//! handle the test keeps.

use std::net::SocketAddr;
use std::sync::Arc;

use batchboard::app::{Application, Options};
use batchboard::clock::ManualClock;
use batchboard::config::Settings;
use batchboard::scheduler::SchedulerHandle;
use batchboard::store::SharedStore;
use reqwest::StatusCode;

use crate::helpers::{
    PgDatabase, TestClient, new_client, start_time, take_database, test_settings,
};

/// A running application whose scheduler the test can command (and stop) while the
/// HTTP server keeps answering.
pub struct LiveApp {
    /// An anonymous client of the main address.
    pub client: TestClient,
    pub scheduler: SchedulerHandle,
    pub store: SharedStore,
    /// The application's clock.
    pub clock: ManualClock,
    /// `[metrics] bind`'s address, when set.
    pub metrics_address: Option<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
    _database: Option<PgDatabase>,
}

impl LiveApp {
    /// Starts the real application with [`test_settings`] changed by `adjust`.
    pub async fn start(adjust: impl FnOnce(&mut Settings)) -> LiveApp {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut settings = test_settings(dir.path());
        adjust(&mut settings);
        let clock = ManualClock::new(start_time());
        let options = Options {
            clock: Arc::new(clock.clone()),
            ..Options::default()
        };
        let application = Application::build(settings, options)
            .await
            .expect("the application starts");
        let address = application.address();
        let metrics_address = application.metrics_address();
        let scheduler = application.scheduler().clone();
        let store = application.store().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(application.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        LiveApp {
            client: TestClient {
                base: format!("http://{address}"),
                client: new_client(),
            },
            scheduler,
            store,
            clock,
            metrics_address,
            stop: Some(stop),
            server: Some(server),
            _database: take_database(dir.path()),
            _dir: dir,
        }
    }

    /// Stops the server and the scheduler and waits for them.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("the server task ends")
                .expect("the server stops cleanly");
        }
    }
}

impl Drop for LiveApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[tokio::test]
async fn healthz_and_readyz_answer_without_a_session() {
    let app = LiveApp::start(|_| {}).await;
    let health = app.client.get("/healthz").await;
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.text().await.expect("a body"), "ok");
    let ready = app.client.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.text().await.expect("a body"), "ready");
    app.stop().await;
}

#[tokio::test]
async fn readyz_answers_503_once_the_scheduler_has_stopped_and_says_nothing_more() {
    let app = LiveApp::start(|_| {}).await;
    app.scheduler.shutdown();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.scheduler.is_alive() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the scheduler did not stop in time"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let ready = app.client.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.text().await.expect("a body"), "not ready");
    // Liveness is about the process, which still answers.
    assert_eq!(app.client.get("/healthz").await.status(), StatusCode::OK);
    app.stop().await;
}
