//! Runs shared by every instance and `forbid` held by the database, on both backends
//! (see [`crate::support::store_suite`]): exclusive runs one at a time whoever inserts
//! them, fires and retries that meet one going, and queued runs claimed once each.

use std::collections::BTreeSet;

use batchboard::job::JobSettings;
use batchboard::store::{
    ClaimResult, FireClaim, NewRun, QueuedClaim, RetryClaim, RunFinish, RunStatus, Trigger,
    UNCLAIMED, WriteBatch,
};
use chrono::{DateTime, Duration, Utc};

use crate::support::{TestStore, store_suite};

/// Up to `due` runs whose start has come by `now`, and none ahead.
fn due_by(now: DateTime<Utc>, due: usize) -> QueuedClaim {
    QueuedClaim {
        now,
        due,
        ahead: 0,
        ahead_until: now,
    }
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 250_000).expect("a valid time")
        + Duration::seconds(seconds)
}

async fn job(store: &TestStore) -> i64 {
    let settings = JobSettings {
        name: "copy".into(),
        handler: "scripted".into(),
        every: Some("1m".into()),
        ..JobSettings::default()
    };
    store.sync_jobs(&[settings], at(0)).await.expect("synced")[0].id
}

fn run(job_id: i64, exclusive: bool) -> NewRun {
    NewRun {
        job_id,
        trigger: Trigger::Manual,
        attempt: 1,
        first_run_id: None,
        status: RunStatus::Running,
        scheduled_for: at(0),
        started_at: at(0),
        finished_at: None,
        error_kind: None,
        error_message: None,
        instance_id: "a".into(),
        exclusive,
    }
}

/// A scheduled fire of `slot`, queued for any instance.
fn queued(job_id: i64, slot: i64) -> NewRun {
    NewRun {
        trigger: Trigger::Schedule,
        status: RunStatus::Queued,
        scheduled_for: at(slot),
        started_at: at(slot),
        instance_id: UNCLAIMED.into(),
        ..run(job_id, false)
    }
}

async fn write(store: &TestStore, batch: WriteBatch) -> batchboard::store::BatchResult {
    store
        .write_batch(&batch)
        .await
        .expect("the batch is written")
}

async fn insert(store: &TestStore, run: NewRun) -> ClaimResult {
    let batch = WriteBatch {
        inserts: vec![run],
        ..WriteBatch::default()
    };
    write(store, batch).await.inserts[0]
}

fn finish(run_id: i64, status: RunStatus, retry_at: Option<DateTime<Utc>>) -> RunFinish {
    RunFinish {
        run_id,
        status,
        started_at: Some(at(0)),
        finished_at: at(1),
        duration_ms: Some(1000),
        items_checked: 0,
        items_updated: 0,
        items_total: None,
        error_kind: None,
        error_message: None,
        summary: None,
        retry_at,
    }
}

async fn end(store: &TestStore, run_id: i64, status: RunStatus, retry_at: Option<DateTime<Utc>>) {
    let batch = WriteBatch {
        finishes: vec![finish(run_id, status, retry_at)],
        ..WriteBatch::default()
    };
    write(store, batch).await;
}

async fn exclusive_runs_of_a_job_go_one_at_a_time_whoever_inserts_them(store: TestStore) {
    let job_id = job(&store).await;
    let first = insert(&store, run(job_id, true))
        .await
        .run_id()
        .expect("the first exclusive run goes");
    assert_eq!(
        insert(&store, run(job_id, true)).await,
        ClaimResult::Busy,
        "a second one is refused while the first goes"
    );
    // In one batch, the first of two wins.
    let both = write(
        &store,
        WriteBatch {
            inserts: vec![run(job_id, false), run(job_id, true)],
            ..WriteBatch::default()
        },
    )
    .await;
    assert!(matches!(both.inserts[0], ClaimResult::Run(_)), "{both:?}");
    assert_eq!(both.inserts[1], ClaimResult::Busy, "{both:?}");

    end(&store, first, RunStatus::Succeeded, None).await;
    assert!(
        matches!(insert(&store, run(job_id, true)).await, ClaimResult::Run(_)),
        "once it ended, the next one goes"
    );
}

