//! The [`Hsm`] trait: every key operation a service performs, on keys it only ever holds
//! wrapped under the HSM's local master key (LMK), so that a hardware HSM (PKCS#11) can
//! replace [`SoftHsm`] without touching the services.
//!
//! Keys at rest are [`KeyUnderLmk`]: opaque bytes, safe to store in Redis and in events. Clear
//! keys, PINs and passwords exist only inside the HSM's methods, with one deliberate
//! exception: [`Hsm::decrypt_password_block`] returns the operator password for the password
//! verifier (argon2id), since operator passwords are not card PINs and are not verified in an
//! HSM.

mod soft;

use std::fmt;

pub use soft::SoftHsm;

use crate::activation::{PUBLIC_KEY_LEN, SealedTmk};
use crate::keys::{KCV_LEN, KEY_LEN};
use crate::mac::MAC_LEN;
use crate::pinblock::PIN_BLOCK_LEN;
use crate::{CryptoError, DesKey, Result};

/// A key wrapped under an HSM's local master key: opaque, storable, useless without the HSM.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyUnderLmk(Vec<u8>);

impl KeyUnderLmk {
    /// Wraps stored bytes; whether they unwrap is checked by the HSM when the key is used.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The stored form.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The stored form as lowercase hex (for Redis and configuration).
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// Parses the hex stored form.
    pub fn from_hex(hex_key: &str) -> Result<Self> {
        hex::decode(hex_key.trim())
            .map(Self)
            .map_err(|_| CryptoError::InvalidHex("key under LMK"))
    }
}

impl fmt::Debug for KeyUnderLmk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyUnderLmk(..)")
    }
}

/// One working key from sign-in, in the two forms the host needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingKey {
    /// The key under the LMK, kept by the host for the session.
    pub under_lmk: KeyUnderLmk,
    /// The key TDES-ECB-encrypted under the terminal's TMK, sent to the terminal.
    pub under_tmk: [u8; KEY_LEN],
    /// Its key check value, sent with it.
    pub check_value: [u8; KCV_LEN],
}

/// The working keys of one sign-in (`SignInResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingKeys {
    /// PIN key: encrypts card PIN blocks (format 0) and operator passwords (format 1).
    pub pin: WorkingKey,
    /// MAC key: the X9.19 MAC of every message of the session.
    pub mac: WorkingKey,
}

/// Key operations of the platform's services; implemented in software by [`SoftHsm`].
pub trait Hsm: Send + Sync + fmt::Debug {
    /// A new random terminal master key.
    fn generate_tmk(&self) -> Result<KeyUnderLmk>;

    /// The key's check value (first 4 bytes of TDES-encrypting 8 zero bytes).
    fn check_value(&self, key: &KeyUnderLmk) -> Result<[u8; KCV_LEN]>;

    /// Seals the TMK for the activating device (see [`crate::seal_tmk`]).
    fn seal_tmk_for_device(
        &self,
        tmk: &KeyUnderLmk,
        device_public: &[u8; PUBLIC_KEY_LEN],
        terminal_id: &str,
    ) -> Result<SealedTmk>;

    /// Fresh PIN and MAC keys for a sign-in, under the LMK and under the TMK.
    fn generate_working_keys(&self, tmk: &KeyUnderLmk) -> Result<WorkingKeys>;

    /// The X9.19 retail MAC of `data` under the MAC key.
    fn generate_mac(&self, key: &KeyUnderLmk, data: &[u8]) -> Result<[u8; MAC_LEN]>;

    /// Whether `mac` is the X9.19 MAC of `data` under the key (compared in constant time).
    fn verify_mac(&self, key: &KeyUnderLmk, data: &[u8], mac: &[u8]) -> Result<bool>;

    /// The operator password in an ISO 9564 format 1 block encrypted under the PIN key.
    fn decrypt_password_block(
        &self,
        pin_key: &KeyUnderLmk,
        encrypted_block: &[u8],
    ) -> Result<String>;

    /// Re-encrypts a format 0 PIN block from the terminal PIN key to the issuer zone PIN key;
    /// a block that does not decode for `pan_digits` is [`CryptoError::MalformedPinBlock`].
    fn translate_pin_block(
        &self,
        from_pin_key: &KeyUnderLmk,
        to_key: &KeyUnderLmk,
        encrypted_block: &[u8],
        pan_digits: &str,
    ) -> Result<[u8; PIN_BLOCK_LEN]>;

    /// Wraps a clear key from configuration (e.g. the issuer zone PIN key) under the LMK.
    fn import_key(&self, clear: &DesKey) -> Result<KeyUnderLmk>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_under_lmk_round_trips_through_hex_and_debug_hides_it() {
        let key = KeyUnderLmk::from_bytes(vec![0xAB; 44]);
        assert_eq!(KeyUnderLmk::from_hex(&key.to_hex()).unwrap(), key);
        assert_eq!(key.as_bytes(), &[0xAB; 44][..]);
        let shown = format!("{key:?}");
        assert_eq!(shown, "KeyUnderLmk(..)");
        assert!(!shown.to_lowercase().contains("abab"));
        assert_eq!(
            KeyUnderLmk::from_hex("zz").unwrap_err(),
            CryptoError::InvalidHex("key under LMK")
        );
    }

    #[test]
    fn the_trait_is_object_safe_and_shareable() {
        fn assert_shareable<T: Send + Sync>(_: &T) {}
        let hsm: std::sync::Arc<dyn Hsm> = std::sync::Arc::new(SoftHsm::new([1; 32]));
        assert_shareable(&hsm);
        assert_eq!(
            hsm.check_value(&hsm.generate_tmk().unwrap()).unwrap().len(),
            4
        );
    }
}
