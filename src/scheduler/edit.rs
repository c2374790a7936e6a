//! Operator edits of a job's settings, shared by the console and the JSON API.
//!
//! An edit becomes new operator overrides on top of the file defaults. It is checked as a
//! whole (the merged settings must make a valid [`JobSpec`] whose handler accepts its
//! params), saved with a compare-and-swap on the job's `version` together with one
//! history row per changed field and the next fire, in one transaction, and then applied
//! by the scheduler's memory once the save succeeded.
//!
//! The planning here is pure; the scheduler task runs it (see `Core::edit`) so that an
//! edit and the rescheduling it causes happen in order with every other command.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::job::{JobSettings, JobSpec, Registry, SETTINGS, Setting, SettingsError, settings_json};
use crate::store::{JobChange, JobRecord};

/// What [`JobPatch::set`] says of a name that is not in [`SETTINGS`].
pub const NOT_A_SETTING: &str = "this is not a setting that can be changed";

/// A change to some of a job's settings (see [`SETTINGS`]); a setting it does not name
/// stays as it is, and so does one it sets to the value in force.
///
/// Setting `every` switches the job to an interval (dropping its cron line and time
/// zone); setting `cron` switches it to a cron line, in `timezone` if given, else in the
/// zone it already had (UTC for a job that had an interval).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobPatch {
    /// New values by setting name, each of its setting's kind.
    values: BTreeMap<&'static str, Value>,
    /// Pauses or resumes the job in the same change (one version, one save); not a
    /// setting, so never an override.
    pub paused: Option<bool>,
}

impl JobPatch {
    /// Sets the setting `name` to `value` (text is trimmed).
    ///
    /// # Errors
    /// A sentence, when `name` is not a setting ([`NOT_A_SETTING`]) or `value` is not
    /// of its kind.
    pub fn set(&mut self, name: &str, value: Value) -> Result<(), String> {
        let setting = Setting::named(name).ok_or_else(|| NOT_A_SETTING.to_owned())?;
        self.values.insert(setting.name, setting.from_json(value)?);
        Ok(())
    }

    /// `self` with `name` set to `value`, to build a patch in one expression.
    ///
    /// # Errors
    /// As [`JobPatch::set`].
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Result<Self, String> {
        self.set(name, value.into())?;
        Ok(self)
    }

    /// The value the patch gives `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// Every setting the patch gives a value, by name.
    pub fn values(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        self.values.iter().map(|(name, value)| (*name, value))
    }
}

fn is_schedule(field: &str) -> bool {
    Setting::named(field).is_some_and(|setting| setting.schedule)
}

fn schedule_fields() -> impl Iterator<Item = &'static str> {
    SETTINGS
        .iter()
        .filter(|setting| setting.schedule)
        .map(|setting| setting.name)
}

/// Why an edit was refused. Nothing was saved in any case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("there is no job named {0:?}")]
    UnknownJob(String),
    #[error("job {0:?} was removed from the settings file and can no longer be edited")]
    Removed(String),
    /// The merged settings are invalid; each bad field has a sentence.
    #[error("the settings are invalid: {0}")]
    Invalid(SettingsError),
    /// The job's `version` moved on since the editor loaded it.
    #[error(
        "this job was changed by someone else since you loaded it; reload to see the current settings"
    )]
    Conflict,
    #[error("the scheduler has stopped")]
    Stopped,
    #[error("the database could not be written: {0}")]
    Store(String),
}

/// What an edit does: change some fields, or drop overrides to go back to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Edit {
    // Boxed: a patch is a dozen strings, and edits travel inside the scheduler's
    // command enum, which should stay small.
    Patch(Box<JobPatch>),
    /// Drop the override of one field (`None`: of every field).
    Reset(Option<String>),
}

/// The overrides and paused state to save and the history rows that go with them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EditPlan {
    pub overrides: serde_json::Map<String, serde_json::Value>,
    pub paused: bool,
    pub changes: Vec<JobChange>,
}

impl EditPlan {
    /// `record` as it stands once the plan is saved (version and times aside).
    pub(crate) fn applied_to(&self, record: &JobRecord) -> JobRecord {
        JobRecord {
            overrides: self.overrides.clone(),
            paused: self.paused,
            ..record.clone()
        }
    }
}

