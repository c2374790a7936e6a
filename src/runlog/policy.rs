//! How much of a run's log is kept, and which fields are too sensitive to keep.

/// Lines kept per run when the settings say nothing else.
pub const DEFAULT_MAX_LINES: u32 = 10_000;

/// What replaces the value of a field whose name looks secret.
pub const REDACTED: &str = "[redacted]";

/// Field-name fragments that always mark a field as secret.
pub const BUILT_IN_REDACT_FRAGMENTS: [&str; 10] = [
    "password",
    "passwd",
    "token",
    "secret",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "private_key",
];

/// The rules every run's log follows: a cap on its length and the redaction of
/// secret-looking fields. Shared by all runs (`Arc<RunLogPolicy>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLogPolicy {
    /// Lines kept per run; later lines are counted, not kept.
    pub max_lines: u32,
    /// Normalised fragments (see [`normalise`]); a field is secret when its normalised
    /// name contains one of them.
    redact: Vec<String>,
}

impl RunLogPolicy {
    /// A policy keeping at most `max_lines` lines per run and redacting fields whose
    /// name contains a built-in fragment ([`BUILT_IN_REDACT_FRAGMENTS`]) or one of
    /// `extra_redact_fragments`.
    ///
    /// Matching ignores case and punctuation, so `api_key` also catches `X-Api-Key`
    /// and `apiKey`. Fragments with no letter or digit are ignored: they would match
    /// every field and hide the whole log.
    pub fn new(max_lines: u32, extra_redact_fragments: &[String]) -> Self {
        let mut redact: Vec<String> = BUILT_IN_REDACT_FRAGMENTS
            .iter()
            .copied()
            .chain(extra_redact_fragments.iter().map(String::as_str))
            .map(normalise)
            .filter(|fragment| !fragment.is_empty())
            .collect();
        redact.sort_unstable();
        redact.dedup();
        Self { max_lines, redact }
    }

    /// Whether a field with this name must have its value replaced by [`REDACTED`].
    pub fn redacts(&self, field_name: &str) -> bool {
        let name = normalise(field_name);
        self.redact
            .iter()
            .any(|fragment| name.contains(fragment.as_str()))
    }
}

impl Default for RunLogPolicy {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINES, &[])
    }
}

/// Lower case with everything but letters and digits removed, so that `X-Auth-Token`,
/// `x_auth_token` and `xAuthToken` compare equal.
fn normalise(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_fragments_match_whatever_the_case_or_punctuation() {
        let policy = RunLogPolicy::default();
        for name in [
            "password",
            "db_passwd",
            "Authorization",
            "X-Auth-Token",
            "user_secret",
            "api_key",
            "X-Api-Key",
            "apiKey",
            "set_cookie",
            "aws_credentials",
            "PRIVATE_KEY_PEM",
        ] {
            assert!(policy.redacts(name), "{name} should be redacted");
        }
        for name in ["user", "count", "url", "keyword", "status"] {
            assert!(!policy.redacts(name), "{name} should be kept");
        }
    }

    #[test]
    fn extra_fragments_are_added_and_empty_ones_ignored() {
        let policy = RunLogPolicy::new(5, &["ssn".to_owned(), " - ".to_owned()]);
        assert!(policy.redacts("customer_SSN"));
        assert!(!policy.redacts("customer_name"));
        assert_eq!(policy.max_lines, 5);
    }
}
