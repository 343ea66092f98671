//! ISO 4217 currencies: the alpha code, the numeric code that ISO 8583 DE49 carries, and the
//! number of minor-unit digits that fixes how amounts are written and rounded.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{DomainError, Result};

/// An ISO 4217 currency known to the platform.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub struct Currency {
    code: &'static str,
    numeric: u16,
    minor_units: u8,
}

impl Currency {
    /// Chinese yuan renminbi (fen: 2 digits).
    pub const CNY: Self = Self::new("CNY", 156, 2);
    /// US dollar.
    pub const USD: Self = Self::new("USD", 840, 2);
    /// Euro.
    pub const EUR: Self = Self::new("EUR", 978, 2);
    /// Hong Kong dollar.
    pub const HKD: Self = Self::new("HKD", 344, 2);
    /// Macanese pataca.
    pub const MOP: Self = Self::new("MOP", 446, 2);
    /// New Taiwan dollar.
    pub const TWD: Self = Self::new("TWD", 901, 2);
    /// Pound sterling.
    pub const GBP: Self = Self::new("GBP", 826, 2);
    /// Singapore dollar.
    pub const SGD: Self = Self::new("SGD", 702, 2);
    /// Japanese yen (no minor unit).
    pub const JPY: Self = Self::new("JPY", 392, 0);
    /// South Korean won (no minor unit).
    pub const KRW: Self = Self::new("KRW", 410, 0);

    /// Every currency the platform knows.
    pub const ALL: [Self; 10] = [
        Self::CNY,
        Self::USD,
        Self::EUR,
        Self::HKD,
        Self::MOP,
        Self::TWD,
        Self::GBP,
        Self::SGD,
        Self::JPY,
        Self::KRW,
    ];

    const fn new(code: &'static str, numeric: u16, minor_units: u8) -> Self {
        Self {
            code,
            numeric,
            minor_units,
        }
    }

    /// Parses an alpha code ("CNY") or a three-digit numeric code ("156").
    pub fn parse(input: &str) -> Result<Self> {
        let all_digits = input.len() == 3 && input.bytes().all(|b| b.is_ascii_digit());
        let numeric = all_digits.then(|| input.parse::<u16>().ok()).flatten();
        let found = match numeric {
            Some(n) => Self::ALL.iter().find(|c| c.numeric == n),
            None => Self::ALL.iter().find(|c| c.code == input),
        };
        found
            .copied()
            .ok_or_else(|| DomainError::UnknownCurrency(input.to_owned()))
    }

    /// Looks a currency up by its ISO 4217 numeric code, as in ISO 8583 DE49.
    pub fn from_numeric(numeric: u16) -> Result<Self> {
        Self::ALL
            .iter()
            .find(|c| c.numeric == numeric)
            .copied()
            .ok_or_else(|| DomainError::UnknownCurrency(format!("{numeric:03}")))
    }

    /// The alpha code, e.g. "CNY".
    pub fn code(self) -> &'static str {
        self.code
    }

    /// The numeric code, e.g. 156.
    pub fn numeric(self) -> u16 {
        self.numeric
    }

    /// Digits after the decimal point in this currency's amounts (2 for CNY, 0 for JPY).
    pub fn minor_units(self) -> u32 {
        u32::from(self.minor_units)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl FromStr for Currency {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Currency {
    type Error = DomainError;

    fn try_from(value: String) -> Result<Self> {
        Self::parse(&value)
    }
}

/// Written by hand: the derive would tie the `&'static str` field to the input's lifetime.
impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Self::parse(&code).map_err(serde::de::Error::custom)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> Self {
        value.code.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_alpha_and_numeric_codes() {
        assert_eq!(Currency::parse("CNY"), Ok(Currency::CNY));
        assert_eq!(Currency::parse("156"), Ok(Currency::CNY));
        assert_eq!(Currency::parse("392"), Ok(Currency::JPY));
        assert_eq!(Currency::from_numeric(840), Ok(Currency::USD));
        assert_eq!("HKD".parse::<Currency>(), Ok(Currency::HKD));
    }

    #[test]
    fn knows_the_minor_units() {
        assert_eq!(Currency::CNY.minor_units(), 2);
        assert_eq!(Currency::EUR.numeric(), 978);
        assert_eq!(Currency::JPY.minor_units(), 0);
    }

    #[test]
    fn refuses_unknown_codes() {
        let err = Currency::parse("XYZ").unwrap_err();
        assert_eq!(err, DomainError::UnknownCurrency("XYZ".into()));
        assert_eq!(
            err.to_string(),
            "unknown currency \"XYZ\": expected an ISO 4217 code such as CNY or 156"
        );
        assert!(Currency::parse("cny").is_err());
        assert!(Currency::parse("999").is_err());
        assert!(Currency::from_numeric(1).is_err());
    }

    #[test]
    fn round_trips_through_its_string_form() {
        for currency in Currency::ALL {
            assert_eq!(Currency::try_from(String::from(currency)), Ok(currency));
        }
    }
}
