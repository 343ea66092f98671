//! The issuer's error type and its mapping to gRPC status codes (in one place).
//!
//! Business outcomes (declines) are never errors: they are answers with a response code.
//! Errors are malformed requests (INVALID_ARGUMENT) and failures of the bank itself
//! (UNAVAILABLE / INTERNAL), which the acquirer treats as "no answer" and reverses.

use tonic::Status;

/// Result alias of the issuer.
pub type Result<T, E = IssuerError> = std::result::Result<T, E>;

/// What can go wrong serving a request or reading the books.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis failed (through the shared store).
    #[error("store: {0}")]
    Store(#[from] pos_store::StoreError),
    /// A record in Redis does not have the shape this code writes.
    #[error("unexpected value under {key}: {detail}")]
    Corrupt { key: String, detail: String },
    /// The books kept changing under a request (retried and gave up).
    #[error("{0}")]
    Contended(&'static str),
    /// Key handling failed (not a bad PIN block, which is an answer "99").
    #[error("crypto: {0}")]
    Crypto(#[from] pos_crypto::CryptoError),
    /// Anything else that is our fault.
    #[error("{0}")]
    Internal(String),
}

impl From<IssuerError> for Status {
    fn from(error: IssuerError) -> Self {
        match &error {
            IssuerError::BadRequest(_) => Status::invalid_argument(error.to_string()),
            IssuerError::Redis(_) | IssuerError::Store(_) => {
                tracing::error!(%error, "books unavailable");
                Status::unavailable("the bank's books are unavailable; retry or reverse")
            }
            IssuerError::Contended(_) => Status::aborted(error.to_string()),
            IssuerError::Corrupt { .. } | IssuerError::Crypto(_) | IssuerError::Internal(_) => {
                tracing::error!(%error, "internal failure");
                Status::internal("internal error; see the issuer log")
            }
        }
    }
}
