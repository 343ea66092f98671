//! Sign-in, sign-out, suspension and MAC failures of an activated terminal.
//!
//! A sign-in is refused when the terminal is not active ("97"), when it repeats the last
//! sign-in's nonce, goes back in terminal time, or is further from host time than allowed
//! ("94", replay), when it comes from another device than the bound one ("97"), and when the
//! merchant is not active ("03"). Its key version is the previous one plus one; its batch
//! number is the settlement side's open batch, or the terminal's current one.

use pos_proto::v1::{
    MacFailureRecorded, SessionClosed, SessionOpened, TerminalSignedIn, TerminalSignedOut,
    TerminalSuspended,
};

use super::{
    SessionCloseReason, SignIn, SignOutReason, TerminalState, TerminalStatus, own_merchant,
};
use crate::checks::serial_problem;
use crate::error::{Problems, RegistryError, Result};
use crate::merchant::MerchantStatus;
use crate::time::{seconds_between, timestamp};
use crate::{Ctx, Payload};

/// Longest session id, suspension reason.
const MAX_SESSION_ID_CHARS: usize = 64;
const MAX_REASON_CHARS: usize = 200;

/// Signs the terminal in (see the module doc for the refusals).
pub(super) fn sign_in(
    terminal: &TerminalState,
    command: SignIn,
    ctx: &Ctx,
) -> Result<Vec<Payload>> {
    let mut p = Problems::default();
    check_session_id(&mut p, &command.session_id);
    if let Some(problem) = serial_problem(&command.serial_number) {
        p.add("serial_number", problem);
    }
    if command.software_version.chars().count() > 64 {
        p.add("software_version", "must be at most 64 characters");
    }
    p.into_result()?;
    own_merchant(terminal, &command.merchant)?;
    let id = terminal.terminal_id.to_string();
    if terminal.status != TerminalStatus::Active {
        return Err(RegistryError::TerminalNotActive {
            terminal_id: id,
            status: terminal.status,
        });
    }
    check_replay(terminal, &command, ctx)?;
    if terminal.bound_serial.as_deref() != Some(command.serial_number.as_str()) {
        return Err(RegistryError::DeviceMismatch { terminal_id: id });
    }
    if command.merchant.status != MerchantStatus::Active {
        return Err(RegistryError::MerchantNotActive {
            merchant_id: command.merchant.merchant_id.to_string(),
            status: command.merchant.status,
        });
    }

    let mut events = Vec::with_capacity(3);
    if let Some(old) = &terminal.session_id {
        events.push(signed_out(terminal, old, SignOutReason::Replaced));
    }
    if let Some(connection) = command.connection {
        events.push(Payload::SessionOpened(SessionOpened {
            terminal_id: id.clone(),
            session_id: command.session_id.clone(),
            peer_address: connection.peer_address,
            gateway_instance: connection.gateway_instance,
        }));
    }
    events.push(Payload::TerminalSignedIn(TerminalSignedIn {
        terminal_id: id,
        session_id: command.session_id,
        serial_number: command.serial_number,
        software_version: command.software_version,
        batch_no: command.batch_no.unwrap_or(terminal.batch_no).value(),
        key_version: terminal.key_version.checked_add(1).unwrap_or(1),
        pin_key_check_value: command.pin_key_check_value.to_vec(),
        mac_key_check_value: command.mac_key_check_value.to_vec(),
        settlement_pending: command.settlement_pending,
        nonce: command.nonce.to_vec(),
        terminal_time: Some(timestamp(command.terminal_time)),
    }));
    Ok(events)
}

/// A sign-in that repeats the last one, goes back in time, or whose clock is off.
fn check_replay(terminal: &TerminalState, command: &SignIn, ctx: &Ctx) -> Result<()> {
    if let Some(last) = &terminal.last_sign_in {
        if last.nonce == command.nonce {
            return Err(RegistryError::Replay(
                "its nonce was already used by the terminal's last sign-in".to_owned(),
            ));
        }
        if command.terminal_time < last.terminal_time {
            return Err(RegistryError::Replay(
                "its terminal time is earlier than the terminal's last sign-in".to_owned(),
            ));
        }
    }
    let skew = seconds_between(ctx.now, command.terminal_time).unsigned_abs();
    let allowed = command.max_clock_skew.as_secs();
    if skew > allowed {
        return Err(RegistryError::Replay(format!(
            "the terminal clock is {skew} s away from host time (at most {allowed} s allowed)"
        )));
    }
    Ok(())
}

