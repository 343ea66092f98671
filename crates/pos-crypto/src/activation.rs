//! Transport of the terminal master key (TMK) at activation, exactly as `ActivateResponse` in
//! terminal.proto describes it.
//!
//! The device sends a fresh X25519 public key; the host answers with its own ephemeral public
//! key and the 16-byte TMK sealed with ChaCha20-Poly1305 (RFC 8439) under
//! HKDF-SHA-256(salt = device_public_key || host_public_key, info = "pos.v1 activation tmk")
//! of the shared secret, with a random 12-byte nonce and the terminal id's UTF-8 bytes as
//! associated data, so a sealed TMK cannot be replayed to another terminal. Both key pairs are
//! used once; all-zero (low-order) shared secrets are refused.

use std::fmt;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;
use x25519_dalek::{PublicKey, SharedSecret, StaticSecret};
use zeroize::Zeroizing;

use crate::{CryptoError, DesKey, Result};

/// HKDF `info` fixed by terminal.proto.
const HKDF_INFO: &[u8] = b"pos.v1 activation tmk";
/// Length of an X25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of a ChaCha20-Poly1305 nonce.
pub const NONCE_LEN: usize = 12;

/// The TMK as sealed by the host for one device: the fields of `ActivateResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedTmk {
    /// Host's ephemeral X25519 public key (`host_public_key`).
    pub host_public_key: [u8; PUBLIC_KEY_LEN],
    /// ChaCha20-Poly1305 nonce (`tmk_nonce`).
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext and 16-byte tag of the 16-byte TMK (`tmk_ciphertext`).
    pub ciphertext: Vec<u8>,
}

/// Host side: seals `tmk` for the device that sent `device_public`, bound to `terminal_id`.
pub fn seal_tmk(
    device_public: &[u8; PUBLIC_KEY_LEN],
    terminal_id: &str,
    tmk: &DesKey,
) -> Result<SealedTmk> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    seal_with(
        &DeviceKeyPair::generate(),
        nonce,
        device_public,
        terminal_id,
        tmk,
    )
}

/// [`seal_tmk`] with the host's ephemeral key pair and the nonce given (fixed in tests).
fn seal_with(
    host: &DeviceKeyPair,
    nonce: [u8; NONCE_LEN],
    device_public: &[u8; PUBLIC_KEY_LEN],
    terminal_id: &str,
    tmk: &DesKey,
) -> Result<SealedTmk> {
    let host_public_key = host.public_key();
    let shared = host.secret.diffie_hellman(&PublicKey::from(*device_public));
    let cipher = transport_cipher(&shared, device_public, &host_public_key)?;
    let payload = Payload {
        msg: tmk.expose_bytes(),
        aad: terminal_id.as_bytes(),
    };
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce), payload)
        .map_err(|_| CryptoError::Internal("ChaCha20-Poly1305 sealing failed"))?;
    Ok(SealedTmk {
        host_public_key,
        nonce,
        ciphertext,
    })
}

/// The device's ephemeral X25519 key pair for one activation; the secret is never printed.
pub struct DeviceKeyPair {
    secret: StaticSecret,
    public: PublicKey,
}

impl DeviceKeyPair {
    /// A fresh random key pair.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(bytes.as_mut());
        Self::from_secret(*bytes)
    }

    /// The key pair of a given secret scalar (random in [`Self::generate`], fixed in tests).
    fn from_secret(secret: [u8; 32]) -> Self {
        let secret = StaticSecret::from(secret);
        let public = PublicKey::from(&secret);
        Self { secret, public }
    }

    /// The public key to send as `ActivateRequest.device_public_key`.
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.public.to_bytes()
    }

    /// Device side: opens the TMK the host sealed for this key pair and `terminal_id`.
    pub fn open_tmk(&self, sealed: &SealedTmk, terminal_id: &str) -> Result<DesKey> {
        let shared = self
            .secret
            .diffie_hellman(&PublicKey::from(sealed.host_public_key));
        let cipher = transport_cipher(&shared, &self.public_key(), &sealed.host_public_key)?;
        let payload = Payload {
            msg: &sealed.ciphertext,
            aad: terminal_id.as_bytes(),
        };
        let clear = cipher
            .decrypt(Nonce::from_slice(&sealed.nonce), payload)
            .map_err(|_| CryptoError::TmkOpenFailed)?;
        DesKey::from_bytes(&Zeroizing::new(clear))
    }
}

impl fmt::Debug for DeviceKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DeviceKeyPair(public={})",
            hex::encode(self.public_key())
        )
    }
}

