//! [`SoftHsm`]: the software [`Hsm`], for development, tests and small deployments.
//!
//! It holds a 32-byte local master key (LMK) and wraps every key as
//! `nonce (12 bytes) || ChaCha20-Poly1305(LMK, nonce, key, aad = "pos-crypto key v1")`, so a
//! corrupted wrapped key, or one wrapped under another LMK, is detected instead of silently
//! yielding a wrong key. Clear keys live only for the duration of a call and are zeroized.

use std::fmt;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::activation::{NONCE_LEN, PUBLIC_KEY_LEN, SealedTmk, seal_tmk};
use crate::hsm::{Hsm, KeyUnderLmk, WorkingKey, WorkingKeys};
use crate::keys::{KCV_LEN, KEY_LEN};
use crate::mac::{MAC_LEN, retail_mac, verify_retail_mac};
use crate::pinblock::{PIN_BLOCK_LEN, decode_format0, decode_format1};
use crate::{CryptoError, DesKey, Result};

/// Associated data of every wrapped key; a new wrapping format gets a new label.
const WRAP_LABEL: &[u8] = b"pos-crypto key v1";
/// Length of the LMK in bytes.
pub const LMK_LEN: usize = 32;
/// Length of a ChaCha20-Poly1305 tag.
const TAG_LEN: usize = 16;

/// The software HSM: keys wrapped under a 32-byte LMK with ChaCha20-Poly1305.
pub struct SoftHsm {
    /// The LMK, as the cipher's key (zeroized when the cipher drops).
    lmk: ChaCha20Poly1305,
}

impl SoftHsm {
    /// An HSM with the given local master key.
    pub fn new(lmk: [u8; LMK_LEN]) -> Self {
        let lmk = Zeroizing::new(lmk);
        Self {
            lmk: ChaCha20Poly1305::new(lmk.as_ref().into()),
        }
    }

    /// An HSM with the LMK given as 64 hex digits (from configuration or a secret store).
    pub fn from_hex(lmk_hex: &str) -> Result<Self> {
        let bytes = Zeroizing::new(
            hex::decode(lmk_hex.trim()).map_err(|_| CryptoError::InvalidHex("LMK"))?,
        );
        let wrong_length = || CryptoError::KeyLength {
            what: "LMK",
            expected: LMK_LEN,
            actual: bytes.len(),
        };
        let lmk: Zeroizing<[u8; LMK_LEN]> =
            Zeroizing::new(bytes.as_slice().try_into().map_err(|_| wrong_length())?);
        Ok(Self::new(*lmk))
    }

    /// A fresh random LMK, e.g. for `posctl` to print once into a secret store.
    pub fn generate_lmk() -> [u8; LMK_LEN] {
        let mut lmk = [0u8; LMK_LEN];
        rand::rng().fill_bytes(&mut lmk);
        lmk
    }

    /// `nonce || ciphertext` of the key under the LMK.
    fn wrap(&self, key: &DesKey) -> Result<KeyUnderLmk> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: key.expose_bytes(),
            aad: WRAP_LABEL,
        };
        let sealed = self
            .lmk
            .encrypt(Nonce::from_slice(&nonce), payload)
            .map_err(|_| CryptoError::Internal("ChaCha20-Poly1305 wrapping failed"))?;
        Ok(KeyUnderLmk::from_bytes([&nonce[..], &sealed].concat()))
    }

    /// The clear key, if it was wrapped under this LMK and is intact.
    fn unwrap(&self, wrapped: &KeyUnderLmk) -> Result<DesKey> {
        let bytes = wrapped.as_bytes();
        if bytes.len() != NONCE_LEN + KEY_LEN + TAG_LEN {
            return Err(CryptoError::KeyUnwrapFailed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let payload = Payload {
            msg: sealed,
            aad: WRAP_LABEL,
        };
        let clear = self
            .lmk
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| CryptoError::KeyUnwrapFailed)?;
        DesKey::from_bytes(&Zeroizing::new(clear))
    }

    /// A fresh working key, under the LMK and under the TMK, with its check value.
    fn working_key(&self, tmk: &DesKey) -> Result<WorkingKey> {
        let key = DesKey::random();
        let under_tmk = tmk
            .encrypt_ecb(key.expose_bytes())?
            .try_into()
            .map_err(|_| CryptoError::Internal("TDES ECB output length"))?;
        Ok(WorkingKey {
            under_lmk: self.wrap(&key)?,
            under_tmk,
            check_value: key.check_value(),
        })
    }
}

