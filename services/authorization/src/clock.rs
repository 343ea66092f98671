//! Calendar facts the decision needs, in China Standard Time (UTC+8, no daylight saving): the
//! month a card's expiry is compared with. (The business date of a decision follows the
//! business day's cut-off: `pos_domain::time::BusinessDay`.)

use std::time::SystemTime;

use pos_domain::time::ChinaTime;

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    /// Year, e.g. 2025.
    pub year: i64,
    /// Month 1..=12.
    pub month: u32,
    /// Day 1..=31.
    pub day: u32,
}

impl Date {
    /// The date of `at` in China Standard Time.
    pub fn in_china(at: SystemTime) -> Self {
        let t = ChinaTime::at(at);
        Self {
            year: t.year,
            month: t.month,
            day: t.day,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn dates_are_in_china_standard_time() {
        assert_eq!(
            (Date::in_china(at(0)).year, Date::in_china(at(0)).day),
            (1970, 1)
        );
        // 2024-02-29T15:59:59Z is 23:59:59 in Shanghai; one second later it is March.
        assert_eq!(Date::in_china(at(1_709_222_399)).day, 29);
        assert_eq!(Date::in_china(at(1_709_222_400)).month, 3);
        // 2025-12-31T16:00:00Z is already 2026 in Shanghai.
        let new_year = Date::in_china(at(1_767_196_800));
        assert_eq!((new_year.year, new_year.month, new_year.day), (2026, 1, 1));
    }
}
