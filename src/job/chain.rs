//! Chains between jobs: `after` (run once every listed job has succeeded) and
//! `after_failure` (run when a listed job's run ends for good without success).
//!
//! Each job checks its own lists ([`JobSpec::from_settings`]); this checks them across
//! jobs, for the settings file and for edits alike: every name must be a job, and no
//! chain may lead back to where it started, or a run would trigger itself for ever.

use std::collections::{BTreeMap, BTreeSet};

use super::{JobName, JobSpec};

/// A chain that cannot work, on the job and field where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainProblem {
    pub job: JobName,
    /// `after` or `after_failure`.
    pub field: &'static str,
    pub message: String,
    /// The jobs of the cycle, when it is one (the first again at the end).
    pub cycle: Vec<JobName>,
}

/// How a job follows one upstream job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Follows {
    /// `after`: runs once this and its other `after` jobs have succeeded.
    Success,
    /// `after_failure`: runs when this one's run ends for good without success.
    Failure,
}

impl Follows {
    /// The setting that says it.
    pub fn field(self) -> &'static str {
        match self {
            Follows::Success => "after",
            Follows::Failure => "after_failure",
        }
    }
}

/// A job's place in the chains: its name and the jobs it follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    pub job: JobName,
    pub after: Vec<JobName>,
    pub after_failure: Vec<JobName>,
}

impl Links {
    pub fn of(spec: &JobSpec) -> Self {
        Self {
            job: spec.name.clone(),
            after: spec.after.clone(),
            after_failure: spec.after_failure.clone(),
        }
    }

    /// The upstream jobs, and how this one follows each.
    fn upstream(&self) -> impl Iterator<Item = (&JobName, Follows)> {
        both(&self.after, &self.after_failure)
    }

    /// How this job follows `upstream_job`, if it does.
    fn follows(&self, upstream_job: &JobName) -> Option<Follows> {
        self.upstream()
            .find(|(name, _)| *name == upstream_job)
            .map(|(_, follows)| follows)
    }
}

/// The upstream jobs `spec` follows, and how.
pub fn upstream(spec: &JobSpec) -> impl Iterator<Item = (&JobName, Follows)> {
    both(&spec.after, &spec.after_failure)
}

fn both<'a>(
    after: &'a [JobName],
    after_failure: &'a [JobName],
) -> impl Iterator<Item = (&'a JobName, Follows)> {
    let success = after.iter().map(|name| (name, Follows::Success));
    let failure = after_failure.iter().map(|name| (name, Follows::Failure));
    success.chain(failure)
}

/// Every problem of the chains between `jobs` (every job there is): names that are not
/// jobs, then cycles, each named in the order runs would follow it (`a → b → c → a`) on
/// the job that follows the first.
pub fn check(jobs: &[Links]) -> Vec<ChainProblem> {
    let known: BTreeSet<&JobName> = jobs.iter().map(|links| &links.job).collect();
    let mut problems = Vec::new();
    for links in jobs {
        for (name, follows) in links.upstream() {
            if !known.contains(name) {
                problems.push(ChainProblem {
                    job: links.job.clone(),
                    field: follows.field(),
                    message: format!("{:?} is not a job", name.as_str()),
                    cycle: Vec::new(),
                });
            }
        }
    }
    for cycle in cycles(jobs) {
        let path: Vec<&str> = cycle.iter().map(JobName::as_str).collect();
        problems.push(ChainProblem {
            job: cycle[1].clone(),
            field: field_in_cycle(jobs, &cycle, &cycle[1]),
            message: format!(
                "the chain {} leads back to where it started",
                path.join(" → ")
            ),
            cycle,
        });
    }
    problems
}

/// The problems of `edited` once its links replace its old ones among `others` (every
/// other job): each on `edited`'s own field, and only those its links cause, so that an
/// edit is not refused for another job's trouble.
pub fn check_edit(others: &[Links], edited: &Links) -> Vec<ChainProblem> {
    let mut jobs: Vec<Links> = others
        .iter()
        .filter(|links| links.job != edited.job)
        .cloned()
        .collect();
    jobs.push(edited.clone());
    check(&jobs)
        .into_iter()
        .filter(|problem| problem.job == edited.job || problem.cycle.contains(&edited.job))
        .map(|problem| ChainProblem {
            field: if problem.cycle.is_empty() {
                problem.field
            } else {
                field_in_cycle(&jobs, &problem.cycle, &edited.job)
            },
            job: edited.job.clone(),
            ..problem
        })
        .collect()
}

