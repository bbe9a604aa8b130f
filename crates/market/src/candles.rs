//! Candle intervals (Binance's set) and their UTC boundaries.

/// One candle interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Interval {
    /// 1 second.
    S1,
    /// 1 minute.
    M1,
    /// 3 minutes.
    M3,
    /// 5 minutes.
    M5,
    /// 15 minutes.
    M15,
    /// 30 minutes.
    M30,
    /// 1 hour.
    H1,
    /// 2 hours.
    H2,
    /// 4 hours.
    H4,
    /// 6 hours.
    H6,
    /// 8 hours.
    H8,
    /// 12 hours.
    H12,
    /// 1 day.
    D1,
    /// 3 days.
    D3,
    /// 1 week (weeks start on Monday 00:00 UTC).
    W1,
    /// 1 calendar month (UTC).
    Mo1,
}

const SECOND: u64 = 1_000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

impl Interval {
    /// Every interval, shortest first.
    pub const ALL: [Interval; 16] = [
        Interval::S1,
        Interval::M1,
        Interval::M3,
        Interval::M5,
        Interval::M15,
        Interval::M30,
        Interval::H1,
        Interval::H2,
        Interval::H4,
        Interval::H6,
        Interval::H8,
        Interval::H12,
        Interval::D1,
        Interval::D3,
        Interval::W1,
        Interval::Mo1,
    ];

    /// Binance's name for it (`1s`, `1m`, …, `1M`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Interval::S1 => "1s",
            Interval::M1 => "1m",
            Interval::M3 => "3m",
            Interval::M5 => "5m",
            Interval::M15 => "15m",
            Interval::M30 => "30m",
            Interval::H1 => "1h",
            Interval::H2 => "2h",
            Interval::H4 => "4h",
            Interval::H6 => "6h",
            Interval::H8 => "8h",
            Interval::H12 => "12h",
            Interval::D1 => "1d",
            Interval::D3 => "3d",
            Interval::W1 => "1w",
            Interval::Mo1 => "1M",
        }
    }

    /// The interval with that name (case-sensitive: `1m` is a minute, `1M` a month).
    #[must_use]
    pub fn parse(name: &str) -> Option<Interval> {
        Interval::ALL.into_iter().find(|i| i.name() == name)
    }

    /// Position in [`Interval::ALL`].
    #[must_use]
    pub fn index(self) -> usize {
        self as usize
    }

    /// The start of the candle holding `time_ms`.
    #[must_use]
    pub fn open_time(self, time_ms: u64) -> u64 {
        let fixed = |len: u64| time_ms - time_ms % len;
        match self {
            Interval::S1 => fixed(SECOND),
            Interval::M1 => fixed(MINUTE),
            Interval::M3 => fixed(3 * MINUTE),
            Interval::M5 => fixed(5 * MINUTE),
            Interval::M15 => fixed(15 * MINUTE),
            Interval::M30 => fixed(30 * MINUTE),
            Interval::H1 => fixed(HOUR),
            Interval::H2 => fixed(2 * HOUR),
            Interval::H4 => fixed(4 * HOUR),
            Interval::H6 => fixed(6 * HOUR),
            Interval::H8 => fixed(8 * HOUR),
            Interval::H12 => fixed(12 * HOUR),
            Interval::D1 => fixed(DAY),
            Interval::D3 => fixed(3 * DAY),
            Interval::W1 => {
                // 1970-01-01 was a Thursday; Mondays are days ≡ 4 (mod 7).
                let day = time_ms / DAY;
                (day - (day + 3) % 7) * DAY
            }
            Interval::Mo1 => {
                let (year, month, _) = civil_from_days(time_ms / DAY);
                days_from_civil(year, month, 1) * DAY
            }
        }
    }

    /// The last millisecond of the candle that opens at `open_time`.
    #[must_use]
    pub fn close_time(self, open_time: u64) -> u64 {
        let next = match self {
            Interval::Mo1 => {
                let (year, month, _) = civil_from_days(open_time / DAY);
                let (year, month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                days_from_civil(year, month, 1) * DAY
            }
            Interval::W1 => open_time + 7 * DAY,
            _ => self.open_time(open_time) + self.fixed_len(),
        };
        next - 1
    }

    /// The length of an interval (a month counts as 31 days).
    #[must_use]
    pub fn fixed_len(self) -> u64 {
        match self {
            Interval::S1 => SECOND,
            Interval::M1 => MINUTE,
            Interval::M3 => 3 * MINUTE,
            Interval::M5 => 5 * MINUTE,
            Interval::M15 => 15 * MINUTE,
            Interval::M30 => 30 * MINUTE,
            Interval::H1 => HOUR,
            Interval::H2 => 2 * HOUR,
            Interval::H4 => 4 * HOUR,
            Interval::H6 => 6 * HOUR,
            Interval::H8 => 8 * HOUR,
            Interval::H12 => 12 * HOUR,
            Interval::D1 => DAY,
            Interval::D3 => 3 * DAY,
            Interval::W1 => 7 * DAY,
            Interval::Mo1 => 31 * DAY,
        }
    }
}

/// (year, month 1–12, day 1–31) of a day count since 1970-01-01 (Howard Hinnant's algorithm,
/// restricted to dates after 1970).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a date on or after it.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-18 13:47:05.123 UTC, a Wednesday.
    const T: u64 = 1_795_009_625_123;

    #[test]
    fn fixed_intervals_align_to_the_epoch() {
        assert_eq!(Interval::S1.open_time(T), 1_795_009_625_000);
        assert_eq!(Interval::M1.open_time(T), 1_795_009_620_000);
        assert_eq!(Interval::H1.open_time(T), 1_795_006_800_000);
        assert_eq!(Interval::D1.open_time(T), 1_794_960_000_000);
        assert_eq!(
            Interval::M1.close_time(1_795_009_620_000),
            1_795_009_679_999
        );
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        // Monday 2026-11-16 00:00 UTC, and the week ends before the next Monday.
        assert_eq!(Interval::W1.open_time(T), 1_794_787_200_000);
        assert_eq!(
            Interval::W1.close_time(1_794_787_200_000),
            1_795_391_999_999
        );
        // 2026-11-01 00:00 UTC and the last millisecond of November.
        assert_eq!(Interval::Mo1.open_time(T), 1_793_491_200_000);
        assert_eq!(
            Interval::Mo1.close_time(1_793_491_200_000),
            1_796_083_200_000 - 1
        );
        // December rolls into the next year.
        let december = days_from_civil(2026, 12, 1) * DAY;
        assert_eq!(
            Interval::Mo1.close_time(december),
            days_from_civil(2027, 1, 1) * DAY - 1
        );
    }

    #[test]
    fn every_name_parses_back() {
        for interval in Interval::ALL {
            assert_eq!(Interval::parse(interval.name()), Some(interval));
        }
        assert_eq!(Interval::parse("2m"), None);
    }
}