/// The clear 8-byte PIN block of an encrypted one.
fn decrypt_pin_block(key: &DesKey, encrypted: &[u8]) -> Result<Zeroizing<[u8; PIN_BLOCK_LEN]>> {
    if encrypted.len() != PIN_BLOCK_LEN {
        return Err(CryptoError::MalformedPinBlock("a PIN block is 8 bytes"));
    }
    let clear = Zeroizing::new(key.decrypt_ecb(encrypted)?);
    let mut block = Zeroizing::new([0u8; PIN_BLOCK_LEN]);
    block.copy_from_slice(&clear);
    Ok(block)
}

impl Hsm for SoftHsm {
    fn generate_tmk(&self) -> Result<KeyUnderLmk> {
        self.wrap(&DesKey::random())
    }

    fn check_value(&self, key: &KeyUnderLmk) -> Result<[u8; KCV_LEN]> {
        Ok(self.unwrap(key)?.check_value())
    }

    fn seal_tmk_for_device(
        &self,
        tmk: &KeyUnderLmk,
        device_public: &[u8; PUBLIC_KEY_LEN],
        terminal_id: &str,
    ) -> Result<SealedTmk> {
        seal_tmk(device_public, terminal_id, &self.unwrap(tmk)?)
    }

    fn generate_working_keys(&self, tmk: &KeyUnderLmk) -> Result<WorkingKeys> {
        let tmk = self.unwrap(tmk)?;
        Ok(WorkingKeys {
            pin: self.working_key(&tmk)?,
            mac: self.working_key(&tmk)?,
        })
    }

    fn generate_mac(&self, key: &KeyUnderLmk, data: &[u8]) -> Result<[u8; MAC_LEN]> {
        Ok(retail_mac(&self.unwrap(key)?, data))
    }

    fn verify_mac(&self, key: &KeyUnderLmk, data: &[u8], mac: &[u8]) -> Result<bool> {
        Ok(verify_retail_mac(&self.unwrap(key)?, data, mac))
    }

    fn decrypt_password_block(
        &self,
        pin_key: &KeyUnderLmk,
        encrypted_block: &[u8],
    ) -> Result<String> {
        let block = decrypt_pin_block(&self.unwrap(pin_key)?, encrypted_block)?;
        decode_format1(&block)
    }

    fn translate_pin_block(
        &self,
        from_pin_key: &KeyUnderLmk,
        to_key: &KeyUnderLmk,
        encrypted_block: &[u8],
        pan_digits: &str,
    ) -> Result<[u8; PIN_BLOCK_LEN]> {
        let from = self.unwrap(from_pin_key)?;
        let to = self.unwrap(to_key)?;
        let block = decrypt_pin_block(&from, encrypted_block)?;
        // Only checked, never kept: the PIN itself is the issuer's to verify.
        drop(Zeroizing::new(decode_format0(&block, pan_digits)?));
        to.encrypt_ecb(block.as_ref())?
            .try_into()
            .map_err(|_| CryptoError::Internal("TDES ECB output length"))
    }

    fn import_key(&self, clear: &DesKey) -> Result<KeyUnderLmk> {
        if clear.halves_equal() {
            return Err(CryptoError::WeakKey(
                "its two halves are equal, which makes it single DES",
            ));
        }
        self.wrap(clear)
    }
}

impl fmt::Debug for SoftHsm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SoftHsm { lmk: .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeviceKeyPair;
    use crate::pinblock::{format0, format1};

    const LMK: [u8; 32] = [0x5A; 32];
    const PAN: &str = "6222020200112233446";

