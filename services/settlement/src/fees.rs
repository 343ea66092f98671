//! Merchant fees (商户手续费) from a fee schedule, in exact decimals (`rust_decimal`), never a
//! float. Pure: no I/O.
//!
//! The fee of one transaction is `amount × rate`, with the debit rate for debit and prepaid
//! cards and the credit rate for credit cards and cards of unknown funding (common.proto
//! `CardFundingType`: the higher rate when not known), **rounded to the fen per transaction**
//! as the schedule says (half-up, ties away from zero, unless the schedule says half-even or
//! down; DESIGN.md §4), **then capped** by the rate's per-transaction cap. Rounding happens in
//! [`Schedule::fee`] and [`Schedule::refund_fee_returned`] and nowhere else.
//!
//! A refund gives back the fee of the refunded part when the policy is "returned": in
//! proportion to the refunded amount, cumulatively (the fee share of everything refunded so far
//! minus the share of what was refunded before), so that partial refunds never give back more
//! than the purchase's fee and a full refund gives back exactly all of it.

use std::str::FromStr;

use pos_proto::v1 as pb;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

/// Minor units per yuan (CNY has two decimals).
const FEN: u32 = 2;

/// Why a schedule or an amount cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeeError {
    /// The schedule in the events is not usable (the gateway validates schedules, so this is a
    /// contract breach).
    #[error("fee schedule: {0}")]
    Schedule(String),
    /// The arithmetic left the range of the wire (i64 minor units).
    #[error("fee of {0} minor units overflows")]
    Overflow(i64),
}

/// How a card is funded, as far as fees go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Funding {
    /// Debit and prepaid cards: the debit rate and cap.
    Debit,
    /// Credit cards and cards of unknown funding: the credit rate and cap.
    Credit,
}

impl Funding {
    /// From the proto `CardFundingType` value (unknown or unset → credit, the higher rate).
    pub fn from_proto(funding: i32) -> Self {
        match pb::CardFundingType::try_from(funding) {
            Ok(pb::CardFundingType::Debit | pb::CardFundingType::Prepaid) => Funding::Debit,
            _ => Funding::Credit,
        }
    }
}

/// What happens to the fee of a refunded transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundFee {
    /// The fee of the refunded part goes back to the merchant.
    Returned,
    /// The acquirer keeps the fee.
    Retained,
}

impl FromStr for RefundFee {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "returned" => Ok(RefundFee::Returned),
            "retained" => Ok(RefundFee::Retained),
            other => Err(format!(
                "refund fee policy {other:?} is not returned or retained"
            )),
        }
    }
}

/// A fee schedule ready for arithmetic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    debit_rate: Decimal,
    debit_cap: Option<Decimal>,
    credit_rate: Decimal,
    credit_cap: Option<Decimal>,
    rounding: RoundingStrategy,
    refund: RefundFee,
}

fn rate(text: &str, what: &str) -> Result<Decimal, FeeError> {
    let rate = Decimal::from_str(text.trim())
        .map_err(|_| FeeError::Schedule(format!("{what} {text:?} is not a decimal fraction")))?;
    if rate.is_sign_negative() || rate >= Decimal::ONE {
        return Err(FeeError::Schedule(format!(
            "{what} {text} is not in [0, 1)"
        )));
    }
    Ok(rate)
}

fn cap(money: Option<&pb::Money>, what: &str) -> Result<Option<Decimal>, FeeError> {
    match money {
        None => Ok(None),
        Some(m) if m.currency == "CNY" && m.minor_units > 0 => {
            Ok(Some(Decimal::new(m.minor_units, FEN)))
        }
        Some(m) => Err(FeeError::Schedule(format!(
            "{what} must be a positive CNY amount, got {} {}",
            m.minor_units, m.currency
        ))),
    }
}

impl Schedule {
    /// From the contract's schedule; `refund_default` applies when the schedule leaves the
    /// refund policy unspecified.
    pub fn from_proto(
        schedule: &pb::FeeSchedule,
        refund_default: RefundFee,
    ) -> Result<Self, FeeError> {
        let rounding = match pb::FeeRounding::try_from(schedule.rounding) {
            Ok(pb::FeeRounding::Unspecified | pb::FeeRounding::HalfUp) => {
                RoundingStrategy::MidpointAwayFromZero
            }
            Ok(pb::FeeRounding::HalfEven) => RoundingStrategy::MidpointNearestEven,
            Ok(pb::FeeRounding::Down) => RoundingStrategy::ToZero,
            Err(_) => {
                return Err(FeeError::Schedule(format!(
                    "unknown rounding {}",
                    schedule.rounding
                )));
            }
        };
        let refund = match pb::RefundFeePolicy::try_from(schedule.refund_fee_policy) {
            Ok(pb::RefundFeePolicy::Unspecified) => refund_default,
            Ok(pb::RefundFeePolicy::Retained) => RefundFee::Retained,
            Ok(pb::RefundFeePolicy::Returned) => RefundFee::Returned,
            Err(_) => {
                return Err(FeeError::Schedule(format!(
                    "unknown refund fee policy {}",
                    schedule.refund_fee_policy
                )));
            }
        };
        Ok(Self {
            debit_rate: rate(&schedule.debit_rate, "debit rate")?,
            debit_cap: cap(schedule.debit_cap.as_ref(), "debit cap")?,
            credit_rate: rate(&schedule.credit_rate, "credit rate")?,
            credit_cap: cap(schedule.credit_cap.as_ref(), "credit cap")?,
            rounding,
            refund,
        })
    }

