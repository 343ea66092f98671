//! The service's settings.
//!
//! Order of precedence: built-in defaults (enough to run on one machine beside the gateway and
//! issuer-sim), then environment variables (`POS_…`), then command-line flags; `validate` runs
//! before anything is served and turns the decision settings into [`Rules`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use pos_domain::ResponseCode;
use rust_decimal::Decimal;

use crate::rules::Rules;

/// The development zone PIN key shared with issuer-sim (never use it in production).
pub const DEV_ZPK: &str = "0123456789ABCDEFFEDCBA9876543210";

/// Settings of one authorization process.
#[derive(Debug, Clone, Parser)]
#[command(name = "authorization", version, about)]
pub struct Config {
    /// gRPC address of the Authorization service (called by terminal-gateway).
    #[arg(
        long,
        env = "POS_AUTHORIZATION_LISTEN",
        default_value = "127.0.0.1:7002"
    )]
    pub listen: SocketAddr,
    /// Prometheus `/metrics` address.
    #[arg(
        long,
        env = "POS_AUTHORIZATION_METRICS",
        default_value = "127.0.0.1:9102"
    )]
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
    /// Prefix of every Redis key: the gateway's, whose merchant, terminal and session facts
    /// this service reads.
    #[arg(long, env = "POS_REDIS_PREFIX", default_value = "pos")]
    pub redis_prefix: String,
    /// The software HSM's local master key file, shared with terminal-gateway (which creates
    /// it): session PIN keys are wrapped under it. Must exist.
    #[arg(long, env = "POS_HSM_LMK_FILE", default_value = ".pos/hsm-lmk.hex")]
    pub lmk_file: PathBuf,
    /// The card token key file, shared with terminal-gateway (which creates it). Must exist.
    #[arg(long, env = "POS_TOKEN_KEY_FILE", default_value = ".pos/token-key.hex")]
    pub token_key_file: PathBuf,
    /// The issuer's gRPC endpoint; `https://` when mutual TLS (`POS_TLS_*`) is configured, the
    /// issuer's certificate then being verified for the URL's host.
    #[arg(long, env = "POS_ISSUER_URL", default_value = "http://127.0.0.1:7010")]
    pub issuer_url: String,
    /// Deadline of an issuer call, in milliseconds; a missed deadline answers "91".
    #[arg(long, env = "POS_ISSUER_TIMEOUT_MS", default_value_t = 5000)]
    pub issuer_timeout_ms: u64,
    /// Zone PIN key agreed with the issuer (32 hex digits, double-length TDES), imported into
    /// the HSM at start-up.
    #[arg(long, env = "POS_ISSUER_ZPK", default_value = DEV_ZPK, hide_default_value = true)]
    pub issuer_zpk: String,
    /// Id of that zone PIN key, sent with every PIN block.
    #[arg(long, env = "POS_ISSUER_ZPK_ID", default_value = "zpk-dev-1")]
    pub issuer_zpk_id: String,
    /// Acquirer institution id (DE32) sent to the issuer.
    #[arg(long, env = "POS_ACQUIRER_ID", default_value = "48020000")]
    pub acquirer_id: String,
    /// PAN prefixes this deployment accepts, comma separated ("62" = UnionPay).
    #[arg(
        long,
        env = "POS_ACCEPTED_BINS",
        default_value = "62",
        value_delimiter = ','
    )]
    pub accepted_bins: Vec<String>,
    /// Per-transaction limit (major units, e.g. "50000.00") of merchants without their own.
    #[arg(
        long,
        env = "POS_DEFAULT_TRANSACTION_LIMIT",
        default_value = "50000.00"
    )]
    pub default_transaction_limit: String,
    /// fraud-check's gRPC endpoint (`https://` under mutual TLS); without it no fraud check is
    /// made (policy NONE).
    #[arg(long, env = "POS_FRAUD_URL")]
    pub fraud_url: Option<String>,
    /// Deadline of a fraud-check call, in milliseconds.
    #[arg(long, env = "POS_FRAUD_TIMEOUT_MS", default_value_t = 50)]
    pub fraud_timeout_ms: u64,
    /// When fraud-check is slow or down, amounts below this (major units) go on without it
    /// (fail open); amounts at or above it are declined (fail closed).
    #[arg(long, env = "POS_FRAUD_FAIL_OPEN_BELOW", default_value = "1000.00")]
    pub fraud_fail_open_below: String,
    /// Response code of a fail-closed decline: "96" (system malfunction, retry later) or "59"
    /// (suspected fraud).
    #[arg(long, env = "POS_FRAUD_FAIL_CLOSED_CODE", default_value = "96")]
    pub fraud_fail_closed_code: String,
    /// A pre-auth completion may exceed the pre-authorized amount by this fraction.
    #[arg(long, env = "POS_COMPLETION_TOLERANCE", default_value = "0.15")]
    pub completion_tolerance: String,
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
    /// Mutual TLS of the gRPC server and of the issuer and fraud-check clients (`POS_TLS_CERT`,
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

    /// Refuses settings that cannot work; returns the decision rules they define.
    pub fn validate(&self) -> anyhow::Result<Rules> {
        anyhow::ensure!(
            !self.kafka.is_empty(),
            "POS_KAFKA must name at least one broker"
        );
        anyhow::ensure!(
            (1..=60_000).contains(&self.issuer_timeout_ms),
            "POS_ISSUER_TIMEOUT_MS must be between 1 and 60000"
        );
        anyhow::ensure!(
            (1..=10_000).contains(&self.fraud_timeout_ms),
            "POS_FRAUD_TIMEOUT_MS must be between 1 and 10000"
        );
        self.business_day()?;
        let tls = self.tls.config()?;
        for (name, url) in std::iter::once(("POS_ISSUER_URL", &self.issuer_url))
            .chain(self.fraud_url.iter().map(|url| ("POS_FRAUD_URL", url)))
        {
            tonic::transport::Endpoint::from_str(url)
                .with_context(|| format!("{name}: {url:?} is not a valid http(s) URL"))?;
            pos_tls::check_url(url, tls.as_ref()).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        }
        pos_crypto::DesKey::from_hex(&self.issuer_zpk)
            .map_err(|e| anyhow::anyhow!("POS_ISSUER_ZPK: {e}"))?;
        anyhow::ensure!(
            !self.issuer_zpk_id.is_empty(),
            "POS_ISSUER_ZPK_ID must not be empty"
        );
        let accepted_bins: Vec<String> = self
            .accepted_bins
            .iter()
            .map(|b| b.trim().to_owned())
            .filter(|b| !b.is_empty())
            .collect();
        anyhow::ensure!(
            !accepted_bins.is_empty()
                && accepted_bins
                    .iter()
                    .all(|b| b.len() <= 11 && b.bytes().all(|c| c.is_ascii_digit())),
            "POS_ACCEPTED_BINS must be a comma-separated list of 1 to 11 digit prefixes"
        );
        let fraud_fail_closed_code = ResponseCode::parse(&self.fraud_fail_closed_code)
            .ok()
            .filter(|c| {
                matches!(
                    c,
                    ResponseCode::SystemMalfunction | ResponseCode::SuspectedFraud
                )
            })
            .context("POS_FRAUD_FAIL_CLOSED_CODE must be 96 or 59")?;
        let completion_tolerance = decimal("POS_COMPLETION_TOLERANCE", &self.completion_tolerance)?;
        anyhow::ensure!(
            completion_tolerance <= Decimal::ONE,
            "POS_COMPLETION_TOLERANCE is a fraction between 0 and 1 (0.15 = 15 %)"
        );
        let default_limit = decimal(
            "POS_DEFAULT_TRANSACTION_LIMIT",
            &self.default_transaction_limit,
        )?;
        anyhow::ensure!(
            default_limit > Decimal::ZERO,
            "POS_DEFAULT_TRANSACTION_LIMIT must be greater than zero"
        );
        Ok(Rules {
            accepted_bins,
            default_limit,
            completion_tolerance,
            fraud_fail_open_below: decimal(
                "POS_FRAUD_FAIL_OPEN_BELOW",
                &self.fraud_fail_open_below,
            )?,
            fraud_fail_closed_code,
        })
    }

    /// Deadline of an issuer call.
    pub fn issuer_timeout(&self) -> Duration {
        Duration::from_millis(self.issuer_timeout_ms)
    }

    /// Deadline of a fraud-check call.
    pub fn fraud_timeout(&self) -> Duration {
        Duration::from_millis(self.fraud_timeout_ms)
    }
}

