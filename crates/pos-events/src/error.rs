//! The bus's error type.

use rdkafka::error::KafkaError;

/// Result alias of this crate.
pub type Result<T, E = BusError> = std::result::Result<T, E>;

/// What can go wrong talking to the broker.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The client could not be created (bad settings, unreachable bootstrap list).
    #[error("cannot create the kafka client: {0}")]
    Client(#[source] KafkaError),
    /// The broker did not acknowledge a record.
    #[error("publishing to {topic} failed: {source}")]
    Publish {
        topic: String,
        #[source]
        source: KafkaError,
    },
    /// Creating a topic failed for a reason other than it already existing.
    #[error("cannot create topic {topic}: {reason}")]
    CreateTopic { topic: String, reason: String },
    /// Receiving, subscribing or committing failed.
    #[error("kafka consumer: {0}")]
    Consumer(#[source] KafkaError),
    /// An envelope without aggregate id or sequence was handed to `publish`.
    #[error("event envelope is incomplete: {0}")]
    IncompleteEnvelope(&'static str),
    /// The event handler of a consumer loop failed; the event is not committed.
    #[error("event handler failed: {0}")]
    Handler(String),
}
