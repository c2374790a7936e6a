//! Schedules: fixed intervals (`every = "1h30m"`) and cron lines in an IANA time zone,
//! with the next-fire maths the scheduler needs. Parsing and bounds live here so that an
//! invalid schedule cannot exist past the edge; errors are sentences a form can show
//! next to the field.

mod cron;
mod duration;

use std::fmt;

use chrono::{DateTime, Utc};

pub use self::cron::CronSchedule;
pub use self::duration::{DurationError, Interval, format_duration, parse_duration};

/// When a job fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Every fixed interval, counted from the previous scheduled time (fixed rate).
    Every(Interval),
    /// At the times a cron line matches, in a time zone.
    Cron(CronSchedule),
    /// No time of its own: the job runs when its upstream jobs do (`after`,
    /// `after_failure`), or by hand.
    Upstream,
}

/// Why a schedule is invalid, with the field it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ScheduleError {
    /// `every`, `cron`, `timezone` or `schedule` (when the fields clash or all are missing).
    pub field: &'static str,
    /// A sentence for a person, e.g. "an interval must be at least 1 second".
    pub message: String,
}

impl Schedule {
    /// Builds a schedule from the settings' fields: exactly one of `every` and `cron`;
    /// `timezone` only with `cron` (default UTC).
    ///
    /// # Errors
    /// When both or neither of `every` and `cron` are given, when a value does not parse
    /// or is out of bounds, or when `timezone` is not an IANA zone name.
    pub fn parse(
        every: Option<&str>,
        cron: Option<&str>,
        timezone: Option<&str>,
    ) -> Result<Self, ScheduleError> {
        match (every, cron) {
            (Some(_), Some(_)) => Err(ScheduleError {
                field: "schedule",
                message: "give either an interval (every) or a cron line, not both".into(),
            }),
            (None, None) => Err(ScheduleError {
                field: "schedule",
                message: "a job needs a schedule: an interval (every = \"5m\"), a cron line (cron = \"0 3 * * *\") or jobs to run after (after = [\"extract\"])".into(),
            }),
            (Some(every), None) => {
                if timezone.is_some() {
                    return Err(ScheduleError {
                        field: "timezone",
                        message: "a time zone only applies to a cron schedule".into(),
                    });
                }
                every
                    .parse::<Interval>()
                    .map(Schedule::Every)
                    .map_err(|error| ScheduleError { field: "every", message: error.to_string() })
            }
            (None, Some(cron)) => CronSchedule::parse(cron, timezone.unwrap_or("UTC")).map(Schedule::Cron),
        }
    }

    /// The first fire strictly after `after`, or `None` if the schedule never fires again
    /// (a cron line for a date that does not come back).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(interval) => after.checked_add_signed(interval.as_chrono()),
            Schedule::Cron(cron) => cron.next_after(after),
            Schedule::Upstream => None,
        }
    }

    /// The next `count` fires after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut fires = Vec::with_capacity(count);
        let mut cursor = after;
        while fires.len() < count {
            let Some(next) = self.next_after(cursor) else {
                break;
            };
            fires.push(next);
            cursor = next;
        }
        fires
    }

    /// The schedule in plain words: "every 5 minutes", "at 03:00 every day (Europe/Berlin)".
    pub fn describe(&self) -> String {
        match self {
            Schedule::Every(interval) => interval.describe(),
            Schedule::Cron(cron) => cron.describe(),
            Schedule::Upstream => "when its upstream jobs run".to_owned(),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(interval) => write!(f, "every {interval}"),
            Schedule::Cron(cron) => write!(f, "cron {} ({})", cron.expression(), cron.timezone()),
            Schedule::Upstream => f.write_str("after upstream jobs"),
        }
    }
}
