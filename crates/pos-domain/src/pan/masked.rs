//! The masked PAN (BIN + "****" + last four) that events, receipts and screens may carry:
//! PCI DSS 3.4.1 allows displaying at most the first six and last four digits.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, Result};

const FIELD: &str = "masked PAN";

/// A card number reduced to its BIN and last four digits, e.g. "622202****3446".
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MaskedPan(String);

impl MaskedPan {
    /// Builds the masked form from a BIN (6 digits) and last four; only [`super::Pan`] calls it.
    pub(super) fn from_parts(bin: &str, last4: &str) -> Self {
        Self(format!("{bin}****{last4}"))
    }

    /// Parses "DDDDDD****DDDD" (six digits, four asterisks, four digits).
    pub fn parse(input: &str) -> Result<Self> {
        let well_formed = input.len() == 14
            && input.is_char_boundary(6)
            && input.is_char_boundary(10)
            && input[..6].bytes().all(|b| b.is_ascii_digit())
            && &input[6..10] == "****"
            && input[10..].bytes().all(|b| b.is_ascii_digit());
        if well_formed {
            Ok(Self(input.to_owned()))
        } else {
            let problem = "must be 6 digits, \"****\" and 4 digits, e.g. 622202****1234";
            Err(DomainError::field(FIELD, problem))
        }
    }

    /// The issuer identification number: the first six digits.
    pub fn bin(&self) -> &str {
        &self.0[..6]
    }

    /// The last four digits.
    pub fn last4(&self) -> &str {
        &self.0[10..]
    }

    /// The masked text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MaskedPan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for MaskedPan {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<String> for MaskedPan {
    type Error = DomainError;

    fn try_from(value: String) -> Result<Self> {
        Self::parse(&value)
    }
}

impl From<MaskedPan> for String {
    fn from(value: MaskedPan) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_masked_form_and_its_parts() {
        let masked = MaskedPan::parse("622202****3446").unwrap();
        assert_eq!((masked.bin(), masked.last4()), ("622202", "3446"));
        assert_eq!(masked.to_string(), "622202****3446");
    }

    #[test]
    fn refuses_anything_that_could_hold_more_digits() {
        for bad in [
            "6222020200112233446",
            "622202*****3446",
            "62220****3446",
            "622202xxxx3446",
        ] {
            assert!(MaskedPan::parse(bad).is_err(), "{bad}");
        }
        assert!(MaskedPan::try_from("622202é**3446".to_owned()).is_err());
    }
}
