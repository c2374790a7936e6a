//! The settings an operator may change, described once. [`SETTINGS`] drives the edit
//! planner (which fields are diffed and reset), the change a request or a form makes
//! ([`SettingValue`] parsing), the console's schedule form (labels, placeholders,
//! choices, length limits), the API's schema and the job page's settings table.
//!
//! Adding a setting: a field of [`JobSettings`], a row here, and its check in
//! [`super::JobSpec::from_settings`].
//!
//! [`JobSettings`]: super::JobSettings

use serde_json::{Map, Value};

use super::JobSettings;

/// What a setting holds, in JSON and as form text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKind {
    /// Text the engine parses: a duration, a cron line, a zone, a policy's name.
    Text,
    /// A whole number.
    Count,
    /// On or off.
    Flag,
    /// A list of job names.
    Names,
}

/// How the console's schedule form shows a setting.
#[derive(Debug, Clone, Copy)]
pub struct FormField {
    pub label: &'static str,
    /// Shown in an empty text field: the value it falls back to, or an example.
    pub placeholder: &'static str,
    /// The options of a `<select>` (value, label), the first being what an unset setting
    /// means; empty for a text field.
    pub choices: &'static [(&'static str, &'static str)],
    /// The longest text accepted (in characters), and the sentence refusing more. The
    /// API holds to it too, so a huge value is refused before the engine echoes it.
    pub max_chars: Option<(usize, &'static str)>,
    /// The sentence refusing text that is not one of `choices` or not a whole number.
    pub invalid: &'static str,
}

/// One setting an operator may change.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Its name in the settings file, the overrides, the history, the API and the form.
    pub name: &'static str,
    pub kind: SettingKind,
    /// Part of the schedule: `every`, `cron` and `timezone` are overridden and reset as one.
    pub schedule: bool,
    /// What the API's documentation says of it.
    pub doc: &'static str,
    /// How the schedule form shows it; `None`: changed through the API only.
    pub form: Option<FormField>,
}

/// Every setting an operator may change, in the settings file's order.
pub const SETTINGS: [Setting; 13] = [
    schedule(
        "every",
        "An interval such as `5m` or `1h30m`; setting it drops the cron line and zone.",
        FormField {
            max_chars: Some((32, "an interval is at most 32 characters")),
            ..field("Interval", "e.g. 5m, 1h30m")
        },
    ),
    schedule(
        "cron",
        "A cron line such as `0 3 * * *`; setting it drops the interval.",
        FormField {
            max_chars: Some((200, "a cron line is at most 200 characters")),
            ..field("Cron line", "e.g. 0 3 * * *")
        },
    ),
    schedule(
        "timezone",
        "The IANA time zone of the cron line (absent: the zone it had, or UTC).",
        FormField {
            max_chars: Some((64, "a time zone name is at most 64 characters")),
            ..field("Time zone", "UTC")
        },
    ),
    duration(
        "jitter",
        "Up to this much random delay is added to each fire.",
        field("Jitter", "none"),
    ),
    duration(
        "timeout",
        "How long a run may take (absent: 1h).",
        field("Timeout", "1h"),
    ),
    Setting {
        name: "max_attempts",
        kind: SettingKind::Count,
        schedule: false,
        doc: "Attempts of a failing run, the first included, 1 to 100 (absent: 3).",
        form: Some(FormField {
            invalid: "max attempts must be a whole number between 1 and 100",
            ..field("Max attempts", "3")
        }),
    },
    duration(
        "backoff",
        "The delay before the first retry, doubled at each retry (absent: 30s).",
        field("Retry backoff", "30s"),
    ),
    duration(
        "max_backoff",
        "The longest delay between retries (absent: 1h).",
        field("Max backoff", "1h"),
    ),
    choice(
        "concurrency",
        "`forbid`, `allow` or `replace` (absent: `forbid`).",
        FormField {
            choices: &[
                ("forbid", "Forbid (skip the fire)"),
                ("allow", "Allow"),
                ("replace", "Replace (cancel the running run)"),
            ],
            invalid: "choose forbid, allow or replace",
            ..field("Overlapping runs", "")
        },
    ),
    choice(
        "misfire",
        "`run_once` or `skip` (absent: `run_once`).",
        FormField {
            choices: &[
                ("run_once", "Run once at start-up"),
                ("skip", "Skip to the next slot"),
            ],
            invalid: "choose run once or skip",
            ..field("Missed fires", "")
        },
    ),
    Setting {
        name: "enabled",
        kind: SettingKind::Flag,
        schedule: false,
        doc: "Whether the job fires on its schedule (absent: true).",
        form: None,
    },
    Setting {
        name: "after",
        kind: SettingKind::Names,
        schedule: false,
        doc: "Jobs that must all have succeeded since this job last started for it to run \
              (trigger `dependency`); `[]` for none.",
        form: Some(FormField {
            max_chars: Some((2000, "name at most 2000 characters of jobs")),
            ..field("Runs after", "job names, e.g. extract, transform")
        }),
    },
    Setting {
        name: "after_failure",
        kind: SettingKind::Names,
        schedule: false,
        doc: "Jobs whose runs, ending for good without success, make this job run; `[]` \
              for none.",
        form: Some(FormField {
            max_chars: Some((2000, "name at most 2000 characters of jobs")),
            ..field("Runs when these fail", "job names, e.g. extract")
        }),
    },
];

