//! What the console and the API show of data that may hold secrets: a job's settings
//! (file defaults, operator overrides, merged) and the history of its changes, each
//! passed through [`crate::secrets`] once, here, for every page and answer.

use serde_json::{Map, Value};

use crate::secrets::{RedactionList, redact_field};
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
    /// `job`'s settings, their `params` redacted with `list`. The other settings hold
    /// no secrets and are shown as they are, whatever the list says.
    pub fn of(job: &JobRecord, list: &RedactionList) -> Self {
        let defaults = serde_json::to_value(&job.defaults).unwrap_or_default();
        let effective = job
            .effective_settings()
            .ok()
            .and_then(|settings| serde_json::to_value(settings).ok())
            .unwrap_or_else(|| defaults.clone());
        let mut shown = Self {
            defaults,
            overrides: job.overrides.clone(),
            effective,
        };
        for settings in [
            shown.defaults.as_object_mut(),
            shown.effective.as_object_mut(),
        ]
        .into_iter()
        .flatten()
        .chain([&mut shown.overrides])
        {
            if let Some(params) = settings.get_mut(PARAMS) {
                *params = redact_field(PARAMS, params, list);
            }
        }
        shown
    }
}

/// The setting that holds a job's params.
const PARAMS: &str = "params";

/// `change` as it may be shown: the old and new values of a `params` change redacted.
pub fn shown_change(mut change: JobChangeRecord, list: &RedactionList) -> JobChangeRecord {
    if change.field == PARAMS {
        for value in [&mut change.old_value, &mut change.new_value]
            .into_iter()
            .flatten()
        {
            *value = redact_field(PARAMS, value, list);
        }
    }
    change
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use serde_json::json;

    use super::*;
    use crate::job::JobSettings;

    fn job() -> JobRecord {
        let params = json!({ "env": { "API_TOKEN": "t-s3cret" }, "program": "sync" });
        let mut overrides = Map::new();
        overrides.insert("params".into(), params.clone());
        overrides.insert("timeout".into(), json!("5m"));
        JobRecord {
            id: 1,
            name: "sync".into(),
            defaults: JobSettings {
                name: "sync".into(),
                handler: "command".into(),
                every: Some("5m".into()),
                timeout: Some("1m".into()),
                params: Some(params),
                ..JobSettings::default()
            },
            overrides,
            paused: false,
            removed_at: None,
            next_run_at: None,
            version: 1,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    #[test]
    fn params_are_redacted_in_defaults_overrides_and_effective_and_nothing_else_is() {
        // A list fragment that matches a setting's name leaves the setting alone.
        let shown = ShownSettings::of(&job(), &RedactionList::new(&["timeout".to_owned()]));
        let redacted = json!({ "env": { "API_TOKEN": "[redacted]" }, "program": "sync" });
        assert_eq!(shown.defaults["params"], redacted);
        assert_eq!(shown.overrides["params"], redacted);
        assert_eq!(shown.effective["params"], redacted);
        assert_eq!(shown.defaults["timeout"], "1m");
        assert_eq!(shown.effective["timeout"], "5m");
    }

    #[test]
    fn only_a_params_change_is_redacted_in_the_history() {
        let change = |field: &str, value: serde_json::Value| JobChangeRecord {
            id: 1,
            job_id: 1,
            job_name: "sync".into(),
            actor: "olga".into(),
            field: field.into(),
            old_value: None,
            new_value: Some(value),
            changed_at: DateTime::<Utc>::UNIX_EPOCH,
        };
        let list = RedactionList::default();
        let params = shown_change(
            change("params", json!({ "headers": { "X": "v-s3cret" } })),
            &list,
        );
        assert_eq!(
            params.new_value,
            Some(json!({ "headers": { "X": "[redacted]" } }))
        );
        let every = shown_change(change("every", json!("10m")), &list);
        assert_eq!(every.new_value, Some(json!("10m")));
    }
}