async fn a_fire_that_meets_an_exclusive_run_going_is_given_back_early_and_recorded_skipped_at_its_slot(
    store: TestStore,
) {
    let job_id = job(&store).await;
    store
        .set_next_run(job_id, Some(at(60)))
        .await
        .expect("scheduled");
    insert(&store, run(job_id, true)).await;
    let fire = FireClaim {
        job_id,
        expected: at(60),
        next: Some(at(120)),
        run: Some(NewRun {
            exclusive: true,
            ..queued(job_id, 60)
        }),
        early: false,
    };
    // Ahead of its slot, the fire is given back, to be decided at the slot.
    let ahead = write(
        &store,
        WriteBatch {
            fires: vec![FireClaim {
                early: true,
                ..fire.clone()
            }],
            ..WriteBatch::default()
        },
    )
    .await;
    assert_eq!(ahead.fires, [ClaimResult::Busy]);
    let job = store
        .job_by_name("copy")
        .await
        .expect("loads")
        .expect("job");
    assert_eq!(
        job.next_run_at,
        Some(at(60)),
        "the slot is the next fire again"
    );
    assert_eq!(
        store
            .runs(&batchboard::store::RunFilter {
                job_id: Some(job_id),
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("runs")
            .len(),
        1,
        "nothing recorded for it"
    );

    let result = write(
        &store,
        WriteBatch {
            fires: vec![fire],
            ..WriteBatch::default()
        },
    )
    .await;
    let ClaimResult::Skipped(skipped) = result.fires[0] else {
        panic!("the fire is recorded as skipped: {result:?}");
    };
    let skipped = store.run(skipped).await.expect("loads").expect("stored");
    assert_eq!(skipped.status, RunStatus::Skipped);
    assert_eq!(skipped.error_kind.as_deref(), Some("overlap"));
    assert_eq!(skipped.scheduled_for, at(60));
    let job = store
        .job_by_name("copy")
        .await
        .expect("loads")
        .expect("job");
    assert_eq!(job.next_run_at, Some(at(120)), "the schedule moved on");
}

async fn a_retry_waits_while_an_exclusive_run_of_its_job_goes_and_then_starts(store: TestStore) {
    let job_id = job(&store).await;
    let failed = insert(&store, run(job_id, true))
        .await
        .run_id()
        .expect("inserted");
    end(&store, failed, RunStatus::Retrying, Some(at(30))).await;
    let going = insert(&store, run(job_id, true))
        .await
        .run_id()
        .expect("another run goes");
    let claim = || RetryClaim {
        failed_run_id: failed,
        expected: at(30),
        run: Some(NewRun {
            trigger: Trigger::Retry,
            attempt: 2,
            first_run_id: Some(failed),
            ..run(job_id, true)
        }),
    };
    let busy = write(
        &store,
        WriteBatch {
            retries: vec![claim()],
            ..WriteBatch::default()
        },
    )
    .await;
    assert_eq!(busy.retries, [ClaimResult::Busy]);
    let waiting = store.run(failed).await.expect("loads").expect("stored");
    assert_eq!(
        (waiting.status, waiting.retry_at),
        (RunStatus::Retrying, Some(at(30))),
        "the retry is still pending"
    );

    end(&store, going, RunStatus::Succeeded, None).await;
    let started = write(
        &store,
        WriteBatch {
            retries: vec![claim()],
            ..WriteBatch::default()
        },
    )
    .await;
    assert!(
        matches!(started.retries[0], ClaimResult::Run(_)),
        "{started:?}"
    );
}

async fn queued_runs_are_claimed_once_each_earliest_first_up_to_the_limit(store: TestStore) {
    let job_id = job(&store).await;
    let batch = WriteBatch {
        inserts: (0..6).map(|slot| queued(job_id, slot)).collect(),
        ..WriteBatch::default()
    };
    let ids: Vec<i64> = write(&store, batch)
        .await
        .inserts
        .into_iter()
        .map(|inserted| inserted.run_id().expect("inserted"))
        .collect();

    let first = store
        .claim_queued("a", &due_by(at(4), 2))
        .await
        .expect("claims");
    assert_eq!(
        first.iter().map(|run| run.id).collect::<Vec<_>>(),
        ids[..2],
        "the earliest two"
    );
    for run in &first {
        assert_eq!(
            (run.status, run.instance_id.as_str()),
            (RunStatus::Running, "a")
        );
    }
    let rest = store
        .claim_queued("b", &due_by(at(4), 10))
        .await
        .expect("claims");
    assert_eq!(
        rest.iter().map(|run| run.id).collect::<Vec<_>>(),
        ids[2..5],
        "what is due by then, and nothing claimed before"
    );
    assert!(
        store
            .claim_queued("c", &due_by(at(4), 10))
            .await
            .expect("claims")
            .is_empty()
    );
    let stored = store.run(ids[5]).await.expect("loads").expect("stored");
    assert_eq!(
        (stored.status, stored.instance_id.as_str()),
        (RunStatus::Queued, UNCLAIMED),
        "a run not yet due waits"
    );
    assert!(
        store
            .claim_queued("c", &due_by(at(10), 0))
            .await
            .expect("claims")
            .is_empty(),
        "no free slot claims nothing"
    );
    // Ahead: a run that starts within the look-ahead is claimed before its start.
    let ahead = QueuedClaim {
        now: at(4),
        due: 1,
        ahead: 1,
        ahead_until: at(5),
    };
    let early = store.claim_queued("c", &ahead).await.expect("claims");
    assert_eq!(
        early.iter().map(|run| run.id).collect::<Vec<_>>(),
        [ids[5]],
        "the next start, a second ahead"
    );
}

async fn instances_claiming_at_once_take_disjoint_runs(store: TestStore) {
    let job_id = job(&store).await;
    let batch = WriteBatch {
        inserts: (0..40).map(|slot| queued(job_id, slot)).collect(),
        ..WriteBatch::default()
    };
    write(&store, batch).await;
    let claims = (0..4).map(|instance| {
        let store = store.store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let name = format!("instance-{instance}");
                let claimed = store
                    .claim_queued(&name, &due_by(at(100), 3))
                    .await
                    .expect("claims");
                if claimed.is_empty() {
                    return mine;
                }
                mine.extend(claimed.into_iter().map(|run| run.id));
            }
        })
    });
    let mut all = Vec::new();
    for claim in claims.collect::<Vec<_>>() {
        all.extend(claim.await.expect("the claimer ends"));
    }
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "no run claimed twice");
    assert_eq!(all.len(), 40, "every run claimed");
}

