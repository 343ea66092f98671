//! The service's settings: defaults, then environment variables (`POS_…`), then flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Settings of one fraud-check process.
#[derive(Debug, Clone, Parser)]
#[command(name = "fraud-check", version, about)]
pub struct Config {
    /// gRPC address of the FraudCheck service (authorization and posctl call it).
    #[arg(long, env = "POS_FRAUD_LISTEN", default_value = "127.0.0.1:7005")]
    pub listen: SocketAddr,
    /// Prometheus `/metrics` address.
    #[arg(long, env = "POS_FRAUD_METRICS", default_value = "127.0.0.1:9105")]
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
    /// Prefix of every Redis key.
    #[arg(long, env = "POS_REDIS_PREFIX", default_value = "pos")]
    pub redis_prefix: String,
    /// Mutual TLS of the gRPC server (`POS_TLS_CERT`, `POS_TLS_KEY`, `POS_TLS_CA`); plaintext
    /// when none is set.
    #[command(flatten)]
    pub tls: pos_tls::TlsArgs,
    /// The rules file (TOML, see `services/fraud-check/rules/default.toml`).
    #[arg(
        long,
        env = "POS_FRAUD_RULES_FILE",
        default_value = "services/fraud-check/rules/default.toml"
    )]
    pub rules_file: PathBuf,
    /// How often the rules file is checked for changes, in milliseconds (SIGHUP checks at
    /// once).
    #[arg(long, env = "POS_FRAUD_RULES_POLL_MS", default_value_t = 1000)]
    pub rules_poll_ms: u64,
    /// The platform's card token key (terminal-gateway's file): blacklisting a card by its PAN
    /// tokenizes it as authorization does.
    #[arg(long, env = "POS_TOKEN_KEY_FILE", default_value = ".pos/token-key.hex")]
    pub token_key_file: PathBuf,
    /// Operator credentials (the gateway's file): blacklist and alert calls need the `risk` or
    /// `admin` role.
    #[arg(long, env = "POS_OPERATORS_FILE", default_value = ".pos/operators")]
    pub operators_file: PathBuf,
    /// End of the business day, local time "HH:MM" (the volume history is per business day).
    #[arg(long, env = "POS_BUSINESS_DAY_CUTOFF", default_value = "23:00")]
    pub business_day_cutoff: String,
    /// UTC offset of the business day's local time, "+HH:MM".
    #[arg(
        long,
        env = "POS_BUSINESS_DAY_UTC_OFFSET",
        default_value = "+08:00",
        allow_hyphen_values = true
    )]
    pub business_day_utc_offset: String,
    /// This process's name in the rules events (a unique suffix is added at each start).
    #[arg(long, env = "POS_FRAUD_INSTANCE", default_value = "fraud-check")]
    pub instance: String,
}

impl Config {
    /// Refuses settings that cannot work.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.kafka.is_empty(),
            "POS_KAFKA must name at least one broker"
        );
        anyhow::ensure!(
            (50..=600_000).contains(&self.rules_poll_ms),
            "POS_FRAUD_RULES_POLL_MS must be between 50 and 600000"
        );
        self.tls.config()?;
        self.business_day()?;
        Ok(())
    }

    /// The business day these settings define.
    pub fn business_day(&self) -> anyhow::Result<pos_domain::time::BusinessDay> {
        pos_domain::time::BusinessDay::parse(
            &self.business_day_cutoff,
            &self.business_day_utc_offset,
        )
        .map_err(|e| anyhow::anyhow!("POS_BUSINESS_DAY_CUTOFF / POS_BUSINESS_DAY_UTC_OFFSET: {e}"))
    }
}
