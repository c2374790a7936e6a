//! The store suite, on SQLite and (when configured) PostgreSQL: see
//! [`crate::support::store_suite`].

use batchboard::job::JobSettings;
use batchboard::store::{
    ClaimResult, FireClaim, LogLine, NewRun, PruneReport, RetryClaim, RunFilter, RunFinish,
    RunMark, RunStatus, StoreError, Trigger, WriteBatch,
};
use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::support::{Backend, TestStore, store_suite};

/// 2026-01-01T00:00:00Z plus `seconds`, with a microsecond part so that precision is
/// exercised everywhere.
fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid date")
        + Duration::seconds(seconds)
        + Duration::microseconds(123_457)
}

fn settings(name: &str, every: &str) -> JobSettings {
    JobSettings {
        name: name.into(),
        handler: "demo".into(),
        every: Some(every.into()),
        ..JobSettings::default()
    }
}

/// A store with jobs `names` (every 1m), returning their ids in order.
async fn store_with_jobs(store: TestStore, names: &[&str]) -> (TestStore, Vec<i64>) {
    let jobs: Vec<JobSettings> = names.iter().map(|n| settings(n, "1m")).collect();
    let records = store.sync_jobs(&jobs, at(0)).await.expect("sync");
    let ids = names
        .iter()
        .map(|name| {
            records
                .iter()
                .find(|r| r.name == *name)
                .expect("job was inserted")
                .id
        })
        .collect();
    (store, ids)
}

fn new_run(job_id: i64, scheduled_for: DateTime<Utc>) -> NewRun {
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
        instance_id: "test-instance".into(),
        exclusive: false,
    }
}

fn fire(job_id: i64, expected: DateTime<Utc>, next: DateTime<Utc>) -> FireClaim {
    FireClaim {
        job_id,
        expected,
        next: Some(next),
        run: Some(new_run(job_id, expected)),
        early: false,
    }
}

fn finish(run_id: i64, status: RunStatus, finished_at: DateTime<Utc>) -> RunFinish {
    RunFinish {
        run_id,
        status,
        started_at: Some(finished_at - Duration::milliseconds(1500)),
        finished_at,
        duration_ms: Some(1500),
        items_checked: 10,
        items_updated: 2,
        items_total: Some(12),
        error_kind: None,
        error_message: None,
        summary: Some("done".into()),
        retry_at: None,
    }
}

/// Inserts one run per entry of `jobs` (job ids), in order, and returns their ids.
async fn insert_runs(store: &TestStore, jobs: &[i64], start: i64) -> Vec<i64> {
    let inserts = jobs
        .iter()
        .enumerate()
        .map(|(i, &job)| new_run(job, at(start + i as i64)))
        .collect();
    let result = store
        .write_batch(&WriteBatch {
            inserts,
            ..WriteBatch::default()
        })
        .await
        .expect("insert runs");
    result
        .inserts
        .into_iter()
        .map(|inserted| inserted.run_id().expect("no exclusive run is going"))
        .collect()
}

/// Finishes `runs` at 1000 s, each keeping the start it was inserted with.
async fn finish_all(store: &TestStore, runs: &[i64], status: RunStatus) {
    let mut finishes = Vec::new();
    for &id in runs {
        let stored = store.run(id).await.expect("query").expect("run");
        finishes.push(RunFinish {
            started_at: stored.started_at,
            ..finish(id, status, at(1000))
        });
    }
    store
        .write_batch(&WriteBatch {
            finishes,
            ..WriteBatch::default()
        })
        .await
        .expect("finish runs");
}

fn run_ids(runs: &[batchboard::store::RunRecord]) -> Vec<i64> {
    runs.iter().map(|r| r.id).collect()
}

async fn migrating_twice_is_harmless(store: TestStore) {
    store.migrate().await.expect("second migration is a no-op");
    assert!(store.jobs().await.expect("jobs").is_empty());
}

#[tokio::test]
async fn connect_via_the_store_url_creates_and_migrates_the_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("new.db");
    let store = batchboard::store::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect");
    assert_eq!(store.backend(), "sqlite");
    assert!(path.exists());
    assert!(store.jobs().await.expect("jobs").is_empty());
}

