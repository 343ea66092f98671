//! Folding terminal events into [`TerminalState`].

use pos_domain::{BatchNo, MerchantId, TerminalId};
use pos_proto::v1::{ActivationFailed, TerminalActivated, TerminalRegistered, TerminalSignedIn};

use super::{
    ActivationCode, CodeStatus, SignInMark, TerminalState, TerminalStatus, WrappedTmk,
    event_terminal_id,
};
use crate::Payload;
use crate::time::system_time;

/// Folds one event into the terminal. Events of other aggregates (operators, audit) or of
/// another terminal are ignored and not counted; so are events that could not follow the
/// state (a second registration). `SessionOpened` is counted but changes nothing else.
pub fn apply(state: Option<TerminalState>, payload: &Payload) -> Option<TerminalState> {
    match (state, payload) {
        (None, Payload::TerminalRegistered(event)) => registered(event),
        (None, _) => None,
        (Some(terminal), payload) => Some(apply_to(terminal, payload)),
    }
}

/// Folds a terminal's events, oldest first.
pub fn replay<'a>(payloads: impl IntoIterator<Item = &'a Payload>) -> Option<TerminalState> {
    payloads.into_iter().fold(None, apply)
}

fn registered(event: &TerminalRegistered) -> Option<TerminalState> {
    // an event this crate could not have written is ignored rather than half-applied
    Some(TerminalState {
        terminal_id: TerminalId::parse(&event.terminal_id).ok()?,
        merchant_id: MerchantId::parse(&event.merchant_id).ok()?,
        status: TerminalStatus::Registered,
        expected_serial: event.serial_number.clone(),
        bound_serial: None,
        model: event.model.clone(),
        location: event.location.clone(),
        software_version: String::new(),
        tmk: None,
        activation_code: None,
        key_version: 0,
        batch_no: BatchNo::FIRST,
        session_id: None,
        last_sign_in: None,
        mac_failures: 0,
        suspension_reason: None,
        version: 1,
    })
}

fn apply_to(mut t: TerminalState, payload: &Payload) -> TerminalState {
    if event_terminal_id(payload).as_deref() != Some(t.terminal_id.as_str()) {
        return t;
    }
    match payload {
        Payload::ActivationCodeIssued(e) => {
            t.activation_code = Some(ActivationCode {
                code_id: e.code_id.clone(),
                code_hash: e.code_hash.clone(),
                expires_at: e
                    .expires_at
                    .as_ref()
                    .map(system_time)
                    .unwrap_or(std::time::UNIX_EPOCH),
                max_attempts: e.max_attempts,
                failed_attempts: 0,
                status: CodeStatus::Open,
            });
        }
        Payload::ActivationCodeRedeemed(e) => {
            if let Some(code) = t
                .activation_code
                .as_mut()
                .filter(|c| c.code_id == e.code_id)
            {
                code.status = CodeStatus::Redeemed;
            }
        }
        Payload::ActivationFailed(e) => activation_failed(&mut t, e),
        Payload::TerminalActivated(e) => activated(&mut t, e),
        Payload::TerminalSignedIn(e) => signed_in(&mut t, e),
        Payload::TerminalSignedOut(e) => end_session(&mut t, &e.session_id),
        Payload::SessionClosed(e) => end_session(&mut t, &e.session_id),
        Payload::TerminalSuspended(e) => {
            t.status = TerminalStatus::Suspended;
            t.suspension_reason = Some(e.reason.clone());
        }
        Payload::MacFailureRecorded(e) => t.mac_failures = e.failures_in_session,
        Payload::TerminalRegistered(_) => return t,
        _ => {}
    }
    t.version += 1;
    t
}

fn activation_failed(t: &mut TerminalState, e: &ActivationFailed) {
    let Some(code) = t
        .activation_code
        .as_mut()
        .filter(|c| c.code_id == e.code_id)
    else {
        return;
    };
    code.failed_attempts = code.failed_attempts.max(e.failed_attempts);
    if code.status == CodeStatus::Open && code.failed_attempts >= code.max_attempts {
        code.status = CodeStatus::Blocked;
    }
}

fn activated(t: &mut TerminalState, e: &TerminalActivated) {
    t.status = TerminalStatus::Active;
    t.bound_serial = Some(e.serial_number.clone());
    let check_value = <[u8; 4]>::try_from(e.tmk_check_value.as_slice()).ok();
    t.tmk = e
        .tmk_under_lmk
        .clone()
        .zip(check_value)
        .and_then(|(under_lmk, check)| WrappedTmk::new(under_lmk, check).ok());
    t.software_version = e.software_version.clone();
    if !e.model.is_empty() {
        t.model = e.model.clone();
    }
    // a new device signs in under a new TMK: the old device's nonces and clock no longer apply
    t.last_sign_in = None;
    t.mac_failures = 0;
}

fn signed_in(t: &mut TerminalState, e: &TerminalSignedIn) {
    t.session_id = Some(e.session_id.clone());
    t.key_version = e.key_version;
    if let Ok(batch_no) = BatchNo::new(e.batch_no) {
        t.batch_no = batch_no;
    }
    t.software_version = e.software_version.clone();
    t.last_sign_in = Some(SignInMark {
        nonce: e.nonce.clone(),
        terminal_time: e
            .terminal_time
            .as_ref()
            .map(system_time)
            .unwrap_or(std::time::UNIX_EPOCH),
    });
    t.mac_failures = 0;
}

fn end_session(t: &mut TerminalState, session_id: &str) {
    if t.session_id.as_deref() == Some(session_id) {
        t.session_id = None;
    }
}