    /// The refund policy in force.
    pub fn refund_policy(&self) -> RefundFee {
        self.refund
    }

    /// The fee of a transaction of `amount_minor` (> 0) on a card of `funding`, in minor
    /// units: amount × rate, rounded to the fen (per the schedule), then capped.
    pub fn fee(&self, amount_minor: i64, funding: Funding) -> Result<i64, FeeError> {
        let (rate, cap) = match funding {
            Funding::Debit => (self.debit_rate, self.debit_cap),
            Funding::Credit => (self.credit_rate, self.credit_cap),
        };
        let amount = Decimal::new(amount_minor.abs(), FEN);
        let product = amount
            .checked_mul(rate)
            .ok_or(FeeError::Overflow(amount_minor))?;
        // Rounded per transaction, here, to the fen.
        let rounded = product.round_dp_with_strategy(FEN, self.rounding);
        let capped = cap.map_or(rounded, |cap| rounded.min(cap));
        to_minor(capped).ok_or(FeeError::Overflow(amount_minor))
    }

    /// The fee given back for one refund of a transaction whose fee was `original_fee` on
    /// `original_minor`: the fee share of `refunded_after` (every refund so far, this one
    /// included) minus the share of `refunded_before`, each rounded to the fen (per the
    /// schedule). Zero when the policy retains the fee.
    pub fn refund_fee_returned(
        &self,
        original_fee: i64,
        original_minor: i64,
        refunded_before: i64,
        refunded_after: i64,
    ) -> Result<i64, FeeError> {
        if self.refund == RefundFee::Retained || original_minor <= 0 {
            return Ok(0);
        }
        let share = |refunded: i64| -> Result<i64, FeeError> {
            let refunded = refunded.clamp(0, original_minor);
            let exact = Decimal::from(original_fee)
                .checked_mul(Decimal::from(refunded))
                .and_then(|d| d.checked_div(Decimal::from(original_minor)))
                .ok_or(FeeError::Overflow(original_fee))?;
            // Rounded to the fen (a whole minor unit), here.
            exact
                .round_dp_with_strategy(0, self.rounding)
                .to_i64()
                .ok_or(FeeError::Overflow(original_fee))
        };
        Ok(share(refunded_after)? - share(refunded_before)?)
    }
}

fn to_minor(amount: Decimal) -> Option<i64> {
    amount.checked_mul(Decimal::from(100))?.to_i64()
}

