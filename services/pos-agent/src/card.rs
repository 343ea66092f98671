//! The card the cashier presents, as the terminal reads it: from a test-card file (JSON:
//! `pan`, `expiry` YYMM, `service_code`, optional `emv` tags in hex) or an inline spec
//! `PAN[/YYMM[/SERVICE_CODE]]`. The PAN stays in memory; only its masked form is shown.

use std::path::Path;

use anyhow::{Context, bail};
use pos_domain::{EntryMode, Expiry, Pan, ServiceCode};
use serde::Deserialize;

/// A card as read by the terminal.
#[derive(Debug)]
pub struct Card {
    /// The card number (masked in Debug and Display).
    pub pan: Pan,
    /// Expiry, YYMM.
    pub expiry: Expiry,
    /// The three-digit service code.
    pub service_code: ServiceCode,
    /// Static chip data of the card (tag → value), used for chip and contactless reads.
    pub emv: Vec<(u16, Vec<u8>)>,
    /// Application transaction counter.
    pub atc: u16,
}

#[derive(Deserialize)]
struct CardFile {
    pan: String,
    expiry: String,
    #[serde(default = "default_service_code")]
    service_code: String,
    #[serde(default)]
    emv: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    atc: Option<u16>,
}

fn default_service_code() -> String {
    "201".to_owned()
}

impl Card {
    /// Reads `--card`: a file path or an inline spec.
    pub fn read(spec: &str) -> anyhow::Result<Self> {
        if Path::new(spec).is_file() {
            let text = std::fs::read_to_string(spec).with_context(|| format!("reading {spec}"))?;
            let file: CardFile = serde_json::from_str(&text)
                .with_context(|| format!("{spec} is not a card file"))?;
            return Self::build(
                &file.pan,
                &file.expiry,
                &file.service_code,
                &file.emv,
                file.atc,
            );
        }
        let mut parts = spec.split('/');
        let pan = parts.next().unwrap_or_default();
        let expiry = parts.next().unwrap_or("3012");
        let service_code = parts.next().unwrap_or("201");
        if parts.next().is_some() {
            bail!("--card is a card file or PAN[/YYMM[/SERVICE_CODE]]");
        }
        Self::build(pan, expiry, service_code, &Default::default(), None)
    }

    fn build(
        pan: &str,
        expiry: &str,
        service_code: &str,
        emv: &std::collections::BTreeMap<String, String>,
        atc: Option<u16>,
    ) -> anyhow::Result<Self> {
        let pan = Pan::parse(pan).map_err(|e| anyhow::anyhow!("card number: {e}"))?;
        let expiry = Expiry::parse(expiry).map_err(|e| anyhow::anyhow!("card expiry: {e}"))?;
        let service_code =
            ServiceCode::parse(service_code).map_err(|e| anyhow::anyhow!("service code: {e}"))?;
        let mut tags = Vec::new();
        for (tag, value) in emv {
            let tag = u16::from_str_radix(tag, 16)
                .with_context(|| format!("EMV tag {tag} is not hex"))?;
            let value =
                hex::decode(value).with_context(|| format!("EMV tag {tag:X} value is not hex"))?;
            tags.push((tag, value));
        }
        Ok(Self {
            pan,
            expiry,
            service_code,
            emv: tags,
            atc: atc.unwrap_or_else(|| rand::random::<u16>() % 1000 + 1),
        })
    }

    /// The track 2 equivalent data for a swipe: PAN '=' YYMM service code discretionary.
    pub fn track2(&self) -> String {
        format!(
            "{}={}{}0000000000",
            self.pan.expose_digits(),
            self.expiry,
            self.service_code
        )
    }

    /// Whether the card must be read by its chip when the terminal can (2xx, 6xx).
    pub fn has_chip(&self) -> bool {
        self.service_code.is_chip_card()
    }
}

/// How the card was read (`--entry swipe|chip|tap|fallback`).
pub fn entry_mode(entry: &str) -> anyhow::Result<EntryMode> {
    entry
        .parse()
        .map_err(|_| anyhow::anyhow!("--entry must be swipe, chip, tap or fallback"))
}
