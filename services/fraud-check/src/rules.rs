//! The rules file: every rule's on/off switch, score and thresholds, and the two scores at
//! which an assessment becomes a review or a decline. TOML, read at start-up and whenever the
//! file changes (`reload`); a file that does not parse or does not validate is refused with the
//! reason and the rules in force stay (a `FraudRulesRejected` event says so).
//!
//! Every field has a default (the values of `rules/default.toml`), so a file names only what it
//! changes, but it must declare its `version` and may not contain unknown keys (a misspelt
//! threshold would otherwise be silently ignored).

use rust_decimal::Decimal;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Highest score of an assessment (certain fraud).
pub const MAX_SCORE: i32 = 1000;

/// Rules in force, as validated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Version declared by the file (recorded in every assessment and alert).
    pub version: String,
    /// Scores at which the decision becomes review or decline.
    #[serde(default)]
    pub decision: Thresholds,
    /// CHIP_FALLBACK.
    #[serde(default)]
    pub chip_fallback: ChipFallback,
    /// CLONED_CARD_DISTANCE.
    #[serde(default)]
    pub cloned_card: ClonedCard,
    /// EMV_MISSING and EMV_INCONSISTENT.
    #[serde(default)]
    pub emv: Emv,
    /// TRACK_EXPIRY_MISMATCH.
    #[serde(default = "track_expiry")]
    pub track_expiry: Simple,
    /// CARD_NUMBER_MISMATCH.
    #[serde(default = "card_number_mismatch")]
    pub card_number_mismatch: Simple,
    /// VELOCITY_CARD.
    #[serde(default = "velocity_card")]
    pub velocity_card: Velocity,
    /// VELOCITY_TERMINAL.
    #[serde(default = "velocity_terminal")]
    pub velocity_terminal: Velocity,
    /// VELOCITY_MERCHANT.
    #[serde(default = "velocity_merchant")]
    pub velocity_merchant: Velocity,
    /// DECLINES_IN_A_ROW.
    #[serde(default)]
    pub declines_in_a_row: DeclinesInARow,
    /// CASH_OUT_OWN_CARD.
    #[serde(default = "own_card")]
    pub cash_out_own_card: Simple,
    /// CASH_OUT_ROUND_AMOUNT.
    #[serde(default)]
    pub cash_out_round_amount: RoundAmount,
    /// CASH_OUT_SPLIT.
    #[serde(default)]
    pub cash_out_split: Split,
    /// CASH_OUT_VOLUME_JUMP.
    #[serde(default)]
    pub cash_out_volume_jump: VolumeJump,
    /// NIGHT_TIME.
    #[serde(default)]
    pub night_time: NightTime,
    /// BLACKLIST_CARD, BLACKLIST_BIN, BLACKLIST_MERCHANT, BLACKLIST_TERMINAL.
    #[serde(default = "blacklist")]
    pub blacklist: Simple,
}

/// Where the score turns into a decision.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// From this score on: review (approve, alert an analyst).
    pub review_at: i32,
    /// From this score on: decline with "59".
    pub decline_at: i32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            review_at: 300,
            decline_at: 700,
        }
    }
}

/// A rule with nothing to tune but its switch and score.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Simple {
    /// On/off.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Points added when it hits.
    pub score: i32,
}

fn yes() -> bool {
    true
}

fn simple(score: i32) -> Simple {
    Simple {
        enabled: true,
        score,
    }
}

fn track_expiry() -> Simple {
    simple(500)
}

fn card_number_mismatch() -> Simple {
    simple(800)
}

fn own_card() -> Simple {
    simple(500)
}

fn blacklist() -> Simple {
    simple(MAX_SCORE)
}

/// A chip card (service code 2xx or 6xx) read by its stripe.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChipFallback {
    /// On/off.
    pub enabled: bool,
    /// Points of a first fallback.
    pub score: i32,
    /// Points added for every earlier fallback of the same card inside the window.
    pub repeat_score: i32,
    /// How far back earlier fallbacks count, in minutes.
    pub repeat_window_minutes: u32,
}

impl Default for ChipFallback {
    fn default() -> Self {
        Self {
            enabled: true,
            score: 200,
            repeat_score: 250,
            repeat_window_minutes: 24 * 60,
        }
    }
}

