//! API tokens as the store keeps them, and the rules a new token must follow.
//!
//! A token is `bb_` and 64 hex digits (32 random bytes). It is shown to its user once;
//! the store keeps only its SHA-256. A fast hash is right here, unlike for passwords:
//! the input is high-entropy random, so there is no dictionary a slow hash would defend.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rand::Rng as _;
use sha2::{Digest as _, Sha256};

use super::{Role, User};

/// What every token starts with, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "bb_";

/// The longest token name.
pub const MAX_TOKEN_NAME_LEN: usize = 64;

/// The longest lifetime a token may be given.
pub const MAX_LIFETIME_DAYS: i64 = 3650;

/// Last use is written at most this often per token: a script polling every second then
/// costs one write a minute, not one per request.
pub const TOUCH_INTERVAL: Duration = Duration::seconds(60);

/// A stored token. `Debug` leaves the hash out.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: i64,
    /// The owner.
    pub user_id: i64,
    /// The owner's label, unique among their live tokens.
    pub name: String,
    /// Lowercase hex SHA-256 of the token text.
    pub token_hash: String,
    /// The most the token allows; the owner's current role caps it at each use.
    pub role: Role,
    pub created_at: DateTime<Utc>,
    /// `None`: never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Within [`TOUCH_INTERVAL`] of the real last use.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiToken {
    /// Whether the token's lifetime is over at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|expires| expires <= now)
    }

    /// Whether the token still authenticates at `now` (neither revoked nor expired).
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && !self.is_expired(now)
    }

    /// Whether a use at `now` should be written down (see [`TOUCH_INTERVAL`]).
    pub fn needs_touch(&self, now: DateTime<Utc>) -> bool {
        self.last_used_at
            .is_none_or(|last| now - last >= TOUCH_INTERVAL)
    }

    /// The role a request with this token gets from `owner`: the lower of the token's and
    /// the owner's current role (an owner demoted since creation takes their tokens down
    /// with them); `None` when the owner is disabled.
    pub fn effective_role(&self, owner: &User) -> Option<Role> {
        (!owner.disabled).then(|| self.role.min(owner.role))
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("name", &self.name)
            .field("token_hash", &"<hidden>")
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("last_used_at", &self.last_used_at)
            .field("revoked_at", &self.revoked_at)
            .finish()
    }
}

/// A token to store; built by [`NewApiToken::issue`], which also makes its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct NewApiToken {
    pub user_id: i64,
    pub name: String,
    pub token_hash: String,
    pub role: Role,
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for NewApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiToken")
            .field("user_id", &self.user_id)
            .field("name", &self.name)
            .field("token_hash", &"<hidden>")
            .field("role", &self.role)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Which of a user's live tokens: by id (the console's revoke button) or by name (the CLI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRef<'a> {
    Id(i64),
    Name(&'a str),
}

/// A token's text, to show its user once. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// A fresh random token.
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::rng().random();
        let mut text = String::with_capacity(TOKEN_PREFIX.len() + 64);
        text.push_str(TOKEN_PREFIX);
        for byte in bytes {
            text.push_str(&format!("{byte:02x}"));
        }
        Self(text)
    }

    /// The text the user copies.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the store keeps of it.
    pub fn hash(&self) -> String {
        hash_token(&self.0)
    }
}

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSecret(<hidden>)")
    }
}

