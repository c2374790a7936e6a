//! Three real `batchboard serve` processes on one real PostgreSQL database, one of them
//! killed with SIGKILL mid-run and started again, and every connection of the database
//! terminated once while jobs run. The killed one is the leader, which decides the
//! fires. Afterwards the run rows are compared with the schedule: no fire started twice,
//! none lost (the slots missed during the failover run once, late, by the misfire
//! policy), the killed instance's runs interrupted and retried once each, nothing left
//! running, every instance ran scheduled fires, and no two runs of a job (`forbid`)
//! overlapped. Runs only with `BATCHBOARD_TEST_POSTGRES_URL` (CI sets it).

use std::process::Child;
use std::time::Duration;

use batchboard::store::{self, RunRecord, RunStatus, Trigger};
use chrono::Utc;
use sqlx::Connection as _;

use crate::processes::{
    all_runs, each_fire_once, every_instance_ran, every_second_jobs, instances_alive, no_overlap,
    nothing_left_running, serve, stop,
};
use crate::support::PgDatabase;

const JOBS: usize = 200;

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_through_a_killed_leader_and_lost_connections_start_each_fire_once() {
    let Some(database) = PgDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(
        dir.path().join("batchboard.toml"),
        every_second_jobs(JOBS, ""),
    )
    .expect("settings written");
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
    let stopping = chrono::Utc::now();
    for server in servers {
        stop(server).await;
    }

    let runs = all_runs(&store).await;
    nothing_left_running(&runs, stopping);
    each_fire_once(&runs, JOBS);
    every_instance_ran(&runs, 3);
    no_overlap(&runs);

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
