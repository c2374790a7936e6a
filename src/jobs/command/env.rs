//! The environment a `command` child starts with: not Batchboard's (which holds the
//! admin password, the database URL and the metrics token), but a short allowlist
//! from it, the names the job adds with `inherit_env`, and the job's own `env`.

use std::ffi::OsString;
use std::fmt;

use serde::Deserialize;

/// The variables a child gets from Batchboard's environment when they are set there:
/// what programs need to find each other, know their user, and speak its language.
pub const INHERITED_BY_DEFAULT: [&str; 12] = [
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
];

/// The prefix of Batchboard's own variables, which never reach a child.
const RESERVED_PREFIX: &str = "BATCHBOARD_";

/// The name of an environment variable: a letter or `_`, then letters, digits and `_`,
/// and not `BATCHBOARD_*`. Checked when the params are read, so a bad name is refused
/// at start-up (or on edit) rather than at the first run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct VariableName(String);

impl VariableName {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for VariableName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        let mut chars = name.chars();
        let well_formed = chars
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !well_formed {
            return Err(format!(
                "{name:?} is not an environment variable name: use letters, digits and _, not starting with a digit"
            ));
        }
        if is_reserved(&name) {
            return Err(format!(
                "{name:?}: variables named {RESERVED_PREFIX}* hold Batchboard's own settings and never reach a job"
            ));
        }
        Ok(Self(name))
    }
}

impl AsRef<std::ffi::OsStr> for VariableName {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_ref()
    }
}

impl fmt::Display for VariableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_reserved(name: &str) -> bool {
    name.get(..RESERVED_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(RESERVED_PREFIX))
}

/// The variables a child inherits: each of [`INHERITED_BY_DEFAULT`] and `extra` that
/// `lookup` (Batchboard's environment) has, in that order, without repeats.
/// `BATCHBOARD_*` is left out even if asked for: the names are checked when the params
/// are read, and this holds even for params that somehow were not.
pub fn inherited(
    extra: &[VariableName],
    lookup: impl Fn(&str) -> Option<OsString>,
) -> Vec<(String, OsString)> {
    let mut seen = Vec::new();
    INHERITED_BY_DEFAULT
        .iter()
        .copied()
        .chain(extra.iter().map(VariableName::as_str))
        .filter(|name| !is_reserved(name))
        .filter_map(|name| {
            if seen.contains(&name) {
                return None;
            }
            seen.push(name);
            lookup(name).map(|value| (name.to_owned(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Result<VariableName, String> {
        VariableName::try_from(text.to_owned())
    }

    #[test]
    fn names_are_checked_and_batchboard_ones_refused_with_a_reason() {
        for good in ["HTTP_PROXY", "_private", "lower_case1"] {
            assert!(name(good).is_ok(), "{good}");
        }
        for bad in ["", "1ABC", "A-B", "A=B", "A B", "Ä"] {
            let error = name(bad).expect_err(bad);
            assert!(
                error.contains("not an environment variable name"),
                "{error}"
            );
        }
        for reserved in ["BATCHBOARD_ADMIN_PASSWORD", "batchboard_database_url"] {
            let error = name(reserved).expect_err(reserved);
            assert!(error.contains("never reach a job"), "{error}");
        }
    }

    #[test]
    fn only_the_allowlist_and_the_named_extras_are_inherited() {
        let server = |name: &str| {
            [
                ("PATH", "/usr/bin"),
                ("HOME", "/root"),
                ("HTTP_PROXY", "http://proxy:3128"),
                ("AWS_SECRET_ACCESS_KEY", "aws-s3cret"),
                ("BATCHBOARD_ADMIN_PASSWORD", "admin-s3cret"),
            ]
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, value)| OsString::from(value))
        };
        let names = |extra: &[&str]| -> Vec<String> {
            let extra: Vec<VariableName> = extra
                .iter()
                .map(|text| VariableName((*text).to_owned()))
                .collect();
            inherited(&extra, server)
                .into_iter()
                .map(|(name, _)| name)
                .collect()
        };
        assert_eq!(names(&[]), ["PATH", "HOME"]);
        assert_eq!(
            names(&["HTTP_PROXY", "PATH", "NOT_SET"]),
            ["PATH", "HOME", "HTTP_PROXY"]
        );
        // Built past the checks, as a bug elsewhere might: still left out.
        assert_eq!(names(&["BATCHBOARD_ADMIN_PASSWORD"]), ["PATH", "HOME"]);
    }
}
