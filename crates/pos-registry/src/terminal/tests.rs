use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pos_domain::{BatchNo, MerchantId, TerminalId};
use pos_proto::v1::{ActivationFailureReason, EncryptedValue, TerminalLocation};

use super::*;
use crate::ActivationRefusal;
use crate::merchant::MerchantStatus;

const TERMINAL: &str = "TERM0001";
const MERCHANT: &str = "898310048990001";
const SERIAL: &str = "A8-2024-000123";

/// 2025-03-02 00:00 in Shanghai.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_740_844_800)
}

fn at(seconds: u64) -> Ctx {
    Ctx::at(t0() + Duration::from_secs(seconds))
}

fn tid() -> TerminalId {
    TerminalId::parse(TERMINAL).unwrap()
}

fn merchant(status: MerchantStatus) -> MerchantStanding {
    MerchantStanding {
        merchant_id: MerchantId::parse(MERCHANT).unwrap(),
        status,
    }
}

fn hash(byte: u8) -> String {
    format!("{byte:02x}").repeat(32)
}

fn tmk() -> WrappedTmk {
    let under_lmk = EncryptedValue {
        ciphertext: vec![0xab; 16],
        nonce: Vec::new(),
        key_id: "lmk-1".into(),
    };
    WrappedTmk::new(under_lmk, [0x12, 0x34, 0x56, 0x78]).unwrap()
}

fn register(status: MerchantStatus, serial: &str) -> TerminalCommand {
    TerminalCommand::Register(RegisterTerminal {
        terminal_id: tid(),
        merchant: merchant(status),
        serial_number: serial.into(),
        model: "A8".into(),
        location: TerminalLocation {
            city: "上海市".into(),
            address: "徐汇区漕溪北路 88 号".into(),
            latitude: Some(31.19),
            longitude: Some(121.43),
        },
    })
}

fn issue(code: u8, valid_for: u64, max_attempts: u32) -> TerminalCommand {
    TerminalCommand::IssueActivationCode(IssueActivationCode {
        terminal_id: tid(),
        merchant: merchant(MerchantStatus::Approved),
        code_id: format!("code-{code}"),
        code_hash: hash(code),
        expires_at: t0() + Duration::from_secs(valid_for),
        max_attempts,
    })
}

fn redeem_as(code: u8, serial: &str, status: MerchantStatus) -> TerminalCommand {
    TerminalCommand::Redeem(Box::new(RedeemActivationCode {
        terminal_id: tid(),
        merchant: merchant(status),
        code_hash: hash(code),
        serial_number: serial.into(),
        software_version: "pos-agent 0.1.0".into(),
        model: "pos-agent".into(),
        tmk: tmk(),
    }))
}

fn redeem(code: u8) -> TerminalCommand {
    redeem_as(code, SERIAL, MerchantStatus::Approved)
}

fn sign_in_as(session: &str, nonce: u8, clock: u64, status: MerchantStatus) -> TerminalCommand {
    TerminalCommand::SignIn(Box::new(SignIn {
        terminal_id: tid(),
        merchant: merchant(status),
        session_id: session.into(),
        connection: Some(Connection {
            peer_address: "127.0.0.1:50123".into(),
            gateway_instance: "gw-1".into(),
        }),
        serial_number: SERIAL.into(),
        software_version: "pos-agent 0.1.0".into(),
        nonce: [nonce; 16],
        terminal_time: t0() + Duration::from_secs(clock),
        max_clock_skew: Duration::from_secs(300),
        pin_key_check_value: [1, 2, 3, 4],
        mac_key_check_value: [5, 6, 7, 8],
        batch_no: None,
        settlement_pending: false,
    }))
}

fn sign_in(session: &str, nonce: u8, clock: u64) -> TerminalCommand {
    sign_in_as(session, nonce, clock, MerchantStatus::Active)
}

/// Decides and applies; on a refusal, applies the events it records and returns the error.
fn step(
    state: Option<TerminalState>,
    command: TerminalCommand,
    ctx: &Ctx,
) -> (Option<TerminalState>, Result<Vec<Payload>>) {
    match decide(state.as_ref(), command, ctx) {
        Ok(events) => (events.iter().fold(state, apply), Ok(events)),
        Err(err) => (err.events_to_record().iter().fold(state, apply), Err(err)),
    }
}

