//! A transaction's history from the events that concern it: every event becomes an entry
//! (oldest first), and the summary's status, refunded and refundable amounts follow from what
//! the steps did.
//!
//! The fold does not depend on the order events arrive in: a pre-authorization and its
//! completion at another terminal sit in different partitions, and a reversal of a void may be
//! read before the void. Each step is remembered by its id, and the status is decided
//! from the whole set: a reversed void no longer counts as a void, a reversed refund no longer
//! counts towards the refunded amount.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use pos_events::EventEnvelope;
use pos_proto::v1 as pb;
use pos_proto::v1::TransactionStatus as Status;

use crate::model::{Subject, TransactionHistory};
use crate::view::{self, Effect, Known, View};

/// The history of `subject` from `events` (its own events and those of the steps that name
/// it, in any order, duplicates allowed); `None` when none of them concerns it.
pub fn build(subject: &Subject, events: &[EventEnvelope]) -> Option<TransactionHistory> {
    let mut seen = HashSet::new();
    let mut views: Vec<View<'_>> = events
        .iter()
        .filter(|e| seen.insert(e.event_id.as_str()))
        .filter_map(|e| view::view(subject, e))
        .collect();
    if views.is_empty() {
        return None;
    }
    views.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    let summary = summarize(subject, &views);
    let entries = views.into_iter().map(|v| v.entry).collect();
    Some(TransactionHistory { summary, entries })
}

/// How the transaction's own decision went, as far as is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Approved.
    Approved,
    /// Declined or refused.
    Declined,
    /// Its own event has not been read (yet): only steps that name it.
    Unknown,
}

/// What the steps did to a transaction, each step by its id.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Steps {
    /// Ids of reversed steps (and of the transaction itself).
    reversed: BTreeSet<String>,
    /// The transaction itself was reversed.
    reversed_itself: bool,
    voids: BTreeSet<String>,
    completions: BTreeSet<String>,
    releases: BTreeSet<String>,
    refunds: BTreeMap<String, Option<pb::Money>>,
}

impl Steps {
    /// Records one step's effect.
    pub(crate) fn record(&mut self, effect: &Effect) {
        match effect {
            Effect::None | Effect::Decided { .. } => {}
            Effect::Reversed { step, itself } => {
                self.reversed.insert(step.clone());
                self.reversed_itself |= *itself;
            }
            Effect::Voided(id) => {
                self.voids.insert(id.clone());
            }
            Effect::Completed(id) => {
                self.completions.insert(id.clone());
            }
            Effect::Released(id) => {
                self.releases.insert(id.clone());
            }
            Effect::Refunded(id, amount) => {
                self.refunds.insert(id.clone(), amount.clone());
            }
        }
    }

    fn standing<'s>(&'s self, ids: &'s BTreeSet<String>) -> impl Iterator<Item = &'s String> {
        ids.iter().filter(|id| !self.reversed.contains(*id))
    }

    /// Whether any step implies that the transaction was approved.
    fn imply_approval(&self) -> bool {
        self.reversed_itself
            || !self.voids.is_empty()
            || !self.completions.is_empty()
            || !self.releases.is_empty()
            || !self.refunds.is_empty()
    }

    /// Sum of the refunds that stand (not reversed), in `currency`.
    fn refunded(&self, currency: &str) -> i64 {
        self.refunds
            .iter()
            .filter(|(id, _)| !self.reversed.contains(*id))
            .filter_map(|(_, amount)| amount.as_ref())
            .filter(|amount| amount.currency == currency)
            .fold(0i64, |sum, amount| sum.saturating_add(amount.minor_units))
    }
}

