//! The money steps of merchant settlement, read from `pos.transactions.v1`. Pure: no I/O.
//!
//! A step is one event that moves a merchant's settled money, dated by the event's own
//! `business_date`: an approved purchase (`AuthorizationApproved` of type PURCHASE) and a
//! pre-auth completion add to the gross; a void, a refund and a reversal of a purchase or
//! completion take from it; a reversal of a void (or of a refund) puts the money back.
//! Pre-authorizations, their voids and balance inquiries move no settled money; neither do
//! declines and acknowledged reversals.

use pos_domain::time::ChinaTime;
use pos_events::{EventEnvelope, Payload};
use pos_proto::v1 as pb;
use serde::{Deserialize, Serialize};

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A purchase 消费.
    Purchase,
    /// A pre-authorization completion 预授权完成.
    Completion,
    /// A purchase void or completion void 撤销.
    Void,
    /// A refund 退货.
    Refund,
    /// A reversal 冲正 of a purchase, completion, void or refund.
    Reversal,
}

/// One money step as the settlement keeps it (never a PAN: the masked card only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Unique key: the transaction, void or refund id; `rev:{reversal id}` for a reversal.
    pub key: String,
    /// What it does.
    pub kind: Kind,
    /// For a reversal, what it reverses.
    pub reverses: Option<Kind>,
    /// Proto `TransactionType` of the step (REVERSAL for a reversal).
    pub transaction_type: i32,
    /// Merchant.
    pub merchant_id: String,
    /// Business date "YYYY-MM-DD" the step belongs to.
    pub business_date: String,
    /// Amount of the step, positive, in minor units.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Proto `CardFundingType` of the card (0 when not known).
    pub funding: i32,
    /// Masked card number.
    pub masked_pan: String,
    /// Terminal.
    pub terminal_id: String,
    /// Batch number.
    pub batch_no: u32,
    /// STAN (a reversal carries its original's).
    pub stan: u32,
    /// Retrieval reference number.
    pub rrn: String,
    /// Local date-time "YYYY-MM-DDTHH:MM:SS" (China time).
    pub time: String,
    /// Id of the transaction (or void, refund) this step acts on; empty for purchases and
    /// completions. The key of that step, except that a reversal's key has its prefix.
    pub original: String,
    /// For a refund: what had been refunded of the original before this refund.
    pub refunded_before: i64,
}

impl Step {
    /// The step's effect on the merchant's gross, signed, in minor units.
    pub fn effect(&self) -> i64 {
        let amount = self.amount_minor;
        match self.kind {
            Kind::Purchase | Kind::Completion => amount,
            Kind::Void | Kind::Refund => -amount,
            Kind::Reversal => match self.reverses {
                Some(Kind::Void | Kind::Refund) => amount,
                _ => -amount,
            },
        }
    }

    /// Whether the step undoes its original (a void or a reversal).
    pub fn undoes(&self) -> bool {
        matches!(self.kind, Kind::Void | Kind::Reversal)
    }

    /// The transaction the step is about: its original, or itself.
    pub fn transaction_id(&self) -> &str {
        if self.original.is_empty() {
            &self.key
        } else {
            &self.original
        }
    }
}

fn time(facts: Option<&pb::TransactionFacts>, envelope: &EventEnvelope) -> String {
    match facts.map(|f| f.local_datetime.as_str()) {
        Some(local) if !local.is_empty() => local.to_owned(),
        _ => envelope
            .occurred_at
            .as_ref()
            .map_or_else(String::new, |t| ChinaTime::from_unix(t.seconds).iso()),
    }
}

fn from_facts(facts: &pb::TransactionFacts, kind: Kind, envelope: &EventEnvelope) -> Option<Step> {
    let amount = facts.amount.as_ref()?;
    let trace = facts.trace.clone().unwrap_or_default();
    Some(Step {
        key: facts.transaction_id.clone(),
        kind,
        reverses: None,
        transaction_type: facts.transaction_type,
        merchant_id: facts.merchant_id.clone(),
        business_date: facts.business_date.clone(),
        amount_minor: amount.minor_units,
        currency: amount.currency.clone(),
        funding: facts.card_funding,
        masked_pan: facts
            .card
            .as_ref()
            .map(|c| c.masked_pan.clone())
            .unwrap_or_default(),
        terminal_id: trace.terminal_id,
        batch_no: trace.batch_no,
        stan: trace.stan,
        rrn: facts.rrn.clone(),
        time: time(Some(facts), envelope),
        original: facts
            .original
            .as_ref()
            .map(|o| o.transaction_id.clone())
            .unwrap_or_default(),
        refunded_before: 0,
    })
    .filter(|step| !step.key.is_empty() && step.amount_minor > 0)
}

