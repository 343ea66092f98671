//! The projection's error type.

use pos_events::BusError;
use pos_store::StoreError;

/// Result alias of this crate.
pub type Result<T, E = HistoryError> = std::result::Result<T, E>;

/// What can go wrong keeping or reading the histories.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// Redis failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The broker failed.
    #[error("event bus: {0}")]
    Bus(#[from] BusError),
    /// A value in Redis does not have the shape this crate wrote.
    #[error("unexpected value under {key}: {detail}")]
    Corrupt {
        /// The key.
        key: String,
        /// What was wrong.
        detail: String,
    },
    /// The caller's request cannot be served as asked (a page token this crate did not issue,
    /// a batch without its terminal).
    #[error("{0}")]
    Invalid(String),
}

impl From<redis::RedisError> for HistoryError {
    fn from(error: redis::RedisError) -> Self {
        Self::Store(StoreError::Redis(error))
    }
}
