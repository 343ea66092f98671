//! One event as one transaction sees it: the history entry it makes, what it does to the
//! transaction's state, and what it tells about the transaction's own facts.
//!
//! The same event reads differently from two sides: a `TransactionVoided` is the void's own
//! decision, and for the purchase it names as original it is the step that voided it.

use pos_events::{EventEnvelope, Payload};
use pos_proto::v1 as pb;

use crate::detail;
use crate::model::{Subject, TraceKey};

/// What an event does to the state of the transaction it is read for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    /// Nothing (a refusal, an acknowledgement, an undelivered approval).
    None,
    /// The transaction's own decision.
    Decided {
        /// Approved (money moved or a hold was placed, or an inquiry answered).
        approved: bool,
    },
    /// A reversal undid the transaction itself (`step` is its id) or one of its steps.
    Reversed {
        /// Id of what was reversed.
        step: String,
        /// True when the transaction itself was reversed.
        itself: bool,
    },
    /// A void (id) voided it.
    Voided(String),
    /// A refund (id) gave back `amount` of it.
    Refunded(String, Option<pb::Money>),
    /// A completion (id) captured its hold.
    Completed(String),
    /// A pre-auth void (id) released its hold.
    Released(String),
}

/// What an event tells about the transaction's own facts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Known<'a> {
    /// Its own decision's facts.
    Own(&'a pb::TransactionFacts),
    /// Its facts as another step recorded them (a reversal, an undelivered approval).
    Facts(&'a pb::TransactionFacts),
    /// A step's reference to it, with the step's merchant.
    Reference(&'a pb::OriginalTransactionRef, &'a str),
    /// Only its trace (an acknowledged reversal of a request the host never saw).
    Nothing,
}

/// An event read for one transaction.
#[derive(Debug, Clone)]
pub(crate) struct View<'a> {
    /// The history entry.
    pub entry: pb::TransactionHistoryEntry,
    /// What it does to the state.
    pub effect: Effect,
    /// What it tells about the transaction.
    pub known: Known<'a>,
    /// The event's position within its own aggregate.
    pub sequence: u64,
}

impl View<'_> {
    /// Oldest first; at the same instant the transaction's own decision first, then by event
    /// id (UUIDv7, time-ordered).
    pub fn order_key(&self) -> (i64, i32, bool, &str) {
        let at = self.entry.occurred_at.unwrap_or_default();
        let own = matches!(self.effect, Effect::Decided { .. });
        (at.seconds, at.nanos, !own, self.entry.event_id.as_str())
    }
}

/// Name of the payload as histories show it ("AuthorizationApproved", ...); `None` for events
/// that are not part of a transaction's history (audit records, other topics).
pub fn event_type(payload: &Payload) -> Option<&'static str> {
    Some(match payload {
        Payload::AuthorizationApproved(_) => "AuthorizationApproved",
        Payload::AuthorizationDeclined(_) => "AuthorizationDeclined",
        Payload::BalanceInquired(_) => "BalanceInquired",
        Payload::PreAuthHoldPlaced(_) => "PreAuthHoldPlaced",
        Payload::PreAuthCompleted(_) => "PreAuthCompleted",
        Payload::PreAuthVoided(_) => "PreAuthVoided",
        Payload::TransactionReversed(_) => "TransactionReversed",
        Payload::ReversalAcknowledged(_) => "ReversalAcknowledged",
        Payload::ApprovalUndelivered(_) => "ApprovalUndelivered",
        Payload::TransactionVoided(_) => "TransactionVoided",
        Payload::VoidDeclined(_) => "VoidDeclined",
        Payload::TransactionRefunded(_) => "TransactionRefunded",
        Payload::RefundDeclined(_) => "RefundDeclined",
        _ => return None,
    })
}

