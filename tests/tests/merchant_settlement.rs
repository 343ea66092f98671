//! Merchant settlement per business day end to end through the real binaries: a day of
//! purchases, voids, refunds, reversals and pre-auth completions at two merchants and three
//! terminals settles to hand-computed gross, fee and net figures, to the fen; the gross equals
//! the event log's sum and the issuing bank's ledger movement; running again changes nothing;
//! a reversal after the day was settled is carried into the next settlement as an adjustment;
//! a Redis flushed and rebuilt from the topics gives the same settlements; only operators with
//! the settlement role may settle, and every call is audited.
//!
//! Today's business date cannot be settled (it is not over), so the settlement service runs
//! with the operations knob `POS_SETTLEMENT_CLOSED_THROUGH` set to tomorrow: today can be
//! settled, and tomorrow's settlement carries the late reversal. (It is set before the service
//! first starts: a settlement service killed and restarted mid-test waits for the broker to
//! give its consumer group's partitions back, which Tansu takes long to do.)

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};

use pos_domain::time::{BusinessDay, civil_from_days, days_from_iso_date};
use pos_events::{EventEnvelope, EventReader, Payload, Topic};
use pos_proto::v1 as pb;
use pos_proto::v1::settlement_client::SettlementClient;
use support::{ADMIN_TOKEN, ONBOARDING_TOKEN, Platform, SETTLEMENT_TOKEN, field, ok, refused};

/// A demo card: PAN, the agent's card argument, entry mode, PIN.
struct Card {
    pan: &'static str,
    arg: &'static str,
    entry: &'static str,
    pin: Option<&'static str>,
}

