//! The authorization service through its gRPC API, as terminal-gateway calls it, with the real
//! `authorization` and `issuer-sim` binaries against the real broker and Redis. The merchant,
//! terminal and session facts the gateway would write are seeded in Redis in pos-facts' layout;
//! money is checked at the bank (`issuer-sim account`) to the fen, decisions on the
//! transactions topic, and after every test no PAN, track data or PIN block may be found in an
//! event, a Redis key or value, or a log line.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pos_crypto::{DesKey, Hsm, SoftHsm};
use pos_events::{EventEnvelope, EventReader, Payload, Topic};
use pos_proto::v1 as pb;
use pos_proto::v1::authorization_client::AuthorizationClient;
use pos_store::Store;
use pos_testkit::{ServiceProcess, TestEnv, free_port, run_cli};
use prost::Message;
use tonic::transport::Channel;

const MERCHANT: &str = "898310048990001";
const TERMINAL: &str = "TERMA001";
/// The merchant's per-transaction limit: 5000.00 CNY.
const MERCHANT_LIMIT_FEN: i64 = 500_000;
const PIN: &str = "123456";

/// A test card of this file's own bank.
#[derive(Debug, Clone)]
struct Card {
    pan: String,
    expiry: &'static str,
    service_code: &'static str,
}

/// Completes `prefix` with its Luhn check digit.
fn luhn(prefix: &str) -> String {
    let sum: u32 = prefix
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    format!("{prefix}{}", (10 - sum % 10) % 10)
}

/// The cards: a PIN-required debit card, one with 30.00 left, an expired one, one for wrong
/// PINs, and a credit card for pre-authorizations.
struct Cards {
    debit: Card,
    low: Card,
    expired: Card,
    wrong_pin: Card,
    credit: Card,
}

impl Cards {
    fn new() -> Self {
        let card = |serial: &str, expiry, service_code| Card {
            pan: luhn(&format!("621700009900{serial}")),
            expiry,
            service_code,
        };
        Self {
            debit: card("100001", "3012", "220"),
            low: card("100002", "3012", "220"),
            expired: card("100003", "2001", "220"),
            wrong_pin: card("100004", "3012", "220"),
            credit: card("100005", "2912", "201"),
        }
    }

    fn all(&self) -> [&Card; 5] {
        [
            &self.debit,
            &self.low,
            &self.expired,
            &self.wrong_pin,
            &self.credit,
        ]
    }

    fn seed_json(&self) -> String {
        let debit = |card: &Card, balance: &str| {
            format!(
                r#"{{"pan": "{}", "expiry": "{}", "service_code": "{}", "funding": "debit", "pin": "{PIN}", "currency": "CNY", "balance": "{balance}"}}"#,
                card.pan, card.expiry, card.service_code
            )
        };
        let credit = format!(
            r#"{{"pan": "{}", "expiry": "{}", "service_code": "{}", "funding": "credit", "pin": "{PIN}", "currency": "CNY", "credit_limit": "20000.00"}}"#,
            self.credit.pan, self.credit.expiry, self.credit.service_code
        );
        format!(
            r#"{{"about": "authorization tests", "cards": [{}, {}, {}, {}, {credit}]}}"#,
            debit(&self.debit, "10000.00"),
            debit(&self.low, "30.00"),
            debit(&self.expired, "10000.00"),
            debit(&self.wrong_pin, "10000.00"),
        )
    }
}

/// How the card is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Swipe,
    Chip,
    Tap,
}

/// Field 55 with every mandatory tag, for `amount_fen` CNY.
fn field55(amount_fen: i64, skip: &[u16]) -> Vec<u8> {
    let digits = format!("{amount_fen:012}");
    let amount: Vec<u8> = digits
        .as_bytes()
        .chunks(2)
        .map(|p| ((p[0] - b'0') << 4) | (p[1] - b'0'))
        .collect();
    let tags: [(u16, Vec<u8>); 14] = [
        (0x9F26, vec![0x3C, 0x1A, 0x77, 0x02, 0x9E, 0x41, 0x55, 0xD0]),
        (0x9F27, vec![0x80]),
        (0x9F10, vec![0x07, 0x01, 0x01, 0x03, 0xA0, 0x00, 0x00, 0x01]),
        (0x9F37, vec![0x12, 0x34, 0x56, 0x78]),
        (0x9F36, vec![0x00, 0x07]),
        (0x95, vec![0; 5]),
        (0x9A, vec![0x25, 0x06, 0x01]),
        (0x9C, vec![0x00]),
        (0x9F02, amount),
        (0x5F2A, vec![0x01, 0x56]),
        (0x82, vec![0x7C, 0x00]),
        (0x9F1A, vec![0x01, 0x56]),
        (0x9F03, vec![0; 6]),
        (0x9F33, vec![0xE0, 0xF1, 0xC8]),
    ];
    let mut out = Vec::new();
    for (tag, value) in tags.iter().filter(|(t, _)| !skip.contains(t)) {
        if *tag > 0xFF {
            out.extend(tag.to_be_bytes());
        } else {
            out.push(u8::try_from(*tag).unwrap());
        }
        out.push(u8::try_from(value.len()).unwrap());
        out.extend_from_slice(value);
    }
    out
}

fn cny(fen: i64) -> Option<pb::Money> {
    Some(pb::Money {
        minor_units: fen,
        currency: "CNY".to_owned(),
    })
}

/// A change to a request.
type Edit = dyn Fn(&mut pb::AuthorizationRequest);

