//! The platform's own transaction identifier: a UUIDv7, so ids sort by creation time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{DomainError, Result};

const FIELD: &str = "transaction id";

/// Identifies one transaction across every service and event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TransactionId(Uuid);

impl TransactionId {
    /// A fresh id from the current time.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Wraps a UUID, refusing any version but 7.
    pub fn from_uuid(uuid: Uuid) -> Result<Self> {
        match uuid.get_version_num() {
            7 => Ok(Self(uuid)),
            other => {
                let problem = format!("must be a UUID version 7, got version {other}");
                Err(DomainError::field(FIELD, problem))
            }
        }
    }

    /// Parses the hyphenated UUID text form.
    pub fn parse(input: &str) -> Result<Self> {
        let uuid = Uuid::parse_str(input)
            .map_err(|e| DomainError::field(FIELD, format!("is not a UUID: {e}")))?;
        Self::from_uuid(uuid)
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for TransactionId {
    fn default() -> Self {
        Self::new()
    }
}

/// Lowercase hyphenated form.
impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for TransactionId {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<String> for TransactionId {
    type Error = DomainError;

    fn try_from(value: String) -> Result<Self> {
        Self::parse(&value)
    }
}

impl From<TransactionId> for String {
    fn from(value: TransactionId) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_v7_and_round_trip_through_text() {
        let id = TransactionId::new();
        assert_eq!(id.as_uuid().get_version_num(), 7);
        assert_eq!(TransactionId::parse(&id.to_string()), Ok(id));
        assert_eq!(TransactionId::try_from(String::from(id)), Ok(id));
    }

    #[test]
    fn later_ids_sort_after_earlier_ones() {
        let first = TransactionId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(TransactionId::new() > first);
    }

    #[test]
    fn refuses_other_versions_and_garbage() {
        let v4 = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        let err = TransactionId::parse(v4).unwrap_err();
        assert_eq!(
            err.to_string(),
            "transaction id must be a UUID version 7, got version 4"
        );
        assert!(TransactionId::parse("not-a-uuid").is_err());
    }
}
