//! The card's expiry date, YYMM as in track 2 and ISO 8583 DE14. A card is valid through the
//! last day of its expiry month.

use std::fmt;
use std::str::FromStr;

use crate::error::{DomainError, Result};
use crate::fields::{Chars, check_exact};

const FIELD: &str = "expiry";

/// A card expiry month, e.g. "2812" = December 2028.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Expiry {
    year: u16,
    month: u8,
}

impl Expiry {
    /// Parses YYMM (four digits, month 01 to 12); years are 2000 to 2099.
    pub fn parse(input: &str) -> Result<Self> {
        check_exact(FIELD, input, 4, Chars::Digits)?;
        let number = |range: std::ops::Range<usize>| {
            input[range]
                .parse::<u8>()
                .map_err(|e| DomainError::field(FIELD, e.to_string()))
        };
        let (yy, month) = (number(0..2)?, number(2..4)?);
        if !(1..=12).contains(&month) {
            let problem = format!("month must be 01 to 12, got {month:02}");
            return Err(DomainError::field(FIELD, problem));
        }
        Ok(Self {
            year: 2000 + u16::from(yy),
            month,
        })
    }

    /// The four-digit year, e.g. 2028.
    pub fn year(self) -> u16 {
        self.year
    }

    /// The month, 1 to 12.
    pub fn month(self) -> u8 {
        self.month
    }

    /// Whether the card is expired in the given month (four-digit year, month 1 to 12):
    /// true only once that month is after the expiry month.
    pub fn is_expired_at(self, year: u16, month: u8) -> bool {
        (year, month) > (self.year, self.month)
    }
}

/// YYMM, e.g. "2812".
impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}{:02}", self.year % 100, self.month)
    }
}

impl FromStr for Expiry {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_yymm() {
        let expiry = Expiry::parse("2812").unwrap();
        assert_eq!((expiry.year(), expiry.month()), (2028, 12));
        assert_eq!(expiry.to_string(), "2812");
        assert_eq!(Expiry::parse("0501").unwrap().to_string(), "0501");
    }

    #[test]
    fn valid_through_the_end_of_its_month() {
        let expiry = Expiry::parse("2812").unwrap();
        assert!(!expiry.is_expired_at(2028, 11));
        assert!(!expiry.is_expired_at(2028, 12));
        assert!(expiry.is_expired_at(2029, 1));
        assert!(expiry.is_expired_at(2030, 6));
        assert!(!expiry.is_expired_at(2026, 12));
    }

    #[test]
    fn refuses_bad_months_and_lengths() {
        let err = Expiry::parse("2813").unwrap_err();
        assert_eq!(err.to_string(), "expiry month must be 01 to 12, got 13");
        assert!(Expiry::parse("2800").is_err());
        assert_eq!(
            Expiry::parse("281").unwrap_err().to_string(),
            "expiry must be exactly 4 digits, got 3"
        );
        assert!(Expiry::parse("28/12").is_err());
    }
}