/// authorization and issuer-sim for one test, with this test's topics, keys and files.
struct Stack {
    env: TestEnv,
    dir: PathBuf,
    cards: Cards,
    store: Store,
    pin_key: DesKey,
    pin_under_lmk: String,
    issuer: Option<ServiceProcess>,
    issuer_port: u16,
    authorization: ServiceProcess,
    authorization_envs: Vec<(String, String)>,
    authorization_port: u16,
    /// Logs of earlier authorization processes of this test.
    earlier_logs: Vec<String>,
    client: AuthorizationClient<Channel>,
    stan: AtomicU32,
    /// Encrypted PIN blocks sent, to look for later.
    pin_blocks: std::sync::Mutex<Vec<Vec<u8>>>,
    /// Card numbers sent, to look for later.
    pans: std::sync::Mutex<Vec<String>>,
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn random_hex32() -> String {
    let key = DesKey::random();
    let other = DesKey::random();
    format!(
        "{}{}",
        hex::encode(key.expose_bytes()),
        hex::encode(other.expose_bytes())
    )
}

impl Stack {
    async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts the stack; `extra` environment goes to authorization.
    async fn start_with(extra: &[(&str, String)]) -> Self {
        let env = TestEnv::new();
        let dir = std::env::temp_dir().join("pos-tests").join(&env.namespace);
        std::fs::create_dir_all(&dir).unwrap();
        let lmk = random_hex32();
        write_private(&dir.join("lmk.hex"), &lmk);
        write_private(&dir.join("token-key.hex"), &random_hex32());
        let cards = Cards::new();
        std::fs::write(dir.join("cards.json"), cards.seed_json()).unwrap();

        let store = Store::connect(&env.store()).await.unwrap();
        let pin_key = DesKey::random();
        let pin_under_lmk = SoftHsm::from_hex(&lmk)
            .unwrap()
            .import_key(&pin_key)
            .unwrap()
            .to_hex();
        seed_facts(&store, &pin_under_lmk).await;

        let issuer_port = free_port();
        let mut stack_issuer = spawn_issuer(&env, &dir, issuer_port);
        stack_issuer.wait_for_port(issuer_port);

        let port = free_port();
        let envs: Vec<(String, String)> = [
            ("POS_AUTHORIZATION_LISTEN", format!("127.0.0.1:{port}")),
            (
                "POS_AUTHORIZATION_METRICS",
                format!("127.0.0.1:{}", free_port()),
            ),
            ("POS_KAFKA", env.kafka.clone()),
            ("POS_TOPIC_NAMESPACE", env.namespace.clone()),
            ("POS_REDIS", env.redis.clone()),
            ("POS_REDIS_PREFIX", env.namespace.clone()),
            (
                "POS_HSM_LMK_FILE",
                dir.join("lmk.hex").display().to_string(),
            ),
            (
                "POS_TOKEN_KEY_FILE",
                dir.join("token-key.hex").display().to_string(),
            ),
            ("POS_ISSUER_URL", format!("http://127.0.0.1:{issuer_port}")),
            ("POS_ISSUER_TIMEOUT_MS", "3000".to_owned()),
            ("RUST_LOG", "debug".to_owned()),
        ]
        .into_iter()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .chain(extra.iter().map(|(k, v)| (*k, v.clone())))
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let (authorization, client) = spawn_authorization(&dir, &envs, port).await;
        Self {
            env,
            dir,
            cards,
            store,
            pin_key,
            pin_under_lmk,
            issuer: Some(stack_issuer),
            issuer_port,
            authorization,
            authorization_envs: envs,
            authorization_port: port,
            earlier_logs: Vec::new(),
            client,
            stan: AtomicU32::new(1),
            pin_blocks: std::sync::Mutex::new(Vec::new()),
            pans: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Flushes this test's Redis keys (not the bank's), puts back what the gateway would
    /// rebuild (merchant, terminal, session) and restarts authorization on the same port.
    async fn flush_redis_and_restart(&mut self) {
        self.authorization.stop();
        self.earlier_logs.push(self.authorization.log_text());
        let deleted = self.store.flush_prefix().await.unwrap();
        assert!(deleted > 0);
        seed_facts(&self.store, &self.pin_under_lmk).await;
        let (authorization, client) =
            spawn_authorization(&self.dir, &self.authorization_envs, self.authorization_port).await;
        self.authorization = authorization;
        self.client = client;
    }

    fn next_stan(&self) -> u32 {
        self.stan.fetch_add(1, Ordering::SeqCst)
    }

    /// The terminal's PIN block for `pin` and `card`, under its session PIN key.
    fn pin_block(&self, pin: &str, card: &Card) -> Vec<u8> {
        let clear = pos_crypto::pinblock::format0(pin, &card.pan).unwrap();
        let block = self.pin_key.encrypt_ecb(&clear).unwrap();
        self.pin_blocks.lock().unwrap().push(block.clone());
        block
    }

    /// A request of `kind` for `amount_fen` with `card` read by `entry`, PIN entered.
    fn request(
        &self,
        kind: pb::TransactionType,
        card: &Card,
        entry: Entry,
        amount_fen: Option<i64>,
    ) -> pb::AuthorizationRequest {
        self.pans.lock().unwrap().push(card.pan.clone());
        let track2 = format!(
            "{}={}{}0000012300000",
            card.pan, card.expiry, card.service_code
        );
        let (entry_mode, emv_data) = match entry {
            Entry::Swipe => (pb::CardEntryMode::Swipe, Vec::new()),
            Entry::Chip => (
                pb::CardEntryMode::Chip,
                field55(amount_fen.unwrap_or(0), &[]),
            ),
            Entry::Tap => (
                pb::CardEntryMode::Contactless,
                field55(amount_fen.unwrap_or(0), &[]),
            ),
        };
        pb::AuthorizationRequest {
            transaction_type: kind as i32,
            terminal_id: TERMINAL.to_owned(),
            batch_no: 1,
            stan: self.next_stan(),
            merchant_id: MERCHANT.to_owned(),
            operator_no: "01".to_owned(),
            amount: amount_fen.and_then(cny),
            card: Some(pb::CardData {
                pan: card.pan.clone(),
                expiry: card.expiry.to_owned(),
                service_code: card.service_code.to_owned(),
                track2,
                entry_mode: entry_mode as i32,
                emv_data,
                card_sequence_number: "001".to_owned(),
                displayed_last4: card.pan[card.pan.len() - 4..].to_owned(),
            }),
            pin_block: self.pin_block(PIN, card),
            pin_key: Some(pb::PinKeyRef {
                terminal_id: TERMINAL.to_owned(),
                key_version: 1,
            }),
            local_datetime: "2025-06-01T12:00:00".to_owned(),
            original: None,
            received_at: None,
            session_id: "session-1".to_owned(),
        }
    }

    fn purchase(&self, card: &Card, entry: Entry, amount_fen: i64) -> pb::AuthorizationRequest {
        self.request(pb::TransactionType::Purchase, card, entry, Some(amount_fen))
    }

    async fn authorize(&self, request: pb::AuthorizationRequest) -> pb::AuthorizationResponse {
        self.client
            .clone()
            .authorize(request)
            .await
            .expect("Authorize answers")
            .into_inner()
    }

    /// `issuer-sim account --pan`: "available: 9950.00 CNY" in fen.
    fn available_fen(&self, card: &Card) -> i64 {
        let report = self.account(card);
        let line = report
            .lines()
            .find_map(|l| l.strip_prefix("available: "))
            .unwrap_or_else(|| panic!("no available line in\n{report}"));
        let amount = line.split_whitespace().next().unwrap();
        let (yuan, fen) = amount.split_once('.').unwrap();
        yuan.parse::<i64>().unwrap() * 100 + fen.parse::<i64>().unwrap()
    }

    /// Holds on the card in fen.
    fn holds_fen(&self, card: &Card) -> i64 {
        let report = self.account(card);
        let line = report
            .lines()
            .find_map(|l| l.strip_prefix("holds: "))
            .unwrap();
        let (yuan, fen) = line
            .split_whitespace()
            .next()
            .unwrap()
            .split_once('.')
            .unwrap();
        yuan.parse::<i64>().unwrap() * 100 + fen.parse::<i64>().unwrap()
    }

    fn account(&self, card: &Card) -> String {
        let out = run_cli(
            "issuer-sim",
            &["account", "--pan", &card.pan],
            &issuer_envs(&self.env, &self.dir, self.issuer_port),
            &self.dir,
        );
        assert!(
            out.status.success(),
            "issuer-sim account failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn stop_issuer(&mut self) {
        if let Some(mut issuer) = self.issuer.take() {
            issuer.stop();
        }
    }

    fn start_issuer(&mut self) {
        let mut issuer = spawn_issuer(&self.env, &self.dir, self.issuer_port);
        issuer.wait_for_port(self.issuer_port);
        self.issuer = Some(issuer);
    }

    /// Every event on this test's transactions topic.
    async fn events(&self) -> Vec<EventEnvelope> {
        let reader = EventReader::from_beginning(&self.env.bus("scan"), &[Topic::Transactions])
            .await
            .unwrap();
        let mut events = Vec::new();
        reader
            .catch_up(async |event| {
                events.push(event.envelope.clone());
                Ok(())
            })
            .await
            .unwrap();
        events
    }

    /// The events of the terminal request with `stan`.
    async fn events_of(&self, stan: u32) -> Vec<EventEnvelope> {
        self.events()
            .await
            .into_iter()
            .filter(|e| {
                facts(e)
                    .and_then(|f| f.trace.as_ref())
                    .is_some_and(|t| t.stan == stan)
            })
            .collect()
    }

    /// Fails when `bytes` (found in `place`) hold a PAN, track data or a PIN block of this test.
    fn assert_clean(&self, place: &str, bytes: &[u8]) {
        let mut pans: Vec<String> = self.cards.all().iter().map(|c| c.pan.clone()).collect();
        pans.extend(self.pans.lock().unwrap().iter().cloned());
        let blocks = self.pin_blocks.lock().unwrap().clone();
        let text = String::from_utf8_lossy(bytes);
        for pan in &pans {
            assert!(!text.contains(pan.as_str()), "a full PAN in {place}");
        }
        assert!(
            !text.contains("=3012") && !text.contains("=2912"),
            "track data in {place}"
        );
        for block in &blocks {
            assert!(
                !bytes.windows(block.len()).any(|w| w == block.as_slice()),
                "a PIN block in {place}"
            );
            assert!(
                !text.contains(&hex::encode(block)),
                "a PIN block (hex) in {place}"
            );
            assert!(
                !text.contains(&hex::encode_upper(block)),
                "a PIN block (HEX) in {place}"
            );
        }
    }

    /// Fails when a PAN, track data or a PIN block sent in this test is in an event, a Redis
    /// key or value under this test's prefixes (ours and the bank's), or a log line.
    async fn assert_no_card_data(&self) {
        let events = self.events().await;
        assert!(!events.is_empty());
        for event in &events {
            self.assert_clean("an event", &event.encode_to_vec());
            self.assert_clean("an event", format!("{event:?}").as_bytes());
        }
        self.assert_no_card_data_at_rest().await;
    }

    /// Like [`Stack::assert_no_card_data`] for Redis and the logs only.
    async fn assert_no_card_data_at_rest(&self) {
        let mut conn = self.store.connection();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.env.namespace))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(keys.len() > 5, "the scan sees the records: {keys:?}");
        for key in keys {
            self.assert_clean("a Redis key", key.as_bytes());
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let command = match kind.as_str() {
                "string" => redis::cmd("GET").arg(&key).clone(),
                "hash" => redis::cmd("HGETALL").arg(&key).clone(),
                "list" => redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).clone(),
                "set" => redis::cmd("SMEMBERS").arg(&key).clone(),
                "zset" => redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).clone(),
                "stream" => redis::cmd("XRANGE").arg(&key).arg("-").arg("+").clone(),
                other => panic!("unexpected Redis type {other} of {key}"),
            };
            let value: redis::Value = command.query_async(&mut conn).await.unwrap();
            let mut bytes = Vec::new();
            flatten(&value, &mut bytes);
            self.assert_clean(&format!("Redis value of {key}"), &bytes);
        }
        for (i, log) in self.earlier_logs.iter().enumerate() {
            self.assert_clean(&format!("authorization log {i}"), log.as_bytes());
        }
        let log = self.authorization.log_text();
        assert!(log.contains("authorization serving"), "{log}");
        assert!(
            log.contains("\"level\":\"DEBUG\""),
            "per-request lines are scanned too"
        );
        self.assert_clean("the authorization log", log.as_bytes());
        let issuer_log = std::fs::read(self.dir.join("issuer-sim.log")).unwrap_or_default();
        self.assert_clean("the issuer-sim log", &issuer_log);
    }
}

