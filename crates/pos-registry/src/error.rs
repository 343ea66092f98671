//! The crate's one error type and its `Result` alias.
//!
//! Messages are written for the operator or cashier who gets them: they name the rule that was
//! broken and what was found, and never echo an ID number, account number, phone number,
//! password or activation code. Two kinds of refusal carry events: a failed activation and a
//! wrong password must be counted, so the service appends [`RegistryError::events_to_record`]
//! before answering.

use std::fmt;

use pos_proto::v1::ActivationFailureReason;
use pos_proto::v1::event_envelope::Payload;

use crate::merchant::MerchantStatus;
use crate::terminal::TerminalStatus;

/// Result of every fallible operation in this crate.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// One offending input field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path in the request, e.g. "legal_name" or "fee_schedule.debit_rate".
    pub field: String,
    /// What is wrong, in plain English, e.g. "must be exactly 4 digits, got 3".
    pub message: String,
}

impl FieldError {
    /// An error on `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// "field: message", the form INVALID_ARGUMENT lists them in (management.proto).
impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// Why a command was refused. Suggested gRPC codes are in each variant's doc.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegistryError {
    /// The input is malformed; every offending field is listed (INVALID_ARGUMENT).
    #[error("{}", list(.0))]
    Invalid(Vec<FieldError>),

    /// The merchant, terminal or operator does not exist (NOT_FOUND; operator login: "25").
    #[error("{what} {id} not found")]
    NotFound {
        /// "merchant", "terminal" or "operator".
        what: &'static str,
        /// The id that was looked up.
        id: String,
    },

    /// The aggregate's state does not allow the command (FAILED_PRECONDITION), or it exists
    /// already (onboarding or registering an existing id: ALREADY_EXISTS).
    #[error("{0}")]
    Conflict(String),

    /// Sign-in of a terminal that is not active ("97").
    #[error("terminal {terminal_id} is {status}, not active: sign-in refused")]
    TerminalNotActive {
        /// The terminal.
        terminal_id: String,
        /// Its status.
        status: TerminalStatus,
    },

    /// Sign-in of a terminal whose merchant is not active ("03").
    #[error("merchant {merchant_id} is {status}, not active: its terminals may not sign in")]
    MerchantNotActive {
        /// The merchant.
        merchant_id: String,
        /// Its status.
        status: MerchantStatus,
    },

    /// A sign-in from a device other than the one bound at activation ("97").
    #[error("this device's serial number is not the one bound to terminal {terminal_id}")]
    DeviceMismatch {
        /// The terminal.
        terminal_id: String,
    },

    /// A sign-in that repeats an earlier one or whose clock is off ("94").
    #[error("sign-in refused as a replay: {0}")]
    Replay(String),

    /// An activation code could not be redeemed. `record` holds the `ActivationFailed` event
    /// to append (empty when there is no code to count against). See [`ActivationRefusal`]
    /// for the gRPC code of each reason.
    #[error("activation refused: {reason}")]
    ActivationRefused {
        /// Why.
        reason: ActivationRefusal,
        /// Events to append before answering.
        record: Vec<Payload>,
    },

    /// A wrong operator password ("55"); `record` holds the `OperatorLoginFailed` event.
    #[error(
        "wrong password for operator {operator}: {remaining} attempt(s) left before it is locked"
    )]
    WrongPassword {
        /// `{terminal_id}:{operator_no}`.
        operator: String,
        /// Consecutive wrong passwords, this one included.
        failed_attempts: u32,
        /// Wrong passwords still allowed.
        remaining: u32,
        /// Events to append before answering.
        record: Vec<Payload>,
    },

    /// The operator is locked ("75"). `record` is empty when it was locked already (nothing
    /// changes, even with the right password); it holds `OperatorLoginFailed` and
    /// `OperatorLocked` when this wrong password locked it.
    #[error(
        "operator {operator} is locked after {failed_attempts} wrong passwords: the supervisor (00) or posctl must unlock it"
    )]
    OperatorLocked {
        /// `{terminal_id}:{operator_no}`.
        operator: String,
        /// Consecutive wrong passwords that locked it.
        failed_attempts: u32,
        /// Events to append before answering.
        record: Vec<Payload>,
    },

    /// The acting operator may not do this (PERMISSION_DENIED).
    #[error("not allowed: {0}")]
    Forbidden(String),
}

