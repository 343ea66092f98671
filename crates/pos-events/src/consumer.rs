//! Consuming events at least once: offsets are committed only for events whose handler
//! finished, periodically and at shutdown, so a crash redelivers and never loses.
//!
//! The consumer assigns itself every partition of its topics and resumes at the offsets its
//! group committed, instead of joining the group through the broker's group coordinator: a
//! process killed without leaving its group (a crash, SIGKILL) would otherwise keep its
//! partitions until the broker notices, and the broker used here (Tansu 0.6) did not hand them
//! to the restarted process at all. The price: one process per group (each service runs one
//! follower per group; scaling a group out needs partition ownership, e.g. by a lock per
//! partition).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prost::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, warn};

use crate::{BusConfig, BusError, EventEnvelope, Result, Topic, trace};

/// What a [`EventConsumer::follow`] handler returns: a boxed, `Send` future, so that the
/// follow loop can run in a spawned task (an `AsyncFnMut` handler's future cannot be named
/// `Send`).
pub type Handling<'a> = std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// An event as received, with where it came from.
#[derive(Debug, Clone)]
pub struct ReceivedEvent {
    /// The decoded envelope.
    pub envelope: EventEnvelope,
    /// Full topic name.
    pub topic: String,
    /// Partition and offset of the record.
    pub partition: i32,
    pub offset: i64,
    /// The record key (partition key).
    pub key: String,
    /// The producer's trace context, to parent the handling span.
    pub parent: opentelemetry::Context,
}

/// The follower of a consumer group reading one or more topics.
pub struct EventConsumer {
    consumer: Arc<StreamConsumer>,
    /// Next offset to commit per (topic, partition): the offset after the last finished event.
    pending: Mutex<HashMap<(String, i32), i64>>,
    malformed: AtomicU64,
    commit_interval: Duration,
    group: String,
    /// Full names of the topics.
    topics: Vec<String>,
    /// Set once every partition is assigned at its committed offset.
    assigned: tokio::sync::OnceCell<()>,
}

