//! The purchase path end to end through the real binaries: pos-agent → terminal-gateway →
//! authorization → issuer-sim, against the real broker and Redis. Money is checked at the bank
//! to the fen, decisions on the transactions topic, receipts on the terminal.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use pos_events::{EventReader, Payload, Topic};
use pos_proto::v1 as pb;
use prost::Message;
use support::{Platform, ok, refused};

const DEBIT: &str = "6217000010012345677";
const DEBIT_CARD: &str = "6217000010012345677/3012/220";
const CREDIT: &str = "6225880011223345";
const CREDIT_CARD: &str = "6225880011223345/2912/201";
const MAGSTRIPE: &str = "6217000010050000077";
const MAGSTRIPE_CARD: &str = "6217000010050000077/3012/101";
const LOW_BALANCE_CARD: &str = "6217000010020000033/3012/220";
const EXPIRED_CARD: &str = "6217000010030000015/2001/220";
const LIMITED_CARD: &str = "6217000010040000096/3012/220";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Every event on the test's transactions topic.
fn transaction_events(platform: &Platform) -> Vec<pos_events::EventEnvelope> {
    let config = platform.env.bus("scan");
    runtime().block_on(async move {
        let reader = EventReader::from_beginning(&config, &[Topic::Transactions])
            .await
            .unwrap();
        let mut events = Vec::new();
        reader
            .catch_up(async |event| {
                events.push(event.envelope.clone());
                Ok(())
            })
            .await
            .unwrap();
        events
    })
}

fn facts(payload: &Payload) -> Option<&pb::TransactionFacts> {
    match payload {
        Payload::AuthorizationApproved(e) => e.txn.as_ref(),
        Payload::AuthorizationDeclined(e) => e.txn.as_ref(),
        Payload::BalanceInquired(e) => e.txn.as_ref(),
        Payload::PreAuthHoldPlaced(e) => e.txn.as_ref(),
        Payload::PreAuthCompleted(e) => e.txn.as_ref(),
        Payload::PreAuthVoided(e) => e.txn.as_ref(),
        _ => None,
    }
}

fn purchase(
    platform: &Platform,
    device: &str,
    amount: &str,
    card: &str,
    entry: &str,
    pin: Option<&str>,
) -> std::process::Output {
    let mut args = vec![
        "purchase", "--amount", amount, "--card", card, "--entry", entry,
    ];
    if let Some(pin) = pin {
        args.extend(["--pin", pin]);
    }
    platform.agent(device, &args)
}

