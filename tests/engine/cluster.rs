//! Three real `batchboard serve` processes on one real PostgreSQL database, one of them
//! killed with SIGKILL mid-run and started again, and every connection of the database
//! terminated once while jobs run. Afterwards the run rows say that no fire started
//! twice, that the killed instance's runs were interrupted and retried once each, and
//! that nothing is left running. Runs only with `BATCHBOARD_TEST_POSTGRES_URL` (CI sets
//! it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use batchboard::store::{self, RunFilter, RunRecord, RunStatus, SharedStore, Trigger};
use chrono::{DateTime, Utc};
use sqlx::Connection as _;

use crate::support::PgDatabase;

const JOBS: usize = 200;

fn settings() -> String {
    let mut text = String::from("[scheduler]\nshutdown_grace = \"10s\"\n");
    for index in 0..JOBS {
        text.push_str(&format!(
            "\n[[jobs]]\nname = \"job-{index:03}\"\nhandler = \"demo_inventory\"\n\
             every = \"1s\"\nmax_attempts = 3\nbackoff = \"1s\"\nmax_backoff = \"1s\"\n\
             params = {{ items = 3, item_delay_ms = 100, fail_chance = 0 }}\n"
        ));
    }
    text
}

fn serve(dir: &Path, url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_batchboard"))
        .arg("--config")
        .arg(dir.join("batchboard.toml"))
        .arg("serve")
        .env("BATCHBOARD_DATABASE_URL", url)
        .env("BATCHBOARD_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the batchboard binary starts")
}

async fn stop(mut child: Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("joins")
        .expect("exits");
    assert!(exit.success(), "a graceful stop exits cleanly: {exit:?}");
}

async fn all_runs(store: &SharedStore) -> Vec<RunRecord> {
    let mut runs = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .runs(&RunFilter {
                before,
                limit: 1000,
                ..RunFilter::default()
            })
            .await
            .expect("runs load");
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        runs.extend(page);
    }
    runs
}

/// Waits (30 s at most) until `live` instances are alive, and returns their ids by pid.
async fn instances_alive(store: &SharedStore, live: usize) -> BTreeMap<i64, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = store
            .database_now()
            .await
            .ok()
            .flatten()
            .unwrap_or_else(Utc::now);
        let alive: BTreeMap<i64, String> = store
            .instances(now)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|i| i.is_alive(now, batchboard::instance::LEASE))
            .map(|i| (i.pid, i.id))
            .collect();
        if alive.len() >= live {
            return alive;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} instances came up",
            alive.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_never_start_a_fire_twice_and_retry_a_killed_ones_runs_once() {
    let Some(database) = PgDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("batchboard.toml"), settings()).expect("settings written");
    // Migrated once first, so the three do not race to create the tables.
    let store = store::connect(&database.url)
        .await
        .expect("the database migrates");
    let mut servers: Vec<Child> = (0..3).map(|_| serve(dir.path(), &database.url)).collect();
    instances_alive(&store, 3).await;

    tokio::time::sleep(Duration::from_secs(8)).await;
    let mut victim = servers.remove(1);
    let victim_pid = i64::from(victim.id());
    let victim_id = instances_alive(&store, 3)
        .await
        .remove(&victim_pid)
        .expect("the victim is registered");
    victim.kill().expect("SIGKILL is delivered");
    victim.wait().expect("the killed process is reaped");
    let killed_at = Utc::now();

    // Every connection to the database is cut while the survivors run.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut admin = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("an admin connection");
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&mut admin)
    .await
    .expect("the connections are terminated");
    drop(admin);

    tokio::time::sleep(Duration::from_secs(4)).await;
    servers.push(serve(dir.path(), &database.url));
    tokio::time::sleep(Duration::from_secs(18)).await;
    for server in servers {
        stop(server).await;
    }

    let runs = all_runs(&store).await;
    let left: Vec<&RunRecord> = runs
        .iter()
        .filter(|run| matches!(run.status, RunStatus::Running | RunStatus::Queued))
        .collect();
    assert!(left.is_empty(), "no row is left running: {left:#?}");

    // At most one start per fire: each job's first attempts of scheduled slots are all
    // at different slots. (That none is lost is for one leader deciding fires: today
    // every instance schedules every job, and an instance that loses a claim reloads the
    // job and may move its grid.)
    let mut slots: BTreeMap<&str, Vec<DateTime<Utc>>> = BTreeMap::new();
    for run in &runs {
        if matches!(run.trigger, Trigger::Schedule | Trigger::CatchUp) && run.attempt == 1 {
            slots
                .entry(&run.job_name)
                .or_default()
                .push(run.scheduled_for);
        }
    }
    assert_eq!(slots.len(), JOBS, "every job fired");
    for (job, times) in &slots {
        let unique: BTreeSet<_> = times.iter().collect();
        assert_eq!(unique.len(), times.len(), "{job}: a fire started twice");
        assert!(
            times.len() >= 20,
            "{job} fired {} times in 34 s",
            times.len()
        );
    }

    // The killed instance's runs were interrupted and each retried exactly once.
    let cut_off: Vec<&RunRecord> = runs
        .iter()
        .filter(|run| run.instance_id == victim_id && run.finished_at >= Some(killed_at))
        .collect();
    assert!(
        !cut_off.is_empty(),
        "the victim had runs going when it was killed"
    );
    for run in cut_off {
        assert_eq!(run.status, RunStatus::Interrupted, "{run:#?}");
        let retries = runs
            .iter()
            .filter(|r| {
                r.trigger == Trigger::Retry && r.first_run_id == run.first_run_id.or(Some(run.id))
            })
            .filter(|r| r.attempt == run.attempt + u32::from(run.started_at.is_some()))
            .count();
        assert_eq!(retries, 1, "run {} was retried once", run.id);
    }
}
