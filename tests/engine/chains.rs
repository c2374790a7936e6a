//! Chains on the real scheduler, with the manual clock: `after` runs a job once its
//! upstream jobs have succeeded, `after_failure` when one failed for good.

use batchboard::clock::Clock as _;
use batchboard::job::JobSettings;
use batchboard::scheduler::{EditError, JobPatch, SchedulerEvent};
use batchboard::store::writer::Writer;
use batchboard::store::{InstanceKind, NewInstance, NewRun, RunStatus, Trigger};
use serde_json::json;

use crate::support::{self, Engine, job, t0};

fn after(name: &str, upstream: &[&str], script: serde_json::Value) -> JobSettings {
    JobSettings {
        name: name.into(),
        handler: "scripted".into(),
        params: Some(script),
        after: Some(upstream.iter().map(|n| (*n).to_owned()).collect()),
        ..JobSettings::default()
    }
}

fn ok() -> serde_json::Value {
    json!({"action": "ok"})
}

#[tokio::test]
async fn a_chain_runs_in_order_each_link_keyed_by_the_end_that_made_it_due() {
    let mut engine = Engine::start(&[
        job("extract", "1h", ok()),
        after("transform", &["extract"], ok()),
        after("load", &["transform"], ok()),
    ])
    .await;
    engine.advance(3600).await;
    let (extract, status) = engine.finished("extract").await;
    assert_eq!(status, RunStatus::Succeeded);
    let (transform, status) = engine.finished("transform").await;
    assert_eq!(status, RunStatus::Succeeded);
    let (load, status) = engine.finished("load").await;
    assert_eq!(status, RunStatus::Succeeded);

    let (extract, transform, load) = (
        engine.run(extract).await,
        engine.run(transform).await,
        engine.run(load).await,
    );
    assert_eq!(transform.trigger, Trigger::Dependency);
    assert_eq!(Some(transform.scheduled_for), extract.finished_at);
    assert_eq!(load.trigger, Trigger::Dependency);
    assert_eq!(Some(load.scheduled_for), transform.finished_at);
    assert!(transform.id > extract.id && load.id > transform.id);

    // The next hour runs the chain once more, not twice.
    engine.advance(3600).await;
    engine.finished("load").await;
    engine.handle.sync().await;
    for name in ["extract", "transform", "load"] {
        assert_eq!(engine.runs(name).await.len(), 2, "{name} ran once an hour");
    }
    engine.stop().await;
}

#[tokio::test]
async fn a_failed_link_stops_the_chain_until_its_retry_succeeds() {
    let transform = JobSettings {
        max_attempts: Some(2),
        backoff: Some("10s".into()),
        max_backoff: Some("10s".into()),
        ..after(
            "transform",
            &["extract"],
            json!({"action": "fail_first", "attempts": 1}),
        )
    };
    let mut engine = Engine::start(&[
        job("extract", "1h", ok()),
        transform,
        after("load", &["transform"], ok()),
    ])
    .await;
    engine.advance(3600).await;
    let (first, status) = engine.finished("transform").await;
    assert_eq!(status, RunStatus::Retrying);
    engine.handle.sync().await;
    assert!(
        engine.runs("load").await.is_empty(),
        "a failure does not run load"
    );

    engine.advance(10).await;
    let (retry, status) = engine.finished("transform").await;
    assert_eq!(status, RunStatus::Succeeded);
    assert_ne!(retry, first);
    let (load, status) = engine.finished("load").await;
    assert_eq!(status, RunStatus::Succeeded);
    let load = engine.run(load).await;
    assert_eq!(
        Some(load.scheduled_for),
        engine.run(retry).await.finished_at
    );
    assert_eq!(engine.runs("load").await.len(), 1);
    engine.stop().await;
}

