//! Signed-in sessions: the session store (tower-sessions' rows in the database), the
//! session cookie, what happens at sign-in, ending one user's sessions, and the
//! background task that deletes expired ones.
//!
//! The session rows are serialized records that SQL cannot look into, so the store
//! keeps an index of which user signed in with which session (`user_sessions`, written
//! at every sign-in; see `migrations/*/0009_sessions.sql`). Ending a user's sessions
//! deletes the rows that index names, so a re-enabled user's old cookies name nothing.
//! The session check of axum-login (a session remembers its user's password hash) stays
//! as a second line: a password changed outside the console (`batchboard user passwd`)
//! still ends every session at its next request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_sessions::cookie::SameSite;
use tower_sessions::cookie::time::Duration as CookieDuration;
use tower_sessions::session_store::ExpiredDeletion as _;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use super::auth::AuthSession;
use super::config::WebConfig;
use super::error::{WebError, WebResult};
use crate::store::{SessionRows, SharedStore, User};

/// Name of the session cookie (with secure cookies: `__Host-batchboard_session`).
pub const SESSION_COOKIE: &str = "batchboard_session";

/// A session unused for this long expires.
const SESSION_INACTIVITY: CookieDuration = CookieDuration::hours(12);

/// How often expired sessions are deleted. Expired ones are refused at once anyway
/// (the store only loads live rows); this only keeps the table from growing.
pub const CLEANUP_PERIOD: Duration = Duration::from_secs(15 * 60);

/// Sessions tracked at once by [`Sessions::count_password_attempt`]. Only signed-in
/// sessions add entries, so reaching this takes thousands of real sign-ins; then the
/// counts start over rather than grow without bound.
const MAX_TRACKED_SESSIONS: usize = 10_000;

/// The session store, and the application's store for the index of sessions by user.
#[derive(Clone)]
pub struct Sessions {
    rows: SessionRows,
    store: SharedStore,
    /// Password checks per session id since its last right one. In memory rather than in
    /// the session's data, where parallel requests would each read the same old count.
    /// A std mutex: it is held for one map operation, never across an await.
    password_attempts: Arc<Mutex<HashMap<String, u32>>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions")
    }
}

impl Sessions {
    /// The session store over the application store's database; creates its table and
    /// deletes sessions the index does not name. Call once at start-up, before serving.
    ///
    /// # Errors
    /// When the session table cannot be created.
    pub async fn open(store: SharedStore) -> anyhow::Result<Self> {
        let rows = store.session_rows();
        rows.migrate().await.context("creating the session table")?;
        // Every signed-in session is indexed at sign-in, so one the index does not name is
        // either anonymous (a failed sign-in's form token) or from before the index
        // existed, and could not be ended when its user changes. Done before the server
        // takes requests; signing in again is all it costs.
        store
            .delete_unindexed_sessions()
            .await
            .context("deleting sessions opened before the session index")?;
        Ok(Self {
            rows,
            store,
            password_attempts: Arc::default(),
        })
    }

    /// The session layer: cookie HttpOnly, SameSite=Lax, `Secure` and `__Host-` named
    /// with secure cookies, expiring after 12 hours without use. A session row is
    /// written only when a handler puts something in the session (sign-in, the CSRF
    /// token of a signed-in page), never for an anonymous visit.
    pub fn layer(&self, config: &WebConfig) -> SessionManagerLayer<SessionRows> {
        SessionManagerLayer::new(self.rows.clone())
            .with_name(config.cookie_name(SESSION_COOKIE))
            .with_path("/")
            .with_http_only(true)
            .with_same_site(SameSite::Lax)
            .with_secure(config.secure_cookies)
            .with_expiry(Expiry::OnInactivity(SESSION_INACTIVITY))
    }

    /// The session and sign-in layers over this store.
    pub fn auth_layer(&self, config: &WebConfig, store: SharedStore) -> super::auth::AuthLayer {
        axum_login::AuthManagerLayerBuilder::new(
            super::auth::Backend::new(store),
            self.layer(config),
        )
        .build()
    }

    /// Signs `user` in on this request's session with a new session id and a new CSRF
    /// token, and indexes it.
    ///
    /// axum-login changes the id only when the session held no signed-in user before; a
    /// sign-in over a signed-in session (another user, or the same one again) must not
    /// keep an id that someone else may have seen either, so the id is changed here every
    /// time.
    /// The session is saved at once, so its new id is known and indexed before the
    /// answer leaves.
    ///
    /// # Errors
    /// When the session or the store fails.
    pub async fn sign_in(
        &self,
        auth: &mut AuthSession,
        user: &User,
        now: chrono::DateTime<chrono::Utc>,
    ) -> WebResult<()> {
        // Nothing a previous user or visitor left in the session (its CSRF token) carries
        // over.
        auth.session.clear().await;
        auth.login(user)
            .await
            .map_err(|e| WebError::Internal(anyhow::anyhow!("starting a session: {e}")))?;
        // Whether axum-login changed the id already depends on what the session held
        // before; changing it once more costs one delete of a row that does not exist.
        auth.session.cycle_id().await.map_err(session_error)?;
        auth.session.save().await.map_err(session_error)?;
        let id = auth
            .session
            .id()
            .ok_or_else(|| WebError::Internal(anyhow::anyhow!("a saved session has no id")))?;
        self.store
            .index_session(&id.to_string(), user.id, now)
            .await?;
        // The signed-in session's own CSRF token, ready for the first page.
        super::csrf::renew(&auth.session).await?;
        Ok(())
    }

    /// Deletes every session of user `user_id` except `keep` (the acting user's own
    /// session, when they change themselves); returns how many ended.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn end_sessions_of(&self, user_id: i64, keep: Option<&Session>) -> WebResult<u64> {
        let keep = keep.and_then(Session::id).map(|id| id.to_string());
        Ok(self
            .store
            .end_sessions_of_user(user_id, keep.as_deref())
            .await?)
    }

    /// Counts one more check of the signed-in user's own password in `session`, before
    /// it runs, and returns the count: parallel guesses are counted each, so the caller
    /// can refuse any beyond its limit unchecked.
    pub fn count_password_attempt(&self, session: &Session) -> u32 {
        let key = session.id().map(|id| id.to_string()).unwrap_or_default();
        let mut attempts = self
            .password_attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if attempts.len() >= MAX_TRACKED_SESSIONS && !attempts.contains_key(&key) {
            attempts.clear();
        }
        let count = attempts.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    /// Forgets the password checks of `session` (the last one was right).
    pub fn forget_password_attempts(&self, session: &Session) {
        if let Some(id) = session.id() {
            self.password_attempts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id.to_string());
        }
    }

    /// Deletes expired sessions and forgets index rows of sessions that are gone.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn delete_expired(&self) -> anyhow::Result<()> {
        self.rows
            .delete_expired()
            .await
            .context("deleting expired sessions")?;
        self.store
            .prune_session_index()
            .await
            .context("pruning the session index")?;
        Ok(())
    }

    /// Starts the task that calls [`Sessions::delete_expired`] every `period` until
    /// `stop` is cancelled. A failed pass is logged and retried at the next one (unlike
    /// tower-sessions' own loop, which ends at the first error).
    pub fn spawn_cleanup(self, period: Duration, stop: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = ticks.tick() => {
                        if let Err(error) = self.delete_expired().await {
                            tracing::warn!(error = format!("{error:#}"), "session cleanup failed");
                        }
                    }
                }
            }
        })
    }
}

fn session_error(error: tower_sessions::session::Error) -> WebError {
    WebError::Internal(anyhow::Error::new(error).context("saving the session"))
}
