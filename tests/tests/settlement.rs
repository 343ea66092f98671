//! Terminal batch settlement 结算 end to end through the real binaries: pos-agent's journal
//! totals against the settlement service's batch totals from the events, balanced and
//! unbalanced (batch upload and line-by-line reconciliation), the close and the next batch,
//! and the same totals after Redis is flushed and rebuilt from the topics.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use pos_events::{EventReader, Payload, Topic};
use pos_proto::v1 as pb;
use pos_proto::v1::settlement_client::SettlementClient;
use support::{Platform, ok};

const CREDIT_CARD: &str = "6225880011223345/2912/201";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
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

fn receipt_value(out: &str, label: &str) -> String {
    out.lines()
        .find_map(|line| line.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in:\n{out}"))
        .trim()
        .to_owned()
}

fn line_with<'a>(out: &'a str, start: &str) -> &'a str {
    out.lines()
        .find(|l| l.trim_start().starts_with(start))
        .unwrap_or_else(|| panic!("no line starting {start:?} in:\n{out}"))
        .trim()
}

/// The settlement service's totals of a batch.
fn host_totals(platform: &Platform, terminal: &str, batch: u32) -> pb::GetBatchTotalsResponse {
    let url = format!("http://127.0.0.1:{}", platform.settlement_port);
    let terminal = terminal.to_owned();
    runtime().block_on(async move {
        let channel = tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        SettlementClient::new(channel)
            .get_batch_totals(pb::GetBatchTotalsRequest {
                terminal_id: terminal,
                batch_no: batch,
            })
            .await
            .unwrap()
            .into_inner()
    })
}

