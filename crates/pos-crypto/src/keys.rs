//! Double-length TDES keys: the terminal master key (TMK), the working keys (PIN key, MAC key)
//! and the issuer zone PIN key all are a [`DesKey`].
//!
//! A key is 16 bytes K1 || K2 used as 2-key EDE TDES (`des::TdesEde2`). Its key check value
//! (KCV) is the first bytes of TDES-encrypting eight zero bytes under it; it is what terminals
//! and operators compare to know that both sides hold the same key without showing it.

use std::fmt;

use des::TdesEde2;
use des::cipher::generic_array::GenericArray;
use des::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use rand::RngCore;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::{CryptoError, Result};

/// Length of a double-length TDES key in bytes.
pub const KEY_LEN: usize = 16;
/// Length of a DES block in bytes.
pub const BLOCK_LEN: usize = 8;
/// Length of the key check values this platform exchanges.
pub const KCV_LEN: usize = 4;

/// A double-length (16-byte, K1 || K2) TDES key; zeroized on drop, never printed.
#[derive(Clone)]
pub struct DesKey {
    bytes: [u8; KEY_LEN],
}

impl DesKey {
    /// Takes a 16-byte key; single-length (8-byte) DES keys and any other length are refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|_| CryptoError::KeyLength {
            what: "double-length TDES key",
            expected: KEY_LEN,
            actual: bytes.len(),
        })?;
        Ok(Self { bytes })
    }

    /// Parses 32 hex digits, e.g. a zone key from configuration.
    pub fn from_hex(hex_key: &str) -> Result<Self> {
        let bytes = Zeroizing::new(
            hex::decode(hex_key.trim()).map_err(|_| CryptoError::InvalidHex("TDES key"))?,
        );
        Self::from_bytes(&bytes)
    }

    /// A fresh random key with odd parity in every byte (the DES convention).
    pub fn random() -> Self {
        let mut bytes = [0u8; KEY_LEN];
        rand::rng().fill_bytes(&mut bytes);
        for byte in &mut bytes {
            *byte = with_odd_parity(*byte);
        }
        Self { bytes }
    }

    /// The clear key bytes, for a terminal that stores its keys or an HSM that wraps them.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// True when every byte has odd parity, as keys generated here and by HSMs have.
    pub fn has_odd_parity(&self) -> bool {
        self.bytes.iter().all(|b| b.count_ones() % 2 == 1)
    }

    /// True when K1 == K2, which makes the key single DES in effect.
    pub fn halves_equal(&self) -> bool {
        self.k1().ct_eq(self.k2()).into()
    }

    /// First 8 bytes (K1): the single-DES key of the X9.19 MAC's CBC chain.
    pub(crate) fn k1(&self) -> &[u8] {
        &self.bytes[..BLOCK_LEN]
    }

    /// Last 8 bytes (K2): the single-DES key of the X9.19 MAC's output transformation.
    pub(crate) fn k2(&self) -> &[u8] {
        &self.bytes[BLOCK_LEN..]
    }

    /// Key check value: the first 4 bytes of TDES-encrypting 8 zero bytes under the key.
    pub fn check_value(&self) -> [u8; KCV_LEN] {
        let mut block = GenericArray::from([0u8; BLOCK_LEN]);
        self.cipher().encrypt_block(&mut block);
        let mut kcv = [0u8; KCV_LEN];
        kcv.copy_from_slice(&block[..KCV_LEN]);
        kcv
    }

    /// TDES ECB encryption of whole 8-byte blocks (no padding).
    pub fn encrypt_ecb(&self, data: &[u8]) -> Result<Vec<u8>> {
        let mut out = aligned_copy(data)?;
        let cipher = self.cipher();
        for block in out.chunks_exact_mut(BLOCK_LEN) {
            cipher.encrypt_block(GenericArray::from_mut_slice(block));
        }
        Ok(out)
    }

    /// TDES ECB decryption of whole 8-byte blocks (no padding).
    pub fn decrypt_ecb(&self, data: &[u8]) -> Result<Vec<u8>> {
        let mut out = aligned_copy(data)?;
        let cipher = self.cipher();
        for block in out.chunks_exact_mut(BLOCK_LEN) {
            cipher.decrypt_block(GenericArray::from_mut_slice(block));
        }
        Ok(out)
    }

    /// Terminal side of sign-in: decrypts a working key sent under this key (the TMK) and
    /// checks it against the check value sent with it.
    pub fn decrypt_working_key(
        &self,
        under_tmk: &[u8; KEY_LEN],
        expected_check_value: &[u8; KCV_LEN],
    ) -> Result<DesKey> {
        let clear = Zeroizing::new(self.decrypt_ecb(under_tmk)?);
        let key = DesKey::from_bytes(&clear)?;
        let actual = key.check_value();
        if bool::from(actual.ct_eq(expected_check_value)) {
            Ok(key)
        } else {
            Err(CryptoError::CheckValueMismatch {
                expected: hex::encode_upper(expected_check_value),
                actual: hex::encode_upper(actual),
            })
        }
    }

    /// The 2-key EDE cipher for this key.
    fn cipher(&self) -> TdesEde2 {
        TdesEde2::new(GenericArray::from_slice(&self.bytes))
    }
}