async fn sync_jobs_inserts_updates_removes_and_brings_back_jobs_bumping_version_on_change(
    store: TestStore,
) {
    let a = settings("alpha", "1m");
    let b = settings("beta", "5m");

    let jobs = store
        .sync_jobs(&[b.clone(), a.clone()], at(0))
        .await
        .expect("first sync");
    let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta"], "ordered by name");
    assert!(
        jobs.iter()
            .all(|j| j.version == 1 && j.removed_at.is_none())
    );
    assert_eq!(jobs[0].defaults, a);
    assert_eq!(jobs[0].created_at, at(0));
    assert!(jobs[0].overrides.is_empty());
    let (alpha, beta) = (jobs[0].id, jobs[1].id);

    // Unchanged defaults: nothing moves, scheduling state is kept.
    assert!(store.set_next_run(alpha, Some(at(60))).await.expect("set"));
    let jobs = store
        .sync_jobs(&[a.clone(), b.clone()], at(10))
        .await
        .expect("same sync");
    assert_eq!(jobs[0].version, 1);
    assert_eq!(jobs[0].next_run_at, Some(at(60)));
    assert_eq!(jobs[0].updated_at, at(0));

    // Changed defaults: replaced, version bumped, scheduling state kept.
    let a2 = settings("alpha", "2m");
    let jobs = store
        .sync_jobs(&[a2.clone(), b.clone()], at(20))
        .await
        .expect("changed sync");
    assert_eq!(jobs[0].defaults, a2);
    assert_eq!(jobs[0].version, 2);
    assert_eq!(jobs[0].updated_at, at(20));
    assert_eq!(jobs[0].next_run_at, Some(at(60)));
    assert_eq!(jobs[1].version, 1);

    // Removed: marked, unscheduled, history and pause state kept.
    let paused = store
        .set_paused_by(beta, true, Some(at(300)), "olga", at(25))
        .await
        .expect("pause");
    assert_eq!(paused.version, 2);
    let jobs = store
        .sync_jobs(std::slice::from_ref(&a2), at(30))
        .await
        .expect("removing sync");
    assert_eq!(jobs.len(), 2, "removed jobs are still listed");
    assert_eq!(jobs[1].removed_at, Some(at(30)));
    assert_eq!(jobs[1].next_run_at, None);
    assert_eq!(jobs[1].version, 3);
    assert!(jobs[1].paused);

    // A second sync without it changes nothing more.
    let jobs = store
        .sync_jobs(std::slice::from_ref(&a2), at(40))
        .await
        .expect("sync again");
    assert_eq!(jobs[1].removed_at, Some(at(30)));
    assert_eq!(jobs[1].version, 3);

    // Back in the file: unremoved, same row.
    let jobs = store
        .sync_jobs(&[a2, b], at(50))
        .await
        .expect("returning sync");
    assert_eq!(jobs[1].id, beta);
    assert_eq!(jobs[1].removed_at, None);
    assert_eq!(jobs[1].version, 4);
    assert!(jobs[1].paused, "an operator's pause survives removal");
    assert_eq!(
        store.job_by_name("beta").await.expect("lookup"),
        Some(jobs[1].clone())
    );
    assert_eq!(store.job_by_name("gamma").await.expect("lookup"), None);
}

async fn pausing_and_setting_the_next_run_report_a_missing_job(store: TestStore) {
    assert!(!store.set_next_run(42, Some(at(0))).await.expect("query"));
    assert!(matches!(
        store.set_paused_by(42, true, None, "olga", at(0)).await,
        Err(StoreError::NotFound)
    ));
}

async fn two_claims_for_the_same_fire_in_one_batch_make_exactly_one_run(store: TestStore) {
    let (store, ids) = store_with_jobs(store, &["alpha"]).await;
    let job = ids[0];
    store.set_next_run(job, Some(at(60))).await.expect("set");

    let result = store
        .write_batch(&WriteBatch {
            fires: vec![fire(job, at(60), at(120)), fire(job, at(60), at(120))],
            ..WriteBatch::default()
        })
        .await
        .expect("batch");

    let ClaimResult::Run(run_id) = result.fires[0] else {
        panic!("the first claim should win, got {:?}", result.fires);
    };
    assert_eq!(result.fires[1], ClaimResult::Lost);
    let runs = store
        .runs(&RunFilter {
            limit: 10,
            ..RunFilter::default()
        })
        .await
        .expect("runs");
    assert_eq!(run_ids(&runs), [run_id]);
    assert_eq!(runs[0].job_name, "alpha");
    assert_eq!(runs[0].scheduled_for, at(60));
    let job = store
        .job_by_name("alpha")
        .await
        .expect("lookup")
        .expect("job");
    assert_eq!(job.next_run_at, Some(at(120)));
    assert_eq!(job.version, 1, "a fire is not an edit");
}

async fn a_claim_with_a_stale_expected_time_loses_in_a_later_batch(store: TestStore) {
    let (store, ids) = store_with_jobs(store, &["alpha"]).await;
    let job = ids[0];
    store.set_next_run(job, Some(at(60))).await.expect("set");
    let first = store
        .write_batch(&WriteBatch {
            fires: vec![fire(job, at(60), at(120))],
            ..WriteBatch::default()
        })
        .await
        .expect("first batch");
    assert!(matches!(first.fires[0], ClaimResult::Run(_)));

    let second = store
        .write_batch(&WriteBatch {
            fires: vec![fire(job, at(60), at(120))],
            ..WriteBatch::default()
        })
        .await
        .expect("second batch");
    assert_eq!(second.fires, [ClaimResult::Lost]);
    let runs = store
        .runs(&RunFilter {
            limit: 10,
            ..RunFilter::default()
        })
        .await
        .expect("runs");
    assert_eq!(runs.len(), 1);
}

