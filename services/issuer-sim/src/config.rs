//! The issuer's settings and command line.
//!
//! Order of precedence: built-in defaults (enough to run on one machine), then environment
//! variables (`POS_…`), then command-line flags; `validate` runs before anything is served.
//!
//! The two keys have fixed development defaults so that the stack runs with no configuration;
//! they are public test values and a warning is logged when they are in use. A real bank
//! sets `POS_ISSUER_ZPK` to the zone PIN key exchanged with the acquirer and
//! `POS_ISSUER_CARD_KEY` to its own secret.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pos_crypto::DesKey;
use pos_domain::TokenKey;

/// Development zone PIN key (a well-known test key, halves differ). Never use it in production.
pub const DEV_ZPK: &str = "0123456789ABCDEFFEDCBA9876543210";

/// Development key of the bank's card index (HMAC-SHA-256). Never use it in production.
pub const DEV_CARD_KEY: &str =
    "697373756572206465762063617264206b65793a206e6f7420612073656372657421";

/// `issuer-sim [serve] | account | seed`.
#[derive(Debug, Parser)]
#[command(
    name = "issuer-sim",
    version,
    about = "Reference issuing bank of the POS platform (Issuer gRPC API)",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do; serving is the default.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server settings when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Issuer gRPC API (the default).
    Serve(Box<ServeArgs>),
    /// Print a card's account (available, balance, holds, PIN tries, status) and its ledger.
    Account(AccountArgs),
    /// Seed cards from a file and exit.
    Seed(SeedArgs),
}

/// Where the books are; shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct BooksConfig {
    /// Redis URL.
    #[arg(long, env = "POS_REDIS", default_value = "redis://127.0.0.1:6379")]
    pub redis: String,
    /// Prefix of every Redis key of this bank.
    #[arg(long, env = "POS_ISSUER_REDIS_PREFIX", default_value = "issuer")]
    pub redis_prefix: String,
    /// Secret key (at least 64 hex digits) of the HMAC-SHA-256 that indexes cards in the books,
    /// so Redis never holds a full PAN. Changing it orphans the seeded cards (reseed them).
    #[arg(
        long,
        env = "POS_ISSUER_CARD_KEY",
        default_value = DEV_CARD_KEY,
        hide_default_value = true,
        hide_env_values = true
    )]
    pub card_key: Secret,
}

impl BooksConfig {
    /// The card index key.
    pub fn token_key(&self) -> anyhow::Result<TokenKey> {
        TokenKey::from_hex(self.card_key.expose())
            .map_err(|e| anyhow::anyhow!("POS_ISSUER_CARD_KEY: {e}"))
    }

    /// Whether the development card key is in use.
    pub fn uses_dev_card_key(&self) -> bool {
        self.card_key.expose().eq_ignore_ascii_case(DEV_CARD_KEY)
    }
}

/// Settings of the server.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The books.
    #[command(flatten)]
    pub books: BooksConfig,
    /// gRPC address of the Issuer API.
    #[arg(long, env = "POS_ISSUER_LISTEN", default_value = "127.0.0.1:7010")]
    pub listen: SocketAddr,
    /// Prometheus `/metrics` address.
    #[arg(long, env = "POS_ISSUER_METRICS", default_value = "127.0.0.1:9110")]
    pub metrics: SocketAddr,
    /// Zone PIN key shared with the acquirer: 32 hex digits, double-length TDES, halves
    /// different. PIN blocks arrive encrypted under it (ISO 9564 format 0).
    #[arg(
        long,
        env = "POS_ISSUER_ZPK",
        default_value = DEV_ZPK,
        hide_default_value = true,
        hide_env_values = true
    )]
    pub zpk: Secret,
    /// Id of the ZPK; when set, PIN blocks naming another key id are refused ("99"). When
    /// unset, any `pin_key_id` is accepted.
    #[arg(long, env = "POS_ISSUER_ZPK_ID")]
    pub zpk_id: Option<String>,
    /// Seed file (JSON) loaded at start-up; cards that exist are left as they are.
    #[arg(long, env = "POS_ISSUER_SEED")]
    pub seed: Option<PathBuf>,
    /// Overwrite cards that exist with the seed file's values (balances, status, PIN; PIN
    /// tries reset; open holds kept).
    #[arg(long, env = "POS_ISSUER_RESEED")]
    pub reseed: bool,
    /// How much a pre-auth completion may exceed the held amount, in percent (rounded down to
    /// the fen).
    #[arg(
        long,
        env = "POS_ISSUER_COMPLETION_TOLERANCE_PERCENT",
        default_value_t = 15
    )]
    pub completion_tolerance_percent: u32,
    /// Consecutive wrong PINs after which the card's PIN is blocked ("75").
    #[arg(long, env = "POS_ISSUER_PIN_TRY_LIMIT", default_value_t = 3)]
    pub pin_try_limit: u32,
    /// Holds back every authorization answer this long after the bank acted, in milliseconds:
    /// a slow bank, to demonstrate and test reversals of answers that came too late. 0 in
    /// normal use.
    #[arg(long, env = "POS_ISSUER_ANSWER_DELAY_MS", default_value_t = 0)]
    pub answer_delay_ms: u64,
    /// How long answers are kept for replay and reversal, in days (at least 7).
    #[arg(long, env = "POS_ISSUER_RECORD_RETENTION_DAYS", default_value_t = 30)]
    pub record_retention_days: u64,
    /// Mutual TLS of the gRPC server (`POS_TLS_CERT`, `POS_TLS_KEY`, `POS_TLS_CA`); plaintext
    /// when none is set.
    #[command(flatten)]
    pub tls: pos_tls::TlsArgs,
}