impl RegistryError {
    /// The events the service must append before answering with this error; empty for every
    /// refusal that changes nothing.
    pub fn events_to_record(&self) -> &[Payload] {
        match self {
            Self::ActivationRefused { record, .. }
            | Self::WrongPassword { record, .. }
            | Self::OperatorLocked { record, .. } => record,
            _ => &[],
        }
    }

    /// A not-found error.
    pub fn not_found(what: &'static str, id: impl fmt::Display) -> Self {
        Self::NotFound {
            what,
            id: id.to_string(),
        }
    }

    /// Shorthand for an [`RegistryError::Invalid`] with one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }
}

/// Collects every field problem of a request, so that all of them are reported together.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<FieldError>);

impl Problems {
    /// Records a problem with `field`.
    pub(crate) fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// The value of a check, or `None` after recording its problem with `field`.
    pub(crate) fn check<T>(
        &mut self,
        field: impl Into<String>,
        result: std::result::Result<T, String>,
    ) -> Option<T> {
        result.map_err(|message| self.add(field, message)).ok()
    }

    /// How many problems were recorded.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// `Ok` when nothing was recorded, otherwise every problem as one error.
    pub(crate) fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(RegistryError::Invalid(self.0))
        }
    }
}

fn list(errors: &[FieldError]) -> String {
    let items: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!("invalid request: {}", items.join("; "))
}

/// Why an activation code was not redeemed. The gateway answers (terminal.proto `Activate`):
/// `UnknownCode` and `WrongCode` NOT_FOUND; `Expired`, `AlreadyUsed`, `SerialMismatch` and
/// `NotAllowed` FAILED_PRECONDITION; `TooManyAttempts` RESOURCE_EXHAUSTED.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivationRefusal {
    /// The terminal has no activation code.
    #[error("unknown activation code")]
    UnknownCode,
    /// The code is not the terminal's current code; the attempt was counted.
    #[error("wrong activation code ({remaining} attempt(s) left)")]
    WrongCode {
        /// Wrong attempts still allowed before the code is blocked.
        remaining: u32,
    },
    /// The code's validity ended.
    #[error("the activation code has expired: ask for a new one")]
    Expired,
    /// The code was redeemed already (single use).
    #[error("the activation code was already used")]
    AlreadyUsed,
    /// The device is not the one registered for the terminal.
    #[error("this device's serial number is not the one registered for the terminal")]
    SerialMismatch,
    /// Too many wrong attempts: the code is blocked.
    #[error("too many wrong attempts: the activation code is blocked, ask for a new one")]
    TooManyAttempts,
    /// The terminal or its merchant may not be activated now.
    #[error("{0}")]
    NotAllowed(String),
}

impl ActivationRefusal {
    /// The reason recorded in `ActivationFailed` (a wrong code is an unknown code there).
    pub fn proto_reason(&self) -> ActivationFailureReason {
        match self {
            Self::UnknownCode | Self::WrongCode { .. } => ActivationFailureReason::UnknownCode,
            Self::Expired => ActivationFailureReason::Expired,
            Self::AlreadyUsed => ActivationFailureReason::AlreadyUsed,
            Self::SerialMismatch => ActivationFailureReason::SerialMismatch,
            Self::TooManyAttempts => ActivationFailureReason::TooManyAttempts,
            Self::NotAllowed(_) => ActivationFailureReason::NotAllowed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_lists_every_field() {
        let err = RegistryError::Invalid(vec![
            FieldError::new("mcc", "must be 4 digits"),
            FieldError::new("agreement.accepted", "must be true"),
        ]);
        assert_eq!(
            err.to_string(),
            "invalid request: mcc: must be 4 digits; agreement.accepted: must be true"
        );
        assert!(err.events_to_record().is_empty());
    }

    #[test]
    fn not_found_names_what_and_which() {
        let err = RegistryError::not_found("merchant", "898310048990001");
        assert_eq!(err.to_string(), "merchant 898310048990001 not found");
    }
}
