//! Operator edits through the scheduler: validated, saved under a version check,
//! recorded, and applied at once.

use batchboard::scheduler::{EditError, JobPatch};
use batchboard::store::{ChangeFilter, JobChangeRecord, JobRecord};
use chrono::Duration;

use crate::support::{Engine, job, t0};

async fn load(engine: &Engine, name: &str) -> JobRecord {
    engine
        .store
        .job_by_name(name)
        .await
        .expect("the job loads")
        .expect("the job exists")
}

async fn history(engine: &Engine) -> Vec<JobChangeRecord> {
    engine
        .store
        .job_changes(&ChangeFilter {
            limit: 100,
            ..ChangeFilter::default()
        })
        .await
        .expect("the history loads")
}

/// A patch setting each of `settings` (name, value).
fn patch<const N: usize>(settings: [(&str, serde_json::Value); N]) -> JobPatch {
    settings
        .into_iter()
        .fold(JobPatch::default(), |patch, (name, value)| {
            patch.with(name, value).expect("a setting")
        })
}

fn every(value: &str) -> JobPatch {
    patch([("every", value.into())])
}

fn pausing(mut patch: JobPatch, paused: bool) -> JobPatch {
    patch.paused = Some(paused);
    patch
}

#[tokio::test]
async fn a_valid_interval_change_moves_the_next_fire_at_once_and_is_recorded() {
    let mut engine = Engine::start(&[job("sync", "1h", serde_json::json!({"action": "ok"}))]).await;
    let before = load(&engine, "sync").await;
    assert_eq!(before.next_run_at, Some(t0() + Duration::hours(1)));

    engine.advance(60).await;
    let saved = engine
        .handle
        .edit_job("sync", every("5m"), before.version, "ada")
        .await
        .expect("the edit is accepted");
    let expected_next = t0() + Duration::seconds(60) + Duration::minutes(5);
    assert_eq!(saved.next_run_at, Some(expected_next));
    assert_eq!(saved.version, before.version + 1);
    assert_eq!(load(&engine, "sync").await.next_run_at, Some(expected_next));

    let changes = history(&engine).await;
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].field.as_str(), changes[0].actor.as_str()),
        ("every", "ada")
    );
    assert_eq!(changes[0].old_value, Some("1h".into()));
    assert_eq!(changes[0].new_value, Some("5m".into()));

    engine.advance(5 * 60).await;
    engine.finished("sync").await;
    engine.stop().await;
}

/// Runs `sql` on the engine's database file beside the store's own pool, as a second
/// process would.
async fn execute_on_the_database(engine: &Engine, sql: &str) {
    let url = format!("sqlite://{}", engine.dir.path().join("test.db").display());
    let pool = sqlx::SqlitePool::connect(&url)
        .await
        .expect("the database opens");
    sqlx::query(sql)
        .execute(&pool)
        .await
        .expect("the statement runs");
    pool.close().await;
}