/// The same card on far-apart terminals within minutes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClonedCard {
    /// On/off.
    pub enabled: bool,
    /// Points.
    pub score: i32,
    /// How long a card's last terminal is remembered, in minutes.
    pub window_minutes: u32,
    /// Terminals closer than this (km) never count.
    pub min_distance_km: f64,
    /// Travel faster than this between the two terminals is impossible for one card.
    pub max_speed_kmh: f64,
    /// When either terminal has no coordinates: a different city within this many minutes.
    pub other_city_minutes: u32,
}

impl Default for ClonedCard {
    fn default() -> Self {
        Self {
            enabled: true,
            score: 600,
            window_minutes: 6 * 60,
            min_distance_km: 50.0,
            max_speed_kmh: 500.0,
            other_city_minutes: 30,
        }
    }
}

/// EMV data of a chip or contactless read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Emv {
    /// On/off.
    pub enabled: bool,
    /// Points when field 55, the cryptogram or a mandatory tag is missing.
    pub missing_score: i32,
    /// Points when the cryptogram is not an ARQC or amount/currency disagree with the request.
    pub inconsistent_score: i32,
}

impl Default for Emv {
    fn default() -> Self {
        Self {
            enabled: true,
            missing_score: 500,
            inconsistent_score: 400,
        }
    }
}

/// Counts and amounts in a sliding window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Velocity {
    /// On/off.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Points.
    pub score: i32,
    /// Window length in minutes.
    pub window_minutes: u32,
    /// More transactions than this in the window hit (this one included).
    pub max_count: u64,
    /// A larger sum than this (major units) in the window hits (this one included).
    pub max_amount: Decimal,
}

fn velocity_card() -> Velocity {
    Velocity {
        enabled: true,
        score: 350,
        window_minutes: 10,
        max_count: 5,
        max_amount: Decimal::from(50_000),
    }
}

fn velocity_terminal() -> Velocity {
    Velocity {
        enabled: true,
        score: 250,
        window_minutes: 10,
        max_count: 60,
        max_amount: Decimal::from(200_000),
    }
}

fn velocity_merchant() -> Velocity {
    Velocity {
        enabled: true,
        score: 200,
        window_minutes: 60,
        max_count: 1_000,
        max_amount: Decimal::from(2_000_000),
    }
}

/// Many declines in a row on one terminal (card testing, a guessed PIN).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeclinesInARow {
    /// On/off.
    pub enabled: bool,
    /// Points.
    pub score: i32,
    /// This many declines without an approval in between hit.
    pub threshold: u64,
}

impl Default for DeclinesInARow {
    fn default() -> Self {
        Self {
            enabled: true,
            score: 350,
            threshold: 5,
        }
    }
}

/// A round, large amount just under a limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoundAmount {
    /// On/off.
    pub enabled: bool,
    /// Points.
    pub score: i32,
    /// Only amounts of at least this much (major units).
    pub min_amount: Decimal,
    /// "Round": a multiple of this (major units).
    pub round_to: Decimal,
    /// "Just under": at most this percentage below a limit (and below it).
    pub under_limit_percent: Decimal,
    /// Limits besides the merchant's own per-transaction limit (card and scheme limits).
    pub limits: Vec<Decimal>,
}

impl Default for RoundAmount {
    fn default() -> Self {
        Self {
            enabled: true,
            score: 300,
            min_amount: Decimal::from(5_000),
            round_to: Decimal::from(100),
            under_limit_percent: Decimal::from(10),
            limits: vec![
                Decimal::from(10_000),
                Decimal::from(20_000),
                Decimal::from(50_000),
            ],
        }
    }
}

/// One card paying a merchant several times right after each other.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Split {
    /// On/off.
    pub enabled: bool,
    /// Points.
    pub score: i32,
    /// Window in minutes.
    pub window_minutes: u32,
    /// At least this many purchases of the card at the merchant in the window (this one
    /// included).
    pub min_parts: u64,
    /// Whose sum is at least this (major units).
    pub min_total: Decimal,
}

impl Default for Split {
    fn default() -> Self {
        Self {
            enabled: true,
            score: 350,
            window_minutes: 5,
            min_parts: 3,
            min_total: Decimal::from(5_000),
        }
    }
}

