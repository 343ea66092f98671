//! Publishing events: idempotent producer, `acks=all`, one envelope per record.

use std::time::Duration;

use prost::Message;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::{BusConfig, BusError, EventEnvelope, Result, Topic, trace};

/// Where the broker stored a published record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Partition the record went to.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
}

/// Publishes event envelopes. Cheap to clone; one per process is enough.
#[derive(Clone)]
pub struct EventPublisher {
    producer: FutureProducer,
    config: BusConfig,
}

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher")
            .field("brokers", &self.config.brokers)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

impl EventPublisher {
    /// A producer with idempotence on (which implies `acks=all` and ordered retries).
    pub fn new(config: &BusConfig) -> Result<Self> {
        let timeout_ms = config.publish_timeout.as_millis().to_string();
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("client.id", &config.client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5")
            .set("message.timeout.ms", &timeout_ms)
            .set("linger.ms", "1")
            .set("compression.type", "none")
            .create()
            .map_err(BusError::Client)?;
        Ok(Self {
            producer,
            config: config.clone(),
        })
    }

    /// The settings this publisher was made with.
    pub fn config(&self) -> &BusConfig {
        &self.config
    }

    /// Publishes `envelope` to `topic` under `key` (the partition key: records with the same key
    /// stay in order). Returns once the broker has acknowledged the record on all in-sync
    /// replicas; an error means the event must be treated as not written.
    pub async fn publish(
        &self,
        topic: Topic,
        key: &str,
        envelope: &EventEnvelope,
    ) -> Result<Delivery> {
        self.publish_to(&topic.name(&self.config), key, envelope)
            .await
    }

    /// Like [`publish`](Self::publish) to a topic given by its full name.
    pub async fn publish_to(
        &self,
        topic: &str,
        key: &str,
        envelope: &EventEnvelope,
    ) -> Result<Delivery> {
        if envelope.aggregate_id.is_empty() {
            return Err(BusError::IncompleteEnvelope("aggregate_id is empty"));
        }
        if envelope.sequence == 0 {
            return Err(BusError::IncompleteEnvelope("sequence starts at 1"));
        }
        if envelope.payload.is_none() {
            return Err(BusError::IncompleteEnvelope("payload is missing"));
        }
        let value = envelope.encode_to_vec();
        self.publish_raw(
            topic,
            key,
            &value,
            &envelope.traceparent,
            &envelope.tracestate,
        )
        .await
    }

    /// Publishes already encoded bytes (tools and tests of malformed input).
    pub async fn publish_raw(
        &self,
        topic: &str,
        key: &str,
        value: &[u8],
        traceparent: &str,
        tracestate: &str,
    ) -> Result<Delivery> {
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(value)
            .headers(trace::headers_for(traceparent, tracestate));
        let queue_timeout = Timeout::After(self.config.publish_timeout);
        match self.producer.send(record, queue_timeout).await {
            Ok(delivery) => Ok(Delivery {
                partition: delivery.partition,
                offset: delivery.offset,
            }),
            Err((source, _)) => Err(BusError::Publish {
                topic: topic.to_owned(),
                source,
            }),
        }
    }

    /// Waits until every record handed to the producer is acknowledged (at shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer
            .flush(timeout)
            .map_err(|source| BusError::Publish {
                topic: "*".to_owned(),
                source,
            })
    }
}
