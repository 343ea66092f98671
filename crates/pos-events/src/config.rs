//! Connection and topic settings of the bus.

use std::time::Duration;

/// How a service reaches the broker and names its topics.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// Kafka bootstrap servers, comma separated (`127.0.0.1:9092`).
    pub brokers: String,
    /// `client.id` reported to the broker; the service name.
    pub client_id: String,
    /// Prefix that isolates a deployment's (or a test's) topics: with `Some("t1")` the
    /// transactions topic is `t1.pos.transactions.v1`. `None` in production.
    pub topic_namespace: Option<String>,
    /// Partitions for topics this service creates (scale-out unit of every consumer).
    pub partitions: i32,
    /// Replication factor for topics this service creates.
    pub replication: i32,
    /// How long `publish` may wait for the broker's acknowledgement, retries included.
    pub publish_timeout: Duration,
    /// How often a consumer commits the offsets of the events it finished.
    pub commit_interval: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".to_owned(),
            client_id: "pos".to_owned(),
            topic_namespace: None,
            partitions: 6,
            replication: 1,
            publish_timeout: Duration::from_secs(10),
            commit_interval: Duration::from_millis(200),
        }
    }
}

impl BusConfig {
    /// The consumer group `name` in this deployment's namespace (`t1.settlement` with
    /// `Some("t1")`): deployments and tests sharing a broker must not share a group's
    /// partitions.
    pub fn group(&self, name: &str) -> String {
        match &self.topic_namespace {
            Some(namespace) => format!("{namespace}.{name}"),
            None => name.to_owned(),
        }
    }
}