/// A terminal whose business day volume jumps far above its history.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VolumeJump {
    /// On/off.
    pub enabled: bool,
    /// Points.
    pub score: i32,
    /// Business days of history averaged (before today).
    pub history_days: u32,
    /// The rule needs at least this many of them with volume.
    pub min_history_days: u32,
    /// Today's volume (with this transaction) above this multiple of the average hits.
    pub factor: Decimal,
    /// Only when today's volume is at least this much (major units).
    pub min_amount: Decimal,
}

impl Default for VolumeJump {
    fn default() -> Self {
        Self {
            enabled: true,
            score: 300,
            history_days: 14,
            min_history_days: 3,
            factor: Decimal::from(5),
            min_amount: Decimal::from(10_000),
        }
    }
}

/// Small hours at a merchant that does not trade at night.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NightTime {
    /// On/off.
    pub enabled: bool,
    /// Points.
    pub score: i32,
    /// Start of the night, local "HH:MM".
    pub starts_at: String,
    /// End of the night, local "HH:MM".
    pub ends_at: String,
}

impl Default for NightTime {
    fn default() -> Self {
        Self {
            enabled: true,
            score: 300,
            starts_at: "00:00".to_owned(),
            ends_at: "05:00".to_owned(),
        }
    }
}

/// Minutes since midnight of "HH:MM".
pub fn minutes_of_day(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// A loaded rules file: the rules and the digest of the text they came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The rules.
    pub rules: Rules,
    /// SHA-256 hex of the file content.
    pub digest: String,
}