    fn hsm() -> SoftHsm {
        SoftHsm::new(LMK)
    }

    fn block(bytes: Vec<u8>) -> [u8; 8] {
        bytes.try_into().unwrap()
    }

    /// Activates a device and signs it in: the terminal's clear TMK, PIN key and MAC key, and
    /// the host's wrapped TMK and working keys.
    fn signed_in_terminal(hsm: &SoftHsm) -> (DesKey, DesKey, DesKey, KeyUnderLmk, WorkingKeys) {
        let tmk = hsm.generate_tmk().unwrap();
        let device = DeviceKeyPair::generate();
        let sealed = hsm
            .seal_tmk_for_device(&tmk, &device.public_key(), "12345678")
            .unwrap();
        let clear_tmk = device.open_tmk(&sealed, "12345678").unwrap();
        let keys = hsm.generate_working_keys(&tmk).unwrap();
        let pin = clear_tmk
            .decrypt_working_key(&keys.pin.under_tmk, &keys.pin.check_value)
            .unwrap();
        let mac = clear_tmk
            .decrypt_working_key(&keys.mac.under_tmk, &keys.mac.check_value)
            .unwrap();
        (clear_tmk, pin, mac, tmk, keys)
    }

    #[test]
    fn imported_test_key_has_its_published_check_value() {
        let hsm = hsm();
        let clear = DesKey::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let key = hsm.import_key(&clear).unwrap();
        assert_eq!(hsm.check_value(&key).unwrap(), [0x08, 0xD7, 0xB4, 0xFB]);
    }

    #[test]
    fn tmk_sealed_by_the_hsm_opens_on_the_device_with_the_same_check_value() {
        let hsm = hsm();
        let tmk = hsm.generate_tmk().unwrap();
        let device = DeviceKeyPair::generate();
        let sealed = hsm
            .seal_tmk_for_device(&tmk, &device.public_key(), "12345678")
            .unwrap();
        let opened = device.open_tmk(&sealed, "12345678").unwrap();
        assert_eq!(opened.check_value(), hsm.check_value(&tmk).unwrap());
        let err = device.open_tmk(&sealed, "87654321").unwrap_err();
        assert_eq!(err, CryptoError::TmkOpenFailed);
    }

    #[test]
    fn working_keys_decrypt_on_the_terminal_with_matching_check_values() {
        let hsm = hsm();
        let (_, pin, mac, _, keys) = signed_in_terminal(&hsm);
        assert_eq!(
            pin.check_value(),
            hsm.check_value(&keys.pin.under_lmk).unwrap()
        );
        assert_eq!(
            mac.check_value(),
            hsm.check_value(&keys.mac.under_lmk).unwrap()
        );
        assert_ne!(pin, mac);
        assert!(pin.has_odd_parity() && mac.has_odd_parity());
    }

    #[test]
    fn each_sign_in_rotates_the_working_keys() {
        let hsm = hsm();
        let tmk = hsm.generate_tmk().unwrap();
        let first = hsm.generate_working_keys(&tmk).unwrap();
        let second = hsm.generate_working_keys(&tmk).unwrap();
        assert_ne!(first.pin.check_value, second.pin.check_value);
        assert_ne!(first.mac.under_tmk, second.mac.under_tmk);
    }

    #[test]
    fn macs_agree_between_terminal_and_host_both_ways() {
        let hsm = hsm();
        let (clear_tmk, _, mac_key, tmk, keys) = signed_in_terminal(&hsm);
        let request = b"\x0a\x0812345678\x10\x01";
        let terminal_mac = retail_mac(&mac_key, request);
        assert!(
            hsm.verify_mac(&keys.mac.under_lmk, request, &terminal_mac)
                .unwrap()
        );
        let response = b"\x08\x01";
        let host_mac = hsm.generate_mac(&keys.mac.under_lmk, response).unwrap();
        assert!(verify_retail_mac(&mac_key, response, &host_mac));
        // Sign-in is MACed under the TMK itself.
        let sign_in_mac = retail_mac(&clear_tmk, request);
        assert!(hsm.verify_mac(&tmk, request, &sign_in_mac).unwrap());
        // A MAC under the wrong key, or over other data, is refused.
        assert!(
            !hsm.verify_mac(&keys.pin.under_lmk, request, &terminal_mac)
                .unwrap()
        );
        assert!(
            !hsm.verify_mac(&keys.mac.under_lmk, response, &terminal_mac)
                .unwrap()
        );
    }

