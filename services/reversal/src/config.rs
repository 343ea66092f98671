//! The service's settings: built-in defaults (enough to run on one machine beside the gateway,
//! authorization and issuer-sim), then environment variables (`POS_…`), then flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};

/// Who may authorize a void or a refund on the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Approval {
    /// The supervisor ("00"), or the operator who made the original.
    Operator,
    /// Only the supervisor ("00"), whose password the gateway checked.
    Supervisor,
}

/// Settings of one reversal process.
#[derive(Debug, Clone, Parser)]
#[command(name = "reversal", version, about)]
pub struct Config {
    /// gRPC address of the Reversal service (called by terminal-gateway).
    #[arg(long, env = "POS_REVERSAL_LISTEN", default_value = "127.0.0.1:7003")]
    pub listen: SocketAddr,
    /// Prometheus `/metrics` address.
    #[arg(long, env = "POS_REVERSAL_METRICS", default_value = "127.0.0.1:9103")]
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
    /// Prefix of every Redis key: the gateway's, whose transaction records (written by
    /// authorization) this service reads.
    #[arg(long, env = "POS_REDIS_PREFIX", default_value = "pos")]
    pub redis_prefix: String,
    /// The card token key file, shared with terminal-gateway (which creates it): a card
    /// presented for a void or refund must be the original's. Must exist.
    #[arg(long, env = "POS_TOKEN_KEY_FILE", default_value = ".pos/token-key.hex")]
    pub token_key_file: PathBuf,
    /// The issuer's gRPC endpoint; `https://` under mutual TLS.
    #[arg(long, env = "POS_ISSUER_URL", default_value = "http://127.0.0.1:7010")]
    pub issuer_url: String,
    /// Deadline of an issuer call, in milliseconds.
    #[arg(long, env = "POS_ISSUER_TIMEOUT_MS", default_value_t = 5000)]
    pub issuer_timeout_ms: u64,
    /// Refunds are accepted this many days after the original's business date.
    #[arg(long, env = "POS_REFUND_WINDOW_DAYS", default_value_t = 30)]
    pub refund_window_days: u32,
    /// Who may authorize a void: `operator` (the original's operator or the supervisor) or
    /// `supervisor`.
    #[arg(
        long,
        env = "POS_VOID_APPROVAL",
        value_enum,
        default_value = "operator"
    )]
    pub void_approval: Approval,
    /// Who may authorize a refund: `supervisor` (default) or `operator` (any logged-in
    /// operator).
    #[arg(
        long,
        env = "POS_REFUND_APPROVAL",
        value_enum,
        default_value = "supervisor"
    )]
    pub refund_approval: Approval,
    /// How often transactions whose decision was never published are looked for, in
    /// milliseconds.
    #[arg(long, env = "POS_REVERSAL_SWEEP_MS", default_value_t = 2000)]
    pub sweep_ms: u64,
    /// End of the business day, local time "HH:MM" (transactions after it belong to the next
    /// business day; 隔日强制结算 and settlement follow it).
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
    /// Mutual TLS of the gRPC server and of the issuer client (`POS_TLS_CERT`, `POS_TLS_KEY`,
    /// `POS_TLS_CA`); plaintext when none is set.
    #[command(flatten)]
    pub tls: pos_tls::TlsArgs,
}

impl Config {
    /// The business day these settings define.
    pub fn business_day(&self) -> anyhow::Result<pos_domain::time::BusinessDay> {
        pos_domain::time::BusinessDay::parse(
            &self.business_day_cutoff,
            &self.business_day_utc_offset,
        )
        .map_err(|e| anyhow::anyhow!("POS_BUSINESS_DAY_CUTOFF / POS_BUSINESS_DAY_UTC_OFFSET: {e}"))
    }

    /// Refuses settings that cannot work.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.kafka.is_empty(),
            "POS_KAFKA must name at least one broker"
        );
        anyhow::ensure!(
            (1..=60_000).contains(&self.issuer_timeout_ms),
            "POS_ISSUER_TIMEOUT_MS must be between 1 and 60000"
        );
        anyhow::ensure!(
            (1..=366).contains(&self.refund_window_days),
            "POS_REFUND_WINDOW_DAYS must be between 1 and 366"
        );
        anyhow::ensure!(
            (100..=600_000).contains(&self.sweep_ms),
            "POS_REVERSAL_SWEEP_MS must be between 100 and 600000"
        );
        self.business_day()?;
        let tls = self.tls.config()?;
        tonic::transport::Endpoint::from_str(&self.issuer_url).with_context(|| {
            format!(
                "POS_ISSUER_URL: {:?} is not a valid http(s) URL",
                self.issuer_url
            )
        })?;
        pos_tls::check_url(&self.issuer_url, tls.as_ref())
            .map_err(|e| anyhow::anyhow!("POS_ISSUER_URL: {e}"))?;
        Ok(())
    }

    /// The issuer deadline.
    pub fn issuer_timeout(&self) -> Duration {
        Duration::from_millis(self.issuer_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("reversal").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_follow_card_network_practice() {
        let config = parse(&[]);
        config.validate().unwrap();
        assert_eq!(config.refund_window_days, 30);
        assert_eq!(config.void_approval, Approval::Operator);
        assert_eq!(config.refund_approval, Approval::Supervisor);
    }

    #[test]
    fn refuses_settings_that_cannot_work() {
        let zero_window = parse(&["--refund-window-days", "0"]);
        assert!(
            zero_window
                .validate()
                .unwrap_err()
                .to_string()
                .contains("POS_REFUND_WINDOW_DAYS")
        );
        let bad_url = parse(&["--issuer-url", "not a url"]);
        assert!(
            bad_url
                .validate()
                .unwrap_err()
                .to_string()
                .contains("POS_ISSUER_URL")
        );
        let tls_url = parse(&["--issuer-url", "https://127.0.0.1:7010"]);
        assert!(tls_url.validate().is_err(), "https without TLS settings");
    }
}
