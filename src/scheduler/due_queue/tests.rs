use chrono::TimeZone;

use super::*;

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + seconds, 0)
        .single()
        .expect("a valid time")
}

fn retry(job_id: i64, failed_run_id: i64, retry_at: DateTime<Utc>) -> RetryDue {
    RetryDue {
        job_id,
        failed_run_id,
        retry_at,
        next_attempt: 2,
        first_run_id: failed_run_id,
    }
}

fn drain(queue: &mut DueQueue, now: DateTime<Utc>) -> Vec<DueEntry> {
    std::iter::from_fn(|| queue.pop_due(now)).collect()
}

fn fire_job(entry: DueEntry) -> i64 {
    match entry {
        DueEntry::Fire(fire) => fire.job_id,
        DueEntry::Retry(due) => panic!("expected a fire, got a retry {due:?}"),
    }
}

#[test]
fn an_empty_queue_has_nothing_due_and_no_next_time() {
    let mut queue = DueQueue::default();
    assert_eq!(queue.next_at(), None);
    assert_eq!(queue.pop_due(at(1_000)), None);
}

#[test]
fn fires_come_out_earliest_first_whatever_order_they_were_queued_in() {
    let mut queue = DueQueue::default();
    for (job_id, slot) in [(1, 30), (2, 10), (3, 20)] {
        queue.push_fire(job_id, at(slot), false, Duration::ZERO, || 0.0);
    }
    let jobs: Vec<i64> = drain(&mut queue, at(60))
        .into_iter()
        .map(fire_job)
        .collect();
    assert_eq!(jobs, [2, 3, 1]);
}

#[test]
fn fires_due_at_the_same_moment_come_out_in_the_order_they_were_queued() {
    let mut queue = DueQueue::default();
    for job_id in [5, 1, 9, 3] {
        queue.push_fire(job_id, at(10), false, Duration::ZERO, || 0.0);
    }
    let jobs: Vec<i64> = drain(&mut queue, at(10))
        .into_iter()
        .map(fire_job)
        .collect();
    assert_eq!(jobs, [5, 1, 9, 3]);
}

#[test]
fn nothing_comes_out_before_its_time_and_the_next_time_says_when() {
    let mut queue = DueQueue::default();
    queue.push_fire(1, at(10), false, Duration::ZERO, || 0.0);
    let due = at(10) - LOOKAHEAD;
    assert_eq!(queue.next_at(), Some(due));
    assert_eq!(queue.pop_due(due - chrono::Duration::microseconds(1)), None);
    assert!(queue.pop_due(due).is_some());
    assert_eq!(queue.next_at(), None);
}

#[test]
fn a_scheduled_fire_is_due_one_lookahead_before_its_slot_and_marked_early() {
    let mut queue = DueQueue::default();
    queue.push_fire(7, at(10), false, Duration::ZERO, || 0.0);
    assert_eq!(
        queue.pop_due(at(10) - LOOKAHEAD),
        Some(DueEntry::Fire(FireDue {
            job_id: 7,
            nominal: at(10),
            start_at: at(10),
            catch_up: false,
            early: true,
        }))
    );
}

#[test]
fn jitter_moves_the_start_and_the_lookahead_with_it_but_not_the_slot() {
    let mut queue = DueQueue::default();
    queue.push_fire(7, at(10), false, Duration::from_secs(4), || 0.5);
    let start_at = at(12);
    assert_eq!(queue.next_at(), Some(start_at - LOOKAHEAD));
    let Some(DueEntry::Fire(fire)) = queue.pop_due(start_at) else {
        panic!("the fire is due");
    };
    assert_eq!((fire.nominal, fire.start_at), (at(10), start_at));
}

#[test]
fn a_catch_up_fire_is_due_at_its_slot_without_jitter_or_lookahead() {
    let mut queue = DueQueue::default();
    queue.push_fire(7, at(10), true, Duration::from_secs(4), || 0.9);
    assert_eq!(queue.next_at(), Some(at(10)));
    assert_eq!(
        queue.pop_due(at(10)),
        Some(DueEntry::Fire(FireDue {
            job_id: 7,
            nominal: at(10),
            start_at: at(10),
            catch_up: true,
            early: false,
        }))
    );
}

#[test]
fn an_early_fire_queued_again_is_due_at_its_start_and_no_longer_early() {
    let mut queue = DueQueue::default();
    queue.push_fire(7, at(10), false, Duration::from_secs(2), || 0.5);
    let Some(DueEntry::Fire(early)) = queue.pop_due(at(20)) else {
        panic!("the fire is due");
    };
    queue.push_at_start(early);
    assert_eq!(queue.next_at(), Some(at(11)));
    assert_eq!(
        queue.pop_due(at(11)),
        Some(DueEntry::Fire(FireDue {
            early: false,
            ..early
        }))
    );
}

