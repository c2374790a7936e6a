//! Several processes on one SQLite file, as real `batchboard` processes: one `serve` at
//! a time, and a `batchboard run` that a starting server leaves alone.

use std::process::{Command, Stdio};
use std::time::Duration;

use batchboard::store::{self, InstanceKind, RunStatus, SharedStore, Trigger};

use crate::restart::{start, wait_until};

const SETTINGS: &str = r#"
[[jobs]]
name = "slow-copy"
handler = "command"
every = "1d"
timeout = "1m"
max_attempts = 3
backoff = "1s"
max_backoff = "1s"
params = { program = "sleep", args = ["6"] }
"#;

fn database_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("runs.db").display())
}

/// Waits until a live `serve` instance is registered in the database.
async fn serving(store: &SharedStore) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let instances = store
            .instances(chrono::Utc::now())
            .await
            .unwrap_or_default();
        if instances
            .iter()
            .any(|instance| instance.kind == InstanceKind::Serve && instance.stopped_at.is_none())
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server never registered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn terminate(child: &std::process::Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_serve_on_the_same_sqlite_file_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("batchboard.toml"), SETTINGS).expect("settings written");
    let mut first = start(dir.path());
    // Opened, not migrated: the server migrates the file.
    let store = store::open(&database_url(dir.path())).expect("the database opens");
    serving(&store).await;

    let second = Command::new(env!("CARGO_BIN_EXE_batchboard"))
        .arg("--config")
        .arg(dir.path().join("batchboard.toml"))
        .arg("serve")
        .env("BATCHBOARD_DATABASE_URL", database_url(dir.path()))
        .env("BATCHBOARD_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .output()
        .expect("the second server runs");
    assert!(!second.status.success(), "the second server was refused");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another `batchboard serve` (pid ")
            && stderr.contains("serves one server at a time"),
        "{stderr}"
    );
    assert!(
        first.try_wait().expect("polls").is_none(),
        "the first server keeps running"
    );
    terminate(&first);
    let exit = tokio::task::spawn_blocking(move || first.wait())
        .await
        .expect("joins")
        .expect("exits");
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cli_run_going_while_a_server_starts_runs_once_and_is_left_to_its_process() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("batchboard.toml"), SETTINGS).expect("settings written");
    let url = database_url(dir.path());
    let store = store::connect(&url).await.expect("the database opens");
    store
        .sync_jobs(
            &batchboard::config::Settings::from_toml(SETTINGS, &dir.path().join("batchboard.toml"))
                .expect("the settings parse")
                .jobs,
            chrono::Utc::now(),
        )
        .await
        .expect("the jobs are saved");
    let cli = Command::new(env!("CARGO_BIN_EXE_batchboard"))
        .arg("--config")
        .arg(dir.path().join("batchboard.toml"))
        .args(["run", "slow-copy"])
        .env("BATCHBOARD_DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the run starts");
    let cli_run = wait_until(&store, |runs| {
        runs.iter()
            .find(|run| run.status == RunStatus::Running)
            .map(|run| run.id)
    })
    .await;

    // A server on a known port: once it listens, its start-up recovery is over.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let server = Command::new(env!("CARGO_BIN_EXE_batchboard"))
        .arg("--config")
        .arg(dir.path().join("batchboard.toml"))
        .arg("serve")
        .env("BATCHBOARD_DATABASE_URL", &url)
        .env("BATCHBOARD_BIND", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts");
    // The server binds its port after its scheduler started and recovered.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let during = store.run(cli_run).await.expect("loads").expect("exists");
    assert!(
        matches!(during.status, RunStatus::Running | RunStatus::Succeeded)
            && during.retry_at.is_none()
            && during.error_kind.is_none(),
        "the server left the CLI's run alone: {during:#?}"
    );
    let output = tokio::task::spawn_blocking(move || cli.wait_with_output())
        .await
        .expect("joins")
        .expect("the run ends");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    terminate(&server);
    let mut server = server;
    let exit = tokio::task::spawn_blocking(move || server.wait())
        .await
        .expect("joins")
        .expect("exits");
    assert!(exit.success(), "{exit:?}");

    let runs = store
        .runs(&batchboard::store::RunFilter {
            limit: 100,
            ..batchboard::store::RunFilter::default()
        })
        .await
        .expect("runs load");
    assert_eq!(runs.len(), 1, "one execution, no retry: {runs:#?}");
    assert_eq!(
        (runs[0].id, runs[0].trigger, runs[0].status),
        (cli_run, Trigger::Manual, RunStatus::Succeeded)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_migrating_a_new_sqlite_file_at_once_both_succeed() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = database_url(dir.path());
        let (first, second) = tokio::join!(store::connect(&url), store::connect(&url));
        first.expect("the first migrates");
        second.expect("the second migrates too");
    }
}
