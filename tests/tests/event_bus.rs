//! The event bus against the real broker: ordering per aggregate, at-least-once delivery with
//! committed offsets, and the sequence helper that turns redelivery into one application.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pos_events::dedupe::{SequenceCheck, apply_once};
use pos_events::{
    AggregateRef, BusConfig, BusError, EventConsumer, EventEnvelope, EventPublisher, EventReader,
    Payload, Topic, ensure_topics, new_envelope,
};
use pos_proto::v1::{AuthorizationApproved, Money, TransactionFacts};
use pos_store::{SequenceLog, Store, StoreError};
use pos_testkit::TestEnv;
use tokio::sync::Notify;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(60);

/// An approval of `amount` fen as the `sequence`-th event of terminal `terminal`.
fn approval(terminal: &str, sequence: u64, amount: i64) -> EventEnvelope {
    let payload = Payload::AuthorizationApproved(AuthorizationApproved {
        txn: Some(TransactionFacts {
            transaction_id: format!("{terminal}-{sequence}"),
            amount: Some(Money {
                minor_units: amount,
                currency: "CNY".to_owned(),
            }),
            ..TransactionFacts::default()
        }),
        ..AuthorizationApproved::default()
    });
    new_envelope(
        &AggregateRef::new("terminal", terminal),
        sequence,
        "bus-test",
        payload,
    )
}

fn amount_of(envelope: &EventEnvelope) -> i64 {
    match &envelope.payload {
        Some(Payload::AuthorizationApproved(a)) => a
            .txn
            .as_ref()
            .and_then(|t| t.amount.as_ref())
            .map_or(0, |m| m.minor_units),
        other => panic!("unexpected payload {other:?}"),
    }
}

async fn setup(env: &TestEnv) -> (BusConfig, EventPublisher) {
    let config = env.bus("bus-test");
    ensure_topics(&config, &[Topic::Transactions])
        .await
        .expect("create topics");
    let publisher = EventPublisher::new(&config).expect("producer");
    (config, publisher)
}

async fn publish_series(
    publisher: &EventPublisher,
    terminal: &str,
    sequences: std::ops::RangeInclusive<u64>,
) {
    for sequence in sequences {
        let envelope = approval(terminal, sequence, amount_for(sequence));
        publisher
            .publish(Topic::Transactions, terminal, &envelope)
            .await
            .expect("broker acknowledges");
    }
}

fn amount_for(sequence: u64) -> i64 {
    1_000 + i64::try_from(sequence).unwrap() * 7
}

/// The projection used by these tests: a per-test running total of approved fen in Redis.
struct Totals {
    store: Store,
    log: SequenceLog,
    key: String,
}

impl Totals {
    async fn new(env: &TestEnv) -> Self {
        let store = Store::connect(&env.store()).await.expect("redis");
        let key = store.key(&["approved-total"]);
        Self {
            log: SequenceLog::new(store.clone(), "totals"),
            store,
            key,
        }
    }

    async fn apply(&self, envelope: &EventEnvelope) -> Result<SequenceCheck, StoreError> {
        let amount = amount_of(envelope);
        apply_once(&self.log, envelope, async || {
            let mut conn = self.store.connection();
            let _: i64 = redis::cmd("INCRBY")
                .arg(&self.key)
                .arg(amount)
                .query_async(&mut conn)
                .await?;
            Ok::<(), StoreError>(())
        })
        .await
    }

    async fn total(&self) -> i64 {
        self.store
            .get(&self.key)
            .await
            .unwrap()
            .map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap())
    }
}

