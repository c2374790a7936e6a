//! What the console and the API show of data that may hold secrets: a job's settings
//! (file defaults, operator overrides, merged) and the history of its changes, each
//! passed through [`crate::secrets`] once, here, for every page and answer.

use serde_json::{Map, Value};

use crate::secrets::{RedactionList, redact_field, redact_params};
use crate::store::{JobChangeRecord, JobRecord};

/// A job's settings as they may be shown: its params' secrets read `[redacted]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShownSettings {
    /// The settings file's values.
    pub defaults: Value,
    /// The fields operators changed.
    pub overrides: Map<String, Value>,
    /// The merged settings in force (the defaults when the merge fails).
    pub effective: Value,
}

impl ShownSettings {
    /// `job`'s settings, redacted with `list`.
    pub fn of(job: &JobRecord, list: &RedactionList) -> Self {
        let defaults = serde_json::to_value(&job.defaults).unwrap_or_default();
        let effective = job
            .effective_settings()
            .ok()
            .and_then(|settings| serde_json::to_value(settings).ok())
            .unwrap_or_else(|| defaults.clone());
        let overrides = match redact_params(&Value::Object(job.overrides.clone()), list) {
            Value::Object(overrides) => overrides,
            _ => Map::new(),
        };
        Self {
            defaults: redact_params(&defaults, list),
            overrides,
            effective: redact_params(&effective, list),
        }
    }
}

/// `change` as it may be shown: its old and new values redacted as values of its field.
pub fn shown_change(mut change: JobChangeRecord, list: &RedactionList) -> JobChangeRecord {
    for value in [&mut change.old_value, &mut change.new_value]
        .into_iter()
        .flatten()
    {
        *value = redact_field(&change.field, value, list);
    }
    change
}
