//! The projection against a real redis-server (`POS_TEST_REDIS`, as `cargo xtask test` sets
//! it); each test uses its own key prefix.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[allow(dead_code)]
#[path = "../src/fixtures.rs"]
mod fixtures;

use fixtures::*;
use pos_events::{EventEnvelope, Payload};
use pos_history::{Applied, HistoryProjection, ListFilter, Lookup, TraceKey, TransactionHistory};
use pos_proto::v1 as pb;
use pos_proto::v1::TransactionStatus as Status;
use pos_store::Store;
use pos_testkit::TestEnv;

/// A projection under a fresh prefix of the test Redis (`POS_TEST_REDIS`, required).
async fn projection() -> (HistoryProjection, Store) {
    let env = TestEnv::new();
    let store = Store::connect(&env.store()).await.unwrap();
    (HistoryProjection::new(store.clone()), store)
}

async fn apply_all(projection: &HistoryProjection, events: &[EventEnvelope]) {
    for event in events {
        projection.apply(event).await.unwrap();
    }
}

async fn find(projection: &HistoryProjection, lookup: Lookup) -> Option<TransactionHistory> {
    projection.find(&lookup).await.unwrap()
}

fn by_trace(stan: u32) -> Lookup {
    Lookup::Trace(TraceKey::of(Some(&trace(stan))).unwrap())
}

fn status(h: &TransactionHistory) -> Status {
    Status::try_from(h.summary.status).unwrap()
}

#[tokio::test]
async fn a_refunded_purchase_is_found_by_id_trace_and_rrn() {
    let (projection, _) = projection().await;
    let (p, approved) = purchase();
    let (r, refunded) = refund("R1", &p, 2, 60, 3000, 3000);
    apply_all(&projection, &[approved, refunded]).await;

    let by_id = find(&projection, Lookup::Id("P1".to_owned()))
        .await
        .unwrap();
    assert_eq!(status(&by_id), Status::PartiallyRefunded);
    assert_eq!(by_id.summary.refunded_amount, Some(cny(3000)));
    assert_eq!(by_id.summary.refundable_amount, Some(cny(2000)));
    let steps: Vec<(&str, &str)> = by_id
        .entries
        .iter()
        .map(|e| (e.event_type.as_str(), e.detail.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("AuthorizationApproved", "rrn 100000000001"),
            ("TransactionRefunded", "refunded 30.00 of 50.00"),
        ]
    );

    assert_eq!(find(&projection, by_trace(1)).await.as_ref(), Some(&by_id));
    let by_rrn = Lookup::Rrn {
        rrn: p.rrn.clone(),
        business_date: DATE.to_owned(),
    };
    assert_eq!(find(&projection, by_rrn).await.as_ref(), Some(&by_id));

    // The refund's own trace (and RRN) show the refund, naming its original.
    let refund = find(&projection, by_trace(2)).await.unwrap();
    assert_eq!(refund.summary.transaction_id, "R1");
    assert_eq!(
        refund.summary.transaction_type,
        pb::TransactionType::Refund as i32
    );
    assert_eq!(
        refund
            .summary
            .original
            .as_ref()
            .map(|o| o.transaction_id.as_str()),
        Some("P1")
    );
    let by_refund_rrn = Lookup::Rrn {
        rrn: r.rrn.clone(),
        business_date: DATE.to_owned(),
    };
    assert_eq!(find(&projection, by_refund_rrn).await, Some(refund));

    assert_eq!(find(&projection, Lookup::Id("NOPE".to_owned())).await, None);
    assert_eq!(find(&projection, by_trace(77)).await, None);
}

