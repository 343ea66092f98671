//! Calendar time as the business sees it: China Standard Time (UTC+8, no daylight saving), in
//! which terminals print receipts, banks date their business days and settlement cuts the day.
//! One implementation of the calendar so that every service agrees on what day it is.

use std::time::{SystemTime, UNIX_EPOCH};

/// China Standard Time's offset from UTC.
pub const CHINA_OFFSET_SECS: i64 = 8 * 3_600;

/// A date and time of day in China Standard Time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChinaTime {
    /// Year, e.g. 2026.
    pub year: i64,
    /// Month, 1..=12.
    pub month: u32,
    /// Day of the month, 1..=31.
    pub day: u32,
    /// Hour, 0..=23.
    pub hour: u32,
    /// Minute, 0..=59.
    pub minute: u32,
    /// Second, 0..=59.
    pub second: u32,
}

impl ChinaTime {
    /// The local time at `at` (times before 1970 count as 1970-01-01 08:00).
    pub fn at(at: SystemTime) -> Self {
        let unix = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2));
        Self::from_unix(unix)
    }

    /// The local time now.
    pub fn now() -> Self {
        Self::at(SystemTime::now())
    }

    /// The local time of `unix` seconds since 1970-01-01T00:00:00Z.
    pub fn from_unix(unix: i64) -> Self {
        let local = unix.saturating_add(CHINA_OFFSET_SECS);
        let (year, month, day) = civil_from_days(local.div_euclid(86_400));
        let secs = local.rem_euclid(86_400);
        let part = |value: i64| u32::try_from(value).unwrap_or(0);
        Self {
            year,
            month,
            day,
            hour: part(secs / 3_600),
            minute: part((secs % 3_600) / 60),
            second: part(secs % 60),
        }
    }

    /// "YYYY-MM-DD", the business date.
    pub fn date_iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// "YYYY-MM-DDTHH:MM:SS", as the contracts carry local times.
    pub fn iso(&self) -> String {
        format!(
            "{}T{:02}:{:02}:{:02}",
            self.date_iso(),
            self.hour,
            self.minute,
            self.second
        )
    }

    /// Day of the year, 1..=366.
    pub fn day_of_year(&self) -> u32 {
        const BEFORE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let leap = is_leap(self.year) && self.month > 2;
        BEFORE[(self.month.clamp(1, 12) - 1) as usize] + self.day + u32::from(leap)
    }
}

/// The acquirer's business day: it ends at the cut-off (local time at a fixed UTC offset), and a
/// transaction after the cut-off belongs to the next business day. Settlement settles whole
/// business days; a terminal batch opened on an earlier business day must be settled before new
/// transactions (隔日强制结算). Every service that dates a transaction uses the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusinessDay {
    /// Minutes after local midnight at which the day ends, 0..1440 (0: at midnight).
    pub cutoff_minutes: u32,
    /// Local time's offset from UTC in seconds.
    pub utc_offset_secs: i64,
}

impl Default for BusinessDay {
    /// 23:00 in Asia/Shanghai (UTC+8, no daylight saving).
    fn default() -> Self {
        Self {
            cutoff_minutes: 23 * 60,
            utc_offset_secs: CHINA_OFFSET_SECS,
        }
    }
}

impl BusinessDay {
    /// From settings: cut-off "HH:MM" and offset "+HH:MM" / "-HH:MM".
    pub fn parse(cutoff: &str, utc_offset: &str) -> std::result::Result<Self, String> {
        let hm = |text: &str| -> Option<(u32, u32)> {
            let (h, m) = text.split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            Some((h.parse().ok()?, m.parse().ok()?))
        };
        let (h, m) = hm(cutoff)
            .filter(|(h, m)| *h < 24 && *m < 60)
            .ok_or_else(|| format!("cut-off {cutoff:?} is not HH:MM"))?;
        let (sign, rest) = match utc_offset.split_at_checked(1) {
            Some(("+", rest)) => (1, rest),
            Some(("-", rest)) => (-1, rest),
            _ => return Err(format!("UTC offset {utc_offset:?} is not +HH:MM or -HH:MM")),
        };
        let (oh, om) = hm(rest)
            .filter(|(h, m)| *h <= 14 && *m < 60)
            .ok_or_else(|| format!("UTC offset {utc_offset:?} is not +HH:MM or -HH:MM"))?;
        Ok(Self {
            cutoff_minutes: h * 60 + m,
            utc_offset_secs: sign * i64::from(oh * 3_600 + om * 60),
        })
    }

    /// The business date "YYYY-MM-DD" of `at`: the local date, or the next one from the
    /// cut-off on (with a cut-off at midnight, the local date).
    pub fn date_at(&self, at: SystemTime) -> String {
        let unix = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2));
        let local = unix.saturating_add(self.utc_offset_secs);
        let mut days = local.div_euclid(86_400);
        let minute = local.rem_euclid(86_400) / 60;
        if self.cutoff_minutes > 0 && minute >= i64::from(self.cutoff_minutes) {
            days += 1;
        }
        let (y, m, d) = civil_from_days(days);
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// Today's business date.
    pub fn today(&self) -> String {
        self.date_at(SystemTime::now())
    }
}

