//! Console users outside HTTP: the rules for names and passwords, password hashing, the
//! first admin on a fresh database, and the `user` commands of the CLI.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use rand::Rng as _;
use validator::ValidationError;

use crate::password_checks::CheckSlot;
use crate::store::{NewUser, Role, SharedStore, StoreError, User, UserUpdate};

/// The shortest password accepted anywhere.
pub const MIN_PASSWORD_LEN: usize = 12;

/// The longest user name.
pub const MAX_NAME_LEN: usize = 64;

/// Name of the user created on first start.
pub const FIRST_ADMIN_NAME: &str = "admin";

/// Length of a generated first-admin password.
const GENERATED_PASSWORD_LEN: usize = 20;

/// A user name: 1–64 of lowercase ASCII letters, digits, `-`, `_` and `.`, starting with a
/// letter or digit. (Names appear in URLs and in the history, so they stay plain.)
///
/// # Errors
/// A [`ValidationError`] with a message for the form.
pub fn validate_name(name: &str) -> Result<(), ValidationError> {
    let message = if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        Some("use 1 to 64 characters")
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        Some("start with a lowercase letter or a digit")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
    {
        Some("use only lowercase letters, digits, '-', '_' and '.'")
    } else {
        None
    };
    match message {
        Some(message) => Err(ValidationError::new("name").with_message(message.into())),
        None => Ok(()),
    }
}

/// A password long enough to keep.
///
/// # Errors
/// A [`ValidationError`] with a message for the form.
pub fn validate_password(password: &str) -> Result<(), ValidationError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        Err(ValidationError::new("password")
            .with_message(format!("use at least {MIN_PASSWORD_LEN} characters").into()))
    } else {
        Ok(())
    }
}

/// The argon2id hash of `password`, computed off the async threads (it takes tens of
/// milliseconds by design).
///
/// # Errors
/// When the blocking task cannot run.
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || password_auth::generate_hash(password))
        .await
        .context("hashing the password")
}

/// Whether `password` matches `hash`, checked off the async threads while holding
/// `slot` (released when the hash is done, even if the caller has gone). Without a hash
/// (an unknown user) a dummy hash is checked anyway, so the answer takes as long either
/// way and timing does not tell whether a name exists.
///
/// # Errors
/// When the blocking task cannot run.
pub async fn verify_password(
    password: String,
    hash: Option<String>,
    slot: CheckSlot,
) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let matches = match hash {
            Some(hash) => password_auth::verify_password(password, &hash).is_ok(),
            None => {
                let _ = password_auth::verify_password(password, dummy_hash());
                false
            }
        };
        drop(slot);
        matches
    })
    .await
    .context("checking the password")
}

/// A fixed hash with the same parameters as real ones, computed once.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| password_auth::generate_hash("no user has this password"))
}

/// A random password of letters and digits.
pub fn generate_password() -> String {
    rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(GENERATED_PASSWORD_LEN)
        .map(char::from)
        .collect()
}

/// How the first admin was created.
#[derive(Clone, PartialEq, Eq)]
pub enum FirstAdmin {
    /// With the password from `BATCHBOARD_ADMIN_PASSWORD`.
    FromSettings,
    /// With this generated password, to be shown once.
    Generated(String),
}

impl std::fmt::Debug for FirstAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::FromSettings => f.write_str("FromSettings"),
            Self::Generated(_) => f.write_str("Generated(<hidden>)"),
        }
    }
}

