//! Charts drawn on the server as inline SVG: no chart library, no script. Every mark has
//! a `<title>` and every chart an `aria-label` summary; outcome is told by height and
//! marker shape as well as by colour (the CSS classes `ok`, `bad`, `other`, `none`).

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::chrome::{escape_xml, format_ms};
use crate::store::{RunBar, RunStatus};

/// Runs of one time bucket, by outcome class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketCounts {
    pub succeeded: u32,
    pub failed: u32,
    /// Cancelled, skipped, interrupted, still running.
    pub other: u32,
}

impl BucketCounts {
    /// Counts `runs` runs of `status`.
    pub fn add(&mut self, status: RunStatus, runs: u32) {
        if status == RunStatus::Succeeded {
            self.succeeded += runs;
        } else if status.is_failure() {
            self.failed += runs;
        } else {
            self.other += runs;
        }
    }

    fn total(self) -> u32 {
        self.succeeded + self.failed + self.other
    }

    fn describe(self) -> String {
        if self.total() == 0 {
            return "no runs".into();
        }
        let mut parts = Vec::new();
        for (count, word) in [
            (self.succeeded, "succeeded"),
            (self.failed, "failed"),
            (self.other, "other"),
        ] {
            if count > 0 {
                parts.push(format!("{count} {word}"));
            }
        }
        parts.join(", ")
    }
}

const CELL_WIDTH: u32 = 6;
const STRIP_HEIGHT: u32 = 20;

/// The outcome strip: one cell per bucket, oldest first, starting at `since`, each
/// `bucket_minutes` long. A failed hour is a full-height cell, a good hour two thirds,
/// an hour of only other outcomes a half, an empty hour a thin line.
pub fn outcome_strip(
    buckets: &[BucketCounts],
    since: DateTime<Utc>,
    bucket_minutes: i64,
) -> String {
    let mut total = BucketCounts::default();
    for bucket in buckets {
        total.succeeded += bucket.succeeded;
        total.failed += bucket.failed;
        total.other += bucket.other;
    }
    let hours = buckets.len() as i64 * bucket_minutes / 60;
    let label = format!("Last {hours} h: {}", total.describe());
    let width = CELL_WIDTH * buckets.len() as u32;
    let mut svg = format!(
        "<svg class=\"strip\" role=\"img\" aria-label=\"{}\" viewBox=\"0 0 {width} {STRIP_HEIGHT}\" \
         width=\"{width}\" height=\"{STRIP_HEIGHT}\"><title>{}</title>",
        escape_xml(&label),
        escape_xml(&label)
    );
    for (index, bucket) in buckets.iter().enumerate() {
        let (class, height) = if bucket.failed > 0 {
            ("bad", STRIP_HEIGHT)
        } else if bucket.succeeded > 0 {
            ("ok", STRIP_HEIGHT * 2 / 3)
        } else if bucket.other > 0 {
            ("other", STRIP_HEIGHT / 2)
        } else {
            ("none", 2)
        };
        let start = since + chrono::Duration::minutes(bucket_minutes * index as i64);
        let end = start + chrono::Duration::minutes(bucket_minutes);
        let title = format!(
            "{}–{} UTC: {}",
            start.format("%H:%M"),
            end.format("%H:%M"),
            bucket.describe()
        );
        let _ = write!(
            svg,
            "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{height}\">\
             <title>{}</title></rect>",
            index as u32 * CELL_WIDTH,
            STRIP_HEIGHT - height,
            CELL_WIDTH - 1,
            escape_xml(&title)
        );
    }
    svg.push_str("</svg>");
    svg
}

const CHART_LEFT: u32 = 56;
const CHART_TOP: u32 = 10;
const CHART_HEIGHT: u32 = 120;
const BAR_WIDTH: u32 = 6;

/// The durations of `runs` (newest first, as the store lists them) as bars, oldest on
/// the left, scaled to the longest. Failed runs also carry a triangle marker above the
/// bar; runs without a duration (still running, skipped) are a short dashed stub.
/// Bars the duration chart has room for.
const CHART_SLOTS: usize = 100;