/// Whether `year` is a leap year (proleptic Gregorian).
pub fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// The (year, month, day) `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // day is 1..=31 and month 1..=12 by construction
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// Days from 1970-01-01 to the date "YYYY-MM-DD" (the inverse of [`civil_from_days`]); `None`
/// when the text is not a valid calendar date.
pub fn days_from_iso_date(date: &str) -> Option<i64> {
    let mut parts = date.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let year: i64 = year.parse().ok()?;
    let month: u32 = month.parse().ok()?;
    let day: u32 = day.parse().ok()?;
    const LENGTHS: [u32; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let length = match month {
        2 if is_leap(year) => 29,
        1..=12 => LENGTHS[(month - 1) as usize],
        _ => return None,
    };
    if !(1..=length).contains(&day) {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if month > 2 { month - 3 } else { month + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_business_day_rolls_over_at_the_cut_off() {
        let day = BusinessDay::default();
        // 2026-11-28T14:59:59Z is 22:59:59 in Shanghai: still the 28th.
        assert_eq!(
            day.date_at(UNIX_EPOCH + std::time::Duration::from_secs(1_795_877_999)),
            "2026-11-28"
        );
        // 15:00:00Z is 23:00 in Shanghai: the 29th's business.
        assert_eq!(
            day.date_at(UNIX_EPOCH + std::time::Duration::from_secs(1_795_878_000)),
            "2026-11-29"
        );
        let midnight = BusinessDay::parse("00:00", "+08:00").unwrap();
        assert_eq!(
            midnight.date_at(UNIX_EPOCH + std::time::Duration::from_secs(1_795_878_000)),
            "2026-11-28"
        );
        let far_east = BusinessDay::parse("23:00", "+14:00").unwrap();
        assert_eq!(far_east.utc_offset_secs, 14 * 3_600);
        assert_eq!(BusinessDay::parse("23:00", "+08:00").unwrap(), day);
        assert!(BusinessDay::parse("24:00", "+08:00").is_err());
        assert!(BusinessDay::parse("23:00", "08:00").is_err());
        assert!(BusinessDay::parse("7:00", "+08:00").is_err());
        assert_eq!(
            BusinessDay::parse("00:30", "-05:00")
                .unwrap()
                .utc_offset_secs,
            -5 * 3_600
        );
    }

    #[test]
    fn iso_dates_count_days_both_ways() {
        assert_eq!(days_from_iso_date("1970-01-01"), Some(0));
        assert_eq!(days_from_iso_date("2024-03-01"), Some(19_783));
        for days in [-1, 0, 59, 19_782, 20_785, 30_000] {
            let (y, m, d) = civil_from_days(days);
            let text = format!("{y:04}-{m:02}-{d:02}");
            assert_eq!(days_from_iso_date(&text), Some(days), "{text}");
        }
        assert_eq!(days_from_iso_date("2026-02-29"), None);
        assert_eq!(
            days_from_iso_date("2024-02-29").map(|d| d + 1),
            days_from_iso_date("2024-03-01")
        );
        assert_eq!(days_from_iso_date("2026-13-01"), None);
        assert_eq!(days_from_iso_date("2026-1-01"), None);
        assert_eq!(days_from_iso_date("yesterday"), None);
    }

    #[test]
    fn local_time_is_china_standard_time() {
        // 2026-11-28T10:00:00Z is 18:00 in Shanghai.
        assert_eq!(
            ChinaTime::from_unix(1_795_860_000).iso(),
            "2026-11-28T18:00:00"
        );
        assert_eq!(ChinaTime::from_unix(0).iso(), "1970-01-01T08:00:00");
        // 2024-02-29T15:59:59Z is 23:59:59 in Shanghai; one second later it is March.
        assert_eq!(ChinaTime::from_unix(1_709_222_399).date_iso(), "2024-02-29");
        assert_eq!(ChinaTime::from_unix(1_709_222_400).date_iso(), "2024-03-01");
        // 2025-12-31T16:00:00Z is already 2026 in Shanghai.
        assert_eq!(ChinaTime::from_unix(1_767_196_800).date_iso(), "2026-01-01");
    }

    #[test]
    fn days_of_the_year_count_leap_days() {
        assert_eq!(ChinaTime::from_unix(1_709_222_400).day_of_year(), 61); // 2024-03-01
        assert_eq!(ChinaTime::from_unix(1_767_196_800).day_of_year(), 1);
        assert_eq!(ChinaTime::from_unix(1_795_860_000).day_of_year(), 332); // 2026-11-28
    }
}
