//! What every request handler can reach. Its own module, so that pages and the API
//! take it from here, not from the module that mounts them.

use std::sync::Arc;

pub use super::config::WebConfig;
use super::sessions::Sessions;
use super::signing::Signer;
use super::throttle::LoginThrottle;
use super::view_cache::ViewCache;
use crate::clock::SharedClock;
use crate::job::Registry;
use crate::scheduler::SchedulerHandle;
use crate::store::SharedStore;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: SharedStore,
    pub scheduler: SchedulerHandle,
    /// The maintenance banner as last read.
    pub banner: Arc<crate::web::banner::BannerCache>,
    /// The alert targets, and what sends test alerts to them.
    pub alerts: crate::alerts::Alerts,
    /// The handlers, to validate edited settings against.
    pub registry: Registry,
    pub config: Arc<WebConfig>,
    /// The application's clock (tests pass a manual one).
    pub clock: SharedClock,
    /// Failed sign-ins per name, address and device.
    pub throttle: Arc<LoginThrottle>,
    /// Slots for password checks, so a burst of sign-ins cannot take every core.
    pub password_checks: Arc<crate::password_checks::PasswordCheckLimit>,
    /// Dashboards built moments ago, reused while nothing changes.
    pub dashboard: Arc<ViewCache>,
    /// Who may read `/metrics`.
    pub metrics: Arc<crate::config::MetricsSettings>,
    /// Signs the cookies the server must trust without a session (see [`super::signing`]).
    pub signer: Signer,
    /// What hides params values from every page and answer (see [`super::redacted`]).
    pub redaction: Arc<crate::secrets::RedactionList>,
    /// The session store, to end a user's sessions.
    pub sessions: Sessions,
}