#[test]
fn stale_entries_stay_queued_and_come_out_for_the_caller_to_drop() {
    // A job rescheduled from slot 10 to slot 20: both entries are in the queue, and the
    // scheduler tells the stale one by its slot no longer being the job's next fire.
    let mut queue = DueQueue::default();
    queue.push_fire(1, at(10), false, Duration::ZERO, || 0.0);
    queue.push_fire(1, at(20), false, Duration::ZERO, || 0.0);
    let slots: Vec<DateTime<Utc>> = drain(&mut queue, at(30))
        .into_iter()
        .map(|entry| match entry {
            DueEntry::Fire(fire) => fire.nominal,
            DueEntry::Retry(due) => panic!("expected a fire, got a retry {due:?}"),
        })
        .collect();
    assert_eq!(slots, [at(10), at(20)]);
}

#[test]
fn retries_are_keyed_by_their_time_and_come_back_whole() {
    let mut queue = DueQueue::default();
    let late = retry(1, 100, at(30));
    let soon = RetryDue {
        next_attempt: 4,
        first_run_id: 90,
        ..retry(2, 200, at(5))
    };
    queue.push_retry(late);
    queue.push_retry(soon);
    assert_eq!(queue.next_at(), Some(at(5)));
    assert_eq!(queue.pop_due(at(10)), Some(DueEntry::Retry(soon)));
    assert_eq!(queue.pop_due(at(10)), None);
    assert_eq!(queue.pop_due(at(30)), Some(DueEntry::Retry(late)));
}

#[test]
fn retries_and_fires_share_one_order_by_due_time() {
    let mut queue = DueQueue::default();
    queue.push_retry(retry(1, 100, at(10)));
    queue.push_fire(2, at(5), false, Duration::ZERO, || 0.0);
    queue.push_fire(3, at(15), true, Duration::ZERO, || 0.0);
    let order: Vec<&str> = drain(&mut queue, at(60))
        .into_iter()
        .map(|entry| match entry {
            DueEntry::Fire(fire) if fire.catch_up => "catch-up",
            DueEntry::Fire(_) => "fire",
            DueEntry::Retry(_) => "retry",
        })
        .collect();
    assert_eq!(order, ["fire", "retry", "catch-up"]);
}

#[test]
fn an_extra_lead_brings_early_fires_forward_and_leaves_the_rest_at_their_time() {
    let mut queue = DueQueue::default();
    let half_second = chrono::Duration::milliseconds(500);
    queue.push_retry(retry(1, 100, at(10)));
    queue.push_fire(2, at(10), false, Duration::ZERO, || 0.0);
    queue.push_fire(3, at(10), true, Duration::ZERO, || 0.0);
    queue.set_extra_lead(half_second);

    let early = at(10) - LOOKAHEAD - half_second;
    assert_eq!(queue.next_at(), Some(early));
    assert_eq!(queue.pop_due(early).map(fire_job), Some(2));
    // The retry and the catch-up keep to their time.
    assert_eq!(queue.next_at(), Some(at(10)));
    assert_eq!(queue.pop_due(at(10) - LOOKAHEAD), None);
    assert_eq!(drain(&mut queue, at(10)).len(), 2);
}

#[test]
fn ties_between_an_early_fire_and_a_retry_come_out_in_the_order_queued() {
    let mut queue = DueQueue::default();
    queue.push_retry(retry(1, 100, at(10) - LOOKAHEAD));
    queue.push_fire(2, at(10), false, Duration::ZERO, || 0.0);
    let order: Vec<bool> = drain(&mut queue, at(10))
        .into_iter()
        .map(|entry| matches!(entry, DueEntry::Retry(_)))
        .collect();
    assert_eq!(order, [true, false]);
}

#[test]
fn a_fire_put_back_without_the_extra_lead_comes_out_at_the_plain_look_ahead() {
    let mut queue = DueQueue::default();
    let extra = chrono::Duration::milliseconds(500);
    queue.set_extra_lead(extra);
    queue.push_fire(1, at(10), false, Duration::ZERO, || 0.0);
    let Some(DueEntry::Fire(fire)) = queue.pop_due(at(10) - LOOKAHEAD - extra) else {
        panic!("the early fire is due with the extra lead");
    };
    queue.push_without_extra_lead(fire);
    assert_eq!(queue.next_at(), Some(at(10) - LOOKAHEAD));
    assert_eq!(queue.pop_due(at(10) - LOOKAHEAD - extra / 2), None);
    // Still early: at the plain look-ahead it is decided as one again.
    assert_eq!(
        queue.pop_due(at(10) - LOOKAHEAD),
        Some(DueEntry::Fire(fire))
    );
    assert!(fire.early);
}
