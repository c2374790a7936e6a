//! Turning tracing fields into the JSON a log line keeps.
//!
//! Numbers stay numbers, booleans booleans, strings strings; anything else is kept as
//! its `Debug` text (which for `%value` fields is its `Display` text).

use std::fmt::Debug;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};

use super::policy::RunLogPolicy;
use crate::secrets::REDACTED;

/// The field tracing's macros put an event's formatted message in.
const MESSAGE_FIELD: &str = "message";

/// Fields `tracing-log` adds to events bridged from the `log` crate: they describe the
/// call site, not the run.
const LOG_BRIDGE_PREFIX: &str = "log.";

/// Something that keeps fields by name; `value` is only called if the field is kept.
trait PutField {
    fn put(&mut self, name: &'static str, value: impl FnOnce() -> Value);
}

/// Adapts a [`PutField`] to tracing's [`Visit`].
struct Visitor<'a, T>(&'a mut T);

impl<T: PutField> Visit for Visitor<'_, T> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.put(field.name(), || {
            serde_json::Number::from_f64(value)
                .map_or_else(|| Value::String(value.to_string()), Value::Number)
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.put(field.name(), || Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.put(field.name(), || Value::from(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.0.put(field.name(), || {
            i64::try_from(value).map_or_else(|_| Value::String(value.to_string()), Value::from)
        });
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.0.put(field.name(), || {
            u64::try_from(value).map_or_else(|_| Value::String(value.to_string()), Value::from)
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.put(field.name(), || Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.put(field.name(), || Value::String(value.to_owned()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .put(field.name(), || Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0
            .put(field.name(), || Value::String(format!("{value:?}")));
    }
}

/// An event's message and fields, redacted as it is recorded, so a secret value is
/// never even formatted.
pub(super) struct EventFields<'p> {
    policy: &'p RunLogPolicy,
    pub(super) message: String,
    pub(super) fields: Map<String, Value>,
}

impl<'p> EventFields<'p> {
    /// Records `event`'s fields under `policy`.
    pub(super) fn record(event: &tracing::Event<'_>, policy: &'p RunLogPolicy) -> Self {
        let mut recorded = Self {
            policy,
            message: String::new(),
            fields: Map::new(),
        };
        event.record(&mut Visitor(&mut recorded));
        recorded
    }

    /// Adds the fields of an enclosing span; fields already present (the event's own,
    /// or a nearer span's) win.
    pub(super) fn merge_span(&mut self, span: &SpanFields) {
        for (name, value) in &span.0 {
            if self.fields.contains_key(*name) {
                continue;
            }
            let value = if self.policy.redacts(name) {
                Value::String(REDACTED.to_owned())
            } else {
                value.clone()
            };
            self.fields.insert((*name).to_owned(), value);
        }
    }
}

impl PutField for EventFields<'_> {
    fn put(&mut self, name: &'static str, value: impl FnOnce() -> Value) {
        if name.starts_with(LOG_BRIDGE_PREFIX) {
            return;
        }
        if name == MESSAGE_FIELD {
            // The message is the operator's own text, never a field value: not redacted.
            self.message = match value() {
                Value::String(text) => text,
                other => other.to_string(),
            };
        } else if self.policy.redacts(name) {
            self.fields
                .insert(name.to_owned(), Value::String(REDACTED.to_owned()));
        } else {
            self.fields.insert(name.to_owned(), value());
        }
    }
}

/// The fields of a span inside a run, as recorded (and updated by `Span::record`).
/// They are redacted when merged into a line, with the run's own policy.
#[derive(Debug, Default)]
pub(super) struct SpanFields(Vec<(&'static str, Value)>);

impl SpanFields {
    /// Records (or updates) fields from a span's attributes or a later `record`.
    pub(super) fn record(&mut self, values: &impl RecordFields) {
        values.record_into(&mut Visitor(self));
    }
}

impl PutField for SpanFields {
    fn put(&mut self, name: &'static str, value: impl FnOnce() -> Value) {
        let value = value();
        match self.0.iter_mut().find(|(known, _)| *known == name) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((name, value)),
        }
    }
}

/// Span attributes and span records both carry fields to visit.
pub(super) trait RecordFields {
    fn record_into(&self, visitor: &mut dyn Visit);
}

impl RecordFields for tracing::span::Attributes<'_> {
    fn record_into(&self, visitor: &mut dyn Visit) {
        self.record(visitor);
    }
}

impl RecordFields for tracing::span::Record<'_> {
    fn record_into(&self, visitor: &mut dyn Visit) {
        self.record(visitor);
    }
}
