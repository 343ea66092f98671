//! Reversals, voids and refunds end to end through the real binaries: pos-agent (with its
//! journal) → terminal-gateway → authorization / reversal → issuer-sim, against the real broker
//! and Redis. Money is checked at the bank to the fen and in the event log.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use pos_events::{EventEnvelope, EventReader, Payload, Topic};
use pos_proto::v1 as pb;
use support::{Platform, ok, refused};

const DEBIT: &str = "6217000010012345677";
const DEBIT_CARD: &str = "6217000010012345677/3012/220";
const CREDIT: &str = "6225880011223345";
const CREDIT_CARD: &str = "6225880011223345/2912/201";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Every event on the test's transactions topic.
fn transaction_events(platform: &Platform) -> Vec<EventEnvelope> {
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

/// Waits until `check` holds (the services act asynchronously), or fails with `what`.
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

/// The value printed after a receipt label such as "凭证号 VOUCHER NO.:".
fn receipt_value(out: &str, label: &str) -> String {
    out.lines()
        .find_map(|line| line.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in:\n{out}"))
        .trim()
        .to_owned()
}

fn voucher(out: &str) -> String {
    receipt_value(out, "凭证号 VOUCHER NO.:")
}

fn rrn(out: &str) -> String {
    receipt_value(out, "参考号 REF. NO.:")
}

fn purchase(platform: &Platform, device: &str, amount: &str) -> String {
    ok(platform.agent(
        device,
        &[
            "purchase",
            "--amount",
            amount,
            "--card",
            CREDIT_CARD,
            "--entry",
            "tap",
        ],
    ))
}

fn reversed_events(events: &[EventEnvelope]) -> Vec<&pb::TransactionReversed> {
    events
        .iter()
        .filter_map(|e| match &e.payload {
            Some(Payload::TransactionReversed(r)) => Some(r),
            _ => None,
        })
        .collect()
}

/// Starts a purchase on `device`, waits until the agent says it was sent, and kills the agent
/// before the (slow) bank answers. Returns the STAN it used.
fn purchase_then_kill(platform: &Platform, device: &str, amount: &str) -> String {
    let mut child = platform.agent_child(
        device,
        &[
            "purchase", "--amount", amount, "--card", DEBIT_CARD, "--entry", "chip", "--pin",
            "123456",
        ],
    );
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let sent = loop {
        let line = lines
            .next()
            .expect("the agent ended before sending")
            .unwrap();
        if line.starts_with("sent: ") {
            break line;
        }
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let stan = sent
        .split_whitespace()
        .skip_while(|w| *w != "STAN")
        .nth(1)
        .unwrap()
        .trim_end_matches(',')
        .to_owned();
    assert_eq!(stan.len(), 6, "{sent}");
    stan
}

#[test]
fn an_agent_killed_before_the_answer_reverses_on_restart_and_one_reversal_is_recorded() {
    let mut platform = Platform::start_full();
    platform.restart_issuer_with(&[("POS_ISSUER_ANSWER_DELAY_MS", "2000")]);
    let merchant = platform.active_merchant();
    let terminal = platform.ready_terminal(&merchant, "k");
    let before = platform.available_fen(DEBIT);

    let stan = purchase_then_kill(&platform, "k", "66.00");
    let journal = ok(platform.agent("k", &["journal"]));
    assert!(
        journal.contains(&stan),
        "the reversal was journaled before the request went out:\n{journal}"
    );
    let saved = platform.dir.join("journal-copy.redb");
    std::fs::copy(platform.device_dir("k").join("journal.redb"), &saved).unwrap();

    // Restart: the pending reversal goes out, three times over (the journal restored as if
    // the acknowledgement had been lost twice).
    let first = ok(platform.agent("k", &["sign-in"]));
    assert!(
        first.contains("acknowledged"),
        "sign-in sends the pending reversal: {first}"
    );
    for _ in 0..2 {
        std::fs::copy(&saved, platform.device_dir("k").join("journal.redb")).unwrap();
        let again = ok(platform.agent("k", &["reverse"]));
        assert!(again.contains("acknowledged"), "{again}");
    }
    eventually("the bank's balance is back where it started", || {
        platform.available_fen(DEBIT) == before
    });
    // The slow approval, the gateway's undelivered record and every repeat have landed.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(platform.available_fen(DEBIT), before, "nothing moved twice");

    let events = transaction_events(&platform);
    let stan_no: u32 = stan.parse().unwrap();
    let reversed: Vec<_> = reversed_events(&events)
        .into_iter()
        .filter(|r| {
            let trace = r.original.as_ref().unwrap().trace.clone().unwrap();
            trace.terminal_id == terminal && trace.stan == stan_no
        })
        .collect();
    assert_eq!(reversed.len(), 1, "exactly one reversal recorded");
    assert_eq!(reversed[0].amount.as_ref().unwrap().minor_units, 6_600);
    let acknowledged = events
        .iter()
        .filter(|e| matches!(&e.payload, Some(Payload::ReversalAcknowledged(a)) if a.reversal_id == reversed[0].reversal_id))
        .count();
    assert!(
        acknowledged >= 2,
        "the repeats are acknowledged without undoing anything again"
    );
    let journal = ok(platform.agent("k", &["journal"]));
    assert!(
        !journal.contains(&format!("{stan} ")) || journal.contains("no pending"),
        "nothing is pending any more:\n{journal}"
    );
}

#[test]
fn the_host_reverses_an_approval_it_could_not_deliver() {
    let mut platform = Platform::start_full();
    platform.restart_issuer_with(&[("POS_ISSUER_ANSWER_DELAY_MS", "2000")]);
    let merchant = platform.active_merchant();
    let terminal = platform.ready_terminal(&merchant, "h");
    let before = platform.available_fen(DEBIT);

    let stan = purchase_then_kill(&platform, "h", "45.60");
    // No terminal involved from here on: the gateway records the undelivered approval and
    // the reversal service undoes it.
    eventually("the host reversed the undelivered approval", || {
        reversed_events(&transaction_events(&platform))
            .iter()
            .any(|r| r.initiator == pb::ReversalInitiator::Host as i32)
    });
    assert_eq!(platform.available_fen(DEBIT), before);
    let events = transaction_events(&platform);
    let undelivered = events
        .iter()
        .find_map(|e| match &e.payload {
            Some(Payload::ApprovalUndelivered(u)) => u.txn.clone(),
            _ => None,
        })
        .expect("the gateway recorded the undelivered approval");
    let trace = undelivered.trace.unwrap();
    assert_eq!(
        (trace.terminal_id.as_str(), trace.stan),
        (terminal.as_str(), stan.parse().unwrap())
    );
    let reversed = reversed_events(&events);
    assert_eq!(reversed.len(), 1);
    assert_eq!(reversed[0].reason_code, "UNDELIVERED");

    // The terminal's own reversal, sent later, changes nothing.
    let late = ok(platform.agent("h", &["reverse"]));
    assert!(late.contains("ALREADY_REVERSED"), "{late}");
    assert_eq!(reversed_events(&transaction_events(&platform)).len(), 1);
    assert_eq!(platform.available_fen(DEBIT), before);
}

#[test]
fn a_void_in_the_open_batch_works_once_and_each_refusal_has_its_code() {
    let platform = Platform::start_full();
    let merchant = platform.active_merchant();
    let terminal = platform.ready_terminal(&merchant, "v");
    let before = platform.available_fen(CREDIT);

    let sale = purchase(&platform, "v", "50.00");
    let stan = voucher(&sale);
    assert_eq!(platform.available_fen(CREDIT), before - 5_000);

    let wrong = refused(platform.agent("v", &["void", "--stan", &stan, "--amount", "49.99"]));
    assert!(
        wrong.contains("64"),
        "a void is for the full amount: {wrong}"
    );
    assert_eq!(platform.available_fen(CREDIT), before - 5_000);

    let voided = ok(platform.agent("v", &["void", "--stan", &stan]));
    assert!(
        voided.contains("撤销") && voided.contains("RMB 50.00"),
        "{voided}"
    );
    assert_eq!(
        platform.available_fen(CREDIT),
        before,
        "the void gave it all back"
    );

    let trace = format!("{terminal}:{}:{stan}", batch_of(&sale));
    let mut shown = String::new();
    eventually("posctl shows the purchase voided", || {
        shown =
            String::from_utf8_lossy(&platform.posctl(&["txn", "show", "--trace", &trace]).stdout)
                .into_owned();
        shown.contains("status: VOIDED")
    });
    assert!(
        shown.contains("AuthorizationApproved") && shown.contains("TransactionVoided"),
        "the whole history, approved then voided:\n{shown}"
    );
    let twice = refused(platform.agent("v", &["void", "--stan", &stan, "--amount", "50.00"]));
    assert!(
        twice.contains("12") && twice.contains("already voided"),
        "{twice}"
    );
    let refund_voided = refused(platform.agent(
        "v",
        &[
            "refund",
            "--rrn",
            &rrn(&sale),
            "--date",
            &today(),
            "--amount",
            "10.00",
            "--card",
            CREDIT_CARD,
            "--entry",
            "tap",
            "--supervisor-password",
            "0000",
        ],
    ));
    assert!(
        refund_voided.contains("12") && refund_voided.contains("voided"),
        "a voided purchase cannot be refunded: {refund_voided}"
    );
    let unknown = refused(platform.agent("v", &["void", "--stan", "999999", "--amount", "1.00"]));
    assert!(unknown.contains("25"), "{unknown}");
    assert_eq!(
        platform.available_fen(CREDIT),
        before,
        "refusals move nothing"
    );

    // A purchase whose batch settlement closed cannot be voided: refund is the way.
    let later = purchase(&platform, "v", "20.00");
    // The batch is settled (结算): a void is refused with the reason, refund is the way.
    let settlement = ok(platform.agent("v", &["settle"]));
    assert!(settlement.contains("BALANCED"), "{settlement}");
    let settled =
        refused(platform.agent("v", &["void", "--rrn", &rrn(&later), "--amount", "20.00"]));
    assert!(settled.contains("use refund"), "{settled}");
    let refund = ok(platform.agent(
        "v",
        &[
            "refund",
            "--rrn",
            &rrn(&later),
            "--date",
            &today(),
            "--amount",
            "20.00",
            "--card",
            CREDIT_CARD,
            "--entry",
            "tap",
            "--supervisor-password",
            "0000",
        ],
    ));
    assert!(refund.contains("退货"), "{refund}");
    assert_eq!(platform.available_fen(CREDIT), before);

    let events = transaction_events(&platform);
    let voids = events
        .iter()
        .filter(|e| matches!(e.payload, Some(Payload::TransactionVoided(_))))
        .count();
    let declined: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Some(Payload::VoidDeclined(d)) => Some(d.txn.as_ref().unwrap().response_code.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(voids, 1, "voided exactly once");
    assert_eq!(
        declined,
        ["64", "12", "25", "12"],
        "each refusal is recorded with its code"
    );
}

#[test]
fn partial_refunds_add_up_to_at_most_the_original() {
    let mut platform = Platform::start_full();
    let merchant = platform.active_merchant();
    platform.ready_terminal(&merchant, "r");
    let before = platform.available_fen(CREDIT);
    let sale = purchase(&platform, "r", "50.00");
    let original_rrn = rrn(&sale);
    let refund = |platform: &Platform, amount: &str, supervisor: Option<&str>| {
        let mut args = vec![
            "refund",
            "--rrn",
            &original_rrn,
            "--date",
            "",
            "--amount",
            amount,
            "--card",
            CREDIT_CARD,
            "--entry",
            "tap",
        ];
        let date = today();
        args[4] = &date;
        if let Some(password) = supervisor {
            args.extend(["--supervisor-password", password]);
        }
        platform.agent("r", &args)
    };

    let cashier = refused(refund(&platform, "10.00", None));
    assert!(
        cashier.contains("57") && cashier.contains("supervisor"),
        "{cashier}"
    );
    let wrong_password = refused(refund(&platform, "10.00", Some("9999")));
    assert!(wrong_password.contains("55"), "{wrong_password}");

    ok(refund(&platform, "30.00", Some("0000")));
    assert_eq!(platform.available_fen(CREDIT), before - 2_000);
    let date = today();
    let show = |platform: &Platform| {
        String::from_utf8_lossy(
            &platform
                .posctl(&["txn", "show", "--rrn", &original_rrn, "--date", &date])
                .stdout,
        )
        .into_owned()
    };
    eventually("posctl shows 30.00 of 50.00 refunded", || {
        show(&platform).contains("status: PARTIALLY_REFUNDED  refunded 30.00 of 50.00 CNY")
    });
    let too_much = refused(refund(&platform, "20.01", Some("0000")));
    assert!(
        too_much.contains("61") && too_much.contains("20.00"),
        "{too_much}"
    );
    ok(refund(&platform, "20.00", Some("0000")));
    assert_eq!(
        platform.available_fen(CREDIT),
        before,
        "refunded in full, to the fen"
    );
    eventually("posctl shows the purchase refunded in full", || {
        let shown = show(&platform);
        shown.contains("status: REFUNDED") && shown.contains("refunded 50.00 of 50.00")
    });
    let nothing_left = refused(refund(&platform, "0.01", Some("0000")));
    assert!(nothing_left.contains("61"), "{nothing_left}");

    let unknown = refused(platform.agent(
        "r",
        &[
            "refund",
            "--rrn",
            "000000000000",
            "--date",
            &today(),
            "--amount",
            "1.00",
            "--card",
            CREDIT_CARD,
            "--entry",
            "tap",
            "--supervisor-password",
            "0000",
        ],
    ));
    assert!(unknown.contains("25"), "{unknown}");
    assert_eq!(platform.available_fen(CREDIT), before);

    let events = transaction_events(&platform);
    let refunded: i64 = events
        .iter()
        .filter_map(|e| match &e.payload {
            Some(Payload::TransactionRefunded(r)) => r.txn.as_ref().unwrap().amount.clone(),
            _ => None,
        })
        .map(|m| m.minor_units)
        .sum();
    assert_eq!(refunded, 5_000);
    let codes: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Some(Payload::RefundDeclined(d)) => Some(d.txn.as_ref().unwrap().response_code.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(codes, ["57", "61", "61", "25"]);

    // Redis is only a projection: flushed and rebuilt from the topics, the limits still hold
    // and the history is the same.
    let history = show(&platform);
    platform.flush_and_restart();
    eventually("the history is rebuilt", || show(&platform) == history);
    ok(platform.agent("r", &["sign-in"]));
    ok(platform.agent("r", &["login", "--operator", "01", "--password", "0000"]));
    let after_flush = refused(refund(&platform, "0.01", Some("0000")));
    assert!(after_flush.contains("61"), "{after_flush}");
    assert_eq!(platform.available_fen(CREDIT), before);
    // The refused refund joins the rebuilt history (the followers run again after the restart).
    eventually("the refused refund is in the history", || {
        show(&platform).matches("RefundDeclined").count()
            == history.matches("RefundDeclined").count() + 1
    });
}

/// The batch number printed on a receipt.
fn batch_of(receipt: &str) -> u32 {
    receipt_value(receipt, "批次号 BATCH NO.:").parse().unwrap()
}

/// Today's business date (the platform's default business day: 23:00 cut-off, Asia/Shanghai).
fn today() -> String {
    pos_domain::time::BusinessDay::default().today()
}

#[test]
fn a_reversal_that_arrives_before_its_original_makes_the_original_be_refused() {
    let platform = Platform::start_full();
    let merchant = platform.active_merchant();
    let terminal = platform.ready_terminal(&merchant, "e");
    let before = platform.available_fen(CREDIT);
    // The STAN the terminal will use next, and its batch, from its session file.
    let session: serde_json::Value = serde_json::from_slice(
        &std::fs::read(platform.device_dir("e").join("session.json")).unwrap(),
    )
    .unwrap();
    let stan = u32::try_from(session["next_stan"].as_u64().unwrap().max(1)).unwrap();
    let batch = u32::try_from(session["batch_no"].as_u64().unwrap()).unwrap();

    // The reversal overtakes its purchase (delivered by the gateway, as after a lost request).
    let url = format!("http://127.0.0.1:{}", platform.reversal_port);
    let answer = runtime().block_on(async move {
        let channel = tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        pos_proto::v1::reversal_client::ReversalClient::new(channel)
            .reverse(pb::ReverseRequest {
                original: Some(pb::TerminalTraceRef {
                    terminal_id: terminal.clone(),
                    batch_no: batch,
                    stan,
                }),
                original_type: pb::TransactionType::Purchase as i32,
                amount: Some(pb::Money {
                    minor_units: 1_500,
                    currency: "CNY".to_owned(),
                }),
                reason_code: "98".to_owned(),
                merchant_id: merchant.clone(),
                ..pb::ReverseRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
    });
    assert_eq!(answer.response_code, "00");
    assert_eq!(answer.outcome, pb::ReversalOutcome::OriginalNotFound as i32);

    // The late original is refused and moves nothing.
    let late = refused(platform.agent(
        "e",
        &[
            "purchase",
            "--amount",
            "15.00",
            "--card",
            CREDIT_CARD,
            "--entry",
            "tap",
        ],
    ));
    assert!(late.contains("12"), "{late}");
    assert_eq!(platform.available_fen(CREDIT), before);
    let events = transaction_events(&platform);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e.payload, Some(Payload::AuthorizationApproved(_)))),
        "no approval stands"
    );
    // The next purchase (next STAN) goes through.
    purchase(&platform, "e", "15.00");
    assert_eq!(platform.available_fen(CREDIT), before - 1_500);
}

#[test]
fn reversing_a_completion_gives_the_hold_back_and_a_reversed_pre_auth_cannot_be_completed() {
    let platform = Platform::start_full();
    let merchant = platform.active_merchant();
    let terminal = platform.ready_terminal(&merchant, "c");
    let before = platform.available_fen(DEBIT);
    let card = ["--card", DEBIT_CARD, "--entry", "chip", "--pin", "123456"];
    let agent = |args: &[&str]| {
        let all: Vec<&str> = args.iter().chain(card.iter()).copied().collect();
        platform.agent("c", &all)
    };
    let pre_auth = ok(agent(&["preauth", "--amount", "100.00"]));
    let code = receipt_value(&pre_auth, "授权码 AUTH NO.:");
    assert_eq!(platform.available_fen(DEBIT), before - 10_000);
    let completion = ok(agent(&[
        "complete",
        "--amount",
        "80.00",
        "--auth-code",
        &code,
    ]));
    assert_eq!(platform.available_fen(DEBIT), before - 8_000);

    // The terminal never got the completion's answer: its reversal restores the hold.
    let reverse = |stan: u32, kind: pb::TransactionType, fen: i64| {
        let url = format!("http://127.0.0.1:{}", platform.reversal_port);
        let (terminal, merchant) = (terminal.clone(), merchant.clone());
        let batch = batch_of(&pre_auth);
        runtime().block_on(async move {
            let channel = tonic::transport::Endpoint::from_shared(url)
                .unwrap()
                .connect()
                .await
                .unwrap();
            pos_proto::v1::reversal_client::ReversalClient::new(channel)
                .reverse(pb::ReverseRequest {
                    original: Some(pb::TerminalTraceRef {
                        terminal_id: terminal,
                        batch_no: batch,
                        stan,
                    }),
                    original_type: kind as i32,
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
        })
    };
    let completion_stan: u32 = voucher(&completion).parse().unwrap();
    let answer = reverse(
        completion_stan,
        pb::TransactionType::PreAuthCompletion,
        8_000,
    );
    assert_eq!(answer.outcome, pb::ReversalOutcome::Reversed as i32);
    assert_eq!(
        platform.available_fen(DEBIT),
        before - 10_000,
        "the hold is back"
    );
    // ... and the pre-authorization can be completed again.
    let mut again = String::new();
    eventually("the pre-authorization is completable again", || {
        let out = agent(&["complete", "--amount", "60.00", "--auth-code", &code]);
        again = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success()
    });
    assert_eq!(platform.available_fen(DEBIT), before - 6_000);

    // A reversed pre-authorization releases its hold and cannot be completed.
    let second = ok(agent(&["preauth", "--amount", "30.00"]));
    let second_code = receipt_value(&second, "授权码 AUTH NO.:");
    let second_stan: u32 = voucher(&second).parse().unwrap();
    assert_eq!(platform.available_fen(DEBIT), before - 9_000);
    let answer = reverse(second_stan, pb::TransactionType::PreAuth, 3_000);
    assert_eq!(answer.outcome, pb::ReversalOutcome::Reversed as i32);
    assert_eq!(platform.available_fen(DEBIT), before - 6_000);
    let mut refused_text = String::new();
    eventually(
        "completing the reversed pre-authorization is refused",
        || {
            let out = agent(&["complete", "--amount", "30.00", "--auth-code", &second_code]);
            refused_text = String::from_utf8_lossy(&out.stderr).into_owned();
            !out.status.success() && refused_text.contains("reversed")
        },
    );
    assert!(refused_text.contains("12"), "{refused_text}");
    assert_eq!(platform.available_fen(DEBIT), before - 6_000);
}
