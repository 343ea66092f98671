//! The operator aggregate: a cashier or the supervisor of one terminal (events on
//! `pos.terminals.v1`, aggregate "operator", id = `{terminal_id}:{operator_no}`).
//!
//! Every activated terminal has operator "00" (supervisor) and "01" (cashier), created with
//! the default password "0000" that must be changed at first login ([`initial_operators`]).
//! Passwords come here only as Argon2id hashes; the gateway verifies a presented password
//! and passes the verdict (`password_ok`).
//!
//! Five consecutive wrong passwords (at login, or as the current password of a password
//! change) lock the operator. A locked operator is refused even with the right password, and
//! that refusal records nothing. The supervisor unlocks cashiers on the terminal; posctl
//! unlocks anyone, the supervisor included, and a password reset unlocks too.

#[cfg(test)]
mod tests;

use std::fmt;

use pos_domain::{OperatorNo, TerminalId};
use pos_proto::v1::{
    OperatorCreated, OperatorLocked, OperatorLoggedIn, OperatorLoggedOut, OperatorLoginFailed,
    OperatorLoginFailure, OperatorPasswordChanged, OperatorRole, OperatorUnlocked,
};

use crate::error::{RegistryError, Result};
use crate::secret::PasswordHash;
use crate::{Ctx, Payload};

pub use crate::checks::DEFAULT_PASSWORD;

/// The envelope's `aggregate_type` of operator events.
pub const AGGREGATE_TYPE: &str = "operator";
/// Consecutive wrong passwords that lock an operator.
pub const MAX_FAILED_ATTEMPTS: u32 = 5;
/// Operator number of the supervisor.
pub const SUPERVISOR_NO: &str = "00";
/// Operator number of the cashier created at activation.
pub const FIRST_CASHIER_NO: &str = "01";

/// Identifies an operator: its terminal and its two-digit number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OperatorKey {
    /// The terminal.
    pub terminal_id: TerminalId,
    /// "00" supervisor, "01".."99" cashiers.
    pub operator_no: OperatorNo,
}

impl OperatorKey {
    /// The key of `operator_no` on `terminal_id`.
    pub fn new(terminal_id: TerminalId, operator_no: OperatorNo) -> Self {
        Self {
            terminal_id,
            operator_no,
        }
    }

    /// The aggregate id, `{terminal_id}:{operator_no}`.
    pub fn aggregate_id(&self) -> String {
        self.to_string()
    }
}

/// `{terminal_id}:{operator_no}`, e.g. "TERM0001:01".
impl fmt::Display for OperatorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.terminal_id, self.operator_no)
    }
}

/// Cashier or supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// 主管, operator "00": unlocks cashiers, authorizes voids and refunds.
    Supervisor,
    /// 收银员, operators "01".."99".
    Cashier,
}

impl Role {
    /// The role an operator number has: "00" is the supervisor, every other a cashier.
    pub fn of(operator_no: &OperatorNo) -> Self {
        if operator_no.is_supervisor() {
            Self::Supervisor
        } else {
            Self::Cashier
        }
    }

    /// The contract's enum.
    pub fn to_proto(self) -> OperatorRole {
        match self {
            Self::Supervisor => OperatorRole::Supervisor,
            Self::Cashier => OperatorRole::Cashier,
        }
    }
}

/// An operator as its events built it. `Debug` shows the hash as `<argon2 hash>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorState {
    /// Terminal and number.
    pub key: OperatorKey,
    /// Cashier or supervisor.
    pub role: Role,
    /// Hash of the current password.
    pub password_hash: PasswordHash,
    /// True while the password is a default one that must be changed at the next login.
    pub must_change_password: bool,
    /// Consecutive wrong passwords since the last success.
    pub failed_attempts: u32,
    /// True after [`MAX_FAILED_ATTEMPTS`] wrong passwords, until unlocked.
    pub locked: bool,
    /// Terminal session of the last login; `None` after logout or lock. The gateway treats
    /// the operator as logged in only while this is the terminal's current session.
    pub session_id: Option<String>,
    /// Number of events applied; the next event is number `version + 1`.
    pub version: u64,
}

impl OperatorState {
    /// Wrong passwords still allowed before the operator is locked.
    pub fn remaining_attempts(&self) -> u32 {
        if self.locked {
            0
        } else {
            MAX_FAILED_ATTEMPTS.saturating_sub(self.failed_attempts)
        }
    }

    /// Whether the operator is logged in within the terminal session `session_id`.
    pub fn is_logged_in(&self, session_id: &str) -> bool {
        self.session_id.as_deref() == Some(session_id)
    }
}