#[tokio::test]
async fn events_come_back_in_order_per_aggregate() {
    let env = TestEnv::new();
    let (config, publisher) = setup(&env).await;
    let terminals = ["T0000001", "T0000002", "T0000003"];
    let mut tasks = Vec::new();
    for terminal in terminals {
        let publisher = publisher.clone();
        tasks.push(tokio::spawn(async move {
            publish_series(&publisher, terminal, 1..=15).await;
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let consumer =
        EventConsumer::new(&config, &env.group("order"), &[Topic::Transactions]).unwrap();
    let mut seen: BTreeMap<String, Vec<(u64, i64)>> = BTreeMap::new();
    for _ in 0..45 {
        let event = timeout(WAIT, consumer.recv())
            .await
            .expect("event in time")
            .unwrap();
        assert_eq!(
            event.key, event.envelope.aggregate_id,
            "records are keyed by terminal"
        );
        seen.entry(event.envelope.aggregate_id.clone())
            .or_default()
            .push((event.envelope.sequence, amount_of(&event.envelope)));
    }
    for terminal in terminals {
        let expected: Vec<(u64, i64)> = (1..=15).map(|s| (s, amount_for(s))).collect();
        assert_eq!(
            seen[terminal], expected,
            "events of {terminal} out of order or missing"
        );
    }
}

#[tokio::test]
async fn redelivered_events_are_applied_once() {
    let env = TestEnv::new();
    let (config, publisher) = setup(&env).await;
    publish_series(&publisher, "T0000009", 1..=10).await;
    let expected_total: i64 = (1..=10).map(amount_for).sum();
    let totals = Totals::new(&env).await;
    let group = env.group("redelivery");

    // First consumer applies every event, then "crashes" before committing any offset.
    {
        let consumer = EventConsumer::new(&config, &group, &[Topic::Transactions]).unwrap();
        for _ in 0..10 {
            let event = timeout(WAIT, consumer.recv())
                .await
                .expect("event")
                .unwrap();
            assert_eq!(
                totals.apply(&event.envelope).await.unwrap(),
                SequenceCheck::Apply
            );
        }
    }
    assert_eq!(totals.total().await, expected_total);

    // The group gets the same ten events again; the sequence helper skips every one.
    let consumer = EventConsumer::new(&config, &group, &[Topic::Transactions]).unwrap();
    for expected_sequence in 1..=10 {
        let event = timeout(WAIT, consumer.recv())
            .await
            .expect("redelivery")
            .unwrap();
        assert_eq!(event.envelope.sequence, expected_sequence);
        assert_eq!(
            totals.apply(&event.envelope).await.unwrap(),
            SequenceCheck::AlreadyApplied
        );
    }
    assert_eq!(
        totals.total().await,
        expected_total,
        "no event may be applied twice"
    );
}

/// Runs a consumer of `group` until it has handled `count` events; returns their sequences.
async fn consume_and_stop(
    config: &BusConfig,
    group: &str,
    totals: &Totals,
    count: usize,
) -> Vec<u64> {
    let consumer = EventConsumer::new(config, group, &[Topic::Transactions]).unwrap();
    let handled = AtomicUsize::new(0);
    let done = Arc::new(Notify::new());
    let seen = std::sync::Mutex::new(Vec::new());
    let stop = Arc::clone(&done);
    let run = consumer.run(
        async |event| {
            totals
                .apply(&event.envelope)
                .await
                .map_err(|e| BusError::Handler(e.to_string()))?;
            seen.lock().unwrap().push(event.envelope.sequence);
            if handled.fetch_add(1, Ordering::SeqCst) + 1 == count {
                done.notify_one();
            }
            Ok(())
        },
        async move { stop.notified().await },
    );
    timeout(WAIT, run)
        .await
        .expect("consumer finished in time")
        .unwrap();
    seen.into_inner().unwrap()
}

#[tokio::test]
async fn a_restarted_consumer_resumes_from_its_committed_offset() {
    let env = TestEnv::new();
    let (config, publisher) = setup(&env).await;
    let totals = Totals::new(&env).await;
    let group = env.group("resume");

    publish_series(&publisher, "T0000042", 1..=10).await;
    let first = consume_and_stop(&config, &group, &totals, 10).await;
    assert_eq!(first, (1..=10).collect::<Vec<_>>());

    publish_series(&publisher, "T0000042", 11..=20).await;
    let second = consume_and_stop(&config, &group, &totals, 10).await;
    assert_eq!(
        second,
        (11..=20).collect::<Vec<_>>(),
        "the restarted consumer starts after the committed offset"
    );
    assert_eq!(totals.total().await, (1..=20).map(amount_for).sum::<i64>());
}

#[tokio::test]
async fn malformed_records_are_skipped_and_incomplete_envelopes_refused() {
    let env = TestEnv::new();
    let (config, publisher) = setup(&env).await;
    let topic = Topic::Transactions.name(&config);

    let mut unsequenced = approval("T0000077", 1, 500);
    unsequenced.sequence = 0;
    let refused = publisher
        .publish(Topic::Transactions, "T0000077", &unsequenced)
        .await
        .expect_err("sequence 0 is refused");
    assert!(
        matches!(refused, BusError::IncompleteEnvelope(_)),
        "{refused}"
    );

    publisher
        .publish_raw(&topic, "T0000077", b"\xff\xff not protobuf", "", "")
        .await
        .unwrap();
    publish_series(&publisher, "T0000077", 1..=1).await;

    let consumer =
        EventConsumer::new(&config, &env.group("malformed"), &[Topic::Transactions]).unwrap();
    let event = timeout(WAIT, consumer.recv())
        .await
        .expect("event")
        .unwrap();
    assert_eq!(
        event.envelope.sequence, 1,
        "only the well-formed event is delivered"
    );
    assert_eq!(amount_of(&event.envelope), amount_for(1));
    assert_eq!(consumer.malformed_count(), 1);
}

#[tokio::test]
async fn a_reader_replays_every_event_from_the_beginning_then_follows() {
    let env = TestEnv::new();
    let (config, publisher) = setup(&env).await;
    publish_series(&publisher, "T0000101", 1..=5).await;
    publish_series(&publisher, "T0000102", 1..=5).await;
    let history: i64 = 2 * (1..=5).map(amount_for).sum::<i64>();

    let reader = EventReader::from_beginning(&config, &[Topic::Transactions])
        .await
        .unwrap();
    let (handled, total) = replay_total(&reader).await;
    assert_eq!((handled, total), (10, history));

    publish_series(&publisher, "T0000103", 1..=1).await;
    let next = timeout(WAIT, reader.recv())
        .await
        .expect("new event")
        .unwrap();
    assert_eq!(next.envelope.aggregate_id, "T0000103");

    // A restarted projection reads the whole history again, the new event included.
    let restarted = EventReader::from_beginning(&config, &[Topic::Transactions])
        .await
        .unwrap();
    let (handled, total) = replay_total(&restarted).await;
    assert_eq!((handled, total), (11, history + amount_for(1)));
}

async fn replay_total(reader: &EventReader) -> (u64, i64) {
    let mut total = 0;
    let handled = timeout(
        WAIT,
        reader.catch_up(async |event| {
            total += amount_of(&event.envelope);
            Ok(())
        }),
    )
    .await
    .expect("caught up in time")
    .unwrap();
    (handled, total)
}
