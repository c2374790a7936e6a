//! The schedule form as data: what each field shows (value, where it comes from, its
//! error), and its templates. Kept apart from the handlers so the job page can embed
//! [`ScheduleForm`] and tests can check the HTML without a server.

use std::collections::BTreeMap;

use askama::Template;
use askama_web::WebTemplate;

use crate::job::{JobSettings, SETTINGS, Setting, setting_text, settings_json};
use crate::store::JobRecord;
use crate::web::pages::chrome::Chrome;

/// Messages by form field name (`kind`, `every`, …); `form` holds one for the whole form.
pub type FieldErrors = BTreeMap<String, String>;

/// The form's values as text, as shown or as submitted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormValues {
    /// `interval` or `cron`.
    pub kind: String,
    /// Text by setting name, for the settings of the form (absent: empty).
    text: BTreeMap<&'static str, String>,
}

impl FormValues {
    /// The settings in force for `job`, as the form shows them. Unset fields are empty
    /// (their built-in default is shown as a placeholder).
    pub fn of(settings: &JobSettings) -> Self {
        let values = settings_json(settings);
        Self {
            kind: if settings.cron.is_some() {
                "cron"
            } else if settings.every.is_some() {
                "interval"
            } else {
                // No schedule of its own: it runs after its upstream jobs.
                "upstream"
            }
            .into(),
            text: Setting::in_form()
                .map(|(setting, _)| {
                    let text = setting_text(values.get(setting.name)).unwrap_or_default();
                    (setting.name, text)
                })
                .collect(),
        }
    }

    /// The values in force for `job` (its defaults if its overrides do not decode).
    pub fn of_job(job: &JobRecord) -> Self {
        Self::of(
            &job.effective_settings()
                .unwrap_or_else(|_| job.defaults.clone()),
        )
    }

    /// The text of the setting `name`; empty when there is none.
    pub fn get(&self, name: &str) -> &str {
        self.text.get(name).map_or("", String::as_str)
    }

    /// Sets the text of the setting `name`; a name that is not a setting of the form is
    /// ignored, as the form would ignore a field it does not have.
    pub fn set(&mut self, name: &str, text: impl Into<String>) {
        if let Some((setting, _)) = Setting::in_form().find(|(setting, _)| setting.name == name) {
            self.text.insert(setting.name, text.into());
        }
    }
}

/// One option of a `<select>`.
#[derive(Debug, Clone)]
pub(super) struct Choice {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

/// One field of the form, ready to render.
#[derive(Debug, Clone)]
pub(super) struct FieldView {
    pub name: &'static str,
    pub label: &'static str,
    pub value: String,
    /// The built-in default, shown as the placeholder of an empty field.
    pub placeholder: &'static str,
    /// Empty for a text input.
    pub choices: Vec<Choice>,
    /// "file default", or "override (file: …)".
    pub origin: String,
    pub overridden: bool,
    pub error: Option<String>,
}

/// The views of the form's settings that are (`schedule`) or are not part of the schedule.
fn field_views(
    schedule: bool,
    job: &JobRecord,
    values: &FormValues,
    errors: &FieldErrors,
) -> Vec<FieldView> {
    let defaults = FormValues::of(&job.defaults);
    let schedule_overridden = SETTINGS
        .iter()
        .any(|setting| setting.schedule && job.overrides.contains_key(setting.name));
    Setting::in_form()
        .filter(|(setting, _)| setting.schedule == schedule)
        .map(|(setting, form)| {
            let overridden = if setting.schedule {
                schedule_overridden
            } else {
                job.overrides.contains_key(setting.name)
            };
            let file_value = match defaults.get(setting.name) {
                "" => "not set".to_owned(),
                value => value.to_owned(),
            };
            let origin = if overridden {
                format!("override (file: {file_value})")
            } else {
                "file default".to_owned()
            };
            let value = values.get(setting.name).to_owned();
            let choices = form
                .choices
                .iter()
                .enumerate()
                .map(|(i, (choice, label))| Choice {
                    value: choice,
                    label,
                    // An unset policy is its first (default) choice.
                    selected: value == *choice || (value.is_empty() && i == 0),
                })
                .collect();
            FieldView {
                name: setting.name,
                label: form.label,
                value,
                placeholder: form.placeholder,
                choices,
                origin,
                overridden,
                error: errors.get(setting.name).cloned(),
            }
        })
        .collect()
}

/// The schedule form of a job (`<section id="schedule">…</section>`): embedded in the
/// job page and the standalone settings page, and the answer to an htmx save. Without
/// `can_edit` the fields are read-only and there is no save button.
#[derive(Debug, Clone, Template, WebTemplate)]
#[template(path = "job_schedule_partial.html")]
pub struct ScheduleForm {
    job: String,
    version: i64,
    csrf: String,
    can_edit: bool,
    /// `interval`, `cron`, or `upstream` for a job with no schedule of its own.
    kind: String,
    kind_error: Option<String>,
    form_error: Option<String>,
    notice: Option<String>,
    schedule: Vec<FieldView>,
    policies: Vec<FieldView>,
    any_override: bool,
}

// The template escapes every value it shows, so the pages that embed the form write its
// output as it is.
impl askama::filters::HtmlSafe for ScheduleForm {}

impl ScheduleForm {
    /// The form of `job` showing `values` with `errors` next to their fields.
    pub fn new(
        job: &JobRecord,
        values: &FormValues,
        errors: &FieldErrors,
        csrf: &str,
        can_edit: bool,
    ) -> Self {
        Self {
            job: job.name.clone(),
            version: job.version,
            csrf: csrf.to_owned(),
            can_edit,
            kind: match values.kind.as_str() {
                "cron" | "upstream" => values.kind.clone(),
                _ => "interval".to_owned(),
            },
            kind_error: errors
                .get("kind")
                .or_else(|| errors.get("schedule"))
                .cloned(),
            form_error: errors.get("form").cloned(),
            notice: None,
            schedule: field_views(true, job, values, errors),
            policies: field_views(false, job, values, errors),
            any_override: !job.overrides.is_empty(),
        }
    }

