use std::time::{Duration, UNIX_EPOCH};

use pos_domain::{OperatorNo, TerminalId};
use pos_proto::v1::Actor;

use super::*;
use crate::validate_new_password;

const SUPERVISOR_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c3VwZXJ2aXNvcg$U3VwZXJ2aXNvckhhc2hCeXRlcw";
const CASHIER_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$Y2FzaGllcg$Q2FzaGllckhhc2hCeXRlcw";
const NEW_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$TmV3UGFzc3dvcmRIYXNo";

fn ctx() -> Ctx {
    Ctx::at(UNIX_EPOCH + Duration::from_secs(1_740_844_800))
}

fn console() -> Ctx {
    let actor = Actor {
        subject: "ops:alice".into(),
        role: "operations".into(),
    };
    Ctx::with_actor(ctx().now, actor)
}

fn key(operator_no: &str) -> OperatorKey {
    OperatorKey::new(
        TerminalId::parse("TERM0001").unwrap(),
        OperatorNo::parse(operator_no).unwrap(),
    )
}

fn hash(phc: &str) -> PasswordHash {
    PasswordHash::parse(phc).unwrap()
}

/// Decides and applies; on a refusal, applies the events it records and returns the error.
fn step(
    state: Option<OperatorState>,
    command: OperatorCommand,
    ctx: &Ctx,
) -> (Option<OperatorState>, Result<Vec<Payload>>) {
    match decide(state.as_ref(), command, ctx) {
        Ok(events) => (events.iter().fold(state, apply), Ok(events)),
        Err(err) => (err.events_to_record().iter().fold(state, apply), Err(err)),
    }
}

/// Operators "00" and "01" as activation creates them.
fn initial() -> (Option<OperatorState>, Option<OperatorState>) {
    let tid = TerminalId::parse("TERM0001").unwrap();
    let [supervisor, cashier] =
        initial_operators(&tid, hash(SUPERVISOR_HASH), hash(CASHIER_HASH)).unwrap();
    (
        step(None, supervisor, &ctx()).0,
        step(None, cashier, &ctx()).0,
    )
}

fn login(operator_no: &str, password_ok: bool) -> OperatorCommand {
    OperatorCommand::Login {
        key: key(operator_no),
        session_id: "s1".into(),
        password_ok,
    }
}

fn unlock_by(operator_no: &str, by: UnlockedBy) -> OperatorCommand {
    OperatorCommand::Unlock {
        key: key(operator_no),
        by,
        reason: "forgot the password".into(),
    }
}

/// Cashier "01" after five wrong passwords.
fn locked_cashier() -> Option<OperatorState> {
    let (_, mut cashier) = initial();
    for _ in 0..5 {
        cashier = step(cashier, login("01", false), &ctx()).0;
    }
    cashier
}

#[test]
fn activation_creates_the_supervisor_and_a_cashier_with_the_default_password() {
    let (supervisor, cashier) = initial();
    let supervisor = supervisor.unwrap();
    let cashier = cashier.unwrap();
    assert_eq!(
        (supervisor.role, cashier.role),
        (Role::Supervisor, Role::Cashier)
    );
    assert!(supervisor.must_change_password && cashier.must_change_password);
    assert_eq!(cashier.password_hash.as_phc(), CASHIER_HASH);
    assert_eq!(cashier.key.aggregate_id(), "TERM0001:01");
    assert_eq!(cashier.version, 1);
    let again = OperatorCommand::Create {
        key: key("01"),
        role: Role::Cashier,
        password_hash: hash(CASHIER_HASH),
        must_change_password: true,
    };
    let err = decide(Some(&cashier), again, &ctx()).unwrap_err();
    assert_eq!(err.to_string(), "operator TERM0001:01 already exists");
    let supervisor_02 = OperatorCommand::Create {
        key: key("02"),
        role: Role::Supervisor,
        password_hash: hash(CASHIER_HASH),
        must_change_password: true,
    };
    let err = decide(None, supervisor_02, &ctx()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid request: role: operator 00 is the supervisor and operators 01 to 99 are cashiers"
    );
}

