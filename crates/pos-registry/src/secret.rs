//! Values that must not leak through `Debug`: personal data in clear and password hashes.

use std::fmt;

use crate::error::{RegistryError, Result};

/// A clear personal value (ID number, account number, phone, name) between validation and
/// tokenization. `Debug` prints `<redacted>`; there is no `Display`; [`Sensitive::expose`] is
/// the only way to the value, for the service to tokenize or encrypt it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive<T>(T);

impl<T> Sensitive<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(value)
    }

    /// The clear value: only to compute its token or ciphertext, never to log or store it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An operator password as an Argon2id PHC string, the only form a password takes in this
/// crate and in events (events.proto `OperatorPasswordChanged`). `Debug` prints
/// `<argon2 hash>`.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Accepts an Argon2id PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`); anything
    /// else, a clear password above all, is refused.
    pub fn parse(phc: impl Into<String>) -> Result<Self> {
        let phc = phc.into();
        let parts: Vec<&str> = phc.split('$').collect();
        let well_formed = parts.len() == 6
            && parts[0].is_empty()
            && parts[1] == "argon2id"
            && parts[2].starts_with("v=")
            && parts[3].starts_with("m=")
            && parts[4..].iter().all(|p| !p.is_empty());
        if well_formed {
            Ok(Self(phc))
        } else {
            Err(RegistryError::invalid(
                "password_hash",
                "must be an Argon2id PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash): hash the password before building the command",
            ))
        }
    }

    /// Wraps a hash read back from an event (written by [`PasswordHash::parse`]'s callers).
    pub(crate) fn from_event(phc: &str) -> Self {
        Self(phc.to_owned())
    }

    /// The PHC string, to verify a presented password against it.
    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<argon2 hash>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";

    #[test]
    fn accepts_argon2id_and_refuses_clear_passwords() {
        assert_eq!(PasswordHash::parse(HASH).unwrap().as_phc(), HASH);
        assert!(PasswordHash::parse("0000").is_err());
        assert!(PasswordHash::parse("$argon2i$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA").is_err());
        assert!(PasswordHash::parse("$argon2id$v=19$m=1,t=1,p=1$$").is_err());
    }

    #[test]
    fn debug_never_shows_the_value() {
        let hash = PasswordHash::parse(HASH).unwrap();
        assert_eq!(format!("{hash:?}"), "<argon2 hash>");
        let id = Sensitive::new("11010519491231002X".to_owned());
        assert_eq!(format!("{id:?}"), "<redacted>");
    }
}