fn kind_of(transaction_type: i32) -> Option<Kind> {
    use pb::TransactionType as T;
    match T::try_from(transaction_type).ok()? {
        T::Purchase => Some(Kind::Purchase),
        T::PreAuthCompletion => Some(Kind::Completion),
        T::PurchaseVoid | T::CompletionVoid => Some(Kind::Void),
        T::Refund => Some(Kind::Refund),
        _ => None,
    }
}

/// The money step an event is; `None` for events that move no settled money.
pub fn step(envelope: &EventEnvelope) -> Option<Step> {
    match envelope.payload.as_ref()? {
        Payload::AuthorizationApproved(e) => {
            let facts = e.txn.as_ref()?;
            let purchase = facts.transaction_type == pb::TransactionType::Purchase as i32;
            if !purchase {
                return None;
            }
            let mut step = from_facts(facts, Kind::Purchase, envelope)?;
            step.original = String::new();
            Some(step)
        }
        Payload::PreAuthCompleted(e) => {
            // Its original is the pre-authorization, which moved no settled money.
            let mut step = from_facts(e.txn.as_ref()?, Kind::Completion, envelope)?;
            step.original = String::new();
            Some(step)
        }
        Payload::TransactionVoided(e) => from_facts(e.txn.as_ref()?, Kind::Void, envelope),
        Payload::TransactionRefunded(e) => {
            let mut step = from_facts(e.txn.as_ref()?, Kind::Refund, envelope)?;
            if let Some(total) = &e.refunded_total {
                step.refunded_before = (total.minor_units - step.amount_minor).max(0);
            }
            Some(step)
        }
        Payload::TransactionReversed(e) => reversal(e, envelope),
        _ => None,
    }
}

