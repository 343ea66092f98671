//! Events as the services write them, for the unit tests: a purchase at terminal T0000001,
//! and the steps that follow it.

use pos_events::{EventEnvelope, Payload};
use pos_proto::v1 as pb;

pub const TERMINAL: &str = "T0000001";
pub const MERCHANT: &str = "898310048990001";
pub const DATE: &str = "2026-11-28";

pub fn cny(minor: i64) -> pb::Money {
    pb::Money {
        minor_units: minor,
        currency: "CNY".to_owned(),
    }
}

pub fn trace(stan: u32) -> pb::TerminalTraceRef {
    pb::TerminalTraceRef {
        terminal_id: TERMINAL.to_owned(),
        batch_no: 1,
        stan,
    }
}

/// `second` seconds into the business day (2026-11-28 10:00:00 +08:00 is 1795831200).
pub fn at(second: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: 1_795_831_200 + second,
        nanos: 0,
    }
}

pub fn envelope(
    kind: &str,
    id: &str,
    sequence: u64,
    second: i64,
    payload: Payload,
) -> EventEnvelope {
    EventEnvelope {
        event_id: format!("{kind}-{id}-{sequence}"),
        aggregate_type: kind.to_owned(),
        aggregate_id: id.to_owned(),
        sequence,
        occurred_at: Some(at(second)),
        producer: "test".to_owned(),
        payload: Some(payload),
        ..Default::default()
    }
}

pub fn facts(
    id: &str,
    kind: pb::TransactionType,
    stan: u32,
    minor: i64,
    code: &str,
) -> pb::TransactionFacts {
    let approved = code == "00";
    pb::TransactionFacts {
        transaction_id: id.to_owned(),
        transaction_type: kind as i32,
        merchant_id: MERCHANT.to_owned(),
        trace: Some(trace(stan)),
        operator_no: "01".to_owned(),
        amount: Some(cny(minor)),
        card: Some(pb::MaskedCard {
            masked_pan: "622202****1234".to_owned(),
            card_token: "ab12".to_owned(),
            bin: "622202".to_owned(),
            last4: "1234".to_owned(),
        }),
        entry_mode: pb::CardEntryMode::Chip as i32,
        rrn: format!("{:012}", 100_000_000_000u64 + u64::from(stan)),
        approval_code: if approved {
            "654321".to_owned()
        } else {
            String::new()
        },
        response_code: code.to_owned(),
        response_message: if approved { "approved" } else { "declined" }.to_owned(),
        business_date: DATE.to_owned(),
        ..Default::default()
    }
}

pub fn original_of(f: &pb::TransactionFacts) -> pb::OriginalTransactionRef {
    let trace = f.trace.clone().unwrap_or_default();
    pb::OriginalTransactionRef {
        transaction_id: f.transaction_id.clone(),
        terminal_id: trace.terminal_id,
        batch_no: trace.batch_no,
        stan: trace.stan,
        rrn: f.rrn.clone(),
        approval_code: f.approval_code.clone(),
        business_date: f.business_date.clone(),
        transaction_type: f.transaction_type,
        amount: f.amount.clone(),
    }
}

/// A purchase of 50.00 approved at STAN 1, second 1.
pub fn purchase() -> (pb::TransactionFacts, EventEnvelope) {
    let f = facts("P1", pb::TransactionType::Purchase, 1, 5000, "00");
    let e = envelope(
        "transaction",
        "P1",
        1,
        1,
        Payload::AuthorizationApproved(pb::AuthorizationApproved {
            txn: Some(f.clone()),
            fraud_reasons: Vec::new(),
        }),
    );
    (f, e)
}

/// A refund `id` of `minor` of `original` at `stan`, with the running total.
pub fn refund(
    id: &str,
    original: &pb::TransactionFacts,
    stan: u32,
    second: i64,
    minor: i64,
    total: i64,
) -> (pb::TransactionFacts, EventEnvelope) {
    let mut f = facts(id, pb::TransactionType::Refund, stan, minor, "00");
    f.original = Some(original_of(original));
    let original_minor = original.amount.as_ref().map_or(0, |a| a.minor_units);
    let e = envelope(
        "refund",
        id,
        1,
        second,
        Payload::TransactionRefunded(pb::TransactionRefunded {
            txn: Some(f.clone()),
            refunded_total: Some(cny(total)),
            remaining_refundable: Some(cny(original_minor - total)),
            partial: minor < original_minor,
            authorized_by_operator_no: "00".to_owned(),
        }),
    );
    (f, e)
}

/// A void `id` of `original` at `stan`.
pub fn void(
    id: &str,
    original: &pb::TransactionFacts,
    stan: u32,
    second: i64,
) -> (pb::TransactionFacts, EventEnvelope) {
    let minor = original.amount.as_ref().map_or(0, |a| a.minor_units);
    let mut f = facts(id, pb::TransactionType::PurchaseVoid, stan, minor, "00");
    f.original = Some(original_of(original));
    let e = envelope(
        "void",
        id,
        1,
        second,
        Payload::TransactionVoided(pb::TransactionVoided {
            txn: Some(f.clone()),
            authorized_by_operator_no: "00".to_owned(),
        }),
    );
    (f, e)
}

/// A reversal `id` of `reversed`.
pub fn reversal(
    id: &str,
    reversed: &pb::TransactionFacts,
    initiator: pb::ReversalInitiator,
    reason: &str,
    second: i64,
) -> EventEnvelope {
    envelope(
        "reversal",
        id,
        1,
        second,
        Payload::TransactionReversed(pb::TransactionReversed {
            reversal_id: id.to_owned(),
            original: Some(reversed.clone()),
            reason_code: reason.to_owned(),
            initiator: initiator as i32,
            amount: reversed.amount.clone(),
            issuer_reference: "ISS-1".to_owned(),
            business_date: DATE.to_owned(),
        }),
    )
}

/// An acknowledged reversal of what `original` names.
pub fn acknowledged(
    id: &str,
    sequence: u64,
    original: pb::OriginalTransactionRef,
    outcome: pb::ReversalOutcome,
    second: i64,
) -> EventEnvelope {
    envelope(
        "reversal",
        id,
        sequence,
        second,
        Payload::ReversalAcknowledged(pb::ReversalAcknowledged {
            reversal_id: id.to_owned(),
            original: Some(original),
            merchant_id: MERCHANT.to_owned(),
            reason_code: "98".to_owned(),
            initiator: pb::ReversalInitiator::Terminal as i32,
            outcome: outcome as i32,
            repeat: sequence > 1,
        }),
    )
}
