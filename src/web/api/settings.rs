//! The settings as the API reads and writes them, driven by [`SETTINGS`]: the body of a
//! `PATCH` checked field by field, and the schemas the OpenAPI document shows for it and
//! for the settings a job answer carries.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::{ApiError, ApiResult};
use crate::job::{JobSettings, SETTINGS, Setting, SettingKind, settings_json};
use crate::scheduler::JobPatch;
use crate::web::error::WebError;

/// A job's schedule: `{"every": "5m"}` or `{"cron": "0 3 * * *", "timezone": "UTC"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

impl ScheduleJson {
    /// The schedule in force of `settings`; a cron line without a zone is in UTC.
    pub fn of(settings: &JobSettings) -> Self {
        if settings.cron.is_some() {
            Self {
                every: None,
                cron: settings.cron.clone(),
                timezone: Some(settings.timezone.clone().unwrap_or_else(|| "UTC".into())),
            }
        } else {
            Self {
                every: settings.every.clone(),
                ..Self::default()
            }
        }
    }
}

/// The settings of a job answer shown beside `schedule` and `enabled`: every other
/// setting in force, `null` when unset.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(transparent)]
pub struct PolicyJson(pub Map<String, Value>);

impl PolicyJson {
    /// Whether a job answer shows `setting` among these (the schedule and `enabled` have
    /// fields of their own).
    fn shows(setting: &Setting) -> bool {
        !setting.schedule && setting.name != "enabled"
    }

    /// The policies in force of `settings`.
    pub fn of(settings: &JobSettings) -> Self {
        let values = settings_json(settings);
        Self(
            SETTINGS
                .iter()
                .filter(|setting| Self::shows(setting))
                .map(|setting| {
                    let value = values.get(setting.name).cloned().unwrap_or(Value::Null);
                    (setting.name.to_owned(), value)
                })
                .collect(),
        )
    }
}

impl PartialSchema for PolicyJson {
    fn schema() -> RefOr<Schema> {
        let object = SETTINGS.iter().filter(|setting| Self::shows(setting)).fold(
            ObjectBuilder::new(),
            |object, setting| {
                object
                    .property(setting.name, value_schema(setting, true))
                    .required(setting.name)
            },
        );
        object.into()
    }
}

impl ToSchema for PolicyJson {}

/// What a `PATCH` may carry: `version`, and any settings, the schedule either flat or as
/// `"schedule": {...}`, and `paused`. Its schema is built from [`SETTINGS`]; the body
/// itself is read by [`PatchRequest::parse`].
pub struct JobPatchJson;

impl PartialSchema for JobPatchJson {
    fn schema() -> RefOr<Schema> {
        let object = ObjectBuilder::new()
            .description(Some(
                "A change of settings: every field but `version` is optional.",
            ))
            .property(
                "version",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .description(Some("The `version` the change is based on.")),
            )
            .required("version")
            .property("schedule", Ref::from_schema_name(ScheduleJson::name()))
            .property(
                "paused",
                ObjectBuilder::new()
                    .schema_type(Type::Boolean)
                    .description(Some("Pauses or resumes the job in the same change.")),
            );
        SETTINGS
            .iter()
            .fold(object, |object, setting| {
                object.property(setting.name, value_schema(setting, false))
            })
            .into()
    }
}

impl ToSchema for JobPatchJson {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("JobPatchJson")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((ScheduleJson::name().into_owned(), ScheduleJson::schema()));
    }
}

/// The schema of one setting's value (`nullable` in answers, where unset shows `null`).
fn value_schema(setting: &Setting, nullable: bool) -> Schema {
    let kind = match setting.kind {
        SettingKind::Text => Type::String,
        SettingKind::Count => Type::Integer,
        SettingKind::Flag => Type::Boolean,
        SettingKind::Names => Type::Array,
    };
    let schema_type = if nullable {
        SchemaType::from_iter([kind, Type::Null])
    } else {
        SchemaType::from(kind)
    };
    let object = ObjectBuilder::new()
        .schema_type(schema_type.clone())
        .description(Some(setting.doc));
    match setting.kind {
        SettingKind::Count => object
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .minimum(Some(0))
            .into(),
        SettingKind::Text | SettingKind::Flag => object.into(),
        SettingKind::Names => ArrayBuilder::new()
            .schema_type(schema_type)
            .description(Some(setting.doc))
            .items(
                ObjectBuilder::new()
                    .schema_type(SchemaType::from(Type::String))
                    .description(Some("A job's name.")),
            )
            .into(),
    }
}

/// A `PATCH` body, checked field by field so every bad field is named at once.
#[derive(Debug)]
pub struct PatchRequest {
    pub version: i64,
    pub patch: JobPatch,
    /// The schedule came as `"schedule": {...}`: its errors are named `schedule.…`.
    pub nested_schedule: bool,
}

