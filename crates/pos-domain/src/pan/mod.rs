//! The primary account number (PAN), handled so it cannot leak by accident.
//!
//! [`Pan`] holds the digits privately: `Debug` and `Display` print only the masked form (BIN +
//! "****" + last four), there is no `Serialize`, and the full number is reachable only through
//! [`Pan::expose_digits`]. What may be kept or sent on is the [`MaskedPan`] (for people) and
//! the [`CardToken`] (for machines), per PCI DSS 3.4.1 and 3.5.1 (REFERENCE.md).

pub mod luhn;
mod masked;
mod token;

use std::fmt;
use std::str::FromStr;

pub use masked::MaskedPan;
pub use token::{CardToken, TokenKey};

use crate::error::{DomainError, Result};

/// Shortest and longest PAN (ISO/IEC 7812-1).
const LENGTHS: std::ops::RangeInclusive<usize> = 13..=19;

/// A card number: 13 to 19 digits with a valid Luhn check digit. Renders masked.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pan {
    digits: String,
}

impl Pan {
    /// Parses 13 to 19 ASCII digits (no spaces) that pass the Luhn check.
    pub fn parse(input: &str) -> Result<Self> {
        if let Some(index) = input.chars().position(|c| !c.is_ascii_digit()) {
            return Err(DomainError::PanNotDigits {
                position: index + 1,
            });
        }
        if !LENGTHS.contains(&input.len()) {
            return Err(DomainError::PanLength(input.len()));
        }
        if !luhn::is_valid(input) {
            return Err(DomainError::PanLuhn);
        }
        Ok(Self {
            digits: input.to_owned(),
        })
    }

    /// The first six digits: the issuer identification number (BIN).
    pub fn bin(&self) -> &str {
        &self.digits[..6]
    }

    /// The first eight digits: the eight-digit BIN that networks are moving to.
    pub fn bin8(&self) -> &str {
        &self.digits[..8]
    }

    /// The last four digits.
    pub fn last4(&self) -> &str {
        &self.digits[self.digits.len() - 4..]
    }

    /// The masked form, BIN + "****" + last four, for events, receipts and screens.
    pub fn masked(&self) -> MaskedPan {
        MaskedPan::from_parts(self.bin(), self.last4())
    }

    /// The keyed token of this card: hex of HMAC-SHA-256(key, digits).
    pub fn token(&self, key: &TokenKey) -> CardToken {
        key.token_of(self.digits.as_bytes())
    }

    /// The full card number.
    ///
    /// Only the path to the issuer may call this (the issuer request needs the PAN); anything
    /// else uses [`Pan::masked`] or [`Pan::token`]. Never log, store or print the result.
    pub fn expose_digits(&self) -> &str {
        &self.digits
    }
}

/// Best effort: overwrite the digits before the memory is freed.
impl Drop for Pan {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.digits).into_bytes();
        bytes.fill(0);
        std::hint::black_box(&bytes);
    }
}

/// Masked: BIN + "****" + last four.
impl fmt::Display for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}****{}", self.bin(), self.last4())
    }
}

