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

use serde::Deserialize;

use crate::job::{JobSettings, JobSpec, Registry, SettingsError};
use crate::store::{JobChange, JobRecord};

/// The settings an operator may change, by their [`JobSettings`] names, in form order.
pub const EDITABLE_FIELDS: [&str; 11] = [
    "every",
    "cron",
    "timezone",
    "jitter",
    "timeout",
    "max_attempts",
    "backoff",
    "max_backoff",
    "concurrency",
    "misfire",
    "enabled",
];

/// The fields that together make the schedule: they are overridden and reset as one.
const SCHEDULE_FIELDS: [&str; 3] = ["every", "cron", "timezone"];

/// A change to some of a job's settings; `None` leaves a field as it is.
///
/// Setting `every` switches the job to an interval (dropping its cron line and time
/// zone); setting `cron` switches it to a cron line, in `timezone` if given, else in the
/// zone it already had (UTC for a job that had an interval).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobPatch {
    pub every: Option<String>,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub jitter: Option<String>,
    pub timeout: Option<String>,
    pub max_attempts: Option<u32>,
    pub backoff: Option<String>,
    pub max_backoff: Option<String>,
    pub concurrency: Option<String>,
    pub misfire: Option<String>,
    pub enabled: Option<bool>,
    /// Pauses or resumes the job in the same change (one version, one save); not a
    /// setting, so never an override.
    pub paused: Option<bool>,
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
    let mut changes = changed_fields(&before, &after, actor)?;
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
) -> Result<serde_json::Map<String, serde_json::Value>, EditError> {
    use serde_json::Value;
    let mut overrides = record.overrides.clone();
    match (&patch.every, &patch.cron) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "schedule",
                "give either an interval (every) or a cron line, not both",
            ));
        }
        (Some(every), None) => {
            overrides.insert("every".into(), Value::from(every.trim()));
            overrides.remove("cron");
            overrides.remove("timezone");
            // A time zone with an interval is refused by validation, with its message.
            if let Some(zone) = &patch.timezone {
                overrides.insert("timezone".into(), Value::from(zone.trim()));
            }
        }
        (None, Some(cron)) => {
            let zone = patch
                .timezone
                .clone()
                .or_else(|| before.cron.as_ref().and(before.timezone.clone()));
            overrides.insert("cron".into(), Value::from(cron.trim()));
            overrides.remove("every");
            match zone {
                Some(zone) => overrides.insert("timezone".into(), Value::from(zone.trim())),
                None => overrides.remove("timezone"),
            };
        }
        (None, None) => {
            if let Some(zone) = &patch.timezone {
                overrides.insert("timezone".into(), Value::from(zone.trim()));
            }
        }
    }
    let simple: [(&str, Option<Value>); 8] = [
        ("jitter", patch.jitter.as_deref().map(|v| v.trim().into())),
        ("timeout", patch.timeout.as_deref().map(|v| v.trim().into())),
        ("max_attempts", patch.max_attempts.map(Value::from)),
        ("backoff", patch.backoff.as_deref().map(|v| v.trim().into())),
        (
            "max_backoff",
            patch.max_backoff.as_deref().map(|v| v.trim().into()),
        ),
        (
            "concurrency",
            patch.concurrency.as_deref().map(|v| v.trim().into()),
        ),
        ("misfire", patch.misfire.as_deref().map(|v| v.trim().into())),
        ("enabled", patch.enabled.map(Value::from)),
    ];
    for (field, value) in simple {
        if let Some(value) = value {
            overrides.insert(field.into(), value);
        }
    }
    drop_overrides_equal_to_defaults(record, &mut overrides)?;
    Ok(overrides)
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
    let same_schedule = overrides
        .keys()
        .any(|field| SCHEDULE_FIELDS.contains(&field.as_str()))
        && SCHEDULE_FIELDS
            .iter()
            .all(|field| overrides.get(*field).cloned() == default_of(field));
    if same_schedule {
        for field in SCHEDULE_FIELDS {
            overrides.remove(field);
        }
    }
    overrides.retain(|field, value| {
        SCHEDULE_FIELDS.contains(&field.as_str()) || default_of(field).as_ref() != Some(value)
    });
    Ok(())
}

fn reset(
    record: &JobRecord,
    field: Option<&str>,
) -> Result<serde_json::Map<String, serde_json::Value>, EditError> {
    let mut overrides = record.overrides.clone();
    match field {
        None => overrides.clear(),
        Some("schedule") => {
            for field in SCHEDULE_FIELDS {
                overrides.remove(field);
            }
        }
        Some(field) if SCHEDULE_FIELDS.contains(&field) => {
            for field in SCHEDULE_FIELDS {
                overrides.remove(field);
            }
        }
        Some(field) if EDITABLE_FIELDS.contains(&field) => {
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

/// One history row per editable field whose effective value differs.
fn changed_fields(
    before: &JobSettings,
    after: &JobSettings,
    actor: &str,
) -> Result<Vec<JobChange>, EditError> {
    let as_json = |settings: &JobSettings| {
        serde_json::to_value(settings).map_err(|error| invalid("settings", error.to_string()))
    };
    let (before, after) = (as_json(before)?, as_json(after)?);
    Ok(EDITABLE_FIELDS
        .iter()
        .filter_map(|field| {
            let old_value = before.get(*field).cloned();
            let new_value = after.get(*field).cloned();
            (old_value != new_value).then(|| JobChange {
                actor: actor.to_owned(),
                field: (*field).to_owned(),
                old_value,
                new_value,
            })
        })
        .collect())
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

    fn registry() -> Registry {
        Registry::builder()
            .handler("demo_inventory", crate::jobs::DemoInventoryHandler)
            .build()
    }

    #[test]
    fn setting_an_interval_drops_the_cron_line_and_its_zone() {
        let job = record(cron_job(), serde_json::json!({}));
        let patch = JobPatch {
            every: Some("10m".into()),
            ..JobPatch::default()
        };
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
        let patch = JobPatch {
            cron: Some("0 4 * * *".into()),
            ..JobPatch::default()
        };
        let plan = plan(&job, &Edit::Patch(Box::new(patch)), "ada", &registry())
            .expect("valid")
            .expect("a change");
        assert_eq!(plan.overrides["timezone"], "Europe/Berlin");
        assert_eq!(plan.changes.len(), 1);
    }

    #[test]
    fn setting_a_value_back_to_the_file_default_drops_the_override() {
        let job = record(cron_job(), serde_json::json!({"max_attempts": 7}));
        let mut defaults_patch = JobPatch {
            max_attempts: Some(3),
            ..JobPatch::default()
        };
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
        defaults_patch.max_attempts = None;
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
            (
                JobPatch {
                    every: Some("0s".into()),
                    ..JobPatch::default()
                },
                "every",
            ),
            (
                JobPatch {
                    cron: Some("61 * * * *".into()),
                    ..JobPatch::default()
                },
                "cron",
            ),
            (
                JobPatch {
                    timezone: Some("Mars/Olympus".into()),
                    ..JobPatch::default()
                },
                "timezone",
            ),
            (
                JobPatch {
                    concurrency: Some("sometimes".into()),
                    ..JobPatch::default()
                },
                "concurrency",
            ),
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
    fn resetting_an_unknown_field_is_refused() {
        let job = record(cron_job(), serde_json::json!({}));
        let result = plan(&job, &Edit::Reset(Some("name".into())), "ada", &registry());
        assert!(matches!(result, Err(EditError::Invalid(e)) if e.fields.contains_key("field")));
    }
}