/// The field by which `job` follows the job before it in `cycle`.
fn field_in_cycle(jobs: &[Links], cycle: &[JobName], job: &JobName) -> &'static str {
    let before = cycle
        .windows(2)
        .find(|pair| &pair[1] == job)
        .map(|pair| &pair[0]);
    jobs.iter()
        .find(|links| &links.job == job)
        .zip(before)
        .and_then(|(links, before)| links.follows(before))
        .unwrap_or(Follows::Success)
        .field()
}

/// The cycles among `jobs`, each once, as the path runs take: from its smallest name
/// to the job that follows it and so on, back to the first.
fn cycles(jobs: &[Links]) -> Vec<Vec<JobName>> {
    // Upstream → the jobs that follow it: the direction runs flow.
    let mut followers: BTreeMap<&JobName, BTreeSet<&JobName>> = BTreeMap::new();
    for links in jobs {
        for (name, _) in links.upstream() {
            followers.entry(name).or_default().insert(&links.job);
        }
    }
    let mut found: BTreeMap<BTreeSet<&JobName>, Vec<JobName>> = BTreeMap::new();
    let mut done: BTreeSet<&JobName> = BTreeSet::new();
    for start in followers.keys().copied() {
        if done.contains(start) {
            continue;
        }
        // Depth first without recursion: the path walked and, per step, what is left.
        let mut path: Vec<&JobName> = vec![start];
        let mut left: Vec<Vec<&JobName>> = vec![next_of(&followers, start)];
        while let Some(options) = left.last_mut() {
            let Some(next) = options.pop() else {
                if let Some(finished) = path.pop() {
                    done.insert(finished);
                }
                left.pop();
                continue;
            };
            if let Some(at) = path.iter().position(|step| *step == next) {
                let members: BTreeSet<&JobName> = path[at..].iter().copied().collect();
                found.entry(members).or_insert_with(|| rotated(&path[at..]));
            } else if !done.contains(next) {
                path.push(next);
                left.push(next_of(&followers, next));
            }
        }
    }
    found.into_values().collect()
}

fn next_of<'a>(
    followers: &BTreeMap<&'a JobName, BTreeSet<&'a JobName>>,
    job: &JobName,
) -> Vec<&'a JobName> {
    // Reversed, as they are popped: the smallest name is walked first.
    followers
        .get(job)
        .map(|next| next.iter().rev().copied().collect())
        .unwrap_or_default()
}