async fn successive_claims_on_one_job_in_one_batch_act_as_if_applied_in_order(store: TestStore) {
    let (store, ids) = store_with_jobs(store, &["alpha", "beta"]).await;
    let (alpha, beta) = (ids[0], ids[1]);
    store.set_next_run(alpha, Some(at(0))).await.expect("set");
    store.set_next_run(beta, Some(at(0))).await.expect("set");

    let result = store
        .write_batch(&WriteBatch {
            fires: vec![
                fire(alpha, at(0), at(60)),
                fire(beta, at(0), at(60)),
                fire(alpha, at(60), at(120)),
                fire(alpha, at(0), at(60)),
                FireClaim {
                    run: None,
                    ..fire(beta, at(60), at(120))
                },
            ],
            inserts: vec![new_run(beta, at(5))],
            ..WriteBatch::default()
        })
        .await
        .expect("batch");

    let [
        ClaimResult::Run(a1),
        ClaimResult::Run(b1),
        ClaimResult::Run(a2),
        ClaimResult::Lost,
        ClaimResult::Claimed,
    ] = result.fires[..]
    else {
        panic!("unexpected claim results {:?}", result.fires);
    };
    assert_eq!(result.inserts.len(), 1);
    let inserted = result.inserts[0].run_id().expect("inserted");
    for (id, job, scheduled) in [
        (a1, alpha, at(0)),
        (b1, beta, at(0)),
        (a2, alpha, at(60)),
        (inserted, beta, at(5)),
    ] {
        let run = store.run(id).await.expect("query").expect("run exists");
        assert_eq!(
            (run.job_id, run.scheduled_for),
            (job, scheduled),
            "run {id}"
        );
    }
    let jobs = store.jobs().await.expect("jobs");
    assert_eq!(jobs[0].next_run_at, Some(at(120)));
    assert_eq!(jobs[1].next_run_at, Some(at(120)));
}

