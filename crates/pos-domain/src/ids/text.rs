//! Fixed-format text identifiers, one newtype each, sharing one definition macro.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, Result};
use crate::fields::{Chars, check_exact};

/// Defines a validated string newtype with `parse`, `as_str`, `Display`, `FromStr` and serde.
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $len:literal, $chars:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("Parses a ", $field, " (exactly ", $len, " characters).")]
            pub fn parse(input: &str) -> Result<Self> {
                check_exact($field, input, $len, $chars)?;
                Ok(Self(input.to_owned()))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = DomainError;

            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = DomainError;

            fn try_from(value: String) -> Result<Self> {
                check_exact($field, &value, $len, $chars)?;
                Ok(Self(value))
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}

text_id!(
    /// A merchant number as CUP assigns it: 15 digits.
    MerchantId, "merchant id", 15, Chars::Digits
);
text_id!(
    /// A terminal number: exactly 8 uppercase ASCII letters or digits.
    TerminalId, "terminal id", 8, Chars::UpperAlnum
);
text_id!(
    /// Retrieval reference number (DE37): 12 ASCII letters or digits, set by the host.
    Rrn, "retrieval reference number", 12, Chars::Alnum
);
text_id!(
    /// Authorization code (DE38) that the issuer returns with an approval: 6 letters or digits.
    ApprovalCode, "approval code", 6, Chars::Alnum
);
text_id!(
    /// Operator (cashier) number on a terminal: 2 digits; "00" is the supervisor.
    OperatorNo, "operator number", 2, Chars::Digits
);
text_id!(
    /// Merchant category code (ISO 18245): 4 digits.
    Mcc, "merchant category code", 4, Chars::Digits
);

impl OperatorNo {
    /// Whether this is the supervisor ("00"), who may do what cashiers may not (e.g. void).
    pub fn is_supervisor(&self) -> bool {
        self.0 == "00"
    }
}

#[cfg(test)]
mod tests {
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as DeError, StringDeserializer};

    use super::*;

    fn deserialize_terminal(input: &str) -> std::result::Result<TerminalId, DeError> {
        let deserializer: StringDeserializer<DeError> = input.to_owned().into_deserializer();
        TerminalId::deserialize(deserializer)
    }

    #[test]
    fn accepts_well_formed_ids() {
        assert_eq!(
            MerchantId::parse("898310048990001").unwrap().as_str(),
            "898310048990001"
        );
        assert_eq!(
            TerminalId::parse("TERM0001").unwrap().to_string(),
            "TERM0001"
        );
        assert!(Rrn::parse("123456789012").is_ok());
        assert!(ApprovalCode::parse("A1b2C3").is_ok());
        assert_eq!("5411".parse::<Mcc>().unwrap().as_str(), "5411");
    }

    #[test]
    fn refuses_wrong_lengths_with_the_length_found() {
        let err = MerchantId::parse("12345678901234").unwrap_err();
        assert_eq!(
            err.to_string(),
            "merchant id must be exactly 15 digits, got 14"
        );
        let err = TerminalId::parse("TERM001").unwrap_err();
        assert_eq!(
            err.to_string(),
            "terminal id must be exactly 8 uppercase letters or digits, got 7"
        );
        assert!(Rrn::parse("12345678901").is_err());
        assert!(ApprovalCode::parse("1234567").is_err());
        assert!(OperatorNo::parse("1").is_err());
        assert!(Mcc::parse("54111").is_err());
    }

    #[test]
    fn refuses_wrong_characters_with_their_position() {
        let err = TerminalId::parse("term0001").unwrap_err();
        assert_eq!(
            err.to_string(),
            "terminal id must contain only uppercase letters or digits, but character 1 is not"
        );
        assert!(MerchantId::parse("89831004899000A").is_err());
        assert!(ApprovalCode::parse("12-456").is_err());
        assert!(TerminalId::parse("TERMÉ001").is_err());
    }

    #[test]
    fn deserialization_validates_like_parse() {
        assert_eq!(
            deserialize_terminal("TERM0001").unwrap().as_str(),
            "TERM0001"
        );
        assert!(deserialize_terminal("TERM01").is_err());
        assert!(TerminalId::try_from("bad".to_owned()).is_err());
        assert_eq!(
            String::from(TerminalId::try_from("TERM0001".to_owned()).unwrap()),
            "TERM0001"
        );
    }

    #[test]
    fn operator_00_is_the_supervisor() {
        assert!(OperatorNo::parse("00").unwrap().is_supervisor());
        assert!(!OperatorNo::parse("01").unwrap().is_supervisor());
    }
}
