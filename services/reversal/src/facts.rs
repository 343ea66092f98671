//! Building the events' facts and the answers from records, and back: one place for the
//! shapes, so that a live answer and an answer rebuilt from its event are the same.

use pos_facts::txn::{TxnRecord, kind_type};
use pos_proto::v1 as pb;

/// The proto amount of a record (none for a balance inquiry).
pub fn record_amount(record: &TxnRecord) -> Option<pb::Money> {
    record.amount_minor.map(|minor_units| pb::Money {
        minor_units,
        currency: record.currency.clone(),
    })
}

/// The masked card of a record (never more than BIN + last four, and the keyed token).
pub fn record_card(record: &TxnRecord) -> Option<pb::MaskedCard> {
    if record.masked_pan.is_empty() {
        return None;
    }
    let digits: Vec<char> = record
        .masked_pan
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let bin: String = record.masked_pan.chars().take(6).collect();
    let last4: String = digits[digits.len().saturating_sub(4)..].iter().collect();
    Some(pb::MaskedCard {
        masked_pan: record.masked_pan.clone(),
        card_token: record.card_token.clone(),
        bin,
        last4,
    })
}

/// How a later step names its original.
pub fn original_ref(record: &TxnRecord) -> pb::OriginalTransactionRef {
    pb::OriginalTransactionRef {
        transaction_id: record.transaction_id.clone(),
        terminal_id: record.terminal_id.clone(),
        batch_no: record.batch_no,
        stan: record.stan,
        rrn: record.rrn.clone(),
        approval_code: record.approval_code.clone(),
        business_date: record.business_date.clone(),
        transaction_type: kind_type(&record.kind) as i32,
        amount: record_amount(record),
    }
}

/// The facts of the original as it stood (for `TransactionReversed`).
pub fn original_facts(record: &TxnRecord) -> pb::TransactionFacts {
    pb::TransactionFacts {
        transaction_id: record.transaction_id.clone(),
        transaction_type: kind_type(&record.kind) as i32,
        merchant_id: record.merchant_id.clone(),
        trace: Some(pb::TerminalTraceRef {
            terminal_id: record.terminal_id.clone(),
            batch_no: record.batch_no,
            stan: record.stan,
        }),
        operator_no: record.operator_no.clone(),
        amount: record_amount(record),
        card: record_card(record),
        rrn: record.rrn.clone(),
        approval_code: record.approval_code.clone(),
        response_code: record.response_code.clone(),
        issuer_hold_id: record.hold_id.clone(),
        business_date: record.business_date.clone(),
        issuer_reference: record.issuer_reference.clone(),
        // A completion's or pre-auth void's pre-authorization, so that its hold can be found.
        original: (!record.original_transaction_id.is_empty()).then(|| {
            pb::OriginalTransactionRef {
                transaction_id: record.original_transaction_id.clone(),
                transaction_type: pb::TransactionType::PreAuth as i32,
                ..pb::OriginalTransactionRef::default()
            }
        }),
        ..pb::TransactionFacts::default()
    }
}

/// The answer to a void from its event's facts.
pub fn void_answer(facts: &pb::TransactionFacts) -> pb::ReversalVoidResponse {
    let approved = facts.response_code == "00";
    pb::ReversalVoidResponse {
        response_code: facts.response_code.clone(),
        response_message: facts.response_message.clone(),
        void_id: facts.transaction_id.clone(),
        transaction_type: facts.transaction_type,
        original: facts.original.clone(),
        amount: if approved { facts.amount.clone() } else { None },
        rrn: facts.rrn.clone(),
        approval_code: facts.approval_code.clone(),
        card: facts.card.clone(),
        business_date: facts.business_date.clone(),
        decided_at: None,
    }
}

/// The answer to a refund from its event's facts and totals.
pub fn refund_answer(
    facts: &pb::TransactionFacts,
    totals: Option<(&pb::Money, &pb::Money, bool)>,
) -> pb::ReversalRefundResponse {
    let approved = facts.response_code == "00";
    pb::ReversalRefundResponse {
        response_code: facts.response_code.clone(),
        response_message: facts.response_message.clone(),
        refund_id: facts.transaction_id.clone(),
        original: facts.original.clone(),
        amount: if approved { facts.amount.clone() } else { None },
        refunded_total: totals.map(|(total, _, _)| total.clone()),
        remaining_refundable: totals.map(|(_, remaining, _)| remaining.clone()),
        partial: totals.is_some_and(|(_, _, partial)| partial),
        rrn: facts.rrn.clone(),
        approval_code: facts.approval_code.clone(),
        card: facts.card.clone(),
        business_date: facts.business_date.clone(),
        decided_at: None,
    }
}

/// A fresh retrieval reference number for a step the issuer gives none (12 digits).
pub fn new_rrn() -> String {
    let random = u64::from_be_bytes(
        uuid::Uuid::new_v4().as_bytes()[..8]
            .try_into()
            .unwrap_or([0; 8]),
    );
    format!("{:012}", random % 1_000_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_becomes_its_masked_card_and_original_reference() {
        let record = TxnRecord {
            transaction_id: "t1".to_owned(),
            kind: "purchase".to_owned(),
            terminal_id: "T0000001".to_owned(),
            batch_no: 2,
            stan: 9,
            amount_minor: Some(5_000),
            currency: "CNY".to_owned(),
            masked_pan: "622202******3446".to_owned(),
            card_token: "tok".to_owned(),
            rrn: "123456789012".to_owned(),
            ..TxnRecord::default()
        };
        let card = record_card(&record).unwrap();
        assert_eq!(card.bin, "622202");
        assert_eq!(card.last4, "3446");
        let original = original_ref(&record);
        assert_eq!(
            original.transaction_type,
            pb::TransactionType::Purchase as i32
        );
        assert_eq!(original.amount.unwrap().minor_units, 5_000);
        assert_eq!((original.batch_no, original.stan), (2, 9));
        let rrn = new_rrn();
        assert_eq!(rrn.len(), 12);
        assert!(rrn.chars().all(|c| c.is_ascii_digit()));
    }
}