    /// The form with a status line above the fields ("Saved; next run at …").
    pub fn with_notice(self, notice: Option<String>) -> Self {
        Self { notice, ..self }
    }
}

/// The next fire times of a schedule typed into the form, or why it does not parse.
#[derive(Template)]
#[template(path = "schedule_preview_partial.html")]
pub(super) struct PreviewTemplate {
    pub description: Option<String>,
    /// (RFC 3339 UTC, readable UTC text).
    pub fires: Vec<(String, String)>,
    pub error: Option<String>,
}

/// A whole page around the form, for a form posted without htmx (a refused save then
/// shows the form with its messages on its own page).
#[derive(Template, WebTemplate)]
#[template(path = "job_settings.html")]
pub(super) struct StandalonePage {
    pub chrome: Chrome,
    pub form: ScheduleForm,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn render(
        job: &JobRecord,
        values: &FormValues,
        errors: &FieldErrors,
        csrf: &str,
        can_edit: bool,
    ) -> String {
        ScheduleForm::new(job, values, errors, csrf, can_edit)
            .render()
            .expect("renders")
    }

    fn job(name: &str, overrides: serde_json::Value) -> JobRecord {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        JobRecord {
            id: 1,
            name: name.into(),
            defaults: JobSettings {
                name: name.into(),
                handler: "demo_inventory".into(),
                every: Some("5m".into()),
                timeout: Some("10m".into()),
                ..JobSettings::default()
            },
            overrides: overrides.as_object().cloned().unwrap_or_default(),
            paused: false,
            removed_at: None,
            next_run_at: None,
            version: 7,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn a_fields_error_is_shown_next_to_it_and_linked_for_screen_readers() {
        let job = job("sync", serde_json::json!({}));
        let mut values = FormValues::of_job(&job);
        values.set("every", "0s");
        let errors = FieldErrors::from([(
            "every".to_owned(),
            "an interval must be at least 1 second".to_owned(),
        )]);
        let html = render(&job, &values, &errors, "tok", true);
        assert!(
            html.contains(r#"aria-describedby="every-origin every-error""#),
            "{html}"
        );
        assert!(html.contains(r#"aria-invalid="true""#));
        assert!(html.contains(r#"id="every-error""#));
        assert!(html.contains("an interval must be at least 1 second"));
        assert!(html.contains(r#"value="0s""#));
        assert!(html.contains(r#"name="csrf_token" value="tok""#));
        assert!(html.contains(r#"name="version" value="7""#));
    }

    #[test]
    fn html_in_a_value_or_message_renders_as_text() {
        let job = job("sync", serde_json::json!({}));
        let mut values = FormValues::of_job(&job);
        values.set("cron", "<script>alert(1)</script>");
        let errors = FieldErrors::from([("cron".to_owned(), "<b>bad</b>".to_owned())]);
        let html = render(&job, &values, &errors, "\"><x", true);
        assert!(!html.contains("<script>alert(1)</script>"));
        assert!(html.contains("&#60;script&#62;"));
        assert!(!html.contains("<b>bad</b>"));
        assert!(!html.contains("\"><x"));
    }

    #[test]
    fn overrides_and_file_defaults_are_told_apart() {
        let job = job("sync", serde_json::json!({"timeout": "20m"}));
        let html = render(
            &job,
            &FormValues::of_job(&job),
            &FieldErrors::new(),
            "t",
            true,
        );
        assert!(html.contains("override (file: 10m)"), "{html}");
        assert!(html.contains("file default"));
    }

    #[test]
    fn a_viewer_sees_the_settings_but_no_save_button() {
        let job = job("sync", serde_json::json!({}));
        let html = render(
            &job,
            &FormValues::of_job(&job),
            &FieldErrors::new(),
            "t",
            false,
        );
        assert!(!html.contains("type=\"submit\""));
        assert!(html.contains("disabled"));
    }
}
