//! The test harness: the real [`Application`] on port 0 with a temporary database, a
//! manual clock, and a cookie-keeping HTTP client that does not follow redirects.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use batchboard::app::{Application, Options};
use batchboard::clock::ManualClock;
use batchboard::config::Settings;
use batchboard::job::JobSettings;
use batchboard::store::{Role, RunStatus, SharedStore};
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION};

#[path = "../common/postgres.rs"]
mod postgres;
pub use postgres::{POSTGRES_URL_VAR, PgDatabase};

/// The first admin's password in every test app.
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// The password [`TestApp::create_user`] gives users.
pub const USER_PASSWORD: &str = "a-long-enough-password";

/// A client of a test app: keeps its own cookies (its own session), never follows
/// redirects.
pub struct TestClient {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The HTTP client.
    pub client: reqwest::Client,
}

/// A running application and a client for it. Derefs to its [`TestClient`].
pub struct TestApp {
    browser: TestClient,
    /// The application's store, to set up and check data.
    pub store: SharedStore,
    /// The application's clock.
    pub clock: ManualClock,
    /// The database URL.
    pub database_url: String,
    /// A folder that lives as long as the app (the database's, with `spawn_app`).
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// On PostgreSQL, the app's database, dropped after the app.
    _database: Option<PgDatabase>,
}

impl std::ops::Deref for TestApp {
    type Target = TestClient;

    fn deref(&self) -> &TestClient {
        &self.browser
    }
}

/// A fixed start time for the manual clock.
pub fn start_time() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("a valid time")
}

fn plain_job(name: &str, every: &str) -> JobSettings {
    JobSettings {
        name: name.into(),
        handler: "demo_inventory".into(),
        every: Some(every.into()),
        ..JobSettings::default()
    }
}

/// Set to `postgres` to run the web tests' apps on PostgreSQL (a database of their own
/// on the server of [`POSTGRES_URL_VAR`]); SQLite otherwise.
pub const BACKEND_VAR: &str = "BATCHBOARD_TEST_WEB_BACKEND";

/// PostgreSQL databases of apps not started yet, by the folder their settings were
/// made for: [`spawn_app_with`] takes its database along, to drop it with the app.
static DATABASES: Mutex<Vec<(PathBuf, PgDatabase)>> = Mutex::new(Vec::new());

/// Whether the apps run on PostgreSQL (see [`BACKEND_VAR`]).
pub fn on_postgres() -> bool {
    std::env::var(BACKEND_VAR).is_ok_and(|backend| backend == "postgres")
}

/// The database of an app whose files are in `dir`: a SQLite file there, or a fresh
/// PostgreSQL database (see [`BACKEND_VAR`]).
fn database_url(dir: &Path) -> String {
    if on_postgres() {
        let database = PgDatabase::create_blocking()
            .unwrap_or_else(|| panic!("{BACKEND_VAR}=postgres needs {POSTGRES_URL_VAR}"));
        let url = database.url.clone();
        DATABASES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((dir.to_owned(), database));
        url
    } else {
        format!("sqlite://{}?mode=rwc", dir.join("batchboard.db").display())
    }
}

/// The PostgreSQL database made for the app in `dir`, if any, to keep as long as it.
pub fn take_database(dir: &Path) -> Option<PgDatabase> {
    let mut databases = DATABASES.lock().unwrap_or_else(PoisonError::into_inner);
    let index = databases.iter().position(|(owner, _)| owner == dir)?;
    Some(databases.swap_remove(index).1)
}

/// Settings for a test app with its database in `dir` (or on PostgreSQL, see
/// [`BACKEND_VAR`]).
pub fn test_settings(dir: &std::path::Path) -> Settings {
    test_settings_on(dir, &database_url(dir))
}

