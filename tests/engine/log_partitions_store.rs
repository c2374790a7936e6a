//! `run_logs` partitioned by day on PostgreSQL (migration 0014): lines land in their day's
//! partition, a day created later takes its lines from the default partition, and
//! retention drops whole days, counting their lines. Runs only with
//! `BATCHBOARD_TEST_POSTGRES_URL`; SQLite keeps one table and prunes row by row (the
//! store suite covers that on both).

use batchboard::job::JobSettings;
use batchboard::store::{LogLine, NewRun, RunFinish, RunStatus, Trigger, WriteBatch};
use chrono::{DateTime, TimeZone, Utc};
use sqlx::Connection as _;

use crate::support::{Backend, TestStore, open_backend};

fn day_at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, day, hour, 0, 0)
        .single()
        .expect("a valid time")
}

/// A finished run of `job_id` started at `started`, with `lines` log lines then.
async fn run_with_lines(
    store: &TestStore,
    job_id: i64,
    started: DateTime<Utc>,
    lines: usize,
) -> i64 {
    let run = NewRun {
        job_id,
        trigger: Trigger::Manual,
        attempt: 1,
        first_run_id: None,
        status: RunStatus::Running,
        scheduled_for: started,
        started_at: started,
        finished_at: None,
        error_kind: None,
        error_message: None,
        instance_id: "a".into(),
        exclusive: false,
    };
    let inserted = store
        .write_batch(&WriteBatch {
            inserts: vec![run],
            ..WriteBatch::default()
        })
        .await
        .expect("the run is written");
    let run_id = inserted.inserts[0].run_id().expect("inserted");
    let logs = (0..lines)
        .map(|n| LogLine {
            run_id,
            ts: started + chrono::Duration::seconds(i64::try_from(n).expect("small")),
            level: "INFO".into(),
            message: format!("line {n}"),
            fields: serde_json::json!({}),
        })
        .collect();
    let finish = RunFinish {
        run_id,
        status: RunStatus::Succeeded,
        started_at: Some(started),
        finished_at: started + chrono::Duration::minutes(1),
        duration_ms: Some(60_000),
        items_checked: 0,
        items_updated: 0,
        items_total: None,
        error_kind: None,
        error_message: None,
        summary: None,
        retry_at: None,
    };
    store
        .write_batch(&WriteBatch {
            logs,
            finishes: vec![finish],
            ..WriteBatch::default()
        })
        .await
        .expect("lines and finish are written");
    run_id
}

/// Where each of the run's lines is stored: its partition's name.
async fn partitions_of(store: &TestStore, run_id: i64) -> Vec<String> {
    let mut conn = sqlx::PgConnection::connect(&store.url)
        .await
        .expect("the database opens");
    sqlx::query_scalar("SELECT tableoid::regclass::TEXT FROM run_logs WHERE run_id = $1")
        .bind(run_id)
        .fetch_all(&mut conn)
        .await
        .expect("reads")
}

async fn day_partitions(store: &TestStore) -> Vec<String> {
    let mut conn = sqlx::PgConnection::connect(&store.url)
        .await
        .expect("the database opens");
    sqlx::query_scalar(
        "SELECT c.relname::TEXT FROM pg_inherits JOIN pg_class AS c ON c.oid = inhrelid \
         WHERE inhparent = 'run_logs'::regclass AND c.relname <> 'run_logs_default' \
         ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .expect("reads")
}

#[tokio::test]
async fn log_lines_go_to_their_days_partition_and_retention_drops_whole_days() {
    let Some(store) = open_backend(Backend::Postgres).await else {
        return;
    };
    let settings = JobSettings {
        name: "export".into(),
        handler: "scripted".into(),
        every: Some("1h".into()),
        ..JobSettings::default()
    };
    let job_id = store
        .sync_jobs(&[settings], day_at(1, 0))
        .await
        .expect("synced")[0]
        .id;

    // A line for a day without a partition (long before start-up made the current
    // week's) is kept in the default partition: an insert never fails for want of one.
    let early = run_with_lines(&store, job_id, day_at(2, 10), 3).await;
    assert_eq!(partitions_of(&store, early).await, ["run_logs_default"; 3]);

    // Preparing the week of June 3rd creates June 2nd to 10th; June 2nd takes its lines
    // from the default partition.
    store.prepare_storage(day_at(3, 8)).await.expect("prepared");
    let days = day_partitions(&store).await;
    for day in 2..=10 {
        assert!(
            days.contains(&format!("run_logs_p202606{day:02}")),
            "June {day}: {days:?}"
        );
    }
    assert_eq!(
        partitions_of(&store, early).await,
        ["run_logs_p20260602"; 3]
    );
    let later = run_with_lines(&store, job_id, day_at(6, 23), 2).await;
    assert_eq!(
        partitions_of(&store, later).await,
        ["run_logs_p20260606"; 2]
    );
    // Preparing again changes nothing.
    store.prepare_storage(day_at(3, 9)).await.expect("prepared");
    assert_eq!(day_partitions(&store).await, days);

    // Keeping what started from June 5th on: June 2nd to 4th go whole, and the report
    // counts their lines; the run of June 2nd goes too.
    let report = store
        .prune_runs(Some(day_at(5, 0)), None, 100)
        .await
        .expect("pruned");
    assert_eq!((report.runs_deleted, report.log_lines_deleted), (1, 3));
    let days = day_partitions(&store).await;
    assert!(
        !days.iter().any(|day| day.as_str() < "run_logs_p20260605"),
        "{days:?}"
    );
    assert!(days.contains(&"run_logs_p20260605".to_owned()));
    assert!(store.run(early).await.expect("reads").is_none());
    let kept = store.run_logs(later, None, 10).await.expect("reads");
    assert_eq!(
        kept.iter()
            .map(|(_, line)| line.message.as_str())
            .collect::<Vec<_>>(),
        ["line 0", "line 1"]
    );
    // A second prune finds nothing more.
    let again = store
        .prune_runs(Some(day_at(5, 0)), None, 100)
        .await
        .expect("pruned");
    assert_eq!((again.runs_deleted, again.log_lines_deleted), (0, 0));
}
