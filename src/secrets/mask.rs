//! Masking: replacing every occurrence of a run's registered secrets in its output.

use std::borrow::Cow;
use std::fmt;
use std::sync::RwLock;

use serde_json::Value;

use super::REDACTED;

/// Values shorter than this many characters are not masked: replacing every `on`, `1`
/// or `yes` in a log would hide more than it protects (CI systems skip them too).
pub const MIN_MASKED_CHARS: usize = 4;

/// The secrets of one run, and the masking of its output with them.
///
/// Shared between the run's [`JobContext`](crate::job::JobContext) (where a handler
/// may register more, e.g. a token it obtained) and its log sink, and applied to the
/// run's error message and summary before they are written.
///
/// A secret that is printed in pieces, or transformed (base64, URL-encoded, reversed),
/// is not recognised.
#[derive(Default)]
pub struct SecretMask {
    // A std lock: held only to copy a few strings in or to search a line, never across
    // an await. Reads (every log line) vastly outnumber writes (run start).
    secrets: RwLock<Vec<String>>,
}

impl SecretMask {
    /// An empty mask.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `value`, so that it is masked from now on. A value shorter than
    /// [`MIN_MASKED_CHARS`] is ignored. Each line of a value with several lines is
    /// registered too (output is read a line at a time), and so is its escaped form
    /// (as `{:?}` writes it), which is how it appears in a logged list or string.
    pub fn register(&self, value: &str) {
        let mut forms = vec![value.to_owned()];
        if value.contains('\n') {
            forms.extend(
                value
                    .lines()
                    .map(|line| line.trim_end_matches('\r').to_owned()),
            );
        }
        let escaped: Vec<String> = forms
            .iter()
            .map(|form| {
                let debug = format!("{form:?}");
                debug[1..debug.len() - 1].to_owned()
            })
            .collect();
        forms.extend(escaped);
        let mut secrets = self
            .secrets
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for form in forms {
            if form.chars().count() >= MIN_MASKED_CHARS && !secrets.contains(&form) {
                secrets.push(form);
            }
        }
    }

    /// Registers each of `values` (see [`register`](Self::register)).
    pub fn register_all(&self, values: impl IntoIterator<Item = String>) {
        for value in values {
            self.register(&value);
        }
    }

    /// Whether nothing is registered (then masking costs nothing).
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// `text` with every occurrence of a registered secret replaced by `[redacted]`.
    /// Occurrences that overlap or touch become one `[redacted]`, so no part of either
    /// secret is left showing.
    pub fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let secrets = self.read();
        if secrets.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut found: Vec<(usize, usize)> = Vec::new();
        for secret in secrets.iter() {
            let mut from = 0;
            while let Some(at) = text[from..].find(secret.as_str()) {
                let start = from + at;
                found.push((start, start + secret.len()));
                // One character on, not past the match: occurrences may overlap.
                from = start + text[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
        if found.is_empty() {
            return Cow::Borrowed(text);
        }
        found.sort_unstable();
        let mut masked = String::with_capacity(text.len());
        let mut shown_up_to = 0;
        let mut current: Option<(usize, usize)> = None;
        for (start, end) in found {
            match &mut current {
                Some((_, current_end)) if start <= *current_end => {
                    *current_end = (*current_end).max(end);
                }
                _ => {
                    if let Some((current_start, current_end)) = current.take() {
                        masked.push_str(&text[shown_up_to..current_start]);
                        masked.push_str(REDACTED);
                        shown_up_to = current_end;
                    }
                    current = Some((start, end));
                }
            }
        }
        if let Some((start, end)) = current {
            masked.push_str(&text[shown_up_to..start]);
            masked.push_str(REDACTED);
            shown_up_to = end;
        }
        masked.push_str(&text[shown_up_to..]);
        Cow::Owned(masked)
    }

    /// [`mask`](Self::mask) applied to an owned string, without copying it when
    /// nothing is found.
    pub fn mask_owned(&self, text: String) -> String {
        match self.mask(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(masked) => masked,
        }
    }

    /// Masks every string inside `value` (object keys are names and stay).
    pub fn mask_json(&self, value: &mut Value) {
        match value {
            Value::String(text) => {
                if let Cow::Owned(masked) = self.mask(text) {
                    *text = masked;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.mask_json(item)),
            Value::Object(fields) => fields.values_mut().for_each(|item| self.mask_json(item)),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<String>> {
        self.secrets
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for SecretMask {
    // Never the values: a mask may end up in a debug log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretMask")
            .field("secrets", &self.read().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_with(secrets: &[&str]) -> SecretMask {
        let mask = SecretMask::new();
        for secret in secrets {
            mask.register(secret);
        }
        mask
    }

    #[test]
    fn every_occurrence_of_every_secret_is_replaced() {
        let mask = mask_with(&["hunter2-pass", "tok-abc123"]);
        assert_eq!(
            mask.mask("login hunter2-pass then tok-abc123, again hunter2-pass"),
            "login [redacted] then [redacted], again [redacted]"
        );
    }

    #[test]
    fn text_without_secrets_is_returned_as_it_is() {
        let mask = mask_with(&["hunter2-pass"]);
        assert!(matches!(mask.mask("nothing here"), Cow::Borrowed(_)));
        assert!(matches!(
            SecretMask::new().mask("anything"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn overlapping_and_nested_secrets_leave_no_piece_showing() {
        let mask = mask_with(&["abcdef", "defghi", "long-secret-value", "secret"]);
        assert_eq!(mask.mask("x abcdefghi y"), "x [redacted] y");
        assert_eq!(mask.mask("a long-secret-value b"), "a [redacted] b");
        assert_eq!(mask.mask("a secret b"), "a [redacted] b");
        // Occurrences of one secret that overlap each other.
        let mask = mask_with(&["abab"]);
        assert_eq!(mask.mask("ababab!"), "[redacted]!");
    }

    #[test]
    fn values_shorter_than_four_characters_are_not_masked() {
        let mask = mask_with(&["abc", "on", "", "ok12"]);
        assert_eq!(mask.mask("abc on ok12"), "abc on [redacted]");
    }

    #[test]
    fn each_line_of_a_multi_line_secret_and_its_escaped_form_are_masked() {
        let mask = mask_with(&["-----BEGIN KEY-----\r\nMIIEsecretbody\n-----END KEY-----"]);
        assert_eq!(mask.mask("line: MIIEsecretbody"), "line: [redacted]");
        let mask = mask_with(&["pa\"ss\\word"]);
        let logged = format!("{:?}", vec!["-c", "pa\"ss\\word"]);
        assert_eq!(mask.mask(&logged), r#"["-c", "[redacted]"]"#);
    }

    #[test]
    fn json_strings_are_masked_at_any_depth_and_keys_kept() {
        let mask = mask_with(&["s3cr3t-value"]);
        let mut value = serde_json::json!({
            "s3cr3t-value": "s3cr3t-value",
            "args": ["x", "--key=s3cr3t-value"],
            "n": 4,
        });
        mask.mask_json(&mut value);
        assert_eq!(
            value,
            serde_json::json!({
                "s3cr3t-value": "[redacted]",
                "args": ["x", "--key=[redacted]"],
                "n": 4,
            })
        );
    }

    #[test]
    fn unicode_text_around_secrets_survives() {
        let mask = mask_with(&["geheimnis"]);
        assert_eq!(mask.mask("ä geheimnis ö"), "ä [redacted] ö");
    }

    #[test]
    fn debug_never_shows_the_secrets() {
        let mask = mask_with(&["hunter2-pass"]);
        assert!(!format!("{mask:?}").contains("hunter2"));
    }
}
