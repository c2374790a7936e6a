use super::*;
use crate::schedule::Schedule;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("a valid UTC time")
}

fn cron(line: &str, zone: &str) -> Schedule {
    Schedule::parse(None, Some(line), Some(zone)).expect("a valid cron schedule")
}

/// Every fire of `schedule` from `from` (exclusive) up to `until` (inclusive).
fn fires_between(
    schedule: &Schedule,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let mut fires = Vec::new();
    let mut cursor = from;
    while let Some(next) = schedule.next_after(cursor) {
        if next > until {
            break;
        }
        fires.push(next);
        cursor = next;
    }
    fires
}

#[test]
fn a_daily_line_fires_at_its_local_time() {
    let schedule = cron("0 3 * * *", "Europe/Berlin");
    // Winter: Berlin is UTC+1.
    assert_eq!(
        schedule.next_after(utc(2026, 1, 10, 12, 0)),
        Some(utc(2026, 1, 11, 2, 0))
    );
    // Summer: UTC+2.
    assert_eq!(
        schedule.next_after(utc(2026, 7, 10, 12, 0)),
        Some(utc(2026, 7, 11, 1, 0))
    );
}

#[test]
fn the_next_fire_is_strictly_after_the_given_instant() {
    let schedule = cron("0 3 * * *", "UTC");
    let fire = utc(2026, 1, 11, 3, 0);
    assert_eq!(schedule.next_after(fire), Some(utc(2026, 1, 12, 3, 0)));
    assert_eq!(
        schedule.next_after(fire - chrono::Duration::milliseconds(1)),
        Some(fire)
    );
    assert_eq!(
        schedule.next_after(fire + chrono::Duration::milliseconds(500)),
        Some(utc(2026, 1, 12, 3, 0))
    );
}

#[test]
fn a_time_in_the_spring_forward_gap_fires_once_right_after_the_gap() {
    // Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 never exists.
    let schedule = cron("30 2 * * *", "Europe/Berlin");
    let fires = schedule.upcoming(utc(2026, 3, 27, 12, 0), 4);
    assert_eq!(
        fires,
        [
            utc(2026, 3, 28, 1, 30), // 02:30 CET
            utc(2026, 3, 29, 1, 0),  // 03:00 CEST, the first instant after the gap
            utc(2026, 3, 30, 0, 30), // 02:30 CEST
            utc(2026, 3, 31, 0, 30),
        ]
    );
}

#[test]
fn several_times_in_the_gap_fire_once_together() {
    let schedule = cron("0,30 2 * * *", "Europe/Berlin");
    let fires = fires_between(&schedule, utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 22, 0));
    assert_eq!(fires, [utc(2026, 3, 29, 1, 0)]);
}

#[test]
fn a_repeated_time_on_the_fall_back_day_fires_once_in_its_first_occurrence() {
    // Berlin 2026-10-25: 03:00 CEST goes back to 02:00 CET (01:00 UTC), so 02:30
    // happens at 00:30 UTC and again at 01:30 UTC.
    let schedule = cron("30 2 * * *", "Europe/Berlin");
    let fires = fires_between(
        &schedule,
        utc(2026, 10, 24, 12, 0),
        utc(2026, 10, 26, 12, 0),
    );
    assert_eq!(fires, [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]);
    // Asked from inside the repeated hour, it does not fire a second time that day.
    assert_eq!(
        schedule.next_after(utc(2026, 10, 25, 1, 15)),
        Some(utc(2026, 10, 26, 1, 30))
    );
}

#[test]
fn a_line_listing_hours_fires_once_per_named_time_on_the_fall_back_day() {
    let schedule = cron("30 2,14 * * *", "Europe/Berlin");
    let fires = fires_between(
        &schedule,
        utc(2026, 10, 24, 22, 0),
        utc(2026, 10, 25, 22, 0),
    );
    assert_eq!(fires, [utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 13, 30)]);
}

