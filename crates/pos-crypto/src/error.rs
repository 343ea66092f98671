//! The crate's one error type and its `Result` alias.
//!
//! Messages say which rule was broken so that an operator can act on them, and never contain
//! key material, PIN digits, passwords or card numbers: errors end up in logs.

/// Result of every fallible operation in this crate.
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;

/// Why a key, PIN block, MAC or password operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// A key does not have the length its algorithm needs.
    #[error("{what} must be {expected} bytes, got {actual}")]
    KeyLength {
        /// What the key is, e.g. "double-length TDES key".
        what: &'static str,
        /// Required length in bytes.
        expected: usize,
        /// Length that was given.
        actual: usize,
    },

    /// A key is refused because it is weak.
    #[error("weak key: {0}")]
    WeakKey(&'static str),

    /// Hex input (a key or a wrapped key from configuration) is not valid hex.
    #[error("{0} is not valid hex")]
    InvalidHex(&'static str),

    /// Data for ECB encryption is not made of whole 8-byte DES blocks.
    #[error("data for TDES ECB must be a multiple of 8 bytes, got {0}")]
    NotBlockAligned(usize),

    /// A received key does not match the check value sent with it.
    #[error("check value mismatch: expected {expected}, the decrypted key has {actual}")]
    CheckValueMismatch {
        /// Check value sent with the key (hex).
        expected: String,
        /// Check value of the key as decrypted (hex).
        actual: String,
    },

    /// A PIN or password to encode is not 4 to 12 digits.
    #[error("invalid PIN: {0}")]
    InvalidPin(&'static str),

    /// The PAN given for a format-0 PIN block is not 13 to 19 digits.
    #[error("invalid PAN for the PIN block: {0}")]
    InvalidPan(String),

    /// A PIN block (card PIN or operator password) does not decode: wrong key, wrong PAN or
    /// garbled block. Answer "99 PIN block error".
    #[error("malformed PIN block: {0}")]
    MalformedPinBlock(&'static str),

    /// The peer's X25519 public key gives a non-contributory (all-zero) shared secret.
    #[error("X25519 public key is of low order: the shared secret would be all zeros")]
    WeakSharedSecret,

    /// The sealed TMK does not open.
    #[error("sealed TMK does not open: wrong terminal id, wrong device key or tampered ciphertext")]
    TmkOpenFailed,

    /// A wrapped key does not unwrap under this HSM's local master key.
    #[error("key under LMK does not unwrap: corrupted, or wrapped under another LMK")]
    KeyUnwrapFailed,

    /// A stored password hash is not a PHC string this crate can verify.
    #[error("malformed password hash: {0}")]
    MalformedPasswordHash(String),

    /// A primitive failed where it cannot fail with valid parameters.
    #[error("internal crypto failure: {0}")]
    Internal(&'static str),
}
