//! Redaction of params (and of settings holding params) for display, and the list of
//! values it hides, for masking. One walk serves both, so what is hidden on a page is
//! exactly what is masked in the run's output.

use serde_json::Value;

use super::REDACTED;
use super::list::RedactionList;
use super::url::redact_urls_in;

/// Keys whose values are all secret, whatever their own names: a job's environment
/// variables and request headers. The names inside stay visible.
const SECRET_MAPS: [&str; 2] = ["env", "headers"];

/// `params` as it may be shown: see the [module documentation](super). Works on a
/// whole settings object too (the `params` inside it are found at any depth).
pub fn redact_params(params: &Value, list: &RedactionList) -> Value {
    walk(params, list, &mut |_| {})
}

/// The value of setting `field` as it may be shown (e.g. a history row's old or new
/// value): redacted as if it stood under that key in a settings object.
pub fn redact_field(field: &str, value: &Value, list: &RedactionList) -> Value {
    entry(field, value, list, &mut |_| {})
}

/// Every value [`redact_params`] hides in `params`, to be masked in a run's output.
/// Short ones are included; the mask decides what is too short to mask.
pub fn secret_values(params: &Value, list: &RedactionList) -> Vec<String> {
    let mut found = Vec::new();
    walk(params, list, &mut |secret| found.push(secret));
    found
}

fn walk(value: &Value, list: &RedactionList, hidden: &mut dyn FnMut(String)) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| (key.clone(), entry(key, value, list, hidden)))
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|item| walk(item, list, hidden)).collect())
        }
        Value::String(text) => match redact_urls_in(text, list) {
            Some(redacted) => {
                redacted.hidden.into_iter().for_each(&mut *hidden);
                Value::String(redacted.shown)
            }
            None => value.clone(),
        },
        Value::Null | Value::Bool(_) | Value::Number(_) => value.clone(),
    }
}

/// The value under `key` of an object.
fn entry(key: &str, value: &Value, list: &RedactionList, hidden: &mut dyn FnMut(String)) -> Value {
    let is_secret_map = SECRET_MAPS.iter().any(|map| key.eq_ignore_ascii_case(map));
    match value {
        Value::Object(names) if is_secret_map => Value::Object(
            names
                .iter()
                .map(|(name, value)| (name.clone(), hide(value, hidden)))
                .collect(),
        ),
        _ if is_secret_map || list.matches(key) => hide(value, hidden),
        _ => walk(value, list, hidden),
    }
}

/// `[redacted]` in place of `value`, whose contents are reported as hidden. An unset
/// value stays unset: there is nothing to hide, and "none" is worth seeing.
fn hide(value: &Value, hidden: &mut dyn FnMut(String)) -> Value {
    match value {
        Value::Null => Value::Null,
        _ => {
            report(value, hidden);
            Value::String(REDACTED.to_owned())
        }
    }
}

fn report(value: &Value, hidden: &mut dyn FnMut(String)) {
    match value {
        Value::String(text) => hidden(text.clone()),
        Value::Number(number) => hidden(number.to_string()),
        Value::Array(items) => items.iter().for_each(|item| report(item, hidden)),
        Value::Object(fields) => fields.values().for_each(|item| report(item, hidden)),
        // `true` and `false` are no secret, and masking them would garble every log.
        Value::Null | Value::Bool(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn redact(value: Value) -> Value {
        redact_params(&value, &RedactionList::default())
    }

    #[test]
    fn redaction_follows_the_table() {
        // (what the job says, what is shown)
        let table = [
            (
                json!({ "program": "psql", "env": { "PGPASSWORD": "pg-s3cret", "PGHOST": "db" } }),
                json!({ "program": "psql", "env": { "PGPASSWORD": "[redacted]", "PGHOST": "[redacted]" } }),
            ),
            (
                json!({ "url": "https://x.example/", "headers": { "Authorization": "Bearer b-s3cret" } }),
                json!({ "url": "https://x.example/", "headers": { "Authorization": "[redacted]" } }),
            ),
            (
                json!({ "url": "https://deploy:pw-s3cret@x.example/hook?token=t-s3cret&page=2" }),
                json!({ "url": "https://[redacted]@x.example/hook?token=[redacted]&page=2" }),
            ),
            (
                json!({ "db_password": "p-s3cret", "api_token": 12345, "retries": 3 }),
                json!({ "db_password": "[redacted]", "api_token": "[redacted]", "retries": 3 }),
            ),
            (
                json!({ "outer": { "list": [{ "client_secret": "c-s3cret", "id": "visible" }] } }),
                json!({ "outer": { "list": [{ "client_secret": "[redacted]", "id": "visible" }] } }),
            ),
            (
                json!({ "credentials": { "user": "u", "pass": "nested-s3cret" } }),
                json!({ "credentials": "[redacted]" }),
            ),
            (
                json!({ "args": ["-c", "curl https://u:a-s3cret@x.example/", "--verbose"] }),
                json!({ "args": ["-c", "curl https://[redacted]@x.example/", "--verbose"] }),
            ),
            (
                json!({ "env": "not-a-map-s3cret", "headers": null }),
                json!({ "env": "[redacted]", "headers": null }),
            ),
            (
                json!({ "program": "/bin/true", "args": ["a", "b"], "ok_exit_codes": [0, 1], "cwd": "/srv" }),
                json!({ "program": "/bin/true", "args": ["a", "b"], "ok_exit_codes": [0, 1], "cwd": "/srv" }),
            ),
        ];
        for (params, shown) in table {
            assert_eq!(redact(params.clone()), shown, "for {params}");
        }
    }

    #[test]
    fn params_inside_settings_are_found_at_any_depth() {
        let settings = json!({
            "name": "export",
            "every": "1h",
            "params": { "env": { "API_TOKEN": "t-s3cret" } },
        });
        assert_eq!(
            redact(settings),
            json!({ "name": "export", "every": "1h", "params": { "env": { "API_TOKEN": "[redacted]" } } })
        );
    }

    #[test]
    fn a_settings_list_fragment_redacts_matching_keys() {
        let list = RedactionList::new(&["iban".to_owned()]);
        let shown = redact_params(&json!({ "payee_IBAN": "DE00123", "name": "Bob" }), &list);
        assert_eq!(shown, json!({ "payee_IBAN": "[redacted]", "name": "Bob" }));
    }

    #[test]
    fn a_history_value_is_redacted_as_the_setting_it_belongs_to() {
        let list = RedactionList::default();
        let params = json!({ "headers": { "Authorization": "Bearer b-s3cret" } });
        assert_eq!(
            redact_field("params", &params, &list),
            json!({ "headers": { "Authorization": "[redacted]" } })
        );
        assert_eq!(redact_field("every", &json!("5m"), &list), json!("5m"));
    }

    #[test]
    fn every_hidden_value_is_listed_for_masking() {
        let params = json!({
            "url": "https://deploy:pw-s3cret@x.example/hook?token=t-s3cret",
            "headers": { "Authorization": "Bearer b-s3cret" },
            "env": { "PGPASSWORD": "pg-s3cret", "DEBUG": true },
            "client_secret": ["c1-s3cret", 42],
            "program": "visible-program",
        });
        let mut found = secret_values(&params, &RedactionList::default());
        found.sort();
        found.dedup();
        assert_eq!(
            found,
            [
                "42",
                "Bearer b-s3cret",
                "c1-s3cret",
                "pg-s3cret",
                "pw-s3cret",
                "t-s3cret"
            ]
        );
    }
}
