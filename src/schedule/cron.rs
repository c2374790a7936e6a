//! Cron lines in an IANA time zone, built on `croner` and `chrono-tz`.
//!
//! # Daylight-saving time
//!
//! `croner` only finds *wall-clock* times here: it walks a [`NaiveDateTime`], which has
//! no time zone. Turning a wall-clock time into an instant is done in this module, by
//! one rule that depends on whether the line's hour field covers every hour:
//!
//! - **A line that names hours** (`30 2 * * *`, `0 9,17 * * 1-5`, `*/15 2 * * *`) is
//!   about the wall clock: a named time inside a spring-forward gap fires once, at the
//!   first instant after the gap (so `30 2 * * *` still runs on that day, at 03:00), and
//!   a named time that a fall-back repeats fires once, in its first occurrence.
//! - **A line that runs every hour** (`0 * * * *`, `*/10 * * * *`, `* * * * *`) is about
//!   elapsed time: it fires in every real hour. Times inside a gap are skipped, because
//!   that hour did not happen (the hour after the gap has its own fires), and times in a
//!   repeated hour fire in both occurrences, because both hours really happen. So
//!   `0 * * * *` fires 23 times on a spring-forward day and 25 times on a fall-back day,
//!   always exactly once per real hour.
//!
//! `croner`'s own zoned search draws the line elsewhere (it treats only a single fixed
//! hour, minute and second as wall-clock bound), so `0 9,21 * * *` would fire twice on a
//! fall-back day there; hence the wall-clock walk. The tests pin both behaviours.

use std::sync::Arc;

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, Offset, SubsecRound, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use super::ScheduleError;

/// A parsed cron line and its time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expression: String,
    timezone: Tz,
    // Shared: a parsed line is a few hundred bytes and never changes, and schedules
    // are cloned into the scheduler's heap and every job view.
    cron: Arc<Cron>,
    /// Whether the hour field matches all 24 hours (see the module documentation).
    every_hour: bool,
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression && self.timezone == other.timezone
    }
}

/// Bounds every search: no sane line needs this many wall-clock candidates to find one
/// instant (a fixed-hour line skips at most one repeated hour of them).
const MAX_CANDIDATES: usize = 100_000;

impl CronSchedule {
    /// Parses the cron line `expression`, read in the IANA zone `timezone`.
    ///
    /// # Errors
    /// `field: "cron"` when the line does not parse (five fields: minute hour day month
    /// weekday; an optional leading seconds field) or matches no date at all,
    /// `field: "timezone"` for an unknown zone.
    pub fn parse(expression: &str, timezone: &str) -> Result<Self, ScheduleError> {
        let expression = expression.trim();
        let timezone_name = timezone.trim();
        let timezone = zone_named(timezone_name).ok_or_else(|| ScheduleError {
            field: "timezone",
            message: format!(
                "unknown time zone {timezone_name:?}: use an IANA name like Europe/Berlin"
            ),
        })?;
        let cron = parse_line(expression)?;
        let every_hour = (0..24).all(|hour| cron.pattern.hour_match(hour).unwrap_or(false));
        let schedule = Self {
            expression: expression.to_owned(),
            timezone,
            cron: Arc::new(cron),
            every_hour,
        };
        // A line like `0 0 31 2 *` parses but never matches; refusing it here keeps a
        // job that can never run out of the scheduler.
        let reference = NaiveDate::from_ymd_opt(2000, 1, 1)
            .and_then(|date| date.and_hms_opt(0, 0, 0))
            .unwrap_or_default();
        if schedule
            .cron
            .find_next_occurrence(&reference, false)
            .is_err()
        {
            return Err(ScheduleError {
                field: "cron",
                message: format!("{expression:?} never fires: no date matches it"),
            });
        }
        Ok(schedule)
    }

