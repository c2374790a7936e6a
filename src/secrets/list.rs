//! The redaction list: which names mark a value as secret.

/// Name fragments that always mark a value as secret.
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

/// Name fragments that mark a value as secret: the built-in ones plus the settings'
/// `[runlog] redact`. Used for log fields, params keys and URL query keys alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactionList {
    /// Normalised fragments (see [`normalise`]), sorted and without duplicates.
    fragments: Vec<String>,
}

impl RedactionList {
    /// The built-in fragments ([`BUILT_IN_REDACT_FRAGMENTS`]) plus `extra_fragments`.
    ///
    /// Matching ignores case and punctuation, so `api_key` also catches `X-Api-Key`
    /// and `apiKey`. Fragments with no letter or digit are ignored: they would match
    /// every name and hide everything.
    pub fn new(extra_fragments: &[String]) -> Self {
        let mut fragments: Vec<String> = BUILT_IN_REDACT_FRAGMENTS
            .iter()
            .copied()
            .chain(extra_fragments.iter().map(String::as_str))
            .map(normalise)
            .filter(|fragment| !fragment.is_empty())
            .collect();
        fragments.sort_unstable();
        fragments.dedup();
        Self { fragments }
    }

    /// Whether a value named `name` is secret.
    pub fn matches(&self, name: &str) -> bool {
        let name = normalise(name);
        self.fragments
            .iter()
            .any(|fragment| name.contains(fragment.as_str()))
    }
}

impl Default for RedactionList {
    fn default() -> Self {
        Self::new(&[])
    }
}

/// Lower case with everything but letters and digits removed, so that `X-Auth-Token`,
/// `x_auth_token` and `xAuthToken` compare equal.
pub(super) fn normalise(text: &str) -> String {
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
        let list = RedactionList::default();
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
            assert!(list.matches(name), "{name} should be redacted");
        }
        for name in ["user", "count", "url", "keyword", "status"] {
            assert!(!list.matches(name), "{name} should be kept");
        }
    }

    #[test]
    fn extra_fragments_are_added_and_empty_ones_ignored() {
        let list = RedactionList::new(&["ssn".to_owned(), " - ".to_owned()]);
        assert!(list.matches("customer_SSN"));
        assert!(!list.matches("customer_name"));
    }
}
