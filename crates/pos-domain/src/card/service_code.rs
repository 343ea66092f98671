//! The three-digit service code from the magnetic stripe (ISO/IEC 7813).
//!
//! First digit, interchange and technology: 1 international, 2 international and chip card,
//! 5 national, 6 national and chip card, 7 private, 9 test. So 2 and 6 mark a chip card,
//! whose stripe must not be swiped while the chip works (a swiped chip card is a fraud signal).
//!
//! Third digit, allowed services and PIN: 0 no restrictions, PIN required; 1 no restrictions;
//! 2 goods and services only; 3 ATM only, PIN required; 4 cash only; 5 goods and services
//! only, PIN required; 6 no restrictions, PIN where feasible; 7 goods and services only, PIN
//! where feasible. Every terminal of this platform has a PIN pad, so "where feasible" (6, 7)
//! means required here, as do 0, 3 and 5.

use std::fmt;
use std::str::FromStr;

use crate::error::{DomainError, Result};
use crate::fields::{Chars, check_exact};

/// A magstripe service code, e.g. "220" for a chip credit card that requires a PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceCode([u8; 3]);

impl ServiceCode {
    /// Parses exactly three digits.
    pub fn parse(input: &str) -> Result<Self> {
        check_exact("service code", input, 3, Chars::Digits)?;
        let mut digits = [0; 3];
        digits.copy_from_slice(input.as_bytes());
        Ok(Self(digits))
    }

    /// Whether the card has a chip (first digit 2 or 6).
    pub fn is_chip_card(self) -> bool {
        matches!(self.0[0], b'2' | b'6')
    }

    /// Whether a PIN must be entered (third digit 0, 3, 5, or 6, 7 "where feasible").
    pub fn requires_pin(self) -> bool {
        matches!(self.0[2], b'0' | b'3' | b'5' | b'6' | b'7')
    }
}

/// The three digits, e.g. "220".
impl fmt::Display for ServiceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0
            .iter()
            .try_for_each(|&digit| write!(f, "{}", char::from(digit)))
    }
}

impl FromStr for ServiceCode {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ServiceCode {
        ServiceCode::parse(text).unwrap()
    }

    #[test]
    fn first_digit_2_or_6_is_a_chip_card() {
        assert!(code("220").is_chip_card());
        assert!(code("620").is_chip_card());
        assert!(!code("101").is_chip_card());
        assert!(!code("501").is_chip_card());
    }

    #[test]
    fn third_digit_says_whether_a_pin_is_required() {
        for required in ["100", "103", "105", "106", "107"] {
            assert!(code(required).requires_pin(), "{required}");
        }
        for optional in ["101", "102", "104"] {
            assert!(!code(optional).requires_pin(), "{optional}");
        }
    }

    #[test]
    fn refuses_malformed_codes() {
        let err = ServiceCode::parse("22").unwrap_err();
        assert_eq!(
            err.to_string(),
            "service code must be exactly 3 digits, got 2"
        );
        assert!(ServiceCode::parse("2a0").is_err());
        assert_eq!(code("201").to_string(), "201");
    }
}