const fn field(label: &'static str, placeholder: &'static str) -> FormField {
    FormField {
        label,
        placeholder,
        choices: &[],
        max_chars: None,
        invalid: "",
    }
}

const fn schedule(name: &'static str, doc: &'static str, form: FormField) -> Setting {
    Setting {
        name,
        kind: SettingKind::Text,
        schedule: true,
        doc,
        form: Some(form),
    }
}

const fn duration(name: &'static str, doc: &'static str, form: FormField) -> Setting {
    Setting {
        name,
        kind: SettingKind::Text,
        schedule: false,
        doc,
        form: Some(FormField {
            max_chars: Some((32, "a duration is at most 32 characters")),
            ..form
        }),
    }
}

const fn choice(name: &'static str, doc: &'static str, form: FormField) -> Setting {
    Setting {
        name,
        kind: SettingKind::Text,
        schedule: false,
        doc,
        form: Some(form),
    }
}

impl Setting {
    /// The setting called `name`.
    pub fn named(name: &str) -> Option<&'static Setting> {
        SETTINGS.iter().find(|setting| setting.name == name)
    }

    /// The settings of the schedule form, in its order.
    pub fn in_form() -> impl Iterator<Item = (&'static Setting, &'static FormField)> {
        SETTINGS
            .iter()
            .filter_map(|setting| Some((setting, setting.form.as_ref()?)))
    }

    /// `value`, from a JSON request, as this setting's value.
    ///
    /// # Errors
    /// A sentence when `value` is not of the setting's kind.
    pub fn from_json(&self, value: Value) -> Result<Value, String> {
        let wrong = |error: serde_json::Error| format!("wrong type: {error}");
        match self.kind {
            SettingKind::Text => serde_json::from_value::<String>(value)
                .map(|text| Value::from(text.trim()))
                .map_err(wrong),
            SettingKind::Count => serde_json::from_value::<u32>(value)
                .map(Value::from)
                .map_err(wrong),
            SettingKind::Flag => serde_json::from_value::<bool>(value)
                .map(Value::from)
                .map_err(wrong),
            SettingKind::Names => serde_json::from_value::<Vec<String>>(value)
                .map(|names| names.iter().map(|name| Value::from(name.trim())).collect())
                .map_err(wrong),
        }
    }

    /// Form `text` as this setting's value: `None` when blank (a blank field leaves
    /// the setting as it is), except for a list of names, where a blank field is the
    /// empty list (the form shows the names in force, so emptying it means none).
    ///
    /// # Errors
    /// [`FormField::invalid`] for text that is not of the setting's kind.
    pub fn from_text(&self, text: &str) -> Result<Option<Value>, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok((self.kind == SettingKind::Names).then(|| Value::Array(Vec::new())));
        }
        let invalid = || self.form.map_or("", |form| form.invalid).to_owned();
        match self.kind {
            SettingKind::Text => Ok(Some(Value::from(text))),
            SettingKind::Count => text
                .parse::<u32>()
                .map(|n| Some(Value::from(n)))
                .map_err(|_| invalid()),
            SettingKind::Flag => text
                .parse::<bool>()
                .map(|b| Some(Value::from(b)))
                .map_err(|_| invalid()),
            SettingKind::Names => Ok(Some(
                text.split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|name| !name.is_empty())
                    .map(Value::from)
                    .collect(),
            )),
        }
    }

    /// Why the form refuses `text` for this setting before the engine sees it (too long,
    /// not a whole number, not one of the choices); `None` when the shape is fine.
    pub fn shape_error(&self, text: &str) -> Option<&'static str> {
        let form = self.form.as_ref()?;
        if let Some(message) = self.too_long(text) {
            return Some(message);
        }
        let fits = match self.kind {
            _ if !form.choices.is_empty() => {
                text.is_empty() || form.choices.iter().any(|(value, _)| *value == text)
            }
            SettingKind::Count => text.trim().is_empty() || text.trim().parse::<u32>().is_ok(),
            SettingKind::Text | SettingKind::Flag | SettingKind::Names => true,
        };
        (!fits).then_some(form.invalid)
    }

    /// The sentence refusing `text` when it is longer than the form allows.
    pub fn too_long(&self, text: &str) -> Option<&'static str> {
        let (max, message) = self.form.as_ref()?.max_chars?;
        (text.chars().count() > max).then_some(message)
    }
}