/// Creates the user `admin` when the store has no user at all: with `admin_password`
/// when given, else with a generated one (returned so the caller can show it once).
/// Returns `None` when users already exist.
///
/// # Errors
/// When `admin_password` is too short, or the store fails.
pub async fn ensure_first_admin(
    store: &SharedStore,
    admin_password: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<FirstAdmin>> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let (password, outcome) = match admin_password {
        Some(password) => {
            validate_password(password).map_err(|_| {
                anyhow::anyhow!(
                    "BATCHBOARD_ADMIN_PASSWORD is too short: use at least {MIN_PASSWORD_LEN} characters"
                )
            })?;
            (password.to_owned(), FirstAdmin::FromSettings)
        }
        None => {
            let password = generate_password();
            (password.clone(), FirstAdmin::Generated(password))
        }
    };
    let user = NewUser {
        name: FIRST_ADMIN_NAME.into(),
        password_hash: hash_password(password).await?,
        role: Role::Admin,
        // A generated password was printed where others may read it; one the operator
        // chose is theirs to keep.
        must_change_password: matches!(outcome, FirstAdmin::Generated(_)),
    };
    match store.create_user(&user, now).await {
        Ok(_) => Ok(Some(outcome)),
        // Another instance created it first.
        Err(StoreError::Conflict) => Ok(None),
        Err(error) => Err(error).context("creating the first admin"),
    }
}

/// Prints how to sign in after [`ensure_first_admin`] created the admin. On stderr with
/// `eprintln!`, never through `tracing` and never on stdout, where the logs go: a
/// generated password must not land in a log collector.
pub fn announce_first_admin(first_admin: &FirstAdmin) {
    match first_admin {
        FirstAdmin::FromSettings => eprintln!(
            "Created the user {FIRST_ADMIN_NAME:?} with the password from BATCHBOARD_ADMIN_PASSWORD."
        ),
        FirstAdmin::Generated(password) => eprintln!(
            "Created the user {FIRST_ADMIN_NAME:?} with the password {password}\n\
             It is shown only this once, and must be changed at the first sign-in."
        ),
    }
}

/// Creates a user after checking its name and password (the CLI's `user add`).
///
/// # Errors
/// When the name or password is invalid, the name is taken, or the store fails.
pub async fn add_user(
    store: &SharedStore,
    name: &str,
    role: Role,
    password: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<User> {
    check(validate_name(name), "name")?;
    check(validate_password(password), "password")?;
    let user = NewUser {
        name: name.to_owned(),
        password_hash: hash_password(password.to_owned()).await?,
        role,
        // Whoever runs the CLI has the database itself; the password is theirs to give.
        must_change_password: false,
    };
    match store.create_user(&user, now).await {
        Ok(user) => Ok(user),
        Err(StoreError::Conflict) => anyhow::bail!("a user named {name:?} already exists"),
        Err(error) => Err(error.into()),
    }
}

/// Sets a user's password after checking it (the CLI's `user passwd`), and clears a
/// pending forced change: the operator at the server chose it. Sessions opened with the
/// old password end at their next request (the session check compares password hashes).
///
/// # Errors
/// When the user does not exist, the password is too short, or the store fails.
pub async fn set_password(
    store: &SharedStore,
    name: &str,
    password: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<User> {
    check(validate_password(password), "password")?;
    let user = store
        .user_by_name(name)
        .await?
        .with_context(|| format!("no user named {name:?}"))?;
    let update = UserUpdate {
        password_hash: Some(hash_password(password.to_owned()).await?),
        must_change_password: Some(false),
        ..UserUpdate::default()
    };
    Ok(store.update_user(user.id, &update, now).await?)
}

fn check(result: Result<(), ValidationError>, field: &str) -> anyhow::Result<()> {
    result.map_err(|error| {
        let message = error.message.unwrap_or_default();
        anyhow::anyhow!("invalid {field}: {message}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_slugs_of_at_most_64_characters() {
        assert!(validate_name("ops-team_1.a").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("Admin").is_err());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name(&"a".repeat(64)).is_ok());
        assert!(validate_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn passwords_need_twelve_characters() {
        assert!(validate_password("elevenchars").is_err());
        assert!(validate_password("twelve chars").is_ok());
    }

    #[test]
    fn generated_passwords_are_twenty_letters_or_digits() {
        let password = generate_password();
        assert_eq!(password.len(), 20);
        assert!(password.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
