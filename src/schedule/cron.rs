//! Cron lines in an IANA time zone, built on `croner` and `chrono-tz`.

use chrono::{DateTime, Utc};

use super::ScheduleError;

/// A parsed cron line and its time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expression: String,
    timezone: chrono_tz::Tz,
    // TODO(helper): the parsed croner::Cron
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression && self.timezone == other.timezone
    }
}

impl CronSchedule {
    /// # Errors
    /// `field: "cron"` when the line does not parse (five fields: minute hour day month
    /// weekday; an optional leading seconds field), `field: "timezone"` for an unknown zone.
    pub fn parse(expression: &str, timezone: &str) -> Result<Self, ScheduleError> {
        todo!("{expression} {timezone}")
    }

    /// The first fire strictly after `after`. Across daylight-saving changes a local time
    /// that does not exist fires at the first instant after the gap, and a local time that
    /// occurs twice fires once (the first occurrence).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        todo!("{after}")
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    pub fn timezone(&self) -> chrono_tz::Tz {
        self.timezone
    }

    /// "at 03:00 every day (Europe/Berlin)", or the cron line itself when it has no
    /// simple reading: "cron 0 */2 * * 1-5 (UTC)".
    pub fn describe(&self) -> String {
        todo!()
    }
}
