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
    /// End of the business day, local time "HH:MM": merchant settlement settles the business
    /// dates before today's (the same setting as authorization's and reversal's).
    #[arg(long, env = "POS_BUSINESS_DAY_CUTOFF", default_value = "23:00")]
    pub business_day_cutoff: String,
    /// UTC offset of the business day's local time, "+HH:MM" (Asia/Shanghai: +08:00).
    #[arg(
        long,
        env = "POS_BUSINESS_DAY_UTC_OFFSET",
        default_value = "+08:00",
        allow_hyphen_values = true
    )]
    pub business_day_utc_offset: String,
    /// Operations knob: every business date up to and including this one (YYYY-MM-DD) counts
    /// as closed and may be settled, besides the dates before today's (an early close, a
    /// drill). Steps of a date settled early that arrive later become adjustments.
    #[arg(long, env = "POS_SETTLEMENT_CLOSED_THROUGH")]
    pub closed_through: Option<String>,
    /// Directory of the merchant settlement files (CSV).
    #[arg(
        long,
        env = "POS_SETTLEMENT_FILES_DIR",
        default_value = ".pos/settlement-files"
    )]
    pub files_dir: std::path::PathBuf,
    /// Fee of a refunded transaction when the merchant's fee schedule does not say:
    /// `returned` (in proportion to the refunded part) or `retained`.
    #[arg(long, env = "POS_SETTLEMENT_REFUND_FEE", default_value = "returned")]
    pub refund_fee: crate::fees::RefundFee,
    /// Operator credentials (the gateway's file, `name roles sha256(token)` per line): merchant
    /// settlement calls need the `settlement` or `admin` role.
    #[arg(long, env = "POS_OPERATORS_FILE", default_value = ".pos/operators")]
    pub operators_file: std::path::PathBuf,
}

impl Config {
    /// Refuses settings that cannot work.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.kafka.is_empty(),
            "POS_KAFKA must name at least one broker"
        );
        self.tls.config()?;
        self.business_day()?;
        if let Some(date) = &self.closed_through {
            anyhow::ensure!(
                crate::day::parse_date(date).is_some(),
                "POS_SETTLEMENT_CLOSED_THROUGH must be a date YYYY-MM-DD, got {date:?}"
            );
        }
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
