//! The Redis primitives against a real redis-server.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::Duration;

use pos_events::{AggregateRef, AppliedSequences};
use pos_store::{Appended, SequenceLog, Store, WindowTotals};
use pos_testkit::TestEnv;

async fn store() -> Store {
    Store::connect(&TestEnv::new().store())
        .await
        .expect("connect to the test redis")
}

#[tokio::test]
async fn set_if_absent_keeps_the_first_writers_answer() {
    let store = store().await;
    let key = store.key(&["idem", "T0000001", "000001", "000042"]);

    let first = store
        .set_if_absent(&key, b"approved 00 auth 123456", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(first, None, "the first writer stores its record");

    let second = store
        .set_if_absent(&key, b"approved 00 auth 999999", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(second.as_deref(), Some(&b"approved 00 auth 123456"[..]));
    assert_eq!(
        store.get(&key).await.unwrap().as_deref(),
        Some(&b"approved 00 auth 123456"[..]),
        "the second writer must not overwrite the first answer"
    );
}

#[tokio::test]
async fn idempotency_records_expire_after_their_ttl() {
    let store = store().await;
    let key = store.key(&["idem", "short"]);
    assert_eq!(
        store
            .set_if_absent(&key, b"a", Duration::from_millis(150))
            .await
            .unwrap(),
        None
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.get(&key).await.unwrap(), None);
    assert_eq!(
        store
            .set_if_absent(&key, b"b", Duration::from_secs(5))
            .await
            .unwrap(),
        None,
        "after expiry a new record can be stored"
    );
}

#[tokio::test]
async fn fixed_window_counts_then_restarts_after_the_window() {
    let store = store().await;
    let key = store.key(&["mac-failures", "T0000001"]);
    let window = Duration::from_millis(300);
    for expected in 1..=3 {
        assert_eq!(
            store.incr_fixed_window(&key, window).await.unwrap(),
            expected
        );
    }
    assert_eq!(store.fixed_window_count(&key).await.unwrap(), 3);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(store.fixed_window_count(&key).await.unwrap(), 0);
    assert_eq!(store.incr_fixed_window(&key, window).await.unwrap(), 1);
}

#[tokio::test]
async fn sliding_window_sums_only_the_last_window() {
    let store = store().await;
    let key = store.key(&["velocity", "card", "abc"]);
    let window = Duration::from_millis(2_500);
    let t0 = 1_700_000_000_000;
    store
        .sliding_window_add(&key, window, t0, "tx1", 10_000)
        .await
        .unwrap();
    store
        .sliding_window_add(&key, window, t0 + 1_000, "tx2", 20_000)
        .await
        .unwrap();
    let at_2s = store
        .sliding_window_add(&key, window, t0 + 2_000, "tx3", 30_000)
        .await
        .unwrap();
    assert_eq!(
        at_2s,
        WindowTotals {
            count: 3,
            sum: 60_000
        }
    );

    // tx1 (at t0) is older than 2.5 s at t0 + 3 s and drops out.
    let at_3s = store
        .sliding_window_add(&key, window, t0 + 3_000, "tx4", 40_000)
        .await
        .unwrap();
    assert_eq!(
        at_3s,
        WindowTotals {
            count: 3,
            sum: 90_000
        }
    );

    // A redelivered event (same id, same amount) is not counted twice.
    let again = store
        .sliding_window_add(&key, window, t0 + 3_000, "tx4", 40_000)
        .await
        .unwrap();
    assert_eq!(again, at_3s);

    let later = store
        .sliding_window_totals(&key, window, t0 + 10_000)
        .await
        .unwrap();
    assert_eq!(later, WindowTotals::default());
}

#[tokio::test]
async fn sliding_window_key_expires_in_real_time() {
    let store = store().await;
    let key = store.key(&["velocity", "terminal", "T1"]);
    store
        .sliding_window_add(&key, Duration::from_millis(200), 1, "tx1", 5)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut conn = store.connection();
    let exists: u8 = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0, "an idle window must not stay in redis forever");
}

#[tokio::test]
async fn sequence_positions_only_move_forward() {
    let store = store().await;
    let log = SequenceLog::new(store, "test-projection");
    let terminal = AggregateRef::new("terminal", "T0000001");
    assert_eq!(log.last_applied(&terminal).await.unwrap(), 0);
    log.mark_applied(&terminal, 3).await.unwrap();
    log.mark_applied(&terminal, 2).await.unwrap();
    assert_eq!(log.last_applied(&terminal).await.unwrap(), 3);
    let other = AggregateRef::new("terminal", "T0000002");
    assert_eq!(log.last_applied(&other).await.unwrap(), 0);
}

#[tokio::test]
async fn projection_update_and_sequence_are_applied_together_once() {
    let store = store().await;
    let log = SequenceLog::new(store.clone(), "merchants");
    let merchant = AggregateRef::new("merchant", "898310048990001");
    let hash = store.key(&["merchant", &merchant.id]);

    assert!(
        log.hash_set_if_newer(&merchant, 1, &hash, &[("status", "pending")])
            .await
            .unwrap()
    );
    // A redelivery of event 1 with different content changes nothing.
    assert!(
        !log.hash_set_if_newer(&merchant, 1, &hash, &[("status", "bogus")])
            .await
            .unwrap()
    );
    assert!(
        log.hash_set_if_newer(&merchant, 2, &hash, &[("status", "approved")])
            .await
            .unwrap()
    );
    assert_eq!(
        store.hash_get(&hash, "status").await.unwrap().as_deref(),
        Some("approved")
    );
    assert_eq!(log.last_applied(&merchant).await.unwrap(), 2);
}

#[tokio::test]
async fn a_lock_has_one_holder_and_expires() {
    let store = store().await;
    let first = store
        .try_lock("txn:T1:000001:000042", Duration::from_secs(5))
        .await
        .unwrap()
        .expect("free lock is taken");
    assert!(
        store
            .try_lock("txn:T1:000001:000042", Duration::from_secs(5))
            .await
            .unwrap()
            .is_none(),
        "a held lock cannot be taken twice"
    );
    assert!(first.release().await.unwrap());

    let short = store
        .try_lock("agg", Duration::from_millis(100))
        .await
        .unwrap()
        .expect("lock");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let next = store
        .try_lock("agg", Duration::from_secs(5))
        .await
        .unwrap()
        .expect("an expired lock can be taken by the next caller");
    assert!(
        !short.release().await.unwrap(),
        "a stale holder must not release the next holder's lock"
    );
    assert!(next.release().await.unwrap());
}

#[tokio::test]
async fn prefixes_keep_deployments_apart() {
    let a = store().await;
    let b = store().await;
    let key_a = a.key(&["terminal", "T1"]);
    let key_b = b.key(&["terminal", "T1"]);
    assert_ne!(key_a, key_b);
    a.hash_set(&key_a, &[("batch", "000001")]).await.unwrap();
    b.hash_set(&key_b, &[("batch", "000007")]).await.unwrap();

    assert_eq!(a.flush_prefix().await.unwrap(), 1);
    assert!(a.hash_get_all(&key_a).await.unwrap().is_empty());
    assert_eq!(
        b.hash_get_all(&key_b).await.unwrap(),
        vec![("batch".to_owned(), "000007".to_owned())],
        "flushing one prefix leaves the other alone"
    );
}

#[tokio::test]
async fn event_lists_take_only_the_next_event() {
    let store = store().await;
    let key = store.key(&["agg", "terminal", "T0000001", "events"]);
    assert_eq!(
        store.append_next(&key, 1, b"registered").await.unwrap(),
        Appended::Appended
    );
    assert_eq!(
        store.append_next(&key, 2, b"activated").await.unwrap(),
        Appended::Appended
    );
    assert_eq!(
        store
            .append_next(&key, 2, b"activated again")
            .await
            .unwrap(),
        Appended::AlreadyThere,
        "a redelivered event is not appended twice"
    );
    assert_eq!(
        store.append_next(&key, 4, b"signed in").await.unwrap(),
        Appended::Gap { len: 2 },
        "a missing event is noticed"
    );
    assert_eq!(
        store.event_list(&key).await.unwrap(),
        vec![b"registered".to_vec(), b"activated".to_vec()]
    );
}
