//! One sign-in attempt, from its name and password to a verdict: the throttle counts it
//! before anything else ([`super::throttle`]), its password check waits for a slot
//! ([`crate::password_checks`]), and only then is the password compared.

use std::net::IpAddr;

use super::auth::{AuthSession, Credentials};
use super::device::DeviceId;
use super::error::WebError;
use super::throttle::Refusal;
use crate::password_checks::Busy;
use crate::store::User;
use crate::web::state::AppState;

/// What became of an attempt.
#[derive(Debug)]
pub enum Verdict {
    /// The name and password match an active account.
    SignedIn(User),
    /// They do not (or the name cannot be a user's): one message for every case.
    Failed,
    /// Refused before the password was checked; it was not counted.
    Refused(Refusal),
    /// Every password-check slot was busy; it was not counted.
    Busy(Busy),
}

/// One attempt to sign in as `name` with `password`, from `address`, by a browser
/// showing `device` (a valid device cookie for `name`, if any).
pub struct Attempt<'a> {
    pub name: &'a str,
    pub password: String,
    pub address: Option<IpAddr>,
    pub device: Option<&'a DeviceId>,
}

/// Judges `attempt`. It costs one password check whatever the name — unknown, disabled
/// or impossible — so neither answer nor timing tells which part was wrong.
///
/// # Errors
/// When the store fails or the check cannot run (the attempt stays counted).
pub async fn judge(
    state: &AppState,
    auth: &AuthSession,
    attempt: Attempt<'_>,
) -> Result<Verdict, WebError> {
    let reservation = match state
        .throttle
        .begin(attempt.name, attempt.address, attempt.device)
    {
        Ok(reservation) => reservation,
        Err(refusal) => return Ok(Verdict::Refused(refusal)),
    };
    let slot = match state.password_checks.acquire().await {
        Ok(slot) => slot,
        Err(busy) => {
            state.throttle.withdraw(reservation);
            return Ok(Verdict::Busy(busy));
        }
    };
    if crate::users::validate_name(attempt.name).is_err() {
        // No user can have this name: no lookup, but the same dummy check an unknown
        // user costs.
        crate::users::verify_password(attempt.password, None, slot)
            .await
            .map_err(WebError::Internal)?;
        state.throttle.failed(reservation);
        return Ok(Verdict::Failed);
    }
    let credentials = Credentials {
        name: attempt.name.to_owned(),
        password: attempt.password,
        slot,
    };
    let user = auth
        .authenticate(credentials)
        .await
        .map_err(|e| WebError::Internal(anyhow::anyhow!("checking a sign-in: {e}")))?;
    Ok(match user {
        Some(user) => {
            state.throttle.succeeded(reservation);
            Verdict::SignedIn(user)
        }
        None => {
            state.throttle.failed(reservation);
            Verdict::Failed
        }
    })
}
