use std::fmt;
use std::str::FromStr;

/// A job's name: a slug of lowercase letters, digits, `-` and `_`, 1 to 64 characters,
/// starting with a letter or digit. It appears in URLs, so nothing else is allowed.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct JobName(String);

/// Why a string is not a job name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobNameError {
    #[error("a job name cannot be empty")]
    Empty,
    #[error("a job name can be at most 64 characters long")]
    TooLong,
    #[error("a job name must start with a lowercase letter or a digit")]
    BadStart,
    #[error("a job name may only contain lowercase letters, digits, '-' and '_' (found {0:?})")]
    BadCharacter(char),
}

impl JobName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for JobName {
    type Err = JobNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let first = s.chars().next().ok_or(JobNameError::Empty)?;
        if s.len() > 64 {
            return Err(JobNameError::TooLong);
        }
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return Err(JobNameError::BadStart);
        }
        if let Some(bad) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
        {
            return Err(JobNameError::BadCharacter(bad));
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for JobName {
    type Error = JobNameError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<JobName> for String {
    fn from(name: JobName) -> Self {
        name.0
    }
}

impl fmt::Display for JobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for JobName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_slugs_and_refuses_everything_else_with_a_reason() {
        assert!("inventory-sync".parse::<JobName>().is_ok());
        assert!("a_1".parse::<JobName>().is_ok());
        assert_eq!("".parse::<JobName>(), Err(JobNameError::Empty));
        assert_eq!("-x".parse::<JobName>(), Err(JobNameError::BadStart));
        assert_eq!("Big".parse::<JobName>(), Err(JobNameError::BadStart));
        assert_eq!(
            "a b".parse::<JobName>(),
            Err(JobNameError::BadCharacter(' '))
        );
        assert_eq!(
            "a".repeat(65).parse::<JobName>(),
            Err(JobNameError::TooLong)
        );
    }
}
