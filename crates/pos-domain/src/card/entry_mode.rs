//! How the card was read, and the ISO 8583 DE22 (POS entry mode) code that says so.
//!
//! DE22 is three digits in the CUP convention: the first two say how the PAN was entered
//! (01 manual, 02 magstripe, 05 chip, 07 contactless, 80 magstripe fallback after a chip
//! failure), the third whether a PIN was entered (1 with PIN, 2 without). So a swipe with PIN
//! is "021", a chip read with PIN "051", a tap with PIN "071", a fallback swipe with PIN
//! "801", and a manual entry (which carries no PIN) "012".

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, Result};

/// How the card data reached the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryMode {
    /// Magnetic stripe read.
    Swipe,
    /// Contact chip read (EMV / PBOC).
    Chip,
    /// Contactless read (qPBOC / QuickPass), a "tap".
    #[serde(alias = "tap")]
    Contactless,
    /// Magnetic stripe read after the chip of a chip card could not be read.
    #[serde(rename = "fallback")]
    FallbackSwipe,
    /// Card number keyed in by hand.
    Manual,
}

impl EntryMode {
    /// Every entry mode.
    pub const ALL: [Self; 5] = [
        Self::Swipe,
        Self::Chip,
        Self::Contactless,
        Self::FallbackSwipe,
        Self::Manual,
    ];

    /// The name used in the CLI, config and events: swipe, chip, contactless, fallback, manual.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Swipe => "swipe",
            Self::Chip => "chip",
            Self::Contactless => "contactless",
            Self::FallbackSwipe => "fallback",
            Self::Manual => "manual",
        }
    }

    /// The two-digit PAN entry mode of DE22: 02, 05, 07, 80 or 01.
    pub fn pan_entry_code(self) -> &'static str {
        match self {
            Self::Swipe => "02",
            Self::Chip => "05",
            Self::Contactless => "07",
            Self::FallbackSwipe => "80",
            Self::Manual => "01",
        }
    }

    /// The full DE22 code, with third digit 1 when a PIN was entered and 2 when not.
    pub fn de22_code(self, pin_entered: bool) -> &'static str {
        match (self, pin_entered) {
            (Self::Swipe, true) => "021",
            (Self::Swipe, false) => "022",
            (Self::Chip, true) => "051",
            (Self::Chip, false) => "052",
            (Self::Contactless, true) => "071",
            (Self::Contactless, false) => "072",
            (Self::FallbackSwipe, true) => "801",
            (Self::FallbackSwipe, false) => "802",
            (Self::Manual, true) => "011",
            (Self::Manual, false) => "012",
        }
    }

    /// Whether the card data came from the chip, contact or contactless.
    pub fn is_chip_read(self) -> bool {
        matches!(self, Self::Chip | Self::Contactless)
    }
}

impl fmt::Display for EntryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Accepts swipe, chip, tap, contactless, fallback and manual, in any letter case.
impl FromStr for EntryMode {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "swipe" => Ok(Self::Swipe),
            "chip" => Ok(Self::Chip),
            "tap" | "contactless" => Ok(Self::Contactless),
            "fallback" => Ok(Self::FallbackSwipe),
            "manual" => Ok(Self::Manual),
            _ => Err(DomainError::UnknownEntryMode(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_cli_names() {
        assert_eq!("swipe".parse(), Ok(EntryMode::Swipe));
        assert_eq!("chip".parse(), Ok(EntryMode::Chip));
        assert_eq!("tap".parse(), Ok(EntryMode::Contactless));
        assert_eq!("Contactless".parse(), Ok(EntryMode::Contactless));
        assert_eq!("fallback".parse(), Ok(EntryMode::FallbackSwipe));
        assert_eq!("manual".parse(), Ok(EntryMode::Manual));
        let err = "insert".parse::<EntryMode>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown entry mode \"insert\": expected swipe, chip, tap, contactless, fallback or manual"
        );
    }

    #[test]
    fn display_round_trips() {
        for mode in EntryMode::ALL {
            assert_eq!(mode.to_string().parse(), Ok(mode));
        }
    }

    #[test]
    fn gives_the_de22_codes() {
        assert_eq!(EntryMode::Swipe.de22_code(true), "021");
        assert_eq!(EntryMode::Chip.de22_code(true), "051");
        assert_eq!(EntryMode::Contactless.de22_code(true), "071");
        assert_eq!(EntryMode::FallbackSwipe.de22_code(true), "801");
        assert_eq!(EntryMode::Manual.de22_code(false), "012");
        assert_eq!(EntryMode::Contactless.de22_code(false), "072");
        for mode in EntryMode::ALL {
            assert!(mode.de22_code(true).starts_with(mode.pan_entry_code()));
        }
    }
}
