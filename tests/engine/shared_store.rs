//! What both backends must agree on beyond the single-process suite: the URL picks the
//! backend, names sort the same way, text a database could refuse does not fail a
//! batch, and two processes on one database never both win a fire.

use batchboard::job::JobSettings;
use batchboard::store::{
    ClaimResult, FireClaim, JobQuery, LogLine, NewRun, RunFilter, RunStatus, Trigger, WriteBatch,
};
use chrono::{DateTime, TimeZone, Utc};

use crate::support::{Backend, TestStore, store_suite};

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid date")
        + chrono::Duration::seconds(seconds)
}

fn settings(name: &str) -> JobSettings {
    JobSettings {
        name: name.into(),
        handler: "demo".into(),
        every: Some("1m".into()),
        ..JobSettings::default()
    }
}

fn new_run(job_id: i64, scheduled_for: DateTime<Utc>, instance: &str) -> NewRun {
    NewRun {
        job_id,
        trigger: Trigger::Schedule,
        attempt: 1,
        first_run_id: None,
        status: RunStatus::Running,
        scheduled_for,
        started_at: scheduled_for,
        finished_at: None,
        error_kind: None,
        error_message: None,
        instance_id: instance.into(),
        exclusive: false,
    }
}

async fn the_url_picks_the_backend_and_a_second_connection_migrates_nothing(store: TestStore) {
    let again = batchboard::store::connect(&store.url)
        .await
        .expect("a second connection");
    let expected = match store.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!((store.backend(), again.backend()), (expected, expected));
    store
        .sync_jobs(&[settings("alpha")], at(0))
        .await
        .expect("sync");
    assert_eq!(again.jobs().await.expect("jobs").len(), 1, "one database");
    assert!(again.ping().await.is_ok());
    let (size, idle) = again.pool_stats().expect("both backends report their pool");
    assert!(
        size >= 1 && idle <= size as usize,
        "{size} connections, {idle} idle"
    );
}

async fn names_sort_bytewise_on_both_backends(store: TestStore) {
    // A linguistic collation would ignore '-', '.' and '_' and sort these differently.
    let names = ["ab", "a_a", "a.c", "a-b", "a-a"];
    let jobs: Vec<JobSettings> = names.iter().map(|n| settings(n)).collect();
    let synced = store.sync_jobs(&jobs, at(0)).await.expect("sync");
    let order: Vec<&str> = synced.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(order, ["a-a", "a-b", "a.c", "a_a", "ab"]);
    let page = store
        .jobs_matching(&JobQuery {
            after: Some("a.c".into()),
            limit: 10,
            ..JobQuery::default()
        })
        .await
        .expect("a page");
    let order: Vec<&str> = page.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(order, ["a_a", "ab"]);
    assert_eq!(
        store.job_handlers().await.expect("handlers"),
        ["demo"],
        "each handler once"
    );
}

async fn a_log_line_with_a_nul_character_is_kept_and_fails_nothing(store: TestStore) {
    let synced = store
        .sync_jobs(&[settings("alpha")], at(0))
        .await
        .expect("sync");
    let run = store
        .write_batch(&WriteBatch {
            inserts: vec![new_run(synced[0].id, at(1), "one")],
            ..WriteBatch::default()
        })
        .await
        .expect("a run")
        .inserts[0]
        .run_id()
        .expect("inserted");
    let line = LogLine {
        run_id: run,
        ts: at(2),
        level: "INFO".into(),
        message: "before\0after".into(),
        fields: serde_json::json!({ "out\0": "x\0y" }),
    };
    store
        .write_batch(&WriteBatch {
            logs: vec![line],
            ..WriteBatch::default()
        })
        .await
        .expect("the batch is written");
    let lines = store.run_logs(run, None, 10).await.expect("logs");
    assert_eq!(lines.len(), 1);
    let message = &lines[0].1.message;
    // SQLite keeps the character; PostgreSQL cannot, and shows where it was.
    assert!(
        message == "before\0after" || message == "before\u{FFFD}after",
        "{message:?}"
    );
}

async fn two_processes_claiming_the_same_fires_make_one_run_per_fire(store: TestStore) {
    let jobs: Vec<JobSettings> = (0..30).map(|i| settings(&format!("job-{i:02}"))).collect();
    let synced = store.sync_jobs(&jobs, at(0)).await.expect("sync");
    for job in &synced {
        store
            .set_next_run(job.id, Some(at(60)))
            .await
            .expect("scheduled");
    }
    let other = batchboard::store::connect(&store.url)
        .await
        .expect("a second process's store");
    let batch = |instance: &str| WriteBatch {
        fires: synced
            .iter()
            .map(|job| FireClaim {
                job_id: job.id,
                expected: at(60),
                next: Some(at(120)),
                run: Some(new_run(job.id, at(60), instance)),
                early: false,
            })
            .collect(),
        ..WriteBatch::default()
    };
    let (first, second) = (batch("one"), batch("two"));
    let (one, two) = tokio::join!(store.write_batch(&first), other.write_batch(&second));
    let (one, two) = (one.expect("first batch"), two.expect("second batch"));
    for (a, b) in one.fires.iter().zip(&two.fires) {
        let winners = [a, b]
            .iter()
            .filter(|r| matches!(r, ClaimResult::Run(_)))
            .count();
        assert_eq!(winners, 1, "exactly one claim wins each fire: {a:?} {b:?}");
    }
    let runs = store
        .runs(&RunFilter {
            limit: 1000,
            ..RunFilter::default()
        })
        .await
        .expect("runs");
    assert_eq!(runs.len(), synced.len());
}

store_suite!(
    the_url_picks_the_backend_and_a_second_connection_migrates_nothing,
    names_sort_bytewise_on_both_backends,
    a_log_line_with_a_nul_character_is_kept_and_fails_nothing,
    two_processes_claiming_the_same_fires_make_one_run_per_fire,
);