    #[test]
    fn a_key_wrapped_by_another_hsm_does_not_unwrap() {
        let other = SoftHsm::new([0xA5; 32]);
        let foreign = other.generate_tmk().unwrap();
        let err = hsm().check_value(&foreign).unwrap_err();
        assert_eq!(err, CryptoError::KeyUnwrapFailed);
        assert!(err.to_string().contains("wrapped under another LMK"));
        assert!(hsm().generate_working_keys(&foreign).is_err());
        assert!(other.check_value(&foreign).is_ok());
    }

    #[test]
    fn a_corrupted_wrapped_key_is_detected() {
        let hsm = hsm();
        let key = hsm.generate_tmk().unwrap();
        for i in 0..key.as_bytes().len() {
            let mut bytes = key.as_bytes().to_vec();
            bytes[i] ^= 0x80;
            let corrupted = KeyUnderLmk::from_bytes(bytes);
            assert_eq!(
                hsm.check_value(&corrupted),
                Err(CryptoError::KeyUnwrapFailed)
            );
        }
        let truncated = KeyUnderLmk::from_bytes(&key.as_bytes()[..40]);
        assert_eq!(
            hsm.check_value(&truncated),
            Err(CryptoError::KeyUnwrapFailed)
        );
        assert_eq!(
            hsm.check_value(&KeyUnderLmk::from_bytes(Vec::new())),
            Err(CryptoError::KeyUnwrapFailed)
        );
    }

    #[test]
    fn wrapped_keys_survive_storage_as_hex_and_a_restart() {
        let key = hsm().generate_tmk().unwrap();
        let kcv = hsm().check_value(&key).unwrap();
        let restored = KeyUnderLmk::from_hex(&key.to_hex()).unwrap();
        let restarted = SoftHsm::from_hex(&hex::encode(LMK)).unwrap();
        assert_eq!(restarted.check_value(&restored).unwrap(), kcv);
    }

    #[test]
    fn pin_translated_from_terminal_key_to_zone_key_decodes_to_the_same_pin() {
        let hsm = hsm();
        let (_, terminal_pin_key, _, _, keys) = signed_in_terminal(&hsm);
        let zone_clear = DesKey::random();
        let zone = hsm.import_key(&zone_clear).unwrap();
        let under_terminal_key = terminal_pin_key
            .encrypt_ecb(&format0("246810", PAN).unwrap())
            .unwrap();
        let translated = hsm
            .translate_pin_block(&keys.pin.under_lmk, &zone, &under_terminal_key, PAN)
            .unwrap();
        assert_ne!(translated.to_vec(), under_terminal_key);
        let at_issuer = block(zone_clear.decrypt_ecb(&translated).unwrap());
        assert_eq!(decode_format0(&at_issuer, PAN).unwrap(), "246810");
    }

    #[test]
    fn pin_translation_between_two_imported_keys() {
        let hsm = hsm();
        let (a_clear, b_clear) = (DesKey::random(), DesKey::random());
        let a = hsm.import_key(&a_clear).unwrap();
        let b = hsm.import_key(&b_clear).unwrap();
        let under_a = a_clear.encrypt_ecb(&format0("1234", PAN).unwrap()).unwrap();
        let under_b = hsm.translate_pin_block(&a, &b, &under_a, PAN).unwrap();
        let clear = block(b_clear.decrypt_ecb(&under_b).unwrap());
        assert_eq!(decode_format0(&clear, PAN).unwrap(), "1234");
    }