#[test]
fn a_right_password_logs_in_and_resets_the_count() {
    let (_, cashier) = initial();
    let (cashier, result) = step(cashier, login("01", false), &ctx());
    let err = result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "wrong password for operator TERM0001:01: 4 attempt(s) left before it is locked"
    );
    assert_eq!(cashier.as_ref().unwrap().failed_attempts, 1);
    let (cashier, result) = step(cashier, login("01", true), &ctx());
    assert!(matches!(&result.unwrap()[..], [Payload::OperatorLoggedIn(e)] if e.session_id == "s1"));
    let cashier = cashier.unwrap();
    assert_eq!(cashier.failed_attempts, 0);
    assert!(cashier.is_logged_in("s1"));
    assert_eq!(cashier.remaining_attempts(), 5);
}

#[test]
fn five_wrong_passwords_lock_and_then_even_the_right_one_is_refused() {
    let (_, mut cashier) = initial();
    for attempt in 1..=4 {
        let (next, result) = step(cashier, login("01", false), &ctx());
        cashier = next;
        let Err(RegistryError::WrongPassword {
            failed_attempts,
            remaining,
            record,
            ..
        }) = result
        else {
            panic!("expected a wrong password");
        };
        assert_eq!((failed_attempts, remaining), (attempt, 5 - attempt));
        assert!(
            matches!(&record[..], [Payload::OperatorLoginFailed(e)] if e.failed_attempts == attempt)
        );
    }
    let (cashier, result) = step(cashier, login("01", false), &ctx());
    let Err(RegistryError::OperatorLocked {
        failed_attempts: 5,
        record,
        ..
    }) = result
    else {
        panic!("expected the fifth wrong password to lock");
    };
    assert!(matches!(
        &record[..],
        [Payload::OperatorLoginFailed(f), Payload::OperatorLocked(l)]
            if f.failed_attempts == 5 && l.failed_attempts == 5
    ));
    let locked = cashier.unwrap();
    assert!(locked.locked);
    assert_eq!(locked.remaining_attempts(), 0);

    let err = decide(Some(&locked), login("01", true), &ctx()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "operator TERM0001:01 is locked after 5 wrong passwords: the supervisor (00) or posctl must unlock it"
    );
    assert!(
        err.events_to_record().is_empty(),
        "a locked login changes nothing"
    );
    let change = OperatorCommand::ChangePassword {
        key: key("01"),
        session_id: "s1".into(),
        current_password_ok: true,
        new_password_hash: hash(NEW_HASH),
    };
    assert!(matches!(
        decide(Some(&locked), change, &ctx()),
        Err(RegistryError::OperatorLocked { .. })
    ));
}

#[test]
fn the_supervisor_unlocks_a_cashier() {
    let supervisor = OperatorNo::parse("00").unwrap();
    let (cashier, result) = step(
        locked_cashier(),
        unlock_by("01", UnlockedBy::Operator(supervisor)),
        &ctx(),
    );
    assert!(matches!(
        &result.unwrap()[..],
        [Payload::OperatorUnlocked(e)] if e.unlocked_by_operator_no == "00" && e.actor.is_none()
    ));
    let cashier = cashier.unwrap();
    assert!(!cashier.locked);
    assert_eq!(cashier.failed_attempts, 0);
    let (cashier, result) = step(Some(cashier), login("01", true), &ctx());
    assert!(result.is_ok());
    // locked, 5 failures + 1 lock, unlocked, logged in
    assert_eq!(cashier.unwrap().version, 9);
}

