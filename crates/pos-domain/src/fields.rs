//! Shared checks for fixed-format text fields (identifiers, codes, dates), so that every
//! field reports a wrong length or a wrong character in the same words.

use crate::error::{DomainError, Result};

/// Which characters a field accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Chars {
    /// ASCII digits 0-9.
    Digits,
    /// ASCII uppercase letters and digits.
    UpperAlnum,
    /// ASCII letters (either case) and digits.
    Alnum,
}

impl Chars {
    fn accepts(self, c: char) -> bool {
        match self {
            Self::Digits => c.is_ascii_digit(),
            Self::UpperAlnum => c.is_ascii_uppercase() || c.is_ascii_digit(),
            Self::Alnum => c.is_ascii_alphanumeric(),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Digits => "digits",
            Self::UpperAlnum => "uppercase letters or digits",
            Self::Alnum => "letters or digits",
        }
    }
}

/// Checks that `input` has between `min` and `max` characters, all of the class `chars`.
pub(crate) fn check(
    field: &'static str,
    input: &str,
    (min, max): (usize, usize),
    chars: Chars,
) -> Result<()> {
    let count = input.chars().count();
    if count < min || count > max {
        let wanted = if min == max {
            format!("exactly {min}")
        } else {
            format!("{min} to {max}")
        };
        let problem = format!("must be {wanted} {}, got {count}", chars.describe());
        return Err(DomainError::field(field, problem));
    }
    match input.chars().position(|c| !chars.accepts(c)) {
        Some(index) => {
            let kind = chars.describe();
            let problem = format!(
                "must contain only {kind}, but character {} is not",
                index + 1
            );
            Err(DomainError::field(field, problem))
        }
        None => Ok(()),
    }
}

/// Checks that `input` is exactly `len` characters of the class `chars`.
pub(crate) fn check_exact(
    field: &'static str,
    input: &str,
    len: usize,
    chars: Chars,
) -> Result<()> {
    check(field, input, (len, len), chars)
}