/// Merchant A's cards.
const DEBIT: Card = Card {
    pan: "6217000010012345677",
    arg: "6217000010012345677/3012/220",
    entry: "chip",
    pin: Some("123456"),
};
const CREDIT: Card = Card {
    pan: "6225880011223345",
    arg: "6225880011223345/2912/201",
    entry: "tap",
    pin: None,
};
/// Merchant B's cards (both debit).
const STRIPE: Card = Card {
    pan: "6217000010050000077",
    arg: "6217000010050000077/3012/101",
    entry: "swipe",
    pin: None,
};
const LIMITED: Card = Card {
    pan: "6217000010040000096",
    arg: "6217000010040000096/3012/220",
    entry: "chip",
    pin: Some("123456"),
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn card_args<'a>(card: &'a Card, mut args: Vec<&'a str>) -> Vec<&'a str> {
    args.extend(["--card", card.arg, "--entry", card.entry]);
    if let Some(pin) = card.pin {
        args.extend(["--pin", pin]);
    }
    args
}

fn receipt_value(out: &str, label: &str) -> String {
    out.lines()
        .find_map(|line| line.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in:\n{out}"))
        .trim()
        .to_owned()
}

/// A sale as its receipt tells it.
struct Sale {
    batch: u32,
    stan: u32,
    rrn: String,
}

fn sale(out: &str) -> Sale {
    Sale {
        batch: receipt_value(out, "批次号 BATCH NO.:").parse().unwrap(),
        stan: receipt_value(out, "凭证号 VOUCHER NO.:").parse().unwrap(),
        rrn: receipt_value(out, "参考号 REF. NO.:"),
    }
}

fn purchase(platform: &Platform, device: &str, amount: &str, card: &Card) -> Sale {
    sale(&ok(platform.agent(
        device,
        &card_args(card, vec!["purchase", "--amount", amount]),
    )))
}

fn void(platform: &Platform, device: &str, sale: &Sale) {
    ok(platform.agent(device, &["void", "--stan", &sale.stan.to_string()]));
}

fn refund(platform: &Platform, device: &str, sale: &Sale, date: &str, amount: &str, card: &Card) {
    let args = card_args(
        card,
        vec![
            "refund",
            "--rrn",
            &sale.rrn,
            "--date",
            date,
            "--amount",
            amount,
            "--supervisor-password",
            "0000",
        ],
    );
    ok(platform.agent(device, &args));
}

/// A pre-authorization of `hold` completed for `amount`.
fn completion(platform: &Platform, device: &str, hold: &str, amount: &str, card: &Card) {
    let held = ok(platform.agent(device, &card_args(card, vec!["preauth", "--amount", hold])));
    let code = receipt_value(&held, "授权码 AUTH NO.:");
    ok(platform.agent(
        device,
        &card_args(
            card,
            vec!["complete", "--amount", amount, "--auth-code", &code],
        ),
    ));
}

/// The host reverses a purchase (as for an answer its terminal never got).
fn reverse(platform: &Platform, terminal: &str, merchant: &str, sale: &Sale, fen: i64) {
    let url = format!("http://127.0.0.1:{}", platform.reversal_port);
    let (terminal, merchant) = (terminal.to_owned(), merchant.to_owned());
    let (batch_no, stan) = (sale.batch, sale.stan);
    let answer = runtime().block_on(async move {
        let channel = tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        pos_proto::v1::reversal_client::ReversalClient::new(channel)
            .reverse(pb::ReverseRequest {
                original: Some(pb::TerminalTraceRef {
                    terminal_id: terminal,
                    batch_no,
                    stan,
                }),
                original_type: pb::TransactionType::Purchase as i32,
                amount: Some(pb::Money {
                    minor_units: fen,
                    currency: "CNY".to_owned(),
                }),
                reason_code: "98".to_owned(),
                merchant_id: merchant,
                ..pb::ReverseRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
    });
    assert_eq!(answer.outcome, pb::ReversalOutcome::Reversed as i32);
}

fn events(platform: &Platform, topics: &[Topic]) -> Vec<EventEnvelope> {
    let config = platform.env.bus("scan");
    let topics = topics.to_vec();
    runtime().block_on(async move {
        let reader = EventReader::from_beginning(&config, &topics).await.unwrap();
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

/// What the event log says moved for `merchant` on `date`, signed, in fen: computed here from
/// the raw events, independently of the settlement service.
fn log_sum(events: &[EventEnvelope], merchant: &str, date: &str) -> i64 {
    use pb::TransactionType as T;
    let mine = |f: &pb::TransactionFacts| f.merchant_id == merchant && f.business_date == date;
    let fen = |m: &Option<pb::Money>| m.as_ref().unwrap().minor_units;
    events
        .iter()
        .map(|e| match &e.payload {
            Some(Payload::AuthorizationApproved(a)) => {
                let t = a.txn.as_ref().unwrap();
                if mine(t) && t.transaction_type == T::Purchase as i32 {
                    fen(&t.amount)
                } else {
                    0
                }
            }
            Some(Payload::PreAuthCompleted(c)) => {
                let t = c.txn.as_ref().unwrap();
                if mine(t) { fen(&t.amount) } else { 0 }
            }
            Some(Payload::TransactionVoided(v)) => {
                let t = v.txn.as_ref().unwrap();
                if mine(t) { -fen(&t.amount) } else { 0 }
            }
            Some(Payload::TransactionRefunded(r)) => {
                let t = r.txn.as_ref().unwrap();
                if mine(t) { -fen(&t.amount) } else { 0 }
            }
            Some(Payload::TransactionReversed(r)) => {
                let o = r.original.as_ref().unwrap();
                if o.merchant_id != merchant || r.business_date != date {
                    return 0;
                }
                match T::try_from(o.transaction_type).unwrap() {
                    T::Purchase | T::PreAuthCompletion => -fen(&r.amount),
                    T::PurchaseVoid | T::CompletionVoid => fen(&r.amount),
                    _ => 0,
                }
            }
            _ => 0,
        })
        .sum()
}

/// Waits until `check` holds, or fails with `what`.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("timed out waiting until {what}");
}

/// One merchant settlement through the gRPC API as the admin (the whole message).
fn get_settlement(platform: &Platform, merchant: &str, date: &str) -> pb::MerchantSettlement {
    let url = format!("http://127.0.0.1:{}", platform.settlement_port);
    let (merchant, date) = (merchant.to_owned(), date.to_owned());
    runtime().block_on(async move {
        let channel = tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut request = tonic::Request::new(pb::GetMerchantSettlementRequest {
            merchant_id: merchant,
            business_date: date,
        });
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {ADMIN_TOKEN}").parse().unwrap(),
        );
        SettlementClient::new(channel)
            .get_merchant_settlement(request)
            .await
            .unwrap()
            .into_inner()
            .settlement
            .unwrap()
    })
}

/// The `key: value` block of one merchant in `posctl settlement run` output.
fn block<'a>(out: &'a str, merchant: &str) -> &'a str {
    out.split("\n\n")
        .find(|b| b.contains(&format!("merchant_id: {merchant}")))
        .unwrap_or_else(|| panic!("no settlement of {merchant} in:\n{out}"))
}

fn next_day(date: &str) -> String {
    let (y, m, d) = civil_from_days(days_from_iso_date(date).unwrap() + 1);
    format!("{y:04}-{m:02}-{d:02}")
}

#[test]
fn a_day_of_two_merchants_settles_to_the_fen_and_a_late_reversal_is_carried_forward() {
    let today = BusinessDay::default().today();
    let tomorrow = next_day(&today);
    let mut platform = Platform::start();
    platform.settlement_settings = vec![("POS_SETTLEMENT_CLOSED_THROUGH", tomorrow.clone())];
    platform.start_issuer();
    platform.start_authorization();
    platform.start_reversal();
    platform.start_settlement();
    let a = platform.active_merchant();
    let b = platform.active_merchant();
    let a1 = platform.ready_terminal(&a, "a1");
    let a2 = platform.ready_terminal(&a, "a2");
    let b1 = platform.ready_terminal(&b, "b1");
    let cards = [&DEBIT, &CREDIT, &STRIPE, &LIMITED];
    let before: Vec<i64> = cards
        .iter()
        .map(|c| platform.available_fen(c.pan))
        .collect();

    // Merchant A: debit 0.50 % capped at 20.00, credit 0.60 %, refund fees returned.
    // Terminal A1.
    let p1 = purchase(&platform, "a1", "100.00", &CREDIT); // fee 0.60
    purchase(&platform, "a1", "5000.00", &DEBIT); // 25.00, capped: 20.00
    let p3 = purchase(&platform, "a1", "30.00", &CREDIT);
    void(&platform, "a1", &p3); // voided the same day: no fee
    refund(&platform, "a1", &p1, &today, "40.00", &CREDIT); // gives back 0.60 × 40 % = 0.24
    // Terminal A2.
    let p5 = purchase(&platform, "a2", "88.88", &CREDIT); // 0.53328: 0.53
    let p6 = purchase(&platform, "a2", "20.00", &DEBIT);
    reverse(&platform, &a2, &a, &p6, 2_000); // reversed: no fee
    completion(&platform, "a2", "300.00", "280.00", &CREDIT); // 1.68
    // Merchant B (same schedule), terminal B1.
    let p8 = purchase(&platform, "b1", "33.30", &STRIPE); // 0.1665: 0.17
    purchase(&platform, "b1", "66.00", &LIMITED); // 0.33
    completion(&platform, "b1", "100.00", "80.00", &LIMITED); // 0.40
    let p11 = purchase(&platform, "b1", "10.00", &STRIPE);
    void(&platform, "b1", &p11);
    refund(&platform, "b1", &p8, &today, "33.30", &STRIPE); // the whole 0.17 back

    // The terminals settle their batches at the end of the day (which also brings the
    // settlement service's projection up to each terminal's last transaction).
    for device in ["a1", "a2", "b1"] {
        let settled = ok(platform.agent(device, &["settle"]));
        assert!(settled.contains("closed; next batch"), "{settled}");
    }

    // Not a day that is not closed.
    let early = refused(platform.posctl_settlement_as(
        SETTLEMENT_TOKEN,
        &["settlement", "run", "--date", &next_day(&tomorrow)],
    ));
    assert!(early.contains("not closed"), "{early}");

    let run =
        ok(platform
            .posctl_settlement_as(SETTLEMENT_TOKEN, &["settlement", "run", "--date", &today]));
    assert_eq!(field(&run, "settlements"), "2");
    assert_eq!(field(&run, "created"), "2");
    let sa = block(&run, &a);
    assert_eq!(field(sa, "purchases"), "5 5238.88 CNY");
    assert_eq!(field(sa, "completions"), "1 280.00 CNY");
    assert_eq!(field(sa, "voids"), "1 30.00 CNY");
    assert_eq!(field(sa, "reversals"), "1 20.00 CNY");
    assert_eq!(field(sa, "refunds"), "1 40.00 CNY");
    // 5238.88 + 280.00 − 30.00 − 20.00 − 40.00
    assert_eq!(field(sa, "gross"), "5428.88 CNY");
    // 0.60 + 20.00 + 0.53 + 1.68 − 0.24
    assert_eq!(field(sa, "fee"), "22.57 CNY");
    assert_eq!(field(sa, "net"), "5406.31 CNY");
    assert_eq!(field(sa, "adjustments"), "0 0.00 CNY");
    assert_eq!(field(sa, "transactions"), "9");
    let sb = block(&run, &b);
    assert_eq!(field(sb, "purchases"), "3 109.30 CNY");
    assert_eq!(field(sb, "completions"), "1 80.00 CNY");
    assert_eq!(field(sb, "voids"), "1 10.00 CNY");
    assert_eq!(field(sb, "reversals"), "0 0.00 CNY");
    assert_eq!(field(sb, "refunds"), "1 33.30 CNY");
    assert_eq!(field(sb, "gross"), "146.00 CNY");
    // 0.17 + 0.33 + 0.40 − 0.17
    assert_eq!(field(sb, "fee"), "0.73 CNY");
    assert_eq!(field(sb, "net"), "145.27 CNY");
    assert!(field(sb, "account").contains("****"), "{sb}");

    // Gross = the event log's sum = what the bank moved on each merchant's cards.
    let log = events(&platform, &[Topic::Transactions]);
    let moved = |platform: &Platform, range: std::ops::Range<usize>| -> i64 {
        range
            .map(|i| before[i] - platform.available_fen(cards[i].pan))
            .sum()
    };
    assert_eq!(log_sum(&log, &a, &today), 542_888);
    assert_eq!(
        moved(&platform, 0..2),
        542_888,
        "merchant A's cards at the bank"
    );
    assert_eq!(log_sum(&log, &b, &today), 14_600);
    assert_eq!(
        moved(&platform, 2..4),
        14_600,
        "merchant B's cards at the bank"
    );

    // The settlement file: one line per transaction and a totals line; no card in full.
    let file = std::fs::read_to_string(field(sa, "file")).unwrap();
    let lines: Vec<&str> = file.lines().collect();
    assert_eq!(lines.len(), 1 + 9 + 1, "{file}");
    assert!(lines[0].starts_with("record,time,terminal_id,batch_no,stan,type"));
    assert_eq!(lines.iter().filter(|l| l.starts_with("TXN,")).count(), 9);
    let total = lines.last().unwrap();
    assert!(
        total.starts_with("TOTAL,,,,,,,5428.88,22.57,5406.31,"),
        "{total}"
    );
    for card in cards {
        assert!(!file.contains(card.pan), "a full PAN in the file:\n{file}");
    }
    assert!(file.contains(&a1) && file.contains(&a2) && !file.contains(&b1));
    assert!(
        file.contains(",PURCHASE,622588****3345,100.00,0.60,99.40,"),
        "{file}"
    );

    // Running it again changes nothing.
    let again =
        ok(platform
            .posctl_settlement_as(SETTLEMENT_TOKEN, &["settlement", "run", "--date", &today]));
    assert_eq!(field(&again, "created"), "0");
    assert_eq!(block(&again, &a), sa);
    assert_eq!(block(&again, &b), sb);
    let settled_a = get_settlement(&platform, &a, &today);
    let settled_b = get_settlement(&platform, &b, &today);

    // A reversal after the day was settled: carried into the next settlement.
    reverse(&platform, &a2, &a, &p5, 8_888);
    eventually("the late reversal is recorded as an adjustment", || {
        events(&platform, &[Topic::Settlement])
            .iter()
            .any(|e| matches!(&e.payload, Some(Payload::SettlementAdjustmentRecorded(r)) if r.adjustment.as_ref().unwrap().merchant_id == a))
    });
    assert_eq!(
        get_settlement(&platform, &a, &today),
        settled_a,
        "a settled day stays"
    );
    let next = ok(platform.posctl_settlement_as(
        SETTLEMENT_TOKEN,
        &["settlement", "run", "--date", &tomorrow],
    ));
    assert_eq!(
        field(&next, "settlements"),
        "1",
        "only A has something to settle"
    );
    let carried = block(&next, &a);
    assert_eq!(field(carried, "gross"), "0.00 CNY");
    assert_eq!(field(carried, "adjustments"), "1 -88.88 CNY");
    assert_eq!(field(carried, "fee"), "-0.53 CNY", "the fee goes back");
    assert_eq!(field(carried, "net"), "-88.35 CNY");
    let adjustment = field(carried, "adjustment");
    assert!(
        adjustment.contains(&format!("REVERSAL of {today}")),
        "{adjustment}"
    );
    assert_eq!(
        moved(&platform, 0..2),
        542_888 - 8_888,
        "the bank moved the late reversal"
    );
    let settled_next = get_settlement(&platform, &a, &tomorrow);
    let shown = ok(platform.posctl_settlement_as(
        SETTLEMENT_TOKEN,
        &["settlement", "show", "--merchant", &a, "--date", &tomorrow],
    ));
    assert_eq!(shown.trim_end(), carried.trim_end());

    // One MerchantSettled per merchant and date.
    let settled_events = events(&platform, &[Topic::Settlement])
        .into_iter()
        .filter(|e| matches!(e.payload, Some(Payload::MerchantSettled(_))))
        .count();
    assert_eq!(settled_events, 3);

    // Flushing Redis and replaying the topics gives the same settlements, and running again
    // still changes nothing.
    platform.flush_and_restart();
    assert_eq!(get_settlement(&platform, &a, &today), settled_a);
    assert_eq!(get_settlement(&platform, &b, &today), settled_b);
    assert_eq!(get_settlement(&platform, &a, &tomorrow), settled_next);
    let replayed =
        ok(platform
            .posctl_settlement_as(SETTLEMENT_TOKEN, &["settlement", "run", "--date", &today]));
    assert_eq!(field(&replayed, "created"), "0");
    assert_eq!(block(&replayed, &a), sa);
    let replayed_next = ok(platform.posctl_settlement_as(
        SETTLEMENT_TOKEN,
        &["settlement", "run", "--date", &tomorrow],
    ));
    assert_eq!(field(&replayed_next, "created"), "0");
    let list =
        ok(platform
            .posctl_settlement_as(SETTLEMENT_TOKEN, &["settlement", "list", "--merchant", &a]));
    let listed: Vec<&str> = list.lines().collect();
    assert_eq!(listed.len(), 2, "{list}");
    assert!(listed[0].starts_with(&format!("{tomorrow}  {a}  gross 0.00 CNY")));
    assert!(listed[1].starts_with(&format!("{today}  {a}  gross 5428.88 CNY")));
}

#[test]
fn only_settlement_operators_may_settle_and_every_call_is_audited() {
    let mut platform = Platform::start();
    let merchant = platform.active_merchant();
    platform.start_settlement();
    let today = BusinessDay::default().today();
    let yesterday = {
        let (y, m, d) = civil_from_days(days_from_iso_date(&today).unwrap() - 1);
        format!("{y:04}-{m:02}-{d:02}")
    };
    let run = [
        "settlement",
        "run",
        "--date",
        &yesterday,
        "--merchant",
        &merchant,
    ];

    let denied = refused(platform.posctl_settlement_as(ONBOARDING_TOKEN, &run));
    assert!(denied.contains("lacks the settlement role"), "{denied}");
    let unknown = refused(platform.posctl_settlement_as("not-a-token", &run));
    assert!(unknown.contains("Unauthenticated"), "{unknown}");
    let malformed = refused(platform.posctl_settlement_as(
        SETTLEMENT_TOKEN,
        &["settlement", "run", "--date", "2026-02-30"],
    ));
    assert!(malformed.contains("InvalidArgument"), "{malformed}");
    let missing = refused(platform.posctl_settlement_as(
        SETTLEMENT_TOKEN,
        &[
            "settlement",
            "show",
            "--merchant",
            &merchant,
            "--date",
            &yesterday,
        ],
    ));
    assert!(missing.contains("NotFound"), "{missing}");

    // A merchant without transactions settles to zero, once.
    eventually("the settlement service knows the merchant", || {
        platform
            .posctl_settlement_as(SETTLEMENT_TOKEN, &run)
            .status
            .success()
    });
    let again = ok(platform.posctl_settlement_as(ADMIN_TOKEN, &run));
    assert_eq!(field(&again, "created"), "0");
    assert_eq!(field(&again, "net"), "0.00 CNY");
    assert_eq!(
        field(&again, "fee_schedule"),
        "debit 0.0050 cap 20.00 CNY, credit 0.0060 cap -"
    );

    let audit: Vec<pb::OperatorActionRecorded> = events(&platform, &[Topic::Settlement])
        .into_iter()
        .filter_map(|e| match e.payload {
            Some(Payload::OperatorActionRecorded(a)) => Some(a),
            _ => None,
        })
        .collect();
    let by = |subject: &str, outcome: pb::ActionOutcome| {
        audit
            .iter()
            .filter(|a| a.actor.as_ref().unwrap().subject == subject && a.outcome == outcome as i32)
            .count()
    };
    assert_eq!(by("ops:onboarder", pb::ActionOutcome::Denied), 1);
    assert!(by("ops:settler", pb::ActionOutcome::Refused) >= 2);
    assert!(by("ops:settler", pb::ActionOutcome::Succeeded) >= 1);
    assert_eq!(by("ops:admin", pb::ActionOutcome::Succeeded), 1);
    assert!(
        audit
            .iter()
            .all(|a| a.action.starts_with("/pos.v1.Settlement/")),
        "{audit:?}"
    );
}
