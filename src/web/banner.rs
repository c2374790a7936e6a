//! The maintenance banner every page shows while an admin holds the jobs paused.
//!
//! The maintenance row is read at most every [`RECHECK`] per process (so 1,000 page
//! views cost one query), and at once after this process begins or ends one. A
//! middleware puts what it read in a task-local for the request's handler, where
//! [`Chrome`](super::pages::chrome::Chrome) picks it up: every page shows the banner
//! without each handler asking for it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::pages::chrome::TimeView;
use super::state::AppState;
use crate::store::{Maintenance, SharedStore};

/// How stale the banner may be, at most, after another instance changed it.
const RECHECK: Duration = Duration::from_secs(2);

/// What the banner says.
#[derive(Debug, Clone)]
pub struct Banner {
    pub reason: String,
    pub started_by: String,
    pub since: TimeView,
}

impl From<Maintenance> for Banner {
    fn from(maintenance: Maintenance) -> Self {
        Self {
            reason: maintenance.reason,
            started_by: maintenance.started_by,
            since: TimeView::new(maintenance.started_at),
        }
    }
}

/// The banner as last read.
#[derive(Default)]
pub struct BannerCache {
    read: Mutex<Option<(Instant, Option<Arc<Banner>>)>>,
}

impl BannerCache {
    /// The banner, read again when the last read is older than [`RECHECK`]. When the
    /// database does not answer, the last banner read stays up.
    pub async fn current(&self, store: &SharedStore) -> Option<Arc<Banner>> {
        let last = self.lock().clone();
        if let Some((at, banner)) = &last
            && at.elapsed() < RECHECK
        {
            return banner.clone();
        }
        match store.maintenance().maintenance().await {
            Ok(maintenance) => {
                let banner = maintenance.map(|maintenance| Arc::new(Banner::from(maintenance)));
                *self.lock() = Some((Instant::now(), banner.clone()));
                banner
            }
            Err(error) => {
                tracing::warn!(%error, "could not read whether a maintenance is under way");
                last.and_then(|(_, banner)| banner)
            }
        }
    }

    /// Reads the row again at the next request (this process just changed it).
    pub fn forget(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Option<Arc<Banner>>)>> {
        self.read.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

tokio::task_local! {
    static BANNER: Option<Arc<Banner>>;
}

/// Middleware: makes the banner available to the request's handler.
pub async fn with_banner(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let banner = state.banner.current(&state.store).await;
    BANNER.scope(banner, next.run(request)).await
}

/// The banner of the request being handled; `None` outside [`with_banner`].
pub fn current() -> Option<Arc<Banner>> {
    BANNER.try_with(Clone::clone).ok().flatten()
}