#[test]
fn croner_alone_fires_a_listed_hour_twice_on_fall_back_which_we_correct() {
    // Pins the upstream behaviour this module corrects: if croner changes, revisit
    // the module documentation.
    let line: Cron = "30 2,14 * * *".parse().expect("a valid line");
    let berlin: Tz = "Europe/Berlin".parse().expect("a zone");
    let start = utc(2026, 10, 24, 22, 0).with_timezone(&berlin);
    let fires: Vec<_> = line
        .iter_after(start)
        .take(2)
        .map(|at| at.with_timezone(&Utc))
        .collect();
    assert_eq!(fires, [utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)]);
}

#[test]
fn an_hourly_line_fires_once_per_real_hour_across_both_changes() {
    let schedule = cron("0 * * * *", "Europe/Berlin");
    // Local midnight to midnight: 23 real hours in spring, 25 in autumn.
    let spring = fires_between(
        &schedule,
        utc(2026, 3, 28, 22, 59),
        utc(2026, 3, 29, 21, 59),
    );
    assert_eq!(spring.len(), 23);
    let autumn = fires_between(
        &schedule,
        utc(2026, 10, 24, 21, 59),
        utc(2026, 10, 25, 22, 59),
    );
    assert_eq!(autumn.len(), 25);
    for fires in [spring, autumn] {
        for pair in fires.windows(2) {
            assert_eq!(pair[1] - pair[0], chrono::Duration::hours(1), "{pair:?}");
        }
    }
}

#[test]
fn an_every_hour_line_fires_in_both_passes_of_the_repeated_hour() {
    let schedule = cron("*/20 * * * *", "Europe/Berlin");
    // From 02:50 CEST (00:50 UTC), in the first pass of 02:xx.
    let fires = schedule.upcoming(utc(2026, 10, 25, 0, 50), 4);
    assert_eq!(
        fires,
        [
            utc(2026, 10, 25, 1, 0),  // 02:00 CET, the second pass begins
            utc(2026, 10, 25, 1, 20), // 02:20 CET
            utc(2026, 10, 25, 1, 40),
            utc(2026, 10, 25, 2, 0), // 03:00 CET
        ]
    );
    // From inside the first pass, the first pass's own fires come first.
    assert_eq!(
        schedule.upcoming(utc(2026, 10, 25, 0, 10), 2),
        [utc(2026, 10, 25, 0, 20), utc(2026, 10, 25, 0, 40)]
    );
}

#[test]
fn an_every_minute_line_skips_the_gap_without_a_burst() {
    let schedule = cron("* * * * *", "Europe/Berlin");
    assert_eq!(
        schedule.upcoming(utc(2026, 3, 29, 0, 58), 3),
        [
            utc(2026, 3, 29, 0, 59), // 01:59 CET
            utc(2026, 3, 29, 1, 0),  // 03:00 CEST
            utc(2026, 3, 29, 1, 1),
        ]
    );
}

#[test]
fn a_seconds_field_is_accepted() {
    let schedule = cron("*/10 * * * * *", "UTC");
    let start = utc(2026, 1, 1, 0, 0);
    assert_eq!(
        schedule.upcoming(start, 2),
        [
            start + chrono::Duration::seconds(10),
            start + chrono::Duration::seconds(20)
        ]
    );
}

#[test]
fn nicknames_are_accepted() {
    let schedule = cron("@daily", "UTC");
    assert_eq!(
        schedule.next_after(utc(2026, 1, 1, 12, 0)),
        Some(utc(2026, 1, 2, 0, 0))
    );
}

#[test]
fn an_unknown_zone_is_named_in_the_timezone_field() {
    let error = CronSchedule::parse("0 3 * * *", "Europe/Berln").expect_err("unknown zone");
    assert_eq!(error.field, "timezone");
    assert_eq!(
        error.message,
        "unknown time zone \"Europe/Berln\": use an IANA name like Europe/Berlin"
    );
}