pub fn duration_chart(runs: &[RunBar]) -> String {
    let longest = runs
        .iter()
        .filter_map(|run| run.duration_ms)
        .max()
        .unwrap_or(0)
        .max(1);
    let failed = runs.iter().filter(|run| run.status.is_failure()).count();
    let label = if runs.is_empty() {
        "No runs yet".to_string()
    } else {
        format!(
            "Durations of the last {} runs: longest {}, {} failed",
            runs.len(),
            format_ms(longest),
            failed
        )
    };
    // Always room for 100 bars, newest on the right: the chart keeps its scale whether a
    // job has run twice or a hundred times.
    let slots = runs.len().max(CHART_SLOTS) as u32;
    let plot_width = BAR_WIDTH * slots;
    let width = CHART_LEFT + plot_width + 8;
    let height = CHART_TOP + CHART_HEIGHT + 24;
    let base = CHART_TOP + CHART_HEIGHT;
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"{label}\" viewBox=\"0 0 {width} {height}\" \
         preserveAspectRatio=\"xMinYMin meet\"><title>{label}</title>\
         <line class=\"axis\" x1=\"{CHART_LEFT}\" y1=\"{CHART_TOP}\" x2=\"{CHART_LEFT}\" y2=\"{base}\"/>\
         <line class=\"axis\" x1=\"{CHART_LEFT}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\"/>\
         <text class=\"label\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text class=\"label\" x=\"{}\" y=\"{base}\" text-anchor=\"end\">0</text>\
         <text class=\"label\" x=\"{CHART_LEFT}\" y=\"{}\">oldest → newest</text>",
        CHART_LEFT + plot_width,
        CHART_LEFT - 4,
        CHART_TOP + 8,
        escape_xml(&format_ms(longest)),
        CHART_LEFT - 4,
        base + 16,
        label = escape_xml(&label),
    );
    let first_slot = slots - runs.len() as u32;
    for (index, run) in runs.iter().rev().enumerate() {
        let x = CHART_LEFT + (first_slot + index as u32) * BAR_WIDTH;
        let title = format!(
            "Run {} · {} · {} · due {} UTC",
            run.id,
            run.status.as_str().replace('_', " "),
            run.duration_ms.map_or("no duration".into(), format_ms),
            run.scheduled_for.format("%Y-%m-%d %H:%M:%S")
        );
        let class = if run.status == RunStatus::Succeeded {
            "ok"
        } else if run.status.is_failure() {
            "bad"
        } else {
            "other"
        };
        let bar_height = match run.duration_ms {
            Some(ms) => ((ms.max(0) as f64 / longest as f64) * f64::from(CHART_HEIGHT))
                .round()
                .max(1.0) as u32,
            None => 3,
        };
        let _ = write!(
            svg,
            "<g class=\"{class}\"><title>{}</title><rect x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{bar_height}\"/>",
            escape_xml(&title),
            base - bar_height,
            BAR_WIDTH - 1,
        );
        if class == "bad" {
            // A downward triangle above the bar: failures stand out without colour.
            let top = (base - bar_height).saturating_sub(7);
            let _ = write!(
                svg,
                "<path class=\"marker\" d=\"M{x} {top} h{} l-{} 5 z\"/>",
                BAR_WIDTH - 1,
                f64::from(BAR_WIDTH - 1) / 2.0
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn since() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
            .single()
            .expect("valid")
    }

    fn run(id: i64, status: RunStatus, duration_ms: Option<i64>) -> RunBar {
        RunBar {
            id,
            status,
            duration_ms,
            scheduled_for: since(),
        }
    }

    #[test]
    fn the_strip_summarises_the_day_and_sizes_cells_by_outcome() {
        let mut buckets = vec![BucketCounts::default(); 24];
        buckets[0].add(RunStatus::Succeeded, 40);
        buckets[1].add(RunStatus::Failed, 2);
        buckets[1].add(RunStatus::Succeeded, 1);
        let svg = outcome_strip(&buckets, since(), 60);
        assert!(svg.contains("aria-label=\"Last 24 h: 41 succeeded, 2 failed\""));
        assert!(svg.contains("<rect class=\"ok\" x=\"0\" y=\"7\" width=\"5\" height=\"13\">"));
        assert!(svg.contains("<rect class=\"bad\" x=\"6\" y=\"0\" width=\"5\" height=\"20\">"));
        assert!(svg.contains("<title>01:00–02:00 UTC: 1 succeeded, 2 failed</title>"));
        assert!(svg.contains("<title>23:00–00:00 UTC: no runs</title>"));
        assert_eq!(svg.matches("<rect").count(), 24);
    }

    #[test]
    fn the_duration_chart_scales_bars_to_the_longest_run_oldest_first() {
        // Newest first, as the store lists them.
        let runs = vec![
            run(3, RunStatus::Failed, Some(500)),
            run(2, RunStatus::Succeeded, Some(1000)),
            run(1, RunStatus::Running, None),
        ];
        let svg = duration_chart(&runs);
        assert!(
            svg.contains("aria-label=\"Durations of the last 3 runs: longest 1.0 s, 1 failed\"")
        );
        // The chart keeps room for 100 bars with the newest at the right edge, so three
        // runs take the last three slots (97, 98, 99): the oldest (run 1, no duration)
        // as a stub.
        assert!(svg.contains("<rect x=\"638\" y=\"127\" width=\"5\" height=\"3\"/>"));
        // The longest run fills the plot's height.
        assert!(svg.contains("<rect x=\"644\" y=\"10\" width=\"5\" height=\"120\"/>"));
        // The failed run is half as tall and carries a marker.
        assert!(svg.contains("<rect x=\"650\" y=\"70\" width=\"5\" height=\"60\"/>"));
        assert_eq!(svg.matches("class=\"marker\"").count(), 1);
        assert!(
            svg.contains("<title>Run 3 · failed · 500 ms · due 2026-03-01 00:00:00 UTC</title>")
        );
    }

    #[test]
    fn an_empty_chart_says_so() {
        assert!(duration_chart(&[]).contains("aria-label=\"No runs yet\""));
    }
}
