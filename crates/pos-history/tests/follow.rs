//! Rebuilding and following `pos.transactions.v1` against a real broker and redis-server
//! (`POS_TEST_KAFKA`, `POS_TEST_REDIS`, as `cargo xtask test` sets them); each test uses its
//! own topic namespace, consumer group and key prefix.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[allow(dead_code)]
#[path = "../src/fixtures.rs"]
mod fixtures;

use std::time::Duration;

use fixtures::*;
use pos_events::{EventPublisher, Topic, ensure_topics};
use pos_history::{HistoryProjection, Lookup, TransactionHistory};
use pos_proto::v1::TransactionStatus as Status;
use pos_store::Store;
use pos_testkit::TestEnv;

async fn purchase_history(projection: &HistoryProjection) -> Option<TransactionHistory> {
    projection.find(&Lookup::Id("P1".to_owned())).await.unwrap()
}

#[tokio::test]
async fn a_flushed_projection_is_rebuilt_from_the_topic_and_then_follows_it() {
    let env = TestEnv::new();
    let bus = env.bus("history-test");
    ensure_topics(&bus, &[Topic::Transactions]).await.unwrap();
    let publisher = EventPublisher::new(&bus).unwrap();
    let (p, approved) = purchase();
    let (_, refunded) = refund("R1", &p, 2, 60, 3000, 3000);
    for event in [&approved, &refunded] {
        publisher
            .publish(Topic::Transactions, TERMINAL, event)
            .await
            .unwrap();
    }
    let store = Store::connect(&env.store()).await.unwrap();
    let projection = HistoryProjection::new(store.clone());

    // First start: nothing in Redis, so the topic is read from its start.
    let read = pos_history::rebuild_if_needed(&projection, &bus)
        .await
        .unwrap();
    assert_eq!(read, Some(2));
    let rebuilt = purchase_history(&projection).await.unwrap();
    assert_eq!(
        Status::try_from(rebuilt.summary.status).unwrap(),
        Status::PartiallyRefunded
    );
    // With the marker set, a restart does not read the topic again.
    assert_eq!(
        pos_history::rebuild_if_needed(&projection, &bus)
            .await
            .unwrap(),
        None
    );

    // The follower applies what is published from now on (and what it sees again).
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let follower = {
        let projection = projection.clone();
        let bus = bus.clone();
        let group = env.group("history");
        tokio::spawn(async move {
            pos_history::follow(&projection, &bus, &group, async {
                let _ = stopped.await;
            })
            .await
        })
    };
    let (_, rest) = refund("R2", &p, 3, 120, 2000, 5000);
    publisher
        .publish(Topic::Transactions, TERMINAL, &rest)
        .await
        .unwrap();
    let mut refunded_in_full = None;
    for _ in 0..150 {
        let history = purchase_history(&projection).await.unwrap();
        if history.summary.status == Status::Refunded as i32 {
            refunded_in_full = Some(history);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refunded_in_full = refunded_in_full.expect("the follower applied the second refund");
    assert_eq!(refunded_in_full.entries.len(), 3);
    stop.send(()).unwrap();
    follower.await.unwrap().unwrap();

    // Redis flushed: the next start rebuilds the same history from the topic.
    store.flush_prefix().await.unwrap();
    assert_eq!(purchase_history(&projection).await, None);
    let read = pos_history::rebuild_if_needed(&projection, &bus)
        .await
        .unwrap();
    assert_eq!(read, Some(3));
    assert_eq!(purchase_history(&projection).await, Some(refunded_in_full));
}
