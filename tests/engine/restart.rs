//! Crash recovery across real process restarts: the `batchboard` binary on a real SQLite
//! file, killed with SIGKILL in the middle of a run, then started again.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use batchboard::store::{self, RunFilter, RunRecord, RunStatus, SharedStore, Trigger};

const SETTINGS: &str = r#"
[scheduler]
shutdown_grace = "10s"

[[jobs]]
name = "long-copy"
handler = "command"
every = "2s"
timeout = "1m"
max_attempts = 3
backoff = "1s"
max_backoff = "1s"
params = { program = "sleep", args = ["3"] }
"#;

pub(crate) fn start(dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_batchboard"))
        .arg("--config")
        .arg(dir.join("batchboard.toml"))
        .arg("serve")
        .env(
            "BATCHBOARD_DATABASE_URL",
            format!("sqlite://{}", dir.join("runs.db").display()),
        )
        .env("BATCHBOARD_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the batchboard binary starts")
}

/// Polls the database (a real process is running on its own clock) until `found`
/// returns something, for at most 30 seconds.
pub(crate) async fn wait_until<T>(
    store: &SharedStore,
    mut found: impl FnMut(&[RunRecord]) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let runs = store
            .runs(&RunFilter {
                limit: 100,
                ..RunFilter::default()
            })
            .await
            .unwrap_or_default();
        if let Some(value) = found(&runs) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting; runs: {runs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_cut_off_by_a_crash_is_marked_interrupted_and_retried_after_restart() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("batchboard.toml"), SETTINGS).expect("settings written");
    let mut first = start(dir.path());
    let url = format!("sqlite://{}", dir.path().join("runs.db").display());
    let store = {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            // The server creates and migrates the database; wait for its job to appear.
            // Opened without migrating: two processes migrating one SQLite file at once
            // both create the first tables, and the loser (often the server) fails.
            if let Ok(store) = store::open(&url)
                && store
                    .job_by_name("long-copy")
                    .await
                    .ok()
                    .flatten()
                    .is_some()
            {
                break store;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server never created its database"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let cut_off = wait_until(&store, |runs| {
        runs.iter()
            .find(|run| {
                run.status == RunStatus::Running
                    && run.started_at.is_some_and(|at| at <= chrono::Utc::now())
            })
            .map(|run| run.id)
    })
    .await;
    first.kill().expect("SIGKILL is delivered");
    first.wait().expect("the killed process is reaped");
    assert_eq!(
        store
            .run(cut_off)
            .await
            .expect("loads")
            .expect("exists")
            .status,
        RunStatus::Running
    );

    let mut second = start(dir.path());
    let retry = wait_until(&store, |runs| {
        runs.iter()
            .find(|run| run.trigger == Trigger::Retry && run.first_run_id == Some(cut_off))
            .cloned()
    })
    .await;
    assert_eq!(retry.attempt, 2);
    let interrupted = store.run(cut_off).await.expect("loads").expect("exists");
    assert_eq!(interrupted.status, RunStatus::Interrupted);
    assert_eq!(interrupted.error_kind.as_deref(), Some("interrupted"));
    assert!(interrupted.finished_at.is_some());

    // SIGTERM: a graceful stop lets the running retry finish (it takes 3 s, the grace is
    // 10 s) and exits cleanly.
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(second.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || second.wait())
        .await
        .expect("joins")
        .expect("exits");
    assert!(exit.success(), "{exit:?}");
    let runs = store
        .runs(&RunFilter {
            limit: 100,
            ..RunFilter::default()
        })
        .await
        .expect("runs load");
    assert!(
        runs.iter().all(|run| run.status != RunStatus::Running),
        "nothing is left running after a graceful stop: {runs:#?}"
    );
    assert!(
        runs.iter().any(|run| run.status == RunStatus::Succeeded),
        "{runs:#?}"
    );
}
