//! A randomized run of purchases, voids, refunds, reversals and duplicate deliveries through
//! the real binaries, then the books: per card, what the bank moved equals approved − voided −
//! reversed − refunded (+ reversed voids) in the event log, to the fen, and equals the test's
//! own model.
//!
//! Purchases, voids and refunds go through pos-agent; reversals and the duplicate deliveries
//! (the same reversal, void or refund delivered again) go straight to the reversal service, as
//! the gateway would deliver them. The seed is printed; `POS_TEST_SEED` replays a run.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::collections::HashMap;

use pos_events::{EventReader, Payload, Topic};
use pos_proto::v1 as pb;
use pos_proto::v1::reversal_client::ReversalClient;
use support::{Platform, ok};

/// (PAN, card argument, entry, PIN) of the cards the run uses.
const CARDS: [(&str, &str, &str, Option<&str>); 3] = [
    (
        "6217000010012345677",
        "6217000010012345677/3012/220",
        "chip",
        Some("123456"),
    ),
    ("6225880011223345", "6225880011223345/2912/201", "tap", None),
    (
        "6217000010050000077",
        "6217000010050000077/3012/101",
        "swipe",
        None,
    ),
];

/// A small deterministic generator (xorshift64*), so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the test believes happened to one purchase.
#[derive(Debug, Clone)]
struct Sale {
    card: usize,
    stan: u32,
    batch: u32,
    rrn: String,
    fen: i64,
    /// Voided or reversed: nothing more can happen to it.
    undone: bool,
    refunded: i64,
    /// STAN of its standing void (a void can itself be reversed).
    void_stan: Option<u32>,
}