/// A setting's value as a person reads it: text bare, absent as `None`, the rest as
/// compact JSON.
pub fn setting_text(value: Option<&Value>) -> Option<String> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        // A list of names reads as the form takes it: "extract, transform".
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        Some(other) => Some(other.to_string()),
    }
}

/// `settings` as the JSON object that overrides, history rows and the API share.
pub fn settings_json(settings: &JobSettings) -> Map<String, Value> {
    match serde_json::to_value(settings) {
        Ok(Value::Object(map)) => map,
        // Plain data with string keys: serialising cannot fail, and an empty map would
        // only show every setting as unset.
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_a_field_of_the_settings_file() {
        let all = JobSettings {
            every: Some("x".into()),
            cron: Some("x".into()),
            timezone: Some("x".into()),
            jitter: Some("x".into()),
            timeout: Some("x".into()),
            max_attempts: Some(1),
            backoff: Some("x".into()),
            max_backoff: Some("x".into()),
            concurrency: Some("x".into()),
            misfire: Some("x".into()),
            enabled: Some(true),
            after: Some(vec!["x".into()]),
            after_failure: Some(vec!["x".into()]),
            ..JobSettings::default()
        };
        let json = settings_json(&all);
        for setting in &SETTINGS {
            assert!(json.contains_key(setting.name), "{}", setting.name);
        }
        let names: Vec<_> = SETTINGS.iter().map(|s| s.name).collect();
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(names, unique);
    }

    #[test]
    fn json_values_are_checked_for_their_kind() {
        let count = Setting::named("max_attempts").expect("a setting");
        assert_eq!(count.from_json(Value::from(4)), Ok(Value::from(4)));
        assert!(
            count
                .from_json(Value::from("many"))
                .is_err_and(|e| e.starts_with("wrong type"))
        );
        let every = Setting::named("every").expect("a setting");
        assert_eq!(every.from_json(Value::from(" 5m ")), Ok(Value::from("5m")));
        assert!(every.from_json(Value::Null).is_err());
    }

    #[test]
    fn form_text_is_blank_a_value_or_refused() {
        let count = Setting::named("max_attempts").expect("a setting");
        assert_eq!(count.from_text("  "), Ok(None));
        assert_eq!(count.from_text(" 7 "), Ok(Some(Value::from(7))));
        assert!(count.shape_error("three").is_some());
        let policy = Setting::named("concurrency").expect("a setting");
        assert_eq!(policy.shape_error("allow"), None);
        assert_eq!(
            policy.shape_error("maybe"),
            Some("choose forbid, allow or replace")
        );
        let cron = Setting::named("cron").expect("a setting");
        assert!(cron.too_long(&"x".repeat(201)).is_some());
        assert_eq!(cron.too_long(&"x".repeat(200)), None);
    }
}