/// The state the steps leave the transaction in, with the refunded and still refundable
/// amounts (zero in the transaction's currency when none; unset when it has no amount).
pub(crate) fn status(
    decision: Decision,
    steps: &Steps,
    transaction_type: i32,
    amount: Option<&pb::Money>,
) -> (Status, Option<pb::Money>, Option<pb::Money>) {
    let currency = amount.map(|a| a.currency.clone());
    let refunded = currency.as_deref().map_or(0, |c| steps.refunded(c));
    let total = amount.map_or(0, |a| a.minor_units);
    let approved = match decision {
        Decision::Approved => true,
        Decision::Declined => false,
        Decision::Unknown => steps.imply_approval(),
    };
    let state = if decision == Decision::Declined {
        Status::Declined
    } else if !approved {
        Status::Unspecified
    } else if steps.reversed_itself {
        Status::Reversed
    } else if steps.standing(&steps.voids).next().is_some() {
        Status::Voided
    } else if steps.standing(&steps.completions).next().is_some() {
        Status::Completed
    } else if steps.standing(&steps.releases).next().is_some() {
        Status::HoldReleased
    } else if refunded > 0 && refunded >= total {
        Status::Refunded
    } else if refunded > 0 {
        Status::PartiallyRefunded
    } else {
        Status::Approved
    };
    let refundable_type = matches!(
        pb::TransactionType::try_from(transaction_type),
        Ok(pb::TransactionType::Purchase | pb::TransactionType::PreAuthCompletion)
    );
    let refundable =
        if refundable_type && matches!(state, Status::Approved | Status::PartiallyRefunded) {
            total.saturating_sub(refunded).max(0)
        } else {
            0
        };
    let in_currency = |minor: i64| {
        currency.as_ref().map(|c| pb::Money {
            minor_units: minor,
            currency: c.clone(),
        })
    };
    (state, in_currency(refunded), in_currency(refundable))
}

