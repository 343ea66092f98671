//! PIN verification: the acquirer sends the cardholder's ISO 9564 format 0 PIN block encrypted
//! under the zone PIN key (ZPK) the two parties share; the bank decrypts it, takes the PIN out
//! with the PAN, and compares it with the argon2id hash it keeps of the card's PIN.
//!
//! The clear PIN lives only inside [`PinVerifier::verify`] and is never logged. Hashing is
//! slow on purpose (tens of milliseconds, 19 MiB each), so it runs on the blocking pool and at
//! most one verification per CPU runs at a time.

use std::sync::Arc;

use pos_crypto::DesKey;
use pos_crypto::pinblock::{PIN_BLOCK_LEN, decode_format0};
use pos_domain::Pan;
use tokio::sync::Semaphore;

use crate::checks::PinState;
use crate::error::{IssuerError, Result};

/// Format of a PIN block in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockFormat {
    /// ISO 9564 format 0 under double-length TDES: supported.
    Iso0,
    /// ISO 9564 format 4 under AES: not supported by this bank ("99").
    Iso4,
}

/// An encrypted PIN block as received. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct PinBlock {
    /// The encrypted block.
    pub bytes: Vec<u8>,
    /// Its format.
    pub format: BlockFormat,
    /// Id of the key it is encrypted under.
    pub key_id: String,
}

impl std::fmt::Debug for PinBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinBlock")
            .field("format", &self.format)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Verifies PIN blocks under the bank's zone PIN key.
pub struct PinVerifier {
    zpk: DesKey,
    key_id: Option<String>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for PinVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinVerifier")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl PinVerifier {
    /// A verifier for blocks under `zpk`; when `key_id` is set, blocks naming another key are
    /// refused as malformed.
    pub fn new(zpk: DesKey, key_id: Option<String>) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            zpk,
            key_id,
            permits: Arc::new(Semaphore::new(cpus)),
        }
    }

    /// Whether `block` carries the card's PIN, given its argon2id hash.
    pub async fn verify(&self, block: &PinBlock, pan: &Pan, pin_hash: &str) -> Result<PinState> {
        let Some(pin) = self.decrypt(block, pan) else {
            return Ok(PinState::Malformed);
        };
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| IssuerError::Internal("PIN verification is shutting down".into()))?;
        let hash = pin_hash.to_owned();
        let right = tokio::task::spawn_blocking(move || pos_crypto::verify_password(&pin, &hash))
            .await
            .map_err(|e| IssuerError::Internal(format!("PIN verification task: {e}")))??;
        Ok(if right {
            PinState::Right
        } else {
            PinState::Wrong
        })
    }

    /// The clear PIN, or `None` when the block cannot be a format 0 block for this card under
    /// this key.
    fn decrypt(&self, block: &PinBlock, pan: &Pan) -> Option<String> {
        if block.format != BlockFormat::Iso0 {
            return None;
        }
        if self.key_id.as_ref().is_some_and(|id| *id != block.key_id) {
            return None;
        }
        if block.bytes.len() != PIN_BLOCK_LEN {
            return None;
        }
        let clear = self.zpk.decrypt_ecb(&block.bytes).ok()?;
        let clear: [u8; PIN_BLOCK_LEN] = clear.as_slice().try_into().ok()?;
        decode_format0(&clear, pan.expose_digits()).ok()
    }
}

#[cfg(test)]
mod tests {
    use pos_crypto::pinblock::format0;

    use super::*;

    const ZPK: &str = "0123456789ABCDEFFEDCBA9876543210";
    const PAN: &str = "6217000010012345677";

    fn block(pin: &str, pan: &str, key: &str) -> PinBlock {
        let clear = format0(pin, pan).unwrap();
        PinBlock {
            bytes: DesKey::from_hex(key).unwrap().encrypt_ecb(&clear).unwrap(),
            format: BlockFormat::Iso0,
            key_id: "zpk-1".into(),
        }
    }

    fn verifier(key_id: Option<&str>) -> PinVerifier {
        PinVerifier::new(DesKey::from_hex(ZPK).unwrap(), key_id.map(str::to_owned))
    }

    #[tokio::test]
    async fn right_wrong_and_malformed_blocks() {
        let hash = pos_crypto::hash_password("123456").unwrap();
        let pan = Pan::parse(PAN).unwrap();
        let v = verifier(None);
        let check = |b: PinBlock| {
            let (v, pan, hash) = (&v, &pan, &hash);
            async move { v.verify(&b, pan, hash).await.unwrap() }
        };
        assert_eq!(check(block("123456", PAN, ZPK)).await, PinState::Right);
        assert_eq!(check(block("654321", PAN, ZPK)).await, PinState::Wrong);
        // Another key or another card's PAN garbles the block.
        let other_key = "00112233445566778899AABBCCDDEEFF";
        assert_eq!(
            check(block("123456", PAN, other_key)).await,
            PinState::Malformed
        );
        let mut short = block("123456", PAN, ZPK);
        short.bytes.truncate(7);
        assert_eq!(check(short).await, PinState::Malformed);
        let mut iso4 = block("123456", PAN, ZPK);
        iso4.format = BlockFormat::Iso4;
        assert_eq!(check(iso4).await, PinState::Malformed);
    }

    #[tokio::test]
    async fn a_configured_key_id_must_match() {
        let hash = pos_crypto::hash_password("123456").unwrap();
        let pan = Pan::parse(PAN).unwrap();
        let b = block("123456", PAN, ZPK);
        let right = verifier(Some("zpk-1")).verify(&b, &pan, &hash).await;
        assert_eq!(right.unwrap(), PinState::Right);
        let other = verifier(Some("zpk-2")).verify(&b, &pan, &hash).await;
        assert_eq!(other.unwrap(), PinState::Malformed);
        assert!(!format!("{b:?}").contains("bytes"));
    }
}
