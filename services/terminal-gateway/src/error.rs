//! The gateway's error type and its mapping to gRPC status codes (in one place).

use tonic::Status;

/// Result alias of the gateway.
pub type Result<T, E = GatewayError> = std::result::Result<T, E>;

/// What can go wrong serving a request.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A domain rule refused the command (validation, state, replay, ...).
    #[error(transparent)]
    Registry(#[from] pos_registry::RegistryError),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The aggregate is locked by a concurrent command.
    #[error("{0}")]
    Busy(String),
    /// Redis failed.
    #[error("store: {0}")]
    Store(#[from] pos_store::StoreError),
    /// The broker failed: the change was not recorded.
    #[error("event bus: {0}")]
    Bus(#[from] pos_events::BusError),
    /// Key handling failed.
    #[error("hsm: {0}")]
    Crypto(#[from] pos_crypto::CryptoError),
    /// The call exists in the contract but this version does not serve it yet.
    #[error("{0}")]
    Unsupported(&'static str),
    /// Anything else that is our fault.
    #[error("{0}")]
    Internal(String),
    /// The outcome is unknown and could not be reversed: the terminal gets no answer, so that
    /// its own reversal undoes whatever happened.
    #[error("{0}")]
    Unanswered(String),
}

impl From<GatewayError> for Status {
    fn from(error: GatewayError) -> Self {
        use pos_registry::{ActivationRefusal as A, RegistryError as R};
        match &error {
            GatewayError::Registry(R::ActivationRefused { reason, .. }) => match reason {
                A::UnknownCode | A::WrongCode { .. } => Status::not_found(reason.to_string()),
                A::TooManyAttempts => Status::resource_exhausted(reason.to_string()),
                _ => Status::failed_precondition(reason.to_string()),
            },
            GatewayError::Registry(R::Forbidden(_)) => Status::permission_denied(error.to_string()),
            GatewayError::Registry(R::Invalid(_)) | GatewayError::BadRequest(_) => {
                Status::invalid_argument(error.to_string())
            }
            GatewayError::Registry(R::NotFound { .. }) => Status::not_found(error.to_string()),
            GatewayError::Registry(_) => Status::failed_precondition(error.to_string()),
            GatewayError::Busy(_) => Status::aborted(error.to_string()),
            GatewayError::Unsupported(_) => Status::unimplemented(error.to_string()),
            GatewayError::Store(_) | GatewayError::Bus(_) => {
                tracing::error!(%error, "dependency failure");
                Status::unavailable(error.to_string())
            }
            GatewayError::Crypto(_) | GatewayError::Internal(_) | GatewayError::Unanswered(_) => {
                tracing::error!(%error, "internal failure");
                Status::internal("internal error; see the gateway log")
            }
        }
    }
}
