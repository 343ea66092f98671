//! The registry of the terminal gateway as pure aggregates: merchants, terminals and operators.
//!
//! Events are the source of truth (DESIGN.md §3). Each aggregate module has a state, a command
//! enum and two pure functions:
//!
//! - `decide(state, command, &Ctx) -> Result<Vec<Payload>>`: the event payloads to append, in
//!   order; it never mutates anything. On `Err`, the service appends
//!   [`RegistryError::events_to_record`] (failed activation and login attempts, which must be
//!   counted) and then answers with the error; every other error records nothing.
//! - `apply(state, &payload) -> state`: folds one event; payloads of other aggregates are
//!   ignored. Every state has `version`, the number of its events applied, so the service
//!   numbers the next events `version + 1, version + 2, ...`. `replay` folds a whole stream.
//!
//! The modules:
//!
//! - [`merchant`]: onboarding validation ([`merchant::validate_onboarding`]), which keeps
//!   personal data in [`Sensitive`] wrappers until the service has tokenized and encrypted it,
//!   and the pending → approved → active ⇄ suspended lifecycle with dated fee schedules.
//! - [`terminal`]: registration, one-time activation codes, activation (device binding and
//!   TMK), sign-in with replay checks, key version and batch number, sign-out, suspension, MAC
//!   failures, session open/close.
//! - [`operator`]: cashiers and the supervisor of a terminal: login with lock-out after five
//!   wrong passwords, unlock, password change and reset.
//!
//! No I/O and no clock: the time and the acting principal come in [`Ctx`]. Secrets never come
//! here in clear: password hashes, wrapped keys and code hashes are computed by the service,
//! and their `Debug` never prints them.

mod checks;
mod error;
pub mod merchant;
pub mod operator;
mod secret;
pub mod terminal;
mod time;

use std::time::SystemTime;

use pos_proto::v1::Actor;

pub use checks::{
    mask_account, mask_id_number, mask_name, mask_phone, resident_id_check_char, uscc_check_char,
    validate_new_password,
};
pub use error::{ActivationRefusal, FieldError, RegistryError, Result};
pub use pos_proto::v1::event_envelope::Payload;
pub use secret::{PasswordHash, Sensitive};

/// What a decision may know besides the state and the command: the time and who acts.
#[derive(Debug, Clone, PartialEq)]
pub struct Ctx {
    /// The writer's clock when the command is decided (expiry, clock-skew and date checks).
    pub now: SystemTime,
    /// The posctl principal from the bearer credential; `None` for terminal-initiated commands.
    /// Copied into the `actor` field of the events that have one.
    pub actor: Option<Actor>,
}

impl Ctx {
    /// A context at `now` with no actor (a terminal's own request).
    pub fn at(now: SystemTime) -> Self {
        Self { now, actor: None }
    }

    /// A context at `now` acting for a posctl principal.
    pub fn with_actor(now: SystemTime, actor: Actor) -> Self {
        Self {
            now,
            actor: Some(actor),
        }
    }
}

/// The aggregate an event belongs to, for the envelope's `aggregate_type` and `aggregate_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateRef {
    /// "merchant", "terminal", "operator" or "device".
    pub aggregate_type: &'static str,
    /// Merchant id, terminal id, `{terminal_id}:{operator_no}`, or the device serial number.
    pub aggregate_id: String,
}

/// The aggregate of a payload this crate produces (events.proto envelope comments); `None` for
/// payloads of other writers. An `ActivationFailed` without a terminal id belongs to the
/// "device" aggregate of the presented serial number.
pub fn aggregate_of(payload: &Payload) -> Option<AggregateRef> {
    use Payload as P;
    let (aggregate_type, aggregate_id) = match payload {
        P::MerchantOnboarded(e) => (merchant::AGGREGATE_TYPE, e.merchant_id.clone()),
        P::MerchantApproved(e) => (merchant::AGGREGATE_TYPE, e.merchant_id.clone()),
        P::MerchantActivated(e) => (merchant::AGGREGATE_TYPE, e.merchant_id.clone()),
        P::MerchantSuspended(e) => (merchant::AGGREGATE_TYPE, e.merchant_id.clone()),
        P::MerchantFeeScheduleChanged(e) => (merchant::AGGREGATE_TYPE, e.merchant_id.clone()),
        P::ActivationFailed(e) if e.terminal_id.is_empty() => {
            (terminal::DEVICE_AGGREGATE_TYPE, e.serial_number.clone())
        }
        P::TerminalRegistered(_)
        | P::ActivationCodeIssued(_)
        | P::ActivationCodeRedeemed(_)
        | P::ActivationFailed(_)
        | P::TerminalActivated(_)
        | P::TerminalSignedIn(_)
        | P::TerminalSignedOut(_)
        | P::TerminalSuspended(_)
        | P::MacFailureRecorded(_)
        | P::SessionOpened(_)
        | P::SessionClosed(_) => (
            terminal::AGGREGATE_TYPE,
            terminal::event_terminal_id(payload)?,
        ),
        P::OperatorCreated(_)
        | P::OperatorPasswordChanged(_)
        | P::OperatorLoggedIn(_)
        | P::OperatorLoginFailed(_)
        | P::OperatorLocked(_)
        | P::OperatorUnlocked(_)
        | P::OperatorLoggedOut(_) => {
            let (terminal_id, operator_no) = operator::event_key(payload)?;
            (
                operator::AGGREGATE_TYPE,
                format!("{terminal_id}:{operator_no}"),
            )
        }
        _ => return None,
    };
    Some(AggregateRef {
        aggregate_type,
        aggregate_id,
    })
}

#[cfg(test)]
mod tests {
    use pos_proto::v1::{ActivationFailed, MerchantApproved, OperatorLocked, SessionOpened};

    use super::*;

    #[test]
    fn names_the_aggregate_of_each_event() {
        let of = |p: Payload| aggregate_of(&p).map(|a| (a.aggregate_type, a.aggregate_id));
        let approved = Payload::MerchantApproved(MerchantApproved {
            merchant_id: "898310048990001".into(),
            ..Default::default()
        });
        assert_eq!(
            of(approved),
            Some(("merchant", "898310048990001".to_owned()))
        );
        let session = Payload::SessionOpened(SessionOpened {
            terminal_id: "TERM0001".into(),
            ..Default::default()
        });
        assert_eq!(of(session), Some(("terminal", "TERM0001".to_owned())));
        let locked = Payload::OperatorLocked(OperatorLocked {
            terminal_id: "TERM0001".into(),
            operator_no: "01".into(),
            failed_attempts: 5,
        });
        assert_eq!(of(locked), Some(("operator", "TERM0001:01".to_owned())));
        let unknown_code = Payload::ActivationFailed(ActivationFailed {
            serial_number: "SN-42".into(),
            ..Default::default()
        });
        assert_eq!(of(unknown_code), Some(("device", "SN-42".to_owned())));
    }
}
