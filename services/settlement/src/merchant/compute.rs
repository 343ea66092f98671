//! The figures of one merchant settlement from its steps: counts and amounts, the fee of each
//! line, gross, fee and net. Pure: no I/O; the caller hands in the steps, their originals and
//! the fee schedules by date.
//!
//! The rules, written down once:
//! - gross = purchases + completions − voids − reversals − refunds of the business date (a
//!   reversal of a void or of a refund counts negative among the reversals: it puts money
//!   back);
//! - every step has a *natural fee*: a purchase or completion pays the schedule's fee
//!   ([`crate::fees`], rounded per transaction); a void or a reversal gives back exactly the
//!   natural fee of what it undoes; a refund gives back the fee share of the refunded part when
//!   the policy returns it (nothing when retained). Undoing always uses the original's date's
//!   schedule, so what is given back is what was charged;
//! - within one settlement, a step undone by another step of the same settlement carries no fee,
//!   and neither does the step that undid it (a purchase voided the same day: 0 and 0). Across
//!   settlements the natural fees apply (charged on one day, given back on a later one), so
//!   over time a voided or reversed transaction has carried no fee;
//! - an adjustment (a late step) carries its amount and its natural fee;
//! - fee = the lines' fees + the adjustments' fees; adjustments_total = the adjustments'
//!   amounts; net = gross + adjustments_total − fee.

use std::collections::{HashMap, HashSet};

use pos_proto::v1 as pb;

use super::steps::{Kind, Step};
use crate::fees::{FeeError, Funding, RefundFee, Schedule};

/// Chains are short (a reversal of a void of a purchase); this bounds a corrupt cycle.
const MAX_DEPTH: usize = 4;

/// Why the figures cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComputeError {
    /// No fee schedule is known for the merchant on a date.
    #[error("no fee schedule is known for business date {0}")]
    NoSchedule(String),
    /// The schedule or an amount is unusable.
    #[error(transparent)]
    Fee(#[from] FeeError),
    /// Steps in another currency than the settlement's.
    #[error("step {0} is in {1}, the settlement is in CNY")]
    Currency(String, String),
}

/// What the computation may look up.
#[derive(Debug, Default)]
pub struct Context {
    /// Steps by key (the lines' originals, and theirs).
    pub steps: HashMap<String, Step>,
    /// The merchant's fee schedule in force on each business date needed.
    pub schedules: HashMap<String, pb::FeeSchedule>,
    /// Refund fee policy when a schedule leaves it unspecified.
    pub refund_default: Option<RefundFee>,
}

impl Context {
    fn schedule(&self, date: &str) -> Result<Schedule, ComputeError> {
        let proto = self
            .schedules
            .get(date)
            .ok_or_else(|| ComputeError::NoSchedule(date.to_owned()))?;
        Ok(Schedule::from_proto(
            proto,
            self.refund_default.unwrap_or(RefundFee::Returned),
        )?)
    }

    /// The step `step` acts on, when known (reversals are never reversed, so an original's
    /// key is its plain id).
    fn original(&self, step: &Step) -> Option<&Step> {
        self.steps
            .get(&step.original)
            .filter(|_| !step.original.is_empty())
    }

    /// The keys of the originals `steps` need that are not here yet.
    pub fn missing_originals<'a>(&self, steps: impl Iterator<Item = &'a Step>) -> Vec<String> {
        let mut missing: Vec<String> = steps
            .filter(|s| !s.original.is_empty() && self.original(s).is_none())
            .map(|s| s.original.clone())
            .collect();
        missing.sort();
        missing.dedup();
        missing
    }

    /// The natural fee of a step (signed: negative when fee is given back).
    pub fn natural_fee(&self, step: &Step) -> Result<i64, ComputeError> {
        self.natural_fee_at(step, 0)
    }

    fn natural_fee_at(&self, step: &Step, depth: usize) -> Result<i64, ComputeError> {
        let funding = Funding::from_proto(step.funding);
        let original = self.original(step).filter(|_| depth < MAX_DEPTH);
        match step.kind {
            Kind::Purchase | Kind::Completion => Ok(self
                .schedule(&step.business_date)?
                .fee(step.amount_minor, funding)?),
            Kind::Void | Kind::Reversal => match original {
                Some(original) => Ok(-self.natural_fee_at(original, depth + 1)?),
                None => {
                    // The original is unknown (older than the topics): the schedule's fee on
                    // the amount, in the direction the step moves money.
                    let schedule = self.schedule(&step.business_date)?;
                    let fee = match step.reverses {
                        Some(Kind::Refund) if schedule.refund_policy() == RefundFee::Retained => 0,
                        _ => schedule.fee(step.amount_minor, funding)?,
                    };
                    Ok(if step.effect() < 0 { -fee } else { fee })
                }
            },
            Kind::Refund => match original {
                Some(original) => {
                    let charged = self.natural_fee_at(original, depth + 1)?;
                    let schedule = self.schedule(&original.business_date)?;
                    let after = step.refunded_before + step.amount_minor;
                    Ok(-schedule.refund_fee_returned(
                        charged,
                        original.amount_minor,
                        step.refunded_before,
                        after,
                    )?)
                }
                None => {
                    let schedule = self.schedule(&step.business_date)?;
                    Ok(match schedule.refund_policy() {
                        RefundFee::Returned => -schedule.fee(step.amount_minor, funding)?,
                        RefundFee::Retained => 0,
                    })
                }
            },
        }
    }
}

