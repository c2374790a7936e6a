//! The schedule form's length limits applied to a change from the API, so that
//! `PATCH /api/v1/jobs/{name}` refuses what the form refuses, with the same messages. The
//! limits are defined once, in [`SettingsForm`]'s validator attributes.

use validator::Validate as _;

use super::{FieldErrors, SettingsForm};
use crate::scheduler::JobPatch;

/// The `validator` code of a length check.
const LENGTH: &str = "length";

impl SettingsForm {
    /// The text fields of `patch` as the form would carry them (absent: empty, which
    /// every limit allows).
    fn from_patch(patch: &JobPatch) -> Self {
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        Self {
            csrf_token: String::new(),
            version: 0,
            kind: String::new(),
            every: text(&patch.every),
            cron: text(&patch.cron),
            timezone: text(&patch.timezone),
            jitter: text(&patch.jitter),
            timeout: text(&patch.timeout),
            max_attempts: String::new(),
            backoff: text(&patch.backoff),
            max_backoff: text(&patch.max_backoff),
            concurrency: String::new(),
            misfire: String::new(),
        }
    }
}

/// A message for each field of `patch` longer than the schedule form allows, by the
/// form's (and the API's) field name.
pub fn length_errors(patch: &JobPatch) -> FieldErrors {
    let Err(errors) = SettingsForm::from_patch(patch).validate() else {
        return FieldErrors::new();
    };
    errors
        .field_errors()
        .into_iter()
        .filter_map(|(field, list)| {
            let error = list.iter().find(|error| error.code == LENGTH)?;
            let message = error.message.clone()?;
            Some((field.into_owned(), message.into_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_over_the_forms_limits_are_named_and_others_pass() {
        let patch = JobPatch {
            every: Some("1".repeat(10_000)),
            timezone: Some("Europe/Berlin".into()),
            cron: Some("x".repeat(201)),
            ..JobPatch::default()
        };
        let errors = length_errors(&patch);
        assert_eq!(
            errors.keys().map(String::as_str).collect::<Vec<_>>(),
            ["cron", "every"]
        );
        assert!(errors["every"].contains("at most"), "{errors:?}");
        assert!(length_errors(&JobPatch::default()).is_empty());
    }
}
