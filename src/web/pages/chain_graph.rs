//! The chains view's drawing: jobs linked by `after` and `after_failure`, grouped into
//! the chains they form, each drawn as an SVG graph on the server (no script, no
//! library). Jobs are placed in columns by how many links lead to them, upstream on the
//! left; each node is a link to its job and says its last outcome in words as well as by
//! colour; a failure branch is a dashed red line.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::chrome::{encode, escape_xml, status_tone};
use crate::job::chain::Follows;
use crate::store::RunStatus;

/// One job of a chain, as drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainJob {
    pub name: String,
    /// Its last run's status, if it has run.
    pub last: Option<RunStatus>,
    /// The jobs it follows, and how.
    pub upstream: Vec<(String, Follows)>,
}

/// The jobs of one chain (a connected group), by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainGroup {
    pub jobs: Vec<ChainJob>,
}

const NODE_WIDTH: usize = 190;
const NODE_HEIGHT: usize = 44;
const COLUMN_GAP: usize = 70;
const ROW_GAP: usize = 18;
const MARGIN: usize = 10;
/// Longer names are cut in the box; the full name is in its title and the list.
const NAME_CHARS: usize = 22;

/// Splits `jobs` into the chains they form: jobs joined by a link, either way, are in
/// one group. Jobs with no link at all are left out; a link to a job not in `jobs`
/// (removed) is dropped.
pub fn groups(jobs: Vec<ChainJob>) -> Vec<ChainGroup> {
    let names: BTreeSet<String> = jobs.iter().map(|job| job.name.clone()).collect();
    let mut by_name: BTreeMap<String, ChainJob> = jobs
        .into_iter()
        .map(|mut job| {
            job.upstream.retain(|(name, _)| names.contains(name));
            (job.name.clone(), job)
        })
        .collect();
    // Union-find over names, smallest name as the root, so groups come out in order.
    let mut root: BTreeMap<String, String> = names
        .iter()
        .map(|name| (name.clone(), name.clone()))
        .collect();
    fn find(root: &mut BTreeMap<String, String>, name: &str) -> String {
        let mut current = name.to_owned();
        while let Some(parent) = root.get(&current).filter(|parent| **parent != current) {
            current = parent.clone();
        }
        current
    }
    let mut linked: BTreeSet<String> = BTreeSet::new();
    for job in by_name.values() {
        for (upstream, _) in &job.upstream {
            linked.insert(job.name.clone());
            linked.insert(upstream.clone());
            let (a, b) = (find(&mut root, &job.name), find(&mut root, upstream));
            if a != b {
                let (small, large) = if a < b { (a, b) } else { (b, a) };
                root.insert(large, small);
            }
        }
    }
    let mut grouped: BTreeMap<String, Vec<ChainJob>> = BTreeMap::new();
    for name in linked {
        let group = find(&mut root, &name);
        if let Some(job) = by_name.remove(&name) {
            grouped.entry(group).or_default().push(job);
        }
    }
    grouped
        .into_values()
        .map(|jobs| ChainGroup { jobs })
        .collect()
}