/// The facts of an event that is a transaction's own decision (authorization's decisions,
/// voids and refunds with their refusals), whose `transaction_id` is that transaction.
pub fn own_facts(payload: &Payload) -> Option<&pb::TransactionFacts> {
    match payload {
        Payload::AuthorizationApproved(e) => e.txn.as_ref(),
        Payload::AuthorizationDeclined(e) => e.txn.as_ref(),
        Payload::BalanceInquired(e) => e.txn.as_ref(),
        Payload::PreAuthHoldPlaced(e) => e.txn.as_ref(),
        Payload::PreAuthCompleted(e) => e.txn.as_ref(),
        Payload::PreAuthVoided(e) => e.txn.as_ref(),
        Payload::TransactionVoided(e) => e.txn.as_ref(),
        Payload::VoidDeclined(e) => e.txn.as_ref(),
        Payload::TransactionRefunded(e) => e.txn.as_ref(),
        Payload::RefundDeclined(e) => e.txn.as_ref(),
        _ => None,
    }
    .filter(|facts| !facts.transaction_id.is_empty())
}

/// Reads `envelope` for `subject`; `None` when the event is not part of its history.
pub(crate) fn view<'a>(subject: &Subject, envelope: &'a EventEnvelope) -> Option<View<'a>> {
    let payload = envelope.payload.as_ref()?;
    let event_type = event_type(payload)?;
    let blank = pb::TransactionHistoryEntry {
        occurred_at: envelope.occurred_at,
        event_type: event_type.to_owned(),
        event_id: envelope.event_id.clone(),
        ..Default::default()
    };
    let (entry, effect, known) = match own_facts(payload) {
        Some(facts) => decision(subject, payload, facts, blank)?,
        None => step(subject, payload, &envelope.aggregate_id, blank)?,
    };
    Some(View {
        entry,
        effect,
        known,
        sequence: envelope.sequence,
    })
}

type Read<'a> = (pb::TransactionHistoryEntry, Effect, Known<'a>);

/// A decision event: the subject's own, or a step (void, refund, completion, ...) naming the
/// subject as its original.
fn decision<'a>(
    subject: &Subject,
    payload: &'a Payload,
    facts: &'a pb::TransactionFacts,
    blank: pb::TransactionHistoryEntry,
) -> Option<Read<'a>> {
    let own = !subject.id.is_empty() && facts.transaction_id == subject.id;
    if !own && !subject.is_original(facts.original.as_ref()) {
        return None;
    }
    let text = decision_detail(payload, facts);
    let entry = pb::TransactionHistoryEntry {
        transaction_type: facts.transaction_type,
        amount: facts.amount.clone(),
        response_code: facts.response_code.clone(),
        response_message: facts.response_message.clone(),
        rrn: facts.rrn.clone(),
        approval_code: facts.approval_code.clone(),
        step_id: facts.transaction_id.clone(),
        trace: facts.trace.clone(),
        operator_no: facts.operator_no.clone(),
        detail: if own {
            detail::with_original(text, facts.original.as_ref())
        } else {
            text
        },
        ..blank
    };
    if own {
        let approved = !matches!(
            payload,
            Payload::AuthorizationDeclined(_)
                | Payload::VoidDeclined(_)
                | Payload::RefundDeclined(_)
        );
        return Some((entry, Effect::Decided { approved }, Known::Own(facts)));
    }
    let by = facts.transaction_id.clone();
    let effect = match payload {
        Payload::TransactionVoided(_) => Effect::Voided(by),
        Payload::TransactionRefunded(_) => Effect::Refunded(by, facts.amount.clone()),
        Payload::PreAuthCompleted(_) => Effect::Completed(by),
        Payload::PreAuthVoided(_) => Effect::Released(by),
        _ => Effect::None,
    };
    let original = facts.original.as_ref()?;
    Some((
        entry,
        effect,
        Known::Reference(original, &facts.merchant_id),
    ))
}

fn decision_detail(payload: &Payload, facts: &pb::TransactionFacts) -> String {
    match payload {
        Payload::AuthorizationApproved(e) => detail::approved(facts, &e.fraud_reasons),
        Payload::AuthorizationDeclined(e) => detail::declined(facts, e.source, &e.fraud_reasons),
        Payload::PreAuthHoldPlaced(e) => detail::approved(facts, &e.fraud_reasons),
        Payload::PreAuthCompleted(e) => detail::completed(facts, e.hold_amount.as_ref()),
        Payload::PreAuthVoided(_) => "hold released".to_owned(),
        Payload::TransactionVoided(e) => detail::voided(&e.authorized_by_operator_no),
        Payload::VoidDeclined(e) => detail::refused("void", &e.reason, facts),
        Payload::TransactionRefunded(e) => detail::refunded(e),
        Payload::RefundDeclined(e) => detail::refused("refund", &e.reason, facts),
        _ => detail::approved(facts, &[]),
    }
}

