//! The bank's calendar: business dates, RRN prefixes and ledger time stamps, in China
//! Standard Time (UTC+8, no daylight saving), computed from the system clock without a
//! time-zone database.
//!
//! The business date is the calendar day in China: this bank has no cut-off hour, so a
//! transaction at 23:59:59 and one at 00:00:00 belong to consecutive business dates.

use std::time::SystemTime;

use pos_domain::time::ChinaTime;

/// A wall-clock instant in China Standard Time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BankTime {
    /// Four-digit year.
    pub year: i64,
    /// Month, 1 to 12.
    pub month: u32,
    /// Day of the month, 1 to 31.
    pub day: u32,
    /// Hour, 0 to 23.
    pub hour: u32,
    /// Minute, 0 to 59.
    pub minute: u32,
    /// Second, 0 to 59.
    pub second: u32,
}

impl BankTime {
    /// The wall clock in China at `at`.
    pub fn at(at: SystemTime) -> Self {
        let t = ChinaTime::at(at);
        Self {
            year: t.year,
            month: t.month,
            day: t.day,
            hour: t.hour,
            minute: t.minute,
            second: t.second,
        }
    }

    /// The current wall clock in China.
    pub fn now() -> Self {
        Self::at(SystemTime::now())
    }

    /// The business date "YYYY-MM-DD".
    pub fn business_date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// "YYYY-MM-DDTHH:MM:SS+08:00", as ledger entries record it.
    pub fn timestamp(&self) -> String {
        format!(
            "{}T{:02}:{:02}:{:02}+08:00",
            self.business_date(),
            self.hour,
            self.minute,
            self.second
        )
    }

    /// Day of the year, 1 to 366.
    pub fn day_of_year(&self) -> u32 {
        let t = ChinaTime {
            year: self.year,
            month: self.month,
            day: self.day,
            hour: self.hour,
            minute: self.minute,
            second: self.second,
        };
        t.day_of_year()
    }

    /// The first four characters of every RRN of this business date: the last digit of the
    /// year and the day of the year ("YDDD", the Julian date networks use), e.g. "5070" for
    /// 11 March 2025. Eight digits of a per-date counter follow.
    pub fn rrn_prefix(&self) -> String {
        format!("{}{:03}", self.year.rem_euclid(10), self.day_of_year())
    }

    /// The four-digit year and the month, to compare with a card's expiry.
    pub fn year_month(&self) -> (u16, u8) {
        let year = u16::try_from(self.year.clamp(0, 9999)).unwrap_or(0);
        let month = u8::try_from(self.month).unwrap_or(1);
        (year, month)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at(unix: u64) -> BankTime {
        BankTime::at(UNIX_EPOCH + Duration::from_secs(unix))
    }

    #[test]
    fn dates_are_china_standard_time() {
        // 2025-03-11T15:59:59Z is 23:59:59 in Shanghai; one second later is the next day there.
        let late = at(1_741_708_799);
        assert_eq!(late.timestamp(), "2025-03-11T23:59:59+08:00");
        assert_eq!(at(1_741_708_800).business_date(), "2025-03-12");
        assert_eq!(at(0).timestamp(), "1970-01-01T08:00:00+08:00");
    }

    #[test]
    fn rrn_prefix_is_year_digit_and_day_of_year() {
        // 2025-03-11 is day 70 of 2025.
        assert_eq!(at(1_741_680_000).rrn_prefix(), "5070");
        // 2024 is a leap year: 2024-12-31 is day 366.
        assert_eq!(at(1_735_574_400).business_date(), "2024-12-31");
        assert_eq!(at(1_735_574_400).rrn_prefix(), "4366");
        assert_eq!(at(1_735_660_800).rrn_prefix(), "5001");
    }

    #[test]
    fn year_month_feeds_the_expiry_check() {
        assert_eq!(at(1_741_680_000).year_month(), (2025, 3));
        // 2000-02-29 exists.
        let leap = at(951_782_400);
        assert_eq!(
            (leap.business_date().as_str(), leap.day_of_year()),
            ("2000-02-29", 60)
        );
    }
}