/// A non-negative decimal setting.
fn decimal(name: &str, text: &str) -> anyhow::Result<Decimal> {
    let value = Decimal::from_str(text.trim())
        .with_context(|| format!("{name} must be a decimal number, got {text:?}"))?;
    anyhow::ensure!(
        value >= Decimal::ZERO,
        "{name} must not be negative, got {text}"
    );
    Ok(value)
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    fn parse(args: &[&str]) -> Config {
        let mut argv = vec!["authorization"];
        argv.extend_from_slice(args);
        Config::try_parse_from(argv).unwrap()
    }

    #[test]
    fn defaults_run_on_one_machine() {
        let config = parse(&[]);
        assert_eq!(config.listen.to_string(), "127.0.0.1:7002");
        assert_eq!(config.metrics.to_string(), "127.0.0.1:9102");
        assert_eq!(config.issuer_url, "http://127.0.0.1:7010");
        assert_eq!(config.issuer_timeout(), Duration::from_secs(5));
        assert_eq!(config.fraud_timeout(), Duration::from_millis(50));
        assert!(config.fraud_url.is_none());
        let rules = config.validate().unwrap();
        assert_eq!(rules.accepted_bins, vec!["62"]);
        assert_eq!(rules.completion_tolerance, dec!(0.15));
        assert_eq!(rules.fraud_fail_open_below, dec!(1000));
        assert_eq!(rules.default_limit, dec!(50000));
        assert_eq!(
            rules.fraud_fail_closed_code,
            ResponseCode::SystemMalfunction
        );
    }

    #[test]
    fn lists_and_policies_parse() {
        let config = parse(&[
            "--accepted-bins",
            "62, 4,51",
            "--fraud-fail-closed-code",
            "59",
            "--completion-tolerance",
            "0.2",
        ]);
        let rules = config.validate().unwrap();
        assert_eq!(rules.accepted_bins, vec!["62", "4", "51"]);
        assert_eq!(rules.fraud_fail_closed_code, ResponseCode::SuspectedFraud);
        assert_eq!(rules.completion_tolerance, dec!(0.2));
    }

    #[test]
    fn refuses_settings_that_cannot_work() {
        let refused = |args: &[&str]| parse(args).validate().unwrap_err().to_string();
        assert!(refused(&["--accepted-bins", "6x"]).contains("POS_ACCEPTED_BINS"));
        assert!(refused(&["--fraud-fail-closed-code", "05"]).contains("96 or 59"));
        assert!(refused(&["--completion-tolerance=-0.1"]).contains("must not be negative"));
        assert!(refused(&["--completion-tolerance", "1.5"]).contains("between 0 and 1"));
        assert!(refused(&["--issuer-zpk", "0123"]).contains("POS_ISSUER_ZPK"));
        assert!(refused(&["--fraud-fail-open-below", "ten"]).contains("decimal number"));
        assert!(refused(&["--issuer-timeout-ms", "0"]).contains("POS_ISSUER_TIMEOUT_MS"));
        assert!(refused(&["--tls-ca", "ca.pem"]).contains("POS_TLS_CERT, POS_TLS_KEY"));
        let https_without_tls = refused(&["--issuer-url", "https://bank.example:7010"]);
        assert!(
            https_without_tls.contains("POS_TLS_CERT"),
            "{https_without_tls}"
        );
    }
}