/// The stored form of a presented token: lowercase hex SHA-256 of its text.
pub fn hash_token(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Why a token cannot be issued: a message per field (`name`, `role`, `expires`).
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("the token was not created: {}", summary(.0))]
pub struct IssueErrors(pub BTreeMap<&'static str, String>);

fn summary(fields: &BTreeMap<&'static str, String>) -> String {
    fields
        .iter()
        .map(|(field, message)| format!("{field}: {message}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl NewApiToken {
    /// Checks a request for a token of `owner` and, when it is acceptable, returns the
    /// record to store and the secret to show. `lifetime` is a duration such as `30d`
    /// (empty or `None`: never expires).
    ///
    /// # Errors
    /// [`IssueErrors`] naming each bad field: a name that is not a plain slug, a role
    /// above the owner's, a lifetime that does not parse or is over ten years, or an
    /// owner who is disabled (reported on `role`).
    pub fn issue(
        owner: &User,
        name: &str,
        role: Role,
        lifetime: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(Self, TokenSecret), IssueErrors> {
        let mut errors = BTreeMap::new();
        if let Err(message) = validate_token_name(name) {
            errors.insert("name", message);
        }
        if owner.disabled {
            errors.insert("role", "a disabled user cannot have tokens".into());
        } else if role > owner.role {
            errors.insert(
                "role",
                format!(
                    "a token cannot have more than its user's role ({})",
                    owner.role
                ),
            );
        }
        let expires_at = match lifetime.map(str::trim).filter(|text| !text.is_empty()) {
            None => None,
            Some(text) => match parse_lifetime(text) {
                Ok(lifetime) => Some(now + lifetime),
                Err(message) => {
                    errors.insert("expires", message);
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(IssueErrors(errors));
        }
        let secret = TokenSecret::generate();
        let token = Self {
            user_id: owner.id,
            name: name.to_owned(),
            token_hash: secret.hash(),
            role,
            expires_at,
        };
        Ok((token, secret))
    }
}

/// A token name: 1–64 lowercase letters, digits, `-`, `_` and `.`, starting with a letter
/// or digit (it is typed on the command line to revoke the token).
///
/// # Errors
/// A message for the form.
pub fn validate_token_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > MAX_TOKEN_NAME_LEN {
        Err(format!("use 1 to {MAX_TOKEN_NAME_LEN} characters"))
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        Err("start with a lowercase letter or a digit".into())
    } else if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
    {
        Err("use only lowercase letters, digits, '-', '_' and '.'".into())
    } else {
        Ok(())
    }
}

/// A lifetime such as `30d` or `12h`, at most [`MAX_LIFETIME_DAYS`].
///
/// # Errors
/// A message for the form.
pub fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let parsed = crate::schedule::parse_duration(text).map_err(|error| error.0)?;
    let too_long = || format!("use at most {MAX_LIFETIME_DAYS}d");
    let lifetime = Duration::from_std(parsed).map_err(|_| too_long())?;
    if lifetime > Duration::days(MAX_LIFETIME_DAYS) {
        return Err(too_long());
    }
    Ok(lifetime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(role: Role) -> User {
        User {
            id: 7,
            name: "ops".into(),
            password_hash: String::new(),
            role,
            disabled: false,
            must_change_password: false,
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn secrets_are_prefixed_random_hex_and_only_their_hash_is_kept() {
        let secret = TokenSecret::generate();
        let text = secret.expose();
        assert!(text.starts_with(TOKEN_PREFIX));
        assert_eq!(text.len(), TOKEN_PREFIX.len() + 64);
        assert_ne!(secret, TokenSecret::generate());
        assert_eq!(secret.hash(), hash_token(text));
        assert_eq!(secret.hash().len(), 64);
        assert!(!format!("{secret:?}").contains(text));
    }

    #[test]
    fn the_hash_is_sha256_in_lowercase_hex() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_token_cannot_outrank_its_user_and_bad_fields_are_named() {
        let now = DateTime::UNIX_EPOCH;
        let refused = NewApiToken::issue(
            &owner(Role::Operator),
            "Bad Name",
            Role::Admin,
            Some("5x"),
            now,
        )
        .expect_err("three bad fields");
        assert_eq!(
            refused.0.keys().copied().collect::<Vec<_>>(),
            ["expires", "name", "role"]
        );
        let (token, secret) =
            NewApiToken::issue(&owner(Role::Operator), "ci", Role::Viewer, Some("30d"), now)
                .expect("a valid request");
        assert_eq!(token.user_id, 7);
        assert_eq!(token.expires_at, Some(now + Duration::days(30)));
        assert_eq!(token.token_hash, secret.hash());
        let (forever, _) =
            NewApiToken::issue(&owner(Role::Viewer), "x", Role::Viewer, Some(" "), now)
                .expect("no expiry");
        assert_eq!(forever.expires_at, None);
    }

    #[test]
    fn lifetimes_over_ten_years_are_refused() {
        assert!(parse_lifetime("3650d").is_ok());
        assert!(parse_lifetime("3651d").is_err());
        assert!(parse_lifetime("99999999999999d").is_err());
    }

    #[test]
    fn the_effective_role_is_the_lower_one_and_none_for_a_disabled_owner() {
        let token = ApiToken {
            id: 1,
            user_id: 7,
            name: "ci".into(),
            token_hash: String::new(),
            role: Role::Operator,
            created_at: DateTime::UNIX_EPOCH,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        };
        assert_eq!(
            token.effective_role(&owner(Role::Admin)),
            Some(Role::Operator)
        );
        assert_eq!(
            token.effective_role(&owner(Role::Viewer)),
            Some(Role::Viewer)
        );
        let mut disabled = owner(Role::Admin);
        disabled.disabled = true;
        assert_eq!(token.effective_role(&disabled), None);
    }

    #[test]
    fn last_use_is_written_at_most_once_a_minute() {
        let now = DateTime::UNIX_EPOCH + Duration::days(1);
        let mut token = ApiToken {
            id: 1,
            user_id: 7,
            name: "ci".into(),
            token_hash: String::new(),
            role: Role::Viewer,
            created_at: DateTime::UNIX_EPOCH,
            expires_at: Some(now),
            last_used_at: None,
            revoked_at: None,
        };
        assert!(token.needs_touch(now));
        token.last_used_at = Some(now - Duration::seconds(59));
        assert!(!token.needs_touch(now));
        token.last_used_at = Some(now - Duration::seconds(60));
        assert!(token.needs_touch(now));
        assert!(token.is_expired(now));
        assert!(!token.is_live(now));
    }
}