impl ServeArgs {
    /// Refuses settings that cannot work.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.answer_delay_ms <= 60_000,
            "POS_ISSUER_ANSWER_DELAY_MS must be at most 60000"
        );
        self.books.token_key()?;
        self.zone_pin_key()?;
        anyhow::ensure!(
            self.completion_tolerance_percent <= 100,
            "POS_ISSUER_COMPLETION_TOLERANCE_PERCENT must be between 0 and 100"
        );
        anyhow::ensure!(
            (1..=10).contains(&self.pin_try_limit),
            "POS_ISSUER_PIN_TRY_LIMIT must be between 1 and 10"
        );
        anyhow::ensure!(
            (7..=3650).contains(&self.record_retention_days),
            "POS_ISSUER_RECORD_RETENTION_DAYS must be between 7 and 3650"
        );
        if let Some(id) = &self.zpk_id {
            anyhow::ensure!(!id.is_empty(), "POS_ISSUER_ZPK_ID must not be empty");
        }
        self.tls.config()?;
        Ok(())
    }

    /// The zone PIN key.
    pub fn zone_pin_key(&self) -> anyhow::Result<DesKey> {
        let key = DesKey::from_hex(self.zpk.expose())
            .map_err(|e| anyhow::anyhow!("POS_ISSUER_ZPK: {e}"))?;
        anyhow::ensure!(
            !key.halves_equal(),
            "POS_ISSUER_ZPK has equal halves (single DES in effect); use a double-length key"
        );
        Ok(key)
    }

    /// Whether the development ZPK is in use.
    pub fn uses_dev_zpk(&self) -> bool {
        self.zpk.expose().eq_ignore_ascii_case(DEV_ZPK)
    }

    /// How long request records are kept.
    pub fn retention(&self) -> Duration {
        Duration::from_secs(self.record_retention_days * 86_400)
    }
}

/// Settings of `account`.
#[derive(Debug, Clone, Args)]
pub struct AccountArgs {
    /// The books.
    #[command(flatten)]
    pub books: BooksConfig,
    /// The card number (digits).
    #[arg(long)]
    pub pan: String,
}

/// Settings of `seed`.
#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// The books.
    #[command(flatten)]
    pub books: BooksConfig,
    /// Seed file (JSON).
    #[arg(long, env = "POS_ISSUER_SEED")]
    pub file: PathBuf,
    /// Overwrite cards that exist.
    #[arg(long, env = "POS_ISSUER_RESEED")]
    pub reseed: bool,
}

/// A secret setting: never shown by `Debug`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The secret text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.trim().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn serving_is_the_default_and_defaults_validate() {
        let cli = parse(&["issuer-sim"]);
        assert!(cli.command.is_none());
        cli.serve.validate().unwrap();
        assert_eq!(cli.serve.listen.to_string(), "127.0.0.1:7010");
        assert_eq!(cli.serve.metrics.to_string(), "127.0.0.1:9110");
        assert!(cli.serve.uses_dev_zpk() && cli.serve.books.uses_dev_card_key());
        assert_eq!(cli.serve.completion_tolerance_percent, 15);
        assert!(!format!("{cli:?}").contains(DEV_ZPK));
        let serve = parse(&["issuer-sim", "serve", "--seed", "cards.json", "--reseed"]);
        let Some(Command::Serve(args)) = serve.command else {
            panic!("not serve");
        };
        assert!(args.reseed && args.seed.is_some());
        assert!(cli.serve.tls.config().unwrap().is_none());
    }

    #[test]
    fn refuses_part_of_the_tls_settings() {
        let cli = parse(&["issuer-sim", "--tls-cert", "cert.pem"]);
        let error = cli.serve.validate().unwrap_err().to_string();
        assert!(error.contains("POS_TLS_KEY, POS_TLS_CA"), "{error}");
    }

    #[test]
    fn account_takes_a_pan() {
        let cli = parse(&["issuer-sim", "account", "--pan", "6217000010012345677"]);
        let Some(Command::Account(args)) = cli.command else {
            panic!("not account");
        };
        assert_eq!(args.books.redis_prefix, "issuer");
    }

    #[test]
    fn refuses_weak_or_malformed_keys_and_bad_limits() {
        let check = |args: &[&str]| parse(args).serve.validate().unwrap_err().to_string();
        let equal_halves = "0123456789ABCDEF0123456789ABCDEF";
        assert!(check(&["issuer-sim", "--zpk", equal_halves]).contains("equal halves"));
        assert!(check(&["issuer-sim", "--zpk", "0123"]).contains("POS_ISSUER_ZPK"));
        assert!(check(&["issuer-sim", "--card-key", "abcd"]).contains("POS_ISSUER_CARD_KEY"));
        let tolerance = ["issuer-sim", "--completion-tolerance-percent", "101"];
        assert!(check(&tolerance).contains("TOLERANCE"));
        let retention = ["issuer-sim", "--record-retention-days", "1"];
        assert!(check(&retention).contains("RETENTION"));
    }
}