/// The cycle `steps` (each followed by the next, the last by the first), from its
/// smallest name and closed: `[a, b, c, a]`.
fn rotated(steps: &[&JobName]) -> Vec<JobName> {
    let first = steps
        .iter()
        .enumerate()
        .min_by_key(|(_, name)| **name)
        .map_or(0, |(at, _)| at);
    let mut cycle: Vec<JobName> = steps[first..]
        .iter()
        .chain(&steps[..first])
        .map(|name| (*name).clone())
        .collect();
    cycle.push(cycle[0].clone());
    cycle
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobSettings;

    fn links(specs: &[JobSpec]) -> Vec<Links> {
        specs.iter().map(Links::of).collect()
    }

    fn spec(name: &str, after: &[&str], after_failure: &[&str]) -> JobSpec {
        let list = |names: &[&str]| {
            (!names.is_empty()).then(|| names.iter().map(|n| (*n).to_owned()).collect())
        };
        JobSpec::from_settings(&JobSettings {
            name: name.into(),
            handler: "noop".into(),
            every: Some("1h".into()),
            after: list(after),
            after_failure: list(after_failure),
            ..JobSettings::default()
        })
        .expect("valid on its own")
    }

    #[test]
    fn a_chain_without_loops_has_no_problem() {
        let specs = [
            spec("extract", &[], &[]),
            spec("transform", &["extract"], &[]),
            spec("load", &["extract", "transform"], &[]),
            spec("cleanup", &[], &["load"]),
        ];
        assert_eq!(check(&links(&specs)), []);
    }

    #[test]
    fn a_name_that_is_not_a_job_is_reported_on_its_field() {
        let specs = [spec("load", &["extrct"], &[]), spec("alarm", &[], &["lod"])];
        let problems = check(&links(&specs));
        assert_eq!(
            problems,
            [
                ChainProblem {
                    job: "load".parse().expect("a name"),
                    field: "after",
                    message: "\"extrct\" is not a job".into(),
                    cycle: Vec::new(),
                },
                ChainProblem {
                    job: "alarm".parse().expect("a name"),
                    field: "after_failure",
                    message: "\"lod\" is not a job".into(),
                    cycle: Vec::new(),
                },
            ]
        );
    }

    #[test]
    fn a_cycle_is_named_once_in_the_order_runs_would_take_it() {
        // b runs after a, c after b, a after c: a → b → c → a.
        let specs = [
            spec("c", &["b"], &[]),
            spec("a", &["c"], &[]),
            spec("b", &["a"], &[]),
            spec("d", &["a"], &[]),
        ];
        let problems = check(&links(&specs));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            problems[0].message,
            "the chain a → b → c → a leads back to where it started"
        );
        assert_eq!(problems[0].job.as_str(), "b");
        assert_eq!(problems[0].field, "after");
    }

    #[test]
    fn a_failure_branch_that_leads_back_is_a_cycle_too() {
        let specs = [
            spec("main", &[], &["fallback"]),
            spec("fallback", &[], &["main"]),
        ];
        let problems = check(&links(&specs));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            problems[0].message,
            "the chain fallback → main → fallback leads back to where it started"
        );
        assert_eq!(problems[0].field, "after_failure");
    }

    #[test]
    fn two_separate_cycles_are_both_named() {
        let specs = [
            spec("a", &["b"], &[]),
            spec("b", &["a"], &[]),
            spec("x", &["y"], &[]),
            spec("y", &["x"], &[]),
        ];
        let messages: Vec<String> = check(&links(&specs))
            .into_iter()
            .map(|p| p.message)
            .collect();
        assert_eq!(
            messages,
            [
                "the chain a → b → a leads back to where it started",
                "the chain x → y → x leads back to where it started",
            ]
        );
    }

    #[test]
    fn an_edit_is_refused_only_for_what_its_own_links_cause() {
        // x already names a job that is gone: not the edited job's trouble.
        let others = links(&[
            spec("a", &[], &[]),
            spec("b", &["a"], &[]),
            spec("x", &["gone"], &[]),
        ]);
        let fine = Links::of(&spec("c", &["b"], &[]));
        assert_eq!(check_edit(&others, &fine), []);

        // a now follows b, which follows a: refused on a's own field.
        let looping = Links::of(&spec("a", &[], &["b"]));
        let problems = check_edit(&others, &looping);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].job.as_str(), "a");
        assert_eq!(problems[0].field, "after_failure");
        assert_eq!(
            problems[0].message,
            "the chain a → b → a leads back to where it started"
        );
    }

    #[test]
    fn a_job_with_upstream_jobs_and_no_schedule_runs_after_them() {
        let spec = JobSpec::from_settings(&JobSettings {
            name: "load".into(),
            handler: "noop".into(),
            after: Some(vec!["extract".into()]),
            ..JobSettings::default()
        })
        .expect("valid");
        assert_eq!(spec.schedule, crate::schedule::Schedule::Upstream);
        assert_eq!(spec.schedule.next_after(chrono::Utc::now()), None);
    }

    #[test]
    fn bad_upstream_lists_are_refused_on_their_own_field() {
        let error = JobSpec::from_settings(&JobSettings {
            name: "load".into(),
            handler: "noop".into(),
            after: Some(vec!["load".into()]),
            after_failure: Some(vec!["Not A Name".into()]),
            ..JobSettings::default()
        })
        .expect_err("refused");
        assert_eq!(
            error.fields.get("after").map(String::as_str),
            Some("a job cannot run after itself (\"load\")")
        );
        assert!(
            error.fields["after_failure"].starts_with("\"Not A Name\" is not a job name"),
            "{error}"
        );
        let neither = JobSpec::from_settings(&JobSettings {
            name: "load".into(),
            handler: "noop".into(),
            ..JobSettings::default()
        })
        .expect_err("a job needs a schedule or upstream jobs");
        assert!(neither.fields.contains_key("schedule"));
    }
}
