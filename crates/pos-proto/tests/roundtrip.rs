//! Round-trip tests of the generated `pos.v1` types: an event envelope with a transaction
//! payload, a terminal message with a purchase, and the descriptor set that reflection serves.

use pos_proto::v1::{
    AuthorizationApproved, CardData, CardEntryMode, CardFundingType, EventEnvelope, FraudDecision,
    FraudPolicy, MaskedCard, Money, PurchaseRequest, TerminalMessage, TerminalTraceRef,
    TransactionFacts, TransactionType, event_envelope, terminal_message,
};
use prost::Message;

fn cny(minor_units: i64) -> Money {
    Money {
        minor_units,
        currency: "CNY".to_owned(),
    }
}

fn masked_card() -> MaskedCard {
    MaskedCard {
        masked_pan: "622202****1234".to_owned(),
        card_token: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".to_owned(),
        bin: "622202".to_owned(),
        last4: "1234".to_owned(),
    }
}

fn approved_envelope() -> EventEnvelope {
    let facts = TransactionFacts {
        transaction_id: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".to_owned(),
        transaction_type: TransactionType::Purchase as i32,
        merchant_id: "898310058120001".to_owned(),
        trace: Some(TerminalTraceRef {
            terminal_id: "10000001".to_owned(),
            batch_no: 1,
            stan: 42,
        }),
        operator_no: "01".to_owned(),
        amount: Some(cny(5000)),
        card: Some(masked_card()),
        entry_mode: CardEntryMode::Chip as i32,
        card_funding: CardFundingType::Debit as i32,
        rrn: "123456789012".to_owned(),
        approval_code: "A1B2C3".to_owned(),
        response_code: "00".to_owned(),
        response_message: "Approved".to_owned(),
        fraud_decision: FraudDecision::Approve as i32,
        fraud_policy: FraudPolicy::Checked as i32,
        fraud_score: 12,
        business_date: "2025-01-31".to_owned(),
        local_datetime: "2025-01-31T14:05:09".to_owned(),
        mcc: "5411".to_owned(),
        ..Default::default()
    };
    EventEnvelope {
        event_id: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a60".to_owned(),
        aggregate_type: "transaction".to_owned(),
        aggregate_id: facts.transaction_id.clone(),
        sequence: 1,
        occurred_at: Some(prost_types::Timestamp {
            seconds: 1_738_303_509,
            nanos: 0,
        }),
        causation_id: "req-10000001-000001-000042".to_owned(),
        correlation_id: facts.transaction_id.clone(),
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
        tracestate: String::new(),
        producer: "authorization".to_owned(),
        payload: Some(event_envelope::Payload::AuthorizationApproved(
            AuthorizationApproved {
                txn: Some(facts),
                fraud_reasons: Vec::new(),
            },
        )),
    }
}

#[test]
fn event_envelope_round_trips_with_an_approval() {
    let original = approved_envelope();
    let bytes = original.encode_to_vec();
    let decoded = EventEnvelope::decode(bytes.as_slice()).expect("envelope decodes");

    assert_eq!(decoded, original);
    assert_eq!(decoded.sequence, 1);
    assert_eq!(decoded.aggregate_id, "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    let Some(event_envelope::Payload::AuthorizationApproved(approved)) = decoded.payload else {
        panic!(
            "payload is not AuthorizationApproved: {:?}",
            decoded.payload
        );
    };
    let txn = approved.txn.expect("transaction facts present");
    assert_eq!(txn.amount, Some(cny(5000)));
    assert_eq!(txn.entry_mode(), CardEntryMode::Chip);
    assert_eq!(txn.transaction_type(), TransactionType::Purchase);
    let card = txn.card.expect("masked card present");
    assert_eq!(card.masked_pan, "622202****1234");
    assert_eq!(card.last4, "1234");
}