/// Who unlocks an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnlockedBy {
    /// An operator on the terminal, authenticated by the gateway; must be the supervisor "00"
    /// and may not unlock itself.
    Operator(OperatorNo),
    /// A posctl principal (`Ctx::actor`) through TerminalManagement.UnlockOperator.
    Console,
}

/// What can be asked of an operator.
#[derive(Debug, Clone, PartialEq)]
pub enum OperatorCommand {
    /// Create it (at activation, or by posctl).
    Create {
        /// Terminal and number.
        key: OperatorKey,
        /// Must be `Role::of(&key.operator_no)`.
        role: Role,
        /// Hash of the initial password.
        password_hash: PasswordHash,
        /// True for a default password.
        must_change_password: bool,
    },
    /// A login with a password the gateway verified.
    Login {
        /// Terminal and number.
        key: OperatorKey,
        /// The terminal session.
        session_id: String,
        /// Whether the presented password matched `password_hash`.
        password_ok: bool,
    },
    /// A logout.
    Logout {
        /// Terminal and number.
        key: OperatorKey,
        /// The session it logged in with.
        session_id: String,
    },
    /// A password change on the terminal; the gateway verified the current password and
    /// checked the new one with [`validate_new_password`](crate::validate_new_password).
    ChangePassword {
        /// Terminal and number.
        key: OperatorKey,
        /// The terminal session.
        session_id: String,
        /// Whether the presented current password matched.
        current_password_ok: bool,
        /// Hash of the new password.
        new_password_hash: PasswordHash,
    },
    /// posctl resets the password to the default (must be changed; also unlocks).
    ResetPassword {
        /// Terminal and number.
        key: OperatorKey,
        /// Hash of the default password.
        password_hash: PasswordHash,
    },
    /// Unlock a locked operator.
    Unlock {
        /// Terminal and number.
        key: OperatorKey,
        /// The supervisor on the terminal, or posctl.
        by: UnlockedBy,
        /// Why; required from posctl.
        reason: String,
    },
}

impl OperatorCommand {
    /// The operator the command is for.
    pub fn key(&self) -> &OperatorKey {
        match self {
            Self::Create { key, .. }
            | Self::Login { key, .. }
            | Self::Logout { key, .. }
            | Self::ChangePassword { key, .. }
            | Self::ResetPassword { key, .. }
            | Self::Unlock { key, .. } => key,
        }
    }
}

/// The commands that create operator "00" (supervisor) and "01" (cashier) of a newly
/// activated terminal, each with its own hash of [`DEFAULT_PASSWORD`] (own salt), to be
/// changed at first login. Skip an operator that exists already (a re-activated terminal).
pub fn initial_operators(
    terminal_id: &TerminalId,
    supervisor_hash: PasswordHash,
    cashier_hash: PasswordHash,
) -> Result<[OperatorCommand; 2]> {
    let create = |number: &str, password_hash: PasswordHash| -> Result<OperatorCommand> {
        let operator_no = OperatorNo::parse(number)
            .map_err(|e| RegistryError::invalid("operator_no", e.to_string()))?;
        Ok(OperatorCommand::Create {
            role: Role::of(&operator_no),
            key: OperatorKey::new(terminal_id.clone(), operator_no),
            password_hash,
            must_change_password: true,
        })
    };
    Ok([
        create(SUPERVISOR_NO, supervisor_hash)?,
        create(FIRST_CASHIER_NO, cashier_hash)?,
    ])
}

/// Decides which events a command produces on the operator `state` (`None`: no such
/// operator). A wrong password returns [`RegistryError::WrongPassword`] or, when it locks the
/// operator, [`RegistryError::OperatorLocked`], each with the events to record.
pub fn decide(
    state: Option<&OperatorState>,
    command: OperatorCommand,
    ctx: &Ctx,
) -> Result<Vec<Payload>> {
    if let OperatorCommand::Create {
        key,
        role,
        password_hash,
        must_change_password,
    } = command
    {
        return create(state, key, role, password_hash, must_change_password, ctx);
    }
    let operator = existing(state, command.key())?;
    let (terminal_id, operator_no) = ids(&operator.key);
    match command {
        OperatorCommand::Create { .. } => Err(RegistryError::Conflict(format!(
            "operator {} already exists",
            operator.key
        ))),
        OperatorCommand::Login {
            session_id,
            password_ok,
            ..
        } => {
            refuse_if_locked(operator)?;
            if !password_ok {
                return Err(wrong_password(operator, session_id));
            }
            Ok(vec![Payload::OperatorLoggedIn(OperatorLoggedIn {
                terminal_id,
                operator_no,
                session_id,
            })])
        }
        OperatorCommand::Logout { session_id, .. } => {
            if !operator.is_logged_in(&session_id) {
                return Err(RegistryError::Conflict(format!(
                    "operator {} is not logged in in session {session_id}",
                    operator.key
                )));
            }
            Ok(vec![Payload::OperatorLoggedOut(OperatorLoggedOut {
                terminal_id,
                operator_no,
                session_id,
            })])
        }
        OperatorCommand::ChangePassword {
            session_id,
            current_password_ok,
            new_password_hash,
            ..
        } => {
            refuse_if_locked(operator)?;
            if !current_password_ok {
                return Err(wrong_password(operator, session_id));
            }
            Ok(vec![password_changed(
                operator,
                new_password_hash,
                false,
                None,
                session_id,
            )])
        }
        OperatorCommand::ResetPassword { password_hash, .. } => Ok(vec![password_changed(
            operator,
            password_hash,
            true,
            ctx.actor.clone(),
            String::new(),
        )]),
        OperatorCommand::Unlock { by, reason, .. } => unlock(operator, by, reason, ctx),
    }
}