fn flatten(value: &redis::Value, out: &mut Vec<u8>) {
    match value {
        redis::Value::BulkString(bytes) => {
            out.extend_from_slice(bytes);
            out.push(b'\n');
        }
        redis::Value::SimpleString(text) => out.extend_from_slice(text.as_bytes()),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.iter().for_each(|v| flatten(v, out));
        }
        redis::Value::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            flatten(k, out);
            flatten(v, out);
        }),
        _ => {}
    }
}

/// What terminal-gateway would have written: merchant, terminal and a signed-in session whose
/// PIN key is `pin_under_lmk`.
async fn seed_facts(store: &Store, pin_under_lmk: &str) {
    let limit = MERCHANT_LIMIT_FEN.to_string();
    store
        .hash_set(
            &store.key(&["facts", "merchant", MERCHANT]),
            &[
                ("status", "active"),
                ("name", "上海测试便利店"),
                ("city", "上海"),
                ("mcc", "5411"),
                ("limit_minor", &limit),
                ("currency", "CNY"),
            ],
        )
        .await
        .unwrap();
    store
        .hash_set(
            &store.key(&["facts", "terminal", TERMINAL]),
            &[("status", "active"), ("merchant_id", MERCHANT)],
        )
        .await
        .unwrap();
    store
        .hash_set(
            &store.key(&["session", TERMINAL]),
            &[
                ("key_version", "1"),
                ("pin", pin_under_lmk),
                ("mac", pin_under_lmk),
                ("session_id", "session-1"),
            ],
        )
        .await
        .unwrap();
}

