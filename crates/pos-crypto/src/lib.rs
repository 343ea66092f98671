//! Key handling of the POS acquiring platform: everything that touches a key, a PIN or a
//! password, so that no other crate does cryptography of its own.
//!
//! Pure logic, no I/O. The modules follow the life of a terminal's keys (see
//! `proto/pos/v1/terminal.proto`):
//!
//! - [`keys`]: [`DesKey`], the double-length TDES key (TMK, PIN key, MAC key, zone key), its
//!   key check value, and the terminal-side check of working keys received at sign-in.
//! - [`activation`]: the TMK's transport at activation (X25519 + HKDF-SHA-256 +
//!   ChaCha20-Poly1305), host side ([`seal_tmk`]) and device side ([`DeviceKeyPair`]).
//! - [`mac`]: the ANSI X9.19 retail MAC that authenticates every terminal message.
//! - [`pinblock`]: ISO 9564 PIN blocks, format 0 (card PINs) and format 1 (operator passwords).
//! - [`password`]: argon2id hashing of operator passwords.
//! - [`hsm`]: the [`Hsm`] trait through which services use keys they only hold wrapped under a
//!   local master key, and [`SoftHsm`], its software implementation.
//!
//! Services hold keys as [`KeyUnderLmk`] and go through an `Arc<dyn Hsm>`; only the terminal
//! agent, which has no HSM, holds clear [`DesKey`]s. Every fallible operation returns
//! [`Result`] with the crate's one error type, [`CryptoError`], whose messages never contain a
//! key, a PIN or a password.

pub mod activation;
mod error;
pub mod hsm;
pub mod keys;
pub mod mac;
pub mod password;
pub mod pinblock;
mod secret_file;

pub use activation::{DeviceKeyPair, SealedTmk, seal_tmk};
pub use error::{CryptoError, Result};
pub use hsm::{Hsm, KeyUnderLmk, SoftHsm, WorkingKey, WorkingKeys};
pub use keys::DesKey;
pub use mac::{retail_mac, verify_retail_mac};
pub use password::{hash_password, verify_password};
pub use secret_file::read_key_file;