fn create(
    state: Option<&OperatorState>,
    key: OperatorKey,
    role: Role,
    password_hash: PasswordHash,
    must_change_password: bool,
    ctx: &Ctx,
) -> Result<Vec<Payload>> {
    if state.is_some() {
        return Err(RegistryError::Conflict(format!(
            "operator {key} already exists"
        )));
    }
    if role != Role::of(&key.operator_no) {
        return Err(RegistryError::invalid(
            "role",
            "operator 00 is the supervisor and operators 01 to 99 are cashiers",
        ));
    }
    let (terminal_id, operator_no) = ids(&key);
    Ok(vec![Payload::OperatorCreated(OperatorCreated {
        terminal_id,
        operator_no,
        role: role.to_proto().into(),
        password_hash: password_hash.as_phc().to_owned(),
        must_change_password,
        actor: ctx.actor.clone(),
    })])
}

fn unlock(
    operator: &OperatorState,
    by: UnlockedBy,
    reason: String,
    ctx: &Ctx,
) -> Result<Vec<Payload>> {
    let reason = reason.trim().to_owned();
    let unlocked_by_operator_no = match &by {
        UnlockedBy::Operator(acting) if !acting.is_supervisor() => {
            return Err(RegistryError::Forbidden(format!(
                "only the supervisor (operator 00) may unlock an operator, not operator {acting}"
            )));
        }
        UnlockedBy::Operator(_) if operator.role == Role::Supervisor => {
            return Err(RegistryError::Forbidden(
                "the supervisor cannot unlock itself on the terminal: use posctl".to_owned(),
            ));
        }
        UnlockedBy::Operator(acting) => acting.to_string(),
        UnlockedBy::Console if reason.is_empty() => {
            return Err(RegistryError::invalid(
                "reason",
                "required: why it is unlocked",
            ));
        }
        UnlockedBy::Console => String::new(),
    };
    if !operator.locked {
        return Err(RegistryError::Conflict(format!(
            "operator {} is not locked",
            operator.key
        )));
    }
    let (terminal_id, operator_no) = ids(&operator.key);
    Ok(vec![Payload::OperatorUnlocked(OperatorUnlocked {
        terminal_id,
        operator_no,
        unlocked_by_operator_no,
        actor: match by {
            UnlockedBy::Console => ctx.actor.clone(),
            UnlockedBy::Operator(_) => None,
        },
        reason,
    })])
}

/// The state of operator `key`, or why there is none.
fn existing<'a>(state: Option<&'a OperatorState>, key: &OperatorKey) -> Result<&'a OperatorState> {
    match state {
        Some(operator) if operator.key == *key => Ok(operator),
        Some(other) => Err(RegistryError::Conflict(format!(
            "a command for operator {key} was given the state of operator {}",
            other.key
        ))),
        None => Err(RegistryError::not_found("operator", key)),
    }
}

fn refuse_if_locked(operator: &OperatorState) -> Result<()> {
    if operator.locked {
        return Err(RegistryError::OperatorLocked {
            operator: operator.key.to_string(),
            failed_attempts: operator.failed_attempts,
            record: Vec::new(),
        });
    }
    Ok(())
}

/// A wrong password: counted, and the attempt that reaches the limit locks the operator.
fn wrong_password(operator: &OperatorState, session_id: String) -> RegistryError {
    let failed_attempts = operator.failed_attempts.saturating_add(1);
    let (terminal_id, operator_no) = ids(&operator.key);
    let mut record = vec![Payload::OperatorLoginFailed(OperatorLoginFailed {
        terminal_id: terminal_id.clone(),
        operator_no: operator_no.clone(),
        session_id,
        reason: OperatorLoginFailure::WrongPassword.into(),
        failed_attempts,
    })];
    if failed_attempts < MAX_FAILED_ATTEMPTS {
        return RegistryError::WrongPassword {
            operator: operator.key.to_string(),
            failed_attempts,
            remaining: MAX_FAILED_ATTEMPTS - failed_attempts,
            record,
        };
    }
    record.push(Payload::OperatorLocked(OperatorLocked {
        terminal_id,
        operator_no,
        failed_attempts,
    }));
    RegistryError::OperatorLocked {
        operator: operator.key.to_string(),
        failed_attempts,
        record,
    }
}