#[test]
fn terminal_purchase_round_trips() {
    let purchase = PurchaseRequest {
        batch_no: 1,
        stan: 42,
        operator_no: "01".to_owned(),
        amount: Some(cny(5000)),
        card: Some(CardData {
            pan: "6222021234567890123".to_owned(),
            expiry: "2812".to_owned(),
            service_code: "220".to_owned(),
            track2: "6222021234567890123=28122201234567890".to_owned(),
            entry_mode: CardEntryMode::Chip as i32,
            emv_data: vec![0x9F, 0x26, 0x08, 1, 2, 3, 4, 5, 6, 7, 8],
            card_sequence_number: "001".to_owned(),
            displayed_last4: "0123".to_owned(),
        }),
        pin_block: vec![0x04, 0x12, 0x77, 0xCD, 0xDE, 0xEF, 0xF6, 0x69],
        local_datetime: "2025-01-31T14:05:09".to_owned(),
    };
    let message = TerminalMessage {
        terminal_id: "10000001".to_owned(),
        message_seq: 7,
        // The MAC covers the encoding of the body's message alone.
        mac: purchase.encode_to_vec()[..8].to_vec(),
        body: Some(terminal_message::Body::Purchase(purchase.clone())),
    };

    let decoded = TerminalMessage::decode(message.encode_to_vec().as_slice()).expect("decodes");

    assert_eq!(decoded, message);
    assert_eq!(decoded.message_seq, 7);
    let Some(terminal_message::Body::Purchase(body)) = decoded.body else {
        panic!("body is not a purchase: {:?}", decoded.body);
    };
    // Re-encoding the decoded body gives the same bytes, which is what the MAC relies on.
    assert_eq!(body.encode_to_vec(), purchase.encode_to_vec());
    assert_eq!(body.amount, Some(cny(5000)));
    assert_eq!(body.stan, 42);
}

#[test]
fn descriptor_set_contains_every_service() {
    let set = prost_types::FileDescriptorSet::decode(pos_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set decodes");
    let services: Vec<String> = set
        .file
        .iter()
        .filter(|file| file.package() == "pos.v1")
        .flat_map(|file| {
            file.service
                .iter()
                .map(|service| format!("pos.v1.{}", service.name()))
        })
        .collect();

    for expected in [
        "pos.v1.TerminalGateway",
        "pos.v1.TerminalManagement",
        "pos.v1.Authorization",
        "pos.v1.Reversal",
        "pos.v1.Settlement",
        "pos.v1.FraudCheck",
        "pos.v1.Issuer",
    ] {
        assert!(
            services.iter().any(|name| name == expected),
            "{expected} missing from the descriptor set; found {services:?}"
        );
    }
}

#[test]
fn event_payload_field_numbers_are_grouped_by_topic() {
    let set = prost_types::FileDescriptorSet::decode(pos_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set decodes");
    let envelope = set
        .file
        .iter()
        .filter(|file| file.package() == "pos.v1")
        .flat_map(|file| file.message_type.iter())
        .find(|message| message.name() == "EventEnvelope")
        .expect("EventEnvelope present");

    let header: Vec<(i32, &str)> = envelope
        .field
        .iter()
        .filter(|field| field.oneof_index.is_none())
        .map(|field| (field.number(), field.name()))
        .collect();
    assert_eq!(
        header,
        [
            (1, "event_id"),
            (2, "aggregate_type"),
            (3, "aggregate_id"),
            (4, "sequence"),
            (5, "occurred_at"),
            (6, "causation_id"),
            (7, "correlation_id"),
            (8, "traceparent"),
            (9, "tracestate"),
            (10, "producer"),
        ]
    );

    let payloads: Vec<i32> = envelope
        .field
        .iter()
        .filter(|field| field.oneof_index.is_some())
        .map(|field| field.number())
        .collect();
    assert!(
        payloads.len() > 40,
        "expected every event payload, got {}",
        payloads.len()
    );
    assert!(payloads.iter().all(|number| (100..470).contains(number)));
}