fn reversal(e: &pb::TransactionReversed, envelope: &EventEnvelope) -> Option<Step> {
    let original = e.original.as_ref()?;
    let reverses = kind_of(original.transaction_type)?;
    let amount = e.amount.as_ref().or(original.amount.as_ref())?;
    let trace = original.trace.clone().unwrap_or_default();
    let id = if e.reversal_id.is_empty() {
        &envelope.event_id
    } else {
        &e.reversal_id
    };
    let business_date = if e.business_date.is_empty() {
        original.business_date.clone()
    } else {
        e.business_date.clone()
    };
    Some(Step {
        key: format!("rev:{id}"),
        kind: Kind::Reversal,
        reverses: Some(reverses),
        transaction_type: pb::TransactionType::Reversal as i32,
        merchant_id: original.merchant_id.clone(),
        business_date,
        amount_minor: amount.minor_units,
        currency: amount.currency.clone(),
        funding: original.card_funding,
        masked_pan: original
            .card
            .as_ref()
            .map(|c| c.masked_pan.clone())
            .unwrap_or_default(),
        terminal_id: trace.terminal_id,
        batch_no: trace.batch_no,
        stan: trace.stan,
        rrn: original.rrn.clone(),
        time: time(None, envelope),
        original: original.transaction_id.clone(),
        refunded_before: 0,
    })
    .filter(|step| step.amount_minor > 0 && !step.original.is_empty())
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    pub fn envelope(payload: Payload) -> EventEnvelope {
        EventEnvelope {
            event_id: "e1".to_owned(),
            occurred_at: Some(prost_types::Timestamp {
                seconds: 1_795_870_000,
                nanos: 0,
            }),
            payload: Some(payload),
            ..EventEnvelope::default()
        }
    }

    pub fn facts(id: &str, kind: pb::TransactionType, minor: i64) -> pb::TransactionFacts {
        pb::TransactionFacts {
            transaction_id: id.to_owned(),
            transaction_type: kind as i32,
            merchant_id: "898000000000001".to_owned(),
            trace: Some(pb::TerminalTraceRef {
                terminal_id: "T0000001".to_owned(),
                batch_no: 1,
                stan: 7,
            }),
            amount: Some(pb::Money {
                minor_units: minor,
                currency: "CNY".to_owned(),
            }),
            card: Some(pb::MaskedCard {
                masked_pan: "622588****3345".to_owned(),
                ..pb::MaskedCard::default()
            }),
            card_funding: pb::CardFundingType::Credit as i32,
            business_date: "2026-11-28".to_owned(),
            local_datetime: "2026-11-28T10:00:00".to_owned(),
            response_code: "00".to_owned(),
            ..pb::TransactionFacts::default()
        }
    }

    #[test]
    fn purchases_and_completions_add_and_pre_authorizations_move_nothing() {
        let purchase = step(&envelope(Payload::AuthorizationApproved(
            pb::AuthorizationApproved {
                txn: Some(facts("p1", pb::TransactionType::Purchase, 5_000)),
                ..Default::default()
            },
        )))
        .unwrap();
        assert_eq!((purchase.kind, purchase.effect()), (Kind::Purchase, 5_000));
        assert_eq!(purchase.time, "2026-11-28T10:00:00");
        let hold = Payload::PreAuthHoldPlaced(pb::PreAuthHoldPlaced {
            txn: Some(facts("h1", pb::TransactionType::PreAuth, 9_000)),
            ..Default::default()
        });
        assert!(step(&envelope(hold)).is_none());
        let mut completion = facts("c1", pb::TransactionType::PreAuthCompletion, 8_000);
        completion.original = Some(pb::OriginalTransactionRef {
            transaction_id: "h1".to_owned(),
            ..Default::default()
        });
        let completed = step(&envelope(Payload::PreAuthCompleted(pb::PreAuthCompleted {
            txn: Some(completion),
            ..Default::default()
        })))
        .unwrap();
        assert_eq!(completed.effect(), 8_000);
        assert!(
            completed.original.is_empty(),
            "the hold is not a money step"
        );
    }

    #[test]
    fn refunds_take_and_remember_what_was_refunded_before() {
        let mut txn = facts("r1", pb::TransactionType::Refund, 1_000);
        txn.original = Some(pb::OriginalTransactionRef {
            transaction_id: "p1".to_owned(),
            ..Default::default()
        });
        let refund = step(&envelope(Payload::TransactionRefunded(
            pb::TransactionRefunded {
                txn: Some(txn),
                refunded_total: Some(pb::Money {
                    minor_units: 3_000,
                    currency: "CNY".to_owned(),
                }),
                ..Default::default()
            },
        )))
        .unwrap();
        assert_eq!(refund.effect(), -1_000);
        assert_eq!(
            (refund.original.as_str(), refund.refunded_before),
            ("p1", 2_000)
        );
    }

    #[test]
    fn a_reversal_takes_a_purchase_out_and_puts_a_voided_one_back() {
        let reversed = |original: pb::TransactionFacts| {
            step(&envelope(Payload::TransactionReversed(
                pb::TransactionReversed {
                    reversal_id: "T0000001:1:7".to_owned(),
                    original: Some(original),
                    amount: Some(pb::Money {
                        minor_units: 5_000,
                        currency: "CNY".to_owned(),
                    }),
                    business_date: "2026-11-29".to_owned(),
                    ..Default::default()
                },
            )))
        };
        let of_purchase = reversed(facts("p1", pb::TransactionType::Purchase, 5_000)).unwrap();
        assert_eq!(of_purchase.key, "rev:T0000001:1:7");
        assert_eq!(of_purchase.effect(), -5_000);
        assert_eq!(of_purchase.original, "p1");
        assert_eq!(
            of_purchase.business_date, "2026-11-29",
            "the reversal's own date"
        );
        let of_void = reversed(facts("v1", pb::TransactionType::PurchaseVoid, 5_000)).unwrap();
        assert_eq!(of_void.effect(), 5_000);
        assert!(reversed(facts("h1", pb::TransactionType::PreAuth, 5_000)).is_none());
    }
}
