//! The store's error type.

/// Result alias of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What can go wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Connection, protocol or command failure.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A value in Redis does not have the shape this code wrote.
    #[error("unexpected value under {key}: {detail}")]
    Corrupt { key: String, detail: String },
}