impl Drop for DesKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl PartialEq for DesKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes.ct_eq(&other.bytes).into()
    }
}

impl Eq for DesKey {}

impl fmt::Debug for DesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Three bytes of KCV, as HSM consoles show it: enough to tell keys apart.
        let kcv = self.check_value();
        write!(f, "DesKey(kcv={})", hex::encode_upper(&kcv[..3]))
    }
}

/// The byte with its lowest bit set so that it has an odd number of one bits.
fn with_odd_parity(byte: u8) -> u8 {
    let high = byte & 0xFE;
    if high.count_ones().is_multiple_of(2) {
        high | 1
    } else {
        high
    }
}

/// A copy of `data`, refused unless it is whole DES blocks.
fn aligned_copy(data: &[u8]) -> Result<Vec<u8>> {
    if !data.len().is_multiple_of(BLOCK_LEN) {
        return Err(CryptoError::NotBlockAligned(data.len()));
    }
    Ok(data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The classic TDES test key (used in psec's and many HSM manuals' examples).
    const TEST_KEY: &str = "0123456789ABCDEFFEDCBA9876543210";

    fn key(hex_key: &str) -> DesKey {
        DesKey::from_hex(hex_key).unwrap()
    }

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    // KCV of the test key: psec 1.3.0 `psec.des.generate_kcv(key, 4)` gives 08D7B4FB, and
    // `openssl enc -des-ede -K 0123456789ABCDEFFEDCBA9876543210 -nopad` of 8 zero bytes gives
    // 08D7B4FB629D0885.
    #[test]
    fn check_value_of_the_test_key_is_08d7b4fb() {
        assert_eq!(key(TEST_KEY).check_value(), [0x08, 0xD7, 0xB4, 0xFB]);
        assert_eq!(
            key(TEST_KEY).encrypt_ecb(&[0; 8]).unwrap(),
            h("08D7B4FB629D0885")
        );
    }

    // 2-key TDES vector widely published for this key (plaintext 0123456789ABCDE7 →
    // 7F1D0A77826B8AFF); confirmed with `openssl enc -des-ede -nopad`.
    #[test]
    fn published_two_key_tdes_vector() {
        let k = key(TEST_KEY);
        let cipher = k.encrypt_ecb(&h("0123456789ABCDE7")).unwrap();
        assert_eq!(cipher, h("7F1D0A77826B8AFF"));
        assert_eq!(k.decrypt_ecb(&cipher).unwrap(), h("0123456789ABCDE7"));
    }

    // With K1 == K2, EDE is single DES, so single-DES vectors apply: the textbook vector
    // (key 133457799BBCDFF1, 0123456789ABCDEF → 85E813540F0AB405) and FIPS 81's "Now is t"
    // under 0123456789ABCDEF → 3FA40E8A984D4815; both also confirmed with openssl.
    #[test]
    fn published_single_des_vectors_through_degenerate_tdes() {
        let k = key("133457799BBCDFF1133457799BBCDFF1");
        assert!(k.halves_equal());
        assert_eq!(
            k.encrypt_ecb(&h("0123456789ABCDEF")).unwrap(),
            h("85E813540F0AB405")
        );
        let k = key("0123456789ABCDEF0123456789ABCDEF");
        assert_eq!(k.encrypt_ecb(b"Now is t").unwrap(), h("3FA40E8A984D4815"));
    }

    #[test]
    fn ecb_processes_each_block_independently() {
        let k = key(TEST_KEY);
        let data = h("0123456789ABCDE70000000000000000");
        assert_eq!(
            k.encrypt_ecb(&data).unwrap(),
            h("7F1D0A77826B8AFF08D7B4FB629D0885")
        );
    }

    #[test]
    fn single_length_and_odd_lengths_are_refused() {
        let err = DesKey::from_bytes(&[0x01; 8]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "double-length TDES key must be 16 bytes, got 8"
        );
        assert!(DesKey::from_bytes(&[0x01; 24]).is_err());
        assert_eq!(
            DesKey::from_hex("not hex").unwrap_err(),
            CryptoError::InvalidHex("TDES key")
        );
    }

    #[test]
    fn data_that_is_not_whole_blocks_is_refused() {
        let err = key(TEST_KEY).encrypt_ecb(&[0; 12]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "data for TDES ECB must be a multiple of 8 bytes, got 12"
        );
        assert!(key(TEST_KEY).decrypt_ecb(&[0; 7]).is_err());
    }

    #[test]
    fn random_keys_have_odd_parity_and_differ() {
        let a = DesKey::random();
        let b = DesKey::random();
        assert!(a.has_odd_parity() && b.has_odd_parity());
        assert!(!a.halves_equal());
        assert_ne!(a, b);
    }

    #[test]
    fn terminal_accepts_a_working_key_with_its_check_value() {
        let tmk = DesKey::random();
        let working = DesKey::random();
        let under_tmk: [u8; 16] = tmk
            .encrypt_ecb(working.expose_bytes())
            .unwrap()
            .try_into()
            .unwrap();
        let received = tmk
            .decrypt_working_key(&under_tmk, &working.check_value())
            .unwrap();
        assert_eq!(received, working);
    }

    #[test]
    fn terminal_refuses_a_working_key_under_another_tmk() {
        let working = DesKey::random();
        let under_other: [u8; 16] = DesKey::random()
            .encrypt_ecb(working.expose_bytes())
            .unwrap()
            .try_into()
            .unwrap();
        let err = DesKey::random()
            .decrypt_working_key(&under_other, &working.check_value())
            .unwrap_err();
        assert!(matches!(err, CryptoError::CheckValueMismatch { .. }));
        assert!(err.to_string().starts_with("check value mismatch"));
    }

    #[test]
    fn debug_shows_the_check_value_and_never_the_key() {
        let k = key(TEST_KEY);
        let shown = format!("{k:?}");
        assert_eq!(shown, "DesKey(kcv=08D7B4)");
        assert!(!shown.contains("0123456789"));
        let random = DesKey::random();
        let shown = format!("{random:?}");
        assert!(!shown.contains(&hex::encode_upper(random.expose_bytes())));
        assert!(!shown.contains(&hex::encode(random.expose_bytes())));
    }

    #[test]
    fn parity_helper_sets_odd_parity() {
        for byte in 0..=255u8 {
            let fixed = with_odd_parity(byte);
            assert_eq!(fixed.count_ones() % 2, 1);
            assert_eq!(fixed & 0xFE, byte & 0xFE);
        }
    }
}
