//! Registration and activation: a terminal is registered for a merchant that may have
//! terminals, an operator issues a one-time code, and a device redeems it.
//!
//! Redeeming, in order: the code must exist; a blocked code refuses everything; a redeemed
//! code refuses its own reuse (ALREADY_USED); a wrong code counts one attempt and blocks the
//! code at `max_attempts`; then expiry, the terminal's and the merchant's state, and the
//! registered serial number are checked. Every refusal but "no code at all" records an
//! `ActivationFailed` with the attempts counted so far; only wrong codes count.

use pos_proto::v1::{
    ActivationCodeIssued, ActivationCodeRedeemed, ActivationFailed, ActivationFailureReason,
    TerminalActivated, TerminalRegistered, TerminalSignedOut,
};

use super::{
    CodeStatus, IssueActivationCode, MAX_CODE_ATTEMPTS, RedeemActivationCode, RegisterTerminal,
    SignOutReason, TerminalState, TerminalStatus, own_merchant,
};
use crate::checks::{is_token, serial_problem};
use crate::error::{ActivationRefusal, Problems, RegistryError, Result};
use crate::merchant::{MerchantStanding, MerchantStatus};
use crate::time::timestamp;
use crate::{Ctx, Payload};

/// Registers a terminal (state `None`) for a merchant that may have terminals.
pub(super) fn register(
    state: Option<&TerminalState>,
    command: RegisterTerminal,
    ctx: &Ctx,
) -> Result<Vec<Payload>> {
    if let Some(existing) = state {
        return Err(RegistryError::Conflict(format!(
            "terminal {} already exists (merchant {})",
            existing.terminal_id, existing.merchant_id
        )));
    }
    let mut p = Problems::default();
    let serial = &command.serial_number;
    if let Some(problem) = serial_problem(serial).filter(|_| !serial.is_empty()) {
        p.add("serial_number", problem);
    }
    if command.model.chars().count() > 64 {
        p.add("model", "must be at most 64 characters");
    }
    let location = &command.location;
    let city = location.city.trim().chars().count();
    if city == 0 {
        p.add("location.city", "required: the city the terminal stands in");
    } else if city > 32 {
        p.add(
            "location.city",
            format!("must be at most 32 characters, got {city}"),
        );
    }
    if location
        .latitude
        .is_some_and(|lat| !(-90.0..=90.0).contains(&lat))
    {
        p.add("location.latitude", "must be between -90 and 90 degrees");
    }
    if location
        .longitude
        .is_some_and(|lon| !(-180.0..=180.0).contains(&lon))
    {
        p.add("location.longitude", "must be between -180 and 180 degrees");
    }
    p.into_result()?;
    merchant_may_have_terminals(&command.merchant, "register terminals")?;
    Ok(vec![Payload::TerminalRegistered(TerminalRegistered {
        terminal_id: command.terminal_id.to_string(),
        merchant_id: command.merchant.merchant_id.to_string(),
        serial_number: command.serial_number,
        model: command.model,
        location: Some(command.location),
        actor: ctx.actor.clone(),
    })])
}

/// Issues an activation code for a registered or active terminal of a merchant that may
/// have terminals; it replaces the previous code.
pub(super) fn issue_code(
    terminal: &TerminalState,
    command: IssueActivationCode,
    ctx: &Ctx,
) -> Result<Vec<Payload>> {
    let mut p = Problems::default();
    let code_id = command.code_id.chars().count();
    if !(1..=64).contains(&code_id) {
        p.add(
            "code_id",
            format!("must be 1 to 64 characters, got {code_id}"),
        );
    }
    if !is_token(&command.code_hash) {
        p.add(
            "code_hash",
            "must be a keyed hash of the code: 64 lowercase hex digits",
        );
    }
    if command.expires_at <= ctx.now {
        p.add("expires_at", "must be in the future");
    }
    if !(1..=MAX_CODE_ATTEMPTS).contains(&command.max_attempts) {
        let message = format!(
            "must be 1 to {MAX_CODE_ATTEMPTS}, got {}",
            command.max_attempts
        );
        p.add("max_attempts", message);
    }
    p.into_result()?;
    own_merchant(terminal, &command.merchant)?;
    if terminal.status == TerminalStatus::Suspended {
        return Err(RegistryError::Conflict(format!(
            "terminal {} is suspended: no activation code can be issued for it",
            terminal.terminal_id
        )));
    }
    merchant_may_have_terminals(&command.merchant, "issue activation codes")?;
    Ok(vec![Payload::ActivationCodeIssued(ActivationCodeIssued {
        terminal_id: terminal.terminal_id.to_string(),
        code_id: command.code_id,
        code_hash: command.code_hash,
        expires_at: Some(timestamp(command.expires_at)),
        max_attempts: command.max_attempts,
        actor: ctx.actor.clone(),
    })])
}

