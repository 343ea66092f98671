//! Six-digit counters that terminals keep: the trace number (STAN) and the batch number.
//! Both run 1..=999999, print zero-padded to six digits and wrap from 999999 back to 1.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, Result};
use crate::fields::{Chars, check};

/// Largest value of a six-digit counter.
const MAX: u32 = 999_999;

/// Defines a 1..=999999 counter newtype with `new`, `value`, `next`, `Display`, `FromStr`, serde.
macro_rules! counter {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "u32", into = "u32")]
        pub struct $name(u32);

        impl $name {
            /// The first value, 1.
            pub const FIRST: Self = Self(1);

            #[doc = concat!("Makes a ", $field, " from a number in 1..=999999.")]
            pub fn new(value: u32) -> Result<Self> {
                if (1..=MAX).contains(&value) {
                    Ok(Self(value))
                } else {
                    let problem = format!("must be 1 to 999999, got {value}");
                    Err(DomainError::field($field, problem))
                }
            }

            /// Parses 1 to 6 digits, e.g. "000123" or "123".
            pub fn parse(input: &str) -> Result<Self> {
                check($field, input, (1, 6), Chars::Digits)?;
                let value = input
                    .parse::<u32>()
                    .map_err(|e| DomainError::field($field, e.to_string()))?;
                Self::new(value)
            }

            /// The number.
            pub fn value(self) -> u32 {
                self.0
            }

            /// The following value; 999999 is followed by 1.
            #[must_use]
            pub fn next(self) -> Self {
                if self.0 >= MAX { Self::FIRST } else { Self(self.0 + 1) }
            }
        }

        /// Six digits, zero-padded: "000123".
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:06}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = DomainError;

            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }

        impl TryFrom<u32> for $name {
            type Error = DomainError;

            fn try_from(value: u32) -> Result<Self> {
                Self::new(value)
            }
        }

        impl From<$name> for u32 {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}

counter!(
    /// System trace audit number (DE11): numbers a terminal's requests within its batch.
    Stan, "STAN"
);
counter!(
    /// Batch number (DE60.2): the terminal's settlement batch, incremented after settlement.
    BatchNo, "batch number"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_six_zero_padded_digits() {
        assert_eq!(Stan::new(123).unwrap().to_string(), "000123");
        assert_eq!(BatchNo::new(1).unwrap().to_string(), "000001");
        assert_eq!(Stan::new(999_999).unwrap().to_string(), "999999");
    }

    #[test]
    fn next_wraps_from_999999_to_1() {
        assert_eq!(Stan::new(41).unwrap().next(), Stan::new(42).unwrap());
        assert_eq!(Stan::new(999_999).unwrap().next(), Stan::FIRST);
        assert_eq!(BatchNo::new(999_999).unwrap().next().value(), 1);
    }

    #[test]
    fn refuses_values_out_of_range() {
        let err = Stan::new(0).unwrap_err();
        assert_eq!(err.to_string(), "STAN must be 1 to 999999, got 0");
        assert!(Stan::new(1_000_000).is_err());
        assert!(BatchNo::try_from(0).is_err());
    }

    #[test]
    fn parses_up_to_six_digits() {
        assert_eq!(Stan::parse("000123"), Stan::new(123));
        assert_eq!("7".parse::<BatchNo>(), BatchNo::new(7));
        let err = Stan::parse("1234567").unwrap_err();
        assert_eq!(err.to_string(), "STAN must be 1 to 6 digits, got 7");
        assert!(Stan::parse("").is_err());
        assert!(Stan::parse("000000").is_err());
        assert!(Stan::parse("12a").is_err());
        assert!(Stan::parse("+12").is_err());
    }
}