#[tokio::test]
async fn applying_an_event_twice_or_out_of_order_changes_nothing() {
    let (projection, store) = projection().await;
    let (p, approved) = purchase();
    let (v, voided) = void("V1", &p, 2, 30);
    let reversed = reversal(
        "T0000001:000001:000002",
        &v,
        pb::ReversalInitiator::Terminal,
        "98",
        90,
    );
    // Read out of order (the reversal first), then everything delivered again.
    assert_eq!(projection.apply(&reversed).await.unwrap(), Applied::New);
    assert_eq!(projection.apply(&voided).await.unwrap(), Applied::New);
    assert_eq!(projection.apply(&approved).await.unwrap(), Applied::New);
    let first = find(&projection, Lookup::Id("P1".to_owned()))
        .await
        .unwrap();
    let keys = store
        .scan_keys(&format!("{}:*", store.prefix()))
        .await
        .unwrap();
    for event in [&approved, &voided, &reversed] {
        assert_eq!(projection.apply(event).await.unwrap(), Applied::Duplicate);
    }
    let again = find(&projection, Lookup::Id("P1".to_owned()))
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(
        store
            .scan_keys(&format!("{}:*", store.prefix()))
            .await
            .unwrap(),
        keys
    );
    assert_eq!(status(&first), Status::Approved, "the void was reversed");
    assert_eq!(first.entries.len(), 3);
    let void_history = find(&projection, by_trace(2)).await.unwrap();
    assert_eq!(status(&void_history), Status::Reversed);

    // Listed once, whatever was redelivered.
    let page = projection
        .list(&ListFilter::default(), 0, "")
        .await
        .unwrap();
    let ids: Vec<&str> = page
        .transactions
        .iter()
        .map(|t| t.transaction_id.as_str())
        .collect();
    assert_eq!(ids, ["V1", "P1"], "newest first");
}

#[tokio::test]
async fn audit_records_write_nothing() {
    let (projection, store) = projection().await;
    let audit = envelope(
        "audit",
        "reversal:ops:alice",
        1,
        1,
        Payload::OperatorActionRecorded(pb::OperatorActionRecorded::default()),
    );
    assert_eq!(projection.apply(&audit).await.unwrap(), Applied::Ignored);
    assert!(
        store
            .scan_keys(&format!("{}:*", store.prefix()))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_reversal_of_an_unknown_request_is_shown_by_its_trace() {
    let (projection, _) = projection().await;
    let named = pb::OriginalTransactionRef {
        terminal_id: TERMINAL.to_owned(),
        batch_no: 1,
        stan: 11,
        transaction_type: pb::TransactionType::Purchase as i32,
        amount: Some(cny(5000)),
        ..Default::default()
    };
    let ack = acknowledged(
        "T0000001:000001:000011",
        1,
        named,
        pb::ReversalOutcome::OriginalNotFound,
        1,
    );
    projection.apply(&ack).await.unwrap();
    let alone = find(&projection, by_trace(11)).await.unwrap();
    assert_eq!(status(&alone), Status::Unspecified);
    assert_eq!(alone.summary.transaction_id, "");
    assert_eq!(
        alone.entries[0].detail,
        "terminal reversal acknowledged: original not found"
    );

    // The late original is refused; its trace now shows the refusal after the reversal.
    let late = envelope(
        "transaction",
        "L1",
        1,
        5,
        Payload::AuthorizationDeclined(pb::AuthorizationDeclined {
            txn: Some(facts("L1", pb::TransactionType::Purchase, 11, 5000, "25")),
            source: pb::DeclineSource::Validation as i32,
            fraud_reasons: Vec::new(),
        }),
    );
    projection.apply(&late).await.unwrap();
    let joined = find(&projection, by_trace(11)).await.unwrap();
    assert_eq!(joined.summary.transaction_id, "L1");
    assert_eq!(status(&joined), Status::Declined);
    let types: Vec<&str> = joined
        .entries
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(types, ["ReversalAcknowledged", "AuthorizationDeclined"]);
}

/// A purchase `id` at `terminal` of `merchant` on `date`, decided at `second`.
fn sale(
    id: &str,
    terminal: &str,
    batch: u32,
    merchant: &str,
    date: &str,
    second: i64,
) -> EventEnvelope {
    let mut f = facts(id, pb::TransactionType::Purchase, 1, 1000, "00");
    f.trace = Some(pb::TerminalTraceRef {
        terminal_id: terminal.to_owned(),
        batch_no: batch,
        stan: u32::try_from(second).unwrap(),
    });
    f.merchant_id = merchant.to_owned();
    f.business_date = date.to_owned();
    f.rrn = format!("{second:012}");
    envelope(
        "transaction",
        id,
        1,
        second,
        Payload::AuthorizationApproved(pb::AuthorizationApproved {
            txn: Some(f),
            fraud_reasons: Vec::new(),
        }),
    )
}

async fn ids(projection: &HistoryProjection, filter: &ListFilter) -> Vec<String> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = projection.list(filter, 2, &token).await.unwrap();
        assert!(page.transactions.len() <= 2);
        all.extend(page.transactions.into_iter().map(|t| t.transaction_id));
        match page.next_page_token {
            Some(next) => token = next,
            None => return all,
        }
    }
}