/// ChaCha20-Poly1305 under HKDF-SHA-256 of the shared secret; refuses low-order peers.
fn transport_cipher(
    shared: &SharedSecret,
    device_public: &[u8; PUBLIC_KEY_LEN],
    host_public: &[u8; PUBLIC_KEY_LEN],
) -> Result<ChaCha20Poly1305> {
    if !shared.was_contributory() {
        return Err(CryptoError::WeakSharedSecret);
    }
    let mut salt = [0u8; 2 * PUBLIC_KEY_LEN];
    salt[..PUBLIC_KEY_LEN].copy_from_slice(device_public);
    salt[PUBLIC_KEY_LEN..].copy_from_slice(host_public);
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(&salt), shared.as_bytes())
        .expand(HKDF_INFO, key.as_mut())
        .map_err(|_| CryptoError::Internal("HKDF output length"))?;
    Ok(ChaCha20Poly1305::new(key.as_ref().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TERMINAL_ID: &str = "12345678";

    #[test]
    fn sealed_tmk_opens_on_the_device_with_the_same_check_value() {
        let device = DeviceKeyPair::generate();
        let tmk = DesKey::random();
        let sealed = seal_tmk(&device.public_key(), TERMINAL_ID, &tmk).unwrap();
        assert_eq!(sealed.ciphertext.len(), 16 + 16);
        let opened = device.open_tmk(&sealed, TERMINAL_ID).unwrap();
        assert_eq!(opened.check_value(), tmk.check_value());
        assert_eq!(opened, tmk);
    }

    #[test]
    fn another_terminal_id_does_not_open() {
        let device = DeviceKeyPair::generate();
        let sealed = seal_tmk(&device.public_key(), TERMINAL_ID, &DesKey::random()).unwrap();
        let err = device.open_tmk(&sealed, "12345679").unwrap_err();
        assert_eq!(err, CryptoError::TmkOpenFailed);
        assert!(err.to_string().contains("wrong terminal id"));
    }

    #[test]
    fn another_device_key_does_not_open() {
        let device = DeviceKeyPair::generate();
        let sealed = seal_tmk(&device.public_key(), TERMINAL_ID, &DesKey::random()).unwrap();
        let err = DeviceKeyPair::generate()
            .open_tmk(&sealed, TERMINAL_ID)
            .unwrap_err();
        assert_eq!(err, CryptoError::TmkOpenFailed);
    }

    #[test]
    fn any_tampering_is_detected() {
        let device = DeviceKeyPair::generate();
        let sealed = seal_tmk(&device.public_key(), TERMINAL_ID, &DesKey::random()).unwrap();
        for i in 0..sealed.ciphertext.len() {
            let mut tampered = sealed.clone();
            tampered.ciphertext[i] ^= 0x01;
            assert!(device.open_tmk(&tampered, TERMINAL_ID).is_err(), "byte {i}");
        }
        let mut tampered = sealed.clone();
        tampered.nonce[0] ^= 0x01;
        assert!(device.open_tmk(&tampered, TERMINAL_ID).is_err());
        let mut tampered = sealed.clone();
        tampered.host_public_key[0] ^= 0x01;
        assert!(device.open_tmk(&tampered, TERMINAL_ID).is_err());
        let mut truncated = sealed;
        truncated.ciphertext.truncate(16);
        assert!(device.open_tmk(&truncated, TERMINAL_ID).is_err());
    }

    #[test]
    fn low_order_public_keys_are_refused() {
        // The all-zero point and the point of order 2 (u = 1) give an all-zero shared secret.
        let mut one = [0u8; 32];
        one[0] = 1;
        for low_order in [[0u8; 32], one] {
            let err = seal_tmk(&low_order, TERMINAL_ID, &DesKey::random()).unwrap_err();
            assert_eq!(err, CryptoError::WeakSharedSecret);
            let sealed = SealedTmk {
                host_public_key: low_order,
                nonce: [0; NONCE_LEN],
                ciphertext: vec![0; 32],
            };
            let err = DeviceKeyPair::generate()
                .open_tmk(&sealed, TERMINAL_ID)
                .unwrap_err();
            assert_eq!(err, CryptoError::WeakSharedSecret);
        }
    }

    // Independent vector computed with Python `cryptography` 48 (X25519PrivateKey,
    // HKDF(SHA256, salt = device_pub || host_pub, info = b"pos.v1 activation tmk"),
    // ChaCha20Poly1305 with aad = b"12345678"): device secret 32 x 0x07, host secret
    // 32 x 0x09, nonce 000102..0B, TMK 0123456789ABCDEFFEDCBA9876543210. It pins the salt
    // order, the info string and the associated data that third-party terminals rely on.
    const DEVICE_PUBLIC: &str = "13be4feaeaf204c7fd3358fc9c00721881d174278128227ec674f37f7fe97b6d";
    const HOST_PUBLIC: &str = "57db4b359f23ae5e146e4e2512056704722506348c150c14753d0c933d04d421";
    const CIPHERTEXT: &str = "555e530ce8c50a75b3c546fca8a8d4071ea6312e7fd705a0404c65a80be6ff7c";
    const NONCE: [u8; NONCE_LEN] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

    #[test]
    fn sealing_matches_an_independent_implementation() {
        let device = DeviceKeyPair::from_secret([7; 32]);
        assert_eq!(hex::encode(device.public_key()), DEVICE_PUBLIC);
        let host = DeviceKeyPair::from_secret([9; 32]);
        let tmk = DesKey::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let sealed = seal_with(&host, NONCE, &device.public_key(), TERMINAL_ID, &tmk).unwrap();
        assert_eq!(hex::encode(sealed.host_public_key), HOST_PUBLIC);
        assert_eq!(hex::encode(&sealed.ciphertext), CIPHERTEXT);
    }

    #[test]
    fn opening_matches_an_independent_implementation() {
        let sealed = SealedTmk {
            host_public_key: hex::decode(HOST_PUBLIC).unwrap().try_into().unwrap(),
            nonce: NONCE,
            ciphertext: hex::decode(CIPHERTEXT).unwrap(),
        };
        let device = DeviceKeyPair::from_secret([7; 32]);
        let tmk = device.open_tmk(&sealed, TERMINAL_ID).unwrap();
        assert_eq!(tmk.check_value(), [0x08, 0xD7, 0xB4, 0xFB]);
    }

    #[test]
    fn debug_shows_only_the_public_key() {
        let device = DeviceKeyPair::generate();
        let shown = format!("{device:?}");
        assert_eq!(
            shown,
            format!("DeviceKeyPair(public={})", hex::encode(device.public_key()))
        );
        let secret = device.secret.to_bytes();
        assert!(!shown.contains(&hex::encode(secret)));
        assert!(!shown.contains(&hex::encode_upper(secret)));
    }
}