/// Redeems the terminal's activation code (see the module doc for the order of checks).
pub(super) fn redeem(
    terminal: &TerminalState,
    command: RedeemActivationCode,
    ctx: &Ctx,
) -> Result<Vec<Payload>> {
    let mut p = Problems::default();
    if !is_token(&command.code_hash) {
        p.add(
            "code_hash",
            "must be a keyed hash of the code: 64 lowercase hex digits",
        );
    }
    if let Some(problem) = serial_problem(&command.serial_number) {
        p.add("serial_number", problem);
    }
    if command.software_version.chars().count() > 64 {
        p.add("software_version", "must be at most 64 characters");
    }
    if command.model.chars().count() > 64 {
        p.add("model", "must be at most 64 characters");
    }
    p.into_result()?;
    own_merchant(terminal, &command.merchant)?;

    let Some(code) = &terminal.activation_code else {
        return Err(RegistryError::ActivationRefused {
            reason: ActivationRefusal::UnknownCode,
            record: Vec::new(),
        });
    };
    let failure = |reason: ActivationFailureReason, failed_attempts: u32| {
        Payload::ActivationFailed(ActivationFailed {
            terminal_id: terminal.terminal_id.to_string(),
            code_id: code.code_id.clone(),
            serial_number: command.serial_number.clone(),
            reason: reason.into(),
            failed_attempts,
        })
    };
    let refuse = |reason: ActivationRefusal, failed_attempts: u32| {
        let record = vec![failure(reason.proto_reason(), failed_attempts)];
        Err(RegistryError::ActivationRefused { reason, record })
    };
    let matches = command.code_hash == code.code_hash;
    match code.status {
        CodeStatus::Blocked => {
            return refuse(ActivationRefusal::TooManyAttempts, code.failed_attempts);
        }
        CodeStatus::Redeemed if matches => {
            return refuse(ActivationRefusal::AlreadyUsed, code.failed_attempts);
        }
        CodeStatus::Redeemed => {
            return refuse(ActivationRefusal::UnknownCode, code.failed_attempts);
        }
        CodeStatus::Open => {}
    }
    if !matches {
        let failed = code.failed_attempts.saturating_add(1);
        let remaining = code.max_attempts.saturating_sub(failed);
        let reason = match remaining {
            0 => ActivationRefusal::TooManyAttempts,
            _ => ActivationRefusal::WrongCode { remaining },
        };
        // recorded as the wrong code it was; `apply` blocks the code at `max_attempts`
        let record = vec![failure(ActivationFailureReason::UnknownCode, failed)];
        return Err(RegistryError::ActivationRefused { reason, record });
    }
    if ctx.now >= code.expires_at {
        return refuse(ActivationRefusal::Expired, code.failed_attempts);
    }
    if let Some(why) = activation_blocker(terminal, &command.merchant) {
        return refuse(ActivationRefusal::NotAllowed(why), code.failed_attempts);
    }
    let expected = &terminal.expected_serial;
    if !expected.is_empty() && *expected != command.serial_number {
        return refuse(ActivationRefusal::SerialMismatch, code.failed_attempts);
    }

    let mut events = vec![Payload::ActivationCodeRedeemed(ActivationCodeRedeemed {
        terminal_id: terminal.terminal_id.to_string(),
        code_id: code.code_id.clone(),
        serial_number: command.serial_number.clone(),
    })];
    if let Some(session_id) = &terminal.session_id {
        // a re-bound terminal's old device loses its session
        events.push(Payload::TerminalSignedOut(TerminalSignedOut {
            terminal_id: terminal.terminal_id.to_string(),
            session_id: session_id.clone(),
            reason: SignOutReason::Replaced.as_str().to_owned(),
        }));
    }
    events.push(Payload::TerminalActivated(TerminalActivated {
        terminal_id: terminal.terminal_id.to_string(),
        merchant_id: terminal.merchant_id.to_string(),
        serial_number: command.serial_number,
        tmk_under_lmk: Some(command.tmk.under_lmk().clone()),
        tmk_check_value: command.tmk.check_value().to_vec(),
        software_version: command.software_version,
        model: command.model,
    }));
    Ok(events)
}

/// Why the terminal may not be activated now, if anything prevents it.
fn activation_blocker(terminal: &TerminalState, merchant: &MerchantStanding) -> Option<String> {
    if terminal.status == TerminalStatus::Suspended {
        return Some(format!("terminal {} is suspended", terminal.terminal_id));
    }
    merchant_may_have_terminals(merchant, "activate terminals")
        .err()
        .map(|e| e.to_string())
}

/// Only approved and active merchants have terminals registered, coded and activated.
fn merchant_may_have_terminals(merchant: &MerchantStanding, what: &str) -> Result<()> {
    let id = &merchant.merchant_id;
    let why = match merchant.status {
        MerchantStatus::Approved | MerchantStatus::Active => return Ok(()),
        MerchantStatus::Pending => {
            format!("merchant {id} is pending; approve it before you {what}")
        }
        MerchantStatus::Suspended => {
            format!("merchant {id} is suspended; you cannot {what} for it")
        }
    };
    Err(RegistryError::Conflict(why))
}
