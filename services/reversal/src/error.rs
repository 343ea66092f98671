//! The service's error type and its mapping to gRPC status codes (in one place).
//!
//! Refusals are answers with a response code, not errors. An error here means the request
//! could not be handled at all (INVALID_ARGUMENT) or that nothing was decided yet
//! (UNAVAILABLE): the caller tries again, and the retry runs under the same ids.

use tonic::Status;

/// Result alias of the service.
pub type Result<T, E = ReversalError> = std::result::Result<T, E>;

/// What can go wrong serving a request.
#[derive(Debug, thiserror::Error)]
pub enum ReversalError {
    /// The request lacks a valid trace, original or amount.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// Another command on the same original is running.
    #[error("another request on the same transaction is in progress: try again")]
    Busy,
    /// The issuer did not answer, or refused to undo.
    #[error("issuer: {0}")]
    Issuer(String),
    /// Redis failed.
    #[error("store: {0}")]
    Store(#[from] pos_store::StoreError),
    /// The broker failed.
    #[error("event bus: {0}")]
    Bus(#[from] pos_events::BusError),
    /// A stored value could not be read back.
    #[error("internal: {0}")]
    Internal(String),
}

impl ReversalError {
    /// The response code a terminal gets for this error: "send it again" codes.
    pub fn response_code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "30",
            Self::Issuer(_) => "91",
            Self::Busy | Self::Store(_) | Self::Bus(_) | Self::Internal(_) => "96",
        }
    }
}

impl From<ReversalError> for Status {
    fn from(error: ReversalError) -> Self {
        match &error {
            ReversalError::Malformed(_) => Status::invalid_argument(error.to_string()),
            ReversalError::Busy => Status::aborted(error.to_string()),
            ReversalError::Issuer(_)
            | ReversalError::Store(_)
            | ReversalError::Bus(_)
            | ReversalError::Internal(_) => {
                tracing::warn!(%error, "request not decided");
                Status::unavailable(error.to_string())
            }
        }
    }
}