    /// The first fire strictly after `after`. Across daylight-saving changes a local time
    /// that does not exist fires at the first instant after the gap, and a local time that
    /// occurs twice fires once (the first occurrence) — unless the line runs every hour,
    /// in which case it fires once in every real hour (see the module documentation).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Fires fall on whole seconds, so "after 10:00:00.5" is "after 10:00:00".
        let after = after.trunc_subsecs(0);
        let local_after = after.with_timezone(&self.timezone).naive_local();
        let ahead = self.first_fire_from_wall_clock(local_after, after);
        match (ahead, self.second_pass_fire(after, local_after)) {
            (Some(ahead), Some(repeat)) => Some(ahead.min(repeat)),
            (ahead, repeat) => ahead.or(repeat),
        }
    }

    /// The cron line as written (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The zone the line is read in.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// "at 03:00 every day (Europe/Berlin)", or the cron line itself when it has no
    /// simple reading: "cron 0 */2 * * 1-5 (UTC)".
    pub fn describe(&self) -> String {
        match simple_reading(&self.expression) {
            Some(reading) => format!("{reading} ({})", self.timezone),
            None => format!("cron {} ({})", self.expression, self.timezone),
        }
    }

    /// Walks the wall-clock matches after `local_after` and returns the first one that
    /// maps to an instant after `after`.
    fn first_fire_from_wall_clock(
        &self,
        local_after: NaiveDateTime,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut cursor = local_after;
        for _ in 0..MAX_CANDIDATES {
            let wall = self.cron.find_next_occurrence(&cursor, false).ok()?;
            if let Some(fire) = self.instant_after(wall, after) {
                return Some(fire);
            }
            cursor = wall;
        }
        None
    }

    /// The instant at which the wall-clock match `wall` fires, if one is after `after`.
    fn instant_after(&self, wall: NaiveDateTime, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let fire = match self.timezone.from_local_datetime(&wall) {
            LocalResult::Single(at) => at.with_timezone(&Utc),
            LocalResult::Ambiguous(first, second) => {
                let first = first.with_timezone(&Utc);
                let second = second.with_timezone(&Utc);
                if first > after || !self.every_hour {
                    first
                } else {
                    second
                }
            }
            LocalResult::None if self.every_hour => return None,
            LocalResult::None => first_instant_after_gap(self.timezone, wall)?,
        };
        (fire > after).then_some(fire)
    }

    /// When `after` lies in the first pass of a repeated hour, an every-hour line also
    /// fires in the second pass at wall-clock times the walk from `after` has already
    /// passed: the first such fire.
    fn second_pass_fire(
        &self,
        after: DateTime<Utc>,
        local_after: NaiveDateTime,
    ) -> Option<DateTime<Utc>> {
        if !self.every_hour {
            return None;
        }
        let LocalResult::Ambiguous(first, second) = self.timezone.from_local_datetime(&local_after)
        else {
            return None;
        };
        if first.with_timezone(&Utc) != after {
            return None;
        }
        // The clock goes back somewhere in (after, second pass of the same wall time]:
        // the first instant there with the later offset.
        let offset_at =
            |instant: DateTime<Utc>| instant.with_timezone(&self.timezone).offset().fix();
        let first_offset = offset_at(after);
        let fall_back = first_instant_where(after, second.with_timezone(&Utc), |instant| {
            offset_at(instant) == first_offset
        })?;
        let repeat_start = fall_back.with_timezone(&self.timezone).naive_local();
        let wall = self.cron.find_next_occurrence(&repeat_start, true).ok()?;
        if wall > local_after {
            // Not yet passed: the walk from `after` finds its first occurrence.
            return None;
        }
        match self.timezone.from_local_datetime(&wall) {
            LocalResult::Ambiguous(_, second) => Some(second.with_timezone(&Utc)),
            _ => None,
        }
    }
}

/// The IANA zone called `name`; letter case is forgiven (`europe/berlin`), and the
/// zone keeps its canonical spelling.
fn zone_named(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok().or_else(|| {
        chrono_tz::TZ_VARIANTS
            .iter()
            .copied()
            .find(|zone| zone.name().eq_ignore_ascii_case(name))
    })
}

/// Parses a line with croner: an optional seconds field, no year field.
fn parse_line(expression: &str) -> Result<Cron, ScheduleError> {
    let field_count = expression.split_whitespace().count();
    if !expression.starts_with('@') && !(5..=6).contains(&field_count) {
        return Err(ScheduleError {
            field: "cron",
            message: format!(
                "{expression:?} has {field_count} fields: a cron line has 5 (minute hour \
                 day-of-month month weekday), optionally led by a seconds field"
            ),
        });
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|reason| ScheduleError {
            field: "cron",
            message: format!("{expression:?} is not a valid cron line: {reason}"),
        })
}