#[test]
fn a_bad_line_is_refused_in_the_cron_field_with_the_reason() {
    let error = CronSchedule::parse("61 * * * *", "UTC").expect_err("bad minute");
    assert_eq!(error.field, "cron");
    assert!(
        error
            .message
            .starts_with("\"61 * * * *\" is not a valid cron line: ")
    );
    assert!(error.message.contains("out of bounds"), "{}", error.message);

    let error = CronSchedule::parse("0 3 * *", "UTC").expect_err("four fields");
    assert_eq!(error.field, "cron");
    assert!(error.message.contains("has 4 fields"), "{}", error.message);

    let error = CronSchedule::parse("0 3 * * * * 2030", "UTC").expect_err("a year");
    assert_eq!(error.field, "cron");

    let error = CronSchedule::parse("0 x * * *", "UTC").expect_err("a letter");
    assert_eq!(error.field, "cron");
    assert!(
        error.message.contains("illegal character"),
        "{}",
        error.message
    );
}

#[test]
fn a_line_that_never_fires_is_refused() {
    let error = CronSchedule::parse("0 0 31 2 *", "UTC").expect_err("no 31 February");
    assert_eq!(error.field, "cron");
    assert_eq!(
        error.message,
        "\"0 0 31 2 *\" never fires: no date matches it"
    );
}

#[test]
fn common_shapes_are_described_in_words() {
    let describe = |line: &str, zone: &str| {
        CronSchedule::parse(line, zone)
            .expect("a valid line")
            .describe()
    };
    assert_eq!(
        describe("0 3 * * *", "Europe/Berlin"),
        "at 03:00 every day (Europe/Berlin)"
    );
    assert_eq!(
        describe("15 * * * *", "UTC"),
        "at minute 15 of every hour (UTC)"
    );
    assert_eq!(
        describe("30 9 * * 1-5", "UTC"),
        "at 09:30 on Monday to Friday (UTC)"
    );
    assert_eq!(
        describe("30 9 * * mon-fri", "UTC"),
        "at 09:30 on Monday to Friday (UTC)"
    );
    assert_eq!(
        describe("0 18 * * 1,3,5", "UTC"),
        "at 18:00 on Monday, Wednesday and Friday (UTC)"
    );
    assert_eq!(describe("0 0 * * 7", "UTC"), "at 00:00 on Sunday (UTC)");
    assert_eq!(
        describe("0 6 1 * *", "UTC"),
        "at 06:00 on day 1 of every month (UTC)"
    );
    assert_eq!(describe("0 3 * * * ", "UTC"), "at 03:00 every day (UTC)");
    assert_eq!(describe("0 0 3 * * *", "UTC"), "at 03:00 every day (UTC)");
    assert_eq!(describe("@daily", "UTC"), "at 00:00 every day (UTC)");
    assert_eq!(describe("0 */2 * * 1-5", "UTC"), "cron 0 */2 * * 1-5 (UTC)");
    assert_eq!(describe("0 3 * 1 *", "UTC"), "cron 0 3 * 1 * (UTC)");
    assert_eq!(describe("5 0 3 * * *", "UTC"), "cron 5 0 3 * * * (UTC)");
}

#[test]
fn equal_lines_in_equal_zones_are_equal() {
    assert_eq!(cron("0 3 * * *", "UTC"), cron(" 0 3 * * * ", "UTC"));
    assert_ne!(cron("0 3 * * *", "UTC"), cron("0 3 * * *", "Europe/Berlin"));
}

#[test]
fn a_zone_name_in_the_wrong_case_is_understood() {
    let schedule = CronSchedule::parse("0 3 * * *", "europe/berlin").expect("a known zone");
    assert_eq!(schedule.timezone(), chrono_tz::Europe::Berlin);
    assert_eq!(schedule.describe(), "at 03:00 every day (Europe/Berlin)");
}

#[test]
fn a_leap_day_line_fires_in_leap_years_only() {
    let schedule = cron("0 12 29 2 *", "UTC");
    assert_eq!(
        schedule.next_after(utc(2026, 1, 1, 0, 0)),
        Some(utc(2028, 2, 29, 12, 0))
    );
}
