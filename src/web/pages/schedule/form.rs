//! The schedule form as posted: its shape checks, and the patch it makes.

use serde::Deserialize;
use validator::Validate;

use super::{FieldErrors, FormValues};
use crate::scheduler::JobPatch;

/// The schedule form as posted: the values, the version it was loaded at, and the
/// CSRF token (checked by the middleware; declared so the form decodes).
#[derive(Debug, Deserialize, Validate)]
pub(crate) struct SettingsForm {
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) csrf_token: String,
    pub(super) version: i64,
    #[serde(default)]
    #[validate(custom(function = "known_kind"))]
    pub(super) kind: String,
    #[serde(default)]
    #[validate(length(max = 32, message = "an interval is at most 32 characters"))]
    pub(super) every: String,
    #[serde(default)]
    #[validate(length(max = 200, message = "a cron line is at most 200 characters"))]
    pub(super) cron: String,
    #[serde(default)]
    #[validate(length(max = 64, message = "a time zone name is at most 64 characters"))]
    pub(super) timezone: String,
    #[serde(default)]
    #[validate(length(max = 32, message = "a duration is at most 32 characters"))]
    pub(super) jitter: String,
    #[serde(default)]
    #[validate(length(max = 32, message = "a duration is at most 32 characters"))]
    pub(super) timeout: String,
    #[serde(default)]
    #[validate(custom(function = "whole_number"))]
    pub(super) max_attempts: String,
    #[serde(default)]
    #[validate(length(max = 32, message = "a duration is at most 32 characters"))]
    pub(super) backoff: String,
    #[serde(default)]
    #[validate(length(max = 32, message = "a duration is at most 32 characters"))]
    pub(super) max_backoff: String,
    #[serde(default)]
    #[validate(custom(function = "known_concurrency"))]
    pub(super) concurrency: String,
    #[serde(default)]
    #[validate(custom(function = "known_misfire"))]
    pub(super) misfire: String,
}

fn one_of(
    value: &str,
    allowed: &[&str],
    message: &'static str,
) -> Result<(), validator::ValidationError> {
    if value.is_empty() || allowed.contains(&value) {
        Ok(())
    } else {
        Err(validator::ValidationError::new("choice").with_message(message.into()))
    }
}

fn known_kind(value: &str) -> Result<(), validator::ValidationError> {
    one_of(
        value,
        &["interval", "cron"],
        "choose an interval or a cron line",
    )
}

fn known_concurrency(value: &str) -> Result<(), validator::ValidationError> {
    one_of(
        value,
        &["forbid", "allow", "replace"],
        "choose forbid, allow or replace",
    )
}

fn known_misfire(value: &str) -> Result<(), validator::ValidationError> {
    one_of(value, &["run_once", "skip"], "choose run once or skip")
}

fn whole_number(value: &str) -> Result<(), validator::ValidationError> {
    if value.trim().is_empty() || value.trim().parse::<u32>().is_ok() {
        Ok(())
    } else {
        Err(validator::ValidationError::new("number")
            .with_message("max attempts must be a whole number between 1 and 100".into()))
    }
}

impl SettingsForm {
    pub(super) fn values(&self) -> FormValues {
        FormValues {
            kind: self.kind.clone(),
            every: self.every.clone(),
            cron: self.cron.clone(),
            timezone: self.timezone.clone(),
            jitter: self.jitter.clone(),
            timeout: self.timeout.clone(),
            max_attempts: self.max_attempts.clone(),
            backoff: self.backoff.clone(),
            max_backoff: self.max_backoff.clone(),
            concurrency: self.concurrency.clone(),
            misfire: self.misfire.clone(),
        }
    }

    /// The shape errors, by field.
    pub(super) fn shape_errors(&self) -> FieldErrors {
        let Err(errors) = self.validate() else {
            return FieldErrors::new();
        };
        errors
            .field_errors()
            .into_iter()
            .filter_map(|(field, list)| {
                let message = list.first()?.message.clone()?;
                Some((field.into_owned(), message.into_owned()))
            })
            .collect()
    }
}

