//! Durations written as `30s`, `5m`, `1h30m`, `1d` (units s, m, h, d, combinable).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Why a duration does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(pub String);

/// Parses `30s`, `5m`, `1h30m`, `1d`, `2d12h`. Units must appear largest first and at
/// most once; the total must be more than zero.
///
/// # Errors
/// A sentence saying what is wrong, e.g. "\"5x\" has an unknown unit 'x': use s, m, h or d".
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    todo!("{text}")
}

/// The canonical spelling of a whole-second duration: `90s` → `1m30s`, `3600s` → `1h`.
pub fn format_duration(duration: Duration) -> String {
    todo!("{duration:?}")
}

/// A fixed interval between fires: 1 second to 31 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval(Duration);

impl Interval {
    pub const MIN: Duration = Duration::from_secs(1);
    pub const MAX: Duration = Duration::from_secs(31 * 24 * 3600);

    /// # Errors
    /// When `duration` is under 1 second, over 31 days, or not a whole number of seconds.
    pub fn new(duration: Duration) -> Result<Self, DurationError> {
        todo!("{duration:?}")
    }

    pub fn as_std(self) -> Duration {
        self.0
    }

    pub fn as_chrono(self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }

    /// "every 5 minutes", "every 1 hour 30 minutes", "every second".
    pub fn describe(self) -> String {
        todo!()
    }
}

impl FromStr for Interval {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Interval::new(parse_duration(s)?)
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}