#[test]
fn only_the_supervisor_unlocks_and_never_itself() {
    let cashier_02 = OperatorNo::parse("02").unwrap();
    let err = decide(
        locked_cashier().as_ref(),
        unlock_by("01", UnlockedBy::Operator(cashier_02)),
        &ctx(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "not allowed: only the supervisor (operator 00) may unlock an operator, not operator 02"
    );
    let (mut supervisor, _) = initial();
    for _ in 0..5 {
        supervisor = step(supervisor, login("00", false), &ctx()).0;
    }
    assert!(supervisor.as_ref().unwrap().locked);
    let itself = UnlockedBy::Operator(OperatorNo::parse("00").unwrap());
    let err = decide(supervisor.as_ref(), unlock_by("00", itself), &ctx()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "not allowed: the supervisor cannot unlock itself on the terminal: use posctl"
    );
    let (supervisor, result) = step(supervisor, unlock_by("00", UnlockedBy::Console), &console());
    assert!(matches!(
        &result.unwrap()[..],
        [Payload::OperatorUnlocked(e)] if e.actor.as_ref().is_some_and(|a| a.subject == "ops:alice")
            && e.unlocked_by_operator_no.is_empty()
    ));
    assert!(!supervisor.unwrap().locked);
    let (_, cashier) = initial();
    let err = decide(
        cashier.as_ref(),
        unlock_by("01", UnlockedBy::Console),
        &console(),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "operator TERM0001:01 is not locked");
}

#[test]
fn password_change_and_reset() {
    let (_, cashier) = initial();
    let change = |ok: bool| OperatorCommand::ChangePassword {
        key: key("01"),
        session_id: "s1".into(),
        current_password_ok: ok,
        new_password_hash: hash(NEW_HASH),
    };
    // a wrong current password counts like a wrong login
    let (cashier, result) = step(cashier, change(false), &ctx());
    assert!(matches!(
        result,
        Err(RegistryError::WrongPassword {
            failed_attempts: 1,
            ..
        })
    ));
    let (cashier, result) = step(cashier, change(true), &ctx());
    assert!(matches!(
        &result.unwrap()[..],
        [Payload::OperatorPasswordChanged(e)] if !e.reset && !e.must_change_password && e.password_hash == NEW_HASH
    ));
    let changed = cashier.clone().unwrap();
    assert!(!changed.must_change_password);
    assert_eq!(
        (changed.password_hash.as_phc(), changed.failed_attempts),
        (NEW_HASH, 0)
    );

    let reset = OperatorCommand::ResetPassword {
        key: key("01"),
        password_hash: hash(CASHIER_HASH),
    };
    let (cashier, _) = step(locked_cashier(), reset, &console());
    let cashier = cashier.unwrap();
    assert!(!cashier.locked && cashier.must_change_password);
    assert_eq!(
        validate_new_password("0000").unwrap_err().field,
        "new_password"
    );
}

#[test]
fn unknown_operators_and_logout() {
    let err = decide(None, login("07", true), &ctx()).unwrap_err();
    assert_eq!(err.to_string(), "operator TERM0001:07 not found");
    let (_, cashier) = initial();
    let (cashier, _) = step(cashier, login("01", true), &ctx());
    let logout = |session: &str| OperatorCommand::Logout {
        key: key("01"),
        session_id: session.into(),
    };
    let err = decide(cashier.as_ref(), logout("s2"), &ctx()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "operator TERM0001:01 is not logged in in session s2"
    );
    let (cashier, _) = step(cashier, logout("s1"), &ctx());
    assert!(!cashier.unwrap().is_logged_in("s1"));
}

#[test]
fn debug_never_shows_the_password_hash() {
    let (supervisor, cashier) = initial();
    let debug = format!("{supervisor:?} {cashier:?}");
    assert!(!debug.contains("argon2id"), "{debug}");
    assert!(debug.contains("<argon2 hash>"));
    let command = format!(
        "{:?}",
        OperatorCommand::ResetPassword {
            key: key("01"),
            password_hash: hash(CASHIER_HASH)
        }
    );
    assert!(!command.contains("argon2id"), "{command}");
}

#[test]
fn replaying_the_recorded_events_rebuilds_the_operator() {
    let tid = TerminalId::parse("TERM0001").unwrap();
    let [_, create] = initial_operators(&tid, hash(SUPERVISOR_HASH), hash(CASHIER_HASH)).unwrap();
    let supervisor = UnlockedBy::Operator(OperatorNo::parse("00").unwrap());
    let mut commands = vec![create];
    commands.extend((0..5).map(|_| login("01", false)));
    commands.push(login("01", true));
    commands.push(unlock_by("01", supervisor));
    commands.push(login("01", true));
    let mut state = None;
    let mut all = Vec::new();
    for command in commands {
        let (next, result) = step(state, command, &ctx());
        state = next;
        match result {
            Ok(events) => all.extend(events),
            Err(err) => all.extend(err.events_to_record().iter().cloned()),
        }
    }
    // the supervisor's events on the same topic are not the cashier's
    all.push(Payload::OperatorLocked(pos_proto::v1::OperatorLocked {
        terminal_id: "TERM0001".into(),
        operator_no: "00".into(),
        failed_attempts: 5,
    }));
    let rebuilt = replay(&all);
    assert_eq!(rebuilt, state);
    let rebuilt = rebuilt.unwrap();
    assert_eq!(rebuilt.version, 9);
    assert!(rebuilt.is_logged_in("s1") && !rebuilt.locked);
}
