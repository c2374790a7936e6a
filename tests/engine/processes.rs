//! Real `batchboard serve` processes on one PostgreSQL database, and what their run rows
//! must show afterwards whatever happened to them: every fire of an every-second
//! schedule started once, nothing left running, no two runs of a job overlapping.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use batchboard::store::{RunFilter, RunRecord, RunStatus, SharedStore, Trigger};
use chrono::{DateTime, Utc};

/// Settings for `jobs` jobs `job-000`, … firing every second, each run taking 300 ms;
/// `scheduler` is added to the `[scheduler]` table.
pub fn every_second_jobs(jobs: usize, scheduler: &str) -> String {
    let mut text = format!("[scheduler]\nshutdown_grace = \"10s\"\n{scheduler}\n");
    for index in 0..jobs {
        text.push_str(&format!(
            "\n[[jobs]]\nname = \"job-{index:03}\"\nhandler = \"demo_inventory\"\n\
             every = \"1s\"\nmax_attempts = 3\nbackoff = \"1s\"\nmax_backoff = \"1s\"\n\
             params = {{ items = 3, item_delay_ms = 100, fail_chance = 0 }}\n"
        ));
    }
    text
}

/// Starts `batchboard serve` with the settings in `dir` on the database at `url`.
pub fn serve(dir: &Path, url: &str) -> Child {
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

/// Stops a server with SIGTERM and checks that it exits cleanly.
pub async fn stop(mut child: Child) {
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

pub async fn all_runs(store: &SharedStore) -> Vec<RunRecord> {
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
pub async fn instances_alive(store: &SharedStore, live: usize) -> BTreeMap<i64, String> {
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

/// No run is left running or claimed. The one exception: fires that the leader queued
/// for any instance ahead of their slot just before the instances stopped (`stopping`),
/// which no instance was left to claim. They wait, queued, for the next one to start.
pub fn nothing_left_running(runs: &[RunRecord], stopping: DateTime<Utc>) {
    let left: Vec<&RunRecord> = runs
        .iter()
        .filter(|run| matches!(run.status, RunStatus::Running | RunStatus::Queued))
        .filter(|run| {
            let queued_at_the_end = run.status == RunStatus::Queued
                && run.instance_id == batchboard::store::UNCLAIMED
                && run.scheduled_for >= stopping - chrono::Duration::seconds(1);
            !queued_at_the_end
        })
        .collect();
    assert!(left.is_empty(), "no row is left running: {left:#?}");
}

/// At most one start per fire, and none lost, for `jobs` jobs firing every second: each
/// job's first attempts are one second apart on its grid, except where a fire was
/// decided late (after a catch-up: the one late run of the slots missed while no
/// instance led; or a fire that a loaded machine decided more than a period late): the
/// misfire policy runs such a fire once for the slots it was late for, and the job goes
/// on from the next slot of its grid after the moment it fired, which its run's start
/// is not before.
pub fn each_fire_once(runs: &[RunRecord], jobs: usize) {
    let mut firsts: BTreeMap<&str, Vec<&RunRecord>> = BTreeMap::new();
    for run in runs {
        if matches!(run.trigger, Trigger::Schedule | Trigger::CatchUp) && run.attempt == 1 {
            firsts.entry(&run.job_name).or_default().push(run);
        }
    }
    assert_eq!(firsts.len(), jobs, "every job fired");
    let second = chrono::Duration::seconds(1);
    for (job, firsts) in &mut firsts {
        firsts.sort_by_key(|run| run.scheduled_for);
        let unique: BTreeSet<DateTime<Utc>> = firsts.iter().map(|run| run.scheduled_for).collect();
        assert_eq!(unique.len(), firsts.len(), "{job}: a fire started twice");
        for pair in firsts.windows(2) {
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
                runs_around(runs, job, pair[0].scheduled_for, pair[1].scheduled_for)
            );
        }
        let catch_ups = firsts
            .iter()
            .filter(|run| run.trigger == Trigger::CatchUp)
            .count();
        assert!(
            catch_ups <= 1,
            "{job}: {catch_ups} catch-ups for one failover"
        );
    }
}

/// Every instance executes: at least `instances` of them ran scheduled fires, whoever
/// led.
pub fn every_instance_ran(runs: &[RunRecord], instances: usize) {
    let mut ran_by: BTreeMap<&str, usize> = BTreeMap::new();
    for run in runs {
        if run.trigger == Trigger::Schedule && run.status == RunStatus::Succeeded {
            *ran_by.entry(&run.instance_id).or_default() += 1;
        }
    }
    assert!(
        ran_by.len() >= instances,
        "every instance claims scheduled runs: {ran_by:?}"
    );
}

/// `forbid` (the default) holds across instances: no two runs of a job overlap.
pub fn no_overlap(runs: &[RunRecord]) {
    type Span = (DateTime<Utc>, DateTime<Utc>);
    let mut spans: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
    for run in runs {
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
