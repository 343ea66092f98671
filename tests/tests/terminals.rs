//! Merchants and terminals end to end through the real binaries (`posctl`, `pos-agent`,
//! `terminal-gateway`) against the real broker and Redis: onboarding to operator login, every
//! refusal with its own clear error and no state change, and rebuilding from the topics.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use pos_crypto::{DesKey, retail_mac};
use pos_proto::v1 as pb;
use pos_proto::v1::host_message::Body as HostBody;
use pos_proto::v1::terminal_gateway_client::TerminalGatewayClient;
use pos_proto::v1::terminal_message::Body;
use prost::Message;
use support::{Platform, field, ok, refused};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

#[test]
fn onboarding_to_operator_login_through_the_binaries() {
    let platform = Platform::start();
    let merchant = platform.active_merchant();
    let shown = ok(platform.posctl(&["merchant", "show", &merchant]));
    assert_eq!(field(&shown, "status"), "active");
    assert_eq!(field(&shown, "city"), "上海");
    assert!(
        !shown.contains(&support::valid_id_number()),
        "ID number shown in clear:\n{shown}"
    );
    assert!(
        !shown.contains(&support::valid_card_account()),
        "account shown in clear:\n{shown}"
    );

    let terminal = platform.terminal(&merchant, "SN-0001");
    assert_eq!(terminal.len(), 8);
    let code = platform.activation_code(&terminal);

    let activated = ok(platform.agent("a", &["activate", "--code", &code, "--serial", "SN-0001"]));
    assert!(activated.contains(&terminal), "{activated}");
    let dir = platform.device_dir("a");
    let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    let file_mode = std::fs::metadata(dir.join("terminal.json"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(
        (dir_mode, file_mode),
        (0o700, 0o600),
        "the TMK must be owner-only"
    );

    // The code is single use: a second device cannot take the terminal.
    let again = refused(platform.agent("b", &["activate", "--code", &code, "--serial", "SN-0001"]));
    assert!(again.contains("already used"), "{again}");

    let signed_in = ok(platform.agent("a", &["sign-in"]));
    assert!(signed_in.contains("batch 000001"), "{signed_in}");
    let fleet = ok(platform.posctl(&["terminal", "show", &terminal]));
    assert_eq!(field(&fleet, "state"), "active");
    assert_eq!(field(&fleet, "batch_no"), "000001");
    assert!(
        field(&fleet, "software_version").starts_with("pos-agent "),
        "{fleet}"
    );

    let login = ok(platform.agent("a", &["login", "--operator", "01", "--password", "0000"]));
    assert!(login.contains("must be changed"), "{login}");
    ok(platform.agent(
        "a",
        &[
            "password",
            "--operator",
            "01",
            "--old",
            "0000",
            "--new",
            "73915284",
        ],
    ));
    let relogin = ok(platform.agent(
        "a",
        &["login", "--operator", "01", "--password", "73915284"],
    ));
    assert!(!relogin.contains("must be changed"), "{relogin}");

    // Signing in again rotates the working keys.
    let session = || std::fs::read_to_string(dir.join("session.json")).unwrap();
    let first_keys = session();
    let again = ok(platform.agent("a", &["sign-in"]));
    assert!(again.contains("key version 2"), "{again}");
    let mac_key = |text: &str| text.split("\"mac_key\": \"").nth(1).unwrap()[..32].to_owned();
    assert_ne!(
        mac_key(&session()),
        mac_key(&first_keys),
        "a new sign-in brings new keys"
    );
    let stale = refused(platform.agent("b", &["sign-in"]));
    assert!(stale.contains("not activated"), "{stale}");
    let fleet = ok(platform.posctl(&["terminal", "show", &terminal]));
    assert_eq!(field(&fleet, "connected"), "false");
}

#[test]
fn operators_need_a_credential_with_the_right_role() {
    let platform = Platform::start();
    let anonymous = refused(platform.posctl_as("not-a-token", &["merchant", "list"]));
    assert!(
        anonymous.contains("unknown operator credential"),
        "{anonymous}"
    );

    let merchant = ok(platform.posctl_as(
        support::ONBOARDING_TOKEN,
        &support::onboard_args(&support::valid_id_number(), &support::valid_card_account()),
    ));
    let id = field(&merchant, "merchant_id");
    let denied = refused(platform.posctl_as(
        support::ONBOARDING_TOKEN,
        &["merchant", "suspend", &id, "--reason", "test"],
    ));
    assert!(denied.contains("lacks the risk role"), "{denied}");
    let still = ok(platform.posctl(&["merchant", "show", &id]));
    assert_eq!(field(&still, "status"), "pending");
}

#[test]
fn invalid_onboarding_is_refused_field_by_field() {
    let platform = Platform::start();
    let mut args = support::onboard_args("110105194912310021", "6222021234");
    let name = args.iter().position(|a| *a == "--name").unwrap();
    args[name + 1] = "张三贸易有限公司";
    let refusal = refused(platform.posctl(&args));
    for problem in ["name", "legal_person_id_number", "settlement_account"] {
        assert!(
            refusal.contains(problem),
            "{problem} not reported:\n{refusal}"
        );
    }
    let list = ok(platform.posctl(&["merchant", "list"]));
    assert!(list.trim().is_empty(), "nothing may be onboarded:\n{list}");
}

#[test]
fn activation_codes_expire() {
    let platform = Platform::start();
    let merchant = platform.active_merchant();
    let terminal = platform.terminal(&merchant, "SN-EXP");
    let out = ok(platform.posctl(&["terminal", "activation-code", &terminal, "--ttl", "1"]));
    let code = field(&out, "activation_code");
    std::thread::sleep(Duration::from_millis(2_500));
    let expired =
        refused(platform.agent("x", &["activate", "--code", &code, "--serial", "SN-EXP"]));
    assert!(expired.contains("expired"), "{expired}");
    let shown = ok(platform.posctl(&["terminal", "show", &terminal]));
    assert_eq!(
        field(&shown, "state"),
        "registered",
        "an expired code activates nothing"
    );
}

#[test]
fn a_suspended_merchants_terminal_cannot_sign_in() {
    let platform = Platform::start();
    let merchant = platform.active_merchant();
    let terminal = platform.signed_in_terminal(&merchant, "s");
    ok(platform.posctl(&["merchant", "suspend", &merchant, "--reason", "chargebacks"]));
    let refusal = refused(platform.agent("s", &["sign-in"]));
    assert!(refusal.contains("(03)"), "{refusal}");
    let fleet = ok(platform.posctl(&["terminal", "show", &terminal]));
    assert_eq!(field(&fleet, "batch_no"), "000001");
}

#[test]
fn five_wrong_passwords_lock_the_operator_until_the_supervisor_unlocks() {
    let platform = Platform::start();
    let merchant = platform.active_merchant();
    let terminal = platform.signed_in_terminal(&merchant, "l");
    for attempt in 1..=4 {
        let wrong =
            refused(platform.agent("l", &["login", "--operator", "01", "--password", "9999"]));
        assert!(wrong.contains("(55)"), "attempt {attempt}: {wrong}");
    }
    let fifth = refused(platform.agent("l", &["login", "--operator", "01", "--password", "9999"]));
    assert!(fifth.contains("(75)"), "{fifth}");
    let locked = refused(platform.agent("l", &["login", "--operator", "01", "--password", "0000"]));
    assert!(
        locked.contains("(75)"),
        "the right password must not open a locked operator: {locked}"
    );
    let operators = ok(platform.posctl(&["operator", "list", &terminal]));
    assert!(operators.contains("operator 01: locked"), "{operators}");

    ok(platform.agent(
        "l",
        &[
            "unlock",
            "--operator",
            "01",
            "--supervisor-password",
            "0000",
        ],
    ));
    ok(platform.agent("l", &["login", "--operator", "01", "--password", "0000"]));
}

/// A raw terminal: the protocol by hand, to send what a well-behaved agent never would.
struct RawTerminal {
    outgoing: mpsc::Sender<pb::TerminalMessage>,
    incoming: tonic::Streaming<pb::HostMessage>,
}

impl RawTerminal {
    async fn connect(url: &str) -> Self {
        let channel = tonic::transport::Channel::from_shared(url.to_owned())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let (outgoing, receiver) = mpsc::channel(8);
        let incoming = TerminalGatewayClient::new(channel)
            .connect(ReceiverStream::new(receiver))
            .await
            .unwrap()
            .into_inner();
        Self { outgoing, incoming }
    }

    /// Sends one message and returns the answer; `None` when the host closed the stream.
    async fn send(&mut self, message: pb::TerminalMessage) -> Option<HostBody> {
        self.outgoing.send(message).await.ok()?;
        let answer = tokio::time::timeout(Duration::from_secs(30), self.incoming.message())
            .await
            .expect("the host answers or closes in time");
        answer.ok().flatten().and_then(|m| m.body)
    }
}

fn signed(terminal: &str, seq: u64, body: Body, key: &DesKey) -> pb::TerminalMessage {
    let mut message = pb::TerminalMessage {
        terminal_id: terminal.to_owned(),
        message_seq: seq,
        mac: Vec::new(),
        body: Some(body),
    };
    message.mac = retail_mac(key, &message.encode_to_vec()).to_vec();
    message
}

fn sign_in_body(terminal: &str, serial: &str, nonce: u8) -> Body {
    Body::SignIn(pb::SignInRequest {
        terminal_id: terminal.to_owned(),
        serial_number: serial.to_owned(),
        software_version: "raw-test".to_owned(),
        nonce: vec![nonce; 16],
        terminal_time: Some(prost_types::Timestamp::from(SystemTime::now())),
        ..pb::SignInRequest::default()
    })
}

fn error_code(answer: Option<HostBody>) -> String {
    match answer {
        Some(HostBody::Error(error)) => error.response_code,
        other => panic!("expected an error response, got {other:?}"),
    }
}

fn device_tmk(platform: &Platform, device: &str) -> DesKey {
    let identity =
        std::fs::read_to_string(platform.device_dir(device).join("terminal.json")).unwrap();
    let tmk = identity
        .split("\"tmk\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    DesKey::from_hex(tmk).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_macs_unknown_terminals_and_replayed_sign_ins_are_refused() {
    let platform = tokio::task::spawn_blocking(Platform::start).await.unwrap();
    let (merchant, terminal) = tokio::task::block_in_place(|| {
        let merchant = platform.active_merchant();
        let terminal = platform.signed_in_terminal(&merchant, "r");
        (merchant, terminal)
    });
    let _ = merchant;
    let tmk = device_tmk(&platform, "r");
    let before =
        tokio::task::block_in_place(|| ok(platform.posctl(&["terminal", "show", &terminal])));

    // Unknown terminal.
    let mut raw = RawTerminal::connect(&platform.url()).await;
    let unknown = raw
        .send(signed(
            "ZZ999999",
            1,
            sign_in_body("ZZ999999", "SN-r", 1),
            &tmk,
        ))
        .await;
    assert_eq!(error_code(unknown), "97");

    // A sign-in under the wrong key.
    let mut raw = RawTerminal::connect(&platform.url()).await;
    let wrong_key = DesKey::random();
    let bad_mac = raw
        .send(signed(
            &terminal,
            1,
            sign_in_body(&terminal, "SN-r", 2),
            &wrong_key,
        ))
        .await;
    assert_eq!(error_code(bad_mac), "A0");

    // A recorded sign-in sent again.
    let mut raw = RawTerminal::connect(&platform.url()).await;
    let original = signed(&terminal, 1, sign_in_body(&terminal, "SN-r", 3), &tmk);
    let first = raw.send(original.clone()).await;
    assert!(matches!(first, Some(HostBody::SignIn(_))), "{first:?}");
    let mut raw = RawTerminal::connect(&platform.url()).await;
    let replay = raw.send(original).await;
    assert_eq!(error_code(replay), "94");

    // A session message with a bad MAC, repeated: refused each time, then the stream closes.
    let mut raw = RawTerminal::connect(&platform.url()).await;
    let heartbeat = Body::Heartbeat(pb::TerminalHeartbeat::default());
    for seq in 1..=3 {
        let answer = raw
            .send(signed(&terminal, 100 + seq, heartbeat.clone(), &wrong_key))
            .await;
        assert_eq!(error_code(answer), "A0");
    }
    let after_limit = raw
        .send(signed(&terminal, 104, heartbeat, &wrong_key))
        .await;
    assert!(
        after_limit.is_none(),
        "the gateway drops the session after repeated MAC failures"
    );

    let after =
        tokio::task::block_in_place(|| ok(platform.posctl(&["terminal", "show", &terminal])));
    assert_eq!(field(&after, "state"), field(&before, "state"));
    assert_eq!(field(&after, "batch_no"), field(&before, "batch_no"));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The registry part of `posctl terminal show` (the fleet part is hot state).
fn registry_lines(show: &str) -> Vec<String> {
    show.lines()
        .filter(|l| {
            [
                "terminal_id",
                "merchant_id",
                "state",
                "serial_number",
                "tmk_check_value",
            ]
            .iter()
            .any(|k| l.starts_with(&format!("{k}: ")))
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_registry_rebuilds_from_the_topics_after_redis_is_flushed() {
    let mut platform = Platform::start();
    let merchant = platform.active_merchant();
    let terminal = platform.signed_in_terminal(&merchant, "f");
    refused(platform.agent("f", &["login", "--operator", "01", "--password", "9999"]));
    let snapshot = |p: &Platform| {
        (
            ok(p.posctl(&["merchant", "show", &merchant])),
            registry_lines(&ok(p.posctl(&["terminal", "show", &terminal]))),
            ok(p.posctl(&["operator", "list", &terminal])),
        )
    };
    let before = snapshot(&platform);
    assert!(
        before
            .2
            .contains("operator 01: unlocked, must change password, failed attempts 1"),
        "{}",
        before.2
    );

    let store_config = platform.env.store();
    let flushed = runtime().block_on(async {
        let store = pos_store::Store::connect(&store_config).await.unwrap();
        store.flush_prefix().await.unwrap()
    });
    assert!(flushed > 0, "the test must really empty Redis");
    platform.restart_gateway();

    assert_eq!(
        snapshot(&platform),
        before,
        "merchants, terminals and operators come back from the topics"
    );
    // Working keys are hot state: the terminal signs in again, then carries on.
    let stale = refused(platform.agent("f", &["login", "--operator", "01", "--password", "0000"]));
    assert!(stale.contains("(12)"), "{stale}");
    ok(platform.agent("f", &["sign-in"]));
    ok(platform.agent("f", &["login", "--operator", "01", "--password", "0000"]));
}

/// Every value under the test's Redis prefix, and every record of its registry topics.
fn stored_bytes(platform: &Platform) -> Vec<u8> {
    let mut all = support::redis_bytes(&platform.env);
    let env = platform.env.clone();
    runtime().block_on(async move {
        let reader = pos_events::EventReader::from_beginning(
            &env.bus("scan"),
            &[pos_events::Topic::Merchants, pos_events::Topic::Terminals],
        )
        .await
        .unwrap();
        reader
            .catch_up(async |event| {
                all.extend_from_slice(&event.envelope.encode_to_vec());
                Ok(())
            })
            .await
            .unwrap();
        all
    })
}

#[test]
fn no_key_password_or_personal_number_reaches_logs_events_or_redis() {
    let platform = Platform::start();
    let merchant = platform.active_merchant();
    let terminal = platform.terminal(&merchant, "SN-SCAN");
    let code = platform.activation_code(&terminal);
    ok(platform.agent("k", &["activate", "--code", &code, "--serial", "SN-SCAN"]));
    ok(platform.agent("k", &["sign-in"]));
    ok(platform.agent("k", &["login", "--operator", "01", "--password", "0000"]));
    ok(platform.agent(
        "k",
        &[
            "password",
            "--operator",
            "01",
            "--old",
            "0000",
            "--new",
            "73915284",
        ],
    ));
    ok(platform.agent(
        "k",
        &["login", "--operator", "01", "--password", "73915284"],
    ));

    let device = platform.device_dir("k");
    let read = |file: &str, key: &str| {
        let text = std::fs::read_to_string(device.join(file)).unwrap();
        text.split(&format!("\"{key}\": \""))
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned()
    };
    let secrets = [
        ("terminal master key", read("terminal.json", "tmk")),
        ("PIN key", read("session.json", "pin_key")),
        ("MAC key", read("session.json", "mac_key")),
        ("activation code", code),
        ("operator password", "73915284".to_owned()),
        ("resident ID number", support::valid_id_number()),
        ("settlement account", support::valid_card_account()),
        ("phone number", "13800138000".to_owned()),
        ("admin token", support::ADMIN_TOKEN.to_owned()),
    ];
    let log = platform.gateway.log_text();
    let stored = stored_bytes(&platform);
    assert!(
        stored.len() > 1_000,
        "the scan must see the events and Redis"
    );
    for (what, secret) in &secrets {
        for form in [secret.to_lowercase(), secret.to_uppercase()] {
            assert!(!log.contains(&form), "{what} appears in the gateway log");
            assert!(
                !stored.windows(form.len()).any(|w| w == form.as_bytes()),
                "{what} appears in an event or in Redis"
            );
        }
        if let Ok(raw) = hex::decode(secret)
            && raw.len() == 16
        {
            assert!(
                !stored.windows(16).any(|w| w == raw.as_slice()),
                "{what} appears as raw bytes in an event or in Redis"
            );
        }
    }
}

#[test]
fn activation_attempts_are_rate_limited() {
    let platform = Platform::start();
    let merchant = platform.active_merchant();
    let terminal = platform.terminal(&merchant, "SN-GUESS");
    let code = platform.activation_code(&terminal);
    let wrong = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    let mut last = String::new();
    for _ in 0..21 {
        last = refused(platform.agent("g", &["activate", "--code", wrong, "--serial", "SN-OTHER"]));
    }
    assert!(last.contains("too many activation attempts"), "{last}");
    // The limit is per device and address: the right code from the same address waits too.
    let blocked =
        refused(platform.agent("g", &["activate", "--code", &code, "--serial", "SN-GUESS"]));
    assert!(
        blocked.contains("too many activation attempts"),
        "{blocked}"
    );
    let shown = ok(platform.posctl(&["terminal", "show", &terminal]));
    assert_eq!(
        field(&shown, "state"),
        "registered",
        "guessing activates nothing"
    );
}
