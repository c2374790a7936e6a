//! Durations written as `30s`, `5m`, `1h30m`, `1d` (units s, m, h, d, combinable).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Why a duration does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(pub String);

/// The units, largest first, with their length in seconds and their names in words.
const UNITS: [Unit; 4] = [
    Unit {
        letter: 'd',
        seconds: 86_400,
        singular: "day",
        plural: "days",
    },
    Unit {
        letter: 'h',
        seconds: 3_600,
        singular: "hour",
        plural: "hours",
    },
    Unit {
        letter: 'm',
        seconds: 60,
        singular: "minute",
        plural: "minutes",
    },
    Unit {
        letter: 's',
        seconds: 1,
        singular: "second",
        plural: "seconds",
    },
];

struct Unit {
    letter: char,
    seconds: u64,
    singular: &'static str,
    plural: &'static str,
}

fn unit_index(letter: char) -> Option<usize> {
    UNITS.iter().position(|unit| unit.letter == letter)
}

/// Parses `30s`, `5m`, `1h30m`, `1d`, `2d12h`. Units must appear largest first and at
/// most once; the total must be more than zero. Surrounding whitespace is ignored.
///
/// # Errors
/// A sentence saying what is wrong, e.g. "\"5x\" has an unknown unit 'x': use s, m, h or d".
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    match parse_seconds(text)? {
        0 => Err(DurationError("a duration must be more than zero".into())),
        seconds => Ok(Duration::from_secs(seconds)),
    }
}

/// The grammar of [`parse_duration`], letting zero through so that callers with a
/// lower bound of their own can word it.
fn parse_seconds(text: &str) -> Result<u64, DurationError> {
    let text = text.trim();
    let fail = |reason: String| Err(DurationError(format!("{text:?} {reason}")));
    if text.is_empty() {
        return fail("is empty: write a duration like 30s, 5m or 1h30m".into());
    }
    if !text.chars().any(|c| c.is_ascii_digit()) {
        return fail("is not a duration: write a number and a unit, like 30s, 5m or 1h30m".into());
    }

    let mut total: u64 = 0;
    // Index into UNITS of the last unit read; the next must be strictly smaller.
    let mut previous_unit: Option<usize> = None;
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let mut number: Option<u64> = None;
        while let Some(digit) = chars.peek().and_then(|c| c.to_digit(10)) {
            chars.next();
            let grown = number
                .unwrap_or(0)
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(digit)));
            match grown {
                Some(n) => number = Some(n),
                None => return fail("is too large to be a duration".into()),
            }
        }
        let next = chars.next();
        let Some(number) = number else {
            return match next {
                Some(c) if unit_index(c).is_some() => {
                    fail(format!("is missing a number before '{c}'"))
                }
                Some(c) if c.is_whitespace() => fail(space_reason()),
                _ => fail(
                    "is not a duration: write whole numbers followed by a unit, like 30s or 1h30m"
                        .into(),
                ),
            };
        };
        let index = match next {
            None => {
                return fail(format!(
                    "needs a unit after {number}: use s, m, h or d (e.g. {number}m)"
                ));
            }
            Some('.' | ',') => {
                return fail("has a fraction: use whole numbers, like 1h30m for 1.5h".into());
            }
            Some(c) if c.is_whitespace() => return fail(space_reason()),
            Some(c) => match unit_index(c) {
                Some(index) => index,
                None => return fail(format!("has an unknown unit '{c}': use s, m, h or d")),
            },
        };
        let unit = &UNITS[index];
        match previous_unit {
            Some(previous) if previous == index => {
                return fail(format!(
                    "repeats the unit '{}': write each unit at most once",
                    unit.letter
                ));
            }
            Some(previous) if previous > index => {
                return fail(
                    "has its units out of order: write the largest first, like 1d2h30m".into(),
                );
            }
            _ => previous_unit = Some(index),
        }
        total = match number
            .checked_mul(unit.seconds)
            .and_then(|seconds| total.checked_add(seconds))
        {
            Some(total) => total,
            None => return fail("is too large to be a duration".into()),
        };
    }

    Ok(total)
}