impl ChainGroup {
    /// Each job's column: the most links on any path leading to it (0 for a job that
    /// follows none). Bounded by the number of jobs, so a loop in stored settings (which
    /// the checks refuse) cannot hang the page.
    fn columns(&self) -> BTreeMap<&str, usize> {
        let mut column: BTreeMap<&str, usize> =
            self.jobs.iter().map(|job| (job.name.as_str(), 0)).collect();
        for _ in 0..self.jobs.len() {
            let mut moved = false;
            for job in &self.jobs {
                let deepest = job
                    .upstream
                    .iter()
                    .filter_map(|(name, _)| column.get(name.as_str()))
                    .map(|c| c + 1)
                    .max()
                    .unwrap_or(0)
                    .min(self.jobs.len());
                if column.get(job.name.as_str()).is_some_and(|c| *c < deepest) {
                    column.insert(&job.name, deepest);
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        column
    }

    /// The group as an inline SVG; `id` makes its marker ids unique on the page.
    pub fn svg(&self, id: usize) -> String {
        let columns = self.columns();
        let mut rows_used: BTreeMap<usize, usize> = BTreeMap::new();
        let mut place: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for job in &self.jobs {
            let column = columns.get(job.name.as_str()).copied().unwrap_or(0);
            let row = rows_used.entry(column).or_insert(0);
            let x = MARGIN + column * (NODE_WIDTH + COLUMN_GAP);
            let y = MARGIN + *row * (NODE_HEIGHT + ROW_GAP);
            *row += 1;
            place.insert(&job.name, (x, y));
        }
        let width = MARGIN * 2 + (rows_used.len().max(1)) * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP;
        // Room below the last row for a link bowing under it.
        let height = MARGIN * 2
            + rows_used.values().copied().max().unwrap_or(1) * (NODE_HEIGHT + ROW_GAP)
            - ROW_GAP
            + NODE_HEIGHT / 2;
        let names: Vec<&str> = self.jobs.iter().map(|job| job.name.as_str()).collect();
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg class="chain" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" aria-label="{}">"#,
            escape_xml(&format!(
                "A chain of {} jobs: {}",
                names.len(),
                names.join(", ")
            ))
        );
        let _ = write!(
            svg,
            r#"<defs><marker id="arrow-{id}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrow"/></marker></defs>"#
        );
        for job in &self.jobs {
            let Some(&(to_x, to_y)) = place.get(job.name.as_str()) else {
                continue;
            };
            for (upstream, follows) in &job.upstream {
                let Some(&(from_x, from_y)) = place.get(upstream.as_str()) else {
                    continue;
                };
                let (x1, y1) = (from_x + NODE_WIDTH, from_y + NODE_HEIGHT / 2);
                let (x2, y2) = (to_x, to_y + NODE_HEIGHT / 2);
                let bend = (x2.max(x1) - x1.min(x2)) / 2;
                // A link that skips a column bows under the boxes it passes, so it is
                // not taken for a link from them.
                let dip = if x2 > x1 + COLUMN_GAP { NODE_HEIGHT } else { 0 };
                let class = match follows {
                    Follows::Success => "edge",
                    Follows::Failure => "edge failure",
                };
                let _ = write!(
                    svg,
                    r#"<path class="{class}" d="M {x1} {y1} C {} {}, {} {}, {x2} {y2}" marker-end="url(#arrow-{id})"><title>{}</title></path>"#,
                    x1 + bend,
                    y1 + dip,
                    x2.saturating_sub(bend),
                    y2 + dip,
                    escape_xml(&format!(
                        "{} runs {} {upstream}",
                        job.name,
                        match follows {
                            Follows::Success => "after",
                            Follows::Failure => "when this fails:",
                        }
                    ))
                );
            }
        }
        for job in &self.jobs {
            let Some(&(x, y)) = place.get(job.name.as_str()) else {
                continue;
            };
            let (tone, outcome) = match job.last {
                Some(status) => (status_tone(status), status.as_str().replace('_', " ")),
                None => ("none", "not run yet".to_owned()),
            };
            let shown: String = if job.name.chars().count() > NAME_CHARS {
                let cut: String = job.name.chars().take(NAME_CHARS - 1).collect();
                format!("{cut}…")
            } else {
                job.name.clone()
            };
            let _ = write!(
                svg,
                r#"<a href="/jobs/{}" class="node {tone}"><title>{}</title><rect x="{x}" y="{y}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="6"/><text x="{}" y="{}" class="name">{}</text><text x="{}" y="{}" class="outcome">{}</text></a>"#,
                encode(&job.name),
                escape_xml(&format!("{}: last run {outcome}", job.name)),
                x + 10,
                y + 18,
                escape_xml(&shown),
                x + 10,
                y + 35,
                escape_xml(&outcome),
            );
        }
        svg.push_str("</svg>");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, last: Option<RunStatus>, upstream: &[(&str, Follows)]) -> ChainJob {
        ChainJob {
            name: name.into(),
            last,
            upstream: upstream
                .iter()
                .map(|(name, follows)| ((*name).to_owned(), *follows))
                .collect(),
        }
    }

    #[test]
    fn jobs_are_grouped_by_the_chains_they_form_and_lone_jobs_are_left_out() {
        let groups = groups(vec![
            job("load", None, &[("transform", Follows::Success)]),
            job("transform", None, &[("extract", Follows::Success)]),
            job("extract", None, &[]),
            job("lonely", None, &[]),
            job("cleanup", None, &[("backup", Follows::Failure)]),
            job("backup", None, &[]),
            job("orphan", None, &[("removed", Follows::Success)]),
        ]);
        let names: Vec<Vec<&str>> = groups
            .iter()
            .map(|group| group.jobs.iter().map(|job| job.name.as_str()).collect())
            .collect();
        assert_eq!(
            names,
            [
                vec!["backup", "cleanup"],
                vec!["extract", "load", "transform"]
            ]
        );
    }

    #[test]
    fn a_node_links_to_its_job_says_its_outcome_and_escapes_its_name() {
        let groups = groups(vec![
            job("a<b", Some(RunStatus::Dead), &[]),
            job(
                "report",
                Some(RunStatus::Succeeded),
                &[("a<b", Follows::Failure)],
            ),
        ]);
        let svg = groups[0].svg(0);
        assert!(
            svg.contains(r#"<a href="/jobs/a%3Cb" class="node bad">"#),
            "{svg}"
        );
        assert!(svg.contains(">a&lt;b</text>"), "{svg}");
        assert!(svg.contains(r#"class="outcome">dead</text>"#), "{svg}");
        assert!(svg.contains(r#"class="node ok""#), "{svg}");
        assert!(svg.contains(r#"class="edge failure""#), "{svg}");
        assert!(!svg.contains("<b"), "no markup from a name: {svg}");
    }

    #[test]
    fn upstream_jobs_are_drawn_left_of_the_jobs_that_follow_them() {
        let group = &groups(vec![
            job(
                "c",
                None,
                &[("b", Follows::Success), ("a", Follows::Success)],
            ),
            job("b", None, &[("a", Follows::Success)]),
            job("a", None, &[]),
        ])[0];
        let columns = group.columns();
        assert_eq!(
            (columns["a"], columns["b"], columns["c"]),
            (0, 1, 2),
            "c sits after the longest path to it"
        );
    }
}