fn settlement_events(platform: &Platform) -> Vec<pos_events::EventEnvelope> {
    let config = platform.env.bus("scan");
    runtime().block_on(async move {
        let reader =
            EventReader::from_beginning(&config, &[Topic::Settlement, Topic::Transactions])
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

#[test]
fn a_balanced_batch_closes_and_the_next_batch_number_is_used() {
    let platform = Platform::start_full();
    let merchant = platform.active_merchant();
    let terminal = platform.ready_terminal(&merchant, "s");
    let first = purchase(&platform, "s", "50.00");
    let batch: u32 = receipt_value(&first, "批次号 BATCH NO.:").parse().unwrap();
    let second = purchase(&platform, "s", "20.00");
    let second_stan = receipt_value(&second, "凭证号 VOUCHER NO.:");
    ok(platform.agent("s", &["void", "--stan", &second_stan]));
    let rrn = receipt_value(&first, "参考号 REF. NO.:");
    let today = pos_domain::time::BusinessDay::default().today();
    ok(platform.agent(
        "s",
        &[
            "refund",
            "--rrn",
            &rrn,
            "--date",
            &today,
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

    let settled = ok(platform.agent("s", &["settle"]));
    assert!(
        settled.contains(&format!("settlement of batch {batch:06}: BALANCED")),
        "{settled}"
    );
    assert_eq!(
        line_with(&settled, "host totals CNY:"),
        "host totals CNY: debit 1 50.00, credit 1 10.00",
        "purchases net of the void, the refund as a credit"
    );
    assert!(settled.contains("differences: 0"), "{settled}");
    let next = batch + 1;
    assert!(
        settled.contains(&format!("batch {batch:06} closed; next batch {next:06}")),
        "{settled}"
    );

    let totals = host_totals(&platform, &terminal, batch);
    assert_eq!(totals.state, pb::BatchState::Closed as i32);
    assert_eq!(totals.result, pb::BatchBalance::Balanced as i32);
    let cny = &totals.totals[0];
    assert_eq!(
        (
            cny.debit_count,
            cny.debit_amount.as_ref().unwrap().minor_units,
            cny.credit_count,
            cny.credit_amount.as_ref().unwrap().minor_units
        ),
        (1, 5_000, 1, 1_000)
    );

    // The next transaction goes into the next batch, and a new sign-in keeps it.
    let after = purchase(&platform, "s", "8.00");
    assert_eq!(
        receipt_value(&after, "批次号 BATCH NO.:"),
        format!("{next:06}")
    );
    ok(platform.agent("s", &["sign-in"]));
    ok(platform.agent("s", &["login", "--operator", "01", "--password", "0000"]));
    let again = purchase(&platform, "s", "9.00");
    assert_eq!(
        receipt_value(&again, "批次号 BATCH NO.:"),
        format!("{next:06}")
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let open = host_totals(&platform, &terminal, 0);
        assert_eq!(open.batch_no, next);
        if open.totals[0].debit_count == 2 {
            assert_eq!(
                open.totals[0].debit_amount.as_ref().unwrap().minor_units,
                1_700
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the open batch never counted its two purchases: {open:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    let closed = settlement_events(&platform)
        .into_iter()
        .filter_map(|e| match e.payload {
            Some(Payload::BatchClosed(c)) => Some(c),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(closed.len(), 1);
    assert_eq!((closed[0].batch_no, closed[0].next_batch_no), (batch, next));
}

#[test]
fn an_unbalanced_batch_is_uploaded_reconciled_and_closed_with_its_differences() {
    let mut platform = Platform::start_full();
    let merchant = platform.active_merchant();
    let terminal = platform.ready_terminal(&merchant, "u");
    let kept = purchase(&platform, "u", "30.00");
    let batch: u32 = receipt_value(&kept, "批次号 BATCH NO.:").parse().unwrap();
    let lost = purchase(&platform, "u", "40.00");
    let lost_stan: u32 = receipt_value(&lost, "凭证号 VOUCHER NO.:").parse().unwrap();

    // The host reverses the 40.00 (as for an answer the terminal never got) while the
    // terminal keeps it as approved: the totals now differ.
    let url = format!("http://127.0.0.1:{}", platform.reversal_port);
    let (t, m) = (terminal.clone(), merchant.clone());
    let reversed = runtime().block_on(async move {
        let channel = tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        pos_proto::v1::reversal_client::ReversalClient::new(channel)
            .reverse(pb::ReverseRequest {
                original: Some(pb::TerminalTraceRef {
                    terminal_id: t,
                    batch_no: batch,
                    stan: lost_stan,
                }),
                original_type: pb::TransactionType::Purchase as i32,
                amount: Some(pb::Money {
                    minor_units: 4_000,
                    currency: "CNY".to_owned(),
                }),
                reason_code: "98".to_owned(),
                merchant_id: m,
                ..pb::ReverseRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
    });
    assert_eq!(reversed.outcome, pb::ReversalOutcome::Reversed as i32);

    let settled = ok(platform.agent("u", &["settle"]));
    assert!(
        settled.contains(&format!("settlement of batch {batch:06}: UNBALANCED")),
        "{settled}"
    );
    assert!(settled.contains("uploaded 2 record(s)"), "{settled}");
    assert_eq!(
        line_with(&settled, "terminal totals CNY:"),
        "terminal totals CNY: debit 2 70.00, credit 0 0.00"
    );
    assert_eq!(
        line_with(&settled, "host totals CNY:"),
        "host totals CNY: debit 1 30.00, credit 0 0.00"
    );
    assert!(settled.contains("differences: 1"), "{settled}");
    assert!(
        settled.contains(&format!(
            "batch {batch:06} closed; next batch {:06}",
            batch + 1
        )),
        "{settled}"
    );

    let events = settlement_events(&platform);
    let differences: Vec<&pb::BatchDifferenceRecorded> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Some(Payload::BatchDifferenceRecorded(d)) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(differences.len(), 1);
    assert_eq!(differences[0].stan, lost_stan);
    assert_eq!(
        differences[0].kind,
        pb::RecordReconciliation::StateMismatch as i32,
        "the host has it reversed"
    );
    let uploads = events
        .iter()
        .filter(|e| matches!(e.payload, Some(Payload::BatchRecordUploaded(_))))
        .count();
    assert_eq!(uploads, 2);

    // The batch totals come back the same from the topics into an empty Redis.
    let before = host_totals(&platform, &terminal, batch);
    platform.flush_and_restart();
    let after = host_totals(&platform, &terminal, batch);
    assert_eq!(before.totals, after.totals);
    assert_eq!(
        (after.state, after.result),
        (
            pb::BatchState::Closed as i32,
            pb::BatchBalance::Unbalanced as i32
        )
    );
    assert_eq!(host_totals(&platform, &terminal, 0).batch_no, batch + 1);
}

#[test]
fn a_terminal_with_an_earlier_days_batch_open_cannot_transact_until_it_settles() {
    let mut platform = Platform::start_full();
    let merchant = platform.active_merchant();
    let terminal = platform.ready_terminal(&merchant, "f");
    let sale = purchase(&platform, "f", "12.00");
    let batch: u32 = receipt_value(&sale, "批次号 BATCH NO.:").parse().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while host_totals(&platform, &terminal, 0)
        .first_business_date
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the batch never got its first date"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // The gateway's business day moves on past the batch's: at UTC+14 with the day ending one
    // minute after midnight, it is always a later business date than Shanghai's with a 23:00
    // cut-off (UTC+14 is five hours ahead of Shanghai's day after its cut-off).
    platform.restart_gateway_with(&[
        ("POS_BUSINESS_DAY_UTC_OFFSET", "+14:00"),
        ("POS_BUSINESS_DAY_CUTOFF", "00:01"),
    ]);
    let signed_in = ok(platform.agent("f", &["sign-in"]));
    assert!(signed_in.contains("隔日强制结算"), "{signed_in}");
    ok(platform.agent("f", &["login", "--operator", "01", "--password", "0000"]));
    let available = platform.available_fen("6225880011223345");
    let blocked = platform.agent(
        "f",
        &[
            "purchase",
            "--amount",
            "5.00",
            "--card",
            CREDIT_CARD,
            "--entry",
            "tap",
        ],
    );
    let stderr = String::from_utf8_lossy(&blocked.stderr);
    assert!(!blocked.status.success());
    assert!(
        stderr.contains("12") && stderr.contains("forced settlement"),
        "{stderr}"
    );
    assert_eq!(
        platform.available_fen("6225880011223345"),
        available,
        "nothing moved"
    );

    let settled = ok(platform.agent("f", &["settle"]));
    assert!(
        settled.contains(&format!(
            "batch {batch:06} closed; next batch {:06}",
            batch + 1
        )),
        "{settled}"
    );
    let after = purchase(&platform, "f", "5.00");
    assert_eq!(
        receipt_value(&after, "批次号 BATCH NO.:"),
        format!("{:06}", batch + 1)
    );
    let forced = settlement_events(&platform)
        .into_iter()
        .find_map(|e| match e.payload {
            Some(Payload::BatchSettlementRequested(r)) => Some(r.forced),
            _ => None,
        })
        .unwrap();
    assert!(forced, "the settlement is recorded as forced");
}

#[test]
fn a_killed_settlement_service_picks_up_where_it_left_off() {
    let mut platform = Platform::start_full();
    let merchant = platform.active_merchant();
    let terminal = platform.ready_terminal(&merchant, "k");
    let counted = |platform: &Platform, want: u32| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let totals = host_totals(platform, &terminal, 0);
            if totals.totals[0].debit_count == want {
                return totals;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the open batch never counted {want} purchases: {totals:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    purchase(&platform, "k", "1.00");
    counted(&platform, 1);
    // Killed without leaving anything behind (SIGKILL), then started again: it resumes at its
    // committed position and follows the next transactions.
    platform.start_settlement();
    purchase(&platform, "k", "2.00");
    let totals = counted(&platform, 2);
    assert_eq!(
        totals.totals[0].debit_amount.as_ref().unwrap().minor_units,
        300,
        "each purchase counted once"
    );
}