/// Starts authorization and connects a client to it.
async fn spawn_authorization(
    dir: &Path,
    envs: &[(String, String)],
    port: u16,
) -> (ServiceProcess, AuthorizationClient<Channel>) {
    let envs: Vec<(&str, String)> = envs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let mut authorization = ServiceProcess::start("authorization", &envs, dir);
    authorization.wait_for_port(port);
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (authorization, AuthorizationClient::new(channel))
}

fn issuer_envs(env: &TestEnv, dir: &Path, port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("POS_ISSUER_LISTEN", format!("127.0.0.1:{port}")),
        ("POS_ISSUER_METRICS", format!("127.0.0.1:{}", free_port())),
        ("POS_REDIS", env.redis.clone()),
        (
            "POS_ISSUER_REDIS_PREFIX",
            format!("{}-issuer", env.namespace),
        ),
        (
            "POS_ISSUER_SEED",
            dir.join("cards.json").display().to_string(),
        ),
        ("RUST_LOG", "info".to_owned()),
    ]
}

fn spawn_issuer(env: &TestEnv, dir: &Path, port: u16) -> ServiceProcess {
    ServiceProcess::start("issuer-sim", &issuer_envs(env, dir, port), dir)
}

/// The transaction facts of a transaction event.
fn facts(event: &EventEnvelope) -> Option<&pb::TransactionFacts> {
    match event.payload.as_ref()? {
        Payload::AuthorizationApproved(e) => e.txn.as_ref(),
        Payload::AuthorizationDeclined(e) => e.txn.as_ref(),
        Payload::BalanceInquired(e) => e.txn.as_ref(),
        Payload::PreAuthHoldPlaced(e) => e.txn.as_ref(),
        Payload::PreAuthCompleted(e) => e.txn.as_ref(),
        Payload::PreAuthVoided(e) => e.txn.as_ref(),
        _ => None,
    }
}

fn masked(card: &Card) -> String {
    format!("{}****{}", &card.pan[..6], &card.pan[card.pan.len() - 4..])
}

