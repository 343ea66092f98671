//! The service's error type and its mapping to gRPC status codes (in one place).

use tonic::Status;

/// Result alias of the service.
pub type Result<T, E = SettlementError> = std::result::Result<T, E>;

/// What can go wrong serving a request.
#[derive(Debug, thiserror::Error)]
pub enum SettlementError {
    /// The request lacks a valid terminal or batch.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// Another call on the same batch is running.
    #[error("another settlement call on the same batch is in progress: try again")]
    Busy,
    /// The projection did not reach the batch's cut in time.
    #[error("the batch's transactions are still being applied: try again")]
    Lagging,
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

impl From<SettlementError> for Status {
    fn from(error: SettlementError) -> Self {
        match &error {
            SettlementError::Malformed(_) => Status::invalid_argument(error.to_string()),
            SettlementError::Busy => Status::aborted(error.to_string()),
            SettlementError::Lagging
            | SettlementError::Store(_)
            | SettlementError::Bus(_)
            | SettlementError::Internal(_) => {
                tracing::warn!(%error, "settlement call not done");
                Status::unavailable(error.to_string())
            }
        }
    }
}
