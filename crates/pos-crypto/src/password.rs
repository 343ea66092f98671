//! Operator password hashing with argon2id, stored as a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
//!
//! Parameters: 19 MiB of memory, 2 passes, 1 lane: OWASP's baseline for argon2id, about
//! 20-40 ms on one core of a small server. Logins are rare (one per shift per terminal), so a
//! 2-core gateway can afford it, and one lane keeps a login from taking both cores. Verifying
//! uses the parameters recorded in the stored hash, so they can be raised later without
//! invalidating existing hashes. Operator passwords are short digit strings, so the hash only
//! slows down an offline attack; the lockout after five wrong passwords is what protects them
//! online.

use argon2::password_hash::{self, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

use crate::{CryptoError, Result};

/// Memory cost in KiB (19 MiB).
const MEMORY_KIB: u32 = 19 * 1024;
/// Number of passes over the memory.
const ITERATIONS: u32 = 2;
/// Degree of parallelism.
const LANES: u32 = 1;
/// Salt length in bytes.
const SALT_LEN: usize = 16;

/// The argon2id PHC string of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    let salt =
        SaltString::encode_b64(&salt).map_err(|_| CryptoError::Internal("argon2 salt encoding"))?;
    let hash = hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|_| CryptoError::Internal("argon2 hashing failed"))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `phc`; an error only when `phc` is malformed.
pub fn verify_password(password: &str, phc: &str) -> Result<bool> {
    let hash = PasswordHash::new(phc).map_err(malformed)?;
    match hasher()?.verify_password(password.as_bytes(), &hash) {
        Ok(()) => Ok(true),
        Err(password_hash::Error::Password) => Ok(false),
        Err(err) => Err(malformed(err)),
    }
}

/// Argon2id with this module's parameters.
fn hasher() -> Result<Argon2<'static>> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None)
        .map_err(|_| CryptoError::Internal("argon2 parameters"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// A stored hash that cannot be verified.
fn malformed(err: password_hash::Error) -> CryptoError {
    CryptoError::MalformedPasswordHash(err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_right_password_verifies_and_a_wrong_one_does_not() {
        let phc = hash_password("0000").unwrap();
        assert!(verify_password("0000", &phc).unwrap());
        assert!(!verify_password("0001", &phc).unwrap());
        assert!(!verify_password("", &phc).unwrap());
    }

    #[test]
    fn hashes_are_argon2id_with_the_documented_parameters_and_salted() {
        let a = hash_password("123456").unwrap();
        let b = hash_password("123456").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(!a.contains("123456"));
    }

    // The argon2 reference implementation's well-known example ("password", salt "somesalt",
    // m=65536, t=2, p=1), hash confirmed with Python `cryptography` 48 (`Argon2id(...)
    // .derive(b"password")`): verification follows the parameters stored in the hash.
    #[test]
    fn verifies_a_hash_made_with_other_parameters() {
        let phc = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        assert!(verify_password("password", phc).unwrap());
        assert!(!verify_password("Password", phc).unwrap());
    }

    #[test]
    fn a_malformed_hash_is_an_error_not_a_wrong_password() {
        for phc in [
            "",
            "not a hash",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$md5$abc",
        ] {
            let err = verify_password("0000", phc).unwrap_err();
            assert!(
                matches!(err, CryptoError::MalformedPasswordHash(_)),
                "{phc}: {err:?}"
            );
        }
    }
}