#[test]
fn purchases_by_swipe_chip_and_tap_debit_exactly_the_amount_and_print_two_receipts() {
    let platform = Platform::start_full();
    let merchant = platform.active_merchant();
    let terminal = platform.ready_terminal(&merchant, "p");

    let cases = [
        (DEBIT, DEBIT_CARD, "chip", Some("123456"), "50.00", 5_000),
        (CREDIT, CREDIT_CARD, "tap", None, "88.88", 8_888),
        (
            MAGSTRIPE,
            MAGSTRIPE_CARD,
            "swipe",
            Some("123456"),
            "12.34",
            1_234,
        ),
    ];
    for (pan, card, entry, pin, amount, fen) in cases {
        let before = platform.available_fen(pan);
        let out = ok(purchase(&platform, "p", amount, card, entry, pin));
        assert_eq!(
            platform.available_fen(pan),
            before - fen,
            "{entry}: the bank moves exactly the amount"
        );
        let masked = format!("{}****{}", &pan[..6], &pan[pan.len() - 4..]);
        assert!(
            out.contains("商户存根 MERCHANT COPY") && out.contains("持卡人存根 CARDHOLDER COPY"),
            "{out}"
        );
        assert!(
            out.contains(&masked),
            "receipts show the masked card: {out}"
        );
        assert!(
            !out.contains(pan),
            "the full card number is never printed: {out}"
        );
        assert!(out.contains(&format!("RMB {amount}")), "{out}");
    }
    let receipts = std::fs::read_dir(platform.device_dir("p").join("receipts"))
        .unwrap()
        .count();
    assert_eq!(receipts, 6, "two receipt files per approved purchase");

    let approvals: Vec<pb::TransactionFacts> = transaction_events(&platform)
        .iter()
        .filter_map(|e| match &e.payload {
            Some(Payload::AuthorizationApproved(a)) => a.txn.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(approvals.len(), 3);
    for txn in &approvals {
        assert_eq!(txn.trace.as_ref().unwrap().terminal_id, terminal);
        assert_eq!(txn.merchant_id, merchant);
        assert_eq!(txn.operator_no, "01");
        assert!(txn.card.as_ref().unwrap().masked_pan.contains("****"));
        assert!(!txn.approval_code.is_empty() && !txn.rrn.is_empty());
    }
    let amounts: Vec<i64> = approvals
        .iter()
        .map(|t| t.amount.as_ref().unwrap().minor_units)
        .collect();
    assert_eq!(amounts, vec![5_000, 8_888, 1_234]);
}

#[test]
fn declines_give_their_code_move_no_money_and_are_recorded() {
    let mut platform = Platform::start_full();
    let merchant = platform.active_merchant();
    platform.ready_terminal(&merchant, "d");
    let unknown = {
        let payload = "621700009999000001";
        let check = pos_domain::pan::luhn::check_digit(payload).unwrap();
        format!("{payload}{check}/3012/220")
    };
    let cases = [
        ("51", LOW_BALANCE_CARD, "50.00", "123456"),
        ("55", DEBIT_CARD, "10.00", "999999"),
        ("55", DEBIT_CARD, "10.00", "999999"),
        ("75", DEBIT_CARD, "10.00", "999999"),
        ("54", EXPIRED_CARD, "10.00", "123456"),
        ("14", unknown.as_str(), "10.00", "123456"),
        ("61", LIMITED_CARD, "150.00", "123456"),
    ];
    for (code, card, amount, pin) in cases {
        let pan = card.split('/').next().unwrap();
        let before = if code == "14" {
            0
        } else {
            platform.available_fen(pan)
        };
        let refusal = refused(purchase(&platform, "d", amount, card, "chip", Some(pin)));
        assert!(
            refusal.contains(&format!("({code})")),
            "expected {code}: {refusal}"
        );
        if code != "14" {
            assert_eq!(platform.available_fen(pan), before, "{code} moves no money");
        }
    }
    platform.stop_issuer();
    let unavailable = refused(purchase(
        &platform,
        "d",
        "10.00",
        DEBIT_CARD,
        "chip",
        Some("123456"),
    ));
    assert!(unavailable.contains("(91)"), "{unavailable}");
    platform.start_issuer();
    assert_eq!(
        platform.available_fen(DEBIT),
        1_000_000,
        "nothing reached the bank while it was down"
    );

    let declined: Vec<String> = transaction_events(&platform)
        .iter()
        .filter_map(|e| match &e.payload {
            Some(Payload::AuthorizationDeclined(d)) => {
                d.txn.as_ref().map(|t| t.response_code.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        declined,
        vec!["51", "55", "55", "75", "54", "14", "61", "91"]
    );
    assert!(
        !transaction_events(&platform)
            .iter()
            .any(|e| matches!(e.payload, Some(Payload::AuthorizationApproved(_)))),
        "no decline may be recorded as approved"
    );
}

#[test]
fn balance_inquiry_and_pre_authorization_hold_capture_and_release() {
    let platform = Platform::start_full();
    let merchant = platform.active_merchant();
    platform.ready_terminal(&merchant, "h");

    let balance = ok(platform.agent("h", &["balance", "--card", DEBIT_CARD, "--pin", "123456"]));
    assert!(balance.contains("balance: RMB 10000.00"), "{balance}");

    let hold = ok(platform.agent(
        "h",
        &[
            "preauth",
            "--amount",
            "300.00",
            "--card",
            CREDIT_CARD,
            "--pin",
            "654321",
        ],
    ));
    let auth_code = hold
        .split("approved: auth ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        platform.available_fen(CREDIT),
        2_000_000 - 30_000,
        "the hold reduces what is available"
    );

    ok(platform.agent(
        "h",
        &[
            "complete",
            "--amount",
            "280.00",
            "--auth-code",
            &auth_code,
            "--card",
            CREDIT_CARD,
            "--pin",
            "654321",
        ],
    ));
    assert_eq!(
        platform.available_fen(CREDIT),
        2_000_000 - 28_000,
        "completion captures 280.00 and releases the rest"
    );

    let second = ok(platform.agent(
        "h",
        &[
            "preauth",
            "--amount",
            "100.00",
            "--card",
            CREDIT_CARD,
            "--pin",
            "654321",
        ],
    ));
    let second_code = second
        .split("approved: auth ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(platform.available_fen(CREDIT), 2_000_000 - 38_000);
    ok(platform.agent(
        "h",
        &[
            "preauth-void",
            "--amount",
            "100.00",
            "--auth-code",
            &second_code,
            "--card",
            CREDIT_CARD,
            "--pin",
            "654321",
        ],
    ));
    assert_eq!(
        platform.available_fen(CREDIT),
        2_000_000 - 28_000,
        "the void releases the hold"
    );
}

#[test]
fn bad_input_is_refused_clearly_and_nothing_is_approved() {
    let platform = Platform::start_full();
    let merchant = platform.active_merchant();
    platform.ready_terminal(&merchant, "b");
    for amount in ["0.00", "-5.00", "12.345", "1e3", "abc"] {
        let refusal = refused(purchase(
            &platform,
            "b",
            amount,
            DEBIT_CARD,
            "chip",
            Some("123456"),
        ));
        assert!(refusal.contains("amount"), "{amount}: {refusal}");
    }
    let too_large = refused(purchase(
        &platform,
        "b",
        "60000.00",
        DEBIT_CARD,
        "chip",
        Some("123456"),
    ));
    assert!(
        too_large.contains("(61)"),
        "above the merchant's limit: {too_large}"
    );
    let bad_pan = refused(purchase(
        &platform,
        "b",
        "10.00",
        "6217000010012345678/3012/220",
        "chip",
        Some("123456"),
    ));
    assert!(bad_pan.contains("Luhn"), "{bad_pan}");
    let foreign = refused(purchase(
        &platform,
        "b",
        "10.00",
        "4111111111111111/3012/201",
        "chip",
        Some("1234"),
    ));
    assert!(
        foreign.contains("(14)"),
        "a BIN the deployment does not accept: {foreign}"
    );
    let no_pin = refused(purchase(&platform, "b", "10.00", DEBIT_CARD, "chip", None));
    assert!(
        no_pin.contains("PIN"),
        "a card that requires a PIN: {no_pin}"
    );
    assert_eq!(platform.available_fen(DEBIT), 1_000_000);
    assert!(
        !transaction_events(&platform)
            .iter()
            .any(|e| matches!(e.payload, Some(Payload::AuthorizationApproved(_)))),
        "nothing recorded as approved"
    );
}

#[test]
fn no_card_number_track_or_pin_block_is_stored_or_logged() {
    let platform = Platform::start_full();
    let merchant = platform.active_merchant();
    platform.ready_terminal(&merchant, "s");
    ok(purchase(
        &platform,
        "s",
        "20.00",
        DEBIT_CARD,
        "chip",
        Some("123456"),
    ));
    ok(purchase(
        &platform,
        "s",
        "21.00",
        MAGSTRIPE_CARD,
        "swipe",
        Some("123456"),
    ));
    refused(purchase(
        &platform,
        "s",
        "10.00",
        DEBIT_CARD,
        "chip",
        Some("999999"),
    ));

    let mut stored = Vec::new();
    for event in transaction_events(&platform) {
        stored.extend(event.encode_to_vec());
        if let Some(txn) = event.payload.as_ref().and_then(facts) {
            assert!(
                txn.card
                    .as_ref()
                    .is_some_and(|c| c.masked_pan.contains("****") && c.card_token.len() == 64)
            );
        }
    }
    let logs = [
        platform.gateway.log_text(),
        platform.authorization.as_ref().unwrap().log_text(),
    ]
    .concat();
    for pan in [DEBIT, MAGSTRIPE, "6217000010050000077=3012101"] {
        assert!(
            !logs.contains(pan),
            "a card number or track appears in a log"
        );
        assert!(
            !stored.windows(pan.len()).any(|w| w == pan.as_bytes()),
            "a card number appears in an event"
        );
    }
    let redis = support::redis_bytes(&platform.env);
    for pan in [DEBIT, MAGSTRIPE] {
        assert!(
            !redis.windows(pan.len()).any(|w| w == pan.as_bytes()),
            "a card number appears in Redis"
        );
    }
}

/// The agent's session (keys, batch) read from its data directory.
fn session_value(platform: &Platform, device: &str, key: &str) -> String {
    let text = std::fs::read_to_string(platform.device_dir(device).join("session.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    match &json[key] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn a_retransmitted_purchase_charges_once_and_another_amount_under_its_stan_is_refused() {
    use pos_crypto::{DesKey, pinblock, retail_mac};
    use pos_proto::v1::host_message::Body as HostBody;
    use pos_proto::v1::terminal_message::Body;

    let platform = Platform::start_full();
    let merchant = platform.active_merchant();
    let terminal = platform.ready_terminal(&merchant, "r");
    let mac_key = DesKey::from_hex(&session_value(&platform, "r", "mac_key")).unwrap();
    let pin_key = DesKey::from_hex(&session_value(&platform, "r", "pin_key")).unwrap();
    let batch_no: u32 = session_value(&platform, "r", "batch_no").parse().unwrap();
    let purchase = |amount: i64| {
        let block = pinblock::format0("123456", MAGSTRIPE).unwrap();
        Body::Purchase(pb::PurchaseRequest {
            batch_no,
            stan: 4242,
            operator_no: "01".to_owned(),
            amount: Some(pb::Money {
                minor_units: amount,
                currency: "CNY".to_owned(),
            }),
            card: Some(pb::CardData {
                pan: MAGSTRIPE.to_owned(),
                expiry: "3012".to_owned(),
                service_code: "101".to_owned(),
                track2: format!("{MAGSTRIPE}=30121010000000000"),
                entry_mode: pb::CardEntryMode::Swipe as i32,
                displayed_last4: "0077".to_owned(),
                ..pb::CardData::default()
            }),
            pin_block: pin_key.encrypt_ecb(&block).unwrap(),
            local_datetime: "2026-11-28T18:00:00".to_owned(),
        })
    };
    let send = |seq: u64, body: Body| -> pb::TransactionResponse {
        runtime().block_on(async {
            let channel = tonic::transport::Channel::from_shared(platform.url())
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut message = pb::TerminalMessage {
                terminal_id: terminal.clone(),
                message_seq: seq,
                mac: Vec::new(),
                body: Some(body),
            };
            message.mac = retail_mac(&mac_key, &message.encode_to_vec()).to_vec();
            let mut answers =
                pos_proto::v1::terminal_gateway_client::TerminalGatewayClient::new(channel)
                    .connect(tokio_stream::iter([message]))
                    .await
                    .unwrap()
                    .into_inner();
            match answers.message().await.unwrap().and_then(|m| m.body) {
                Some(HostBody::Transaction(t)) => t,
                other => panic!("expected a transaction answer, got {other:?}"),
            }
        })
    };

    let before = platform.available_fen(MAGSTRIPE);
    let first = send(1_000, purchase(2_500));
    assert_eq!(first.response_code, "00", "{}", first.response_message);
    let retry = send(1_001, purchase(2_500));
    assert_eq!(
        (retry.response_code.as_str(), retry.approval_code.as_str()),
        ("00", first.approval_code.as_str())
    );
    assert_eq!(retry.rrn, first.rrn);
    assert_eq!(
        platform.available_fen(MAGSTRIPE),
        before - 2_500,
        "charged once"
    );

    let other = send(1_002, purchase(9_900));
    assert_eq!(other.response_code, "94", "{}", other.response_message);
    assert_eq!(platform.available_fen(MAGSTRIPE), before - 2_500);
    let approvals = transaction_events(&platform)
        .iter()
        .filter(|e| matches!(e.payload, Some(Payload::AuthorizationApproved(_))))
        .count();
    assert_eq!(approvals, 1, "one approval event for one purchase");
}
