//! How much of a run's log is kept, and which fields are too sensitive to keep.

use crate::secrets::RedactionList;

/// Lines kept per run when the settings say nothing else.
pub const DEFAULT_MAX_LINES: u32 = 10_000;

/// The rules every run's log follows: a cap on its length and the redaction of
/// secret-looking fields. Shared by all runs (`Arc<RunLogPolicy>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLogPolicy {
    /// Lines kept per run; later lines are counted, not kept.
    pub max_lines: u32,
    redaction: RedactionList,
}

impl RunLogPolicy {
    /// A policy keeping at most `max_lines` lines per run and redacting fields whose
    /// name contains a built-in fragment or one of `extra_redact_fragments` (see
    /// [`RedactionList::new`]).
    pub fn new(max_lines: u32, extra_redact_fragments: &[String]) -> Self {
        Self {
            max_lines,
            redaction: RedactionList::new(extra_redact_fragments),
        }
    }

    /// Whether a field with this name must have its value replaced by
    /// [`REDACTED`](crate::secrets::REDACTED).
    pub fn redacts(&self, field_name: &str) -> bool {
        self.redaction.matches(field_name)
    }

    /// The redaction list, which params and URLs are redacted by too.
    pub fn redaction(&self) -> &RedactionList {
        &self.redaction
    }
}

impl Default for RunLogPolicy {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINES, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_redacted_by_the_settings_list_and_the_cap_is_kept() {
        let policy = RunLogPolicy::new(5, &["ssn".to_owned()]);
        assert!(policy.redacts("customer_SSN"));
        assert!(policy.redacts("X-Api-Key"));
        assert!(!policy.redacts("customer_name"));
        assert_eq!(policy.max_lines, 5);
    }
}
