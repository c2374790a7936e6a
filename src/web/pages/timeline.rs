//! The upcoming fires of jobs over a window, and their drawing: one lane per job, each
//! fire a tick, a job with more fires than a lane can show a band with its count. Pure:
//! the page (`super::upcoming`) reads the jobs, this places and draws them.

use std::fmt::Write;

use chrono::{DateTime, Duration, DurationRound, Utc};

use super::chrome::{encode, escape_xml};
use crate::schedule::Schedule;

/// More fires than this in the window are drawn as a band, and listed as a count.
pub const MAX_TICKS: usize = 48;

/// What a lane says about a job that will not fire on time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quiet {
    Paused,
    Disabled,
    /// It runs only after its upstream jobs (`after`, `after_failure`).
    Upstream,
}

impl Quiet {
    pub fn describe(self) -> &'static str {
        match self {
            Quiet::Paused => "paused",
            Quiet::Disabled => "disabled",
            Quiet::Upstream => "runs after its upstream jobs",
        }
    }
}

/// One job's lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    pub job: String,
    /// Why it does not fire, if so.
    pub quiet: Option<Quiet>,
    /// Its fires in the window, the first [`MAX_TICKS`] of them.
    pub fires: Vec<DateTime<Utc>>,
    /// Whether it fires more often than [`MAX_TICKS`] times in the window.
    pub dense: bool,
    /// How many fires in the window (exact for an interval, at least `MAX_TICKS + 1`
    /// for a dense cron line).
    pub count: u64,
}

