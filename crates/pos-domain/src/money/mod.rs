//! Exact money: a `rust_decimal::Decimal` amount with its ISO 4217 [`Currency`].
//!
//! Never a float. On the wire (proto, ISO 8583) amounts are integer minor units (fen), so
//! [`Money::from_minor`] and [`Money::to_minor`] are the bridge; what a cashier keys in goes
//! through [`Money::parse_major`]. Arithmetic is checked and refuses mixed currencies. Fees are
//! rounded half-up to the minor unit, in [`Money::round_half_up_to_minor`] and nowhere else.

mod currency;
mod keyed;

use std::cmp::Ordering;
use std::fmt;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

pub use currency::Currency;

use crate::error::{DomainError, Result};

/// An amount of money in one currency; serializes as `{"amount": "50.00", "currency": "CNY"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    #[serde(with = "decimal_text")]
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// Wraps an exact decimal amount; it may carry more decimals than the currency has.
    pub fn new(amount: Decimal, currency: Currency) -> Self {
        Self { amount, currency }
    }

    /// Zero in `currency`.
    pub fn zero(currency: Currency) -> Self {
        Self::new(Decimal::ZERO, currency)
    }

    /// Builds an amount from integer minor units, as carried on the wire (5000 fen = 50.00 CNY).
    pub fn from_minor(minor: i64, currency: Currency) -> Self {
        Self::new(Decimal::new(minor, currency.minor_units()), currency)
    }

    /// Parses what a cashier keys in, in major units: "50.00" or "50" is fifty yuan.
    ///
    /// Accepts only digits with at most one decimal point and at most the currency's minor
    /// digits; refuses negatives, exponents, thousands separators and spaces.
    pub fn parse_major(input: &str, currency: Currency) -> Result<Self> {
        keyed::parse_major(input, currency)
    }

    /// The exact amount.
    pub fn amount(&self) -> Decimal {
        self.amount
    }

    /// The currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The amount in integer minor units; refused if it has sub-minor decimals or overflows.
    pub fn to_minor(&self) -> Result<i64> {
        let amount = self.amount.normalize();
        if amount.scale() > self.currency.minor_units() {
            return Err(DomainError::TooManyDecimals {
                currency: self.currency,
                got: amount.scale(),
            });
        }
        let overflow = || DomainError::AmountOverflow("the amount in minor units");
        let factor = Decimal::from(10_i64.pow(self.currency.minor_units()));
        let minor = amount.checked_mul(factor).ok_or_else(overflow)?;
        minor.to_i64().ok_or_else(overflow)
    }

    /// Adds two amounts of the same currency.
    pub fn checked_add(self, other: Self) -> Result<Self> {
        self.same_currency(other)?;
        let sum = self.amount.checked_add(other.amount);
        self.exact_result(sum, other, "adding amounts")
    }

    /// Subtracts an amount of the same currency; the result may be negative.
    pub fn checked_sub(self, other: Self) -> Result<Self> {
        self.same_currency(other)?;
        let difference = self.amount.checked_sub(other.amount);
        self.exact_result(difference, other, "subtracting amounts")
    }

    /// Compares two amounts of the same currency.
    pub fn checked_cmp(&self, other: &Self) -> Result<Ordering> {
        self.same_currency(*other)?;
        Ok(self.amount.cmp(&other.amount))
    }

    /// The smaller of two amounts of the same currency, e.g. a fee and its cap.
    pub fn min(self, other: Self) -> Result<Self> {
        Ok(match self.checked_cmp(&other)? {
            Ordering::Greater => other,
            _ => self,
        })
    }

    /// The larger of two amounts of the same currency, e.g. a fee and its floor.
    pub fn max(self, other: Self) -> Result<Self> {
        Ok(match self.checked_cmp(&other)? {
            Ordering::Less => other,
            _ => self,
        })
    }

    /// Whether the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    /// Whether the amount is greater than zero.
    pub fn is_positive(&self) -> bool {
        self.amount > Decimal::ZERO
    }

    /// Whether the amount is less than zero.
    pub fn is_negative(&self) -> bool {
        self.amount < Decimal::ZERO
    }

    /// Rounds half-up to the minor unit (to the fen for CNY); this is how fees are rounded.
    ///
    /// "Half-up" here means ties away from zero: 0.005 becomes 0.01 and -0.005 becomes
    /// -0.01, so the fee given back on a refund mirrors the fee taken on the purchase.
    #[must_use]
    pub fn round_half_up_to_minor(&self) -> Self {
        let strategy = RoundingStrategy::MidpointAwayFromZero;
        let amount = self
            .amount
            .round_dp_with_strategy(self.currency.minor_units(), strategy);
        Self::new(amount, self.currency)
    }

    /// A fee: this amount times `rate` (0.006 for 0.6 %), rounded half-up to the minor unit.
    pub fn apply_rate(&self, rate: Decimal) -> Result<Self> {
        let overflow = || DomainError::AmountOverflow("applying a rate");
        let product = self.amount.checked_mul(rate).ok_or_else(overflow)?;
        let fee = Self::new(product, self.currency).round_half_up_to_minor();
        Some(fee).filter(Self::in_wire_range).ok_or_else(overflow)
    }

    /// Whether the amount fits the wire: at most `i64::MAX` minor units either way.
    fn in_wire_range(&self) -> bool {
        let largest = Decimal::new(i64::MAX, self.currency.minor_units());
        self.amount.abs() <= largest
    }

    /// Accepts the result of `self` (op) `other` only if it is exact and fits the wire.
    ///
    /// `rust_decimal` silently rounds when a result needs more than 28 digits; a result with
    /// fewer decimals than its operands is how that shows.
    fn exact_result(self, result: Option<Decimal>, other: Self, op: &'static str) -> Result<Self> {
        let scale = self.amount.scale().max(other.amount.scale());
        let money = result
            .filter(|amount| amount.scale() >= scale)
            .map(|amount| Self::new(amount, self.currency));
        money
            .filter(Self::in_wire_range)
            .ok_or(DomainError::AmountOverflow(op))
    }

    fn same_currency(self, other: Self) -> Result<()> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(DomainError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }
}