/// A step of another aggregate that names the subject: a reversal, an acknowledgement, an
/// undelivered approval.
fn step<'a>(
    subject: &Subject,
    payload: &'a Payload,
    aggregate_id: &str,
    blank: pb::TransactionHistoryEntry,
) -> Option<Read<'a>> {
    match payload {
        Payload::TransactionReversed(e) => reversal(subject, e, blank),
        Payload::ReversalAcknowledged(e) => {
            let original = e.original.as_ref()?;
            if !subject.is_original(Some(original)) {
                return None;
            }
            let entry = pb::TransactionHistoryEntry {
                transaction_type: pb::TransactionType::Reversal as i32,
                amount: original.amount.clone(),
                response_code: "00".to_owned(),
                response_message: "nothing to reverse".to_owned(),
                step_id: e.reversal_id.clone(),
                trace: terminal_trace(e.initiator, TraceKey::of_original(original)),
                detail: detail::acknowledged(e),
                ..blank
            };
            Some((
                entry,
                Effect::None,
                Known::Reference(original, &e.merchant_id),
            ))
        }
        Payload::ApprovalUndelivered(e) => {
            let facts = e.txn.as_ref()?;
            if !subject.is_named_by(
                &facts.transaction_id,
                TraceKey::of(facts.trace.as_ref()).as_ref(),
            ) {
                return None;
            }
            let entry = pb::TransactionHistoryEntry {
                transaction_type: facts.transaction_type,
                amount: facts.amount.clone(),
                response_code: facts.response_code.clone(),
                response_message: facts.response_message.clone(),
                rrn: facts.rrn.clone(),
                approval_code: facts.approval_code.clone(),
                step_id: aggregate_id.to_owned(),
                detail: detail::undelivered(&e.reason),
                ..blank
            };
            Some((entry, Effect::None, Known::Facts(facts)))
        }
        _ => None,
    }
}

fn reversal<'a>(
    subject: &Subject,
    event: &'a pb::TransactionReversed,
    blank: pb::TransactionHistoryEntry,
) -> Option<Read<'a>> {
    let reversed = event.original.as_ref()?;
    let reversed_trace = TraceKey::of(reversed.trace.as_ref());
    let itself = subject.is_named_by(&reversed.transaction_id, reversed_trace.as_ref());
    if !itself && !subject.is_original(reversed.original.as_ref()) {
        return None;
    }
    let entry = pb::TransactionHistoryEntry {
        transaction_type: pb::TransactionType::Reversal as i32,
        amount: event.amount.clone().or_else(|| reversed.amount.clone()),
        response_code: "00".to_owned(),
        response_message: "reversed".to_owned(),
        step_id: event.reversal_id.clone(),
        trace: terminal_trace(event.initiator, reversed_trace),
        detail: if itself {
            detail::reversed(event)
        } else {
            detail::step_reversed(event)
        },
        ..blank
    };
    let effect = Effect::Reversed {
        step: if itself && reversed.transaction_id.is_empty() {
            subject.id.clone()
        } else {
            reversed.transaction_id.clone()
        },
        itself,
    };
    let known = match (itself, reversed.original.as_ref()) {
        (true, _) => Known::Facts(reversed),
        (false, Some(original)) => Known::Reference(original, &reversed.merchant_id),
        (false, None) => Known::Nothing,
    };
    Some((entry, effect, known))
}

/// A terminal's reversal (0400) carries the original's trace; host and operator reversals
/// have none.
fn terminal_trace(initiator: i32, trace: Option<TraceKey>) -> Option<pb::TerminalTraceRef> {
    (initiator == pb::ReversalInitiator::Terminal as i32)
        .then_some(trace)
        .flatten()
        .map(|t| t.to_proto())
}