impl std::fmt::Debug for EventConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventConsumer")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl EventConsumer {
    /// Follows `topics` for `group`, from the group's committed offsets (a new group starts
    /// at the earliest offset). Partitions are assigned on the first [`recv`](Self::recv).
    pub fn new(config: &BusConfig, group: &str, topics: &[Topic]) -> Result<Self> {
        let names: Vec<String> = topics.iter().map(|t| t.name(config)).collect();
        Self::with_topic_names(config, group, &names)
    }

    /// Like [`new`](Self::new) with full topic names.
    pub fn with_topic_names(config: &BusConfig, group: &str, topics: &[String]) -> Result<Self> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("client.id", &config.client_id)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .create()
            .map_err(BusError::Client)?;
        Ok(Self {
            consumer: Arc::new(consumer),
            pending: Mutex::new(HashMap::new()),
            malformed: AtomicU64::new(0),
            commit_interval: config.commit_interval,
            group: group.to_owned(),
            topics: topics.to_vec(),
            assigned: tokio::sync::OnceCell::new(),
        })
    }

    /// Assigns every partition of the topics at the group's committed offset (the beginning
    /// when it has none).
    async fn assign(&self) -> Result<()> {
        let names = self.topics.clone();
        let partitions = crate::reader::blocking(&self.consumer, move |c| {
            crate::reader::partitions_of(c, &names)
        })
        .await?;
        let mut wanted = TopicPartitionList::new();
        for (topic, partition) in &partitions {
            wanted.add_partition(topic, *partition);
        }
        let committed = crate::reader::blocking(&self.consumer, move |c| {
            c.committed_offsets(wanted, Duration::from_secs(10))
                .map_err(BusError::Consumer)
        })
        .await?;
        let mut assignment = TopicPartitionList::new();
        for (topic, partition) in &partitions {
            let offset = committed
                .find_partition(topic, *partition)
                .map(|p| p.offset())
                .filter(|o| matches!(o, Offset::Offset(n) if *n >= 0))
                .unwrap_or(Offset::Beginning);
            assignment
                .add_partition_offset(topic, *partition, offset)
                .map_err(BusError::Consumer)?;
        }
        self.consumer
            .assign(&assignment)
            .map_err(BusError::Consumer)?;
        debug!(group = %self.group, partitions = partitions.len(), "partitions assigned at the committed offsets");
        Ok(())
    }

    /// The next well-formed event. Records that do not decode as an envelope are logged,
    /// counted ([`malformed_count`](Self::malformed_count)) and skipped so they cannot block
    /// the partition.
    pub async fn recv(&self) -> Result<ReceivedEvent> {
        self.assigned.get_or_try_init(|| self.assign()).await?;
        loop {
            let message = self.consumer.recv().await.map_err(BusError::Consumer)?;
            match decode(&message) {
                Ok(event) => return Ok(event),
                Err(reason) => {
                    self.malformed.fetch_add(1, Ordering::Relaxed);
                    warn!(
                        group = %self.group,
                        topic = message.topic(),
                        partition = message.partition(),
                        offset = message.offset(),
                        %reason,
                        "skipping malformed record"
                    );
                    self.mark(message.topic(), message.partition(), message.offset());
                }
            }
        }
    }

    /// Marks `event` as finished: its offset is committed with the next commit.
    pub fn ack(&self, event: &ReceivedEvent) {
        self.mark(&event.topic, event.partition, event.offset);
    }

    /// How many malformed records this consumer skipped.
    pub fn malformed_count(&self) -> u64 {
        self.malformed.load(Ordering::Relaxed)
    }

    /// Commits the offsets of every acknowledged event without waiting for the broker.
    pub fn commit_async(&self) -> Result<()> {
        match self.take_pending()? {
            Some(list) => self
                .consumer
                .commit(&list, CommitMode::Async)
                .map_err(BusError::Consumer),
            None => Ok(()),
        }
    }

    /// Commits the offsets of every acknowledged event and waits for the broker (shutdown).
    pub async fn commit(&self) -> Result<()> {
        let Some(list) = self.take_pending()? else {
            return Ok(());
        };
        let consumer = Arc::clone(&self.consumer);
        tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync))
            .await
            .map_err(|e| BusError::Handler(format!("commit task failed: {e}")))?
            .map_err(BusError::Consumer)
    }

    /// Runs `handler` for every event until `shutdown` completes, then commits what finished.
    ///
    /// An event is acknowledged only after its handler returned `Ok`. A failing handler is
    /// retried with backoff (the event is never skipped), so a projection whose Redis is down
    /// resumes where it stopped.
    pub async fn run<H>(&self, mut handler: H, shutdown: impl Future<Output = ()>) -> Result<()>
    where
        H: AsyncFnMut(&ReceivedEvent) -> Result<()>,
    {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(self.commit_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                _ = tick.tick() => self.commit_async()?,
                received = self.recv() => {
                    let event = received?;
                    if !self.handle(&mut handler, &event, &mut shutdown).await {
                        break;
                    }
                    self.ack(&event);
                }
            }
        }
        self.commit().await
    }

    /// Like [`run`](Self::run) with a handler whose futures are boxed and `Send` (see
    /// [`Handling`]): the loop every service's follower spawns. Each event is acknowledged once
    /// its handler returned `Ok`; a failing handler is retried with backoff, never skipped; a
    /// failing read or commit is logged and tried again, so the follower outlives broker
    /// hiccups.
    pub async fn follow<H>(&self, mut handler: H, shutdown: impl Future<Output = ()>) -> Result<()>
    where
        H: for<'a> FnMut(&'a ReceivedEvent) -> Handling<'a>,
    {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(self.commit_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                _ = tick.tick() => {
                    if let Err(error) = self.commit_async() {
                        warn!(group = %self.group, %error, "committing offsets; trying again");
                    }
                }
                received = self.recv() => {
                    let event = match received {
                        Ok(event) => event,
                        Err(error) => {
                            // A broker hiccup must not end the follower: wait and read on.
                            warn!(group = %self.group, %error, "reading events; trying again");
                            tokio::select! {
                                () = &mut shutdown => break,
                                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            }
                            continue;
                        }
                    };
                    let mut backoff = Duration::from_millis(50);
                    loop {
                        match handler(&event).await {
                            Ok(()) => break,
                            Err(error) => warn!(
                                group = %self.group,
                                topic = %event.topic,
                                offset = event.offset,
                                %error,
                                retry_in_ms = backoff.as_millis() as u64,
                                "event handler failed; retrying"
                            ),
                        }
                        tokio::select! {
                            () = &mut shutdown => return self.commit().await,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                    self.ack(&event);
                }
            }
        }
        self.commit().await
    }

    /// Handles one event, retrying on failure; `false` when shutdown came first.
    async fn handle<H, S>(&self, handler: &mut H, event: &ReceivedEvent, shutdown: &mut S) -> bool
    where
        H: AsyncFnMut(&ReceivedEvent) -> Result<()>,
        S: Future<Output = ()> + Unpin,
    {
        let mut backoff = Duration::from_millis(50);
        loop {
            match handler(event).await {
                Ok(()) => return true,
                Err(error) => {
                    warn!(
                        group = %self.group,
                        topic = %event.topic,
                        offset = event.offset,
                        %error,
                        retry_in_ms = backoff.as_millis() as u64,
                        "event handler failed; retrying"
                    );
                }
            }
            tokio::select! {
                () = &mut *shutdown => return false,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    fn mark(&self, topic: &str, partition: i32, offset: i64) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let next = offset + 1;
        let entry = pending.entry((topic.to_owned(), partition)).or_insert(next);
        *entry = (*entry).max(next);
    }

    fn take_pending(&self) -> Result<Option<TopicPartitionList>> {
        let pending =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        if pending.is_empty() {
            return Ok(None);
        }
        let mut list = TopicPartitionList::new();
        for ((topic, partition), next) in pending {
            list.add_partition_offset(&topic, partition, Offset::Offset(next))
                .map_err(BusError::Consumer)?;
        }
        debug!(group = %self.group, partitions = list.count(), "committing offsets");
        Ok(Some(list))
    }
}

pub(crate) fn decode(message: &BorrowedMessage<'_>) -> std::result::Result<ReceivedEvent, String> {
    let payload = message.payload().ok_or("record has no value")?;
    let envelope = EventEnvelope::decode(payload).map_err(|e| e.to_string())?;
    if envelope.aggregate_id.is_empty() || envelope.sequence == 0 || envelope.payload.is_none() {
        return Err("envelope lacks aggregate id, sequence or payload".to_owned());
    }
    let key = message
        .key()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .unwrap_or_default();
    Ok(ReceivedEvent {
        envelope,
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        key,
        parent: trace::context_from_headers(message.headers()),
    })
}