fn space_reason() -> String {
    "has a space in it: write the parts together, like 1h30m".into()
}

/// Splits whole seconds into (count, unit) parts, largest unit first, leaving out zeros.
fn parts(mut seconds: u64) -> impl Iterator<Item = (u64, &'static Unit)> {
    UNITS.iter().filter_map(move |unit| {
        let count = seconds / unit.seconds;
        seconds %= unit.seconds;
        (count > 0).then_some((count, unit))
    })
}

/// The canonical spelling of a whole-second duration: `90s` → `1m30s`, `3600s` → `1h`.
/// A fraction of a second is dropped, and zero is `0s`.
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds == 0 {
        return "0s".into();
    }
    parts(seconds)
        .map(|(count, unit)| format!("{count}{}", unit.letter))
        .collect()
}

/// A fixed interval between fires: 1 second to 31 days, in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval(Duration);

impl Interval {
    /// The shortest interval.
    pub const MIN: Duration = Duration::from_secs(1);
    /// The longest interval: a job that runs less often wants a cron line.
    pub const MAX: Duration = Duration::from_secs(31 * 24 * 3600);

    /// # Errors
    /// When `duration` is under 1 second, over 31 days, or not a whole number of seconds.
    pub fn new(duration: Duration) -> Result<Self, DurationError> {
        if duration < Self::MIN {
            return Err(DurationError(
                "an interval must be at least 1 second".into(),
            ));
        }
        if duration > Self::MAX {
            return Err(DurationError("an interval can be at most 31 days".into()));
        }
        if duration.subsec_nanos() != 0 {
            return Err(DurationError(
                "an interval must be a whole number of seconds".into(),
            ));
        }
        Ok(Self(duration))
    }

    /// The interval as a standard duration.
    pub fn as_std(self) -> Duration {
        self.0
    }

    /// The interval as a chrono duration, for date arithmetic.
    pub fn as_chrono(self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }

    /// "every 5 minutes", "every 1 hour 30 minutes", "every second", "every day".
    pub fn describe(self) -> String {
        let parts: Vec<_> = parts(self.0.as_secs()).collect();
        match parts.as_slice() {
            [(1, unit)] => format!("every {}", unit.singular),
            _ => {
                let words: Vec<String> = parts
                    .iter()
                    .map(|(count, unit)| {
                        let name = if *count == 1 {
                            unit.singular
                        } else {
                            unit.plural
                        };
                        format!("{count} {name}")
                    })
                    .collect();
                format!("every {}", words.join(" "))
            }
        }
    }
}

impl FromStr for Interval {
    type Err = DurationError;

    /// Parses like [`parse_duration`]; `0s` is refused as "at least 1 second".
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Interval::new(Duration::from_secs(parse_seconds(s)?))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn error(text: &str) -> String {
        parse_duration(text).expect_err("should not parse").0
    }