/// Minor units as yuan text with the sign: 1234 → "12.34", -5 → "-0.05".
pub fn yuan(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn cny(minor_units: i64) -> pb::Money {
        pb::Money {
            minor_units,
            currency: "CNY".to_owned(),
        }
    }

    /// Debit 0.50 % capped at 20.00, credit 0.60 % uncapped: the test merchants' schedule.
    fn schedule(rounding: pb::FeeRounding, refund: pb::RefundFeePolicy) -> Schedule {
        Schedule::from_proto(
            &pb::FeeSchedule {
                debit_rate: "0.0050".to_owned(),
                debit_cap: Some(cny(2_000)),
                credit_rate: "0.0060".to_owned(),
                credit_cap: None,
                rounding: rounding as i32,
                refund_fee_policy: refund as i32,
            },
            RefundFee::Returned,
        )
        .unwrap()
    }

    fn default_schedule() -> Schedule {
        schedule(
            pb::FeeRounding::Unspecified,
            pb::RefundFeePolicy::Unspecified,
        )
    }

    #[test]
    fn the_fee_is_amount_times_rate_rounded_half_up_to_the_fen() {
        let s = default_schedule();
        // 100.00 credit × 0.6 % = 0.60 exactly.
        assert_eq!(s.fee(10_000, Funding::Credit), Ok(60));
        // 88.88 credit × 0.6 % = 0.53328 → 0.53.
        assert_eq!(s.fee(8_888, Funding::Credit), Ok(53));
        // 0.75 credit × 0.6 % = 0.0045 → 0.00; 2.50 × 0.6 % = 0.015 → 0.02 (the half goes up).
        assert_eq!(s.fee(75, Funding::Credit), Ok(0));
        assert_eq!(s.fee(250, Funding::Credit), Ok(2));
        // 1.00 debit × 0.5 % = 0.005 → 0.01.
        assert_eq!(s.fee(100, Funding::Debit), Ok(1));
        // 33.30 debit × 0.5 % = 0.1665 → 0.17.
        assert_eq!(s.fee(3_330, Funding::Debit), Ok(17));
    }

    #[test]
    fn the_debit_cap_applies_after_rounding_and_credit_has_none() {
        let s = default_schedule();
        // 5000.00 debit × 0.5 % = 25.00, capped at 20.00.
        assert_eq!(s.fee(500_000, Funding::Debit), Ok(2_000));
        // 3999.99 debit × 0.5 % = 19.99995 → 20.00 (= the cap).
        assert_eq!(s.fee(399_999, Funding::Debit), Ok(2_000));
        // 5000.00 credit × 0.6 % = 30.00, no cap.
        assert_eq!(s.fee(500_000, Funding::Credit), Ok(3_000));
    }

    #[test]
    fn unknown_funding_pays_the_credit_rate() {
        assert_eq!(Funding::from_proto(0), Funding::Credit);
        assert_eq!(
            Funding::from_proto(pb::CardFundingType::Prepaid as i32),
            Funding::Debit
        );
        assert_eq!(
            Funding::from_proto(pb::CardFundingType::Debit as i32),
            Funding::Debit
        );
        assert_eq!(Funding::from_proto(99), Funding::Credit);
    }

    #[test]
    fn other_roundings_are_honoured() {
        let even = schedule(pb::FeeRounding::HalfEven, pb::RefundFeePolicy::Unspecified);
        // 2.50 × 0.6 % = 0.015 → 0.02 (2 is even); 0.75 debit... 4.50 × 0.5 % = 0.0225 → 0.02.
        assert_eq!(even.fee(250, Funding::Credit), Ok(2));
        assert_eq!(even.fee(450, Funding::Debit), Ok(2));
        // 1.00 × 0.5 % = 0.005 → 0.00 (0 is even).
        assert_eq!(even.fee(100, Funding::Debit), Ok(0));
        let down = schedule(pb::FeeRounding::Down, pb::RefundFeePolicy::Unspecified);
        // 88.88 × 0.6 % = 0.53328 → 0.53; 99.99 × 0.6 % = 0.59994 → 0.59.
        assert_eq!(down.fee(8_888, Funding::Credit), Ok(53));
        assert_eq!(down.fee(9_999, Funding::Credit), Ok(59));
    }

    #[test]
    fn partial_refunds_give_back_the_fee_share_cumulatively() {
        let s = default_schedule();
        // A purchase of 100.10 at 0.6 % paid 0.60 (0.6006 → 0.60).
        let fee = s.fee(10_010, Funding::Credit).unwrap();
        assert_eq!(fee, 60);
        // Refund 50.05 of it: half the fee, 0.30.
        assert_eq!(s.refund_fee_returned(fee, 10_010, 0, 5_005), Ok(30));
        // A fee of 0.05 refunded in two halves: 0.025 → 0.03, then 0.05 - 0.03 = 0.02, never
        // more than the fee in total.
        assert_eq!(s.refund_fee_returned(5, 1_000, 0, 500), Ok(3));
        assert_eq!(s.refund_fee_returned(5, 1_000, 500, 1_000), Ok(2));
        // Three thirds of 0.10: 0.03, 0.04 (0.0667 → 0.07), 0.03.
        let thirds = [(0, 300), (300, 600), (600, 900)];
        let given: Vec<i64> = thirds
            .iter()
            .map(|(b, a)| s.refund_fee_returned(10, 900, *b, *a).unwrap())
            .collect();
        assert_eq!(given, [3, 4, 3]);
        assert_eq!(given.iter().sum::<i64>(), 10);
    }

    #[test]
    fn a_retained_policy_gives_nothing_back_and_the_default_applies_when_unspecified() {
        let retained = schedule(pb::FeeRounding::Unspecified, pb::RefundFeePolicy::Retained);
        assert_eq!(retained.refund_fee_returned(60, 10_000, 0, 10_000), Ok(0));
        let unspecified = pb::FeeSchedule {
            debit_rate: "0.005".to_owned(),
            credit_rate: "0.006".to_owned(),
            ..pb::FeeSchedule::default()
        };
        let by_default = Schedule::from_proto(&unspecified, RefundFee::Retained).unwrap();
        assert_eq!(by_default.refund_policy(), RefundFee::Retained);
        let returned = Schedule::from_proto(&unspecified, RefundFee::Returned).unwrap();
        assert_eq!(returned.refund_fee_returned(60, 10_000, 0, 10_000), Ok(60));
    }

    #[test]
    fn unusable_schedules_are_refused() {
        let bad = |debit: &str| {
            Schedule::from_proto(
                &pb::FeeSchedule {
                    debit_rate: debit.to_owned(),
                    credit_rate: "0.006".to_owned(),
                    ..pb::FeeSchedule::default()
                },
                RefundFee::Returned,
            )
        };
        assert!(bad("0.5%").is_err());
        assert!(bad("1.2").is_err());
        assert!(bad("-0.01").is_err());
        assert!(bad("0.005").is_ok());
    }

    #[test]
    fn yuan_text_keeps_the_sign_and_two_decimals() {
        assert_eq!(yuan(1_234), "12.34");
        assert_eq!(yuan(-5), "-0.05");
        assert_eq!(yuan(0), "0.00");
        assert_eq!(yuan(-120_000), "-1200.00");
    }
}
