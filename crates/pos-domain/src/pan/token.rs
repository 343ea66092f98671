//! Card tokens: the keyed hash (HMAC-SHA-256) that stands in for a PAN wherever a card must be
//! recognised again (events, Redis, velocity counters, blacklists) without storing the PAN
//! (PCI DSS 3.5.1.1 requires the hash to be keyed).

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{DomainError, Result};

/// Shortest accepted key: 256 bits, the output size of SHA-256.
const MIN_KEY_BYTES: usize = 32;

/// The secret key of card tokens; its `Debug` never shows it.
///
/// Only the prepared HMAC state is kept, not the raw bytes; the caller owns (and should wipe)
/// the bytes it passed in. The state is not zeroed on drop: that needs a dependency
/// (`zeroize`) the workspace does not have, and the key lives as long as the process anyway.
pub struct TokenKey {
    mac: Hmac<Sha256>,
}

impl TokenKey {
    /// Builds a key from at least 32 secret bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < MIN_KEY_BYTES {
            let problem = format!(
                "must be at least {MIN_KEY_BYTES} bytes, got {}",
                bytes.len()
            );
            return Err(DomainError::InvalidTokenKey(problem));
        }
        let mac = Hmac::<Sha256>::new_from_slice(bytes)
            .map_err(|e| DomainError::InvalidTokenKey(e.to_string()))?;
        Ok(Self { mac })
    }

    /// Builds a key from hex text (64 hex digits or more), as configuration holds it.
    pub fn from_hex(text: &str) -> Result<Self> {
        let mut bytes = hex::decode(text.trim()).map_err(|_| {
            DomainError::InvalidTokenKey("must be hexadecimal (0-9, a-f)".to_owned())
        })?;
        let key = Self::from_bytes(&bytes);
        bytes.fill(0);
        key
    }

    /// Keyed hash of other personal or secret data (identity and account numbers, activation
    /// codes): hex of HMAC-SHA-256(key, purpose || 0x1F || data). The purpose keeps hashes of
    /// different kinds of data from matching each other or a card token.
    pub fn keyed_hash(&self, purpose: &str, data: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(purpose.as_bytes());
        mac.update(&[0x1F]);
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }

    /// The token of `data` under this key.
    pub(super) fn token_of(&self, data: &[u8]) -> CardToken {
        let mut mac = self.mac.clone();
        mac.update(data);
        CardToken(hex::encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(***)")
    }
}

/// A card's token: 64 lowercase hex digits of HMAC-SHA-256(key, PAN digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CardToken(String);

impl CardToken {
    /// Parses a token: exactly 64 lowercase hex digits.
    pub fn parse(input: &str) -> Result<Self> {
        let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if input.len() == 64 && input.bytes().all(hex) {
            Ok(Self(input.to_owned()))
        } else {
            let problem = "must be exactly 64 lowercase hexadecimal digits";
            Err(DomainError::field("card token", problem))
        }
    }

    /// The token as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CardToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for CardToken {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<String> for CardToken {
    type Error = DomainError;

    fn try_from(value: String) -> Result<Self> {
        Self::parse(&value)
    }
}

impl From<CardToken> for String {
    fn from(value: CardToken) -> Self {
        value.0
    }
}

#[cfg(test)]
mod keyed_hash_tests {
    use super::*;

    #[test]
    fn keyed_hashes_depend_on_purpose_and_key() {
        let key = TokenKey::from_bytes(&[7u8; 32]).unwrap();
        let other = TokenKey::from_bytes(&[8u8; 32]).unwrap();
        let id = key.keyed_hash("resident-id", b"11010519491231002X");
        assert_eq!(id.len(), 64);
        assert_eq!(id, key.keyed_hash("resident-id", b"11010519491231002X"));
        assert_ne!(id, key.keyed_hash("account", b"11010519491231002X"));
        assert_ne!(id, other.keyed_hash("resident-id", b"11010519491231002X"));
        assert!(!id.contains("11010519491231002"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_short_keys() {
        let err = TokenKey::from_bytes(&[7; 16]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "token key must be at least 32 bytes, got 16"
        );
        assert!(TokenKey::from_bytes(&[7; 32]).is_ok());
        assert!(TokenKey::from_hex(&"ab".repeat(31)).is_err());
        assert!(TokenKey::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = TokenKey::from_bytes(b"0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(format!("{key:?}"), "TokenKey(***)");
    }

    #[test]
    fn hex_and_byte_keys_agree() {
        let bytes = [0x0b; 32];
        let from_hex = TokenKey::from_hex(&hex::encode(bytes)).unwrap();
        let from_bytes = TokenKey::from_bytes(&bytes).unwrap();
        assert_eq!(from_hex.token_of(b"x"), from_bytes.token_of(b"x"));
    }

    #[test]
    fn card_token_accepts_only_64_lowercase_hex() {
        assert!(CardToken::parse(&"a1".repeat(32)).is_ok());
        assert!(CardToken::parse(&"A1".repeat(32)).is_err());
        assert!(CardToken::try_from("a1".repeat(31)).is_err());
    }
}