/// Works out what `edit` does to `record`: `Ok(None)` when nothing would change.
///
/// # Errors
/// [`EditError::Invalid`] when the result is not a valid, runnable job.
pub(crate) fn plan(
    record: &JobRecord,
    edit: &Edit,
    actor: &str,
    registry: &Registry,
) -> Result<Option<EditPlan>, EditError> {
    let before = effective(record)?;
    let overrides = match edit {
        Edit::Patch(patch) => patched(record, &before, patch)?,
        Edit::Reset(field) => reset(record, field.as_deref())?,
    };
    let paused = match edit {
        Edit::Patch(patch) => patch.paused.unwrap_or(record.paused),
        Edit::Reset(_) => record.paused,
    };
    let after_record = JobRecord {
        overrides: overrides.clone(),
        ..record.clone()
    };
    let after = effective(&after_record)?;
    validate(&after, registry)?;
    let mut changes = changed_fields(&before, &after, actor);
    if paused != record.paused {
        changes.push(JobChange {
            actor: actor.to_owned(),
            field: "paused".into(),
            old_value: Some(record.paused.into()),
            new_value: Some(paused.into()),
        });
    }
    Ok((!changes.is_empty()).then_some(EditPlan {
        overrides,
        paused,
        changes,
    }))
}

pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> EditError {
    let mut error = SettingsError::default();
    error.fields.insert(field, message.into());
    EditError::Invalid(error)
}

fn effective(record: &JobRecord) -> Result<JobSettings, EditError> {
    record.effective_settings().map_err(|error| {
        invalid(
            "settings",
            format!("the settings do not fit together: {error}"),
        )
    })
}

fn patched(
    record: &JobRecord,
    before: &JobSettings,
    patch: &JobPatch,
) -> Result<Map<String, Value>, EditError> {
    let now = settings_json(before);
    let mut overrides = record.overrides.clone();
    let every = patch.get("every");
    let cron = patch.get("cron");
    let zone = patch.get("timezone");
    if every.is_some() && cron.is_some() {
        return Err(invalid(
            "schedule",
            "give either an interval (every) or a cron line, not both",
        ));
    }
    if schedule_changes(&now, patch) {
        match (every, cron) {
            (Some(every), _) => {
                overrides.insert("every".into(), every.clone());
                overrides.remove("cron");
                overrides.remove("timezone");
                // A time zone with an interval is refused by validation, with its message.
                if let Some(zone) = zone {
                    overrides.insert("timezone".into(), zone.clone());
                }
            }
            (None, Some(cron)) => {
                let zone = zone.cloned().or_else(|| {
                    before
                        .cron
                        .as_ref()
                        .and(before.timezone.clone().map(Value::from))
                });
                overrides.insert("cron".into(), cron.clone());
                overrides.remove("every");
                match zone {
                    Some(zone) => overrides.insert("timezone".into(), zone),
                    None => overrides.remove("timezone"),
                };
            }
            (None, None) => {
                if let Some(zone) = zone {
                    overrides.insert("timezone".into(), zone.clone());
                }
            }
        }
    }
    for setting in SETTINGS.iter().filter(|setting| !setting.schedule) {
        match patch.get(setting.name) {
            Some(value) if Some(value) != in_force(&now, setting).as_ref() => {
                overrides.insert(setting.name.into(), value.clone());
            }
            _ => {}
        }
    }
    drop_overrides_equal_to_defaults(record, &mut overrides)?;
    Ok(overrides)
}

/// What `setting` is now: its value in force, or what an unset one means (a policy's
/// first choice), so that choosing it again is no change.
fn in_force(now: &Map<String, Value>, setting: &Setting) -> Option<Value> {
    now.get(setting.name).cloned().or_else(|| {
        let (first, _) = setting.form.as_ref()?.choices.first()?;
        Some(Value::from(*first))
    })
}

