//! Views built moments ago, by key (a page and its query). Every open dashboard polls
//! every few seconds, and all of them ask the same thing: a view is rebuilt when a job
//! changed, when runs started or ended (at most five times a second), and at least
//! every second.
//!
//! The views are kept as `dyn Any` so that [`crate::web::state::AppState`] can hold the
//! cache without naming the pages' view types (the pages depend on the state, not the
//! other way round).

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use crate::scheduler::Generation;

/// How long a built view may be reused at most: progress bars and relative times move
/// without events.
const REUSE_FOR: Duration = Duration::seconds(1);

/// While runs start and end many times a second, a view is rebuilt at most this often;
/// a job's change (an edit, a pause) always rebuilds it at once.
const RUNS_SETTLE_FOR: Duration = Duration::milliseconds(200);

/// How many keys' views are kept; a few filters and pages in use at once.
const CAPACITY: usize = 64;

/// A view with the scheduler generation and the time it was built at.
type Built = (Generation, DateTime<Utc>, Arc<dyn Any + Send + Sync>);

/// The cache; see the module's documentation.
#[derive(Default)]
pub struct ViewCache {
    // A std Mutex: held for a map lookup or insert, never across an await.
    views: Mutex<HashMap<String, Built>>,
}

impl ViewCache {
    /// The view kept under `key` if it is still fresh at `now` for the scheduler's
    /// `generation`.
    pub fn fresh<V: Any + Send + Sync>(
        &self,
        key: &str,
        generation: Generation,
        now: DateTime<Utc>,
    ) -> Option<Arc<V>> {
        let views = self
            .views
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (built_generation, built_at, view) = views.get(key)?;
        let age = now - *built_at;
        let runs_settled = built_generation.runs == generation.runs || age < RUNS_SETTLE_FOR;
        let fresh = built_generation.jobs == generation.jobs && runs_settled;
        if fresh && age < REUSE_FOR && *built_at <= now {
            Arc::clone(view).downcast().ok()
        } else {
            None
        }
    }

    /// Keeps `view`, built for `generation` at `now`, under `key`.
    pub fn keep<V: Any + Send + Sync>(
        &self,
        key: String,
        generation: Generation,
        now: DateTime<Utc>,
        view: Arc<V>,
    ) {
        let mut views = self
            .views
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if views.len() >= CAPACITY {
            views.clear();
        }
        views.insert(key, (generation, now, view));
    }
}
