//! The schedule form as posted: its shape checks, and the patch it makes.

use std::collections::HashMap;

use serde::Deserialize;

use super::{FieldErrors, FormValues};
use crate::job::Setting;
use crate::scheduler::JobPatch;

/// The schedule form as posted: the values and the version it was loaded at (the CSRF
/// token is checked by the middleware). Read from the posted pairs so that its fields
/// are those of [`crate::job::SETTINGS`].
#[derive(Debug, Deserialize)]
#[serde(try_from = "HashMap<String, String>")]
pub(crate) struct SettingsForm {
    pub(super) version: i64,
    pub(super) values: FormValues,
}

impl TryFrom<HashMap<String, String>> for SettingsForm {
    type Error = String;

    fn try_from(mut form: HashMap<String, String>) -> Result<Self, String> {
        let version = form
            .get("version")
            .ok_or("missing field `version`")?
            .trim()
            .parse()
            .map_err(|error| format!("version: {error}"))?;
        let mut values = FormValues::default();
        values.kind = form.remove("kind").unwrap_or_default();
        for (setting, _) in Setting::in_form() {
            if let Some(text) = form.remove(setting.name) {
                values.set(setting.name, text);
            }
        }
        Ok(Self { version, values })
    }
}

impl SettingsForm {
    /// The shape errors, by field: a kind of schedule the form does not offer, text too
    /// long, not a whole number or not one of a setting's choices.
    pub(super) fn shape_errors(&self) -> FieldErrors {
        let mut errors = FieldErrors::new();
        if !matches!(
            self.values.kind.as_str(),
            "" | "interval" | "cron" | "upstream"
        ) {
            errors.insert("kind".into(), "choose an interval or a cron line".into());
        }
        for (setting, _) in Setting::in_form() {
            if let Some(message) = setting.shape_error(self.values.get(setting.name)) {
                errors.insert(setting.name.into(), message.into());
            }
        }
        errors
    }
}

/// The patch `form` asks for: the schedule of its kind and every field filled in (a
/// blank field leaves its setting as it is). The planner drops what would not change.
pub(super) fn patch_from(form: &FormValues) -> Result<JobPatch, FieldErrors> {
    let mut patch = JobPatch::default();
    let mut errors = FieldErrors::new();
    let mut set = |name: &str, value: Result<serde_json::Value, String>| {
        if let Err(message) = value.and_then(|value| patch.set(name, value)) {
            errors.insert(name.to_owned(), message);
        }
    };
    if form.kind == "upstream" {
        // The schedule stays as it is: none (a job that has one keeps it, and the
        // planner refuses a job left with neither a schedule nor upstream jobs).
    } else if form.kind == "cron" {
        let cron = form.get("cron").trim();
        if cron.is_empty() {
            return Err(FieldErrors::from([(
                "cron".to_owned(),
                "write a cron line, e.g. 0 3 * * * for 03:00 every day".to_owned(),
            )]));
        }
        // The form's placeholder says it: a cron line without a zone is in UTC.
        let zone = match form.get("timezone").trim() {
            "" => "UTC",
            zone => zone,
        };
        set("cron", Ok(cron.into()));
        set("timezone", Ok(zone.into()));
    } else {
        let every = form.get("every").trim();
        if every.is_empty() {
            return Err(FieldErrors::from([(
                "every".to_owned(),
                "write an interval, e.g. 5m or 1h30m".to_owned(),
            )]));
        }
        set("every", Ok(every.into()));
    }
    for (setting, _) in Setting::in_form().filter(|(setting, _)| !setting.schedule) {
        if let Some(value) = setting.from_text(form.get(setting.name)).transpose() {
            set(setting.name, value);
        }
    }
    if errors.is_empty() {
        Ok(patch)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(every: &str) -> FormValues {
        let mut values = FormValues::default();
        values.kind = "interval".into();
        values.set("every", every);
        values
    }

    fn form(pairs: &[(&str, &str)]) -> Result<SettingsForm, String> {
        let pairs = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<HashMap<_, _>>();
        SettingsForm::try_from(pairs)
    }

    #[test]
    fn an_untouched_form_restates_the_schedule_and_leaves_blank_fields_out() {
        // Blank lists of upstream jobs say "none", which the planner finds unchanged for
        // a job that has none.
        let current = interval("5m");
        let patch = patch_from(&current).expect("a patch");
        let none = serde_json::Value::Array(Vec::new());
        assert_eq!(
            patch.values().collect::<Vec<_>>(),
            [
                ("after", &none),
                ("after_failure", &none),
                ("every", &serde_json::Value::from("5m"))
            ]
        );
    }

    #[test]
    fn switching_to_cron_without_a_zone_means_utc() {
        let mut form = interval("5m");
        form.kind = "cron".into();
        form.set("cron", "0 3 * * *");
        let patch = patch_from(&form).expect("a patch");
        assert_eq!(
            patch.get("cron").and_then(|v| v.as_str()),
            Some("0 3 * * *")
        );
        assert_eq!(patch.get("timezone").and_then(|v| v.as_str()), Some("UTC"));
        assert_eq!(patch.get("every"), None);
    }

    #[test]
    fn an_empty_interval_is_refused_with_its_field() {
        let errors = patch_from(&interval(" ")).expect_err("refused");
        assert!(errors.contains_key("every"));
    }

    #[test]
    fn shapes_are_checked_before_the_engine() {
        let form = form(&[
            ("csrf_token", ""),
            ("version", "1"),
            ("kind", "sometimes"),
            ("every", "5m"),
            ("cron", &"x".repeat(201)),
            ("max_attempts", "three"),
            ("concurrency", "maybe"),
        ])
        .expect("decodes");
        let errors = form.shape_errors();
        let fields: Vec<_> = errors.keys().map(String::as_str).collect();
        assert_eq!(fields, ["concurrency", "cron", "kind", "max_attempts"]);
        assert!(errors["max_attempts"].contains("whole number"));
    }

    #[test]
    fn a_form_without_a_version_does_not_decode() {
        assert!(form(&[("kind", "interval")]).is_err());
        assert!(form(&[("version", "seven")]).is_err());
    }
}
