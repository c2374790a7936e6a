//! The writer's two lanes on PostgreSQL: runs start on one transaction while the ends of
//! others commit on another, so a claim never waits behind a finish. Runs only with
//! `BATCHBOARD_TEST_POSTGRES_URL`; SQLite takes one writer at a time and keeps one lane.

use std::time::Duration;

use batchboard::store::writer::Writer;
use batchboard::store::{NewRun, RunFinish, RunStatus, Trigger};
use chrono::{DateTime, TimeZone, Utc};
use sqlx::Connection as _;

use crate::support::{Backend, job, open_backend};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0)
        .single()
        .expect("a valid time")
}

fn manual_run(job_id: i64) -> NewRun {
    NewRun {
        job_id,
        trigger: Trigger::Manual,
        attempt: 1,
        first_run_id: None,
        status: RunStatus::Running,
        scheduled_for: t0(),
        started_at: t0(),
        finished_at: None,
        error_kind: None,
        error_message: None,
        instance_id: "a".into(),
        exclusive: false,
    }
}

fn succeeded(run_id: i64) -> RunFinish {
    RunFinish {
        run_id,
        status: RunStatus::Succeeded,
        started_at: Some(t0()),
        finished_at: t0() + chrono::Duration::seconds(1),
        duration_ms: Some(1_000),
        items_checked: 0,
        items_updated: 0,
        items_total: None,
        error_kind: None,
        error_message: None,
        summary: None,
        retry_at: None,
    }
}

#[tokio::test]
async fn a_run_starts_while_the_finish_of_another_waits_for_the_database() {
    let Some(store) = open_backend(Backend::Postgres).await else {
        return;
    };
    let script = serde_json::json!({"action": "ok"});
    let jobs = store
        .sync_jobs(
            &[job("a", "1h", script.clone()), job("b", "1h", script)],
            t0(),
        )
        .await
        .expect("synced");
    let (writer, task) = Writer::start(store.store.clone());
    let first = writer
        .insert_run(manual_run(jobs[0].id))
        .await
        .expect("written")
        .run_id()
        .expect("inserted");

    // Another session holds the first run's row, so its finish waits on the lock.
    let mut other = sqlx::PgConnection::connect(&store.url)
        .await
        .expect("the database opens");
    sqlx::query("BEGIN")
        .execute(&mut other)
        .await
        .expect("begins");
    sqlx::query("SELECT 1 FROM runs WHERE id = $1 FOR UPDATE")
        .bind(first)
        .execute(&mut other)
        .await
        .expect("the row is locked");
    let finishing = tokio::spawn({
        let writer = writer.clone();
        async move { writer.finish_run(succeeded(first)).await }
    });
    let mut watcher = sqlx::PgConnection::connect(&store.url)
        .await
        .expect("the database opens");
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock' \
                   AND query LIKE 'UPDATE runs SET status = v.status%'",
            )
            .fetch_one(&mut watcher)
            .await
            .expect("reads");
            if waiting > 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the finish reaches the database and waits for the lock");

    let second = tokio::time::timeout(
        Duration::from_secs(30),
        writer.insert_run(manual_run(jobs[1].id)),
    )
    .await
    .expect("the second run starts while the first one's finish waits")
    .expect("written")
    .run_id()
    .expect("inserted");
    assert!(
        !finishing.is_finished(),
        "the finish still waits for the lock"
    );
    let stored = store.run(second).await.expect("reads").expect("stored");
    assert_eq!(stored.status, RunStatus::Running);

    sqlx::query("COMMIT")
        .execute(&mut other)
        .await
        .expect("the lock is released");
    finishing
        .await
        .expect("the finish task ends")
        .expect("the finish is written once the lock is gone");
    let ended = store.run(first).await.expect("reads").expect("stored");
    assert_eq!(ended.status, RunStatus::Succeeded);
    drop(writer);
    task.await.expect("the writer ends");
}