impl Rules {
    /// Parses and validates a rules file; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<Loaded, String> {
        let rules: Rules = toml::from_str(text).map_err(|e| e.to_string().trim().to_owned())?;
        rules.validate()?;
        Ok(Loaded {
            rules,
            digest: digest(text),
        })
    }

    /// Codes of the enabled rules.
    pub fn enabled_codes(&self) -> Vec<String> {
        let switches = [
            (self.chip_fallback.enabled, &["CHIP_FALLBACK"][..]),
            (self.cloned_card.enabled, &["CLONED_CARD_DISTANCE"]),
            (self.emv.enabled, &["EMV_MISSING", "EMV_INCONSISTENT"]),
            (self.track_expiry.enabled, &["TRACK_EXPIRY_MISMATCH"]),
            (self.card_number_mismatch.enabled, &["CARD_NUMBER_MISMATCH"]),
            (self.velocity_card.enabled, &["VELOCITY_CARD"]),
            (self.velocity_terminal.enabled, &["VELOCITY_TERMINAL"]),
            (self.velocity_merchant.enabled, &["VELOCITY_MERCHANT"]),
            (self.declines_in_a_row.enabled, &["DECLINES_IN_A_ROW"]),
            (self.cash_out_own_card.enabled, &["CASH_OUT_OWN_CARD"]),
            (
                self.cash_out_round_amount.enabled,
                &["CASH_OUT_ROUND_AMOUNT"],
            ),
            (self.cash_out_split.enabled, &["CASH_OUT_SPLIT"]),
            (self.cash_out_volume_jump.enabled, &["CASH_OUT_VOLUME_JUMP"]),
            (self.night_time.enabled, &["NIGHT_TIME"]),
            (
                self.blacklist.enabled,
                &[
                    "BLACKLIST_CARD",
                    "BLACKLIST_BIN",
                    "BLACKLIST_MERCHANT",
                    "BLACKLIST_TERMINAL",
                ],
            ),
        ];
        switches
            .iter()
            .filter(|(on, _)| *on)
            .flat_map(|(_, codes)| codes.iter().map(|c| (*c).to_owned()))
            .collect()
    }

    fn validate(&self) -> Result<(), String> {
        let version = self.version.trim();
        if version.is_empty() || version.len() > 64 {
            return Err("version: must be 1 to 64 characters".to_owned());
        }
        let d = &self.decision;
        if !(1..=MAX_SCORE).contains(&d.review_at)
            || !(1..=MAX_SCORE).contains(&d.decline_at)
            || d.review_at >= d.decline_at
        {
            return Err(format!(
                "decision: need 0 < review_at < decline_at <= {MAX_SCORE}, got review_at {} and \
                 decline_at {}",
                d.review_at, d.decline_at
            ));
        }
        let scores = [
            ("chip_fallback.score", self.chip_fallback.score),
            (
                "chip_fallback.repeat_score",
                self.chip_fallback.repeat_score,
            ),
            ("cloned_card.score", self.cloned_card.score),
            ("emv.missing_score", self.emv.missing_score),
            ("emv.inconsistent_score", self.emv.inconsistent_score),
            ("track_expiry.score", self.track_expiry.score),
            (
                "card_number_mismatch.score",
                self.card_number_mismatch.score,
            ),
            ("velocity_card.score", self.velocity_card.score),
            ("velocity_terminal.score", self.velocity_terminal.score),
            ("velocity_merchant.score", self.velocity_merchant.score),
            ("declines_in_a_row.score", self.declines_in_a_row.score),
            ("cash_out_own_card.score", self.cash_out_own_card.score),
            (
                "cash_out_round_amount.score",
                self.cash_out_round_amount.score,
            ),
            ("cash_out_split.score", self.cash_out_split.score),
            (
                "cash_out_volume_jump.score",
                self.cash_out_volume_jump.score,
            ),
            ("night_time.score", self.night_time.score),
            ("blacklist.score", self.blacklist.score),
        ];
        for (name, score) in scores {
            if !(0..=MAX_SCORE).contains(&score) {
                return Err(format!("{name}: must be 0 to {MAX_SCORE}, got {score}"));
            }
        }
        let windows = [
            (
                "chip_fallback.repeat_window_minutes",
                self.chip_fallback.repeat_window_minutes,
            ),
            (
                "cloned_card.window_minutes",
                self.cloned_card.window_minutes,
            ),
            (
                "cloned_card.other_city_minutes",
                self.cloned_card.other_city_minutes,
            ),
            (
                "velocity_card.window_minutes",
                self.velocity_card.window_minutes,
            ),
            (
                "velocity_terminal.window_minutes",
                self.velocity_terminal.window_minutes,
            ),
            (
                "velocity_merchant.window_minutes",
                self.velocity_merchant.window_minutes,
            ),
            (
                "cash_out_split.window_minutes",
                self.cash_out_split.window_minutes,
            ),
        ];
        for (name, minutes) in windows {
            if !(1..=7 * 24 * 60).contains(&minutes) {
                return Err(format!(
                    "{name}: must be 1 to 10080 minutes (a week), got {minutes}"
                ));
            }
        }
        let counts = [
            ("velocity_card.max_count", self.velocity_card.max_count),
            (
                "velocity_terminal.max_count",
                self.velocity_terminal.max_count,
            ),
            (
                "velocity_merchant.max_count",
                self.velocity_merchant.max_count,
            ),
            (
                "declines_in_a_row.threshold",
                self.declines_in_a_row.threshold,
            ),
            ("cash_out_split.min_parts", self.cash_out_split.min_parts),
        ];
        for (name, count) in counts {
            if count == 0 {
                return Err(format!("{name}: must be at least 1"));
            }
        }
        let round = &self.cash_out_round_amount;
        let amounts = [
            ("velocity_card.max_amount", self.velocity_card.max_amount),
            (
                "velocity_terminal.max_amount",
                self.velocity_terminal.max_amount,
            ),
            (
                "velocity_merchant.max_amount",
                self.velocity_merchant.max_amount,
            ),
            ("cash_out_round_amount.min_amount", round.min_amount),
            ("cash_out_round_amount.round_to", round.round_to),
            ("cash_out_split.min_total", self.cash_out_split.min_total),
            (
                "cash_out_volume_jump.factor",
                self.cash_out_volume_jump.factor,
            ),
            (
                "cash_out_volume_jump.min_amount",
                self.cash_out_volume_jump.min_amount,
            ),
        ];
        for (name, amount) in amounts {
            if amount <= Decimal::ZERO || amount.scale() > 2 {
                return Err(format!(
                    "{name}: must be positive with at most 2 decimals, got {amount}"
                ));
            }
        }
        if round.under_limit_percent <= Decimal::ZERO
            || round.under_limit_percent >= Decimal::ONE_HUNDRED
        {
            return Err(format!(
                "cash_out_round_amount.under_limit_percent: must be between 0 and 100, got {}",
                round.under_limit_percent
            ));
        }
        if let Some(limit) = round.limits.iter().find(|l| **l <= Decimal::ZERO) {
            return Err(format!(
                "cash_out_round_amount.limits: every limit must be positive, got {limit}"
            ));
        }
        let jump = &self.cash_out_volume_jump;
        if !(1..=90).contains(&jump.history_days)
            || jump.min_history_days == 0
            || jump.min_history_days > jump.history_days
        {
            return Err(format!(
                "cash_out_volume_jump: need 1 <= min_history_days <= history_days <= 90, got \
                 {} and {}",
                jump.min_history_days, jump.history_days
            ));
        }
        let cloned = &self.cloned_card;
        let sane = cloned.min_distance_km.is_finite()
            && cloned.min_distance_km >= 0.0
            && cloned.max_speed_kmh.is_finite()
            && cloned.max_speed_kmh > 0.0;
        if !sane {
            return Err(
                "cloned_card: min_distance_km must be >= 0 and max_speed_kmh > 0".to_owned(),
            );
        }
        let night = &self.night_time;
        match (
            minutes_of_day(&night.starts_at),
            minutes_of_day(&night.ends_at),
        ) {
            (Some(start), Some(end)) if start != end => {}
            _ => {
                return Err(format!(
                    "night_time: starts_at and ends_at must be different times \"HH:MM\", got \
                     {:?} and {:?}",
                    night.starts_at, night.ends_at
                ));
            }
        }
        Ok(())
    }
}

