//! API tokens outside HTTP: the `token` commands of the CLI, beside [`crate::users`].

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use crate::store::{NewApiToken, Role, SharedStore, StoreError, TokenRef, TokenSecret};

/// Issues a token named `name` for the user `user` and stores it (the CLI's
/// `token create`). `role` defaults to the user's; `lifetime` (e.g. `30d`) to "until
/// revoked". Returns what was stored and the token's text, which exists nowhere else.
///
/// # Errors
/// When the user does not exist, the name, role or lifetime is refused, the user already
/// has a token of that name, or the store fails.
pub async fn issue(
    store: &SharedStore,
    user: &str,
    name: &str,
    role: Option<Role>,
    lifetime: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<(NewApiToken, TokenSecret)> {
    let owner = store
        .user_by_name(user)
        .await?
        .with_context(|| format!("no user named {user:?}"))?;
    let role = role.unwrap_or(owner.role);
    let (token, secret) = NewApiToken::issue(&owner, name, role, lifetime, now)?;
    match store.create_token(&token, now).await {
        Ok(_) => Ok((token, secret)),
        Err(StoreError::Conflict) => anyhow::bail!("{user} already has a token named {name:?}"),
        Err(error) => Err(error.into()),
    }
}

/// Revokes the user `user`'s live token named `name` (the CLI's `token revoke`).
///
/// # Errors
/// When the user does not exist, has no live token of that name, or the store fails.
pub async fn revoke(
    store: &SharedStore,
    user: &str,
    name: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let owner = store
        .user_by_name(user)
        .await?
        .with_context(|| format!("no user named {user:?}"))?;
    match store
        .revoke_token(owner.id, TokenRef::Name(name), now)
        .await
    {
        Ok(_) => Ok(()),
        Err(StoreError::NotFound) => anyhow::bail!("{user} has no live token named {name:?}"),
        Err(error) => Err(error.into()),
    }
}
