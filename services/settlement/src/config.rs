//! The service's settings: defaults, then environment variables (`POS_…`), then flags.

use std::net::SocketAddr;

use clap::Parser;

/// Settings of one settlement process.
#[derive(Debug, Clone, Parser)]
#[command(name = "settlement", version, about)]
pub struct Config {
    /// gRPC address of the Settlement service (called by terminal-gateway).
    #[arg(long, env = "POS_SETTLEMENT_LISTEN", default_value = "127.0.0.1:7004")]
    pub listen: SocketAddr,
    /// Prometheus `/metrics` address.
    #[arg(long, env = "POS_SETTLEMENT_METRICS", default_value = "127.0.0.1:9104")]
    pub metrics: SocketAddr,
    /// Kafka bootstrap servers.
    #[arg(long, env = "POS_KAFKA", default_value = "127.0.0.1:9092")]
    pub kafka: String,
    /// Prefix of every topic name (isolates a deployment or a test); none in production.
    #[arg(long, env = "POS_TOPIC_NAMESPACE")]
    pub topic_namespace: Option<String>,
    /// Redis URL.
    #[arg(long, env = "POS_REDIS", default_value = "redis://127.0.0.1:6379")]
    pub redis: String,
    /// Prefix of every Redis key: the gateway's, which reads the open batch of each terminal.
    #[arg(long, env = "POS_REDIS_PREFIX", default_value = "pos")]
    pub redis_prefix: String,
    /// Mutual TLS of the gRPC server (`POS_TLS_CERT`, `POS_TLS_KEY`, `POS_TLS_CA`); plaintext
    /// when none is set.
    #[command(flatten)]
    pub tls: pos_tls::TlsArgs,
}

impl Config {
    /// Refuses settings that cannot work.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.kafka.is_empty(),
            "POS_KAFKA must name at least one broker"
        );
        self.tls.config()?;
        Ok(())
    }
}