/// A count and a sum in minor units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Number of steps.
    pub count: u32,
    /// Sum of their amounts (for reversals: signed as they reduce the gross).
    pub amount: i64,
}

impl Tally {
    fn add(&mut self, amount: i64) {
        self.count += 1;
        self.amount += amount;
    }

    /// The proto form in CNY.
    pub fn proto(self) -> pb::CountAmount {
        pb::CountAmount {
            count: self.count,
            amount: Some(cny(self.amount)),
        }
    }
}

/// An amount in CNY minor units, in its proto form.
pub fn cny(minor_units: i64) -> pb::Money {
    pb::Money {
        minor_units,
        currency: "CNY".to_owned(),
    }
}

/// One line of a settlement: the step and the fee it carries here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The step.
    pub step: Step,
    /// Fee carried in this settlement, signed.
    pub fee: i64,
}

/// The figures of one settlement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    /// The lines, in time order.
    pub lines: Vec<Line>,
    /// Purchases.
    pub purchases: Tally,
    /// Pre-auth completions.
    pub completions: Tally,
    /// Voids.
    pub voids: Tally,
    /// Reversals (of a void or refund: negative).
    pub reversals: Tally,
    /// Refunds.
    pub refunds: Tally,
    /// Gross of the date.
    pub gross: i64,
    /// Total fee: the lines' and the adjustments'.
    pub fee: i64,
    /// Sum of the adjustments' amounts.
    pub adjustments_total: i64,
    /// Net to the merchant.
    pub net: i64,
}