/// Masked like `Display`, so `{:?}` on any struct holding a `Pan` is safe.
impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Pan {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const KEY: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

    /// Any valid PAN: 12 to 18 random digits followed by their Luhn check digit.
    fn any_pan() -> impl Strategy<Value = String> {
        proptest::collection::vec(0..10_u8, 12..=18).prop_map(|payload| {
            let mut digits: String = payload.iter().map(|d| char::from(b'0' + d)).collect();
            let check = luhn::check_digit(&digits).unwrap_or(0);
            digits.push(char::from(b'0' + check));
            digits
        })
    }

    fn only_digits(text: &str) -> String {
        text.chars().filter(char::is_ascii_digit).collect()
    }

    proptest! {
        #[test]
        fn renders_never_more_than_bin_and_last_four(digits in any_pan()) {
            let pan = Pan::parse(&digits).unwrap();
            let expected = format!("{}****{}", &digits[..6], &digits[digits.len() - 4..]);
            let renders = [
                pan.to_string(),
                format!("{pan:?}"),
                pan.masked().to_string(),
                format!("{:?}", Some(&pan)),
            ];
            for shown in renders {
                prop_assert!(!shown.contains(&digits));
                // The digits shown are exactly the BIN then the last four: no middle digit.
                prop_assert_eq!(only_digits(&shown), format!("{}{}", pan.bin(), pan.last4()));
            }
            prop_assert_eq!(pan.to_string(), expected.clone());
            prop_assert_eq!(format!("{pan:?}"), expected.clone());
            prop_assert_eq!(pan.masked(), MaskedPan::parse(&expected).unwrap());
        }

        #[test]
        fn any_single_digit_change_fails_luhn(
            digits in any_pan(),
            position in any::<prop::sample::Index>(),
            delta in 1..10_u8,
        ) {
            let mut bytes = digits.into_bytes();
            let at = position.index(bytes.len());
            bytes[at] = b'0' + (bytes[at] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert_eq!(Pan::parse(&changed), Err(DomainError::PanLuhn));
        }

        #[test]
        fn token_is_64_hex_and_never_contains_the_pan(digits in any_pan()) {
            let key = TokenKey::from_bytes(KEY).unwrap();
            let token = Pan::parse(&digits).unwrap().token(&key);
            prop_assert_eq!(token.as_str().len(), 64);
            prop_assert!(CardToken::parse(token.as_str()).is_ok());
            prop_assert!(!token.as_str().contains(&digits));
        }
    }

    #[test]
    fn accepts_known_card_numbers() {
        let pan = Pan::parse("6222020200112233446").unwrap();
        assert_eq!(
            (pan.bin(), pan.bin8(), pan.last4()),
            ("622202", "62220202", "3446")
        );
        assert_eq!(pan.to_string(), "622202****3446");
        assert_eq!(pan.expose_digits(), "6222020200112233446");
        assert!(Pan::parse("4111111111111111").is_ok());
        assert_eq!(
            Pan::parse("4000000000006").unwrap().to_string(),
            "400000****0006"
        );
    }

    #[test]
    fn a_wrong_check_digit_is_a_luhn_error() {
        let err = Pan::parse("4111111111111112").unwrap_err();
        assert_eq!(err, DomainError::PanLuhn);
        assert_eq!(err.to_string(), "PAN fails the Luhn check");
    }

    #[test]
    fn bad_lengths_say_how_many_digits_were_given() {
        let err = Pan::parse("411111111116").unwrap_err();
        assert_eq!(err.to_string(), "PAN must be 13 to 19 digits, got 12");
        let err = Pan::parse(&"4".repeat(20)).unwrap_err();
        assert_eq!(err, DomainError::PanLength(20));
        assert_eq!(Pan::parse(""), Err(DomainError::PanLength(0)));
    }

    #[test]
    fn non_digits_are_refused_without_echoing_the_number() {
        let err = Pan::parse("4111 1111 1111 1111").unwrap_err();
        assert_eq!(err, DomainError::PanNotDigits { position: 5 });
        assert!(!err.to_string().contains("4111"));
        assert!(Pan::parse("411111111111111a").is_err());
        assert!(Pan::parse("４111111111111111").is_err());
    }

    #[test]
    fn token_matches_an_independent_hmac_sha256() {
        // python3 -c "import hmac,hashlib;print(hmac.new(KEY,PAN,hashlib.sha256).hexdigest())"
        let key = TokenKey::from_bytes(KEY).unwrap();
        let token = Pan::parse("4111111111111111").unwrap().token(&key);
        let expected = "7b7e6cb2715c7b1c37110f035123abd3fe93c04fa302da2946c4bd9342d2fd2c";
        assert_eq!(token.as_str(), expected);
        let key = TokenKey::from_bytes(&[0x0b; 32]).unwrap();
        let token = Pan::parse("6222020200112233446").unwrap().token(&key);
        let expected = "e23d94a702f27909ab52dd163228318911cb1293c8e464512bc7f83823a1facd";
        assert_eq!(token.to_string(), expected);
    }

    #[test]
    fn same_key_same_token_other_key_other_token() {
        let pan = Pan::parse("4111111111111111").unwrap();
        let key = TokenKey::from_bytes(KEY).unwrap();
        let again = TokenKey::from_bytes(KEY).unwrap();
        let other = TokenKey::from_bytes(&[1; 32]).unwrap();
        assert_eq!(pan.token(&key), pan.token(&again));
        assert_ne!(pan.token(&key), pan.token(&other));
        let other_card = Pan::parse("6222020200112233446").unwrap();
        assert_ne!(pan.token(&key), other_card.token(&key));
    }
}
