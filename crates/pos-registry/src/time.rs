//! Time without a clock: conversions between `SystemTime` and protobuf timestamps, and the
//! calendar dates the rules need (birth dates, business dates), in China Standard Time.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost_types::Timestamp;

/// Offset of China Standard Time (Asia/Shanghai, no daylight saving) from UTC, in seconds.
const CST_OFFSET_SECONDS: i64 = 8 * 3600;

/// The protobuf form of an instant.
pub(crate) fn timestamp(at: SystemTime) -> Timestamp {
    Timestamp::from(at)
}

/// The instant of a protobuf timestamp; out-of-range values become the Unix epoch (they are
/// never produced by this crate, and applying an event must not fail).
pub(crate) fn system_time(ts: &Timestamp) -> SystemTime {
    let nanos = u64::try_from(ts.nanos.clamp(0, 999_999_999)).unwrap_or(0);
    let seconds = Duration::from_secs(ts.seconds.unsigned_abs());
    let whole = if ts.seconds >= 0 {
        UNIX_EPOCH.checked_add(seconds)
    } else {
        UNIX_EPOCH.checked_sub(seconds)
    };
    whole
        .and_then(|t| t.checked_add(Duration::from_nanos(nanos)))
        .unwrap_or(UNIX_EPOCH)
}

/// Whole seconds between two instants, positive when `later` is after `earlier`.
pub(crate) fn seconds_between(earlier: SystemTime, later: SystemTime) -> i64 {
    match later.duration_since(earlier) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// A calendar date (proleptic Gregorian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Date {
    year: i64,
    month: u32,
    day: u32,
}

impl Date {
    /// The date if it exists.
    pub(crate) fn new(year: i64, month: u32, day: u32) -> Option<Self> {
        let valid = (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month);
        valid.then_some(Self { year, month, day })
    }

    /// The date of `at` in China Standard Time.
    pub(crate) fn in_china(at: SystemTime) -> Self {
        let seconds = seconds_between(UNIX_EPOCH, at).saturating_add(CST_OFFSET_SECONDS);
        civil_from_days(seconds.div_euclid(86_400))
    }

    /// Parses "YYYY-MM-DD".
    pub(crate) fn parse_iso(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return None;
        }
        let number = |range: std::ops::Range<usize>| {
            let part = text.get(range)?;
            part.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| part.parse::<u32>().ok())
                .flatten()
        };
        Self::new(i64::from(number(0..4)?), number(5..7)?, number(8..10)?)
    }

    /// Parses "YYYYMMDD" (the birth date inside a resident ID number).
    pub(crate) fn parse_compact(text: &str) -> Option<Self> {
        if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<u32>().ok();
        Self::new(i64::from(number(0..4)?), number(4..6)?, number(6..8)?)
    }

    /// Completed years from `self` (a birth date) to `today`.
    pub(crate) fn years_until(self, today: Self) -> i64 {
        let before_birthday = (today.month, today.day) < (self.month, self.day);
        today.year - self.year - i64::from(before_birthday)
    }
}

/// "YYYY-MM-DD".
impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

use pos_domain::time::is_leap;

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The date `days` days after 1970-01-01.
fn civil_from_days(days: i64) -> Date {
    let (year, month, day) = pos_domain::time::civil_from_days(days);
    Date { year, month, day }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn dates_are_taken_in_china_standard_time() {
        // 2025-03-01T15:59:59Z is 23:59:59 in Shanghai; one second later it is March 2nd.
        assert_eq!(Date::in_china(at(1_740_844_799)).to_string(), "2025-03-01");
        assert_eq!(Date::in_china(at(1_740_844_800)).to_string(), "2025-03-02");
        assert_eq!(Date::in_china(UNIX_EPOCH).to_string(), "1970-01-01");
        assert_eq!(Date::in_china(at(951_782_400)).to_string(), "2000-02-29");
    }

    #[test]
    fn parses_only_real_dates() {
        assert_eq!(Date::parse_iso("2024-02-29"), Date::new(2024, 2, 29));
        assert_eq!(Date::parse_iso("2025-02-29"), None);
        assert_eq!(Date::parse_iso("2025-1-01"), None);
        assert_eq!(Date::parse_compact("19491231"), Date::new(1949, 12, 31));
        assert_eq!(Date::parse_compact("19901301"), None);
    }

    #[test]
    fn counts_completed_years() {
        let birth = Date::new(2007, 3, 2).unwrap();
        assert_eq!(birth.years_until(Date::new(2025, 3, 1).unwrap()), 17);
        assert_eq!(birth.years_until(Date::new(2025, 3, 2).unwrap()), 18);
    }

    #[test]
    fn timestamps_round_trip() {
        let t = at(1_740_844_800) + Duration::from_millis(250);
        assert_eq!(system_time(&timestamp(t)), t);
        assert_eq!(seconds_between(at(10), at(4)), -6);
    }
}
