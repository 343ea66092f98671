//! The service's error type and its mapping to gRPC status codes (in one place).
//!
//! Declines are answers, not errors (`rules::Decline`). An error here means either that the
//! request could not be handled at all (INVALID_ARGUMENT) or that no decision was recorded
//! (UNAVAILABLE / INTERNAL): the gateway treats those as "no answer" and the terminal reverses.

use tonic::Status;

use crate::model::Malformed;

/// Result alias of the service.
pub type Result<T, E = AuthError> = std::result::Result<T, E>;

/// What can go wrong serving a request.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The request lacks a valid key, type or card.
    #[error(transparent)]
    Malformed(#[from] Malformed),
    /// Redis failed before a decision was made.
    #[error("store: {0}")]
    Store(#[from] pos_store::StoreError),
    /// The broker failed.
    #[error("event bus: {0}")]
    Bus(#[from] pos_events::BusError),
}

impl From<AuthError> for Status {
    fn from(error: AuthError) -> Self {
        match &error {
            AuthError::Malformed(_) => Status::invalid_argument(error.to_string()),
            AuthError::Store(_) | AuthError::Bus(_) => {
                tracing::error!(%error, "dependency failure");
                Status::unavailable(error.to_string())
            }
        }
    }
}