/// [`test_settings`] on the database at `database_url` (another app's, say).
pub fn test_settings_on(dir: &std::path::Path, database_url: &str) -> Settings {
    Settings {
        database_url: database_url.to_owned(),
        bind: "127.0.0.1:0".parse().expect("an address"),
        admin_password: Some(ADMIN_PASSWORD.into()),
        // A source, so the demo jobs do not replace ours.
        source: Some(dir.join("batchboard.toml")),
        jobs: vec![
            plain_job("inventory-sync", "5m"),
            plain_job("price-refresh", "1h"),
        ],
        ..Settings::default()
    }
}

/// A new cookie-keeping client that does not follow redirects.
pub fn new_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}

/// Starts the real application with [`test_settings`].
pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let settings = test_settings(dir.path());
    spawn_app_with(settings, dir).await
}

/// Starts the real application with `settings`, its files in `dir`.
pub async fn spawn_app_with(settings: Settings, dir: tempfile::TempDir) -> TestApp {
    let clock = ManualClock::new(start_time());
    let options = Options {
        clock: Arc::new(clock.clone()),
        ..Options::default()
    };
    let database_url = settings.database_url.clone();
    let application = Application::build(settings, options)
        .await
        .expect("the application starts");
    let address = application.address();
    let store = application.store().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        browser: TestClient {
            base: format!("http://{address}"),
            client: new_client(),
        },
        database_url,
        store,
        clock,
        _database: take_database(dir.path()),
        dir,
        stop: Some(stop),
        server: Some(server),
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The runtime ends with the test; the server task stops with it.
        drop(self.server.take());
    }
}

impl TestApp {
    /// Another client of the same app, with no cookies yet.
    pub fn with_new_client(&self) -> TestClient {
        TestClient {
            base: self.base.clone(),
            client: new_client(),
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

    /// Creates a user with [`USER_PASSWORD`] directly in the store.
    pub async fn create_user(&self, name: &str, role: Role) {
        batchboard::users::add_user(&self.store, name, role, USER_PASSWORD, start_time())
            .await
            .expect("the user is created");
    }

    /// The session cookie's value in `headers`' `Set-Cookie`, if any.
    pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
        headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(|cookie| cookie.strip_prefix("batchboard_session="))
            .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
    }
}

impl TestClient {
    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET `path` with this app's client.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("the request is answered")
    }

    /// POST a form to `path` with this app's client.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .expect("the request is answered")
    }

    /// The CSRF token of the current session, scraped from the sign-in page when signed
    /// out, else from the sign-out page (which every role may see).
    pub async fn csrf_token(&self) -> String {
        let mut response = self.get("/login").await;
        if response.status() == StatusCode::SEE_OTHER {
            response = self.get("/logout").await;
        }
        let body = response.text().await.expect("a body");
        scrape_csrf(&body).expect("the page carries a CSRF token")
    }

    /// Signs in through the form; returns the answer to `POST /login`.
    pub async fn login(&self, name: &str, password: &str) -> reqwest::Response {
        let token = self.csrf_token().await;
        self.post_form(
            "/login",
            &[
                ("name", name),
                ("password", password),
                ("csrf_token", &token),
            ],
        )
        .await
    }

    /// Changes the signed-in user's password through `/account/password`; returns the
    /// answer to the form.
    pub async fn change_password(&self, current: &str, new: &str) -> reqwest::Response {
        let page = self.get("/account/password").await;
        assert_eq!(page.status(), StatusCode::OK, "the password page opens");
        let body = page.text().await.expect("a body");
        let token = scrape_csrf(&body).expect("the page carries a CSRF token");
        self.post_form(
            "/account/password",
            &[
                ("csrf_token", token.as_str()),
                ("current", current),
                ("new_password", new),
                ("confirm", new),
            ],
        )
        .await
    }

    /// Signs in and checks that it worked.
    pub async fn login_ok(&self, name: &str, password: &str) {
        let response = self.login(name, password).await;
        assert_redirect_to(&response, "/");
    }
}