/// Whether the schedule fields `patch` gives differ from those in force (a cron line
/// without a zone is in UTC). The schedule is written as one, so a patch that restates
/// it writes nothing.
fn schedule_changes(now: &Map<String, Value>, patch: &JobPatch) -> bool {
    let cron_in_utc = now.contains_key("cron") && !now.contains_key("timezone");
    schedule_fields().any(|field| {
        let Some(value) = patch.get(field) else {
            return false;
        };
        let current = match now.get(field) {
            None if field == "timezone" && cron_in_utc => Some(Value::from("UTC")),
            current => current.cloned(),
        };
        current.as_ref() != Some(value)
    })
}

/// An override that says what the file says is no override: dropping it keeps the job
/// following the file if the file changes later, and shows the value as a default.
fn drop_overrides_equal_to_defaults(
    record: &JobRecord,
    overrides: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<(), EditError> {
    let defaults = serde_json::to_value(&record.defaults)
        .map_err(|error| invalid("settings", error.to_string()))?;
    let default_of = |field: &str| defaults.get(field).cloned();
    let same_schedule = overrides.keys().any(|field| is_schedule(field))
        && schedule_fields().all(|field| overrides.get(field).cloned() == default_of(field));
    if same_schedule {
        for field in schedule_fields() {
            overrides.remove(field);
        }
    }
    overrides
        .retain(|field, value| is_schedule(field) || default_of(field).as_ref() != Some(value));
    Ok(())
}

fn reset(
    record: &JobRecord,
    field: Option<&str>,
) -> Result<serde_json::Map<String, serde_json::Value>, EditError> {
    let mut overrides = record.overrides.clone();
    match field {
        None => overrides.clear(),
        Some(field) if field == "schedule" || is_schedule(field) => {
            for field in schedule_fields() {
                overrides.remove(field);
            }
        }
        Some(field) if Setting::named(field).is_some() => {
            overrides.remove(field);
        }
        Some(other) => {
            return Err(invalid(
                "field",
                format!("{other:?} is not a setting that can be reset"),
            ));
        }
    }
    Ok(overrides)
}

/// The merged settings must make a job the scheduler can run.
fn validate(settings: &JobSettings, registry: &Registry) -> Result<(), EditError> {
    let spec = JobSpec::from_settings(settings).map_err(EditError::Invalid)?;
    let handler = registry.get(&spec.handler).ok_or_else(|| {
        invalid(
            "handler",
            format!("the handler {:?} is not registered", spec.handler),
        )
    })?;
    handler.check_params(&spec.params).map_err(|reason| {
        invalid(
            "params",
            format!("the params do not fit the handler: {reason}"),
        )
    })
}

/// One history row per setting whose effective value differs.
fn changed_fields(before: &JobSettings, after: &JobSettings, actor: &str) -> Vec<JobChange> {
    let (before, after) = (settings_json(before), settings_json(after));
    SETTINGS
        .iter()
        .filter_map(|setting| {
            let old_value = before.get(setting.name).cloned();
            let new_value = after.get(setting.name).cloned();
            (old_value != new_value).then(|| JobChange {
                actor: actor.to_owned(),
                field: setting.name.to_owned(),
                old_value,
                new_value,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn record(defaults: JobSettings, overrides: serde_json::Value) -> JobRecord {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        JobRecord {
            id: 1,
            name: defaults.name.clone(),
            defaults,
            overrides: overrides.as_object().cloned().unwrap_or_default(),
            paused: false,
            removed_at: None,
            next_run_at: None,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    fn cron_job() -> JobSettings {
        JobSettings {
            name: "sync".into(),
            handler: "demo_inventory".into(),
            cron: Some("0 3 * * *".into()),
            timezone: Some("Europe/Berlin".into()),
            ..JobSettings::default()
        }
    }

    fn patch(name: &str, value: impl Into<Value>) -> JobPatch {
        JobPatch::default().with(name, value).expect("a setting")
    }

    fn registry() -> Registry {
        Registry::builder()
            .handler("demo_inventory", crate::jobs::DemoInventoryHandler)
            .build()
    }

    #[test]
    fn setting_an_interval_drops_the_cron_line_and_its_zone() {
        let job = record(cron_job(), serde_json::json!({}));
        let patch = patch("every", "10m");
        let plan = plan(&job, &Edit::Patch(Box::new(patch)), "ada", &registry())
            .expect("valid")
            .expect("a change");
        let fields: Vec<_> = plan.changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["every", "cron", "timezone"]);
        assert_eq!(
            plan.overrides,
            *serde_json::json!({"every": "10m"})
                .as_object()
                .expect("object")
        );
    }

    #[test]
    fn a_new_cron_line_keeps_the_zone_the_job_had() {
        let job = record(cron_job(), serde_json::json!({}));
        let patch = patch("cron", "0 4 * * *");
        let plan = plan(&job, &Edit::Patch(Box::new(patch)), "ada", &registry())
            .expect("valid")
            .expect("a change");
        assert_eq!(plan.overrides["timezone"], "Europe/Berlin");
        assert_eq!(plan.changes.len(), 1);
    }

    #[test]
    fn setting_a_value_back_to_the_file_default_drops_the_override() {
        let job = record(cron_job(), serde_json::json!({"max_attempts": 7}));
        let defaults_patch = patch("max_attempts", 3);
        let mut file = cron_job();
        file.max_attempts = Some(3);
        let job = JobRecord {
            defaults: file,
            ..job
        };
        let plan = plan(
            &job,
            &Edit::Patch(Box::new(defaults_patch.clone())),
            "ada",
            &registry(),
        )
        .expect("valid")
        .expect("a change");
        assert!(plan.overrides.is_empty());
        let defaults_patch = JobPatch::default();
        assert_eq!(
            super::plan(
                &job,
                &Edit::Patch(Box::new(defaults_patch)),
                "ada",
                &registry()
            )
            .expect("valid"),
            None
        );
    }

    #[test]
    fn an_invalid_value_is_refused_with_its_field() {
        let job = record(cron_job(), serde_json::json!({}));
        for (patch, field) in [
            (patch("every", "0s"), "every"),
            (patch("cron", "61 * * * *"), "cron"),
            (patch("timezone", "Mars/Olympus"), "timezone"),
            (patch("concurrency", "sometimes"), "concurrency"),
        ] {
            match plan(&job, &Edit::Patch(Box::new(patch)), "ada", &registry()) {
                Err(EditError::Invalid(error)) => {
                    assert!(error.fields.contains_key(field), "{field}: {error}");
                }
                other => panic!("{field}: expected invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn restating_what_is_in_force_is_no_change() {
        let job = record(cron_job(), serde_json::json!({"timeout": "20m"}));
        let restated = patch("cron", "0 3 * * *")
            .with("timezone", "Europe/Berlin")
            .and_then(|p| p.with("timeout", "20m"))
            .and_then(|p| p.with("concurrency", "forbid"))
            .and_then(|p| p.with("misfire", "run_once"))
            .expect("settings");
        let edit = Edit::Patch(Box::new(restated));
        assert_eq!(plan(&job, &edit, "ada", &registry()).expect("valid"), None);
    }

    #[test]
    fn a_cron_line_without_a_zone_is_in_utc() {
        let utc = JobSettings {
            timezone: None,
            ..cron_job()
        };
        let job = record(utc, serde_json::json!({}));
        let same = patch("cron", "0 3 * * *")
            .with("timezone", "UTC")
            .expect("settings");
        let edit = Edit::Patch(Box::new(same));
        assert_eq!(plan(&job, &edit, "ada", &registry()).expect("valid"), None);
    }

    #[test]
    fn a_changed_zone_rewrites_the_whole_schedule() {
        let job = record(cron_job(), serde_json::json!({}));
        let moved = patch("cron", "0 3 * * *")
            .with("timezone", "Europe/Paris")
            .expect("settings");
        let plan = plan(&job, &Edit::Patch(Box::new(moved)), "ada", &registry())
            .expect("valid")
            .expect("a change");
        assert_eq!(
            plan.overrides,
            *serde_json::json!({"cron": "0 3 * * *", "timezone": "Europe/Paris"})
                .as_object()
                .expect("object")
        );
        let fields: Vec<_> = plan.changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["timezone"]);
    }

    #[test]
    fn resetting_an_unknown_field_is_refused() {
        let job = record(cron_job(), serde_json::json!({}));
        let result = plan(&job, &Edit::Reset(Some("name".into())), "ada", &registry());
        assert!(matches!(result, Err(EditError::Invalid(e)) if e.fields.contains_key("field")));
    }
}
