//! Three real `batchboard serve` processes on one real PostgreSQL database, one of them
//! killed with SIGKILL mid-run and started again, and every connection of the database
//! terminated once while jobs run. The killed one is the leader, which decides the
//! fires. Afterwards the run rows are compared with the schedule: no fire started twice,
//! none lost (the slots missed during the failover run once, late, by the misfire
//! policy), the killed instance's runs interrupted and retried once each, nothing left
//! running, every instance ran scheduled fires, and no two runs of a job (`forbid`)
//! overlapped. Runs only with `BATCHBOARD_TEST_POSTGRES_URL` (CI sets it).

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
async fn three_instances_through_a_killed_leader_and_lost_connections_start_each_fire_once() {
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
    // The victim is the leader: the instance that decides the fires.
    let alive = instances_alive(&store, 3).await;
    let leader = store
        .leadership(batchboard::instance::leader::SCHEDULER_LEASE)
        .await
        .expect("reads")
        .expect("an instance leads")
        .holder;
    let victim_pid = *alive
        .iter()
        .find(|(_, id)| **id == leader)
        .map(|(pid, _)| pid)
        .expect("the leader is one of the three");
    let position = servers
        .iter()
        .position(|server| i64::from(server.id()) == victim_pid)
        .expect("the leader is one of ours");
    let mut victim = servers.remove(position);
    let victim_id = leader;
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
    tokio::time::sleep(Duration::from_secs(24)).await;
    for server in servers {
        stop(server).await;
    }

    let runs = all_runs(&store).await;
    let left: Vec<&RunRecord> = runs
        .iter()
        .filter(|run| matches!(run.status, RunStatus::Running | RunStatus::Queued))
        .collect();
    assert!(left.is_empty(), "no row is left running: {left:#?}");

    // At most one start per fire, and none lost: each job's first attempts are one
    // second apart on its grid, except where a fire was decided late (after a catch-up:
    // the one late run of the slots missed while no instance led; or a fire that a
    // loaded machine decided more than a period late): the misfire policy runs such a
    // fire once for the slots it was late for, and the job goes on from the next slot of
    // its grid after the moment it fired, which its run's start is not before.
    let mut firsts: BTreeMap<&str, Vec<&RunRecord>> = BTreeMap::new();
    for run in &runs {
        if matches!(run.trigger, Trigger::Schedule | Trigger::CatchUp) && run.attempt == 1 {
            firsts.entry(&run.job_name).or_default().push(run);
        }
    }
    assert_eq!(firsts.len(), JOBS, "every job fired");
    let second = chrono::Duration::seconds(1);
    let everything: &[RunRecord] = &runs;
    for (job, runs) in &mut firsts {
        runs.sort_by_key(|run| run.scheduled_for);
        let unique: BTreeSet<DateTime<Utc>> = runs.iter().map(|run| run.scheduled_for).collect();
        assert_eq!(unique.len(), runs.len(), "{job}: a fire started twice");
        for pair in runs.windows(2) {
            let gap = pair[1].scheduled_for - pair[0].scheduled_for;
            let on_grid = (gap - second).num_milliseconds() % 1000 == 0;
            let fired_late = pair[0].trigger == Trigger::CatchUp
                || pair[0]
                    .started_at
                    .is_some_and(|started| started >= pair[1].scheduled_for - second);
            assert!(
                gap == second || (gap > second && on_grid && fired_late),
                "{job}: from {} to {} ({:?} then {:?}): {:#?}",
                pair[0].scheduled_for,
                pair[1].scheduled_for,
                pair[0].trigger,
                pair[1].trigger,
                runs_around(
                    everything,
                    job,
                    pair[0].scheduled_for,
                    pair[1].scheduled_for
                )
            );
        }
        let catch_ups = runs
            .iter()
            .filter(|run| run.trigger == Trigger::CatchUp)
            .count();
        assert!(
            catch_ups <= 1,
            "{job}: {catch_ups} catch-ups for one failover"
        );
    }

    // Every instance executes: each of the three ran scheduled fires, whoever led.
    let mut ran_by: BTreeMap<&str, usize> = BTreeMap::new();
    for run in &runs {
        if run.trigger == Trigger::Schedule && run.status == RunStatus::Succeeded {
            *ran_by.entry(&run.instance_id).or_default() += 1;
        }
    }
    assert!(
        ran_by.len() >= 3,
        "every instance claims scheduled runs: {ran_by:?}"
    );

    // `forbid` (the default) holds across instances: no two runs of a job overlap.
    type Span = (DateTime<Utc>, DateTime<Utc>);
    let mut spans: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
    for run in &runs {
        if let (Some(started), Some(finished)) = (run.started_at, run.finished_at)
            && run.status != RunStatus::Skipped
        {
            spans
                .entry(&run.job_name)
                .or_default()
                .push((started, finished));
        }
    }
    for (job, spans) in &mut spans {
        spans.sort();
        for pair in spans.windows(2) {
            assert!(
                pair[1].0 >= pair[0].1,
                "{job}: a run started at {} while another ran until {}",
                pair[1].0,
                pair[0].1
            );
        }
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
        let chain: Vec<&RunRecord> = runs
            .iter()
            .filter(|r| r.first_run_id.or(Some(r.id)) == run.first_run_id.or(Some(run.id)))
            .collect();
        let retries = chain
            .iter()
            .filter(|r| r.trigger == Trigger::Retry)
            .filter(|r| r.attempt == run.attempt + u32::from(run.started_at.is_some()))
            .count();
        assert_eq!(retries, 1, "run {} was retried once: {chain:#?}", run.id);
    }
}

/// The runs of `job` scheduled within a second of `from`..`to`, for a failure message.
fn runs_around<'a>(
    runs: &'a [RunRecord],
    job: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<&'a RunRecord> {
    let second = chrono::Duration::seconds(1);
    runs.iter()
        .filter(|run| run.job_name == job)
        .filter(|run| run.scheduled_for >= from - second && run.scheduled_for <= to + second)
        .collect()
}