fn receipt_value(out: &str, label: &str) -> String {
    out.lines()
        .find_map(|line| line.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in:\n{out}"))
        .trim()
        .to_owned()
}

fn yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

#[test]
fn books_balance_per_card_after_a_randomized_mix_with_duplicate_deliveries() {
    let seed = std::env::var("POS_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("POS_TEST_SEED={seed}");
    let mut rng = Rng(seed);

    let platform = Platform::start_full();
    let merchant = platform.active_merchant();
    let terminal = platform.ready_terminal(&merchant, "m");
    let start: Vec<i64> = CARDS
        .iter()
        .map(|(pan, ..)| platform.available_fen(pan))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let reversal_url = format!("http://127.0.0.1:{}", platform.reversal_port);
    let client = runtime.block_on(async {
        ReversalClient::new(
            tonic::transport::Endpoint::from_shared(reversal_url)
                .unwrap()
                .connect()
                .await
                .unwrap(),
        )
    });

    let today = pos_domain::time::BusinessDay::default().today();
    let mut sales: Vec<Sale> = Vec::new();
    // Requests to deliver again: reversals (by the original's trace), voids and refunds (by
    // their own trace), as the gateway sent them.
    let mut sent_reversals: Vec<pb::ReverseRequest> = Vec::new();
    let mut next_host_stan = 900_000u32;
    let mut moved = vec![0i64; CARDS.len()];
    let operations = 300;
    for _ in 0..operations {
        let roll = rng.below(100);
        let open: Vec<usize> = (0..sales.len())
            .filter(|i| !sales[*i].undone && sales[*i].refunded == 0)
            .collect();
        let refundable: Vec<usize> = (0..sales.len())
            .filter(|i| !sales[*i].undone && sales[*i].refunded < sales[*i].fen)
            .collect();
        if roll < 40 || sales.is_empty() {
            let card = usize::try_from(rng.below(CARDS.len() as u64)).unwrap();
            let (_, spec, entry, pin) = CARDS[card];
            let fen = i64::try_from(100 + rng.below(9_900)).unwrap();
            let amount = yuan(fen);
            let mut args = vec![
                "purchase", "--amount", &amount, "--card", spec, "--entry", entry,
            ];
            if let Some(pin) = pin {
                args.extend(["--pin", pin]);
            }
            let out = ok(platform.agent("m", &args));
            let stan: u32 = receipt_value(&out, "凭证号 VOUCHER NO.:").parse().unwrap();
            let batch: u32 = receipt_value(&out, "批次号 BATCH NO.:").parse().unwrap();
            sales.push(Sale {
                card,
                stan,
                batch,
                rrn: receipt_value(&out, "参考号 REF. NO.:"),
                fen,
                undone: false,
                refunded: 0,
                void_stan: None,
            });
            moved[card] += fen;
        } else if roll < 55 && !open.is_empty() {
            let sale = open[usize::try_from(rng.below(open.len() as u64)).unwrap()];
            let stan = format!("{:06}", sales[sale].stan);
            let out = ok(platform.agent("m", &["void", "--stan", &stan]));
            sales[sale].undone = true;
            sales[sale].void_stan =
                Some(receipt_value(&out, "凭证号 VOUCHER NO.:").parse().unwrap());
            moved[sales[sale].card] -= sales[sale].fen;
        } else if roll < 60 && sales.iter().any(|s| s.void_stan.is_some()) {
            // The terminal never got the void's answer: it reverses the void, and the
            // purchase stands again.
            let voided: Vec<usize> = (0..sales.len())
                .filter(|i| sales[*i].void_stan.is_some())
                .collect();
            let sale = voided[usize::try_from(rng.below(voided.len() as u64)).unwrap()];
            let request = pb::ReverseRequest {
                original: Some(pb::TerminalTraceRef {
                    terminal_id: terminal.clone(),
                    batch_no: sales[sale].batch,
                    stan: sales[sale].void_stan.take().unwrap(),
                }),
                original_type: pb::TransactionType::PurchaseVoid as i32,
                amount: Some(pb::Money {
                    minor_units: sales[sale].fen,
                    currency: "CNY".to_owned(),
                }),
                reason_code: "98".to_owned(),
                merchant_id: merchant.clone(),
                ..pb::ReverseRequest::default()
            };
            let answer = runtime
                .block_on(client.clone().reverse(request.clone()))
                .unwrap()
                .into_inner();
            assert_eq!(answer.response_code, "00");
            assert_eq!(answer.outcome, pb::ReversalOutcome::Reversed as i32);
            sent_reversals.push(request);
            sales[sale].undone = false;
            moved[sales[sale].card] += sales[sale].fen;
        } else if roll < 75 && !refundable.is_empty() {
            let sale = refundable[usize::try_from(rng.below(refundable.len() as u64)).unwrap()];
            let remaining = sales[sale].fen - sales[sale].refunded;
            // Now and then one fen more than what remains: refused, nothing moves.
            let too_much = rng.below(8) == 0;
            let fen = if too_much {
                remaining + 1
            } else {
                1 + i64::try_from(rng.below(u64::try_from(remaining).unwrap())).unwrap()
            };
            let (_, spec, entry, _) = CARDS[sales[sale].card];
            let amount = yuan(fen);
            let rrn = sales[sale].rrn.clone();
            let args = [
                "refund",
                "--rrn",
                &rrn,
                "--date",
                &today,
                "--amount",
                &amount,
                "--card",
                spec,
                "--entry",
                entry,
                "--supervisor-password",
                "0000",
            ];
            let output = platform.agent("m", &args);
            assert_eq!(
                output.status.success(),
                !too_much,
                "refund of {amount}: {output:?}"
            );
            if !too_much {
                sales[sale].refunded += fen;
                moved[sales[sale].card] -= fen;
            }
        } else if roll < 85 && !open.is_empty() {
            // The terminal never got this answer: it reverses (the gateway delivers it).
            let sale = open[usize::try_from(rng.below(open.len() as u64)).unwrap()];
            let request = pb::ReverseRequest {
                original: Some(pb::TerminalTraceRef {
                    terminal_id: terminal.clone(),
                    batch_no: sales[sale].batch,
                    stan: sales[sale].stan,
                }),
                original_type: pb::TransactionType::Purchase as i32,
                amount: Some(pb::Money {
                    minor_units: sales[sale].fen,
                    currency: "CNY".to_owned(),
                }),
                reason_code: "98".to_owned(),
                merchant_id: merchant.clone(),
                ..pb::ReverseRequest::default()
            };
            let answer = runtime
                .block_on(client.clone().reverse(request.clone()))
                .unwrap()
                .into_inner();
            assert_eq!(answer.response_code, "00");
            assert_eq!(answer.outcome, pb::ReversalOutcome::Reversed as i32);
            sent_reversals.push(request);
            sales[sale].undone = true;
            moved[sales[sale].card] -= sales[sale].fen;
        } else {
            // A duplicate delivery: a reversal again (a repeat or a redelivery), or a reversal
            // of a trace that never existed; both change nothing.
            let request = if !sent_reversals.is_empty() && rng.below(2) == 0 {
                let i = usize::try_from(rng.below(sent_reversals.len() as u64)).unwrap();
                let mut again = sent_reversals[i].clone();
                again.repeat = true;
                again.reason_code = "06".to_owned();
                again
            } else {
                next_host_stan += 1;
                pb::ReverseRequest {
                    original: Some(pb::TerminalTraceRef {
                        terminal_id: terminal.clone(),
                        batch_no: 1,
                        stan: next_host_stan,
                    }),
                    original_type: pb::TransactionType::Purchase as i32,
                    amount: Some(pb::Money {
                        minor_units: 1_000,
                        currency: "CNY".to_owned(),
                    }),
                    reason_code: "98".to_owned(),
                    merchant_id: merchant.clone(),
                    ..pb::ReverseRequest::default()
                }
            };
            let answer = runtime
                .block_on(client.clone().reverse(request))
                .unwrap()
                .into_inner();
            assert_eq!(answer.response_code, "00");
            assert_ne!(answer.outcome, pb::ReversalOutcome::Reversed as i32);
        }
    }

    // The event log, per card (masked PAN).
    let config = platform.env.bus("ledger");
    let events = runtime.block_on(async move {
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
    });
    let mut logged: HashMap<String, i64> = HashMap::new();
    for event in &events {
        let (masked, fen) = match &event.payload {
            Some(Payload::AuthorizationApproved(e)) => {
                let t = e.txn.as_ref().unwrap();
                (t.card.clone(), t.amount.as_ref().unwrap().minor_units)
            }
            Some(Payload::TransactionVoided(e)) => {
                let t = e.txn.as_ref().unwrap();
                (t.card.clone(), -t.amount.as_ref().unwrap().minor_units)
            }
            Some(Payload::TransactionRefunded(e)) => {
                let t = e.txn.as_ref().unwrap();
                (t.card.clone(), -t.amount.as_ref().unwrap().minor_units)
            }
            Some(Payload::TransactionReversed(e)) => {
                let t = e.original.as_ref().unwrap();
                let fen = e.amount.as_ref().unwrap().minor_units;
                // Reversing a void puts the purchase back; reversing a purchase undoes it.
                let voids = [
                    pb::TransactionType::PurchaseVoid as i32,
                    pb::TransactionType::CompletionVoid as i32,
                ];
                let sign = if voids.contains(&t.transaction_type) {
                    1
                } else {
                    -1
                };
                (t.card.clone(), sign * fen)
            }
            _ => continue,
        };
        *logged.entry(masked.unwrap().masked_pan).or_default() += fen;
    }
    for (card, (pan, ..)) in CARDS.iter().enumerate() {
        let bank = start[card] - platform.available_fen(pan);
        let masked = format!("{}******{}", &pan[..6], &pan[pan.len() - 4..]);
        let log = logged
            .iter()
            .find(|(m, _)| m.starts_with(&pan[..6]) && m.ends_with(&pan[pan.len() - 4..]))
            .map_or(0, |(_, fen)| *fen);
        assert_eq!(
            bank, moved[card],
            "{masked}: the bank against the test's model"
        );
        assert_eq!(bank, log, "{masked}: the bank against the event log");
    }
    let reversed = events
        .iter()
        .filter(|e| matches!(e.payload, Some(Payload::TransactionReversed(_))))
        .count();
    assert_eq!(
        reversed,
        sent_reversals.len(),
        "each reversal recorded exactly once"
    );
}