/// Ends the current signed-in session.
pub(super) fn sign_out(
    terminal: &TerminalState,
    session_id: String,
    reason: SignOutReason,
) -> Result<Vec<Payload>> {
    if terminal.session_id.as_deref() != Some(session_id.as_str()) {
        return Err(RegistryError::Conflict(format!(
            "terminal {} is not signed in with session {session_id}",
            terminal.terminal_id
        )));
    }
    Ok(vec![signed_out(terminal, &session_id, reason)])
}

/// Suspends the terminal and ends its session.
pub(super) fn suspend(terminal: &TerminalState, reason: String, ctx: &Ctx) -> Result<Vec<Payload>> {
    let reason = reason.trim().to_owned();
    let count = reason.chars().count();
    if count == 0 {
        return Err(RegistryError::invalid(
            "reason",
            "required: why it is suspended",
        ));
    }
    if count > MAX_REASON_CHARS {
        let message = format!("must be at most {MAX_REASON_CHARS} characters, got {count}");
        return Err(RegistryError::invalid("reason", message));
    }
    if terminal.status == TerminalStatus::Suspended {
        return Err(RegistryError::Conflict(format!(
            "terminal {} is already suspended",
            terminal.terminal_id
        )));
    }
    let mut events = vec![Payload::TerminalSuspended(TerminalSuspended {
        terminal_id: terminal.terminal_id.to_string(),
        merchant_id: terminal.merchant_id.to_string(),
        reason,
        actor: ctx.actor.clone(),
    })];
    if let Some(session_id) = &terminal.session_id {
        events.push(signed_out(terminal, session_id, SignOutReason::Suspended));
    }
    Ok(events)
}

/// Records a MAC failure; counts since the last sign-in. `close_session` (the gateway's
/// decision) also ends the session.
pub(super) fn mac_failure(
    terminal: &TerminalState,
    session_id: String,
    message_seq: u64,
    close_session: bool,
) -> Result<Vec<Payload>> {
    let current = terminal.session_id.as_deref() == Some(session_id.as_str());
    if !session_id.is_empty() && !current {
        return Err(RegistryError::Conflict(format!(
            "session {session_id} is not the current session of terminal {}",
            terminal.terminal_id
        )));
    }
    let closing = close_session && current;
    let mut events = vec![Payload::MacFailureRecorded(MacFailureRecorded {
        terminal_id: terminal.terminal_id.to_string(),
        session_id: session_id.clone(),
        message_seq,
        failures_in_session: terminal.mac_failures.saturating_add(1),
        session_closed: closing,
    })];
    if closing {
        events.push(signed_out(
            terminal,
            &session_id,
            SignOutReason::MacFailures,
        ));
    }
    Ok(events)
}

/// Records the end of a Connect stream.
pub(super) fn close_session(
    terminal: &TerminalState,
    session_id: String,
    reason: SessionCloseReason,
) -> Vec<Payload> {
    vec![Payload::SessionClosed(SessionClosed {
        terminal_id: terminal.terminal_id.to_string(),
        session_id,
        reason: reason.as_str().to_owned(),
    })]
}

fn signed_out(terminal: &TerminalState, session_id: &str, reason: SignOutReason) -> Payload {
    Payload::TerminalSignedOut(TerminalSignedOut {
        terminal_id: terminal.terminal_id.to_string(),
        session_id: session_id.to_owned(),
        reason: reason.as_str().to_owned(),
    })
}

fn check_session_id(p: &mut Problems, session_id: &str) {
    let count = session_id.chars().count();
    if !(1..=MAX_SESSION_ID_CHARS).contains(&count) {
        let message = format!("must be 1 to {MAX_SESSION_ID_CHARS} characters, got {count}");
        p.add("session_id", message);
    }
}
