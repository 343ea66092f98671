//! The `pos.<aggregate>.v1` topics and their creation at start-up.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

use crate::{BusConfig, BusError, Result};

/// One of the platform's topics (DESIGN.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Authorizations, reversals, voids, refunds; keyed by terminal id.
    Transactions,
    /// Terminals, activation, sessions, operators; keyed by terminal id.
    Terminals,
    /// Merchant onboarding and status; keyed by merchant id.
    Merchants,
    /// Batches and merchant settlements.
    Settlement,
    /// Fraud alerts and blacklist entries.
    Fraud,
}

impl Topic {
    /// Every topic, in a stable order.
    pub const ALL: [Topic; 5] = [
        Topic::Transactions,
        Topic::Terminals,
        Topic::Merchants,
        Topic::Settlement,
        Topic::Fraud,
    ];

    /// The topic's name without a namespace.
    pub fn base_name(self) -> &'static str {
        match self {
            Topic::Transactions => "pos.transactions.v1",
            Topic::Terminals => "pos.terminals.v1",
            Topic::Merchants => "pos.merchants.v1",
            Topic::Settlement => "pos.settlement.v1",
            Topic::Fraud => "pos.fraud.v1",
        }
    }

    /// The topic's name in the namespace of `config`.
    pub fn name(self, config: &BusConfig) -> String {
        match &config.topic_namespace {
            Some(ns) => format!("{ns}.{}", self.base_name()),
            None => self.base_name().to_owned(),
        }
    }
}

/// Creates the given topics when they do not exist yet; existing topics are left untouched.
pub async fn ensure_topics(config: &BusConfig, topics: &[Topic]) -> Result<()> {
    let names: Vec<String> = topics.iter().map(|t| t.name(config)).collect();
    ensure_topic_names(config, &names).await
}

/// Like [`ensure_topics`] for arbitrary topic names (tests and tools).
pub async fn ensure_topic_names(config: &BusConfig, names: &[String]) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("client.id", &config.client_id)
        .create()
        .map_err(BusError::Client)?;
    let new_topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                config.partitions,
                TopicReplication::Fixed(config.replication),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(new_topics.iter(), &options)
        .await
        .map_err(|e| BusError::CreateTopic {
            topic: names.join(","),
            reason: e.to_string(),
        })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(BusError::CreateTopic {
                    topic,
                    reason: code.to_string(),
                });
            }
        }
    }
    Ok(())
}
