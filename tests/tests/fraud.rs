//! fraud-check through its gRPC API and posctl, with the real `fraud-check` and
//! `terminal-gateway` binaries against the real broker and Redis: the test calls `Assess` as
//! authorization does, merchants and terminals are onboarded through the gateway (fraud-check
//! learns their trading hours, settlement cards and locations from the events), decisions and
//! reasons are checked in the answer and in the alert on `pos.fraud.v1`. Transaction outcomes
//! that fraud-check learns after the fact (declines, daily volume) are written to the
//! transactions topic as authorization writes them. The last tests run the whole path through
//! the agent: a blacklisted card declined with 59 and no money moving, and authorization's
//! policy when fraud-check is down.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};

use pos_domain::TokenKey;
use pos_domain::pan::Pan;
use pos_events::{
    AggregateRef, EventEnvelope, EventPublisher, EventReader, Payload, Topic, new_envelope,
};
use pos_proto::v1 as pb;
use pos_proto::v1::fraud_check_client::FraudCheckClient;
use support::{ADMIN_TOKEN, ONBOARDING_TOKEN, Platform, RISK_TOKEN, field, ok, refused};
use tonic::transport::Channel;

/// Demo cards of the issuer simulator (deploy/demo/cards.json).
const DEBIT: &str = "6217000010012345677";
const DEBIT_CARD: &str = "6217000010012345677/3012/220";
const CREDIT: &str = "6225880011223345";
const CREDIT_CARD: &str = "6225880011223345/2912/201";

/// A Luhn-valid card number from its first digits.
fn card_number(payload: &str) -> String {
    let check = pos_domain::pan::luhn::check_digit(payload).unwrap();
    format!("{payload}{check}")
}

/// A resident ID number from its first 17 characters.
fn id_number(first17: &str) -> String {
    let check = pos_registry::resident_id_check_char(first17).unwrap();
    format!("{first17}{check}")
}

/// fraud-check with a gateway to onboard through, and a client acting as authorization.
struct Fraud {
    platform: Platform,
    runtime: tokio::runtime::Runtime,
    client: FraudCheckClient<Channel>,
    tokens: TokenKey,
    serial: std::sync::atomic::AtomicU32,
}

impl Fraud {
    fn start() -> Self {
        Self::start_with(None)
    }

    /// With its own rules file.
    fn start_with(rules: Option<&str>) -> Self {
        let mut platform = Platform::start();
        if let Some(rules) = rules {
            std::fs::write(platform.fraud_rules_file(), rules).unwrap();
        }
        platform.start_fraud();
        Self::over(platform)
    }