fn ok(
    state: Option<TerminalState>,
    command: TerminalCommand,
    ctx: &Ctx,
) -> (Option<TerminalState>, Vec<Payload>) {
    let (state, result) = step(state, command, ctx);
    (state, result.unwrap())
}

fn registered() -> Option<TerminalState> {
    ok(None, register(MerchantStatus::Approved, ""), &at(0)).0
}

fn active() -> Option<TerminalState> {
    let (state, _) = ok(registered(), issue(1, 3600, 5), &at(0));
    ok(state, redeem(1), &at(60)).0
}

fn signed_in() -> Option<TerminalState> {
    ok(active(), sign_in("s1", 1, 100), &at(100)).0
}

fn refusal(result: Result<Vec<Payload>>) -> (ActivationRefusal, Vec<Payload>) {
    match result {
        Err(RegistryError::ActivationRefused { reason, record }) => (reason, record),
        other => panic!("expected an activation refusal, got {other:?}"),
    }
}

fn failed_reason(record: &[Payload]) -> (ActivationFailureReason, u32) {
    match record {
        [Payload::ActivationFailed(e)] => (e.reason(), e.failed_attempts),
        other => panic!("expected one ActivationFailed, got {other:?}"),
    }
}

#[test]
fn only_approved_or_active_merchants_get_terminals() {
    let err = decide(None, register(MerchantStatus::Pending, ""), &at(0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "merchant 898310048990001 is pending; approve it before you register terminals"
    );
    let err = decide(None, register(MerchantStatus::Suspended, ""), &at(0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "merchant 898310048990001 is suspended; you cannot register terminals for it"
    );
    let state = registered().unwrap();
    assert_eq!(state.status, TerminalStatus::Registered);
    assert_eq!(state.batch_no, BatchNo::FIRST);
    assert_eq!(state.key_version, 0);
    assert_eq!(state.version, 1);
    let err = decide(Some(&state), register(MerchantStatus::Active, ""), &at(0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "terminal TERM0001 already exists (merchant 898310048990001)"
    );
}

#[test]
fn registration_checks_serial_number_and_city() {
    let TerminalCommand::Register(mut command) = register(MerchantStatus::Approved, "SN 1") else {
        unreachable!()
    };
    command.location.city = String::new();
    let err = decide(None, TerminalCommand::Register(command), &at(0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid request: serial_number: may contain only letters, digits and '-', but character 3 is not; location.city: required: the city the terminal stands in"
    );
}

#[test]
fn an_activation_code_binds_the_device_once() {
    let (state, _) = ok(registered(), issue(1, 3600, 5), &at(0));
    let (state, events) = ok(state, redeem(1), &at(60));
    assert!(matches!(
        &events[..],
        [Payload::ActivationCodeRedeemed(r), Payload::TerminalActivated(a)]
            if r.code_id == "code-1" && a.serial_number == SERIAL && a.tmk_check_value == [0x12, 0x34, 0x56, 0x78]
    ));
    let terminal = state.clone().unwrap();
    assert_eq!(terminal.status, TerminalStatus::Active);
    assert_eq!(terminal.bound_serial.as_deref(), Some(SERIAL));
    assert_eq!(terminal.tmk.as_ref().unwrap().check_value_hex(), "12345678");
    assert_eq!(
        terminal.activation_code.as_ref().unwrap().status,
        CodeStatus::Redeemed
    );
    assert_eq!(terminal.version, 4);

    let (state, result) = step(state, redeem(1), &at(120));
    let (reason, record) = refusal(result);
    assert_eq!(reason, ActivationRefusal::AlreadyUsed);
    assert_eq!(
        failed_reason(&record),
        (ActivationFailureReason::AlreadyUsed, 0)
    );
    let terminal = state.unwrap();
    assert_eq!(terminal.status, TerminalStatus::Active);
    assert_eq!(terminal.version, 5);
}

#[test]
fn an_expired_code_is_refused() {
    let (state, _) = ok(registered(), issue(1, 3600, 5), &at(0));
    let (state, result) = step(state, redeem(1), &at(3600));
    let (reason, record) = refusal(result);
    assert_eq!(reason, ActivationRefusal::Expired);
    assert_eq!(
        reason.to_string(),
        "the activation code has expired: ask for a new one"
    );
    assert_eq!(
        failed_reason(&record),
        (ActivationFailureReason::Expired, 0)
    );
    assert_eq!(state.unwrap().status, TerminalStatus::Registered);
}

#[test]
fn wrong_codes_are_counted_and_block_the_code_at_the_limit() {
    let (mut state, _) = ok(registered(), issue(1, 3600, 3), &at(0));
    for remaining in [2, 1] {
        let (next, result) = step(state, redeem(9), &at(10));
        state = next;
        let (reason, record) = refusal(result);
        assert_eq!(reason, ActivationRefusal::WrongCode { remaining });
        assert_eq!(
            failed_reason(&record),
            (ActivationFailureReason::UnknownCode, 3 - remaining)
        );
    }
    let (state, result) = step(state, redeem(9), &at(10));
    assert_eq!(refusal(result).0, ActivationRefusal::TooManyAttempts);
    let code = state.as_ref().unwrap().activation_code.clone().unwrap();
    assert_eq!(
        (code.status, code.failed_attempts),
        (CodeStatus::Blocked, 3)
    );
    // the right code no longer works either
    let (state, result) = step(state, redeem(1), &at(20));
    let (reason, record) = refusal(result);
    assert_eq!(reason, ActivationRefusal::TooManyAttempts);
    assert_eq!(
        failed_reason(&record),
        (ActivationFailureReason::TooManyAttempts, 3)
    );
    assert_eq!(state.as_ref().unwrap().status, TerminalStatus::Registered);
    // a new code starts afresh
    let (state, _) = ok(state, issue(2, 3600, 3), &at(30));
    let (state, _) = ok(state, redeem(2), &at(40));
    assert_eq!(state.unwrap().status, TerminalStatus::Active);
}

#[test]
fn activation_checks_device_merchant_and_code() {
    let err = decide(registered().as_ref(), redeem(1), &at(0)).unwrap_err();
    assert_eq!(
        err,
        RegistryError::ActivationRefused {
            reason: ActivationRefusal::UnknownCode,
            record: Vec::new()
        }
    );
    let (state, _) = ok(None, register(MerchantStatus::Approved, "SN-0001"), &at(0));
    let (state, _) = ok(state, issue(1, 3600, 5), &at(0));
    let (reason, _) = refusal(decide(
        state.as_ref(),
        redeem_as(1, "SN-0002", MerchantStatus::Approved),
        &at(1),
    ));
    assert_eq!(reason, ActivationRefusal::SerialMismatch);
    let (reason, record) = refusal(decide(
        state.as_ref(),
        redeem_as(1, "SN-0001", MerchantStatus::Suspended),
        &at(1),
    ));
    assert_eq!(
        reason.to_string(),
        "merchant 898310048990001 is suspended; you cannot activate terminals for it"
    );
    assert_eq!(
        failed_reason(&record).0,
        ActivationFailureReason::NotAllowed
    );
    let err = decide(None, redeem(1), &at(1)).unwrap_err();
    assert_eq!(err.to_string(), "terminal TERM0001 not found");
}

#[test]
fn issuing_a_code_needs_a_future_expiry_and_a_live_terminal() {
    let err = decide(registered().as_ref(), issue(1, 0, 5), &at(0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid request: expires_at: must be in the future"
    );
    let err = decide(registered().as_ref(), issue(1, 60, 0), &at(0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid request: max_attempts: must be 1 to 10, got 0"
    );
    let suspend = TerminalCommand::Suspend {
        terminal_id: tid(),
        reason: "lost".into(),
    };
    let (state, _) = ok(registered(), suspend, &at(0));
    let err = decide(state.as_ref(), issue(1, 60, 5), &at(0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "terminal TERM0001 is suspended: no activation code can be issued for it"
    );
}

#[test]
fn sign_in_rotates_the_key_version_and_gives_the_batch() {
    let (state, events) = ok(active(), sign_in("s1", 1, 100), &at(100));
    assert!(matches!(
        &events[..],
        [Payload::SessionOpened(o), Payload::TerminalSignedIn(s)]
            if o.session_id == "s1" && s.key_version == 1 && s.batch_no == 1 && s.nonce == [1; 16]
    ));
    let (state, events) = ok(state, sign_in("s2", 2, 200), &at(200));
    assert!(matches!(
        &events[..],
        [Payload::TerminalSignedOut(out), Payload::SessionOpened(_), Payload::TerminalSignedIn(s)]
            if out.session_id == "s1" && out.reason == "REPLACED" && s.key_version == 2
    ));
    let terminal = state.unwrap();
    assert_eq!(terminal.key_version, 2);
    assert_eq!(terminal.session_id.as_deref(), Some("s2"));
    // the settlement side's open batch wins over the terminal's
    let TerminalCommand::SignIn(mut third) = sign_in("s3", 3, 300) else {
        unreachable!()
    };
    third.batch_no = Some(BatchNo::new(7).unwrap());
    let (state, _) = ok(Some(terminal), TerminalCommand::SignIn(third), &at(300));
    assert_eq!(state.unwrap().batch_no.value(), 7);
}

#[test]
fn a_replayed_sign_in_is_refused() {
    let state = signed_in();
    let err = decide(state.as_ref(), sign_in("s2", 1, 150), &at(150)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "sign-in refused as a replay: its nonce was already used by the terminal's last sign-in"
    );
    let err = decide(state.as_ref(), sign_in("s2", 2, 90), &at(150)).unwrap_err();
    assert!(matches!(err, RegistryError::Replay(_)));
    let err = decide(state.as_ref(), sign_in("s2", 2, 1000), &at(150)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "sign-in refused as a replay: the terminal clock is 850 s away from host time (at most 300 s allowed)"
    );
}

#[test]
fn sign_in_needs_an_active_terminal_the_bound_device_and_an_active_merchant() {
    let state = active();
    let err = decide(
        state.as_ref(),
        sign_in_as("s1", 1, 0, MerchantStatus::Suspended),
        &at(0),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "merchant 898310048990001 is suspended, not active: its terminals may not sign in"
    );
    let err = decide(
        state.as_ref(),
        sign_in_as("s1", 1, 0, MerchantStatus::Approved),
        &at(0),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        RegistryError::MerchantNotActive {
            status: MerchantStatus::Approved,
            ..
        }
    ));
    let err = decide(registered().as_ref(), sign_in("s1", 1, 0), &at(0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "terminal TERM0001 is registered, not active: sign-in refused"
    );
    let TerminalCommand::SignIn(mut other_device) = sign_in("s1", 1, 0) else {
        unreachable!()
    };
    other_device.serial_number = "SN-OTHER".into();
    let err = decide(
        state.as_ref(),
        TerminalCommand::SignIn(other_device),
        &at(0),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "this device's serial number is not the one bound to terminal TERM0001"
    );
}

#[test]
fn mac_failures_are_counted_since_the_last_sign_in() {
    let failure = |close_session| TerminalCommand::RecordMacFailure {
        terminal_id: tid(),
        session_id: "s1".into(),
        message_seq: 7,
        close_session,
    };
    let (state, _) = ok(signed_in(), failure(false), &at(110));
    let (state, events) = ok(state, failure(true), &at(111));
    assert!(matches!(
        &events[..],
        [Payload::MacFailureRecorded(m), Payload::TerminalSignedOut(out)]
            if m.failures_in_session == 2 && m.session_closed && out.reason == "MAC_FAILURES"
    ));
    let terminal = state.clone().unwrap();
    assert_eq!((terminal.mac_failures, terminal.session_id), (2, None));
    let err = decide(state.as_ref(), failure(false), &at(112)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "session s1 is not the current session of terminal TERM0001"
    );
    let (state, _) = ok(state, sign_in("s2", 2, 120), &at(120));
    assert_eq!(state.unwrap().mac_failures, 0);
}

#[test]
fn a_suspended_terminal_is_signed_out_and_cannot_sign_in() {
    let suspend = |reason: &str| TerminalCommand::Suspend {
        terminal_id: tid(),
        reason: reason.into(),
    };
    let err = decide(signed_in().as_ref(), suspend(" "), &at(0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid request: reason: required: why it is suspended"
    );
    let (state, events) = ok(signed_in(), suspend("device reported stolen"), &at(200));
    assert!(matches!(
        &events[..],
        [Payload::TerminalSuspended(s), Payload::TerminalSignedOut(out)]
            if s.merchant_id == MERCHANT && out.reason == "SUSPENDED"
    ));
    let terminal = state.clone().unwrap();
    assert_eq!(terminal.status, TerminalStatus::Suspended);
    assert_eq!(
        terminal.suspension_reason.as_deref(),
        Some("device reported stolen")
    );
    let err = decide(state.as_ref(), sign_in("s2", 2, 300), &at(300)).unwrap_err();
    assert!(matches!(
        err,
        RegistryError::TerminalNotActive {
            status: TerminalStatus::Suspended,
            ..
        }
    ));
    let err = decide(state.as_ref(), suspend("again"), &at(300)).unwrap_err();
    assert_eq!(err.to_string(), "terminal TERM0001 is already suspended");
}

#[test]
fn sign_out_and_session_close_end_the_current_session_only() {
    let sign_out = |session: &str| TerminalCommand::SignOut {
        terminal_id: tid(),
        session_id: session.into(),
        reason: SignOutReason::SignOut,
    };
    let err = decide(signed_in().as_ref(), sign_out("s9"), &at(0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "terminal TERM0001 is not signed in with session s9"
    );
    let (state, _) = ok(signed_in(), sign_out("s1"), &at(0));
    assert_eq!(state.unwrap().session_id, None);
    let close = |session: &str| TerminalCommand::CloseSession {
        terminal_id: tid(),
        session_id: session.into(),
        reason: SessionCloseReason::Timeout,
    };
    let before = signed_in().unwrap();
    let (state, _) = ok(Some(before.clone()), close("s9"), &at(0));
    let other = state.unwrap();
    assert_eq!(other.session_id.as_deref(), Some("s1"));
    assert_eq!(other.version, before.version + 1);
    let (state, events) = ok(Some(before), close("s1"), &at(0));
    assert!(matches!(&events[..], [Payload::SessionClosed(c)] if c.reason == "TIMEOUT"));
    assert_eq!(state.unwrap().session_id, None);
}

#[test]
fn debug_never_shows_the_wrapped_key_or_the_code_hash() {
    let terminal = signed_in().unwrap();
    let debug = format!("{terminal:?}");
    assert!(debug.contains("<wrapped key>"), "{debug}");
    assert!(debug.contains("check_value: \"12345678\""), "{debug}");
    assert!(!debug.contains("171"), "wrapped key bytes in {debug}");
    assert!(!debug.contains(&hash(1)), "code hash in {debug}");
    let debug = format!("{:?}", redeem(1));
    assert!(
        !debug.contains("171") && !debug.contains(&hash(1)),
        "{debug}"
    );
}

#[test]
fn replaying_every_recorded_event_rebuilds_the_state_and_version() {
    let mut state = None;
    let mut all = Vec::new();
    let commands = [
        (register(MerchantStatus::Approved, ""), at(0)),
        (issue(1, 3600, 5), at(0)),
        (redeem(9), at(10)),
        (redeem(1), at(20)),
        (redeem(1), at(30)),
        (sign_in("s1", 1, 100), at(100)),
        (sign_in("s2", 2, 200), at(200)),
    ];
    for (command, ctx) in commands {
        let (next, result) = step(state, command, &ctx);
        state = next;
        match result {
            Ok(events) => all.extend(events),
            Err(err) => all.extend(err.events_to_record().iter().cloned()),
        }
    }
    // an operator event on the same topic is not the terminal's
    all.push(Payload::OperatorLocked(pos_proto::v1::OperatorLocked {
        terminal_id: TERMINAL.into(),
        operator_no: "01".into(),
        failed_attempts: 5,
    }));
    let rebuilt = replay(&all).unwrap();
    assert_eq!(Some(rebuilt.clone()), state);
    // registered, issued, failed, redeemed + activated, failed, opened + signed in,
    // signed out + opened + signed in
    assert_eq!(rebuilt.version, 11);
    assert_eq!(rebuilt.key_version, 2);
}
