//! Weeks and their names. A week is identified by its close (ms since the Unix epoch) and
//! named after the ISO 8601 week in which it ends — the week of the instant just before the
//! close — so the week that closes on Sunday 29 November 2026 at 05:00 UTC is `2026-W48`.
//! The schedule is a weekday and a time of day in UTC (default Sunday 05:00).

use crate::DaoError;

/// One day in milliseconds.
pub const DAY_MS: u64 = 86_400_000;
/// One week in milliseconds.
pub const WEEK_MS: u64 = 7 * DAY_MS;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The year of a day number.
fn year_of(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400;
    if month <= 2 { year + 1 } else { year }
}

/// Monday = 0 … Sunday = 6 (1970-01-01 was a Thursday).
fn weekday(days: i64) -> i64 {
    (days + 3).rem_euclid(7)
}

/// The ISO 8601 (year, week) of a day.
fn iso_week(days: i64) -> (i64, u32) {
    let thursday = days - weekday(days) + 3;
    let year = year_of(thursday);
    let week = (thursday - days_from_civil(year, 1, 1)) / 7 + 1;
    (year, u32::try_from(week).unwrap_or(0))
}

/// The name of the week that closes at `close_ms`, e.g. `2026-W48`.
#[must_use]
pub fn week_name(close_ms: u64) -> String {
    let last = i64::try_from(close_ms.saturating_sub(1) / DAY_MS).unwrap_or(i64::MAX);
    let (year, week) = iso_week(last);
    format!("{year:04}-W{week:02}")
}

/// Checks a week name (`YYYY-Www`) and returns it normalised.
pub fn parse_week(name: &str) -> Result<String, DaoError> {
    let bad = || DaoError::InvalidWeek(name.to_owned());
    let (year, week) = name.split_once("-W").ok_or_else(bad)?;
    if year.len() != 4 || week.len() != 2 {
        return Err(bad());
    }
    let year: i64 = year.parse().map_err(|_| bad())?;
    let week: u32 = week.parse().map_err(|_| bad())?;
    // A year has 53 ISO weeks when 28 December falls in week 53.
    let weeks = iso_week(days_from_civil(year, 12, 28)).1;
    if week == 0 || week > weeks {
        return Err(bad());
    }
    Ok(format!("{year:04}-W{week:02}"))
}

/// A weekly close: weekday (Monday = 0) and minute of the day, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklyClose {
    weekday: u8,
    minute: u16,
}

impl Default for WeeklyClose {
    /// Sunday 05:00 UTC.
    fn default() -> Self {
        Self {
            weekday: 6,
            minute: 5 * 60,
        }
    }
}

const WEEKDAYS: [&str; 7] = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];

impl WeeklyClose {
    /// Parses `SUN 05:00` (weekday in English, three letters, any case; time in UTC).
    pub fn parse(text: &str) -> Result<Self, DaoError> {
        let bad = || DaoError::InvalidSchedule(text.to_owned());
        let (day, time) = text.trim().split_once(' ').ok_or_else(bad)?;
        let weekday = WEEKDAYS
            .iter()
            .position(|d| d.eq_ignore_ascii_case(day.trim()))
            .ok_or_else(bad)?;
        let (hour, minute) = time.trim().split_once(':').ok_or_else(bad)?;
        let (hour, minute): (u16, u16) = (
            hour.parse().map_err(|_| bad())?,
            minute.parse().map_err(|_| bad())?,
        );
        if hour > 23 || minute > 59 || time.trim().len() != 5 {
            return Err(bad());
        }
        Ok(Self {
            weekday: u8::try_from(weekday).map_err(|_| bad())?,
            minute: hour * 60 + minute,
        })
    }

    /// The first close strictly after `now_ms`.
    #[must_use]
    pub fn next_after(self, now_ms: u64) -> u64 {
        // 1970-01-05 was a Monday: closes are 4 days + weekday + minute after the epoch,
        // modulo whole weeks.
        let offset = (4 + u64::from(self.weekday)) * DAY_MS + u64::from(self.minute) * 60_000;
        let offset = offset % WEEK_MS;
        let since = now_ms.saturating_sub(offset) / WEEK_MS;
        let mut close = since * WEEK_MS + offset;
        while close <= now_ms {
            close += WEEK_MS;
        }
        close
    }
}

impl std::fmt::Display for WeeklyClose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:02}:{:02}",
            WEEKDAYS[usize::from(self.weekday)],
            self.minute / 60,
            self.minute % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-29 (a Sunday) 05:00:00 UTC.
    const SUNDAY_0500: u64 = 1_795_928_400_000;

    #[test]
    fn the_sunday_0500_close_is_found_to_the_millisecond() {
        let close = WeeklyClose::default();
        assert_eq!(close.to_string(), "SUN 05:00");
        assert_eq!(close.next_after(SUNDAY_0500 - 1), SUNDAY_0500);
        assert_eq!(close.next_after(SUNDAY_0500), SUNDAY_0500 + WEEK_MS);
        assert_eq!(close.next_after(SUNDAY_0500 - WEEK_MS), SUNDAY_0500);
        assert_eq!(close.next_after(0), 277_200_000);
    }

    #[test]
    fn weeks_are_named_after_the_iso_week_they_end_in() {
        assert_eq!(week_name(SUNDAY_0500), "2026-W48");
        // A Monday 00:00 close ends the previous ISO week.
        let monday = SUNDAY_0500 + 19 * 3_600_000;
        assert_eq!(week_name(monday), "2026-W48");
        assert_eq!(week_name(monday + 1), "2026-W49");
        // ISO years differ from calendar years at the edges.
        assert_eq!(week_name(days_ms(2021, 1, 3) + 1), "2020-W53");
        assert_eq!(week_name(days_ms(2024, 12, 30) + 1), "2025-W01");
    }

    fn days_ms(y: i64, m: u32, d: u32) -> u64 {
        u64::try_from(days_from_civil(y, m, d)).unwrap() * DAY_MS
    }

    #[test]
    fn schedules_and_week_names_are_parsed_strictly() {
        assert_eq!(
            WeeklyClose::parse("mon 00:00").unwrap().to_string(),
            "MON 00:00"
        );
        for bad in ["SUN", "SUN 5:00", "SUN 24:00", "XYZ 05:00", "SUN 05:60"] {
            assert!(WeeklyClose::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_week("2026-W48").unwrap(), "2026-W48");
        assert_eq!(parse_week("2020-W53").unwrap(), "2020-W53");
        for bad in [
            "2026-W54", "2026-W00", "2025-W53", "2026W48", "26-W48", "2026-W4",
        ] {
            assert!(parse_week(bad).is_err(), "{bad}");
        }
    }
}
