//! Which business dates may be settled: the one rule, in [`ClosedDays::is_closed`].
//!
//! A business date is closed when it is strictly before today's business date (the acquirer's
//! day, `pos_domain::time::BusinessDay`: Asia/Shanghai, rolling over at the cut-off). The
//! operations knob `POS_SETTLEMENT_CLOSED_THROUGH=YYYY-MM-DD` closes every date up to and
//! including the one given as well: to settle a day early (a drill, a holiday schedule, a
//! region that closes before the cut-off). Money steps of a date that is settled already are
//! never lost: they are carried into the next settlement as adjustments.

use pos_domain::time::{BusinessDay, days_from_iso_date};

/// A business date "YYYY-MM-DD" that is a real calendar date.
pub fn parse_date(text: &str) -> Option<&str> {
    days_from_iso_date(text).map(|_| text)
}

/// Days since 1970-01-01 of a valid date (for ordering and ranges).
pub fn day_number(date: &str) -> Option<i64> {
    days_from_iso_date(date)
}

/// Decides which business dates are closed.
#[derive(Debug, Clone)]
pub struct ClosedDays {
    /// The acquirer's business day.
    pub business_day: BusinessDay,
    /// Every date up to and including this one is closed too (operations knob).
    pub closed_through: Option<String>,
}

impl ClosedDays {
    /// Today's business date.
    pub fn today(&self) -> String {
        self.business_day.today()
    }

    /// Whether `date` may be settled when today's business date is `today`.
    pub fn is_closed(&self, date: &str, today: &str) -> bool {
        let Some(day) = day_number(date) else {
            return false;
        };
        let before_today = day_number(today).is_some_and(|t| day < t);
        let through = self
            .closed_through
            .as_deref()
            .and_then(day_number)
            .is_some_and(|t| day <= t);
        before_today || through
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dates_before_today_are_closed_unless_the_knob_closes_more() {
        let days = ClosedDays {
            business_day: BusinessDay::default(),
            closed_through: None,
        };
        assert!(days.is_closed("2026-11-27", "2026-11-28"));
        assert!(!days.is_closed("2026-11-28", "2026-11-28"));
        assert!(!days.is_closed("2026-11-29", "2026-11-28"));
        assert!(!days.is_closed("2026-02-30", "2026-11-28"));
        let early = ClosedDays {
            closed_through: Some("2026-11-28".to_owned()),
            ..days
        };
        assert!(early.is_closed("2026-11-28", "2026-11-28"));
        assert!(!early.is_closed("2026-11-29", "2026-11-28"));
        assert_eq!(parse_date("2026-11-28"), Some("2026-11-28"));
        assert_eq!(parse_date("2026-13-01"), None);
    }
}
