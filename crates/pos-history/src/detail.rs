//! The words of a history: amounts as people read them ("30.00"), type and outcome names, and
//! the detail line of each kind of step ("refunded 30.00 of 50.00", "host reversal: approval
//! undelivered"). Pure functions, so the texts are tested without Redis.

use pos_domain::{Currency, Money};
use pos_proto::v1 as pb;

use crate::model::TraceKey;

/// Exact money of a proto amount; `None` when the currency is unknown to the platform.
pub(crate) fn money(amount: &pb::Money) -> Option<Money> {
    let currency = Currency::parse(&amount.currency).ok()?;
    Some(Money::from_minor(amount.minor_units, currency))
}

/// The proto form of `money`; `None` if it does not fit in minor units.
pub(crate) fn proto(money: Money) -> Option<pb::Money> {
    Some(pb::Money {
        minor_units: money.to_minor().ok()?,
        currency: money.currency().code().to_owned(),
    })
}

/// The amount in major units with the currency's minor digits, without the currency:
/// "30.00" for 3000 fen, "500" for 500 yen.
pub fn major(amount: &pb::Money) -> String {
    match money(amount) {
        Some(m) => {
            let digits = m.currency().minor_units() as usize;
            format!("{:.*}", digits, m.amount())
        }
        // Unknown currency: show the minor units as they are rather than guess the digits.
        None => amount.minor_units.to_string(),
    }
}

/// "PURCHASE", "PURCHASE_VOID", ...: the proto enum name without its prefix.
pub fn type_name(transaction_type: i32) -> &'static str {
    pb::TransactionType::try_from(transaction_type).map_or("UNKNOWN", |t| {
        t.as_str_name()
            .strip_prefix("TRANSACTION_TYPE_")
            .unwrap_or("UNKNOWN")
    })
}

/// "APPROVED", "PARTIALLY_REFUNDED", ...: the proto enum name without its prefix.
pub fn status_name(status: i32) -> &'static str {
    pb::TransactionStatus::try_from(status).map_or("UNKNOWN", |s| {
        s.as_str_name()
            .strip_prefix("TRANSACTION_STATUS_")
            .unwrap_or("UNKNOWN")
    })
}

/// "PURCHASE 12345678:000001:000042" (or "… rrn 123456789012" when the trace is unknown).
pub(crate) fn original_text(original: &pb::OriginalTransactionRef) -> String {
    let kind = type_name(original.transaction_type);
    match TraceKey::of_original(original) {
        Some(trace) => format!("{kind} {trace}"),
        None if !original.rrn.is_empty() => format!("{kind} rrn {}", original.rrn),
        None if !original.transaction_id.is_empty() => {
            format!("{kind} {}", original.transaction_id)
        }
        None => kind.to_owned(),
    }
}

/// The step's reference to its original, appended to the step's own entry.
pub(crate) fn with_original(text: String, original: Option<&pb::OriginalTransactionRef>) -> String {
    match original {
        Some(o) => format!("{text}; original {}", original_text(o)),
        None => text,
    }
}

