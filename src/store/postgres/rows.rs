//! How model values are laid out in PostgreSQL rows: TIMESTAMPTZ instants, JSONB
//! documents, enums as their `as_str` text. The conversion back to the model is shared
//! with SQLite (`store::rows`).
//!
//! Instants are bound as chrono values, which sqlx sends as whole microseconds (finer
//! parts are dropped, as SQLite's INTEGER microseconds drop them), so the value read back
//! is exactly the value a compare-and-swap claim later sends.

use std::borrow::Cow;

pub(super) use crate::store::rows::decode_all;

/// The columns of `jobs`, in [`JobRow`] order.
pub(super) const JOB_COLUMNS: &str = "id, name, defaults, overrides, paused, removed_at, \
     next_run_at, version, created_at, updated_at";

/// The columns of `runs` (alias-free, the table must be named `runs`) plus the job's
/// name, as on SQLite; `attempt` is an INTEGER widened to the row's `i64`.
pub(super) const RUN_COLUMNS: &str = "runs.id, runs.job_id, \
     (SELECT jobs.name FROM jobs WHERE jobs.id = runs.job_id) AS job_name, \
     runs.trigger, runs.attempt::BIGINT AS attempt, runs.first_run_id, runs.status, \
     runs.scheduled_for, runs.started_at, runs.finished_at, runs.duration_ms, \
     runs.items_checked, runs.items_updated, runs.items_total, runs.error_kind, \
     runs.error_message, runs.summary, runs.instance_id, runs.retry_at";

type Instant = chrono::DateTime<chrono::Utc>;
type Json = serde_json::Value;

pub(super) type JobRow = crate::store::rows::JobRow<Instant, Json>;
pub(super) type RunRow = crate::store::rows::RunRow<Instant>;
pub(super) type LogRow = crate::store::rows::LogRow<Instant, Json>;
pub(super) type ChangeRow = crate::store::rows::ChangeRow<Instant, Json>;
pub(super) type UserRow = crate::store::rows::UserRow<Instant>;
pub(super) type TokenRow = crate::store::rows::TokenRow<Instant>;

/// `text` as PostgreSQL can store it. TEXT and JSONB refuse the NUL character, which
/// SQLite keeps and a job's output may contain; one such log line would fail its whole
/// write batch (everybody's claims and finishes with it), so NUL becomes U+FFFD.
pub(super) fn text(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// [`text`] for optional text.
pub(super) fn opt_text(value: Option<&str>) -> Option<String> {
    value.map(|value| text(value).into_owned())
}

/// [`text`] for every string and key of a JSON document.
pub(super) fn json(value: &Json) -> Cow<'_, Json> {
    fn has_nul(value: &Json) -> bool {
        match value {
            Json::String(s) => s.contains('\0'),
            Json::Array(items) => items.iter().any(has_nul),
            Json::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    fn clean(value: &Json) -> Json {
        match value {
            Json::String(s) => Json::String(text(s).into_owned()),
            Json::Array(items) => Json::Array(items.iter().map(clean).collect()),
            Json::Object(map) => Json::Object(
                map.iter()
                    .map(|(k, v)| (text(k).into_owned(), clean(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    if has_nul(value) {
        Cow::Owned(clean(value))
    } else {
        Cow::Borrowed(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_characters_become_replacement_characters_and_the_rest_is_kept() {
        assert!(matches!(text("fine"), Cow::Borrowed("fine")));
        assert_eq!(text("a\0b"), "a\u{FFFD}b");
        let doc = serde_json::json!({ "k\0": ["x\0", 1, { "y": "\0" }], "ok": true });
        assert_eq!(
            json(&doc).into_owned(),
            serde_json::json!({ "k\u{FFFD}": ["x\u{FFFD}", 1, { "y": "\u{FFFD}" }], "ok": true })
        );
        let clean = serde_json::json!({ "a": "b" });
        assert!(matches!(json(&clean), Cow::Borrowed(_)));
    }
}
