//! The gateway's settings.
//!
//! Order of precedence: built-in defaults (enough to run on one machine), then environment
//! variables (`POS_…`), then command-line flags; `validate` runs before anything is served.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Settings of one gateway process.
#[derive(Debug, Clone, Parser)]
#[command(name = "terminal-gateway", version, about)]
pub struct Config {
    /// gRPC address for terminals (TerminalGateway) and operators (TerminalManagement).
    #[arg(long, env = "POS_GATEWAY_LISTEN", default_value = "127.0.0.1:7001")]
    pub listen: SocketAddr,
    /// Prometheus `/metrics` address.
    #[arg(long, env = "POS_GATEWAY_METRICS", default_value = "127.0.0.1:9101")]
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
    /// File holding the software HSM's local master key (64 hex characters). Created with
    /// owner-only permissions when missing; in production use a hardware HSM instead.
    #[arg(long, env = "POS_HSM_LMK_FILE", default_value = ".pos/hsm-lmk.hex")]
    pub lmk_file: PathBuf,
    /// File holding the key for card and identity tokens (HMAC-SHA-256, 64 hex characters);
    /// every service of a deployment must share it. Created when missing.
    #[arg(long, env = "POS_TOKEN_KEY_FILE", default_value = ".pos/token-key.hex")]
    pub token_key_file: PathBuf,
    /// File holding the data key (64 hex characters) that encrypts personal data the platform
    /// must be able to read back (settlement account numbers, phones). Created when missing.
    #[arg(long, env = "POS_DATA_KEY_FILE", default_value = ".pos/data-key.hex")]
    pub data_key_file: PathBuf,
    /// Operator credentials for the management API: one `name roles sha256(token)` per line.
    /// When missing, an `admin` credential is created and its token written beside it.
    #[arg(long, env = "POS_OPERATORS_FILE", default_value = ".pos/operators")]
    pub operators_file: PathBuf,
    /// The authorization service; `https://` when mutual TLS (`POS_TLS_*`) is configured, its
    /// certificate then being verified for the URL's host.
    #[arg(
        long,
        env = "POS_AUTHORIZATION_URL",
        default_value = "http://127.0.0.1:7002"
    )]
    pub authorization_url: String,
    /// How long the gateway waits for the authorization service before it answers the terminal
    /// "96", in milliseconds (the outcome at the issuer may then be unknown: reversals handle it).
    #[arg(long, env = "POS_AUTHORIZATION_TIMEOUT_MS", default_value_t = 30_000)]
    pub authorization_timeout_ms: u64,
    /// The reversal service (reversals, voids, refunds); `https://` under mutual TLS.
    #[arg(
        long,
        env = "POS_REVERSAL_URL",
        default_value = "http://127.0.0.1:7003"
    )]
    pub reversal_url: String,
    /// How long the gateway waits for the reversal service, in milliseconds.
    #[arg(long, env = "POS_REVERSAL_TIMEOUT_MS", default_value_t = 15_000)]
    pub reversal_timeout_ms: u64,
    /// The settlement service (terminal batch settlement); `https://` under mutual TLS.
    #[arg(
        long,
        env = "POS_SETTLEMENT_URL",
        default_value = "http://127.0.0.1:7004"
    )]
    pub settlement_url: String,
    /// How long an activation code stays valid, in seconds.
    #[arg(long, env = "POS_ACTIVATION_TTL_SECS", default_value_t = 900)]
    pub activation_ttl_secs: u64,
    /// Wrong activation codes allowed per terminal code before it is burned.
    #[arg(long, env = "POS_ACTIVATION_MAX_ATTEMPTS", default_value_t = 5)]
    pub activation_max_attempts: u32,
    /// MAC failures in one session after which the gateway drops the connection.
    #[arg(long, env = "POS_MAC_FAILURE_LIMIT", default_value_t = 3)]
    pub mac_failure_limit: u32,
    /// Largest accepted difference between a terminal's clock and the host's at sign-in.
    #[arg(long, env = "POS_SIGN_IN_MAX_SKEW_SECS", default_value_t = 300)]
    pub sign_in_max_skew_secs: u64,
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
    /// Mutual TLS of the gRPC server and of the authorization client (`POS_TLS_CERT`,
    /// `POS_TLS_KEY`, `POS_TLS_CA`); plaintext when none is set.
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
            (60..=86_400).contains(&self.activation_ttl_secs),
            "POS_ACTIVATION_TTL_SECS must be between 60 and 86400"
        );
        anyhow::ensure!(
            (1..=20).contains(&self.activation_max_attempts),
            "POS_ACTIVATION_MAX_ATTEMPTS must be between 1 and 20"
        );
        anyhow::ensure!(
            self.mac_failure_limit >= 1,
            "POS_MAC_FAILURE_LIMIT must be at least 1"
        );
        self.business_day()?;
        let tls = self.tls.config()?;
        pos_tls::check_url(&self.authorization_url, tls.as_ref())
            .map_err(|e| anyhow::anyhow!("POS_AUTHORIZATION_URL: {e}"))?;
        pos_tls::check_url(&self.reversal_url, tls.as_ref())
            .map_err(|e| anyhow::anyhow!("POS_REVERSAL_URL: {e}"))?;
        pos_tls::check_url(&self.settlement_url, tls.as_ref())
            .map_err(|e| anyhow::anyhow!("POS_SETTLEMENT_URL: {e}"))?;
        anyhow::ensure!(
            (100..=120_000).contains(&self.reversal_timeout_ms),
            "POS_REVERSAL_TIMEOUT_MS must be between 100 and 120000"
        );
        Ok(())
    }

    /// Activation code lifetime.
    pub fn activation_ttl(&self) -> Duration {
        Duration::from_secs(self.activation_ttl_secs)
    }
}