fn fraud_codes(reasons: &[pb::FraudReason]) -> String {
    reasons
        .iter()
        .map(|r| r.code.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// An approval (purchase, balance inquiry, pre-authorization): its RRN, and the fraud
/// reasons a REVIEW decision recorded.
pub(crate) fn approved(facts: &pb::TransactionFacts, reasons: &[pb::FraudReason]) -> String {
    let mut text = match pb::TransactionType::try_from(facts.transaction_type) {
        Ok(pb::TransactionType::PreAuth) => "hold placed".to_owned(),
        Ok(pb::TransactionType::BalanceInquiry) => "balance inquiry answered".to_owned(),
        _ => "approved".to_owned(),
    };
    if !facts.rrn.is_empty() {
        text = if text == "approved" {
            format!("rrn {}", facts.rrn)
        } else {
            format!("{text}, rrn {}", facts.rrn)
        };
    }
    if !reasons.is_empty() {
        text.push_str(&format!("; fraud review: {}", fraud_codes(reasons)));
    }
    text
}

/// A decline on the authorization path: who declined and why.
pub(crate) fn declined(
    facts: &pb::TransactionFacts,
    source: i32,
    reasons: &[pb::FraudReason],
) -> String {
    let by = match pb::DeclineSource::try_from(source) {
        Ok(pb::DeclineSource::Validation) => "declined by validation",
        Ok(pb::DeclineSource::Fraud) => "declined by fraud check",
        Ok(pb::DeclineSource::Issuer) => "declined by the issuer",
        Ok(pb::DeclineSource::System) => "declined: system failure",
        _ => "declined",
    };
    let mut text = if facts.response_message.is_empty() {
        by.to_owned()
    } else {
        format!("{by}: {}", facts.response_message)
    };
    if !reasons.is_empty() {
        text.push_str(&format!(" ({})", fraud_codes(reasons)));
    }
    text
}

/// A completion: how much of the hold was captured.
pub(crate) fn completed(facts: &pb::TransactionFacts, hold: Option<&pb::Money>) -> String {
    let captured = facts.amount.as_ref().map(major);
    match (captured, hold) {
        (Some(captured), Some(hold)) => format!("captured {captured} of hold {}", major(hold)),
        (Some(captured), None) => format!("captured {captured}"),
        _ => "hold captured".to_owned(),
    }
}

/// A void as its original sees it.
pub(crate) fn voided(authorized_by: &str) -> String {
    if authorized_by.is_empty() {
        "voided".to_owned()
    } else {
        format!("voided, authorized by operator {authorized_by}")
    }
}

/// A refund: "refunded 30.00 of 50.00" (the running total of refunds of the original, and the
/// original amount).
pub(crate) fn refunded(event: &pb::TransactionRefunded) -> String {
    let txn = event.txn.as_ref();
    let total = event
        .refunded_total
        .as_ref()
        .or_else(|| txn.and_then(|t| t.amount.as_ref()));
    let original_amount = txn
        .and_then(|t| t.original.as_ref())
        .and_then(|o| o.amount.clone())
        .or_else(|| {
            // The original amount is what was refunded plus what still may be.
            let total = event.refunded_total.as_ref()?;
            let remaining = event.remaining_refundable.as_ref()?;
            let sum = money(total)?.checked_add(money(remaining)?).ok()?;
            proto(sum)
        });
    match (total, original_amount) {
        (Some(total), Some(of)) => format!("refunded {} of {}", major(total), major(&of)),
        (Some(total), None) => format!("refunded {}", major(total)),
        _ => "refunded".to_owned(),
    }
}

/// A refused void or refund: "void refused: batch already settled: use refund".
pub(crate) fn refused(what: &str, reason: &str, facts: &pb::TransactionFacts) -> String {
    let why = if reason.is_empty() {
        facts.response_message.as_str()
    } else {
        reason
    };
    if why.is_empty() {
        format!("{what} refused ({})", facts.response_code)
    } else {
        format!("{what} refused: {why}")
    }
}

/// A reversal that undid the transaction: who reversed it and why.
pub(crate) fn reversed(event: &pb::TransactionReversed) -> String {
    let reason = event.reason_code.as_str();
    match pb::ReversalInitiator::try_from(event.initiator) {
        Ok(pb::ReversalInitiator::Host) => match reason {
            "UNDELIVERED" | "APPROVAL_UNDELIVERED" => {
                "host reversal: approval undelivered".to_owned()
            }
            "" => "host reversal".to_owned(),
            other => format!("host reversal: {other}"),
        },
        Ok(pb::ReversalInitiator::Operator) => match reason {
            "" | "OPERATOR" => "operator reversal".to_owned(),
            other => format!("operator reversal: {other}"),
        },
        Ok(pb::ReversalInitiator::Terminal) => match reason {
            "" => "terminal reversal".to_owned(),
            code => format!("terminal reversal, reason {code}"),
        },
        _ if reason.is_empty() => "reversal".to_owned(),
        _ => format!("reversal, reason {reason}"),
    }
}

/// A reversal of one of this transaction's steps (a void, a completion, a refund).
pub(crate) fn step_reversed(event: &pb::TransactionReversed) -> String {
    let step = event.original.as_ref().map_or_else(
        || "step".to_owned(),
        |f| match TraceKey::of(f.trace.as_ref()) {
            Some(trace) => format!("{} {trace}", type_name(f.transaction_type)),
            None => type_name(f.transaction_type).to_owned(),
        },
    );
    format!("{step} reversed: {}", reversed(event))
}

/// A reversal that changed nothing, and why.
pub(crate) fn acknowledged(event: &pb::ReversalAcknowledged) -> String {
    let why = match pb::ReversalOutcome::try_from(event.outcome) {
        Ok(pb::ReversalOutcome::OriginalNotFound) => "original not found",
        Ok(pb::ReversalOutcome::AlreadyReversed) => "already reversed",
        Ok(pb::ReversalOutcome::OriginalDeclined) => "original declined",
        Ok(pb::ReversalOutcome::Reversed) => "reversed",
        _ => "nothing to undo",
    };
    let who = match pb::ReversalInitiator::try_from(event.initiator) {
        Ok(pb::ReversalInitiator::Host) => "host reversal",
        Ok(pb::ReversalInitiator::Operator) => "operator reversal",
        Ok(pb::ReversalInitiator::Terminal) => "terminal reversal",
        _ => "reversal",
    };
    let repeat = if event.repeat { " (repeat)" } else { "" };
    format!("{who} acknowledged: {why}{repeat}")
}

/// An approval the gateway could not hand to its terminal.
pub(crate) fn undelivered(reason: &str) -> String {
    if reason.is_empty() {
        "approval undelivered".to_owned()
    } else {
        format!("approval undelivered: {reason}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cny(minor: i64) -> pb::Money {
        pb::Money {
            minor_units: minor,
            currency: "CNY".to_owned(),
        }
    }

    #[test]
    fn amounts_read_in_major_units() {
        assert_eq!(major(&cny(3000)), "30.00");
        assert_eq!(major(&cny(5)), "0.05");
        assert_eq!(
            major(&pb::Money {
                minor_units: 500,
                currency: "JPY".to_owned()
            }),
            "500"
        );
    }

    #[test]
    fn names_drop_the_enum_prefix() {
        assert_eq!(
            type_name(pb::TransactionType::PurchaseVoid as i32),
            "PURCHASE_VOID"
        );
        assert_eq!(
            status_name(pb::TransactionStatus::PartiallyRefunded as i32),
            "PARTIALLY_REFUNDED"
        );
        assert_eq!(type_name(999), "UNKNOWN");
    }

    #[test]
    fn a_refund_says_how_much_of_what() {
        let event = pb::TransactionRefunded {
            txn: Some(pb::TransactionFacts {
                amount: Some(cny(3000)),
                original: Some(pb::OriginalTransactionRef {
                    amount: Some(cny(5000)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            refunded_total: Some(cny(3000)),
            remaining_refundable: Some(cny(2000)),
            partial: true,
            authorized_by_operator_no: "00".to_owned(),
        };
        assert_eq!(refunded(&event), "refunded 30.00 of 50.00");

        let mut without_original = event.clone();
        if let Some(txn) = without_original.txn.as_mut() {
            txn.original = None;
        }
        assert_eq!(refunded(&without_original), "refunded 30.00 of 50.00");
    }

    #[test]
    fn reversals_name_who_and_why() {
        let mut event = pb::TransactionReversed {
            reason_code: "UNDELIVERED".to_owned(),
            initiator: pb::ReversalInitiator::Host as i32,
            ..Default::default()
        };
        assert_eq!(reversed(&event), "host reversal: approval undelivered");
        event.initiator = pb::ReversalInitiator::Terminal as i32;
        event.reason_code = "98".to_owned();
        assert_eq!(reversed(&event), "terminal reversal, reason 98");
        event.initiator = pb::ReversalInitiator::Operator as i32;
        event.reason_code = "OPERATOR".to_owned();
        assert_eq!(reversed(&event), "operator reversal");
    }

    #[test]
    fn acknowledgements_say_why_nothing_changed() {
        let event = pb::ReversalAcknowledged {
            outcome: pb::ReversalOutcome::AlreadyReversed as i32,
            initiator: pb::ReversalInitiator::Terminal as i32,
            repeat: true,
            ..Default::default()
        };
        assert_eq!(
            acknowledged(&event),
            "terminal reversal acknowledged: already reversed (repeat)"
        );
    }

    #[test]
    fn originals_are_named_by_type_and_trace() {
        let original = pb::OriginalTransactionRef {
            terminal_id: "T0000001".to_owned(),
            batch_no: 1,
            stan: 42,
            transaction_type: pb::TransactionType::Purchase as i32,
            ..Default::default()
        };
        assert_eq!(original_text(&original), "PURCHASE T0000001:000001:000042");
        assert_eq!(
            with_original("voided".to_owned(), Some(&original)),
            "voided; original PURCHASE T0000001:000001:000042"
        );
    }

    #[test]
    fn declines_say_who_declined() {
        let facts = pb::TransactionFacts {
            response_code: "51".to_owned(),
            response_message: "insufficient funds".to_owned(),
            ..Default::default()
        };
        assert_eq!(
            declined(&facts, pb::DeclineSource::Issuer as i32, &[]),
            "declined by the issuer: insufficient funds"
        );
    }
}