/// The amount as decimal text in serde, so no format ever reads or writes it as a float.
mod decimal_text {
    use std::str::FromStr;

    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(amount: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(amount)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let text = String::deserialize(d)?;
        Decimal::from_str(&text).map_err(|_| D::Error::custom("amount must be decimal text"))
    }
}

/// Renders "50.00 CNY": always the currency's minor digits, more only if the amount has them.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.amount.normalize().scale();
        let digits = digits.max(self.currency.minor_units()) as usize;
        write!(f, "{:.*} {}", digits, self.amount, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    fn cny(minor: i64) -> Money {
        Money::from_minor(minor, Currency::CNY)
    }

    fn keyed_cny(input: &str) -> Money {
        Money::parse_major(input, Currency::CNY).unwrap()
    }

    fn keyed(input: &str) -> Result<i64> {
        Money::parse_major(input, Currency::CNY)?.to_minor()
    }

    #[test]
    fn ten_fen_plus_twenty_fen_is_exactly_thirty_fen() {
        let sum = cny(10).checked_add(cny(20)).unwrap();
        assert_eq!(sum.amount(), dec!(0.3));
        assert_eq!(sum.to_minor(), Ok(30));
        assert_eq!(sum, cny(30));
    }

    #[test]
    fn subtraction_is_exact_and_may_go_negative() {
        assert_eq!(cny(5000).checked_sub(cny(1)).unwrap().to_minor(), Ok(4999));
        let negative = cny(1).checked_sub(cny(2)).unwrap();
        assert!(negative.is_negative());
        assert_eq!(negative.to_string(), "-0.01 CNY");
    }

    #[test]
    fn mixed_currencies_are_refused() {
        let usd = Money::from_minor(100, Currency::USD);
        let err = cny(100).checked_add(usd).unwrap_err();
        assert_eq!(
            err,
            DomainError::CurrencyMismatch {
                left: Currency::CNY,
                right: Currency::USD
            }
        );
        assert_eq!(
            err.to_string(),
            "cannot combine amounts in different currencies: CNY and USD"
        );
        assert!(cny(100).checked_sub(usd).is_err());
        assert!(cny(100).min(usd).is_err());
    }

    #[test]
    fn overflow_is_refused() {
        let largest = cny(i64::MAX);
        let err = largest.checked_add(cny(1)).unwrap_err();
        assert_eq!(err, DomainError::AmountOverflow("adding amounts"));
        let message = "adding amounts overflows the range of a payment amount";
        assert_eq!(err.to_string(), message);
        assert!(cny(i64::MIN + 1).checked_sub(cny(2)).is_err());
        assert!(largest.apply_rate(dec!(2)).is_err());
        assert_eq!(largest.to_minor(), Ok(i64::MAX));
        let huge = Money::new(Decimal::MAX, Currency::CNY);
        assert!(huge.checked_add(cny(1)).is_err());
        let err = huge.to_minor().unwrap_err();
        assert_eq!(
            err,
            DomainError::AmountOverflow("the amount in minor units")
        );
    }

    #[test]
    fn arithmetic_that_would_lose_a_digit_is_refused() {
        let tiny = Money::new(dec!(0.0000000000000000000000000001), Currency::CNY);
        assert!(cny(100_000_000).checked_add(tiny).is_err());
        assert!(cny(100_000_000).checked_sub(tiny).is_err());
        assert!(tiny.checked_add(tiny).is_ok());
    }

    #[test]
    fn to_minor_refuses_sub_fen_amounts_but_ignores_trailing_zeros() {
        let err = Money::new(dec!(0.005), Currency::CNY)
            .to_minor()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "CNY amounts have at most 2 decimal places, got 3"
        );
        assert_eq!(Money::new(dec!(50.000), Currency::CNY).to_minor(), Ok(5000));
        assert!(Money::new(dec!(1.5), Currency::JPY).to_minor().is_err());
    }

    #[test]
    fn parses_keyed_amounts() {
        assert_eq!(keyed("50.00"), Ok(5000));
        assert_eq!(keyed("50"), Ok(5000));
        assert_eq!(keyed("50.5"), Ok(5050));
        assert_eq!(keyed("0.01"), Ok(1));
        assert_eq!(keyed("0"), Ok(0));
        let yen = Money::parse_major("100", Currency::JPY).unwrap();
        assert_eq!(yen.to_minor(), Ok(100));
        assert_eq!(yen.to_string(), "100 JPY");
    }

    #[test]
    fn refuses_bad_keyed_amounts_with_the_reason() {
        let cases = [
            ("", "invalid amount: the amount is empty"),
            ("-1.00", "invalid amount: negative amounts are not accepted"),
            ("1e3", "invalid amount: exponent notation is not accepted"),
            (
                "1,000.00",
                "invalid amount: thousands separators are not accepted",
            ),
            (" 50", "invalid amount: spaces are not accepted"),
            (
                "abc",
                "invalid amount: only digits and a decimal point are accepted",
            ),
            (
                "+5",
                "invalid amount: only digits and a decimal point are accepted",
            ),
            ("1.2.3", "invalid amount: more than one decimal point"),
            (
                ".50",
                "invalid amount: digits are needed on both sides of the decimal point",
            ),
            (
                "50.",
                "invalid amount: digits are needed on both sides of the decimal point",
            ),
            ("0.005", "CNY amounts have at most 2 decimal places, got 3"),
            (
                "99999999999999999999",
                "the keyed amount overflows the range of a payment amount",
            ),
        ];
        for (input, message) in cases {
            let err = Money::parse_major(input, Currency::CNY).unwrap_err();
            assert_eq!(err.to_string(), message, "input {input:?}");
        }
        let err = Money::parse_major("100.5", Currency::JPY).unwrap_err();
        assert_eq!(err.to_string(), "JPY amounts have no decimal places, got 1");
    }

    #[test]
    fn displays_the_currency_minor_digits() {
        assert_eq!(cny(5000).to_string(), "50.00 CNY");
        assert_eq!(Money::new(dec!(50), Currency::CNY).to_string(), "50.00 CNY");
        assert_eq!(
            Money::new(dec!(0.7407), Currency::CNY).to_string(),
            "0.7407 CNY"
        );
        assert_eq!(Money::zero(Currency::USD).to_string(), "0.00 USD");
    }

    #[test]
    fn fees_round_half_up_to_the_fen() {
        let fee = |amount, rate| Money::new(amount, Currency::CNY).apply_rate(rate).unwrap();
        assert_eq!(fee(dec!(10000.00), dec!(0.0050)).to_minor(), Ok(5000));
        assert_eq!(fee(dec!(123.45), dec!(0.006)).to_minor(), Ok(74));
        assert_eq!(fee(dec!(0.01), dec!(0.5)).to_minor(), Ok(1));
        assert_eq!(fee(dec!(0.01), dec!(0.49)).to_minor(), Ok(0));
        assert_eq!(fee(dec!(-0.01), dec!(0.5)).to_minor(), Ok(-1));
        assert_eq!(fee(dec!(10000.00), dec!(0.0050)).to_string(), "50.00 CNY");
    }

    #[test]
    fn caps_and_floors_a_fee() {
        let cap = cny(2000);
        let big_fee = keyed_cny("100000.00").apply_rate(dec!(0.0060)).unwrap();
        assert_eq!(big_fee.min(cap), Ok(cap));
        assert_eq!(cny(74).min(cap), Ok(cny(74)));
        assert_eq!(cny(0).max(cny(1)), Ok(cny(1)));
        assert_eq!(cny(1).checked_cmp(&cny(2)), Ok(Ordering::Less));
    }

    #[test]
    fn deserializes_from_decimal_text_and_a_known_currency() {
        use serde::de::value::{Error as DeError, MapDeserializer};

        let from = |amount: &'static str, currency: &'static str| {
            let fields = [("amount", amount), ("currency", currency)];
            Money::deserialize(MapDeserializer::<_, DeError>::new(fields.into_iter()))
        };
        assert_eq!(from("50.00", "CNY").unwrap(), cny(5000));
        assert_eq!(from("12", "156").unwrap(), cny(1200));
        assert!(from("fifty", "CNY").is_err());
        assert!(from("50.00", "XYZ").is_err());
    }

    #[test]
    fn knows_its_sign() {
        assert!(cny(0).is_zero() && !cny(0).is_positive() && !cny(0).is_negative());
        assert!(cny(1).is_positive());
    }
}
