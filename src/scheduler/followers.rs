//! Which jobs follow which, as the scheduler last built it, shared with the console so
//! that a job's page and the chains view find the jobs in chains without reading every
//! job.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use crate::job::chain::Follows;

/// Upstream job name → the jobs that follow it, and how, by name.
pub type FollowersByName = HashMap<String, Vec<(String, Follows)>>;

/// A cheap, cloneable view of the followers; the scheduler replaces the whole map when
/// a job changes.
#[derive(Clone, Default)]
pub struct PublishedFollowers(Arc<RwLock<Arc<FollowersByName>>>);

impl PublishedFollowers {
    /// The jobs that follow `upstream`, by name.
    pub fn of(&self, upstream: &str) -> Vec<(String, Follows)> {
        let map = Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner));
        let mut followers = map.get(upstream).cloned().unwrap_or_default();
        followers.sort();
        followers
    }

    /// Every job in a chain: each upstream job and each job that follows one.
    pub fn chained(&self) -> BTreeSet<String> {
        let map = Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner));
        map.iter()
            .flat_map(|(upstream, followers)| {
                std::iter::once(upstream.clone())
                    .chain(followers.iter().map(|(follower, _)| follower.clone()))
            })
            .collect()
    }

    pub(crate) fn replace(&self, map: FollowersByName) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(map);
    }
}
