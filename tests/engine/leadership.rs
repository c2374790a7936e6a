//! One leader fires the scheduled runs: a scheduler that does not lead fires none (but
//! runs what it is asked to), and one that takes the lead picks up where the store says
//! the schedule stands.

use batchboard::clock::Clock as _;
use batchboard::scheduler::SchedulerEvent;
use batchboard::store::Trigger;
use tokio::sync::watch;

use crate::support::{Engine, job, t0};

#[tokio::test]
async fn only_the_leader_fires_and_a_new_leader_runs_the_missed_fire_once() {
    let (lease, leading) = watch::channel(None);
    let mut engine = Engine::start_following(
        &[job("tick", "10s", serde_json::json!({"action": "ok"}))],
        leading,
    )
    .await;

    engine.advance(25).await;
    assert!(
        engine.runs("tick").await.is_empty(),
        "a follower fires nothing"
    );
    let manual = engine
        .handle
        .run_now("tick")
        .await
        .expect("a follower runs on demand");
    let (finished, _) = engine.finished("tick").await;
    assert_eq!(finished, manual);

    lease.send_replace(Some(t0()));
    engine.handle.sync().await;
    let next = engine
        .store
        .job_by_name("tick")
        .await
        .expect("loads")
        .expect("exists")
        .next_run_at
        .expect("the leader scheduled the job");
    assert!(next > engine.clock.now(), "taking the lead schedules ahead");
    engine.clock.set(next);
    engine.handle.sync().await;
    engine.finished("tick").await;

    lease.send_replace(None);
    engine.handle.sync().await;
    let before = engine.runs("tick").await.len();
    engine.advance(30).await;
    assert_eq!(
        engine.runs("tick").await.len(),
        before,
        "a leader that stepped down fires no more"
    );

    // Leading again, it finds the slot it missed and runs it once, late.
    lease.send_replace(Some(t0() + chrono::Duration::seconds(60)));
    let started = match engine
        .wait_for(|event| matches!(event, SchedulerEvent::RunStarted { job, .. } if job == "tick"))
        .await
    {
        SchedulerEvent::RunStarted { run_id, .. } => run_id,
        _ => unreachable!("filtered above"),
    };
    let caught_up = engine.run(started).await;
    assert_eq!(
        (caught_up.trigger, caught_up.scheduled_for),
        (Trigger::CatchUp, next + chrono::Duration::seconds(10)),
        "the missed fires run once, from the first missed slot"
    );
    engine.stop().await;
}