/// Asserts that the request with `stan` was recorded as one AuthorizationDeclined with `code`
/// and `source`, and nothing else.
async fn assert_declined_event(
    stack: &Stack,
    stan: u32,
    code: &str,
    source: pb::DeclineSource,
) -> pb::AuthorizationDeclined {
    let events = stack.events_of(stan).await;
    assert_eq!(events.len(), 1, "one event for STAN {stan}: {events:?}");
    let Some(Payload::AuthorizationDeclined(declined)) = events[0].payload.clone() else {
        panic!("STAN {stan} is not recorded as declined: {:?}", events[0]);
    };
    let txn = declined.txn.as_ref().unwrap();
    assert_eq!(txn.response_code, code, "{txn:?}");
    assert!(txn.approval_code.is_empty());
    assert_eq!(declined.source, source as i32, "{declined:?}");
    assert_eq!(events[0].aggregate_type, "transaction");
    assert_eq!(events[0].sequence, 1);
    declined
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchases_by_swipe_chip_and_tap_debit_exactly_the_amount_once() {
    let stack = Stack::start().await;
    let card = stack.cards.debit.clone();
    assert_eq!(stack.available_fen(&card), 1_000_000);

    let mut expected = 1_000_000;
    let mut approvals = Vec::new();
    for (entry, amount) in [
        (Entry::Swipe, 5_000),
        (Entry::Chip, 12_345),
        (Entry::Tap, 99),
    ] {
        let request = stack.purchase(&card, entry, amount);
        let stan = request.stan;
        let answer = stack.authorize(request).await;
        assert_eq!(answer.response_code, "00", "{entry:?}: {answer:?}");
        assert_eq!(answer.approval_code.len(), 6);
        assert_eq!(answer.rrn.len(), 12);
        assert_eq!(answer.amount, cny(amount));
        assert!(!answer.replayed);
        assert_eq!(answer.card.as_ref().unwrap().masked_pan, masked(&card));
        assert_eq!(answer.fraud_policy, pb::FraudPolicy::None as i32);
        expected -= amount;
        assert_eq!(
            stack.available_fen(&card),
            expected,
            "{entry:?} debits exactly {amount}"
        );

        let events = stack.events_of(stan).await;
        assert_eq!(events.len(), 1);
        let Some(Payload::AuthorizationApproved(approved)) = &events[0].payload else {
            panic!("not approved: {:?}", events[0]);
        };
        let txn = approved.txn.as_ref().unwrap();
        assert_eq!(events[0].aggregate_id, answer.transaction_id);
        assert_eq!(events[0].producer, "authorization");
        assert_eq!(txn.card.as_ref().unwrap().masked_pan, masked(&card));
        assert_eq!(txn.card.as_ref().unwrap().card_token.len(), 64);
        assert_eq!(txn.approval_code, answer.approval_code);
        assert_eq!(txn.amount, cny(amount));
        assert_eq!(txn.merchant_id, MERCHANT);
        assert_eq!(txn.mcc, "5411");
        assert_eq!(txn.request_digest.len(), 64);
        approvals.push(answer);
    }

    // A retry of the first purchase (same STAN, same content, its PIN block made again) gets
    // the first answer and charges nothing more.
    let mut retry = stack.purchase(&card, Entry::Swipe, 5_000);
    retry.stan = 1;
    let replayed = stack.authorize(retry.clone()).await;
    assert!(replayed.replayed);
    assert_eq!(replayed.approval_code, approvals[0].approval_code);
    assert_eq!(replayed.transaction_id, approvals[0].transaction_id);
    assert_eq!(replayed.response_code, "00");
    assert_eq!(stack.available_fen(&card), expected, "a retry charges once");
    assert_eq!(
        stack.events_of(1).await.len(),
        1,
        "a retry records nothing new"
    );

    // The same STAN with another amount is refused, moves no money and records nothing.
    retry.amount = cny(6_000);
    let duplicate = stack.authorize(retry).await;
    assert_eq!(duplicate.response_code, "94", "{duplicate:?}");
    assert!(duplicate.response_message.contains("duplicate"));
    assert!(duplicate.approval_code.is_empty());
    assert_eq!(stack.available_fen(&card), expected);
    assert_eq!(stack.events_of(1).await.len(), 1);

    // A retransmission racing its original: one decision, one debit, the same answer twice.
    let twin = stack.purchase(&card, Entry::Chip, 777);
    let stan = twin.stan;
    let (a, b) = tokio::join!(stack.authorize(twin.clone()), stack.authorize(twin));
    assert_eq!(
        (a.response_code.as_str(), b.response_code.as_str()),
        ("00", "00")
    );
    assert_eq!(a.approval_code, b.approval_code);
    assert_eq!(a.transaction_id, b.transaction_id);
    assert_ne!(a.replayed, b.replayed, "one of them is the replay");
    expected -= 777;
    assert_eq!(stack.available_fen(&card), expected);
    assert_eq!(stack.events_of(stan).await.len(), 1);

    // A balance inquiry answers the issuer's available balance and moves nothing.
    let inquiry = stack.request(
        pb::TransactionType::BalanceInquiry,
        &card,
        Entry::Chip,
        None,
    );
    let stan = inquiry.stan;
    let balance = stack.authorize(inquiry).await;
    assert_eq!(balance.response_code, "00", "{balance:?}");
    assert_eq!(balance.balance, cny(expected));
    assert!(balance.amount.is_none());
    assert_eq!(stack.available_fen(&card), expected);
    let events = stack.events_of(stan).await;
    assert!(matches!(
        events[0].payload,
        Some(Payload::BalanceInquired(_))
    ));

    stack.assert_no_card_data().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declines_give_their_code_move_no_money_and_are_recorded() {
    let stack = Stack::start().await;
    let cards = &stack.cards;
    use pb::DeclineSource as S;

    // 51: the issuer's insufficient funds.
    let request = stack.purchase(&cards.low, Entry::Chip, 5_000);
    let stan = request.stan;
    let answer = stack.authorize(request).await;
    assert_eq!(answer.response_code, "51", "{answer:?}");
    assert_eq!(stack.available_fen(&cards.low), 3_000);
    let declined = assert_declined_event(&stack, stan, "51", S::Issuer).await;
    assert_eq!(
        declined.txn.unwrap().amount,
        cny(5_000),
        "the requested amount"
    );

    // 55: a wrong PIN, then 75 once the issuer blocks the PIN.
    let mut codes = Vec::new();
    for _ in 0..4 {
        let mut request = stack.purchase(&cards.wrong_pin, Entry::Swipe, 1_000);
        request.pin_block = stack.pin_block("999999", &cards.wrong_pin);
        let stan = request.stan;
        let code = stack.authorize(request).await.response_code;
        assert_declined_event(&stack, stan, &code, S::Issuer).await;
        codes.push(code);
    }
    assert_eq!(codes[0], "55", "{codes:?}");
    assert!(
        codes.iter().any(|c| c == "75"),
        "PIN tries exceeded: {codes:?}"
    );
    assert_eq!(stack.available_fen(&cards.wrong_pin), 1_000_000);

    // 54: expired card, refused before the issuer.
    let request = stack.purchase(&cards.expired, Entry::Swipe, 1_000);
    let stan = request.stan;
    let answer = stack.authorize(request).await;
    assert_eq!(answer.response_code, "54", "{answer:?}");
    assert!(answer.response_message.contains("expired"));
    assert_declined_event(&stack, stan, "54", S::Validation).await;
    assert_eq!(stack.available_fen(&cards.expired), 1_000_000);

    // 14: a card number failing Luhn, and a BIN this deployment does not accept.
    let mut request = stack.purchase(&cards.debit, Entry::Swipe, 1_000);
    let mut bad = cards.debit.pan.clone().into_bytes();
    let last = bad.len() - 1;
    bad[last] = b'0' + (bad[last] - b'0' + 1) % 10;
    let bad = String::from_utf8(bad).unwrap();
    stack.pans.lock().unwrap().push(bad.clone());
    let card = request.card.as_mut().unwrap();
    card.track2 = card.track2.replace(&card.pan, &bad);
    card.pan.clone_from(&bad);
    let stan = request.stan;
    let answer = stack.authorize(request).await;
    assert_eq!(answer.response_code, "14", "{answer:?}");
    assert!(answer.response_message.contains("Luhn"), "{answer:?}");
    let declined = assert_declined_event(&stack, stan, "14", S::Validation).await;
    assert!(
        declined.txn.unwrap().card.is_none(),
        "an invalid number is not even masked"
    );
    let visa = Card {
        pan: "4111111111111111".to_owned(),
        expiry: "3012",
        service_code: "201",
    };
    let request = stack.purchase(&visa, Entry::Swipe, 1_000);
    let stan = request.stan;
    let answer = stack.authorize(request).await;
    assert_eq!(answer.response_code, "14");
    assert_eq!(
        answer.response_message,
        "cards of BIN 411111 are not accepted here"
    );
    assert_declined_event(&stack, stan, "14", S::Validation).await;

    // 61: above the merchant's limit of 5000.00.
    let request = stack.purchase(&cards.debit, Entry::Swipe, MERCHANT_LIMIT_FEN + 1);
    let stan = request.stan;
    let answer = stack.authorize(request).await;
    assert_eq!(answer.response_code, "61", "{answer:?}");
    assert_declined_event(&stack, stan, "61", S::Validation).await;

    // 13: zero and negative amounts; 30: malformed field 55, a missing mandatory tag, an amount
    // that differs from the chip's, a missing PIN where the card requires one.
    for amount in [0, -500] {
        let request = stack.purchase(&cards.debit, Entry::Swipe, amount);
        let stan = request.stan;
        let answer = stack.authorize(request).await;
        assert_eq!(answer.response_code, "13", "{answer:?}");
        assert!(answer.response_message.contains("greater than zero"));
        assert_declined_event(&stack, stan, "13", S::Validation).await;
    }
    let format_errors: [(&str, Box<Edit>); 4] = [
        (
            "not well-formed BER-TLV",
            Box::new(|r| r.card.as_mut().unwrap().emv_data = vec![0x9F, 0x26, 0x08, 0x01]),
        ),
        (
            "lacks the mandatory tags 9F26 9F37",
            Box::new(|r| r.card.as_mut().unwrap().emv_data = field55(2_000, &[0x9F26, 0x9F37])),
        ),
        (
            "differs from the transaction amount",
            Box::new(|r| r.card.as_mut().unwrap().emv_data = field55(1_999, &[])),
        ),
        ("requires a PIN", Box::new(|r| r.pin_block.clear())),
    ];
    for (message, edit) in format_errors {
        let mut request = stack.purchase(&cards.debit, Entry::Chip, 2_000);
        edit(&mut request);
        let stan = request.stan;
        let answer = stack.authorize(request).await;
        assert_eq!(answer.response_code, "30", "{message}: {answer:?}");
        assert!(answer.response_message.contains(message), "{answer:?}");
        assert_declined_event(&stack, stan, "30", S::Validation).await;
    }

    // 12: a PIN block under a key version the terminal no longer has (it signed in again).
    let mut stale = stack.purchase(&cards.debit, Entry::Swipe, 1_000);
    stale.pin_key.as_mut().unwrap().key_version = 7;
    let stan = stale.stan;
    let answer = stack.authorize(stale).await;
    assert_eq!(answer.response_code, "12", "{answer:?}");
    assert!(answer.response_message.contains("sign in again"));
    assert_declined_event(&stack, stan, "12", S::Validation).await;

    // A request without a valid key is not a transaction at all.
    let mut keyless = stack.purchase(&cards.debit, Entry::Swipe, 1_000);
    keyless.stan = 0;
    let status = stack.client.clone().authorize(keyless).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    // None of it moved money or was recorded as approved.
    assert_eq!(stack.available_fen(&cards.debit), 1_000_000);
    let approved = stack
        .events()
        .await
        .into_iter()
        .filter(|e| !matches!(e.payload, Some(Payload::AuthorizationDeclined(_))))
        .count();
    assert_eq!(approved, 0, "nothing recorded as approved");
    stack.assert_no_card_data().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_auth_places_a_hold_completion_captures_it_and_void_releases_it() {
    let stack = Stack::start().await;
    let card = stack.cards.credit.clone();
    let start = stack.available_fen(&card);
    assert_eq!(start, 2_000_000);

    // Pre-auth of 100.00: a hold.
    let pre_auth = stack.request(
        pb::TransactionType::PreAuth,
        &card,
        Entry::Chip,
        Some(10_000),
    );
    let held = stack.authorize(pre_auth).await;
    assert_eq!(held.response_code, "00", "{held:?}");
    assert_eq!(stack.holds_fen(&card), 10_000);
    assert_eq!(stack.available_fen(&card), start - 10_000);

    // Completion of 115.00 (the pre-auth plus 15 %): captured, hold gone.
    let completion = |amount: i64, approval_code: &str| {
        let mut request = stack.request(
            pb::TransactionType::PreAuthCompletion,
            &card,
            Entry::Swipe,
            Some(amount),
        );
        request.original = Some(pb::OriginalTransactionRef {
            approval_code: approval_code.to_owned(),
            business_date: held.business_date.clone(),
            ..pb::OriginalTransactionRef::default()
        });
        request
    };
    let too_much = completion(11_501, &held.approval_code);
    let stan = too_much.stan;
    let refused = stack.authorize(too_much).await;
    assert_eq!(refused.response_code, "64", "{refused:?}");
    assert_declined_event(&stack, stan, "64", pb::DeclineSource::Validation).await;
    assert_eq!(
        stack.holds_fen(&card),
        10_000,
        "a refused completion leaves the hold"
    );

    let unknown = stack.authorize(completion(5_000, "ZZZ999")).await;
    assert_eq!(unknown.response_code, "25", "{unknown:?}");

    let request = completion(11_500, &held.approval_code);
    let stan = request.stan;
    let captured = stack.authorize(request).await;
    assert_eq!(captured.response_code, "00", "{captured:?}");
    assert_eq!(captured.amount, cny(11_500));
    let original = captured.original.as_ref().unwrap();
    assert_eq!(original.transaction_id, held.transaction_id);
    assert_eq!(original.amount, cny(10_000));
    assert_eq!(stack.holds_fen(&card), 0);
    assert_eq!(stack.available_fen(&card), start - 11_500);
    let events = stack.events_of(stan).await;
    let Some(Payload::PreAuthCompleted(completed)) = &events[0].payload else {
        panic!("not a completion: {events:?}");
    };
    assert_eq!(completed.hold_amount, cny(10_000));
    assert_eq!(
        completed
            .txn
            .as_ref()
            .unwrap()
            .original
            .as_ref()
            .unwrap()
            .transaction_id,
        held.transaction_id
    );

    // The pre-auth is used up: a second completion is refused.
    let again = stack
        .authorize(completion(1_000, &held.approval_code))
        .await;
    assert_eq!(again.response_code, "12", "{again:?}");
    assert_eq!(stack.available_fen(&card), start - 11_500);

    // Another pre-auth, released by its void.
    let second = stack.request(
        pb::TransactionType::PreAuth,
        &card,
        Entry::Tap,
        Some(30_000),
    );
    let second = stack.authorize(second).await;
    assert_eq!(second.response_code, "00", "{second:?}");
    assert_eq!(stack.holds_fen(&card), 30_000);
    let void = |amount| {
        let mut request = stack.request(
            pb::TransactionType::PreAuthVoid,
            &card,
            Entry::Swipe,
            amount,
        );
        request.original = Some(pb::OriginalTransactionRef {
            approval_code: second.approval_code.clone(),
            ..pb::OriginalTransactionRef::default()
        });
        request
    };
    let partial = stack.authorize(void(Some(10_000))).await;
    assert_eq!(partial.response_code, "64", "{partial:?}");
    let request = void(Some(30_000));
    let stan = request.stan;
    let released = stack.authorize(request).await;
    assert_eq!(released.response_code, "00", "{released:?}");
    assert_eq!(stack.holds_fen(&card), 0);
    assert_eq!(stack.available_fen(&card), start - 11_500);
    let events = stack.events_of(stan).await;
    assert!(
        matches!(events[0].payload, Some(Payload::PreAuthVoided(_))),
        "{events:?}"
    );
    let twice = stack.authorize(void(None)).await;
    assert_eq!(twice.response_code, "12", "{twice:?}");

    let kinds: Vec<&str> = stack
        .events()
        .await
        .iter()
        .filter_map(|e| match e.payload.as_ref()? {
            Payload::PreAuthHoldPlaced(_) => Some("hold"),
            Payload::PreAuthCompleted(_) => Some("completed"),
            Payload::PreAuthVoided(_) => Some("voided"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["hold", "completed", "hold", "voided"]);
    stack.assert_no_card_data().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_issuer_answers_91_and_moves_no_money() {
    let mut stack = Stack::start().await;
    let card = stack.cards.debit.clone();
    stack.stop_issuer();

    let request = stack.purchase(&card, Entry::Swipe, 5_000);
    let stan = request.stan;
    let answer = stack.authorize(request).await;
    assert_eq!(answer.response_code, "91", "{answer:?}");
    assert!(answer.rrn.is_empty(), "the issuer was not reached");
    assert_declined_event(&stack, stan, "91", pb::DeclineSource::System).await;

    stack.start_issuer();
    assert_eq!(stack.available_fen(&card), 1_000_000, "no money moved");
    // The service reconnects on its own once the bank is back.
    let answer = stack
        .authorize(stack.purchase(&card, Entry::Swipe, 5_000))
        .await;
    assert_eq!(answer.response_code, "00", "{answer:?}");
    assert_eq!(stack.available_fen(&card), 995_000);
    stack.assert_no_card_data().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_fraud_check_fails_open_below_the_limit_and_closed_above() {
    // A fraud-check that accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let stack = Stack::start_with(&[
        ("POS_FRAUD_URL", url),
        ("POS_FRAUD_TIMEOUT_MS", "50".to_owned()),
        ("POS_FRAUD_FAIL_OPEN_BELOW", "1000.00".to_owned()),
    ])
    .await;
    let card = stack.cards.debit.clone();

    let small = stack.purchase(&card, Entry::Swipe, 99_999);
    let stan = small.stan;
    let started = std::time::Instant::now();
    let answer = stack.authorize(small).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the deadline holds"
    );
    assert_eq!(answer.response_code, "00", "{answer:?}");
    assert_eq!(answer.fraud_policy, pb::FraudPolicy::FailOpen as i32);
    let events = stack.events_of(stan).await;
    assert_eq!(
        facts(&events[0]).unwrap().fraud_policy,
        pb::FraudPolicy::FailOpen as i32
    );

    let large = stack.purchase(&card, Entry::Swipe, 100_000);
    let stan = large.stan;
    let answer = stack.authorize(large).await;
    assert_eq!(answer.response_code, "96", "{answer:?}");
    assert_eq!(answer.fraud_policy, pb::FraudPolicy::FailClosed as i32);
    let declined = assert_declined_event(&stack, stan, "96", pb::DeclineSource::Fraud).await;
    assert_eq!(
        declined.txn.unwrap().fraud_policy,
        pb::FraudPolicy::FailClosed as i32
    );
    assert_eq!(stack.available_fen(&card), 1_000_000 - 99_999);
    drop(silent);
    stack.assert_no_card_data().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_redis_flush_retries_still_replay_and_pre_auths_still_complete() {
    let mut stack = Stack::start().await;
    let debit = stack.cards.debit.clone();
    let credit = stack.cards.credit.clone();
    let purchase = stack.purchase(&debit, Entry::Chip, 8_800);
    let first = stack.authorize(purchase.clone()).await;
    assert_eq!(first.response_code, "00", "{first:?}");
    let pre_auth = stack.request(
        pb::TransactionType::PreAuth,
        &credit,
        Entry::Chip,
        Some(20_000),
    );
    let held = stack.authorize(pre_auth).await;
    assert_eq!(held.response_code, "00", "{held:?}");

    stack.flush_redis_and_restart().await;

    // The retry finds its first answer again (read back from the topic): no second debit.
    let mut retry = purchase;
    retry.pin_block = stack.pin_block(PIN, &debit);
    let replayed = stack.authorize(retry.clone()).await;
    assert!(replayed.replayed, "{replayed:?}");
    assert_eq!(replayed.approval_code, first.approval_code);
    assert_eq!(replayed.transaction_id, first.transaction_id);
    assert_eq!(stack.available_fen(&debit), 1_000_000 - 8_800);
    retry.amount = cny(8_801);
    assert_eq!(stack.authorize(retry).await.response_code, "94");

    // The pre-authorization is found by its approval code and completed.
    let mut completion = stack.request(
        pb::TransactionType::PreAuthCompletion,
        &credit,
        Entry::Swipe,
        Some(20_000),
    );
    completion.original = Some(pb::OriginalTransactionRef {
        approval_code: held.approval_code.clone(),
        ..pb::OriginalTransactionRef::default()
    });
    let captured = stack.authorize(completion.clone()).await;
    assert_eq!(captured.response_code, "00", "{captured:?}");
    assert_eq!(stack.holds_fen(&credit), 0);
    assert_eq!(stack.available_fen(&credit), 2_000_000 - 20_000);

    // And after one more flush the pre-auth is known as completed.
    stack.flush_redis_and_restart().await;
    completion.stan = stack.next_stan();
    let again = stack.authorize(completion).await;
    assert_eq!(again.response_code, "12", "{again:?}");
    stack.assert_no_card_data().await;
}

/// A Tansu broker of this test's own, killed on drop.
struct OwnBroker {
    child: std::process::Child,
    address: String,
}

impl OwnBroker {
    fn start(dir: &Path) -> Self {
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let url = format!("tcp://{address}");
        let log = std::fs::File::create(dir.join("tansu.log")).unwrap();
        let child = std::process::Command::new(pos_testkit::tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("tansu starts (POS_TANSU_BIN)");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(std::time::Instant::now() < deadline, "tansu did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, address }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_the_broker_did_not_take_is_answered_96_and_listed_for_reversal() {
    let dir = std::env::temp_dir()
        .join("pos-tests")
        .join(format!("broker-{}", pos_testkit::unique_name("b")));
    std::fs::create_dir_all(&dir).unwrap();
    let broker = OwnBroker::start(&dir);
    let stack = Stack::start_with(&[("POS_KAFKA", broker.address.clone())]).await;
    let card = stack.cards.debit.clone();
    let first = stack
        .authorize(stack.purchase(&card, Entry::Swipe, 1_000))
        .await;
    assert_eq!(first.response_code, "00", "{first:?}");

    drop(broker);
    let request = stack.purchase(&card, Entry::Swipe, 5_000);
    let answer = stack.authorize(request.clone()).await;
    assert_eq!(answer.response_code, "96", "{answer:?}");
    assert!(answer.approval_code.is_empty() && answer.amount.is_none());
    // The issuer did debit; the transaction is listed for the reversal service to undo.
    assert_eq!(stack.available_fen(&card), 1_000_000 - 1_000 - 5_000);
    let mut conn = stack.store.connection();
    let listed: Vec<String> = redis::cmd("ZRANGE")
        .arg(stack.store.key(&["txn", "unrecorded"]))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(listed, std::slice::from_ref(&answer.transaction_id));
    let record = stack
        .store
        .hash_get_all(&stack.store.key(&["txn", &answer.transaction_id]))
        .await
        .unwrap();
    let field = |name: &str| {
        record
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(field("answered"), "96");
    assert_eq!(field("amount_minor"), "5000");
    assert_eq!(field("masked_pan"), masked(&card));

    // A retry gets the same "96", and the issuer is not asked again.
    let retry = stack.authorize(request).await;
    assert!(retry.replayed);
    assert_eq!(retry.response_code, "96");
    assert_eq!(retry.transaction_id, answer.transaction_id);
    assert_eq!(stack.available_fen(&card), 1_000_000 - 1_000 - 5_000);
    stack.assert_no_card_data_at_rest().await;
}
