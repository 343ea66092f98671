//! Reading topics from the beginning without a consumer group, for projections that keep their
//! own positions in Redis: flushing Redis and restarting rebuilds them from the first event
//! (DESIGN.md §3). Combined with the per-aggregate sequence check, re-reading is harmless.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use tracing::warn;

use crate::consumer::decode;
use crate::{BusConfig, BusError, ReceivedEvent, Result, Topic};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads every partition of some topics from the first record on.
pub struct EventReader {
    consumer: Arc<StreamConsumer>,
    partitions: Vec<(String, i32)>,
}

impl std::fmt::Debug for EventReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReader")
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

impl EventReader {
    /// Assigns every partition of `topics` at its beginning. The topics must exist.
    pub async fn from_beginning(config: &BusConfig, topics: &[Topic]) -> Result<Self> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("client.id", &config.client_id)
            // Required by librdkafka for a consumer handle; no group is ever joined or committed.
            .set("group.id", format!("{}-reader", config.client_id))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .create()
            .map_err(BusError::Client)?;
        let consumer = Arc::new(consumer);
        let names: Vec<String> = topics.iter().map(|t| t.name(config)).collect();
        let partitions = blocking(&consumer, move |c| partitions_of(c, &names)).await?;
        let mut assignment = TopicPartitionList::new();
        for (topic, partition) in &partitions {
            assignment
                .add_partition_offset(topic, *partition, Offset::Beginning)
                .map_err(BusError::Consumer)?;
        }
        consumer.assign(&assignment).map_err(BusError::Consumer)?;
        Ok(Self {
            consumer,
            partitions,
        })
    }

    /// The next well-formed event (malformed records are logged and skipped).
    pub async fn recv(&self) -> Result<ReceivedEvent> {
        loop {
            let message = self.consumer.recv().await.map_err(BusError::Consumer)?;
            match decode(&message) {
                Ok(event) => return Ok(event),
                Err(reason) => {
                    warn!(
                        topic = message.topic(),
                        partition = message.partition(),
                        offset = message.offset(),
                        %reason,
                        "skipping malformed record"
                    );
                }
            }
        }
    }

    /// Hands every event up to the current end of each partition to `handler`, then returns
    /// how many it handled. Events published meanwhile are left for [`recv`](Self::recv).
    pub async fn catch_up<H>(&self, mut handler: H) -> Result<u64>
    where
        H: AsyncFnMut(&ReceivedEvent) -> Result<()>,
    {
        let partitions = self.partitions.clone();
        let mut remaining: HashMap<(String, i32), i64> =
            blocking(&self.consumer, move |c| end_offsets(c, &partitions)).await?;
        remaining.retain(|_, end| *end > 0);
        let mut handled = 0;
        while !remaining.is_empty() {
            let message = self.consumer.recv().await.map_err(BusError::Consumer)?;
            let key = (message.topic().to_owned(), message.partition());
            let offset = message.offset();
            match decode(&message) {
                Ok(event) => {
                    drop(message);
                    handler(&event).await?;
                    handled += 1;
                }
                Err(reason) => warn!(topic = %key.0, offset, %reason, "skipping malformed record"),
            }
            if remaining.get(&key).is_some_and(|end| offset + 1 >= *end) {
                remaining.remove(&key);
            }
        }
        Ok(handled)
    }
}

pub(crate) async fn blocking<T, F>(consumer: &Arc<StreamConsumer>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&StreamConsumer) -> Result<T> + Send + 'static,
{
    let consumer = Arc::clone(consumer);
    tokio::task::spawn_blocking(move || f(&consumer))
        .await
        .map_err(|e| BusError::Handler(format!("metadata task failed: {e}")))?
}

pub(crate) fn partitions_of(
    consumer: &StreamConsumer,
    topics: &[String],
) -> Result<Vec<(String, i32)>> {
    let mut partitions = Vec::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
            .map_err(BusError::Consumer)?;
        let found = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .ok_or_else(|| BusError::CreateTopic {
                topic: topic.clone(),
                reason: "topic does not exist; create it with ensure_topics first".to_owned(),
            })?;
        partitions.extend(found.partitions().iter().map(|p| (topic.clone(), p.id())));
    }
    Ok(partitions)
}

fn end_offsets(
    consumer: &StreamConsumer,
    partitions: &[(String, i32)],
) -> Result<HashMap<(String, i32), i64>> {
    let mut ends = HashMap::new();
    for (topic, partition) in partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, *partition, METADATA_TIMEOUT)
            .map_err(BusError::Consumer)?;
        ends.insert((topic.clone(), *partition), high);
    }
    Ok(ends)
}