    fn over(platform: Platform) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let url = platform.fraud_url();
        // Lazily connected: a test may stop fraud-check.
        let client = runtime.block_on(async move {
            FraudCheckClient::new(Channel::from_shared(url).unwrap().connect_lazy())
        });
        let key = std::fs::read_to_string(platform.dir.join("token-key.hex")).unwrap();
        let tokens = TokenKey::from_bytes(&hex::decode(key.trim()).unwrap()).unwrap();
        Self {
            platform,
            runtime,
            client,
            tokens,
            serial: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// A card number no other assessment of the test used.
    fn fresh_card(&self) -> String {
        let n = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        card_number(&format!("62170009{n:010}"))
    }

    /// Waits until fraud-check knows `merchant`'s trading hours from its onboarding (a fresh
    /// card in the small hours is flagged with the merchant's own hours).
    fn wait_for_merchant(&self, merchant: &str, hours: &str) {
        self.assess_until(
            "the merchant's onboarding",
            || {
                let mut r = self.purchase(merchant, "TERMW001", &self.fresh_card(), 100);
                r.local_datetime = "2026-11-28T02:00:00".to_owned();
                r
            },
            |a| a.reasons.iter().any(|r| r.detail.contains(hours)),
        );
    }

    fn token(&self, pan: &str) -> String {
        Pan::parse(pan).unwrap().token(&self.tokens).to_string()
    }

    /// A clean chip purchase of `pan` as authorization asks about it.
    fn purchase(&self, merchant: &str, terminal: &str, pan: &str, fen: i64) -> pb::AssessRequest {
        let n = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        pb::AssessRequest {
            transaction_id: format!("txn-{}-{n}", uuid::Uuid::now_v7()),
            transaction_type: pb::TransactionType::Purchase as i32,
            card: Some(pb::MaskedCard {
                masked_pan: format!("{}****{}", &pan[..6], &pan[pan.len() - 4..]),
                card_token: self.token(pan),
                bin: pan[..6].to_owned(),
                last4: pan[pan.len() - 4..].to_owned(),
            }),
            card_funding: pb::CardFundingType::Unspecified as i32,
            service_code: "220".to_owned(),
            entry_mode: pb::CardEntryMode::Chip as i32,
            emv: Some(pb::EmvFacts {
                present: true,
                cryptogram_present: true,
                cryptogram_information_data: "80".to_owned(),
                atc: Some(n + 1),
                tvr: "0000000000".to_owned(),
                missing_tags: Vec::new(),
                amount_consistent: true,
            }),
            expiry: "3012".to_owned(),
            track2_expiry: String::new(),
            displayed_last4: pan[pan.len() - 4..].to_owned(),
            amount: Some(pb::Money {
                minor_units: fen,
                currency: "CNY".to_owned(),
            }),
            merchant_id: merchant.to_owned(),
            mcc: "5411".to_owned(),
            terminal_id: terminal.to_owned(),
            terminal_location: None,
            local_datetime: "2026-11-28T14:30:00".to_owned(),
            trading_hours: None,
            merchant_limit: None,
            pin_present: true,
        }
    }

    fn assess(&self, request: &pb::AssessRequest) -> pb::AssessResponse {
        let mut client = self.client.clone();
        let request = request.clone();
        self.runtime
            .block_on(async move { client.assess(request).await })
            .unwrap()
            .into_inner()
    }

    /// Asks again (a fresh transaction each time) until `done` holds for the answer.
    fn assess_until(
        &self,
        what: &str,
        make: impl Fn() -> pb::AssessRequest,
        done: impl Fn(&pb::AssessResponse) -> bool,
    ) -> (pb::AssessRequest, pb::AssessResponse) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let request = make();
            let answer = self.assess(&request);
            if done(&answer) {
                return (request, answer);
            }
            assert!(
                Instant::now() < deadline,
                "{what}: still {answer:?} after 20 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every event on one of the test's topics.
    fn events_on(&self, topic: Topic) -> Vec<EventEnvelope> {
        let config = self.platform.env.bus("scan");
        self.runtime.block_on(async move {
            let reader = EventReader::from_beginning(&config, &[topic])
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

    /// Every event on the test's fraud topic.
    fn fraud_events(&self) -> Vec<EventEnvelope> {
        self.events_on(Topic::Fraud)
    }

    /// The alerts raised so far.
    fn alerts(&self) -> Vec<pb::FraudAlert> {
        self.fraud_events()
            .into_iter()
            .filter_map(|e| match e.payload {
                Some(Payload::FraudAlertRaised(a)) => a.alert,
                _ => None,
            })
            .collect()
    }

    /// The alert of one assessment (raised after the answer: waits for it).
    fn alert_of(&self, request: &pb::AssessRequest) -> pb::FraudAlert {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(alert) = self
                .alerts()
                .into_iter()
                .find(|a| a.transaction_id == request.transaction_id)
            {
                return alert;
            }
            assert!(
                Instant::now() < deadline,
                "no alert for {}",
                request.transaction_id
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Checks the answer and its alert: decision and reason codes.
    fn expect(
        &self,
        request: &pb::AssessRequest,
        answer: &pb::AssessResponse,
        decision: pb::FraudDecision,
        reasons: &[&str],
    ) {
        assert_eq!(codes(answer), reasons, "{answer:?}");
        assert_eq!(answer.decision, decision as i32, "{answer:?}");
        let alert = self.alert_of(request);
        assert_eq!(alert.decision, decision as i32);
        assert_eq!(alert.score, answer.score);
        assert_eq!(alert.alert_id, answer.assessment_id);
        assert_eq!(
            alert
                .reasons
                .iter()
                .map(|r| r.code.as_str())
                .collect::<Vec<_>>(),
            reasons
        );
        assert_eq!(alert.merchant_id, request.merchant_id);
        assert_eq!(
            alert.card, request.card,
            "the alert carries the masked card"
        );
    }

    /// Writes events to the transactions topic as authorization does.
    fn publish_transactions(&self, events: Vec<(String, Payload)>) {
        let config = self.platform.env.bus("authorization-stand-in");
        self.runtime.block_on(async move {
            let publisher = EventPublisher::new(&config).unwrap();
            for (key, payload) in events {
                let envelope = new_envelope(
                    &AggregateRef::new("transaction", uuid::Uuid::now_v7().to_string()),
                    1,
                    "authorization",
                    payload,
                );
                publisher
                    .publish(Topic::Transactions, &key, &envelope)
                    .await
                    .unwrap();
            }
        });
    }

    /// A merchant onboarded (with `extra` posctl arguments), approved and activated.
    fn merchant(&self, id_number: &str, account: &str, hours: &[&str], night: bool) -> String {
        let mut args = support::onboard_args(id_number, account);
        let at = args.iter().position(|a| *a == "--hours").unwrap();
        args.drain(at..at + 2);
        for window in hours {
            args.extend(["--hours", window]);
        }
        if night {
            args.push("--night-business");
        }
        let out = ok(self.platform.posctl(&args));
        let id = field(&out, "merchant_id");
        ok(self.platform.posctl(&["merchant", "approve", &id]));
        ok(self.platform.posctl(&["merchant", "activate", &id]));
        id
    }

    /// A terminal registered in `city` at `coordinates`.
    fn terminal_at(&self, merchant: &str, serial: &str, city: &str, at: (f64, f64)) -> String {
        let (lat, lon) = (at.0.to_string(), at.1.to_string());
        let out = ok(self.platform.posctl(&[
            "terminal",
            "register",
            "--merchant",
            merchant,
            "--serial",
            serial,
            "--city",
            city,
            "--latitude",
            &lat,
            "--longitude",
            &lon,
        ]));
        field(&out, "terminal_id")
    }

    fn posctl_risk(&self, args: &[&str]) -> std::process::Output {
        self.platform.posctl_fraud_as(RISK_TOKEN, args)
    }
}

fn codes(answer: &pb::AssessResponse) -> Vec<&str> {
    answer.reasons.iter().map(|r| r.code.as_str()).collect()
}

fn facts(
    merchant: &str,
    terminal: &str,
    kind: pb::TransactionType,
    fen: i64,
    code: &str,
    business_date: &str,
) -> pb::TransactionFacts {
    pb::TransactionFacts {
        transaction_id: uuid::Uuid::now_v7().to_string(),
        transaction_type: kind as i32,
        merchant_id: merchant.to_owned(),
        trace: Some(pb::TerminalTraceRef {
            terminal_id: terminal.to_owned(),
            batch_no: 1,
            stan: 1,
        }),
        amount: Some(pb::Money {
            minor_units: fen,
            currency: "CNY".to_owned(),
        }),
        response_code: code.to_owned(),
        business_date: business_date.to_owned(),
        ..pb::TransactionFacts::default()
    }
}

fn approved(txn: pb::TransactionFacts) -> Payload {
    Payload::AuthorizationApproved(pb::AuthorizationApproved {
        txn: Some(txn),
        fraud_reasons: Vec::new(),
    })
}

fn declined(txn: pb::TransactionFacts) -> Payload {
    Payload::AuthorizationDeclined(pb::AuthorizationDeclined {
        txn: Some(txn),
        source: pb::DeclineSource::Issuer as i32,
        fraud_reasons: Vec::new(),
    })
}

/// Today's business date and the ones before it, as authorization dates transactions.
fn business_date(days_back: i64) -> String {
    let today = pos_domain::time::BusinessDay::default().today();
    let days = pos_domain::time::days_from_iso_date(&today).unwrap() - days_back;
    let (y, m, d) = pos_domain::time::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

const MERCHANT: &str = "898310048990001";
const TERMINAL: &str = "TERMF001";

#[test]
fn chip_fallback_is_flagged_and_more_so_when_repeated() {
    let fraud = Fraud::start();
    let chip_card = card_number("621700001006000");
    let fallback = || {
        let mut r = fraud.purchase(MERCHANT, TERMINAL, &chip_card, 5_000);
        r.service_code = "201".to_owned();
        r.entry_mode = pb::CardEntryMode::FallbackSwipe as i32;
        r.emv = None;
        r.track2_expiry = "3012".to_owned();
        r
    };
    let first = fallback();
    let answer = fraud.assess(&first);
    fraud.expect(
        &first,
        &answer,
        pb::FraudDecision::Approve,
        &["CHIP_FALLBACK"],
    );
    assert_eq!(answer.score, 200);
    let second = fallback();
    let answer = fraud.assess(&second);
    fraud.expect(
        &second,
        &answer,
        pb::FraudDecision::Review,
        &["CHIP_FALLBACK"],
    );
    assert!(
        answer.reasons[0].detail.contains("1 earlier fallback"),
        "{answer:?}"
    );
    let third = fallback();
    let answer = fraud.assess(&third);
    fraud.expect(
        &third,
        &answer,
        pb::FraudDecision::Decline,
        &["CHIP_FALLBACK"],
    );

    // Must not trip: the same chip card inserted, and a magnetic-only card (1xx) swiped.
    let inserted = fraud.purchase(MERCHANT, TERMINAL, &chip_card, 5_000);
    let answer = fraud.assess(&inserted);
    assert!(answer.reasons.is_empty(), "{answer:?}");
    assert_eq!(answer.decision, pb::FraudDecision::Approve as i32);
    let mut stripe_only =
        fraud.purchase(MERCHANT, TERMINAL, &card_number("621700001006001"), 5_000);
    stripe_only.service_code = "101".to_owned();
    stripe_only.entry_mode = pb::CardEntryMode::Swipe as i32;
    stripe_only.emv = None;
    let answer = fraud.assess(&stripe_only);
    assert!(answer.reasons.is_empty(), "{answer:?}");
    assert!(
        !fraud
            .alerts()
            .iter()
            .any(|a| a.transaction_id == inserted.transaction_id
                || a.transaction_id == stripe_only.transaction_id),
        "a clean assessment raises no alert"
    );
}

#[test]
fn one_card_on_far_apart_terminals_within_minutes_looks_cloned() {
    let fraud = Fraud::start();
    let merchant = fraud.platform.active_merchant();
    let shanghai = fraud.terminal_at(&merchant, "SN-SH", "上海", (31.2304, 121.4737));
    let beijing = fraud.terminal_at(&merchant, "SN-BJ", "北京", (39.9042, 116.4074));
    let mall = fraud.terminal_at(&merchant, "SN-SH2", "上海", (31.2310, 121.4745));
    let regular = card_number("621700001007001");

    // fraud-check learns the terminals' places from the registry's events.
    let (request, answer) = fraud.assess_until(
        "a Beijing purchase minutes after a Shanghai one",
        || {
            let card = fraud.fresh_card();
            fraud.assess(&fraud.purchase(&merchant, &shanghai, &card, 3_000));
            fraud.purchase(&merchant, &beijing, &card, 3_000)
        },
        |a| !a.reasons.is_empty(),
    );
    fraud.expect(
        &request,
        &answer,
        pb::FraudDecision::Review,
        &["CLONED_CARD_DISTANCE"],
    );
    assert!(answer.reasons[0].detail.contains("km away"), "{answer:?}");

    // Must not trip: a regular customer at two terminals of the same mall.
    fraud.assess(&fraud.purchase(&merchant, &shanghai, &regular, 3_000));
    let next_door = fraud.assess(&fraud.purchase(&merchant, &mall, &regular, 3_000));
    assert!(next_door.reasons.is_empty(), "{next_door:?}");
}

#[test]
fn emv_data_missing_or_inconsistent_on_a_chip_read() {
    let fraud = Fraud::start();
    let card = card_number("621700001008000");
    let mut missing = fraud.purchase(MERCHANT, TERMINAL, &card, 10_000);
    missing.emv = Some(pb::EmvFacts {
        present: true,
        cryptogram_present: false,
        missing_tags: vec!["9F26".to_owned(), "9F36".to_owned()],
        amount_consistent: true,
        ..pb::EmvFacts::default()
    });
    let answer = fraud.assess(&missing);
    fraud.expect(
        &missing,
        &answer,
        pb::FraudDecision::Review,
        &["EMV_MISSING"],
    );
    assert!(answer.reasons[0].detail.contains("9F26 9F36"), "{answer:?}");

    let mut inconsistent = fraud.purchase(MERCHANT, TERMINAL, &card, 10_000);
    if let Some(emv) = inconsistent.emv.as_mut() {
        emv.cryptogram_information_data = "40".to_owned(); // a TC offline, not an ARQC
        emv.amount_consistent = false;
    }
    let answer = fraud.assess(&inconsistent);
    fraud.expect(
        &inconsistent,
        &answer,
        pb::FraudDecision::Review,
        &["EMV_INCONSISTENT"],
    );

    // Must not trip: a proper chip read and a contactless tap.
    let clean = fraud.assess(&fraud.purchase(MERCHANT, TERMINAL, &card, 10_000));
    assert!(clean.reasons.is_empty(), "{clean:?}");
    let mut tap = fraud.purchase(MERCHANT, TERMINAL, &card, 10_000);
    tap.entry_mode = pb::CardEntryMode::Contactless as i32;
    assert!(fraud.assess(&tap).reasons.is_empty());
}

#[test]
fn track_data_contradicting_the_expiry_and_a_card_number_mismatch() {
    let fraud = Fraud::start();
    let card = card_number("621700001009000");
    let mut swiped = fraud.purchase(MERCHANT, TERMINAL, &card, 10_000);
    swiped.service_code = "101".to_owned();
    swiped.entry_mode = pb::CardEntryMode::Swipe as i32;
    swiped.emv = None;
    swiped.track2_expiry = "2712".to_owned();
    let answer = fraud.assess(&swiped);
    fraud.expect(
        &swiped,
        &answer,
        pb::FraudDecision::Review,
        &["TRACK_EXPIRY_MISMATCH"],
    );

    let mut mismatch = fraud.purchase(MERCHANT, TERMINAL, &card, 10_000);
    mismatch.displayed_last4 = "0000".to_owned();
    let answer = fraud.assess(&mismatch);
    fraud.expect(
        &mismatch,
        &answer,
        pb::FraudDecision::Decline,
        &["CARD_NUMBER_MISMATCH"],
    );
    assert!(
        !answer.reasons[0].detail.contains(&card[card.len() - 4..]),
        "the reason shows no card digits"
    );

    // Must not trip: track expiry agreeing, the last four confirmed.
    swiped.transaction_id.push_str("-ok");
    swiped.track2_expiry = "3012".to_owned();
    assert!(fraud.assess(&swiped).reasons.is_empty());
}

#[test]
fn velocity_per_card_terminal_and_merchant_in_sliding_windows() {
    let fraud = Fraud::start_with(Some(
        "version = \"velocity-test\"\n\
         [velocity_terminal]\nscore = 250\nwindow_minutes = 10\nmax_count = 8\nmax_amount = \"200000.00\"\n\
         [velocity_merchant]\nscore = 200\nwindow_minutes = 60\nmax_count = 1000\nmax_amount = \"3000.00\"\n",
    ));
    let card = card_number("621700001010000");
    // A regular customer: five purchases in ten minutes is the limit, not over it.
    for _ in 0..5 {
        let answer = fraud.assess(&fraud.purchase(MERCHANT, TERMINAL, &card, 1_000));
        assert!(answer.reasons.is_empty(), "{answer:?}");
    }
    let sixth = fraud.purchase(MERCHANT, TERMINAL, &card, 1_000);
    let answer = fraud.assess(&sixth);
    fraud.expect(
        &sixth,
        &answer,
        pb::FraudDecision::Review,
        &["VELOCITY_CARD"],
    );
    assert!(
        answer.reasons[0].detail.contains("6 transactions"),
        "{answer:?}"
    );
    // A retried assessment of the same transaction does not count again.
    let again = fraud.assess(&sixth);
    assert!(
        again.reasons[0].detail.contains("6 transactions"),
        "{again:?}"
    );

    // The terminal: 8 in ten minutes at most, whatever the cards (6 so far).
    let other = |n: u32| card_number(&format!("6217000010110{n:02}"));
    assert!(
        fraud
            .assess(&fraud.purchase(MERCHANT, TERMINAL, &other(1), 1_000))
            .reasons
            .is_empty()
    );
    assert!(
        fraud
            .assess(&fraud.purchase(MERCHANT, TERMINAL, &other(2), 1_000))
            .reasons
            .is_empty()
    );
    let ninth = fraud.purchase(MERCHANT, TERMINAL, &other(3), 1_000);
    let answer = fraud.assess(&ninth);
    fraud.expect(
        &ninth,
        &answer,
        pb::FraudDecision::Approve,
        &["VELOCITY_TERMINAL"],
    );

    // The merchant: 3,000.00 an hour in this rules file (90.00 so far on another terminal).
    let big = fraud.purchase(MERCHANT, "TERMF002", &other(4), 292_000);
    let answer = fraud.assess(&big);
    fraud.expect(
        &big,
        &answer,
        pb::FraudDecision::Approve,
        &["VELOCITY_MERCHANT"],
    );
    assert!(answer.reasons[0].detail.contains("3000.00"), "{answer:?}");
    // Another merchant is not affected.
    let elsewhere =
        fraud.assess(&fraud.purchase("898310048990002", "TERMF003", &other(5), 292_000));
    assert!(elsewhere.reasons.is_empty(), "{elsewhere:?}");
}

#[test]
fn many_declines_in_a_row_on_a_terminal_until_an_approval() {
    let fraud = Fraud::start();
    let today = business_date(0);
    let declines = (0..5)
        .map(|_| {
            (
                TERMINAL.to_owned(),
                declined(facts(
                    MERCHANT,
                    TERMINAL,
                    pb::TransactionType::Purchase,
                    1_000,
                    "55",
                    &today,
                )),
            )
        })
        .collect();
    fraud.publish_transactions(declines);
    let (request, answer) = fraud.assess_until(
        "five declines in a row",
        || fraud.purchase(MERCHANT, TERMINAL, &fraud.fresh_card(), 1_000),
        |a| !a.reasons.is_empty(),
    );
    fraud.expect(
        &request,
        &answer,
        pb::FraudDecision::Review,
        &["DECLINES_IN_A_ROW"],
    );
    assert!(
        answer.reasons[0].detail.contains("5 declines"),
        "{answer:?}"
    );

    // An approval ends the run; a "91" (the bank down) says nothing about the cards.
    fraud.publish_transactions(vec![(
        TERMINAL.to_owned(),
        approved(facts(
            MERCHANT,
            TERMINAL,
            pb::TransactionType::Purchase,
            1_000,
            "00",
            &today,
        )),
    )]);
    fraud.assess_until(
        "the run ended by an approval",
        || fraud.purchase(MERCHANT, TERMINAL, &fraud.fresh_card(), 1_000),
        |a| a.reasons.is_empty(),
    );
    let mut system = Vec::new();
    for _ in 0..6 {
        let txn = facts(
            MERCHANT,
            TERMINAL,
            pb::TransactionType::Purchase,
            1_000,
            "91",
            &today,
        );
        system.push((
            TERMINAL.to_owned(),
            Payload::AuthorizationDeclined(pb::AuthorizationDeclined {
                txn: Some(txn),
                source: pb::DeclineSource::System as i32,
                fraud_reasons: Vec::new(),
            }),
        ));
    }
    // Then four refusals: with the six "91" it would be ten, but only refusals count.
    for _ in 0..4 {
        system.push((
            TERMINAL.to_owned(),
            declined(facts(
                MERCHANT,
                TERMINAL,
                pb::TransactionType::Purchase,
                1_000,
                "51",
                &today,
            )),
        ));
    }
    fraud.publish_transactions(system);
    // The fifth refusal trips it again: proof the follower read everything before it.
    fraud.publish_transactions(vec![(
        TERMINAL.to_owned(),
        declined(facts(
            MERCHANT,
            TERMINAL,
            pb::TransactionType::Purchase,
            1_000,
            "51",
            &today,
        )),
    )]);
    let (_, answer) = fraud.assess_until(
        "five refusals after the approval",
        || fraud.purchase(MERCHANT, TERMINAL, &fraud.fresh_card(), 1_000),
        |a| !a.reasons.is_empty(),
    );
    assert!(
        answer.reasons[0].detail.contains("5 declines"),
        "{answer:?}"
    );
}

#[test]
fn cash_out_on_the_merchants_own_or_a_related_merchants_card() {
    let fraud = Fraud::start();
    let owner = id_number("31010419850612004");
    let own_card = card_number("622202100112340001");
    let other_shop_card = card_number("622202100112340002");
    let stranger_card = card_number("622202100112340003");
    let shop = fraud.merchant(&owner, &own_card, &["07:00-22:00"], false);
    // The same legal person's second shop, paid out to another card of theirs: related.
    let second_shop = fraud.merchant(&owner, &other_shop_card, &["07:00-22:00"], false);
    let unrelated = fraud.merchant(
        &id_number("31010419900101001"),
        &stranger_card,
        &["07:00-22:00"],
        false,
    );

    for merchant in [&shop, &second_shop, &unrelated] {
        fraud.wait_for_merchant(merchant, "07:00-22:00");
    }
    let at_shop = fraud.purchase(&shop, "TERMC001", &own_card, 200_000);
    let answer = fraud.assess(&at_shop);
    fraud.expect(
        &at_shop,
        &answer,
        pb::FraudDecision::Review,
        &["CASH_OUT_OWN_CARD"],
    );
    let at_second_shop = fraud.purchase(&second_shop, "TERMC002", &own_card, 200_000);
    let answer = fraud.assess(&at_second_shop);
    fraud.expect(
        &at_second_shop,
        &answer,
        pb::FraudDecision::Review,
        &["CASH_OUT_OWN_CARD"],
    );
    // Must not trip: the owner's card at an unrelated merchant is an ordinary customer (whose
    // own card is flagged there).
    let own_there = fraud.assess(&fraud.purchase(&unrelated, "TERMC003", &stranger_card, 200_000));
    assert_eq!(codes(&own_there), ["CASH_OUT_OWN_CARD"]);
    let customer = fraud.assess(&fraud.purchase(&unrelated, "TERMC003", &own_card, 200_000));
    assert!(customer.reasons.is_empty(), "{customer:?}");
}

#[test]
fn round_amounts_just_under_a_limit() {
    let fraud = Fraud::start();
    let card = card_number("621700001013000");
    let round = fraud.purchase(MERCHANT, TERMINAL, &card, 4_990_000);
    let answer = fraud.assess(&round);
    fraud.expect(
        &round,
        &answer,
        pb::FraudDecision::Review,
        &["CASH_OUT_ROUND_AMOUNT"],
    );
    assert!(answer.reasons[0].detail.contains("49900.00"), "{answer:?}");
    let mut under_own_limit =
        fraud.purchase(MERCHANT, TERMINAL, &card_number("621700001013001"), 780_000);
    under_own_limit.merchant_limit = Some(pb::Money {
        minor_units: 800_000,
        currency: "CNY".to_owned(),
    });
    assert_eq!(
        codes(&fraud.assess(&under_own_limit)),
        ["CASH_OUT_ROUND_AMOUNT"]
    );

    // Must not trip: a furniture bill of 49,873.50, a round 30,000.00 far from any limit.
    for fen in [4_987_350, 3_000_000] {
        let answer = fraud.assess(&fraud.purchase(MERCHANT, TERMINAL, &fraud.fresh_card(), fen));
        assert!(answer.reasons.is_empty(), "{fen}: {answer:?}");
    }
}

#[test]
fn split_purchases_right_after_each_other() {
    let fraud = Fraud::start();
    let card = card_number("621700001014000");
    for _ in 0..2 {
        assert!(
            fraud
                .assess(&fraud.purchase(MERCHANT, TERMINAL, &card, 190_000))
                .reasons
                .is_empty()
        );
    }
    let third = fraud.purchase(MERCHANT, TERMINAL, &card, 190_000);
    let answer = fraud.assess(&third);
    fraud.expect(
        &third,
        &answer,
        pb::FraudDecision::Review,
        &["CASH_OUT_SPLIT"],
    );
    assert!(
        answer.reasons[0].detail.contains("3 payments"),
        "{answer:?}"
    );

    // Must not trip: a regular customer's three coffees.
    let regular = card_number("621700001014001");
    for _ in 0..3 {
        let answer = fraud.assess(&fraud.purchase(MERCHANT, TERMINAL, &regular, 3_500));
        assert!(answer.reasons.is_empty(), "{answer:?}");
    }
}

#[test]
fn a_terminal_whose_volume_jumps_far_above_its_history() {
    let fraud = Fraud::start();
    let (jumping, steady) = ("TERMV001", "TERMV002");
    let mut events = Vec::new();
    for days_back in 1..=3 {
        let date = business_date(days_back);
        events.push((
            jumping.to_owned(),
            approved(facts(
                MERCHANT,
                jumping,
                pb::TransactionType::Purchase,
                200_000,
                "00",
                &date,
            )),
        ));
        events.push((
            steady.to_owned(),
            approved(facts(
                MERCHANT,
                steady,
                pb::TransactionType::Purchase,
                1_000_000,
                "00",
                &date,
            )),
        ));
    }
    let today = business_date(0);
    events.push((
        jumping.to_owned(),
        approved(facts(
            MERCHANT,
            jumping,
            pb::TransactionType::Purchase,
            1_500_000,
            "00",
            &today,
        )),
    ));
    events.push((
        steady.to_owned(),
        approved(facts(
            MERCHANT,
            steady,
            pb::TransactionType::Purchase,
            1_200_000,
            "00",
            &today,
        )),
    ));
    fraud.publish_transactions(events);
    let (request, answer) = fraud.assess_until(
        "15,000.00 today against 2,000.00 a day",
        || fraud.purchase(MERCHANT, jumping, &fraud.fresh_card(), 10_000),
        |a| !a.reasons.is_empty(),
    );
    fraud.expect(
        &request,
        &answer,
        pb::FraudDecision::Review,
        &["CASH_OUT_VOLUME_JUMP"],
    );
    assert!(answer.reasons[0].detail.contains("2000.00"), "{answer:?}");

    // Must not trip: a steady shop's ordinary day. Five refusals written after its history
    // (same terminal, same partition) prove the follower has read the history first.
    let refusals = (0..5)
        .map(|_| {
            (
                steady.to_owned(),
                declined(facts(
                    MERCHANT,
                    steady,
                    pb::TransactionType::Purchase,
                    100,
                    "51",
                    &today,
                )),
            )
        })
        .collect();
    fraud.publish_transactions(refusals);
    let (_, answer) = fraud.assess_until(
        "the steady terminal's history read",
        || fraud.purchase(MERCHANT, steady, &fraud.fresh_card(), 10_000),
        |a| !a.reasons.is_empty(),
    );
    assert_eq!(codes(&answer), ["DECLINES_IN_A_ROW"], "{answer:?}");
}

#[test]
fn night_time_at_a_merchant_that_does_not_trade_at_night() {
    let fraud = Fraud::start();
    let day_shop = fraud.merchant(
        &id_number("31010419850612011"),
        &card_number("622202100112350001"),
        &["08:00-20:00"],
        false,
    );
    let bakery = fraud.merchant(
        &id_number("31010419850612012"),
        &card_number("622202100112350002"),
        &["22:00-06:00"],
        false,
    );
    let bar = fraud.merchant(
        &id_number("31010419850612013"),
        &card_number("622202100112350003"),
        &[],
        true,
    );
    let at = |merchant: &str, terminal: &str, time: &str| {
        let mut r = fraud.purchase(merchant, terminal, &fraud.fresh_card(), 8_800);
        r.local_datetime = format!("2026-11-28T{time}");
        r
    };
    let (request, answer) = fraud.assess_until(
        "02:13 at a shop open 08:00-20:00",
        || at(&day_shop, "TERMN001", "02:13:00"),
        |a| a.reasons.iter().any(|r| r.detail.contains("08:00-20:00")),
    );
    fraud.expect(
        &request,
        &answer,
        pb::FraudDecision::Review,
        &["NIGHT_TIME"],
    );
    assert!(
        answer.reasons[0].detail.contains("08:00-20:00"),
        "{answer:?}"
    );
    // The same shop in the day is fine.
    assert!(
        fraud
            .assess(&at(&day_shop, "TERMN001", "14:00:00"))
            .reasons
            .is_empty()
    );

    // Must not trip: the night bakery (open 22:00-06:00) and the bar (a night business),
    // once fraud-check has learnt them from onboarding (until then a merchant with unknown
    // hours is treated as not trading at night).
    fraud.assess_until(
        "a night bakery at 02:13",
        || at(&bakery, "TERMN002", "02:13:00"),
        |a| a.reasons.is_empty(),
    );
    fraud.assess_until(
        "a bar at 03:30",
        || at(&bar, "TERMN003", "03:30:00"),
        |a| a.reasons.is_empty(),
    );
}

#[test]
fn blacklists_of_cards_bins_merchants_and_terminals_managed_by_posctl() {
    let fraud = Fraud::start();
    let card = card_number("621700001017000");
    let clean = card_number("623000001017001");

    // Only the risk role (or admin) may manage the blacklist.
    let denied = refused(fraud.platform.posctl_fraud_as(
        ONBOARDING_TOKEN,
        &[
            "blacklist",
            "add",
            "--pan",
            &card,
            "--reason",
            "lost card reported",
        ],
    ));
    assert!(
        denied.contains("PermissionDenied") || denied.contains("role"),
        "{denied}"
    );

    let added = ok(fraud.posctl_risk(&[
        "blacklist",
        "add",
        "--pan",
        &card,
        "--reason",
        "lost card reported by the issuer",
    ]));
    assert!(
        !added.contains(&card),
        "posctl never prints the PAN: {added}"
    );
    let card_entry = field(&added, "entry_id");
    let bin_entry = field(
        &ok(fraud.posctl_risk(&[
            "blacklist",
            "add",
            "--bin",
            "622100-622199",
            "--reason",
            "compromised BIN range",
        ])),
        "entry_id",
    );
    let merchant_entry = field(
        &ok(fraud.posctl_risk(&[
            "blacklist",
            "add",
            "--merchant",
            "898310048990009",
            "--reason",
            "collusive merchant",
        ])),
        "entry_id",
    );
    let terminal_entry = field(
        &ok(fraud.posctl_risk(&[
            "blacklist",
            "add",
            "--terminal",
            "TERMB009",
            "--reason",
            "stolen terminal",
        ])),
        "entry_id",
    );
    // Adding the same card again gives the same entry.
    let again = ok(fraud.posctl_risk(&["blacklist", "add", "--pan", &card, "--reason", "again"]));
    assert_eq!(field(&again, "entry_id"), card_entry);
    let list = ok(fraud.posctl_risk(&["blacklist", "list"]));
    for id in [&card_entry, &bin_entry, &merchant_entry, &terminal_entry] {
        assert!(list.contains(id.as_str()), "{id} listed: {list}");
    }
    assert!(!list.contains(&card), "{list}");

    let cases = [
        (
            fraud.purchase(MERCHANT, TERMINAL, &card, 1_000),
            "BLACKLIST_CARD",
        ),
        (
            fraud.purchase(MERCHANT, TERMINAL, &card_number("622150001017002"), 1_000),
            "BLACKLIST_BIN",
        ),
        (
            fraud.purchase("898310048990009", TERMINAL, &clean, 1_000),
            "BLACKLIST_MERCHANT",
        ),
        (
            fraud.purchase(MERCHANT, "TERMB009", &clean, 1_000),
            "BLACKLIST_TERMINAL",
        ),
    ];
    for (request, code) in &cases {
        let answer = fraud.assess(request);
        fraud.expect(request, &answer, pb::FraudDecision::Decline, &[code]);
        assert_eq!(answer.score, 1000);
    }
    // Must not trip: another card, BIN, merchant and terminal.
    assert!(
        fraud
            .assess(&fraud.purchase(MERCHANT, TERMINAL, &clean, 1_000))
            .reasons
            .is_empty()
    );

    // Removed, the card passes again; removing twice is fine.
    let removed =
        ok(fraud.posctl_risk(&["blacklist", "remove", &card_entry, "--reason", "card found"]));
    assert!(removed.contains(&card_entry), "{removed}");
    ok(fraud.posctl_risk(&["blacklist", "remove", &card_entry, "--reason", "card found"]));
    let after = fraud.assess(&fraud.purchase(MERCHANT, TERMINAL, &card, 1_000));
    assert!(after.reasons.is_empty(), "{after:?}");
    assert!(!ok(fraud.posctl_risk(&["blacklist", "list"])).contains(&card_entry));
    let unknown =
        refused(fraud.posctl_risk(&["blacklist", "remove", "no-such-entry", "--reason", "x"]));
    assert!(unknown.contains("NotFound"), "{unknown}");
    let bad = refused(fraud.posctl_risk(&[
        "blacklist",
        "add",
        "--pan",
        "6217000010170009",
        "--reason",
        "typo",
    ]));
    assert!(
        bad.contains("Luhn") && !bad.contains("6217000010170009"),
        "{bad}"
    );

    // Every change is an event, every call an audit record, and no event holds the PAN.
    let events = fraud.fraud_events();
    let added: Vec<&pb::BlacklistEntry> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Some(Payload::BlacklistEntryAdded(a)) => a.entry.as_ref(),
            _ => None,
        })
        .collect();
    assert_eq!(added.len(), 4, "the repeated add wrote nothing");
    let card_added = added.iter().find(|e| e.entry_id == card_entry).unwrap();
    assert_eq!(
        card_added.target,
        Some(pb::blacklist_entry::Target::CardToken(fraud.token(&card)))
    );
    assert!(
        card_added
            .added_by
            .as_ref()
            .unwrap()
            .subject
            .ends_with("analyst")
    );
    let removals = events
        .iter()
        .filter(|e| matches!(&e.payload, Some(Payload::BlacklistEntryRemoved(r)) if r.entry_id == card_entry))
        .count();
    assert_eq!(removals, 1, "removing a removed entry records nothing new");
    let audits: Vec<&pb::OperatorActionRecorded> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Some(Payload::OperatorActionRecorded(a)) => Some(a),
            _ => None,
        })
        .collect();
    assert!(audits.len() >= 11, "{} audit records", audits.len());
    for event in &events {
        let bytes = prost::Message::encode_to_vec(event);
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&card),
            "a PAN in an event"
        );
    }

    assert!(
        !String::from_utf8_lossy(&support::redis_bytes(&fraud.platform.env)).contains(&card),
        "a PAN in Redis"
    );

    // The alerts of the merchant, as an analyst lists them.
    let alerts = ok(fraud.posctl_risk(&["fraud", "alerts", "--merchant", MERCHANT]));
    assert!(
        alerts.contains("BLACKLIST_CARD") && alerts.contains("BLACKLIST_BIN"),
        "{alerts}"
    );
    assert!(
        !alerts.contains("BLACKLIST_MERCHANT"),
        "another merchant's alert: {alerts}"
    );
    let _ = ADMIN_TOKEN;
}

#[test]
fn blacklists_alerts_and_learnt_merchants_are_rebuilt_after_redis_is_flushed() {
    let mut fraud = Fraud::start();
    let card = card_number("621700001019000");
    let shop = fraud.merchant(
        &id_number("31010419850612021"),
        &card_number("622202100112360001"),
        &["09:00-18:00"],
        false,
    );
    fraud.wait_for_merchant(&shop, "09:00-18:00");
    ok(fraud.posctl_risk(&["blacklist", "add", "--pan", &card, "--reason", "stolen"]));
    let before = fraud.purchase(&shop, "TERMR001", &card, 1_000);
    let answer = fraud.assess(&before);
    fraud.expect(
        &before,
        &answer,
        pb::FraudDecision::Decline,
        &["BLACKLIST_CARD"],
    );
    fraud.platform.stop_fraud();
    let env = fraud.platform.env.clone();
    fraud.runtime.block_on(async move {
        let store = pos_store::Store::connect(&env.store()).await.unwrap();
        store.flush_prefix().await.unwrap();
    });
    fraud.platform.start_fraud();

    // Rebuilt before the first answer: the entry, the merchant's hours, the alert.
    let after = fraud.assess(&fraud.purchase(&shop, "TERMR001", &card, 1_000));
    assert_eq!(codes(&after), ["BLACKLIST_CARD"], "{after:?}");
    let mut night = fraud.purchase(&shop, "TERMR001", &fraud.fresh_card(), 1_000);
    night.local_datetime = "2026-11-28T01:00:00".to_owned();
    let night = fraud.assess(&night);
    assert!(night.reasons[0].detail.contains("09:00-18:00"), "{night:?}");
    let alerts = ok(fraud.posctl_risk(&["fraud", "alerts", "--merchant", &shop]));
    assert!(alerts.contains(&answer.assessment_id), "{alerts}");
}

#[test]
fn a_rules_file_change_takes_effect_without_a_restart_and_a_bad_one_is_refused() {
    let fraud = Fraud::start();
    let card = card_number("621700001018000");
    let first = fraud.assess(&fraud.purchase(MERCHANT, TERMINAL, &card, 1_000));
    let shipped = first.rules_version.clone();
    assert!(first.reasons.is_empty());

    std::fs::write(
        fraud.platform.fraud_rules_file(),
        "version = \"tight-1\"\n[velocity_card]\nscore = 400\nwindow_minutes = 10\nmax_count = 2\nmax_amount = \"50000.00\"\n",
    )
    .unwrap();
    fraud.assess_until(
        "the new rules in force",
        || fraud.purchase(MERCHANT, TERMINAL, &fraud.fresh_card(), 1_000),
        |a| a.rules_version == "tight-1",
    );
    // Two purchases of the card in ten minutes are still fine, the third is not.
    let second = fraud.assess(&fraud.purchase(MERCHANT, TERMINAL, &card, 1_000));
    assert!(second.reasons.is_empty(), "{second:?}");
    let answer = fraud.assess(&fraud.purchase(MERCHANT, TERMINAL, &card, 1_000));
    assert_eq!(codes(&answer), ["VELOCITY_CARD"], "{answer:?}");
    assert!(answer.reasons[0].detail.contains("limit 2"), "{answer:?}");
    assert_eq!(answer.decision, pb::FraudDecision::Review as i32);

    // A typo: refused with the reason, the rules in force stay.
    std::fs::write(
        fraud.platform.fraud_rules_file(),
        "version = \"broken-2\"\n[velocity_card]\nmax_cuont = 1\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let rejected = loop {
        let found = fraud
            .fraud_events()
            .into_iter()
            .find_map(|e| match e.payload {
                Some(Payload::FraudRulesRejected(r)) if r.error.contains("max_cuont") => Some(r),
                _ => None,
            });
        if let Some(found) = found {
            break found;
        }
        assert!(Instant::now() < deadline, "no FraudRulesRejected");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(rejected.error.contains("max_cuont"), "{rejected:?}");
    assert_eq!(rejected.rules_version_in_force, "tight-1");
    let still = fraud.assess(&fraud.purchase(MERCHANT, TERMINAL, &card, 1_000));
    assert_eq!(still.rules_version, "tight-1");
    assert_eq!(codes(&still), ["VELOCITY_CARD"]);
    assert!(
        fraud
            .platform
            .fraud
            .as_ref()
            .unwrap()
            .log_text()
            .contains("max_cuont"),
        "the refusal is logged with its reason"
    );

    let reloads: Vec<pb::FraudRulesReloaded> = fraud
        .fraud_events()
        .into_iter()
        .filter_map(|e| match e.payload {
            Some(Payload::FraudRulesReloaded(r)) => Some(r),
            _ => None,
        })
        .collect();
    let versions: Vec<(&str, &str)> = reloads
        .iter()
        .map(|r| (r.previous_rules_version.as_str(), r.rules_version.as_str()))
        .collect();
    assert_eq!(
        versions,
        [("", shipped.as_str()), (shipped.as_str(), "tight-1")]
    );
}

#[test]
fn a_blacklisted_card_is_declined_with_59_through_the_agent_and_no_money_moves() {
    let mut platform = Platform::start_full();
    platform.use_fraud_check("1000.00");
    let fraud = Fraud::over(platform);
    let platform = &fraud.platform;
    let merchant = platform.active_merchant();
    platform.ready_terminal(&merchant, "f");
    ok(fraud.posctl_risk(&[
        "blacklist",
        "add",
        "--pan",
        DEBIT,
        "--reason",
        "stolen card reported",
    ]));

    let before = platform.available_fen(DEBIT);
    let refusal = refused(platform.agent(
        "f",
        &[
            "purchase", "--amount", "66.00", "--card", DEBIT_CARD, "--entry", "chip", "--pin",
            "123456",
        ],
    ));
    assert!(refusal.contains("(59)"), "{refusal}");
    assert_eq!(platform.available_fen(DEBIT), before, "no money moved");
    // Another card pays as usual.
    ok(platform.agent(
        "f",
        &[
            "purchase",
            "--amount",
            "12.00",
            "--card",
            CREDIT_CARD,
            "--entry",
            "tap",
        ],
    ));
    // A counterfeit: the digits printed on its face are not those on its chip.
    let credit_before = platform.available_fen(CREDIT);
    let counterfeit = refused(platform.agent(
        "f",
        &[
            "purchase",
            "--amount",
            "30.00",
            "--card",
            CREDIT_CARD,
            "--entry",
            "tap",
            "--card-face-last4",
            "9999",
        ],
    ));
    assert!(counterfeit.contains("(59)"), "{counterfeit}");
    assert_eq!(
        platform.available_fen(CREDIT),
        credit_before,
        "no money moved"
    );

    let transactions = fraud.events_on(Topic::Transactions);
    let declines: Vec<pb::AuthorizationDeclined> = transactions
        .iter()
        .filter_map(|e| match &e.payload {
            Some(Payload::AuthorizationDeclined(d)) => Some(d.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(declines.len(), 2);
    assert_eq!(
        declines[1]
            .fraud_reasons
            .iter()
            .map(|r| r.code.as_str())
            .collect::<Vec<_>>(),
        ["CARD_NUMBER_MISMATCH"]
    );
    let declined = declines[0].clone();
    let txn = declined.txn.unwrap();
    assert_eq!(txn.response_code, "59");
    assert_eq!(declined.source, pb::DeclineSource::Fraud as i32);
    assert_eq!(txn.fraud_decision, pb::FraudDecision::Decline as i32);
    assert_eq!(txn.fraud_policy, pb::FraudPolicy::Checked as i32);
    assert_eq!(
        declined
            .fraud_reasons
            .iter()
            .map(|r| r.code.as_str())
            .collect::<Vec<_>>(),
        ["BLACKLIST_CARD"]
    );
    let alert = fraud
        .alerts()
        .into_iter()
        .find(|a| a.transaction_id == txn.transaction_id)
        .unwrap();
    assert_eq!(alert.decision, pb::FraudDecision::Decline as i32);
}

#[test]
fn with_fraud_check_down_authorization_fails_open_below_the_limit_and_closed_above() {
    let mut platform = Platform::start_full();
    platform.use_fraud_check("100.00");
    let merchant = platform.active_merchant();
    platform.ready_terminal(&merchant, "g");
    platform.stop_fraud();
    let fraud_down = Fraud::over(platform);
    let platform = &fraud_down.platform;

    let before = platform.available_fen(DEBIT);
    ok(platform.agent(
        "g",
        &[
            "purchase", "--amount", "20.00", "--card", DEBIT_CARD, "--entry", "chip", "--pin",
            "123456",
        ],
    ));
    assert_eq!(platform.available_fen(DEBIT), before - 2_000);
    let refusal = refused(platform.agent(
        "g",
        &[
            "purchase", "--amount", "500.00", "--card", DEBIT_CARD, "--entry", "chip", "--pin",
            "123456",
        ],
    ));
    assert!(refusal.contains("(96)"), "{refusal}");
    assert_eq!(
        platform.available_fen(DEBIT),
        before - 2_000,
        "the refused one moved nothing"
    );

    let events = fraud_down.events_on(Topic::Transactions);
    let open = events
        .iter()
        .find_map(|e| match &e.payload {
            Some(Payload::AuthorizationApproved(a)) => a.txn.clone(),
            _ => None,
        })
        .unwrap();
    assert_eq!(open.fraud_policy, pb::FraudPolicy::FailOpen as i32);
    assert_eq!(open.fraud_decision, pb::FraudDecision::Unspecified as i32);
    let closed = events
        .iter()
        .find_map(|e| match &e.payload {
            Some(Payload::AuthorizationDeclined(d)) => Some(d.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        closed.txn.as_ref().unwrap().fraud_policy,
        pb::FraudPolicy::FailClosed as i32
    );
    assert_eq!(closed.source, pb::DeclineSource::Fraud as i32);
}