#[tokio::test]
async fn lists_filter_and_page_newest_first() {
    let (projection, _) = projection().await;
    const M1: &str = "898310048990001";
    const M2: &str = "898310048990002";
    let events = [
        sale("a", "T0000001", 1, M1, "2026-11-27", 1),
        sale("b", "T0000001", 1, M1, "2026-11-27", 2),
        sale("c", "T0000001", 2, M1, "2026-11-28", 3),
        sale("d", "T0000002", 1, M1, "2026-11-28", 4),
        sale("e", "T0000003", 1, M2, "2026-11-28", 5),
    ];
    apply_all(&projection, &events).await;

    let filter = |m: Option<&str>, t: Option<&str>, b: Option<u32>, d: Option<&str>| ListFilter {
        merchant_id: m.map(str::to_owned),
        terminal_id: t.map(str::to_owned),
        batch_no: b,
        business_date: d.map(str::to_owned),
    };
    assert_eq!(
        ids(&projection, &ListFilter::default()).await,
        ["e", "d", "c", "b", "a"]
    );
    assert_eq!(
        ids(&projection, &filter(Some(M1), None, None, None)).await,
        ["d", "c", "b", "a"]
    );
    assert_eq!(
        ids(
            &projection,
            &filter(Some(M1), None, None, Some("2026-11-28"))
        )
        .await,
        ["d", "c"]
    );
    assert_eq!(
        ids(&projection, &filter(None, Some("T0000001"), None, None)).await,
        ["c", "b", "a"]
    );
    assert_eq!(
        ids(&projection, &filter(None, Some("T0000001"), Some(1), None)).await,
        ["b", "a"]
    );
    assert_eq!(
        ids(
            &projection,
            &filter(None, Some("T0000001"), None, Some("2026-11-28"))
        )
        .await,
        ["c"]
    );
    assert_eq!(
        ids(&projection, &filter(None, None, None, Some("2026-11-28"))).await,
        ["e", "d", "c"]
    );
    // A filter the index does not cover is applied to the summaries.
    assert_eq!(
        ids(&projection, &filter(Some(M2), Some("T0000001"), None, None)).await,
        Vec::<String>::new()
    );
    assert!(
        projection
            .list(&ListFilter::default(), 2, "not-a-token")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_flushed_projection_is_rebuilt_to_the_same_histories() {
    let (projection, store) = projection().await;
    let (p, approved) = purchase();
    let (_, refunded) = refund("R1", &p, 2, 60, 3000, 3000);
    let (_, rest) = refund("R2", &p, 3, 120, 2000, 5000);
    let events = [approved, refunded, rest];
    apply_all(&projection, &events).await;
    projection.mark_rebuilt().await.unwrap();
    assert!(projection.is_rebuilt().await.unwrap());
    let before = find(&projection, by_trace(1)).await.unwrap();
    assert_eq!(status(&before), Status::Refunded);
    let listed = projection
        .list(&ListFilter::default(), 0, "")
        .await
        .unwrap();

    store.flush_prefix().await.unwrap();
    assert!(
        !projection.is_rebuilt().await.unwrap(),
        "the marker went with the flush"
    );
    assert_eq!(find(&projection, by_trace(1)).await, None);

    // Replayed from the topic (in another partition order).
    apply_all(
        &projection,
        &[events[2].clone(), events[0].clone(), events[1].clone()],
    )
    .await;
    assert_eq!(find(&projection, by_trace(1)).await, Some(before));
    assert_eq!(
        projection
            .list(&ListFilter::default(), 0, "")
            .await
            .unwrap(),
        listed
    );
}