async fn a_batch_larger_than_one_statement_maps_every_id_to_its_own_claim(store: TestStore) {
    // 40 jobs × 80 successive fires: 3,200 runs, more than one multi-row INSERT holds.
    let names: Vec<String> = (0..40).map(|i| format!("job-{i:02}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (store, ids) = store_with_jobs(store, &name_refs).await;
    for &job in &ids {
        store.set_next_run(job, Some(at(0))).await.expect("set");
    }
    let mut fires = Vec::new();
    for step in 0..80 {
        for &job in &ids {
            fires.push(fire(job, at(step * 60), at((step + 1) * 60)));
        }
    }
    let result = store
        .write_batch(&WriteBatch {
            fires: fires.clone(),
            ..WriteBatch::default()
        })
        .await
        .expect("batch");

    let runs = store
        .runs(&RunFilter {
            limit: 10_000,
            ..RunFilter::default()
        })
        .await
        .expect("runs");
    assert_eq!(runs.len(), fires.len());
    let by_id: std::collections::HashMap<i64, _> = runs.iter().map(|r| (r.id, r)).collect();
    for (claim, outcome) in fires.iter().zip(&result.fires) {
        let ClaimResult::Run(id) = outcome else {
            panic!("every claim in the chain wins, got {outcome:?}");
        };
        let run = by_id[id];
        assert_eq!(
            (run.job_id, run.scheduled_for),
            (claim.job_id, claim.expected)
        );
    }
}

async fn a_retry_is_claimed_once_and_its_run_links_to_the_first_attempt(store: TestStore) {
    let (store, ids) = store_with_jobs(store, &["alpha"]).await;
    let first = insert_runs(&store, &ids, 0).await[0];
    let mut failed = finish(first, RunStatus::Retrying, at(10));
    failed.error_kind = Some("transient".into());
    failed.error_message = Some("connection reset".into());
    failed.retry_at = Some(at(40));
    store
        .write_batch(&WriteBatch {
            finishes: vec![failed],
            ..WriteBatch::default()
        })
        .await
        .expect("finish");
    let pending = store.pending_retries().await.expect("pending");
    assert_eq!(run_ids(&pending), [first]);
    assert_eq!(pending[0].retry_at, Some(at(40)));

    let retry_run = NewRun {
        trigger: Trigger::Retry,
        attempt: 2,
        first_run_id: Some(first),
        ..new_run(ids[0], at(40))
    };
    let claim = RetryClaim {
        failed_run_id: first,
        expected: pending[0].retry_at.expect("retry_at"),
        run: Some(retry_run),
    };
    let result = store
        .write_batch(&WriteBatch {
            retries: vec![claim.clone(), claim.clone()],
            ..WriteBatch::default()
        })
        .await
        .expect("claim");
    let ClaimResult::Run(second) = result.retries[0] else {
        panic!("the first retry claim should win, got {:?}", result.retries);
    };
    assert_eq!(result.retries[1], ClaimResult::Lost);
    let again = store
        .write_batch(&WriteBatch {
            retries: vec![claim],
            ..WriteBatch::default()
        })
        .await
        .expect("claim again");
    assert_eq!(again.retries, [ClaimResult::Lost]);

    assert!(store.pending_retries().await.expect("pending").is_empty());
    let old = store.run(first).await.expect("query").expect("run");
    assert_eq!(old.retry_at, None);
    assert_eq!(
        old.status,
        RunStatus::Failed,
        "an attempt whose retry started no longer reads retrying"
    );
    let new = store.run(second).await.expect("query").expect("run");
    assert_eq!(new.trigger, Trigger::Retry);
    assert_eq!(new.attempt, 2);
    assert_eq!(new.first_run_id, Some(first));
}

async fn pending_retries_come_by_due_time(store: TestStore) {
    let (store, ids) = store_with_jobs(store, &["alpha"]).await;
    let runs = insert_runs(&store, &[ids[0]; 3], 0).await;
    let finishes = runs
        .iter()
        .zip([300, 100, 200])
        .map(|(&id, due)| RunFinish {
            retry_at: Some(at(due)),
            ..finish(id, RunStatus::Retrying, at(50))
        })
        .collect();
    store
        .write_batch(&WriteBatch {
            finishes,
            ..WriteBatch::default()
        })
        .await
        .expect("finish");
    let pending = store.pending_retries().await.expect("pending");
    assert_eq!(run_ids(&pending), [runs[1], runs[2], runs[0]]);
}

async fn marks_move_a_waiting_run_the_later_wins_and_none_revives_an_ended_run(store: TestStore) {
    let (store, ids) = store_with_jobs(store, &["alpha"]).await;
    let runs = insert_runs(&store, &[ids[0], ids[0]], 0).await;
    let mark = |run_id, status, started_at| RunMark {
        run_id,
        status,
        started_at,
    };
    store
        .write_batch(&WriteBatch {
            marks: vec![
                mark(runs[0], RunStatus::Queued, None),
                mark(runs[1], RunStatus::Queued, None),
            ],
            ..WriteBatch::default()
        })
        .await
        .expect("queued");
    let queued = store.run(runs[0]).await.expect("query").expect("run");
    assert_eq!(
        (queued.status, queued.started_at),
        (RunStatus::Queued, None)
    );

    // In one batch: the later mark of a run wins; a mark after its finish is ignored.
    store
        .write_batch(&WriteBatch {
            marks: vec![
                mark(runs[0], RunStatus::Running, Some(at(3))),
                mark(runs[0], RunStatus::Running, Some(at(5))),
            ],
            finishes: vec![finish(runs[1], RunStatus::Cancelled, at(4))],
            ..WriteBatch::default()
        })
        .await
        .expect("marked");
    store
        .write_batch(&WriteBatch {
            marks: vec![mark(runs[1], RunStatus::Running, Some(at(6)))],
            ..WriteBatch::default()
        })
        .await
        .expect("a late mark");
    let started = store.run(runs[0]).await.expect("query").expect("run");
    assert_eq!(
        (started.status, started.started_at),
        (RunStatus::Running, Some(at(5)))
    );
    let ended = store.run(runs[1]).await.expect("query").expect("run");
    assert_eq!(
        ended.status,
        RunStatus::Cancelled,
        "an ended run stays ended"
    );
    assert_eq!(ended.started_at, Some(at(4) - Duration::milliseconds(1500)));
}

async fn a_finish_records_every_field_and_the_later_of_two_finishes_wins(store: TestStore) {
    let (store, ids) = store_with_jobs(store, &["alpha"]).await;
    let run = insert_runs(&store, &ids, 0).await[0];
    let early = finish(run, RunStatus::Failed, at(5));
    let late = RunFinish {
        error_kind: Some("fatal".into()),
        error_message: Some("bad input".into()),
        items_total: None,
        summary: None,
        ..finish(run, RunStatus::Dead, at(9))
    };
    store
        .write_batch(&WriteBatch {
            finishes: vec![early, late.clone()],
            ..WriteBatch::default()
        })
        .await
        .expect("finish");
    let stored = store.run(run).await.expect("query").expect("run");
    assert_eq!(stored.status, RunStatus::Dead);
    assert_eq!(stored.finished_at, Some(at(9)));
    assert_eq!(stored.duration_ms, late.duration_ms);
    assert_eq!(
        (
            stored.items_checked,
            stored.items_updated,
            stored.items_total
        ),
        (10, 2, None)
    );
    assert_eq!(stored.error_kind.as_deref(), Some("fatal"));
    assert_eq!(stored.error_message.as_deref(), Some("bad input"));
    assert_eq!(stored.summary, None);
    assert_eq!(stored.retry_at, None);
    assert_eq!(stored.instance_id, "test-instance");
}

async fn log_lines_come_back_in_order_and_page_after_an_id(store: TestStore) {
    let (store, ids) = store_with_jobs(store, &["alpha"]).await;
    let runs = insert_runs(&store, &[ids[0], ids[0]], 0).await;
    let line = |run_id: i64, n: i64| LogLine {
        run_id,
        ts: at(n),
        level: "INFO".into(),
        message: format!("line {n}"),
        fields: serde_json::json!({ "n": n, "nested": { "ok": true } }),
    };
    // Interleaved with another run's lines, and finished in the same batch as the last
    // ones: logs land before the finish.
    store
        .write_batch(&WriteBatch {
            logs: vec![line(runs[0], 0), line(runs[1], 100), line(runs[0], 1)],
            ..WriteBatch::default()
        })
        .await
        .expect("logs");
    store
        .write_batch(&WriteBatch {
            logs: vec![line(runs[0], 2), line(runs[0], 3)],
            finishes: vec![finish(runs[0], RunStatus::Succeeded, at(4))],
            ..WriteBatch::default()
        })
        .await
        .expect("logs and finish");

    let all = store.run_logs(runs[0], None, 100).await.expect("logs");
    let lines: Vec<&LogLine> = all.iter().map(|(_, line)| line).collect();
    assert_eq!(
        lines,
        [
            &line(runs[0], 0),
            &line(runs[0], 1),
            &line(runs[0], 2),
            &line(runs[0], 3)
        ]
    );
    let first_page = store.run_logs(runs[0], None, 2).await.expect("page 1");
    assert_eq!(first_page.len(), 2);
    let after = first_page[1].0;
    let second_page = store
        .run_logs(runs[0], Some(after), 2)
        .await
        .expect("page 2");
    assert_eq!(second_page, all[2..]);
    assert!(
        store
            .run_logs(runs[0], Some(all[3].0), 2)
            .await
            .expect("page 3")
            .is_empty()
    );
}

async fn runs_are_listed_newest_first_by_keyset_pages_and_filters(store: TestStore) {
    let (store, ids) = store_with_jobs(store, &["alpha", "beta"]).await;
    let (alpha, beta) = (ids[0], ids[1]);
    let runs = insert_runs(&store, &[alpha, beta, alpha, beta, alpha], 0).await;
    let manual = store
        .write_batch(&WriteBatch {
            inserts: vec![NewRun {
                trigger: Trigger::Manual,
                ..new_run(beta, at(10))
            }],
            ..WriteBatch::default()
        })
        .await
        .expect("manual run")
        .inserts[0]
        .run_id()
        .expect("inserted");
    finish_all(&store, &[runs[0], runs[3]], RunStatus::Failed).await;

    let page = |filter: RunFilter| {
        let store = &store;
        async move { run_ids(&store.runs(&filter).await.expect("runs")) }
    };
    let first = page(RunFilter {
        limit: 4,
        ..RunFilter::default()
    })
    .await;
    assert_eq!(first, [manual, runs[4], runs[3], runs[2]]);
    let second = page(RunFilter {
        limit: 4,
        before: Some(runs[2]),
        ..RunFilter::default()
    })
    .await;
    assert_eq!(second, [runs[1], runs[0]]);
    assert_eq!(
        page(RunFilter {
            job_id: Some(alpha),
            limit: 2,
            ..RunFilter::default()
        })
        .await,
        [runs[4], runs[2]]
    );
    assert_eq!(
        page(RunFilter {
            job_id: Some(alpha),
            before: Some(runs[2]),
            limit: 2,
            ..RunFilter::default()
        })
        .await,
        [runs[0]]
    );
    assert_eq!(
        page(RunFilter {
            status: Some(RunStatus::Failed),
            limit: 10,
            ..RunFilter::default()
        })
        .await,
        [runs[3], runs[0]]
    );
    assert_eq!(
        page(RunFilter {
            trigger: Some(Trigger::Manual),
            limit: 10,
            ..RunFilter::default()
        })
        .await,
        [manual]
    );
    assert_eq!(
        page(RunFilter {
            job_id: Some(beta),
            status: Some(RunStatus::Running),
            trigger: Some(Trigger::Schedule),
            limit: 10,
            ..RunFilter::default()
        })
        .await,
        [runs[1]]
    );
}

async fn run_bars_hold_the_newest_runs_of_one_job_newest_first(store: TestStore) {
    let (store, ids) = store_with_jobs(store, &["alpha", "beta", "gamma"]).await;
    let (alpha, beta) = (ids[0], ids[1]);
    let runs = insert_runs(&store, &[alpha, beta, alpha, alpha, alpha], 0).await;
    finish_all(&store, &[runs[0], runs[2]], RunStatus::Succeeded).await;
    finish_all(&store, &[runs[3]], RunStatus::Failed).await;

    let bars = store.run_bars(alpha, 3).await.expect("bars");
    let shape: Vec<_> = bars
        .iter()
        .map(|bar| (bar.id, bar.status, bar.duration_ms))
        .collect();
    assert_eq!(
        shape,
        [
            (runs[4], RunStatus::Running, None),
            (runs[3], RunStatus::Failed, Some(1500)),
            (runs[2], RunStatus::Succeeded, Some(1500)),
        ]
    );
    // Slots come back to the microsecond on both backends.
    assert_eq!(bars[2].scheduled_for, at(2));
    assert_eq!(store.run_bars(beta, 100).await.expect("bars").len(), 1);
    assert!(store.run_bars(ids[2], 100).await.expect("bars").is_empty());
}

async fn latest_runs_holds_the_newest_run_of_each_job_that_has_one(store: TestStore) {
    let (store, ids) = store_with_jobs(store, &["alpha", "beta", "gamma"]).await;
    let runs = insert_runs(&store, &[ids[0], ids[1], ids[0], ids[1], ids[0]], 0).await;
    let latest = store.latest_runs().await.expect("latest");
    assert_eq!(latest.len(), 2);
    assert_eq!(latest[&ids[0]].id, runs[4]);
    assert_eq!(latest[&ids[1]].id, runs[3]);
    assert!(!latest.contains_key(&ids[2]));
}

async fn running_runs_lists_only_unfinished_runs_oldest_first(store: TestStore) {
    let (store, ids) = store_with_jobs(store, &["alpha", "beta"]).await;
    let runs = insert_runs(&store, &[ids[0], ids[1], ids[0]], 0).await;
    finish_all(&store, &[runs[1]], RunStatus::Succeeded).await;
    let running = store.running_runs().await.expect("running");
    assert_eq!(run_ids(&running), [runs[0], runs[2]]);
}

/// Adds `lines` log lines to each of `runs`.
async fn add_logs(store: &TestStore, runs: &[i64], lines: usize) {
    let logs = runs
        .iter()
        .flat_map(|&run_id| {
            (0..lines).map(move |n| LogLine {
                run_id,
                ts: at(n as i64),
                level: "INFO".into(),
                message: "hello".into(),
                fields: serde_json::json!({}),
            })
        })
        .collect();
    store
        .write_batch(&WriteBatch {
            logs,
            ..WriteBatch::default()
        })
        .await
        .expect("logs");
}

async fn pruning_by_age_spares_running_runs_and_pending_retries_and_goes_in_batches(
    store: TestStore,
) {
    let (store, ids) = store_with_jobs(store, &["alpha"]).await;
    // Started at 0..6; the cut-off is 5, so runs 0..5 are old enough.
    let runs = insert_runs(&store, &[ids[0]; 6], 0).await;
    add_logs(&store, &runs, 2).await;
    finish_all(
        &store,
        &[runs[0], runs[2], runs[3], runs[5]],
        RunStatus::Succeeded,
    )
    .await;
    store
        .write_batch(&WriteBatch {
            finishes: vec![RunFinish {
                retry_at: Some(at(500)),
                ..finish(runs[4], RunStatus::Retrying, at(20))
            }],
            ..WriteBatch::default()
        })
        .await
        .expect("finish with retry");
    // runs[1] is still running; runs[4] waits for a retry; runs[5] is too new.

    let first = store.prune_runs(Some(at(5)), None, 2).await.expect("prune");
    assert_eq!(
        first,
        PruneReport {
            runs_deleted: 2,
            log_lines_deleted: 4
        }
    );
    let second = store.prune_runs(Some(at(5)), None, 2).await.expect("prune");
    assert_eq!(second.runs_deleted, 1);
    let third = store.prune_runs(Some(at(5)), None, 2).await.expect("prune");
    assert_eq!(third, PruneReport::default());

    let left = store
        .runs(&RunFilter {
            limit: 100,
            ..RunFilter::default()
        })
        .await
        .expect("runs");
    assert_eq!(run_ids(&left), [runs[5], runs[4], runs[1]]);
    assert_eq!(
        store.run_logs(runs[1], None, 10).await.expect("logs").len(),
        2
    );
    assert!(
        store
            .run_logs(runs[0], None, 10)
            .await
            .expect("logs")
            .is_empty()
    );
}

async fn pruning_by_age_takes_runs_that_never_started_by_their_slot(store: TestStore) {
    let (store, ids) = store_with_jobs(store, &["alpha"]).await;
    // Slots at 0, 1 and 10; the first two are cancelled while queued, never started.
    let runs = insert_runs(&store, &[ids[0], ids[0]], 0).await;
    let late = insert_runs(&store, &[ids[0]], 10).await[0];
    let never_started = |run_id| RunFinish {
        started_at: None,
        duration_ms: None,
        ..finish(run_id, RunStatus::Cancelled, at(20))
    };
    store
        .write_batch(&WriteBatch {
            finishes: vec![
                never_started(runs[0]),
                never_started(runs[1]),
                never_started(late),
            ],
            ..WriteBatch::default()
        })
        .await
        .expect("cancelled");

    let report = store.prune_runs(Some(at(5)), None, 1).await.expect("prune");
    assert_eq!(report.runs_deleted, 1, "batches hold for these too");
    let report = store
        .prune_runs(Some(at(5)), None, 10)
        .await
        .expect("prune");
    assert_eq!(report.runs_deleted, 1);
    let left = store
        .runs(&RunFilter {
            limit: 10,
            ..RunFilter::default()
        })
        .await
        .expect("runs");
    assert_eq!(run_ids(&left), [late], "a slot after the cut-off is kept");
}

async fn pruning_keeps_the_newest_runs_of_each_job_and_never_a_running_one(store: TestStore) {
    let (store, ids) = store_with_jobs(store, &["alpha", "beta"]).await;
    let (alpha, beta) = (ids[0], ids[1]);
    let runs = insert_runs(&store, &[alpha, alpha, alpha, alpha, beta, beta], 0).await;
    add_logs(&store, &runs, 1).await;
    // alpha's oldest run is still running; everything else finished.
    finish_all(&store, &runs[1..], RunStatus::Succeeded).await;

    let report = store.prune_runs(None, Some(2), 100).await.expect("prune");
    assert_eq!(
        report,
        PruneReport {
            runs_deleted: 1,
            log_lines_deleted: 1
        }
    );
    let left = store
        .runs(&RunFilter {
            limit: 100,
            ..RunFilter::default()
        })
        .await
        .expect("runs");
    assert_eq!(
        run_ids(&left),
        [runs[5], runs[4], runs[3], runs[2], runs[0]]
    );
    assert_eq!(
        store.prune_runs(None, Some(2), 100).await.expect("prune"),
        PruneReport::default()
    );

    // Ids of pruned runs are never handed out again.
    let next = insert_runs(&store, &[beta], 100).await[0];
    assert!(next > runs[5]);
}

async fn pruning_a_job_down_to_zero_removes_the_newest_run_too_and_ids_stay_unique(
    store: TestStore,
) {
    let (store, ids) = store_with_jobs(store, &["alpha"]).await;
    let runs = insert_runs(&store, &[ids[0], ids[0]], 0).await;
    finish_all(&store, &runs, RunStatus::Succeeded).await;
    let report = store.prune_runs(None, Some(0), 100).await.expect("prune");
    assert_eq!(report.runs_deleted, 2);
    let next = insert_runs(&store, &ids, 10).await[0];
    assert!(next > runs[1], "id {next} reused after pruning {runs:?}");
}

async fn times_round_trip_to_the_microsecond_and_the_read_value_wins_the_claim(store: TestStore) {
    let (store, ids) = store_with_jobs(store, &["alpha"]).await;
    let due = Utc
        .with_ymd_and_hms(2026, 3, 29, 1, 59, 59)
        .single()
        .expect("a valid date")
        + Duration::microseconds(999_999);
    store.set_next_run(ids[0], Some(due)).await.expect("set");
    let read = store
        .job_by_name("alpha")
        .await
        .expect("lookup")
        .expect("job")
        .next_run_at
        .expect("scheduled");
    assert_eq!(read, due);

    // A time one microsecond off must lose; the exact one read back must win.
    let off = store
        .write_batch(&WriteBatch {
            fires: vec![fire(ids[0], read - Duration::microseconds(1), at(9999))],
            ..WriteBatch::default()
        })
        .await
        .expect("batch");
    assert_eq!(off.fires, [ClaimResult::Lost]);
    let exact = store
        .write_batch(&WriteBatch {
            fires: vec![fire(ids[0], read, at(9999))],
            ..WriteBatch::default()
        })
        .await
        .expect("batch");
    let ClaimResult::Run(run_id) = exact.fires[0] else {
        panic!("the exact time should win, got {:?}", exact.fires);
    };
    let run = store.run(run_id).await.expect("query").expect("run");
    assert_eq!(run.scheduled_for, due);
    assert_eq!(run.started_at, Some(due));
}

async fn times_order_correctly_whatever_their_fraction(store: TestStore) {
    // 10:00:05 sorts before 10:00:05.5 as an instant; in sqlx's text encoding it does not.
    let (store, ids) = store_with_jobs(store, &["alpha"]).await;
    let whole = Utc
        .with_ymd_and_hms(2026, 1, 1, 10, 0, 5)
        .single()
        .expect("a valid date");
    let runs = insert_runs(&store, &[ids[0], ids[0]], 0).await;
    let finishes = vec![
        RunFinish {
            retry_at: Some(whole + Duration::milliseconds(500)),
            ..finish(runs[0], RunStatus::Retrying, at(1))
        },
        RunFinish {
            retry_at: Some(whole),
            ..finish(runs[1], RunStatus::Retrying, at(1))
        },
    ];
    store
        .write_batch(&WriteBatch {
            finishes,
            ..WriteBatch::default()
        })
        .await
        .expect("finish");
    let pending = store.pending_retries().await.expect("pending");
    assert_eq!(run_ids(&pending), [runs[1], runs[0]]);
}

async fn stored_defaults_that_no_longer_fit_the_settings_are_a_decode_error(store: TestStore) {
    let (store, _) = store_with_jobs(store, &["alpha"]).await;
    store
        .execute("UPDATE jobs SET defaults = '{\"unknown_field\": 1}'")
        .await;
    assert!(matches!(store.jobs().await, Err(StoreError::Decode(_))));
}

async fn an_empty_batch_writes_nothing_and_returns_empty_results(store: TestStore) {
    let result = store
        .write_batch(&WriteBatch::default())
        .await
        .expect("empty batch");
    assert_eq!(result, batchboard::store::BatchResult::default());
}

/// The rebuild of `runs` in migration 0011 on a database that has history: every run and
/// log line survives, a pruned run's id is never handed out again, and the new states
/// are accepted.
#[tokio::test]
async fn upgrading_to_queued_runs_keeps_every_run_log_line_and_used_id() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let before_0011 = dir.path().join("migrations");
    std::fs::create_dir(&before_0011).expect("a folder");
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for entry in std::fs::read_dir(&shipped).expect("the migrations") {
        let path = entry.expect("an entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.as_bytes().first().is_some_and(u8::is_ascii_digit) && name < "0011" {
            std::fs::copy(&path, before_0011.join(name)).expect("copied");
        }
    }
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let raw = batchboard::store::sqlite::SqliteStore::connect(&url)
        .await
        .expect("the store opens");
    sqlx::migrate::Migrator::new(before_0011.as_path())
        .await
        .expect("the older migrations load")
        .run(raw.pool())
        .await
        .expect("the older migrations apply");
    let store = TestStore::adopt(std::sync::Arc::new(raw.clone()), Backend::Sqlite, url);

    let jobs = store
        .sync_jobs(&[settings("alpha", "1m")], at(0))
        .await
        .expect("sync");
    let job = jobs[0].id;
    // Written as the version of that time wrote them: today's inserts name columns that
    // later migrations add.
    let mut runs = Vec::new();
    for n in 0..3 {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO runs (job_id, trigger, attempt, status, scheduled_for, started_at, \
             instance_id) VALUES ($1, 'schedule', 1, 'running', $2, $2, 'test') RETURNING id",
        )
        .bind(job)
        .bind(at(n).timestamp_micros())
        .fetch_one(raw.pool())
        .await
        .expect("a run of the old schema");
        runs.push(id);
    }
    add_logs(&store, &runs, 2).await;
    finish_all(&store, &runs, RunStatus::Succeeded).await;
    // The oldest run is pruned as history, and the newest is deleted, so the highest id
    // ever used is above every stored one.
    let pruned = store.prune_runs(None, Some(2), 100).await.expect("prune");
    assert_eq!(pruned.runs_deleted, 1);
    let kept_before = store.run(runs[1]).await.expect("loads").expect("kept");
    sqlx::query("DELETE FROM run_logs WHERE run_id = $1")
        .bind(runs[2])
        .execute(raw.pool())
        .await
        .expect("logs of the last run go");
    sqlx::query("DELETE FROM runs WHERE id = $1")
        .bind(runs[2])
        .execute(raw.pool())
        .await
        .expect("the last run goes");

    store.migrate().await.expect("0011 applies over history");

    assert_eq!(store.run(runs[0]).await.expect("loads"), None);
    assert_eq!(
        store.run(runs[1]).await.expect("loads"),
        Some(kept_before),
        "a run survives the rebuild unchanged"
    );
    assert_eq!(
        store
            .run_logs(runs[1], None, 100)
            .await
            .expect("logs")
            .len(),
        2,
        "its log lines survive and still point at it"
    );
    let next = insert_runs(&store, &[job], 10).await;
    assert!(
        next[0] > runs[2],
        "no used id is handed out again: {next:?}"
    );
    sqlx::query("UPDATE runs SET status = 'queued', started_at = NULL WHERE id = $1")
        .bind(next[0])
        .execute(raw.pool())
        .await
        .expect("a queued run with no start is accepted");
}