impl PatchRequest {
    /// Reads `body`.
    ///
    /// # Errors
    /// 422 naming each bad field: unknown, of the wrong type, longer than the form
    /// allows, or `version` missing.
    pub fn parse(body: Map<String, Value>) -> ApiResult<Self> {
        let mut errors = BTreeMap::new();
        let mut version = None;
        let mut patch = JobPatch::default();
        let mut schedule: Option<ScheduleJson> = None;
        for (field, value) in body {
            let errors = &mut errors;
            match field.as_str() {
                "version" => version = take(errors, field, value),
                "schedule" => schedule = take(errors, field, value),
                "paused" => patch.paused = take(errors, field, value),
                _ => {
                    if let Err(message) = patch.set(&field, value) {
                        errors.insert(field, message);
                    }
                }
            }
        }
        let nested_schedule = schedule.is_some();
        if let Some(schedule) = schedule {
            let flat = SETTINGS
                .iter()
                .any(|setting| setting.schedule && patch.get(setting.name).is_some());
            if flat {
                errors.insert(
                    "schedule".into(),
                    "give the schedule either as \"schedule\" or as its fields, not both".into(),
                );
            }
            let nested = [
                ("every", schedule.every),
                ("cron", schedule.cron),
                ("timezone", schedule.timezone),
            ];
            for (field, value) in nested {
                if let Some(value) = value
                    && let Err(message) = patch.set(field, value.into())
                {
                    errors.insert(field_name(field, true), message);
                }
            }
        }
        // The console form's limits, so a huge value is refused before the engine
        // parses it or echoes it in a message.
        for (field, value) in patch.values() {
            let too_long = Setting::named(field)
                .zip(value.as_str())
                .and_then(|(setting, text)| setting.too_long(text));
            if let Some(message) = too_long {
                errors
                    .entry(field_name(field, nested_schedule))
                    .or_insert_with(|| message.to_owned());
            }
        }
        if version.is_none() && !errors.contains_key("version") {
            errors.insert(
                "version".into(),
                "send the job's version, so a change made meanwhile is not overwritten".into(),
            );
        }
        match version {
            Some(version) if errors.is_empty() => Ok(Self {
                version,
                patch,
                nested_schedule,
            }),
            _ => Err(ApiError(WebError::Invalid {
                error: "the change is invalid; nothing was saved".into(),
                fields: errors,
            })),
        }
    }
}

/// `value` as a `T`, or an error noted against `field`.
fn take<T: serde::de::DeserializeOwned>(
    errors: &mut BTreeMap<String, String>,
    field: String,
    value: Value,
) -> Option<T> {
    match serde_json::from_value(value) {
        Ok(value) => Some(value),
        Err(error) => {
            errors.insert(field, format!("wrong type: {error}"));
            None
        }
    }
}

/// How the request named `field`: `schedule.every` and so on when the schedule came
/// nested as `"schedule": {...}`.
pub fn field_name(field: &str, nested_schedule: bool) -> String {
    let in_schedule = Setting::named(field).is_some_and(|setting| setting.schedule);
    if nested_schedule && in_schedule {
        format!("schedule.{field}")
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    use super::*;

    #[test]
    fn the_documented_patch_and_answers_name_every_setting() {
        let document = serde_json::to_value(super::super::ApiDoc::openapi()).expect("JSON");
        let schemas = &document["components"]["schemas"];
        for setting in &SETTINGS {
            let name = setting.name;
            assert!(
                schemas["JobPatchJson"]["properties"][name].is_object(),
                "{name} in a patch"
            );
            let answer = if setting.schedule {
                &schemas["ScheduleJson"]
            } else if PolicyJson::shows(setting) {
                &schemas["PolicyJson"]
            } else {
                &schemas["JobJson"]["allOf"][1]
            };
            assert!(answer["properties"][name].is_object(), "{name} in answers");
        }
    }

    #[test]
    fn a_patch_names_each_bad_field_once() {
        let body = serde_json::json!({
            "version": 3,
            "colour": "blue",
            "max_attempts": "many",
            "schedule": {"every": "5m"},
            "cron": "0 3 * * *",
            "timeout": "1".repeat(33),
        });
        let Err(ApiError(WebError::Invalid { fields, .. })) =
            PatchRequest::parse(body.as_object().cloned().expect("an object"))
        else {
            panic!("refused");
        };
        let named: Vec<_> = fields.keys().map(String::as_str).collect();
        assert_eq!(named, ["colour", "max_attempts", "schedule", "timeout"]);
        assert_eq!(fields["colour"], crate::scheduler::NOT_A_SETTING);
    }
}