async fn a_queued_run_is_cancelled_where_it_waits_until_an_instance_claims_it(store: TestStore) {
    let job_id = job(&store).await;
    let batch = WriteBatch {
        inserts: vec![queued(job_id, 0), queued(job_id, 1)],
        ..WriteBatch::default()
    };
    let ids: Vec<i64> = write(&store, batch)
        .await
        .inserts
        .into_iter()
        .map(|inserted| inserted.run_id().expect("inserted"))
        .collect();
    assert!(
        store
            .cancel_unclaimed(ids[0], "cancelled by alice before it started", at(2))
            .await
            .expect("cancels")
    );
    let cancelled = store.run(ids[0]).await.expect("loads").expect("stored");
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert_eq!(cancelled.started_at, None, "it never started");
    assert_eq!(
        cancelled.error_message.as_deref(),
        Some("cancelled by alice before it started")
    );

    let claimed = store
        .claim_queued("a", &due_by(at(5), 10))
        .await
        .expect("claims");
    assert_eq!(
        claimed.iter().map(|run| run.id).collect::<Vec<_>>(),
        [ids[1]],
        "a cancelled run is not claimed"
    );
    assert!(
        !store
            .cancel_unclaimed(ids[1], "too late", at(6))
            .await
            .expect("answers"),
        "a claimed run is its instance's to stop"
    );
}

async fn runs_a_stopping_instance_claimed_go_back_to_the_queue_for_another(store: TestStore) {
    let job_id = job(&store).await;
    let batch = WriteBatch {
        inserts: vec![queued(job_id, 0), queued(job_id, 1), queued(job_id, 2)],
        ..WriteBatch::default()
    };
    write(&store, batch).await;
    let claimed: Vec<i64> = store
        .claim_queued("a", &due_by(at(5), 10))
        .await
        .expect("claims")
        .iter()
        .map(|run| run.id)
        .collect();
    assert_eq!(claimed.len(), 3);
    // One of them ended meanwhile (cancelled by an operator): it stays as it is.
    end(&store, claimed[2], RunStatus::Cancelled, None).await;

    assert_eq!(
        store.release_claimed("b", &claimed).await.expect("answers"),
        0,
        "only the claimer gives its runs back"
    );
    assert_eq!(
        store
            .release_claimed("a", &claimed)
            .await
            .expect("gives back"),
        2
    );
    let given_back = store.run(claimed[0]).await.expect("loads").expect("stored");
    assert_eq!(
        (given_back.status, given_back.instance_id.as_str()),
        (RunStatus::Queued, UNCLAIMED)
    );
    let cancelled = store.run(claimed[2]).await.expect("loads").expect("stored");
    assert_eq!(cancelled.status, RunStatus::Cancelled);

    let again: Vec<i64> = store
        .claim_queued("b", &due_by(at(6), 10))
        .await
        .expect("claims")
        .iter()
        .map(|run| run.id)
        .collect();
    assert_eq!(again, claimed[..2], "another instance claims them");
}

store_suite!(
    exclusive_runs_of_a_job_go_one_at_a_time_whoever_inserts_them,
    a_fire_that_meets_an_exclusive_run_going_is_given_back_early_and_recorded_skipped_at_its_slot,
    a_retry_waits_while_an_exclusive_run_of_its_job_goes_and_then_starts,
    queued_runs_are_claimed_once_each_earliest_first_up_to_the_limit,
    instances_claiming_at_once_take_disjoint_runs,
    a_queued_run_is_cancelled_where_it_waits_until_an_instance_claims_it,
    runs_a_stopping_instance_claimed_go_back_to_the_queue_for_another,
);