store_suite!(
    migrating_twice_is_harmless,
    sync_jobs_inserts_updates_removes_and_brings_back_jobs_bumping_version_on_change,
    pausing_and_setting_the_next_run_report_a_missing_job,
    an_empty_batch_writes_nothing_and_returns_empty_results,
    two_claims_for_the_same_fire_in_one_batch_make_exactly_one_run,
    a_claim_with_a_stale_expected_time_loses_in_a_later_batch,
    successive_claims_on_one_job_in_one_batch_act_as_if_applied_in_order,
    a_batch_larger_than_one_statement_maps_every_id_to_its_own_claim,
    a_retry_is_claimed_once_and_its_run_links_to_the_first_attempt,
    pending_retries_come_by_due_time,
    marks_move_a_waiting_run_the_later_wins_and_none_revives_an_ended_run,
    a_finish_records_every_field_and_the_later_of_two_finishes_wins,
    log_lines_come_back_in_order_and_page_after_an_id,
    runs_are_listed_newest_first_by_keyset_pages_and_filters,
    run_bars_hold_the_newest_runs_of_one_job_newest_first,
    latest_runs_holds_the_newest_run_of_each_job_that_has_one,
    running_runs_lists_only_unfinished_runs_oldest_first,
    pruning_by_age_spares_running_runs_and_pending_retries_and_goes_in_batches,
    pruning_by_age_takes_runs_that_never_started_by_their_slot,
    pruning_keeps_the_newest_runs_of_each_job_and_never_a_running_one,
    pruning_a_job_down_to_zero_removes_the_newest_run_too_and_ids_stay_unique,
    times_round_trip_to_the_microsecond_and_the_read_value_wins_the_claim,
    times_order_correctly_whatever_their_fraction,
    stored_defaults_that_no_longer_fit_the_settings_are_a_decode_error,
);