/// The first instant after the gap that swallows the wall-clock time `wall`: the
/// moment the clock jumps forward.
fn first_instant_after_gap(timezone: Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    // Offsets lie within -12h..+14h, so the instant whose local time is `wall` (had it
    // existed) lies within this window, and local time passes `wall` exactly once in it.
    let as_utc = wall.and_utc();
    let low = as_utc - chrono::Duration::hours(15);
    let high = as_utc + chrono::Duration::hours(15);
    first_instant_where(low, high, |instant| {
        instant.with_timezone(&timezone).naive_local() <= wall
    })
}

/// The first whole-second instant in `(low, high]` where `before` stops holding, given
/// that it holds at `low` and flips once in the range.
fn first_instant_where(
    low: DateTime<Utc>,
    high: DateTime<Utc>,
    before: impl Fn(DateTime<Utc>) -> bool,
) -> Option<DateTime<Utc>> {
    let (mut low, mut high) = (low.timestamp(), high.timestamp());
    let at = |seconds: i64| DateTime::<Utc>::from_timestamp(seconds, 0);
    if before(at(high)?) {
        return None;
    }
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if before(at(middle)?) {
            low = middle;
        } else {
            high = middle;
        }
    }
    at(high)
}

/// The plain-words reading of the common shapes, without the zone; `None` for others.
fn simple_reading(expression: &str) -> Option<String> {
    let expanded = match expression.to_ascii_lowercase().as_str() {
        "@daily" | "@midnight" => "0 0 * * *".to_owned(),
        "@hourly" => "0 * * * *".to_owned(),
        "@weekly" => "0 0 * * 0".to_owned(),
        "@monthly" => "0 0 1 * *".to_owned(),
        _ => expression.to_owned(),
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    let fields = match fields.as_slice() {
        ["0", rest @ ..] if rest.len() == 5 => rest,
        all if all.len() == 5 => all,
        _ => return None,
    };
    let &[minute, hour, day, month, weekday] = fields else {
        return None;
    };
    let is_any = |field: &str| field == "*" || field == "?";
    let minute = plain_number(minute, 0, 59)?;
    if !is_any(month) {
        return None;
    }
    if hour == "*" {
        return (is_any(day) && is_any(weekday))
            .then(|| format!("at minute {minute} of every hour"));
    }
    let time = format!("at {:02}:{minute:02}", plain_number(hour, 0, 23)?);
    match (is_any(day), is_any(weekday)) {
        (true, true) => Some(format!("{time} every day")),
        (true, false) => Some(format!("{time} on {}", weekdays(weekday)?)),
        (false, true) => Some(format!(
            "{time} on day {} of every month",
            plain_number(day, 1, 31)?
        )),
        (false, false) => None,
    }
}

fn plain_number(field: &str, min: u32, max: u32) -> Option<u32> {
    if !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok().filter(|n| (min..=max).contains(n))
}

const WEEKDAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// One weekday as written in a cron line (`0`-`7` or `sun`-`sat`), as an index into
/// [`WEEKDAY_NAMES`].
fn weekday(field: &str) -> Option<usize> {
    if let Some(number) = plain_number(field, 0, 7) {
        return Some(number as usize % 7);
    }
    WEEKDAY_NAMES
        .iter()
        .position(|name| name[..3].eq_ignore_ascii_case(field))
}

/// "Monday to Friday" for a range, "Monday, Wednesday and Friday" for a list.
fn weekdays(field: &str) -> Option<String> {
    if let Some((from, to)) = field.split_once('-') {
        let (from, to) = (weekday(from)?, weekday(to)?);
        let to_number = if to == 0 { 7 } else { to };
        return (from < to_number)
            .then(|| format!("{} to {}", WEEKDAY_NAMES[from], WEEKDAY_NAMES[to]));
    }
    let days = field
        .split(',')
        .map(|day| weekday(day).map(|index| WEEKDAY_NAMES[index]))
        .collect::<Option<Vec<_>>>()?;
    match days.as_slice() {
        [] => None,
        [one] => Some((*one).to_owned()),
        [init @ .., last] => Some(format!("{} and {last}", init.join(", "))),
    }
}

#[cfg(test)]
mod tests;
