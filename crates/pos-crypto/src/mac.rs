//! ANSI X9.19 retail MAC (ISO/IEC 9797-1 MAC algorithm 3, padding method 1), the MAC of every
//! `TerminalMessage` and `HostMessage` (see `TerminalMessage.mac` in terminal.proto).
//!
//! The data is zero-padded to a multiple of 8 bytes (empty data is one zero block), chained
//! through single-DES CBC under K1 with a zero IV, and the last block is then decrypted under
//! K2 and encrypted under K1. The result is the full 8 bytes.

use des::Des;
use des::cipher::generic_array::GenericArray;
use des::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use subtle::ConstantTimeEq;

use crate::keys::{BLOCK_LEN, DesKey};

/// Length of the MAC in bytes.
pub const MAC_LEN: usize = 8;

/// The X9.19 retail MAC of `data` under the double-length `key`.
pub fn retail_mac(key: &DesKey, data: &[u8]) -> [u8; MAC_LEN] {
    let k1 = single_des(key.k1());
    let mut state = GenericArray::from([0u8; BLOCK_LEN]);
    for block in padded_blocks(data) {
        for (s, d) in state.iter_mut().zip(block) {
            *s ^= d;
        }
        k1.encrypt_block(&mut state);
    }
    single_des(key.k2()).decrypt_block(&mut state);
    k1.encrypt_block(&mut state);
    state.into()
}

/// True when `mac` is the X9.19 retail MAC of `data` under `key`; compared in constant time.
pub fn verify_retail_mac(key: &DesKey, data: &[u8], mac: &[u8]) -> bool {
    retail_mac(key, data).ct_eq(mac).into()
}

/// The data as 8-byte blocks, zero-padded (ISO/IEC 9797-1 padding method 1).
fn padded_blocks(data: &[u8]) -> impl Iterator<Item = [u8; BLOCK_LEN]> + '_ {
    let empty: &[u8] = &[0u8; BLOCK_LEN];
    let data = if data.is_empty() { empty } else { data };
    data.chunks(BLOCK_LEN).map(|chunk| {
        let mut block = [0u8; BLOCK_LEN];
        block[..chunk.len()].copy_from_slice(chunk);
        block
    })
}

/// Single DES under one half of a double-length key.
fn single_des(half: &[u8]) -> Des {
    Des::new(GenericArray::from_slice(half))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(hex_key: &str) -> DesKey {
        DesKey::from_hex(hex_key).unwrap()
    }

    fn mac_hex(k: &DesKey, data: &[u8]) -> String {
        hex::encode_upper(retail_mac(k, data))
    }

    const TEST_KEY: &str = "0123456789ABCDEFFEDCBA9876543210";

    // Vectors computed with psec 1.3.0 (PyPI, ISO 9797-1 MACs):
    //   psec.mac.generate_retail_mac(key[:8], key[8:], data, padding=1).hex().upper()
    // and cross-checked by chaining `openssl enc -des-ede[-cbc] -nopad` (K1||K1 for the CBC
    // chain, K2||K2 decrypt, K1||K1 encrypt).
    #[test]
    fn known_vectors_from_psec() {
        let k = key(TEST_KEY);
        // Empty input is one zero block, so the MAC is the TDES encryption of zeros.
        assert_eq!(mac_hex(&k, b""), "08D7B4FB629D0885");
        assert_eq!(
            mac_hex(&k, &hex::decode("0123456789ABCDEF").unwrap()),
            "1A4D672DCA6CB335"
        );
        assert_eq!(mac_hex(&k, b"Now is the time for "), "9B9D0509E291FA77");
        assert_eq!(mac_hex(&k, b"Now is the time for a"), "4292F5F25F5A0732");
        let counting: Vec<u8> = (1..=21).collect();
        assert_eq!(mac_hex(&k, &counting), "88E1EF3035B768A5");
    }

    #[test]
    fn zero_padding_means_trailing_zero_bytes_do_not_change_the_mac() {
        // A property of padding method 1 that protocols must live with: the message encoding
        // (protobuf with lengths) is what keeps two different messages apart.
        let k = key(TEST_KEY);
        assert_eq!(
            retail_mac(&k, b"Now is the time for a"),
            retail_mac(&k, b"Now is the time for a\0\0\0")
        );
    }

    #[test]
    fn verify_accepts_the_right_mac() {
        let k = DesKey::random();
        let data = b"purchase 50.00 CNY";
        let mac = retail_mac(&k, data);
        assert!(verify_retail_mac(&k, data, &mac));
    }

    #[test]
    fn verify_fails_after_flipping_any_bit_of_the_data() {
        let k = DesKey::random();
        let data = b"purchase 50.00 CNY terminal 12345678".to_vec();
        let mac = retail_mac(&k, &data);
        for bit in 0..data.len() * 8 {
            let mut tampered = data.clone();
            tampered[bit / 8] ^= 1 << (bit % 8);
            assert!(!verify_retail_mac(&k, &tampered, &mac), "bit {bit}");
        }
    }

    #[test]
    fn verify_fails_after_flipping_any_bit_of_the_mac() {
        let k = DesKey::random();
        let data = b"balance inquiry";
        let mac = retail_mac(&k, data);
        for bit in 0..64 {
            let mut tampered = mac;
            tampered[bit / 8] ^= 1 << (bit % 8);
            assert!(!verify_retail_mac(&k, data, &tampered), "bit {bit}");
        }
    }

    #[test]
    fn verify_fails_for_a_truncated_or_empty_mac_and_another_key() {
        let k = DesKey::random();
        let mac = retail_mac(&k, b"sign-in");
        assert!(!verify_retail_mac(&k, b"sign-in", &mac[..4]));
        assert!(!verify_retail_mac(&k, b"sign-in", &[]));
        assert!(!verify_retail_mac(&DesKey::random(), b"sign-in", &mac));
    }
}