fn summarize(subject: &Subject, views: &[View<'_>]) -> pb::TransactionSummary {
    let mut steps = Steps::default();
    for v in views {
        steps.record(&v.effect);
    }
    // The latest own decision (by the aggregate's sequence) is the transaction's.
    let own = views
        .iter()
        .filter(|v| matches!(v.known, Known::Own(_)))
        .max_by_key(|v| v.sequence);
    let (mut summary, decision) = match own {
        Some(v) => {
            let approved = matches!(v.effect, Effect::Decided { approved: true });
            let summary = match v.known {
                Known::Own(facts) => from_facts(facts, v.entry.occurred_at),
                _ => pb::TransactionSummary::default(),
            };
            let decision = if approved {
                Decision::Approved
            } else {
                Decision::Declined
            };
            (summary, decision)
        }
        None => (from_steps(subject, views), Decision::Unknown),
    };
    if summary.transaction_id.is_empty() {
        summary.transaction_id.clone_from(&subject.id);
    }
    if summary.trace.is_none() {
        summary.trace = subject.trace.as_ref().map(|t| t.to_proto());
    }
    let (state, refunded, refundable) = status(
        decision,
        &steps,
        summary.transaction_type,
        summary.amount.as_ref(),
    );
    summary.status = state as i32;
    summary.refunded_amount = refunded;
    summary.refundable_amount = refundable;
    summary
}

fn from_facts(
    facts: &pb::TransactionFacts,
    occurred_at: Option<prost_types::Timestamp>,
) -> pb::TransactionSummary {
    pb::TransactionSummary {
        transaction_id: facts.transaction_id.clone(),
        transaction_type: facts.transaction_type,
        status: Status::Unspecified as i32,
        merchant_id: facts.merchant_id.clone(),
        trace: facts.trace.clone(),
        operator_no: facts.operator_no.clone(),
        amount: facts.amount.clone(),
        card: facts.card.clone(),
        entry_mode: facts.entry_mode,
        rrn: facts.rrn.clone(),
        approval_code: facts.approval_code.clone(),
        response_code: facts.response_code.clone(),
        business_date: facts.business_date.clone(),
        occurred_at,
        refunded_amount: None,
        refundable_amount: None,
        original: facts.original.clone(),
    }
}

/// What the steps tell when the transaction's own event is missing: its facts as a reversal
/// or an undelivered approval recorded them, else a step's reference to it.
fn from_steps(subject: &Subject, views: &[View<'_>]) -> pb::TransactionSummary {
    let facts = views.iter().find_map(|v| match v.known {
        Known::Facts(facts) => Some(facts),
        _ => None,
    });
    if let Some(facts) = facts {
        return from_facts(facts, None);
    }
    let reference = views.iter().find_map(|v| match v.known {
        Known::Reference(original, merchant) => Some((original, merchant)),
        _ => None,
    });
    match reference {
        Some((original, merchant)) => pb::TransactionSummary {
            transaction_id: original.transaction_id.clone(),
            transaction_type: original.transaction_type,
            merchant_id: merchant.to_owned(),
            trace: crate::model::TraceKey::of_original(original).map(|t| t.to_proto()),
            amount: original.amount.clone(),
            rrn: original.rrn.clone(),
            approval_code: original.approval_code.clone(),
            business_date: original.business_date.clone(),
            ..Default::default()
        },
        None => pb::TransactionSummary {
            transaction_id: subject.id.clone(),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use pos_events::Payload;
    use pos_proto::v1::ReversalInitiator as Initiator;

    use super::*;
    use crate::fixtures::*;
    use crate::model::TraceKey;

    fn subject(id: &str, stan: u32) -> Subject {
        Subject {
            id: id.to_owned(),
            trace: TraceKey::of(Some(&trace(stan))),
        }
    }

    fn history(id: &str, stan: u32, events: &[EventEnvelope]) -> TransactionHistory {
        build(&subject(id, stan), events).expect("the events concern the transaction")
    }

    fn details(h: &TransactionHistory) -> Vec<(&str, &str)> {
        h.entries
            .iter()
            .map(|e| (e.event_type.as_str(), e.detail.as_str()))
            .collect()
    }

    fn state(h: &TransactionHistory) -> Status {
        Status::try_from(h.summary.status).unwrap_or(Status::Unspecified)
    }

    #[test]
    fn an_approved_purchase_stands_and_is_refundable_in_full() {
        let (f, approved) = purchase();
        let h = history("P1", 1, &[approved]);
        assert_eq!(state(&h), Status::Approved);
        assert_eq!(h.summary.transaction_id, "P1");
        assert_eq!(h.summary.amount, Some(cny(5000)));
        assert_eq!(h.summary.refunded_amount, Some(cny(0)));
        assert_eq!(h.summary.refundable_amount, Some(cny(5000)));
        assert_eq!(h.summary.rrn, f.rrn);
        assert_eq!(h.summary.occurred_at, Some(at(1)));
        assert_eq!(details(&h), [("AuthorizationApproved", "rrn 100000000001")]);
        let entry = &h.entries[0];
        assert_eq!(entry.step_id, "P1");
        assert_eq!(entry.response_code, "00");
        assert_eq!(entry.trace, Some(trace(1)));
    }

    #[test]
    fn a_partial_refund_leaves_the_rest_refundable() {
        let (p, approved) = purchase();
        let (_, refunded) = refund("R1", &p, 2, 60, 3000, 3000);
        let h = history("P1", 1, &[approved.clone(), refunded.clone()]);
        assert_eq!(state(&h), Status::PartiallyRefunded);
        assert_eq!(h.summary.refunded_amount, Some(cny(3000)));
        assert_eq!(h.summary.refundable_amount, Some(cny(2000)));
        assert_eq!(
            details(&h),
            [
                ("AuthorizationApproved", "rrn 100000000001"),
                ("TransactionRefunded", "refunded 30.00 of 50.00"),
            ]
        );
        assert_eq!(h.entries[1].step_id, "R1");
        assert_eq!(
            h.entries[1].transaction_type,
            pb::TransactionType::Refund as i32
        );

        // The rest refunded later: refunded in full, nothing left.
        let (_, rest) = refund("R2", &p, 3, 120, 2000, 5000);
        let h = history("P1", 1, &[approved, refunded, rest]);
        assert_eq!(state(&h), Status::Refunded);
        assert_eq!(h.summary.refunded_amount, Some(cny(5000)));
        assert_eq!(h.summary.refundable_amount, Some(cny(0)));
        assert_eq!(h.entries[2].detail, "refunded 50.00 of 50.00");
    }

    #[test]
    fn a_refund_is_a_transaction_of_its_own_naming_its_original() {
        let (p, approved) = purchase();
        let (_, refunded) = refund("R1", &p, 2, 60, 3000, 3000);
        let h = history("R1", 2, &[refunded, approved]);
        assert_eq!(state(&h), Status::Approved);
        assert_eq!(
            h.summary.transaction_type,
            pb::TransactionType::Refund as i32
        );
        assert_eq!(
            h.summary
                .original
                .as_ref()
                .map(|o| o.transaction_id.as_str()),
            Some("P1")
        );
        assert_eq!(
            h.summary.refundable_amount,
            Some(cny(0)),
            "a refund is not refundable"
        );
        assert_eq!(
            details(&h),
            [(
                "TransactionRefunded",
                "refunded 30.00 of 50.00; original PURCHASE T0000001:000001:000001"
            )]
        );
    }

    #[test]
    fn a_void_voids_and_its_reversal_restores_the_purchase() {
        let (p, approved) = purchase();
        let (v, voided) = void("V1", &p, 2, 30);
        let h = history("P1", 1, &[approved.clone(), voided.clone()]);
        assert_eq!(state(&h), Status::Voided);
        assert_eq!(h.summary.refundable_amount, Some(cny(0)));
        assert_eq!(h.entries[1].detail, "voided, authorized by operator 00");

        let reversed = reversal("T0000001:000001:000002", &v, Initiator::Terminal, "98", 90);
        let h = history(
            "P1",
            1,
            &[approved.clone(), voided.clone(), reversed.clone()],
        );
        assert_eq!(
            state(&h),
            Status::Approved,
            "a reversed void no longer voids"
        );
        assert_eq!(
            h.entries[2].detail,
            "PURCHASE_VOID T0000001:000001:000002 reversed: terminal reversal, reason 98"
        );

        let void_history = history("V1", 2, &[voided, reversed, approved]);
        assert_eq!(state(&void_history), Status::Reversed);
        assert_eq!(
            details(&void_history),
            [
                (
                    "TransactionVoided",
                    "voided, authorized by operator 00; original PURCHASE T0000001:000001:000001"
                ),
                ("TransactionReversed", "terminal reversal, reason 98"),
            ]
        );
    }

    #[test]
    fn an_undelivered_approval_is_reversed_by_the_host() {
        let (p, approved) = purchase();
        let undelivered = envelope(
            "delivery",
            "P1",
            1,
            2,
            Payload::ApprovalUndelivered(pb::ApprovalUndelivered {
                txn: Some(p.clone()),
                session_id: "S1".to_owned(),
                reason: "stream closed before the answer was sent".to_owned(),
            }),
        );
        let reversed = reversal("REV-P1", &p, Initiator::Host, "UNDELIVERED", 3);
        let h = history("P1", 1, &[reversed, undelivered, approved]);
        assert_eq!(state(&h), Status::Reversed);
        assert_eq!(h.summary.refundable_amount, Some(cny(0)));
        assert_eq!(
            details(&h),
            [
                ("AuthorizationApproved", "rrn 100000000001"),
                (
                    "ApprovalUndelivered",
                    "approval undelivered: stream closed before the answer was sent"
                ),
                ("TransactionReversed", "host reversal: approval undelivered"),
            ]
        );
        let reversal_entry = &h.entries[2];
        assert_eq!(reversal_entry.step_id, "REV-P1");
        assert_eq!(
            reversal_entry.trace, None,
            "a host reversal has no terminal trace"
        );
        assert_eq!(reversal_entry.amount, Some(cny(5000)));
    }

    #[test]
    fn a_declined_purchase_moves_no_money() {
        let f = facts("D1", pb::TransactionType::Purchase, 5, 5000, "51");
        let declined = envelope(
            "transaction",
            "D1",
            1,
            1,
            Payload::AuthorizationDeclined(pb::AuthorizationDeclined {
                txn: Some(pb::TransactionFacts {
                    response_message: "insufficient funds".to_owned(),
                    ..f
                }),
                source: pb::DeclineSource::Issuer as i32,
                fraud_reasons: Vec::new(),
            }),
        );
        let h = history("D1", 5, &[declined]);
        assert_eq!(state(&h), Status::Declined);
        assert_eq!(h.summary.refundable_amount, Some(cny(0)));
        assert_eq!(h.summary.response_code, "51");
        assert_eq!(
            h.entries[0].detail,
            "declined by the issuer: insufficient funds"
        );
    }

    fn pre_auth() -> (pb::TransactionFacts, EventEnvelope) {
        let mut f = facts("A1", pb::TransactionType::PreAuth, 7, 10_000, "00");
        f.issuer_hold_id = "H1".to_owned();
        let e = envelope(
            "transaction",
            "A1",
            1,
            1,
            Payload::PreAuthHoldPlaced(pb::PreAuthHoldPlaced {
                txn: Some(f.clone()),
                fraud_reasons: Vec::new(),
            }),
        );
        (f, e)
    }

    #[test]
    fn a_completion_completes_the_pre_auth_in_whatever_order_they_are_read() {
        let (a, placed) = pre_auth();
        let mut c = facts("C1", pb::TransactionType::PreAuthCompletion, 8, 8000, "00");
        c.original = Some(original_of(&a));
        let completed = envelope(
            "transaction",
            "C1",
            1,
            40,
            Payload::PreAuthCompleted(pb::PreAuthCompleted {
                txn: Some(c),
                hold_amount: Some(cny(10_000)),
            }),
        );
        let in_order = history("A1", 7, &[placed.clone(), completed.clone()]);
        let reversed_order = history("A1", 7, &[completed.clone(), placed]);
        assert_eq!(in_order, reversed_order);
        assert_eq!(state(&in_order), Status::Completed);
        assert_eq!(in_order.summary.refundable_amount, Some(cny(0)));
        assert_eq!(
            details(&in_order),
            [
                ("PreAuthHoldPlaced", "hold placed, rrn 100000000007"),
                ("PreAuthCompleted", "captured 80.00 of hold 100.00"),
            ]
        );

        // The completion alone: approved, refundable, and the pre-auth known from it.
        let completion = history("C1", 8, &[completed]);
        assert_eq!(state(&completion), Status::Approved);
        assert_eq!(completion.summary.refundable_amount, Some(cny(8000)));
    }

    #[test]
    fn a_pre_auth_void_releases_the_hold() {
        let (a, placed) = pre_auth();
        let mut v = facts("PV1", pb::TransactionType::PreAuthVoid, 9, 10_000, "00");
        v.original = Some(original_of(&a));
        let released = envelope(
            "transaction",
            "PV1",
            1,
            50,
            Payload::PreAuthVoided(pb::PreAuthVoided { txn: Some(v) }),
        );
        let h = history("A1", 7, &[placed, released]);
        assert_eq!(state(&h), Status::HoldReleased);
        assert_eq!(h.entries[1].detail, "hold released");
    }

    #[test]
    fn redelivered_events_change_nothing() {
        let (p, approved) = purchase();
        let (_, refunded) = refund("R1", &p, 2, 60, 3000, 3000);
        let once = history("P1", 1, &[approved.clone(), refunded.clone()]);
        let twice = history(
            "P1",
            1,
            &[refunded.clone(), approved.clone(), refunded, approved],
        );
        assert_eq!(once, twice);
    }

    #[test]
    fn steps_read_before_their_original_already_tell_its_state() {
        let (p, _) = purchase();
        let (_, voided) = void("V1", &p, 2, 30);
        let h = history("P1", 1, &[voided]);
        assert_eq!(state(&h), Status::Voided);
        assert_eq!(h.summary.merchant_id, MERCHANT);
        assert_eq!(h.summary.amount, Some(cny(5000)));
        assert_eq!(h.summary.trace, Some(trace(1)));
        assert_eq!(
            h.summary.occurred_at, None,
            "the decision itself was not read yet"
        );
    }

    #[test]
    fn a_reversal_before_its_original_is_kept_by_trace_and_joins_the_late_decline() {
        let named = pb::OriginalTransactionRef {
            terminal_id: TERMINAL.to_owned(),
            batch_no: 1,
            stan: 11,
            transaction_type: pb::TransactionType::Purchase as i32,
            amount: Some(cny(5000)),
            ..Default::default()
        };
        let ack = acknowledged(
            "T0000001:000001:000011",
            1,
            named,
            pb::ReversalOutcome::OriginalNotFound,
            1,
        );
        // Only the trace is known: the summary has no id and no status.
        let alone = build(
            &Subject {
                id: String::new(),
                trace: TraceKey::of(Some(&trace(11))),
            },
            std::slice::from_ref(&ack),
        )
        .expect("the acknowledgement names the trace");
        assert_eq!(state(&alone), Status::Unspecified);
        assert_eq!(alone.summary.trace, Some(trace(11)));
        assert_eq!(
            alone.entries[0].detail,
            "terminal reversal acknowledged: original not found"
        );

        // The original arrives late and is refused.
        let late = envelope(
            "transaction",
            "L1",
            1,
            5,
            Payload::AuthorizationDeclined(pb::AuthorizationDeclined {
                txn: Some(facts("L1", pb::TransactionType::Purchase, 11, 5000, "25")),
                source: pb::DeclineSource::Validation as i32,
                fraud_reasons: Vec::new(),
            }),
        );
        let h = history("L1", 11, &[late, ack]);
        assert_eq!(state(&h), Status::Declined);
        assert_eq!(
            h.entries
                .iter()
                .map(|e| e.event_type.as_str())
                .collect::<Vec<_>>(),
            ["ReversalAcknowledged", "AuthorizationDeclined"]
        );
    }

    #[test]
    fn other_transactions_events_are_not_part_of_the_history() {
        let (_, approved) = purchase();
        assert!(build(&subject("OTHER", 99), &[approved]).is_none());
    }

    #[test]
    fn the_status_rule_on_its_own() {
        let mut steps = Steps::default();
        let purchase = pb::TransactionType::Purchase as i32;
        let amount = cny(5000);
        let (s, refunded, refundable) = status(Decision::Unknown, &steps, purchase, Some(&amount));
        assert_eq!(s, Status::Unspecified);
        assert_eq!((refunded, refundable), (Some(cny(0)), Some(cny(0))));

        steps.record(&Effect::Refunded("R1".to_owned(), Some(cny(1000))));
        steps.record(&Effect::Refunded("R2".to_owned(), Some(cny(1500))));
        let (s, refunded, refundable) = status(Decision::Approved, &steps, purchase, Some(&amount));
        assert_eq!(s, Status::PartiallyRefunded);
        assert_eq!((refunded, refundable), (Some(cny(2500)), Some(cny(2500))));

        // A reversed refund no longer counts.
        steps.record(&Effect::Reversed {
            step: "R2".to_owned(),
            itself: false,
        });
        let (_, refunded, _) = status(Decision::Approved, &steps, purchase, Some(&amount));
        assert_eq!(refunded, Some(cny(1000)));

        // A balance inquiry has no amount, so no refund amounts either.
        let inquiry = pb::TransactionType::BalanceInquiry as i32;
        let (s, refunded, refundable) =
            status(Decision::Approved, &Steps::default(), inquiry, None);
        assert_eq!((s, refunded, refundable), (Status::Approved, None, None));

        // A declined transaction stays declined whatever names it.
        steps.record(&Effect::Reversed {
            step: "X".to_owned(),
            itself: true,
        });
        let (s, _, _) = status(Decision::Declined, &steps, purchase, Some(&amount));
        assert_eq!(s, Status::Declined);
    }
}