impl Lane {
    /// The lane of `job` firing on `schedule` from `first` (its stored next fire) within
    /// `[from, until)`; `quiet` jobs have no fires.
    pub fn new(
        job: &str,
        schedule: &Schedule,
        first: Option<DateTime<Utc>>,
        quiet: Option<Quiet>,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Self {
        let mut lane = Lane {
            job: job.to_owned(),
            quiet,
            fires: Vec::new(),
            dense: false,
            count: 0,
        };
        if quiet.is_some() {
            return lane;
        }
        let mut next = first.or_else(|| schedule.next_after(from));
        // A stored fire already due (being claimed now) is shown at the window's start.
        while let Some(fire) = next.filter(|fire| *fire < until) {
            if lane.fires.len() == MAX_TICKS {
                lane.dense = true;
                lane.count = match schedule {
                    Schedule::Every(interval) => {
                        let step = interval.as_chrono().num_seconds().max(1);
                        let left = (until - fire).num_seconds().max(0);
                        MAX_TICKS as u64 + u64::try_from((left + step - 1) / step).unwrap_or(0)
                    }
                    _ => MAX_TICKS as u64 + 1,
                };
                return lane;
            }
            lane.fires.push(fire.max(from));
            next = schedule.next_after(fire);
        }
        lane.count = lane.fires.len() as u64;
        lane
    }
}

const LABEL_WIDTH: i64 = 200;
const PLOT_WIDTH: i64 = 760;
const LANE_HEIGHT: i64 = 24;
const AXIS_HEIGHT: i64 = 22;

/// The lanes as an inline SVG over `[from, from + span)`, with hour ticks labelled every
/// three hours (UTC).
pub fn draw(lanes: &[Lane], from: DateTime<Utc>, span: Duration) -> String {
    let height = AXIS_HEIGHT + LANE_HEIGHT * i64::try_from(lanes.len()).unwrap_or(0) + 4;
    let width = LABEL_WIDTH + PLOT_WIDTH + 10;
    let span_ms = span.num_milliseconds().max(1);
    let x_of = |time: DateTime<Utc>| {
        LABEL_WIDTH + ((time - from).num_milliseconds().clamp(0, span_ms) * PLOT_WIDTH) / span_ms
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="timeline" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" aria-label="{}">"#,
        escape_xml(&format!(
            "Fires of {} jobs from {} UTC for {} hours; the list below has the same",
            lanes.len(),
            from.format("%Y-%m-%d %H:%M"),
            span.num_hours()
        ))
    );
    let first_hour = from.duration_trunc(Duration::hours(1)).unwrap_or(from) + Duration::hours(1);
    let mut hour = first_hour;
    while hour < from + span {
        let x = x_of(hour);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{x}" y1="{AXIS_HEIGHT}" x2="{x}" y2="{height}"/>"#
        );
        if hour.format("%H").to_string().parse::<u32>().unwrap_or(1) % 3 == 0 {
            let _ = write!(
                svg,
                r#"<text class="label" x="{x}" y="14" text-anchor="middle">{}</text>"#,
                hour.format("%H:%M")
            );
        }
        hour += Duration::hours(1);
    }
    for (index, lane) in lanes.iter().enumerate() {
        let top = AXIS_HEIGHT + LANE_HEIGHT * i64::try_from(index).unwrap_or(0);
        let middle = top + LANE_HEIGHT / 2;
        let _ = write!(
            svg,
            r#"<a href="/jobs/{}"><text class="lane-name" x="4" y="{}">{}</text></a>"#,
            encode(&lane.job),
            middle + 4,
            escape_xml(&lane.job)
        );
        if let Some(quiet) = lane.quiet {
            let _ = write!(
                svg,
                r#"<rect class="quiet" x="{LABEL_WIDTH}" y="{}" width="{PLOT_WIDTH}" height="{}"/><text class="label" x="{}" y="{}">{}</text>"#,
                top + 4,
                LANE_HEIGHT - 8,
                LABEL_WIDTH + 8,
                middle + 4,
                quiet.describe()
            );
            continue;
        }
        if lane.dense {
            let start = lane.fires.first().map_or(LABEL_WIDTH, |fire| x_of(*fire));
            let _ = write!(
                svg,
                r#"<rect class="band" x="{start}" y="{}" width="{}" height="{}"><title>{}</title></rect>"#,
                top + 5,
                (LABEL_WIDTH + PLOT_WIDTH - start).max(1),
                LANE_HEIGHT - 10,
                escape_xml(&format!("{}: {} fires", lane.job, lane.count))
            );
            continue;
        }
        for fire in &lane.fires {
            let x = x_of(*fire);
            let _ = write!(
                svg,
                r#"<rect class="fire" x="{}" y="{}" width="3" height="{}"><title>{}</title></rect>"#,
                x - 1,
                top + 4,
                LANE_HEIGHT - 8,
                escape_xml(&format!(
                    "{} at {} UTC",
                    lane.job,
                    fire.format("%Y-%m-%d %H:%M:%S")
                ))
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, hour, minute, 0)
            .single()
            .expect("a valid time")
    }

    fn every(text: &str) -> Schedule {
        Schedule::parse(Some(text), None, None).expect("an interval")
    }

    #[test]
    fn an_interval_lists_its_fires_in_the_window_from_its_stored_next_fire() {
        let lane = Lane::new(
            "hourly",
            &every("6h"),
            Some(at(1, 30)),
            None,
            at(0, 0),
            at(23, 0),
        );
        assert_eq!(lane.fires, [at(1, 30), at(7, 30), at(13, 30), at(19, 30)]);
        assert_eq!((lane.dense, lane.count), (false, 4));
    }

    #[test]
    fn a_frequent_job_is_a_band_with_its_count() {
        let lane = Lane::new(
            "tick",
            &every("1s"),
            Some(at(0, 0)),
            None,
            at(0, 0),
            at(23, 0),
        );
        assert!(lane.dense);
        assert_eq!(lane.count, 23 * 3600, "one fire a second for 23 hours");
        let svg = draw(&[lane], at(0, 0), Duration::hours(23));
        assert!(svg.contains(r#"class="band""#), "{svg}");
        assert!(svg.contains("tick: 82800 fires"), "{svg}");
    }

    #[test]
    fn a_cron_line_fires_on_its_matches_and_a_paused_job_not_at_all() {
        let cron = Schedule::parse(None, Some("0 3,15 * * *"), None).expect("a cron line");
        let lane = Lane::new("twice", &cron, None, None, at(0, 0), at(23, 59));
        assert_eq!(lane.fires, [at(3, 0), at(15, 0)]);
        let paused = Lane::new(
            "held",
            &cron,
            None,
            Some(Quiet::Paused),
            at(0, 0),
            at(23, 59),
        );
        assert!(paused.fires.is_empty());
        let svg = draw(&[lane, paused], at(0, 0), Duration::hours(24));
        assert!(svg.contains(">paused</text>"), "{svg}");
        assert!(svg.contains("twice at 2026-11-30 03:00:00 UTC"), "{svg}");
        assert!(svg.contains(r#"<a href="/jobs/held">"#), "{svg}");
    }
}