#[tokio::test]
async fn a_schedule_save_that_fails_saves_nothing_and_the_job_keeps_its_old_schedule() {
    let mut engine = Engine::start(&[job("sync", "1h", serde_json::json!({"action": "ok"}))]).await;
    let before = load(&engine, "sync").await;
    // Refuses the write of the next fire: saved in a statement of its own, the change
    // would already be committed by then, with the job left unscheduled.
    execute_on_the_database(
        &engine,
        "CREATE TRIGGER refuse_next_fire BEFORE UPDATE OF next_run_at ON jobs \
         BEGIN SELECT RAISE(ABORT, 'next_run_at is read-only'); END",
    )
    .await;
    let refused = engine
        .handle
        .edit_job("sync", every("5m"), before.version, "ada")
        .await;
    assert!(matches!(refused, Err(EditError::Store(_))), "{refused:?}");
    execute_on_the_database(&engine, "DROP TRIGGER refuse_next_fire").await;

    let after = load(&engine, "sync").await;
    assert_eq!(
        after, before,
        "overrides, version and next fire as they were"
    );
    assert!(history(&engine).await.is_empty());

    engine.advance(5 * 60).await;
    engine.advance(55 * 60).await;
    engine.finished("sync").await;
    let runs = engine.runs("sync").await;
    let fired_for: Vec<_> = runs.iter().map(|run| run.scheduled_for).collect();
    assert_eq!(
        fired_for,
        [t0() + Duration::hours(1)],
        "the refused interval never took effect"
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_change_of_settings_and_paused_together_is_one_version_and_one_save() {
    let engine = Engine::start(&[job("sync", "1h", serde_json::json!({"action": "ok"}))]).await;
    let before = load(&engine, "sync").await;
    let paused = engine
        .handle
        .edit_job("sync", pausing(every("5m"), true), before.version, "ada")
        .await
        .expect("the edit is accepted");
    assert_eq!(paused.version, before.version + 1);
    assert!(paused.paused);
    assert_eq!(paused.next_run_at, None, "a paused job is not scheduled");
    assert_eq!(load(&engine, "sync").await, paused);
    let fields: Vec<_> = history(&engine)
        .await
        .iter()
        .map(|c| (c.field.clone(), c.new_value.clone()))
        .collect();
    assert_eq!(
        fields,
        [
            ("paused".to_owned(), Some(true.into())),
            ("every".to_owned(), Some("5m".into())),
        ]
    );

    let resumed = engine
        .handle
        .edit_job(
            "sync",
            pausing(JobPatch::default(), false),
            paused.version,
            "ada",
        )
        .await
        .expect("the resume is accepted");
    assert_eq!(resumed.version, paused.version + 1);
    assert_eq!(resumed.next_run_at, Some(t0() + Duration::minutes(5)));
    engine.stop().await;
}

#[tokio::test]
async fn an_invalid_change_is_refused_with_the_field_named_and_nothing_changes() {
    let engine = Engine::start(&[job("sync", "1h", serde_json::json!({"action": "ok"}))]).await;
    let before = load(&engine, "sync").await;
    let cases = [
        (every("0s"), "every"),
        (patch([("cron", "61 * * * *".into())]), "cron"),
        (
            patch([
                ("cron", "0 3 * * *".into()),
                ("timezone", "Europe/Atlantis".into()),
            ]),
            "timezone",
        ),
        (patch([("jitter", "2h".into())]), "jitter"),
    ];
    for (patch, field) in cases {
        match engine
            .handle
            .edit_job("sync", patch, before.version, "ada")
            .await
        {
            Err(EditError::Invalid(error)) => {
                assert!(error.fields.contains_key(field), "{field}: {error}");
            }
            other => panic!("{field}: expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(load(&engine, "sync").await, before, "the job is untouched");
    assert!(history(&engine).await.is_empty());
    engine.stop().await;
}

#[tokio::test]
async fn an_edit_on_a_stale_version_is_a_conflict_and_nothing_changes() {
    let engine = Engine::start(&[job("sync", "1h", serde_json::json!({"action": "ok"}))]).await;
    let loaded = load(&engine, "sync").await;
    engine
        .handle
        .edit_job("sync", every("10m"), loaded.version, "ada")
        .await
        .expect("the first save wins");
    let after_first = load(&engine, "sync").await;
    let second = engine
        .handle
        .edit_job("sync", every("20m"), loaded.version, "grace")
        .await;
    assert_eq!(second, Err(EditError::Conflict));
    assert_eq!(load(&engine, "sync").await, after_first);
    assert_eq!(history(&engine).await.len(), 1);
    engine.stop().await;
}

#[tokio::test]
async fn a_change_that_changes_nothing_saves_nothing() {
    let engine = Engine::start(&[job("sync", "1h", serde_json::json!({"action": "ok"}))]).await;
    let before = load(&engine, "sync").await;
    let same = engine
        .handle
        .edit_job("sync", every("1h"), before.version, "ada")
        .await
        .expect("accepted");
    assert_eq!(same, before);
    assert!(history(&engine).await.is_empty());
    engine.stop().await;
}

#[tokio::test]
async fn reset_restores_the_file_default_and_is_recorded() {
    let engine = Engine::start(&[job("sync", "1h", serde_json::json!({"action": "ok"}))]).await;
    let loaded = load(&engine, "sync").await;
    let edited = engine
        .handle
        .edit_job(
            "sync",
            patch([
                ("cron", "30 2 * * *".into()),
                ("timezone", "Europe/Berlin".into()),
                ("max_attempts", 5.into()),
            ]),
            loaded.version,
            "ada",
        )
        .await
        .expect("the edit is accepted");
    assert!(edited.overrides.contains_key("cron"));

    let schedule_reset = engine
        .handle
        .reset_job("sync", Some("cron"), edited.version, "grace")
        .await
        .expect("the schedule resets");
    assert_eq!(
        schedule_reset.overrides.len(),
        1,
        "only max_attempts is left"
    );
    assert_eq!(schedule_reset.next_run_at, Some(t0() + Duration::hours(1)));

    let all_reset = engine
        .handle
        .reset_job("sync", None, schedule_reset.version, "grace")
        .await
        .expect("everything resets");
    assert!(all_reset.overrides.is_empty());
    let effective = all_reset.effective_settings().expect("valid");
    assert_eq!(effective.max_attempts, None);

    let changes = history(&engine).await;
    let fields: Vec<_> = changes
        .iter()
        .map(|c| (c.actor.as_str(), c.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("grace", "max_attempts"),
            ("grace", "timezone"),
            ("grace", "cron"),
            ("grace", "every"),
            ("ada", "max_attempts"),
            ("ada", "timezone"),
            ("ada", "cron"),
            ("ada", "every"),
        ]
    );
    engine.stop().await;
}

#[tokio::test]
async fn pause_and_resume_are_recorded_with_their_actor() {
    let engine = Engine::start(&[job("sync", "1h", serde_json::json!({"action": "ok"}))]).await;
    engine.handle.pause_as("sync", "ada").await.expect("pauses");
    engine.handle.resume("sync").await.expect("resumes");
    let changes = history(&engine).await;
    let rows: Vec<_> = changes
        .iter()
        .map(|c| (c.actor.as_str(), c.field.as_str(), c.new_value.clone()))
        .collect();
    assert_eq!(
        rows,
        [
            ("system", "paused", Some(false.into())),
            ("ada", "paused", Some(true.into())),
        ]
    );
    engine.stop().await;
}