    #[test]
    fn malformed_pin_blocks_are_refused_with_the_pin_block_error() {
        let hsm = hsm();
        let a_clear = DesKey::random();
        let a = hsm.import_key(&a_clear).unwrap();
        let b = hsm.import_key(&DesKey::random()).unwrap();
        let good = a_clear.encrypt_ecb(&format0("1234", PAN).unwrap()).unwrap();
        let under_other_key = DesKey::random()
            .encrypt_ecb(&format0("1234", PAN).unwrap())
            .unwrap();
        let format1_block = a_clear.encrypt_ecb(&format1("1234").unwrap()).unwrap();
        let refused = [
            (good.clone(), "5544332211009966"), // block for another card
            (under_other_key, PAN),             // encrypted under another key
            (format1_block, PAN),               // not a format 0 block
            (good[..7].to_vec(), PAN),          // truncated
            (Vec::new(), PAN),                  // empty
        ];
        for (encrypted, pan) in refused {
            let err = hsm
                .translate_pin_block(&a, &b, &encrypted, pan)
                .unwrap_err();
            assert!(matches!(err, CryptoError::MalformedPinBlock(_)), "{err:?}");
            assert!(!err.to_string().contains("1234"));
        }
        // A bad PAN is the caller's input error, not a PIN block error.
        let err = hsm
            .translate_pin_block(&a, &b, &good, "62220202")
            .unwrap_err();
        assert!(matches!(err, CryptoError::InvalidPan(_)));
    }

    #[test]
    fn operator_password_blocks_decrypt_to_the_password() {
        let hsm = hsm();
        let (_, pin_key, _, _, keys) = signed_in_terminal(&hsm);
        let encrypted = pin_key.encrypt_ecb(&format1("0000").unwrap()).unwrap();
        let password = hsm
            .decrypt_password_block(&keys.pin.under_lmk, &encrypted)
            .unwrap();
        assert_eq!(password, "0000");
        let format0_block = pin_key.encrypt_ecb(&format0("0000", PAN).unwrap()).unwrap();
        let err = hsm
            .decrypt_password_block(&keys.pin.under_lmk, &format0_block)
            .unwrap_err();
        assert!(matches!(err, CryptoError::MalformedPinBlock(_)));
        assert!(
            hsm.decrypt_password_block(&keys.pin.under_lmk, &[0; 9])
                .is_err()
        );
    }

    #[test]
    fn a_zone_key_with_equal_halves_is_refused() {
        let single = DesKey::from_hex("0123456789ABCDEF0123456789ABCDEF").unwrap();
        let err = hsm().import_key(&single).unwrap_err();
        assert!(matches!(err, CryptoError::WeakKey(_)));
    }

    #[test]
    fn lmk_from_hex_refuses_bad_input() {
        assert_eq!(
            SoftHsm::from_hex("xyz").unwrap_err(),
            CryptoError::InvalidHex("LMK")
        );
        let err = SoftHsm::from_hex(&"ab".repeat(16)).unwrap_err();
        assert_eq!(err.to_string(), "LMK must be 32 bytes, got 16");
        assert_ne!(SoftHsm::generate_lmk(), SoftHsm::generate_lmk());
    }

    #[test]
    fn debug_never_shows_keys() {
        let lmk = SoftHsm::generate_lmk();
        let hsm = SoftHsm::new(lmk);
        let shown = format!("{hsm:?}");
        assert_eq!(shown, "SoftHsm { lmk: .. }");
        assert!(!shown.contains(&hex::encode(lmk)));
        let clear = DesKey::random();
        let wrapped = hsm.import_key(&clear).unwrap();
        let shown = format!("{clear:?} {wrapped:?}");
        for key_hex in [hex::encode(clear.expose_bytes()), wrapped.to_hex()] {
            assert!(!shown.to_lowercase().contains(&key_hex), "{shown}");
        }
        let keys = hsm.generate_working_keys(&wrapped).unwrap();
        let shown = format!("{keys:?}").to_lowercase();
        assert!(!shown.contains(&keys.pin.under_lmk.to_hex()));
    }
}