/// Only what the operator changed against `current` (the values the job has now), so
/// that an untouched field never becomes an override, and a blank field means "leave".
pub(super) fn patch_from(form: &FormValues, current: &FormValues) -> Result<JobPatch, FieldErrors> {
    let changed = |new: &str, old: &str| {
        let new = new.trim();
        (!new.is_empty() && new != old).then(|| new.to_owned())
    };
    let mut patch = JobPatch::default();
    let utc = |zone: &str| {
        if zone.trim().is_empty() {
            "UTC".to_owned()
        } else {
            zone.trim().to_owned()
        }
    };
    if form.kind == "cron" {
        if form.cron.trim().is_empty() {
            return Err(FieldErrors::from([(
                "cron".to_owned(),
                "write a cron line, e.g. 0 3 * * * for 03:00 every day".to_owned(),
            )]));
        }
        let same = current.kind == "cron"
            && form.cron.trim() == current.cron
            && utc(&form.timezone) == utc(&current.timezone);
        if !same {
            patch.cron = Some(form.cron.trim().to_owned());
            patch.timezone = Some(utc(&form.timezone));
        }
    } else {
        if form.every.trim().is_empty() {
            return Err(FieldErrors::from([(
                "every".to_owned(),
                "write an interval, e.g. 5m or 1h30m".to_owned(),
            )]));
        }
        if current.kind != "interval" || form.every.trim() != current.every {
            patch.every = Some(form.every.trim().to_owned());
        }
    }
    patch.jitter = changed(&form.jitter, &current.jitter);
    patch.timeout = changed(&form.timeout, &current.timeout);
    patch.backoff = changed(&form.backoff, &current.backoff);
    patch.max_backoff = changed(&form.max_backoff, &current.max_backoff);
    // An unset policy shows as its first choice; choosing that again is no change.
    let policy = |new: &str, old: &str, default: &str| {
        let old = if old.is_empty() { default } else { old };
        changed(new, old)
    };
    patch.concurrency = policy(&form.concurrency, &current.concurrency, "forbid");
    patch.misfire = policy(&form.misfire, &current.misfire, "run_once");
    patch.max_attempts =
        changed(&form.max_attempts, &current.max_attempts).and_then(|text| text.parse().ok());
    Ok(patch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(every: &str) -> FormValues {
        FormValues {
            kind: "interval".into(),
            every: every.into(),
            ..FormValues::default()
        }
    }

    #[test]
    fn an_untouched_form_is_an_empty_patch() {
        let current = interval("5m");
        assert_eq!(patch_from(&current, &current), Ok(JobPatch::default()));
    }

    #[test]
    fn switching_to_cron_without_a_zone_means_utc() {
        let form = FormValues {
            kind: "cron".into(),
            cron: "0 3 * * *".into(),
            ..interval("5m")
        };
        let patch = patch_from(&form, &interval("5m")).expect("a patch");
        assert_eq!(patch.cron.as_deref(), Some("0 3 * * *"));
        assert_eq!(patch.timezone.as_deref(), Some("UTC"));
        assert_eq!(patch.every, None);
    }

    #[test]
    fn an_empty_interval_is_refused_with_its_field() {
        let errors = patch_from(&interval(" "), &interval("5m")).expect_err("refused");
        assert!(errors.contains_key("every"));
    }

    #[test]
    fn shapes_are_checked_by_the_validator() {
        let form = SettingsForm {
            csrf_token: String::new(),
            version: 1,
            kind: "sometimes".into(),
            every: "5m".into(),
            cron: "x".repeat(201),
            timezone: String::new(),
            jitter: String::new(),
            timeout: String::new(),
            max_attempts: "three".into(),
            backoff: String::new(),
            max_backoff: String::new(),
            concurrency: "maybe".into(),
            misfire: String::new(),
        };
        let errors = form.shape_errors();
        let fields: Vec<_> = errors.keys().map(String::as_str).collect();
        assert_eq!(fields, ["concurrency", "cron", "kind", "max_attempts"]);
        assert!(errors["max_attempts"].contains("whole number"));
    }
}
