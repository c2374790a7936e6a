//! What [`Store::sync_jobs`](crate::store::Store::sync_jobs) must write, decided once
//! for both backends: a pure plan from the stored jobs and the settings file's jobs.

use std::collections::{HashMap, HashSet};

use crate::job::JobSettings;

/// A stored job as the sync sees it.
#[derive(Debug)]
pub(crate) struct StoredJob {
    pub id: i64,
    pub name: String,
    /// `None` when the stored defaults no longer decode: they count as changed and are
    /// overwritten.
    pub defaults: Option<JobSettings>,
    pub removed: bool,
}

/// The writes of one sync.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct SyncPlan<'a> {
    /// New jobs, in the file's order.
    pub insert: Vec<&'a JobSettings>,
    /// Known jobs whose defaults changed or that are back in the file: their new
    /// defaults replace the old, `removed_at` is cleared and `version` bumped.
    pub update: Vec<(i64, &'a JobSettings)>,
    /// Jobs no longer in the file: `removed_at` is set, `next_run_at` cleared, `version`
    /// bumped.
    pub remove: Vec<i64>,
}

/// Plans a sync of `stored` to `jobs`. A name listed twice counts once, the first time
/// (the settings file refuses duplicates before it gets here).
pub(crate) fn plan_sync(stored: Vec<StoredJob>, jobs: &[JobSettings]) -> SyncPlan<'_> {
    let mut stored: HashMap<String, StoredJob> = stored
        .into_iter()
        .map(|job| (job.name.clone(), job))
        .collect();
    let mut plan = SyncPlan::default();
    let mut listed = HashSet::new();
    for settings in jobs {
        if !listed.insert(settings.name.as_str()) {
            continue;
        }
        match stored.get(&settings.name) {
            None => plan.insert.push(settings),
            Some(job) if job.removed || job.defaults.as_ref() != Some(settings) => {
                plan.update.push((job.id, settings));
            }
            Some(_) => {}
        }
    }
    let mut gone: Vec<i64> = stored
        .drain()
        .filter(|(name, job)| !job.removed && !listed.contains(name.as_str()))
        .map(|(_, job)| job.id)
        .collect();
    // A stable order, so concurrent syncs lock rows in the same order.
    gone.sort_unstable();
    plan.remove = gone;
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(name: &str, every: &str) -> JobSettings {
        JobSettings {
            name: name.into(),
            handler: "demo".into(),
            every: Some(every.into()),
            ..JobSettings::default()
        }
    }

    fn stored(id: i64, settings: Option<&JobSettings>, name: &str, removed: bool) -> StoredJob {
        StoredJob {
            id,
            name: name.into(),
            defaults: settings.cloned(),
            removed,
        }
    }

    #[test]
    fn a_sync_inserts_new_jobs_updates_changed_or_returning_ones_and_removes_the_rest() {
        let same = settings("same", "1m");
        let changed = settings("changed", "2m");
        let back = settings("back", "1m");
        let broken = settings("broken", "1m");
        let new = settings("new", "1m");
        let rows = vec![
            stored(1, Some(&same), "same", false),
            stored(2, Some(&settings("changed", "1m")), "changed", false),
            stored(3, Some(&back), "back", true),
            stored(4, None, "broken", false),
            stored(5, Some(&settings("gone", "1m")), "gone", false),
            stored(6, Some(&settings("long-gone", "1m")), "long-gone", true),
        ];
        let jobs = [
            new.clone(),
            same,
            changed.clone(),
            back.clone(),
            broken.clone(),
            new.clone(),
        ];
        let plan = plan_sync(rows, &jobs);
        assert_eq!(
            plan,
            SyncPlan {
                insert: vec![&new],
                update: vec![(2, &changed), (3, &back), (4, &broken)],
                remove: vec![5],
            }
        );
    }
}