    #[test]
    fn single_and_combined_units_parse() {
        assert_eq!(parse_duration("30s"), Ok(secs(30)));
        assert_eq!(parse_duration("5m"), Ok(secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(secs(86_400)));
        assert_eq!(parse_duration("2d12h"), Ok(secs(216_000)));
        assert_eq!(parse_duration("1d2h3m4s"), Ok(secs(93_784)));
        assert_eq!(parse_duration("90s"), Ok(secs(90)));
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert_eq!(parse_duration("  10m\t"), Ok(secs(600)));
    }

    #[test]
    fn an_empty_text_asks_for_a_duration() {
        assert_eq!(
            error(""),
            "\"\" is empty: write a duration like 30s, 5m or 1h30m"
        );
        assert_eq!(
            error("   "),
            "\"\" is empty: write a duration like 30s, 5m or 1h30m"
        );
    }

    #[test]
    fn an_unknown_unit_is_named() {
        assert_eq!(
            error("5x"),
            "\"5x\" has an unknown unit 'x': use s, m, h or d"
        );
        assert_eq!(
            error("5M"),
            "\"5M\" has an unknown unit 'M': use s, m, h or d"
        );
    }

    #[test]
    fn a_missing_number_or_unit_is_named() {
        assert_eq!(
            error("m"),
            "\"m\" is not a duration: write a number and a unit, like 30s, 5m or 1h30m"
        );
        assert_eq!(
            error("soon"),
            "\"soon\" is not a duration: write a number and a unit, like 30s, 5m or 1h30m"
        );
        assert_eq!(error("1hm"), "\"1hm\" is missing a number before 'm'");
        assert_eq!(
            error("5"),
            "\"5\" needs a unit after 5: use s, m, h or d (e.g. 5m)"
        );
        assert!(error("-5m").contains("is not a duration"));
    }

    #[test]
    fn units_must_come_largest_first_and_once() {
        assert_eq!(
            error("30m1h"),
            "\"30m1h\" has its units out of order: write the largest first, like 1d2h30m"
        );
        assert_eq!(
            error("1h1h"),
            "\"1h1h\" repeats the unit 'h': write each unit at most once"
        );
    }

    #[test]
    fn fractions_and_spaces_are_explained() {
        assert!(error("1.5h").contains("has a fraction"));
        assert!(error("1h 30m").contains("has a space in it"));
    }

    #[test]
    fn zero_is_refused() {
        assert_eq!(error("0s"), "a duration must be more than zero");
        assert_eq!(error("0h0m"), "a duration must be more than zero");
    }

    #[test]
    fn overflow_is_refused_with_a_sentence() {
        assert_eq!(
            error("99999999999999999999s"),
            "\"99999999999999999999s\" is too large to be a duration"
        );
        assert_eq!(
            error("999999999999999999d"),
            "\"999999999999999999d\" is too large to be a duration"
        );
    }

    #[test]
    fn formatting_is_canonical() {
        assert_eq!(format_duration(secs(90)), "1m30s");
        assert_eq!(format_duration(secs(3600)), "1h");
        assert_eq!(format_duration(secs(86_400)), "1d");
        assert_eq!(format_duration(secs(93_784)), "1d2h3m4s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s");
        assert_eq!(format_duration(Duration::from_millis(400)), "0s");
    }

    #[test]
    fn formatting_then_parsing_gives_the_same_duration() {
        for seconds in [1, 59, 60, 61, 3599, 3600, 5400, 86_399, 86_400, 216_000] {
            let text = format_duration(secs(seconds));
            assert_eq!(parse_duration(&text), Ok(secs(seconds)), "{text}");
        }
    }

    #[test]
    fn interval_bounds_are_one_second_to_thirty_one_days() {
        assert_eq!(
            Interval::new(Duration::from_millis(500)),
            Err(DurationError(
                "an interval must be at least 1 second".into()
            ))
        );
        assert_eq!(
            Interval::new(secs(31 * 86_400 + 1)),
            Err(DurationError("an interval can be at most 31 days".into()))
        );
        assert!(Interval::new(Duration::from_millis(1500)).is_err());
        assert!(Interval::new(Interval::MIN).is_ok());
        assert!(Interval::new(Interval::MAX).is_ok());
        assert_eq!(
            "0s".parse::<Interval>().map_err(|e| e.0),
            Err("an interval must be at least 1 second".into())
        );
        assert_eq!(
            "32d".parse::<Interval>().map_err(|e| e.0),
            Err("an interval can be at most 31 days".into())
        );
    }

    #[test]
    fn intervals_describe_themselves_in_words() {
        let describe = |text: &str| text.parse::<Interval>().expect("valid").describe();
        assert_eq!(describe("1s"), "every second");
        assert_eq!(describe("5m"), "every 5 minutes");
        assert_eq!(describe("1h30m"), "every 1 hour 30 minutes");
        assert_eq!(describe("1d"), "every day");
        assert_eq!(describe("1h"), "every hour");
        assert_eq!(describe("2d12h"), "every 2 days 12 hours");
        assert_eq!(describe("24h"), "every day");
    }

    #[test]
    fn intervals_display_canonically() {
        assert_eq!(
            "90s".parse::<Interval>().expect("valid").to_string(),
            "1m30s"
        );
    }
}