/// The value of the first `name="csrf_token" value="…"` in `html`.
pub fn scrape_csrf(html: &str) -> Option<String> {
    let start = html.find(r#"name="csrf_token" value=""#)? + r#"name="csrf_token" value=""#.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// Asserts a 303 See Other to exactly `location`.
#[track_caller]
pub fn assert_redirect_to(response: &reqwest::Response, location: &str) {
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "expected a 303");
    let actual = response
        .headers()
        .get(LOCATION)
        .and_then(|value| value.to_str().ok());
    assert_eq!(actual, Some(location));
}

/// A demo job that runs quickly and never fails.
pub fn job(name: &str, every: &str) -> JobSettings {
    JobSettings {
        name: name.into(),
        handler: "demo_inventory".into(),
        every: Some(every.into()),
        // Fast and certain: three items, no delay, never fails.
        params: Some(serde_json::json!({"items": 3, "item_delay_ms": 0, "fail_chance": 0})),
        ..JobSettings::default()
    }
}

/// An app whose jobs are `jobs`.
pub async fn app_with_jobs(jobs: Vec<JobSettings>) -> TestApp {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut settings = test_settings(dir.path());
    settings.jobs = jobs;
    spawn_app_with(settings, dir).await
}

/// A client signed in as a new user named `name` with `role`.
pub async fn signed_in(app: &TestApp, name: &str, role: Role) -> TestClient {
    app.create_user(name, role).await;
    let client = app.with_new_client();
    client.login_ok(name, USER_PASSWORD).await;
    client
}

/// Starts a run of `job` through the console as `client` and waits (with a deadline)
/// until the store has it finished; returns its id.
pub async fn run_to_the_end(app: &TestApp, client: &TestClient, job: &str) -> i64 {
    let token = client.csrf_token().await;
    let response = client
        .post_form(&format!("/jobs/{job}/run"), &[("csrf_token", &token)])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .expect("a Location");
    let id: i64 = location
        .strip_prefix("/runs/")
        .and_then(|id| id.parse().ok())
        .expect("a run URL");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let run = app.store.run(id).await.expect("store").expect("the run");
        if run.status != RunStatus::Running {
            assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
            return id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run did not finish in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Captures runs' log lines, as the binary does at start-up: the run-log layer over the
/// process's global subscriber (once for the whole test binary).
pub fn capture_run_logs() {
    use tracing_subscriber::layer::SubscriberExt;
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber =
            tracing_subscriber::registry().with(batchboard::runlog::RunLogLayer::filtered());
        // Another test may have installed one first; then runs are captured by that one.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// A run of `job_id` started at `started`, ended as `status` with `error`.
pub async fn finished_run(
    store: &batchboard::store::SharedStore,
    job_id: i64,
    trigger: batchboard::store::Trigger,
    started: chrono::DateTime<chrono::Utc>,
    status: batchboard::store::RunStatus,
    error: Option<&str>,
) -> i64 {
    let run = batchboard::store::NewRun {
        job_id,
        trigger,
        attempt: 1,
        first_run_id: None,
        status: batchboard::store::RunStatus::Running,
        scheduled_for: started,
        started_at: started,
        finished_at: None,
        error_kind: None,
        error_message: None,
        instance_id: "seed".into(),
        exclusive: false,
    };
    let written = store
        .write_batch(&batchboard::store::WriteBatch {
            inserts: vec![run],
            ..batchboard::store::WriteBatch::default()
        })
        .await
        .expect("written");
    let run_id = written.inserts[0].run_id().expect("inserted");
    let finish = batchboard::store::RunFinish {
        run_id,
        status,
        started_at: Some(started),
        finished_at: started + chrono::Duration::seconds(3),
        duration_ms: Some(3_000),
        items_checked: 1,
        items_updated: 0,
        items_total: None,
        error_kind: error.map(|_| "retryable".to_owned()),
        error_message: error.map(str::to_owned),
        summary: None,
        retry_at: None,
    };
    store
        .write_batch(&batchboard::store::WriteBatch {
            finishes: vec![finish],
            ..batchboard::store::WriteBatch::default()
        })
        .await
        .expect("finished");
    run_id
}