/// SHA-256 hex of a rules file's content.
pub fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = include_str!("../rules/default.toml");

    #[test]
    fn the_shipped_rules_file_is_valid_and_enables_every_rule() {
        let loaded = Rules::parse(DEFAULT).expect("default rules");
        assert!(!loaded.rules.version.is_empty());
        assert_eq!(loaded.rules.enabled_codes().len(), 19);
        assert_eq!(loaded.digest, digest(DEFAULT));
    }

    #[test]
    fn a_minimal_file_takes_the_defaults() {
        let loaded = Rules::parse("version = \"min-1\"\n").expect("minimal");
        assert_eq!(loaded.rules.velocity_card.max_count, 5);
        assert_eq!(loaded.rules.decision.decline_at, 700);
        assert!(loaded.rules.night_time.enabled);
    }

    #[test]
    fn a_rule_can_be_switched_off() {
        let loaded = Rules::parse("version = \"x\"\n[night_time]\nenabled = false\n").unwrap();
        assert!(
            !loaded
                .rules
                .enabled_codes()
                .contains(&"NIGHT_TIME".to_owned())
        );
    }

    #[test]
    fn invalid_files_are_refused_with_the_reason() {
        let cases = [
            ("[decision]\nreview_at = 300\n", "version"),
            (
                "version = \"x\"\n[velocity_card]\nmax_cuont = 3\n",
                "max_cuont",
            ),
            (
                "version = \"x\"\n[decision]\nreview_at = 800\ndecline_at = 700\n",
                "review_at < decline_at",
            ),
            (
                "version = \"x\"\n[cash_out_split]\nmin_parts = 0\n",
                "cash_out_split.min_parts",
            ),
            (
                "version = \"x\"\n[night_time]\nstarts_at = \"25:00\"\n",
                "night_time",
            ),
            (
                "version = \"x\"\n[blacklist]\nscore = 1001\n",
                "blacklist.score",
            ),
            ("version = \"x\"\n[emv\n", "line 2"),
            (
                "version = \"x\"\n[cash_out_round_amount]\nround_to = \"0.001\"\n",
                "round_to",
            ),
        ];
        for (text, needle) in cases {
            let error = Rules::parse(text).expect_err(text);
            assert!(
                error.contains(needle),
                "{text:?} refused with {error:?}, expected to mention {needle:?}"
            );
        }
    }

    #[test]
    fn times_of_day_parse_strictly() {
        assert_eq!(minutes_of_day("00:00"), Some(0));
        assert_eq!(minutes_of_day("23:59"), Some(1439));
        assert_eq!(minutes_of_day("24:00"), None);
        assert_eq!(minutes_of_day("7:00"), None);
        assert_eq!(minutes_of_day("07-00"), None);
    }
}