#[tokio::test]
async fn fan_in_waits_for_every_upstream_job() {
    let mut engine = Engine::start(&[
        job("extract", "1h", ok()),
        job("prices", "2h", ok()),
        after("report", &["extract", "prices"], ok()),
    ])
    .await;
    engine.advance(3600).await;
    engine.finished("extract").await;
    engine.handle.sync().await;
    assert!(engine.runs("report").await.is_empty(), "prices has not run");

    engine.advance(3600).await;
    let (report, status) = engine.finished("report").await;
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(engine.run(report).await.trigger, Trigger::Dependency);
    engine.handle.sync().await;
    assert_eq!(
        engine.runs("report").await.len(),
        1,
        "one run for the two ends"
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_failure_branch_runs_when_its_upstream_run_ends_for_good_and_not_on_success() {
    let cleanup = JobSettings {
        name: "cleanup".into(),
        handler: "scripted".into(),
        params: Some(ok()),
        after_failure: Some(vec!["extract".into()]),
        ..JobSettings::default()
    };
    let extract = JobSettings {
        max_attempts: Some(1),
        ..job("extract", "1h", json!({"action": "fail"}))
    };
    let mut engine = Engine::start(&[extract, cleanup, job("fine", "1h", ok())]).await;
    engine.advance(3600).await;
    let (failed, status) = engine.finished("extract").await;
    assert_eq!(status, RunStatus::Dead);
    let (cleanup, status) = engine.finished("cleanup").await;
    assert_eq!(status, RunStatus::Succeeded);
    let cleanup = engine.run(cleanup).await;
    assert_eq!(cleanup.trigger, Trigger::Dependency);
    assert_eq!(
        Some(cleanup.scheduled_for),
        engine.run(failed).await.finished_at
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_job_with_a_schedule_and_upstream_jobs_runs_for_both_without_overlap() {
    // report fires every hour on its own and after extract; both are due at the same
    // slot. report's scheduled run takes 30 s; extract ends after 10 s, after report
    // started, so report runs again by dependency once its run ends (not beside it:
    // forbid), and only once.
    let report = JobSettings {
        every: Some("1h".into()),
        ..after(
            "report",
            &["extract"],
            json!({"action": "sleep", "secs": 30}),
        )
    };
    let extract = job("extract", "1h", json!({"action": "sleep", "secs": 10}));
    let mut engine = Engine::start(&[report, extract]).await;
    engine.advance(3600).await;
    let scheduled = engine.started("report").await;
    let extract_run = engine.runs("extract").await[0].id;
    engine.until_asleep(scheduled).await;
    engine.until_asleep(extract_run).await;
    engine.advance(10).await;
    engine.finished("extract").await;
    engine.handle.sync().await;
    assert_eq!(
        engine.runs("report").await.len(),
        1,
        "no second run beside the first"
    );

    engine.advance(20).await;
    let (ended, _) = engine.finished("report").await;
    assert_eq!(ended, scheduled);
    let by_dependency = engine.started("report").await;
    engine.until_asleep(by_dependency).await;
    engine.advance(30).await;
    engine.finished("report").await;
    engine.handle.sync().await;
    let runs = engine.runs("report").await;
    let triggers: Vec<Trigger> = runs.iter().map(|run| run.trigger).collect();
    assert_eq!(triggers, [Trigger::Schedule, Trigger::Dependency]);
    assert!(runs[1].started_at >= runs[0].finished_at, "{runs:#?}");
    assert_eq!(
        Some(runs[1].scheduled_for),
        engine.run(extract_run).await.finished_at,
        "keyed by extract's end"
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_run_that_started_after_its_upstream_jobs_ended_used_their_work() {
    // report's scheduled run starts after extract succeeded: it already works on what
    // extract made, so no run by dependency follows it.
    let report = JobSettings {
        every: Some("1h".into()),
        ..after("report", &["extract"], ok())
    };
    let extract = JobSettings {
        every: Some("30m".into()),
        ..job("extract", "30m", ok())
    };
    let mut engine = Engine::start(&[report, extract]).await;
    engine.advance(1800).await;
    engine.finished("extract").await;
    engine.finished("report").await;
    engine.advance(1800).await;
    let mut ended = Vec::new();
    while ended.len() < 2 {
        if let SchedulerEvent::RunFinished { job, .. } = engine
            .wait_for(|event| matches!(event, SchedulerEvent::RunFinished { .. }))
            .await
        {
            ended.push(job);
        }
    }
    engine.handle.sync().await;
    let triggers: Vec<Trigger> = engine
        .runs("report")
        .await
        .iter()
        .map(|run| run.trigger)
        .collect();
    assert_eq!(
        triggers,
        [Trigger::Dependency, Trigger::Schedule],
        "at 30 min by extract; at 1 h on schedule, and not again: {ended:?}"
    );
    assert_eq!(
        t0() + chrono::Duration::hours(1),
        engine.runs("report").await[1].scheduled_for
    );
    engine.stop().await;
}

#[tokio::test]
async fn an_edit_that_adds_an_upstream_job_takes_effect_at_once_and_one_that_loops_is_refused() {
    let mut engine = Engine::start(&[job("extract", "1h", ok()), job("load", "1d", ok())]).await;
    let record = engine
        .store
        .job_by_name("load")
        .await
        .expect("reads")
        .expect("exists");
    let patch = JobPatch::default()
        .with("after", json!(["extract"]))
        .expect("a setting");
    engine
        .handle
        .edit_job("load", patch, record.version, "olga")
        .await
        .expect("saved");

    let extract = engine
        .store
        .job_by_name("extract")
        .await
        .expect("reads")
        .expect("exists");
    let looping = JobPatch::default()
        .with("after", json!(["load"]))
        .expect("a setting");
    let refused = engine
        .handle
        .edit_job("extract", looping, extract.version, "olga")
        .await
        .expect_err("a loop is refused");
    match refused {
        EditError::Invalid(error) => assert_eq!(
            error.fields.get("after").map(String::as_str),
            Some("the chain extract → load → extract leads back to where it started")
        ),
        other => panic!("not refused as invalid: {other:?}"),
    }

    engine.advance(3600).await;
    engine.finished("extract").await;
    let (load, status) = engine.finished("load").await;
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(engine.run(load).await.trigger, Trigger::Dependency);
    engine.stop().await;
}

#[tokio::test]
async fn a_failure_branch_runs_when_an_instance_that_is_gone_leaves_its_upstream_run_cut_off() {
    let extract = JobSettings {
        max_attempts: Some(1),
        ..job("extract", "1d", ok())
    };
    let cleanup = JobSettings {
        name: "cleanup".into(),
        handler: "scripted".into(),
        params: Some(ok()),
        after_failure: Some(vec!["extract".into()]),
        ..JobSettings::default()
    };
    let mut engine = Engine::start(&[extract, cleanup]).await;
    let ghost = NewInstance {
        id: "ghost".into(),
        kind: InstanceKind::Run,
        host: "elsewhere".into(),
        pid: 7,
    };
    engine
        .store
        .register_instance(&ghost, t0())
        .await
        .expect("the other instance registers");
    let job_id = engine
        .store
        .job_by_name("extract")
        .await
        .expect("loads")
        .expect("exists")
        .id;
    let (writer, writer_task) = Writer::start(engine.store.clone());
    let orphan = writer
        .insert_run(NewRun {
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
            instance_id: "ghost".into(),
            exclusive: false,
        })
        .await
        .expect("its run is written")
        .run_id()
        .expect("it is not exclusive");
    drop(writer);
    writer_task.await.expect("the writer ends");

    // The ghost's lease runs out; its run is cut off for good (one attempt allowed).
    engine.advance(10).await;
    engine.advance(10).await;
    let (cleanup, status) = engine.finished("cleanup").await;
    assert_eq!(status, RunStatus::Succeeded);
    let cut_off = engine.run(orphan).await;
    assert!(
        cut_off.status.is_final() && cut_off.retry_at.is_none(),
        "{cut_off:?}"
    );
    let cleanup = engine.run(cleanup).await;
    assert_eq!(cleanup.trigger, Trigger::Dependency);
    assert_eq!(Some(cleanup.scheduled_for), cut_off.finished_at);
    engine.stop().await;
}

#[tokio::test]
async fn a_failure_branch_runs_when_start_up_finds_its_upstream_run_cut_off() {
    let extract = JobSettings {
        max_attempts: Some(1),
        ..job("extract", "1d", ok())
    };
    let cleanup = JobSettings {
        name: "cleanup".into(),
        handler: "scripted".into(),
        params: Some(ok()),
        after_failure: Some(vec!["extract".into()]),
        ..JobSettings::default()
    };
    let jobs = [extract, cleanup];
    let engine = Engine::start(&jobs).await;
    let job_id = engine
        .store
        .job_by_name("extract")
        .await
        .expect("loads")
        .expect("exists")
        .id;
    let store = engine.store.clone();
    let (dir, clock) = engine.stop().await;
    // A process that died mid-run left this behind, and never registered again.
    let (writer, writer_task) = Writer::start(store.clone());
    let orphan = writer
        .insert_run(NewRun {
            job_id,
            trigger: Trigger::Manual,
            attempt: 1,
            first_run_id: None,
            status: RunStatus::Running,
            scheduled_for: clock.now(),
            started_at: clock.now(),
            finished_at: None,
            error_kind: None,
            error_message: None,
            instance_id: "died-mid-run".into(),
            exclusive: false,
        })
        .await
        .expect("its run is written")
        .run_id()
        .expect("it is not exclusive");
    drop(writer);
    writer_task.await.expect("the writer ends");

    let mut engine = Engine::boot(dir, clock, &jobs, support::config()).await;
    let (cleanup, status) = engine.finished("cleanup").await;
    assert_eq!(status, RunStatus::Succeeded);
    // Cut off on its only attempt: dead, with no retry.
    let cut_off = engine.run(orphan).await;
    assert_eq!(cut_off.status, RunStatus::Dead);
    assert!(cut_off.retry_at.is_none(), "{cut_off:?}");
    let cleanup = engine.run(cleanup).await;
    assert_eq!(cleanup.trigger, Trigger::Dependency);
    assert_eq!(Some(cleanup.scheduled_for), cut_off.finished_at);
    engine.stop().await;
}