/// The figures of a settlement of `steps` (the date's lines) and `adjustments` (carried in).
pub fn figures(
    steps: Vec<Step>,
    adjustments: &[pb::SettlementAdjustment],
    context: &Context,
) -> Result<Figures, ComputeError> {
    if let Some(odd) = steps.iter().find(|s| s.currency != "CNY") {
        return Err(ComputeError::Currency(
            odd.key.clone(),
            odd.currency.clone(),
        ));
    }
    let fees: Vec<i64> = {
        let here: HashSet<&str> = steps.iter().map(|s| s.key.as_str()).collect();
        let mut undoers: HashMap<&str, Vec<&Step>> = HashMap::new();
        for step in steps.iter().filter(|s| s.undoes()) {
            undoers
                .entry(step.original.as_str())
                .or_default()
                .push(step);
        }
        steps
            .iter()
            .map(|step| {
                let cancelled = undone(step, &undoers, 0)
                    || (step.undoes() && here.contains(step.original.as_str()));
                if cancelled {
                    Ok(0)
                } else {
                    context.natural_fee(step)
                }
            })
            .collect::<Result<_, _>>()?
    };

    let mut out = Figures::default();
    let mut lines = Vec::with_capacity(steps.len());
    for (step, fee) in steps.into_iter().zip(fees) {
        match step.kind {
            Kind::Purchase => out.purchases.add(step.amount_minor),
            Kind::Completion => out.completions.add(step.amount_minor),
            Kind::Void => out.voids.add(step.amount_minor),
            Kind::Refund => out.refunds.add(step.amount_minor),
            Kind::Reversal => out.reversals.add(-step.effect()),
        }
        out.gross += step.effect();
        out.fee += fee;
        lines.push(Line { step, fee });
    }
    lines.sort_by(|a, b| {
        let key = |l: &Line| {
            (
                l.step.time.clone(),
                l.step.terminal_id.clone(),
                l.step.batch_no,
                l.step.stan,
                l.step.key.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    out.lines = lines;
    for adjustment in adjustments {
        out.adjustments_total += adjustment.amount.as_ref().map_or(0, |m| m.minor_units);
        out.fee += adjustment.fee.as_ref().map_or(0, |m| m.minor_units);
    }
    out.net = out.gross + out.adjustments_total - out.fee;
    Ok(out)
}

/// Whether `step` is undone by a step of the same settlement that itself stands.
fn undone(step: &Step, undoers: &HashMap<&str, Vec<&Step>>, depth: usize) -> bool {
    if depth >= MAX_DEPTH {
        return false;
    }
    // Reversals are never reversed themselves, so an original's key is its plain id.
    undoers
        .get(step.key.as_str())
        .into_iter()
        .flatten()
        .any(|undoer| !undone(undoer, undoers, depth + 1))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn schedule() -> pb::FeeSchedule {
        pb::FeeSchedule {
            debit_rate: "0.0050".to_owned(),
            debit_cap: Some(cny(2_000)),
            credit_rate: "0.0060".to_owned(),
            ..pb::FeeSchedule::default()
        }
    }

    fn context(steps: &[&Step]) -> Context {
        Context {
            steps: steps
                .iter()
                .map(|s| (s.key.clone(), (*s).clone()))
                .collect(),
            schedules: [("2026-11-27", schedule()), ("2026-11-28", schedule())]
                .into_iter()
                .map(|(d, s)| (d.to_owned(), s))
                .collect(),
            refund_default: Some(RefundFee::Returned),
        }
    }

    fn step(key: &str, kind: Kind, minor: i64, funding: pb::CardFundingType) -> Step {
        Step {
            key: key.to_owned(),
            kind,
            reverses: None,
            transaction_type: 0,
            merchant_id: "M".to_owned(),
            business_date: "2026-11-28".to_owned(),
            amount_minor: minor,
            currency: "CNY".to_owned(),
            funding: funding as i32,
            masked_pan: "622588****3345".to_owned(),
            terminal_id: "T0000001".to_owned(),
            batch_no: 1,
            stan: 1,
            rrn: String::new(),
            time: format!("2026-11-28T10:00:{key}"),
            original: String::new(),
            refunded_before: 0,
        }
    }

    fn on(mut s: Step, original: &str) -> Step {
        s.original = original.to_owned();
        s
    }

    fn reversal_of(key: &str, original: &Step) -> Step {
        let mut r = on(
            step(
                key,
                Kind::Reversal,
                original.amount_minor,
                pb::CardFundingType::Unspecified,
            ),
            &original.key,
        );
        r.reverses = Some(original.kind);
        r
    }

    const CREDIT: pb::CardFundingType = pb::CardFundingType::Credit;
    const DEBIT: pb::CardFundingType = pb::CardFundingType::Debit;

    #[test]
    fn a_day_settles_to_gross_fee_and_net() {
        // Purchases 100.00 credit (0.60) and 5000.00 debit (25.00 → capped 20.00), one of
        // 30.00 credit voided the same day, one of 20.00 debit reversed, a refund of 40.00 of
        // the 100.00 (0.24 of the 0.60 given back), a completion of 80.00 credit (0.48).
        let p1 = step("01", Kind::Purchase, 10_000, CREDIT);
        let p2 = step("02", Kind::Purchase, 500_000, DEBIT);
        let p3 = step("03", Kind::Purchase, 3_000, CREDIT);
        let v3 = on(step("04", Kind::Void, 3_000, CREDIT), "03");
        let p4 = step("05", Kind::Purchase, 2_000, DEBIT);
        let r4 = reversal_of("06", &p4);
        let mut f1 = on(step("07", Kind::Refund, 4_000, CREDIT), "01");
        f1.refunded_before = 0;
        let c1 = step("08", Kind::Completion, 8_000, CREDIT);
        let all = [&p1, &p2, &p3, &v3, &p4, &r4, &f1, &c1];
        let ctx = context(&all);
        let figures = figures(all.iter().map(|s| (*s).clone()).collect(), &[], &ctx).unwrap();
        assert_eq!(
            figures.purchases,
            Tally {
                count: 4,
                amount: 515_000
            }
        );
        assert_eq!(
            figures.completions,
            Tally {
                count: 1,
                amount: 8_000
            }
        );
        assert_eq!(
            figures.voids,
            Tally {
                count: 1,
                amount: 3_000
            }
        );
        assert_eq!(
            figures.reversals,
            Tally {
                count: 1,
                amount: 2_000
            }
        );
        assert_eq!(
            figures.refunds,
            Tally {
                count: 1,
                amount: 4_000
            }
        );
        assert_eq!(figures.gross, 515_000 + 8_000 - 3_000 - 2_000 - 4_000);
        let fees: Vec<(&str, i64)> = figures
            .lines
            .iter()
            .map(|l| (l.step.key.as_str(), l.fee))
            .collect();
        assert_eq!(
            fees,
            [
                ("01", 60),
                ("02", 2_000),
                ("03", 0),
                ("04", 0),
                ("05", 0),
                ("06", 0),
                ("07", -24),
                ("08", 48)
            ]
        );
        assert_eq!(figures.fee, 60 + 2_000 - 24 + 48);
        assert_eq!(figures.net, figures.gross - figures.fee);
    }

    #[test]
    fn undoing_on_a_later_day_gives_back_what_was_charged() {
        let mut p = step("01", Kind::Purchase, 10_000, CREDIT);
        p.business_date = "2026-11-27".to_owned();
        // The void does not carry the funding: the original's counts.
        let v = on(
            step("02", Kind::Void, 10_000, pb::CardFundingType::Unspecified),
            "01",
        );
        let ctx = context(&[&p, &v]);
        let day = figures(vec![v.clone()], &[], &ctx).unwrap();
        assert_eq!((day.gross, day.fee, day.net), (-10_000, -60, -9_940));
        // A reversal of that void (same later day) cancels it: nothing moves, no fee.
        let r = reversal_of("03", &v);
        let ctx = context(&[&p, &v, &r]);
        let day = figures(vec![v, r], &[], &ctx).unwrap();
        assert_eq!((day.gross, day.fee), (0, 0));
        assert_eq!(
            day.reversals,
            Tally {
                count: 1,
                amount: -10_000
            }
        );
    }

    #[test]
    fn a_reversed_void_lets_the_purchase_pay_its_fee_again() {
        let p = step("01", Kind::Purchase, 10_000, CREDIT);
        let v = on(step("02", Kind::Void, 10_000, CREDIT), "01");
        let r = reversal_of("03", &v);
        let ctx = context(&[&p, &v, &r]);
        let day = figures(vec![p, v, r], &[], &ctx).unwrap();
        assert_eq!((day.gross, day.fee), (10_000, 60));
    }

    #[test]
    fn adjustments_carry_their_amount_and_fee_into_net() {
        let p = step("01", Kind::Purchase, 10_000, CREDIT);
        let ctx = context(&[&p]);
        let adjustment = pb::SettlementAdjustment {
            amount: Some(cny(-5_000)),
            fee: Some(cny(-30)),
            ..pb::SettlementAdjustment::default()
        };
        let day = figures(vec![p], &[adjustment], &ctx).unwrap();
        assert_eq!(day.gross, 10_000);
        assert_eq!(day.adjustments_total, -5_000);
        assert_eq!(day.fee, 60 - 30);
        assert_eq!(day.net, 10_000 - 5_000 - 30);
    }

    #[test]
    fn a_late_reversal_gives_the_fee_back_and_unknown_originals_fall_back_to_the_amount() {
        let p = step("01", Kind::Purchase, 10_000, DEBIT);
        let r = reversal_of("02", &p);
        assert_eq!(context(&[&p]).natural_fee(&r), Ok(-50));
        let mut orphan = r.clone();
        orphan.original = "unknown".to_owned();
        orphan.funding = pb::CardFundingType::Unspecified as i32;
        assert_eq!(
            context(&[]).natural_fee(&orphan),
            Ok(-60),
            "credit rate when unknown"
        );
        let mut no_schedule = context(&[&p]);
        no_schedule.schedules.clear();
        assert_eq!(
            no_schedule.natural_fee(&p),
            Err(ComputeError::NoSchedule("2026-11-28".to_owned()))
        );
        assert_eq!(context(&[]).missing_originals([&r].into_iter()), ["01"]);
    }
}