fn password_changed(
    operator: &OperatorState,
    password_hash: PasswordHash,
    reset: bool,
    actor: Option<pos_proto::v1::Actor>,
    session_id: String,
) -> Payload {
    let (terminal_id, operator_no) = ids(&operator.key);
    Payload::OperatorPasswordChanged(OperatorPasswordChanged {
        terminal_id,
        operator_no,
        password_hash: password_hash.as_phc().to_owned(),
        must_change_password: reset,
        reset,
        actor,
        session_id,
    })
}

fn ids(key: &OperatorKey) -> (String, String) {
    (key.terminal_id.to_string(), key.operator_no.to_string())
}

/// Folds one event into the operator. Events of other aggregates or of another operator are
/// ignored and not counted.
pub fn apply(state: Option<OperatorState>, payload: &Payload) -> Option<OperatorState> {
    match (state, payload) {
        (None, Payload::OperatorCreated(event)) => created(event),
        (None, _) => None,
        (Some(operator), payload) => Some(apply_to(operator, payload)),
    }
}

/// Folds an operator's events, oldest first.
pub fn replay<'a>(payloads: impl IntoIterator<Item = &'a Payload>) -> Option<OperatorState> {
    payloads.into_iter().fold(None, apply)
}

fn created(event: &OperatorCreated) -> Option<OperatorState> {
    // an event this crate could not have written is ignored rather than half-applied
    let terminal_id = TerminalId::parse(&event.terminal_id).ok()?;
    let operator_no = OperatorNo::parse(&event.operator_no).ok()?;
    Some(OperatorState {
        role: Role::of(&operator_no),
        key: OperatorKey::new(terminal_id, operator_no),
        password_hash: PasswordHash::from_event(&event.password_hash),
        must_change_password: event.must_change_password,
        failed_attempts: 0,
        locked: false,
        session_id: None,
        version: 1,
    })
}

fn apply_to(mut op: OperatorState, payload: &Payload) -> OperatorState {
    let own = event_key(payload).is_some_and(|(terminal_id, operator_no)| {
        terminal_id == op.key.terminal_id.as_str() && operator_no == op.key.operator_no.as_str()
    });
    if !own {
        return op;
    }
    match payload {
        Payload::OperatorPasswordChanged(e) => {
            op.password_hash = PasswordHash::from_event(&e.password_hash);
            op.must_change_password = e.must_change_password;
            op.failed_attempts = 0;
            if e.reset {
                op.locked = false;
            }
        }
        Payload::OperatorLoggedIn(e) => {
            op.failed_attempts = 0;
            op.session_id = Some(e.session_id.clone());
        }
        Payload::OperatorLoginFailed(e) => {
            if e.reason == i32::from(OperatorLoginFailure::WrongPassword) {
                op.failed_attempts = e.failed_attempts;
            }
        }
        Payload::OperatorLocked(_) => {
            op.locked = true;
            op.session_id = None;
        }
        Payload::OperatorUnlocked(_) => {
            op.locked = false;
            op.failed_attempts = 0;
        }
        Payload::OperatorLoggedOut(e) => {
            if op.is_logged_in(&e.session_id) {
                op.session_id = None;
            }
        }
        _ => return op,
    }
    op.version += 1;
    op
}

/// Terminal id and operator number of an operator-aggregate payload.
pub(crate) fn event_key(payload: &Payload) -> Option<(&str, &str)> {
    let (terminal_id, operator_no) = match payload {
        Payload::OperatorCreated(e) => (&e.terminal_id, &e.operator_no),
        Payload::OperatorPasswordChanged(e) => (&e.terminal_id, &e.operator_no),
        Payload::OperatorLoggedIn(e) => (&e.terminal_id, &e.operator_no),
        Payload::OperatorLoginFailed(e) => (&e.terminal_id, &e.operator_no),
        Payload::OperatorLocked(e) => (&e.terminal_id, &e.operator_no),
        Payload::OperatorUnlocked(e) => (&e.terminal_id, &e.operator_no),
        Payload::OperatorLoggedOut(e) => (&e.terminal_id, &e.operator_no),
        _ => return None,
    };
    Some((terminal_id.as_str(), operator_no.as_str()))
}
