//! The real `issuer-sim` binary against a real redis-server (`POS_TEST_REDIS`), through its
//! gRPC API and its `account` command. Every test starts its own bank on free ports with its
//! own Redis key prefix and seed file, so tests run in parallel.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pos_crypto::DesKey;
use pos_crypto::pinblock::format0;
use pos_proto::v1::issuer_client::IssuerClient;
use pos_proto::v1::{
    CardFundingType, IssuerAuthorizeRequest, IssuerAuthorizeResponse, IssuerOperation,
    IssuerRefundRequest, IssuerReverseRequest, Money, PinBlockFormat, ReversalOutcome,
};
use tonic::transport::Channel;

/// The development zone PIN key the binary uses by default; the tests set it explicitly.
const ZPK: &str = "0123456789ABCDEFFEDCBA9876543210";

const DEBIT: &str = "6217000010012345677";
const CREDIT: &str = "6225880011223345";
const LOW: &str = "6217000010020000033";
const EXPIRED: &str = "6217000010030000015";
const LIMITED: &str = "6217000010040000096";
const STRIPE: &str = "6217000010050000077";
const LOST: &str = "6217000010060000059";
/// Luhn-valid, never seeded.
const UNKNOWN: &str = "6217000010990000013";

const SEED: &str = r#"{
  "about": "issuer-sim integration tests",
  "cards": [
    {"pan": "6217000010012345677", "expiry": "3012", "service_code": "220", "funding": "debit",
     "pin": "123456", "balance": "10000.00"},
    {"pan": "6225880011223345", "expiry": "2912", "service_code": "201", "funding": "credit",
     "pin": "654321", "credit_limit": "20000.00"},
    {"pan": "6217000010020000033", "expiry": "3012", "service_code": "220", "funding": "debit",
     "pin": "123456", "balance": "30.00"},
    {"pan": "6217000010030000015", "expiry": "2001", "service_code": "220", "funding": "debit",
     "pin": "123456", "balance": "10000.00"},
    {"pan": "6217000010040000096", "expiry": "3012", "service_code": "220", "funding": "debit",
     "pin": "123456", "balance": "10000.00", "per_transaction_limit": "100.00"},
    {"pan": "6217000010050000077", "expiry": "3012", "service_code": "101", "funding": "debit",
     "pin": "123456", "balance": "5000.00"},
    {"pan": "6217000010060000059", "expiry": "3012", "service_code": "220", "funding": "debit",
     "pin": "123456", "balance": "10000.00", "status": "lost"}
  ]
}"#;

fn redis_url() -> String {
    std::env::var("POS_TEST_REDIS").expect(
        "POS_TEST_REDIS must name a running redis-server, e.g. redis://127.0.0.1:16379 \
         (cargo xtask test starts one)",
    )
}

fn free_port() -> u16 {
    pos_testkit::free_port()
}

/// One running bank: the binary, its prefix, its seed file and its log.
struct Bank {
    child: Child,
    env: Vec<(String, String)>,
    dir: PathBuf,
    url: String,
}

impl Bank {
    async fn start() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("issuer-sim-test-{id}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let seed = dir.join("cards.json");
        std::fs::write(&seed, SEED).expect("write seed file");
        let port = free_port();
        let env = vec![
            ("POS_REDIS".to_owned(), redis_url()),
            (
                "POS_ISSUER_REDIS_PREFIX".to_owned(),
                format!("issuer-test-{id}"),
            ),
            ("POS_ISSUER_LISTEN".to_owned(), format!("127.0.0.1:{port}")),
            (
                "POS_ISSUER_METRICS".to_owned(),
                format!("127.0.0.1:{}", free_port()),
            ),
            ("POS_ISSUER_ZPK".to_owned(), ZPK.to_owned()),
            ("POS_ISSUER_SEED".to_owned(), seed.display().to_string()),
            ("POS_LOG_FORMAT".to_owned(), "json".to_owned()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ];
        let log = std::fs::File::create(dir.join("issuer.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_issuer-sim"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start issuer-sim");
        let mut bank = Self {
            child,
            env,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        };
        bank.wait_until_serving().await;
        bank
    }

    async fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                panic!("issuer-sim exited with {status}:\n{}", self.log());
            }
            let channel = Channel::from_shared(self.url.clone()).expect("url");
            if channel.connect().await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "issuer-sim did not start:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn client(&self) -> IssuerClient<Channel> {
        let channel = Channel::from_shared(self.url.clone())
            .expect("url")
            .connect()
            .await
            .expect("connect");
        IssuerClient::new(channel)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("issuer.log")).unwrap_or_default()
    }

    fn prefix(&self) -> &str {
        &self.env[1].1
    }

    /// Runs `issuer-sim ARGS` with this bank's settings; its stdout.
    fn run(&self, args: &[&str]) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_issuer-sim"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run issuer-sim");
        assert!(
            output.status.success(),
            "issuer-sim {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8")
    }

    /// The Prometheus text of the metrics port.
    async fn metrics(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = &self.env[3].1;
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("metrics port");
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .expect("request");
        let mut text = String::new();
        stream.read_to_string(&mut text).await.expect("response");
        text
    }

    /// `issuer-sim account --pan PAN`, as text.
    fn account(&self, pan: &str) -> String {
        self.run(&["account", "--pan", pan])
    }

    /// One `name: value` line of the account report.
    fn field(&self, pan: &str, name: &str) -> String {
        let report = self.account(pan);
        report
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in\n{report}"))
            .to_owned()
    }

    fn available(&self, pan: &str) -> String {
        self.field(pan, "available")
    }

    /// Every key and value under this bank's prefix, as text.
    async fn dump_redis(&self) -> String {
        let client = redis::Client::open(redis_url()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix()))
            .query_async(&mut conn)
            .await
            .expect("keys");
        let mut dump = String::new();
        for key in keys {
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("type");
            let mut cmd = match kind.as_str() {
                "hash" => redis::cmd("HGETALL"),
                "list" => redis::cmd("LRANGE"),
                _ => redis::cmd("GET"),
            };
            cmd.arg(&key);
            if kind == "list" {
                cmd.arg(0).arg(-1);
            }
            let value: redis::Value = cmd.query_async(&mut conn).await.expect("value");
            let values = flatten(&value);
            dump.push_str(&key);
            dump.push('\n');
            for value in values {
                dump.push_str(&value);
                dump.push('\n');
            }
        }
        dump
    }
}

fn flatten(value: &redis::Value) -> Vec<String> {
    match value {
        redis::Value::Array(items) => items.iter().flat_map(flatten).collect(),
        redis::Value::Map(pairs) => pairs
            .iter()
            .flat_map(|(k, v)| flatten(k).into_iter().chain(flatten(v)))
            .collect(),
        redis::Value::BulkString(bytes) => vec![String::from_utf8_lossy(bytes).into_owned()],
        redis::Value::SimpleString(s) => vec![s.clone()],
        redis::Value::Int(n) => vec![n.to_string()],
        _ => Vec::new(),
    }
}

impl Drop for Bank {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        // The bank's books go with it.
        if let Ok(mut conn) = redis::Client::open(redis_url()).and_then(|c| c.get_connection()) {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}:*", self.prefix()))
                .query(&mut conn)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(&keys).query(&mut conn);
            }
        }
    }
}

fn cny(minor: i64) -> Option<Money> {
    Some(Money {
        minor_units: minor,
        currency: "CNY".to_owned(),
    })
}

fn txn_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn pin_block(pin: &str, pan: &str) -> Vec<u8> {
    let clear = format0(pin, pan).expect("format 0");
    DesKey::from_hex(ZPK)
        .expect("zpk")
        .encrypt_ecb(&clear)
        .expect("encrypt")
}

fn expiry_of(pan: &str) -> &'static str {
    match pan {
        EXPIRED => "2001",
        CREDIT => "2912",
        _ => "3012",
    }
}

/// A chip purchase of `minor` fen on `pan`, with the PIN when given.
fn purchase(pan: &str, minor: i64, pin: Option<&str>) -> IssuerAuthorizeRequest {
    let mut request = IssuerAuthorizeRequest {
        acquirer_transaction_id: txn_id(),
        operation: IssuerOperation::Purchase as i32,
        pan: pan.to_owned(),
        expiry: expiry_of(pan).to_owned(),
        amount: cny(minor),
        merchant_id: "898310048990001".to_owned(),
        terminal_id: "TERM0001".to_owned(),
        ..Default::default()
    };
    if let Some(pin) = pin {
        request.pin_block = pin_block(pin, pan);
        request.pin_block_format = PinBlockFormat::Iso0 as i32;
        request.pin_key_id = "zpk-test".to_owned();
    }
    request
}

fn with_op(mut request: IssuerAuthorizeRequest, op: IssuerOperation) -> IssuerAuthorizeRequest {
    request.operation = op as i32;
    request
}

async fn authorize(
    client: &mut IssuerClient<Channel>,
    request: IssuerAuthorizeRequest,
) -> IssuerAuthorizeResponse {
    client
        .authorize(request)
        .await
        .expect("authorize answers")
        .into_inner()
}

fn minor(money: Option<&Money>) -> i64 {
    money.expect("amount present").minor_units
}

#[tokio::test]
async fn an_approved_purchase_debits_exactly_the_amount() {
    let bank = Bank::start().await;
    let mut client = bank.client().await;
    let request = purchase(DEBIT, 5000, Some("123456"));
    let id = request.acquirer_transaction_id.clone();
    let answer = authorize(&mut client, request).await;
    assert_eq!(answer.response_code, "00", "{answer:?}");
    assert_eq!(answer.approval_code.len(), 6);
    assert_eq!(answer.rrn.len(), 12);
    assert!(
        answer.rrn.bytes().all(|b| b.is_ascii_digit()),
        "{}",
        answer.rrn
    );
    assert_eq!(minor(answer.available_balance.as_ref()), 995_000);
    assert_eq!(minor(answer.approved_amount.as_ref()), 5000);
    assert_eq!(answer.card_funding, CardFundingType::Debit as i32);
    assert_eq!(answer.business_date.len(), 10);
    assert!(!answer.replayed);

    let report = bank.account(DEBIT);
    assert!(report.contains("available: 9950.00 CNY\n"), "{report}");
    assert!(report.contains("balance: 9950.00 CNY\n"), "{report}");
    assert!(report.contains("holds: 0.00 CNY\n"), "{report}");
    assert!(report.contains("pin_tries: 0\n"), "{report}");
    assert!(report.contains("status: active\n"), "{report}");
    assert!(report.contains("card: 621700****5677\n"), "{report}");
    let purchase_line = report
        .lines()
        .find(|l| l.contains(" purchase "))
        .unwrap_or_else(|| panic!("no purchase in the ledger:\n{report}"));
    assert!(
        purchase_line.contains("-50.00 balance 9950.00"),
        "{purchase_line}"
    );
    assert!(purchase_line.contains(&id), "{purchase_line}");

    // A second purchase has its own RRN.
    let second = authorize(&mut client, purchase(DEBIT, 1, Some("123456"))).await;
    assert_eq!(second.response_code, "00");
    assert_ne!(second.rrn, answer.rrn);
    assert_eq!(bank.available(DEBIT), "9949.99 CNY");

    let metrics = bank.metrics().await;
    assert!(
        metrics.contains(r#"pos_issuer_authorizations_total{code="00",operation="purchase"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains("pos_issuer_request_duration_seconds_bucket"));

    // Seeding again leaves the card as it is; reseeding restores the seed's balance.
    let seed_file = bank.env[5].1.clone();
    bank.run(&["seed", "--file", &seed_file]);
    assert_eq!(bank.available(DEBIT), "9949.99 CNY");
    bank.run(&["seed", "--file", &seed_file, "--reseed"]);
    assert_eq!(bank.available(DEBIT), "10000.00 CNY");
    assert!(bank.account(DEBIT).contains(" reseed "));
}

#[tokio::test]
async fn declines_give_their_code_and_move_no_money() {
    let bank = Bank::start().await;
    let mut client = bank.client().await;
    let code = |a: IssuerAuthorizeResponse| a.response_code;

    // 51: 30.00 left, 50.00 asked; the answer discloses what is available.
    let answer = authorize(&mut client, purchase(LOW, 5000, Some("123456"))).await;
    assert_eq!(answer.response_code, "51");
    assert_eq!(minor(answer.available_balance.as_ref()), 3000);
    assert!(answer.approval_code.is_empty());
    // 54: expired in January 2020.
    let expired = authorize(&mut client, purchase(EXPIRED, 100, Some("123456"))).await;
    assert_eq!(code(expired), "54");
    // 54 too: an expiry other than the card's.
    let mut old = purchase(DEBIT, 100, Some("123456"));
    old.expiry = "2812".to_owned();
    assert_eq!(code(authorize(&mut client, old).await), "54");
    // 14: unknown card, and a number that fails Luhn.
    let unknown = authorize(&mut client, purchase(UNKNOWN, 100, None)).await;
    assert_eq!(code(unknown), "14");
    let mut luhn = purchase(DEBIT, 100, None);
    luhn.pan = "6217000010012345678".to_owned();
    assert_eq!(code(authorize(&mut client, luhn).await), "14");
    // 61: 100.01 on a card limited to 100.00 per transaction; 100.00 itself passes.
    let over = authorize(&mut client, purchase(LIMITED, 10_001, Some("123456"))).await;
    assert_eq!(code(over), "61");
    // 41: lost card.
    let lost = authorize(&mut client, purchase(LOST, 100, Some("123456"))).await;
    assert_eq!(code(lost), "41");
    // 99: a block that does not decode (garbage under the ZPK).
    let mut garbled = purchase(DEBIT, 100, Some("123456"));
    garbled.pin_block = vec![0x11; 8];
    assert_eq!(code(authorize(&mut client, garbled).await), "99");
    // 55: a chip card whose service code requires a PIN, sent without one.
    let no_pin = authorize(&mut client, purchase(DEBIT, 100, None)).await;
    assert_eq!(code(no_pin), "55");

    assert_eq!(bank.available(LOW), "30.00 CNY");
    assert_eq!(bank.available(EXPIRED), "10000.00 CNY");
    assert_eq!(bank.available(LIMITED), "10000.00 CNY");
    assert_eq!(bank.available(LOST), "10000.00 CNY");
    assert_eq!(bank.available(DEBIT), "10000.00 CNY");
    assert_eq!(bank.field(DEBIT, "pin_tries"), "0");
    let at_limit = authorize(&mut client, purchase(LIMITED, 10_000, Some("123456"))).await;
    assert_eq!(code(at_limit), "00");
    assert_eq!(bank.available(LIMITED), "9900.00 CNY");
}

#[tokio::test]
async fn wrong_pins_decline_55_until_the_third_blocks_the_pin_75() {
    let bank = Bank::start().await;
    let mut client = bank.client().await;
    let wrong = |_: u8| purchase(DEBIT, 100, Some("000000"));
    assert_eq!(authorize(&mut client, wrong(1)).await.response_code, "55");
    assert_eq!(bank.field(DEBIT, "pin_tries"), "1");
    // A right PIN resets the count.
    let right = authorize(&mut client, purchase(DEBIT, 100, Some("123456"))).await;
    assert_eq!(right.response_code, "00");
    assert_eq!(bank.field(DEBIT, "pin_tries"), "0");
    assert_eq!(authorize(&mut client, wrong(1)).await.response_code, "55");
    assert_eq!(authorize(&mut client, wrong(2)).await.response_code, "55");
    assert_eq!(authorize(&mut client, wrong(3)).await.response_code, "75");
    assert_eq!(bank.field(DEBIT, "pin_tries"), "3");
    // Blocked: the right PIN is refused too.
    let after = authorize(&mut client, purchase(DEBIT, 100, Some("123456"))).await;
    assert_eq!(after.response_code, "75");
    let inquiry = with_op(
        purchase(DEBIT, 0, Some("123456")),
        IssuerOperation::BalanceInquiry,
    );
    assert_eq!(authorize(&mut client, inquiry).await.response_code, "75");
    // Only the one approved purchase moved money.
    assert_eq!(bank.available(DEBIT), "9999.00 CNY");
}

#[tokio::test]
async fn a_retry_replays_the_first_answer_and_debits_once() {
    let bank = Bank::start().await;
    let mut client = bank.client().await;
    let request = purchase(DEBIT, 12_345, Some("123456"));
    let first = authorize(&mut client, request.clone()).await;
    assert_eq!(first.response_code, "00");
    for _ in 0..3 {
        let again = authorize(&mut client, request.clone()).await;
        assert!(again.replayed);
        assert_eq!(
            (&again.response_code, &again.approval_code, &again.rrn),
            (&first.response_code, &first.approval_code, &first.rrn)
        );
        assert_eq!(again.available_balance, first.available_balance);
    }
    // Even with a wrong PIN block the retry is the same request: the PIN is not part of it.
    let mut rekeyed = request.clone();
    rekeyed.pin_block = pin_block("000000", DEBIT);
    assert!(authorize(&mut client, rekeyed).await.replayed);
    assert_eq!(bank.field(DEBIT, "pin_tries"), "0");
    assert_eq!(bank.available(DEBIT), "9876.55 CNY");

    // Same id, another amount: 94, nothing moves.
    let mut other = request.clone();
    other.amount = cny(12_346);
    let refused = authorize(&mut client, other).await;
    assert_eq!(refused.response_code, "94");
    assert!(!refused.replayed && refused.approval_code.is_empty());
    // Same id, another card: 94 too.
    let mut other_card = request.clone();
    other_card.pan = STRIPE.to_owned();
    other_card.pin_block = Vec::new();
    other_card.pin_block_format = 0;
    assert_eq!(authorize(&mut client, other_card).await.response_code, "94");
    assert_eq!(bank.available(DEBIT), "9876.55 CNY");
    assert_eq!(bank.available(STRIPE), "5000.00 CNY");
    let ledger = bank.account(DEBIT);
    assert_eq!(ledger.matches(" purchase ").count(), 1, "{ledger}");
}

#[tokio::test]
async fn concurrent_purchases_never_overdraw() {
    let bank = Bank::start().await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let mut client = bank.client().await;
        tasks.spawn(async move {
            authorize(&mut client, purchase(LOW, 1000, Some("123456")))
                .await
                .response_code
        });
    }
    let mut codes = HashMap::new();
    while let Some(code) = tasks.join_next().await {
        *codes.entry(code.expect("task")).or_insert(0) += 1;
    }
    assert_eq!(codes.get("00"), Some(&3), "{codes:?}");
    assert_eq!(codes.get("51"), Some(&9), "{codes:?}");
    assert_eq!(bank.available(LOW), "0.00 CNY");
}

#[tokio::test]
async fn pre_auth_holds_completion_captures_and_void_releases() {
    let bank = Bank::start().await;
    let mut client = bank.client().await;
    let hold = with_op(
        purchase(DEBIT, 100_000, Some("123456")),
        IssuerOperation::PreAuth,
    );
    let preauth_id = hold.acquirer_transaction_id.clone();
    let placed = authorize(&mut client, hold).await;
    assert_eq!(placed.response_code, "00");
    assert!(!placed.hold_id.is_empty());
    assert_eq!(minor(placed.available_balance.as_ref()), 900_000);
    assert_eq!(bank.field(DEBIT, "holds"), "1000.00 CNY");
    assert_eq!(bank.field(DEBIT, "balance"), "10000.00 CNY");
    assert_eq!(bank.available(DEBIT), "9000.00 CNY");

    // More than the hold plus 15 %: 13, nothing moves.
    let completion = |minor_units: i64| {
        let mut r = with_op(
            purchase(DEBIT, minor_units, None),
            IssuerOperation::PreAuthCompletion,
        );
        r.hold_id = placed.hold_id.clone();
        r.original_acquirer_transaction_id = preauth_id.clone();
        r
    };
    let too_much = authorize(&mut client, completion(115_001)).await;
    assert_eq!(too_much.response_code, "13");
    assert_eq!(bank.available(DEBIT), "9000.00 CNY");

    // 1100.00 (within 15 %) captures: the hold goes, 1100.00 is debited, once.
    let capture = completion(110_000);
    let captured = authorize(&mut client, capture.clone()).await;
    assert_eq!(captured.response_code, "00", "{captured:?}");
    assert_eq!(minor(captured.available_balance.as_ref()), 890_000);
    assert!(authorize(&mut client, capture).await.replayed);
    assert_eq!(bank.field(DEBIT, "holds"), "0.00 CNY");
    assert_eq!(bank.field(DEBIT, "balance"), "8900.00 CNY");
    assert_eq!(bank.available(DEBIT), "8900.00 CNY");
    // The hold is spent: another completion of it is refused.
    assert_eq!(
        authorize(&mut client, completion(1000)).await.response_code,
        "12"
    );

    // A second pre-auth, found by the pre-auth's id alone, is voided: the hold is released.
    let second = with_op(
        purchase(DEBIT, 50_000, Some("123456")),
        IssuerOperation::PreAuth,
    );
    let second_id = second.acquirer_transaction_id.clone();
    assert_eq!(authorize(&mut client, second).await.response_code, "00");
    assert_eq!(bank.available(DEBIT), "8400.00 CNY");
    let mut void = with_op(purchase(DEBIT, 50_000, None), IssuerOperation::PreAuthVoid);
    void.original_acquirer_transaction_id = second_id;
    let released = authorize(&mut client, void).await;
    assert_eq!(released.response_code, "00", "{released:?}");
    assert_eq!(bank.field(DEBIT, "holds"), "0.00 CNY");
    assert_eq!(bank.available(DEBIT), "8900.00 CNY");

    // Balance inquiry answers the available balance and moves nothing.
    let inquiry = with_op(
        purchase(DEBIT, 0, Some("123456")),
        IssuerOperation::BalanceInquiry,
    );
    let balance = authorize(&mut client, inquiry).await;
    assert_eq!(balance.response_code, "00");
    assert_eq!(minor(balance.available_balance.as_ref()), 890_000);
    assert_eq!(bank.available(DEBIT), "8900.00 CNY");
}

#[tokio::test]
async fn a_reversal_credits_back_exactly_once() {
    let bank = Bank::start().await;
    let mut client = bank.client().await;
    let request = purchase(DEBIT, 20_000, Some("123456"));
    let id = request.acquirer_transaction_id.clone();
    assert_eq!(authorize(&mut client, request).await.response_code, "00");
    assert_eq!(bank.available(DEBIT), "9800.00 CNY");

    let reverse = |amount: i64| IssuerReverseRequest {
        acquirer_reversal_id: txn_id(),
        original_acquirer_transaction_id: id.clone(),
        amount: cny(amount),
        reason_code: "98".to_owned(),
        ..Default::default()
    };
    // The wrong amount is refused and changes nothing.
    let wrong = client
        .reverse(reverse(19_999))
        .await
        .expect("reverse")
        .into_inner();
    assert_eq!(wrong.response_code, "64");
    assert_eq!(bank.available(DEBIT), "9800.00 CNY");

    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let answer = client
            .reverse(reverse(20_000))
            .await
            .expect("reverse")
            .into_inner();
        assert_eq!(answer.response_code, "00");
        outcomes.push(answer.outcome);
    }
    assert_eq!(
        outcomes,
        [
            ReversalOutcome::Reversed as i32,
            ReversalOutcome::AlreadyReversed as i32,
            ReversalOutcome::AlreadyReversed as i32,
        ]
    );
    assert_eq!(bank.available(DEBIT), "10000.00 CNY");
    let ledger = bank.account(DEBIT);
    assert_eq!(ledger.matches(" reversal ").count(), 1, "{ledger}");

    // A reversed purchase cannot be refunded.
    let refund = IssuerRefundRequest {
        acquirer_transaction_id: txn_id(),
        original_acquirer_transaction_id: id,
        amount: cny(100),
        ..Default::default()
    };
    let refused = client.refund(refund).await.expect("refund").into_inner();
    assert_eq!(refused.response_code, "12");
    assert_eq!(bank.available(DEBIT), "10000.00 CNY");
}

#[tokio::test]
async fn a_reversal_before_its_original_makes_the_original_decline_12() {
    let bank = Bank::start().await;
    let mut client = bank.client().await;
    let late = purchase(DEBIT, 30_000, Some("123456"));
    let reversal = IssuerReverseRequest {
        acquirer_reversal_id: txn_id(),
        original_acquirer_transaction_id: late.acquirer_transaction_id.clone(),
        amount: cny(30_000),
        reason_code: "98".to_owned(),
        ..Default::default()
    };
    let answer = client
        .reverse(reversal.clone())
        .await
        .expect("reverse")
        .into_inner();
    assert_eq!(answer.response_code, "00");
    assert_eq!(answer.outcome, ReversalOutcome::OriginalNotFound as i32);

    let original = authorize(&mut client, late.clone()).await;
    assert_eq!(original.response_code, "12");
    assert!(original.approval_code.is_empty());
    let retried = authorize(&mut client, late).await;
    assert_eq!(
        (retried.response_code.as_str(), retried.replayed),
        ("12", true)
    );
    let again = client
        .reverse(reversal)
        .await
        .expect("reverse")
        .into_inner();
    assert_eq!(again.response_code, "00");
    assert_eq!(bank.available(DEBIT), "10000.00 CNY");
    assert_eq!(bank.field(DEBIT, "pin_tries"), "0");
}

#[tokio::test]
async fn reversing_pre_auth_and_completion() {
    let bank = Bank::start().await;
    let mut client = bank.client().await;
    // Reversing a pre-auth releases its hold.
    let hold = with_op(purchase(CREDIT, 40_000, None), IssuerOperation::PreAuth);
    let hold_txn = hold.acquirer_transaction_id.clone();
    let placed = authorize(&mut client, hold).await;
    assert_eq!(placed.response_code, "00");
    assert_eq!(placed.card_funding, CardFundingType::Credit as i32);
    assert_eq!(bank.available(CREDIT), "19600.00 CNY");
    let reverse = |original: &str| IssuerReverseRequest {
        acquirer_reversal_id: txn_id(),
        original_acquirer_transaction_id: original.to_owned(),
        reason_code: "98".to_owned(),
        ..Default::default()
    };
    let answer = client
        .reverse(reverse(&hold_txn))
        .await
        .expect("reverse")
        .into_inner();
    assert_eq!(answer.outcome, ReversalOutcome::Reversed as i32);
    assert_eq!(minor(answer.available_balance.as_ref()), 2_000_000);
    assert_eq!(bank.available(CREDIT), "20000.00 CNY");

    // Reversing a completion credits it back and opens the pre-auth's hold again.
    let hold = with_op(purchase(CREDIT, 10_000, None), IssuerOperation::PreAuth);
    let placed = authorize(&mut client, hold).await;
    let mut completion = with_op(
        purchase(CREDIT, 9_000, None),
        IssuerOperation::PreAuthCompletion,
    );
    completion.hold_id = placed.hold_id.clone();
    let completion_txn = completion.acquirer_transaction_id.clone();
    assert_eq!(authorize(&mut client, completion).await.response_code, "00");
    assert_eq!(bank.field(CREDIT, "owed"), "90.00 CNY");
    assert_eq!(bank.available(CREDIT), "19910.00 CNY");
    let answer = client
        .reverse(reverse(&completion_txn))
        .await
        .expect("reverse")
        .into_inner();
    assert_eq!(answer.outcome, ReversalOutcome::Reversed as i32);
    assert_eq!(bank.field(CREDIT, "owed"), "0.00 CNY");
    assert_eq!(bank.field(CREDIT, "holds"), "100.00 CNY");
    assert_eq!(bank.available(CREDIT), "19900.00 CNY");
}

#[tokio::test]
async fn refunds_credit_up_to_the_original_amount() {
    let bank = Bank::start().await;
    let mut client = bank.client().await;
    let request = purchase(STRIPE, 20_000, None);
    let original = request.acquirer_transaction_id.clone();
    let approved = authorize(&mut client, request).await;
    assert_eq!(approved.response_code, "00", "{approved:?}");
    assert_eq!(bank.available(STRIPE), "4800.00 CNY");

    let refund = |minor_units: i64| IssuerRefundRequest {
        acquirer_transaction_id: txn_id(),
        original_acquirer_transaction_id: original.clone(),
        original_approval_code: approved.approval_code.clone(),
        original_rrn: approved.rrn.clone(),
        amount: cny(minor_units),
        pan: STRIPE.to_owned(),
        ..Default::default()
    };
    let first = refund(5_000);
    let answer = client
        .refund(first.clone())
        .await
        .expect("refund")
        .into_inner();
    assert_eq!(answer.response_code, "00");
    assert_eq!(minor(answer.refunded_total.as_ref()), 5_000);
    let replay = client.refund(first).await.expect("refund").into_inner();
    assert!(replay.replayed);
    assert_eq!(replay.rrn, answer.rrn);
    assert_eq!(bank.available(STRIPE), "4850.00 CNY");

    let over = client
        .refund(refund(15_001))
        .await
        .expect("refund")
        .into_inner();
    assert_eq!(over.response_code, "61");
    let rest = client
        .refund(refund(15_000))
        .await
        .expect("refund")
        .into_inner();
    assert_eq!(rest.response_code, "00");
    assert_eq!(minor(rest.refunded_total.as_ref()), 20_000);
    assert_eq!(bank.available(STRIPE), "5000.00 CNY");

    let mut unknown = refund(100);
    unknown.original_acquirer_transaction_id = txn_id();
    let answer = client.refund(unknown).await.expect("refund").into_inner();
    assert_eq!(answer.response_code, "25");
    let mut other_card = refund(100);
    other_card.pan = DEBIT.to_owned();
    let answer = client
        .refund(other_card)
        .await
        .expect("refund")
        .into_inner();
    assert_eq!(answer.response_code, "14");
    assert_eq!(bank.available(STRIPE), "5000.00 CNY");
    assert_eq!(bank.available(DEBIT), "10000.00 CNY");
}

#[tokio::test]
async fn malformed_requests_are_grpc_errors() {
    let bank = Bank::start().await;
    let mut client = bank.client().await;
    let mut no_amount = purchase(DEBIT, 100, Some("123456"));
    no_amount.amount = None;
    let status = client.authorize(no_amount).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let negative = purchase(DEBIT, -100, Some("123456"));
    let status = client.authorize(negative).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(bank.available(DEBIT), "10000.00 CNY");
}

#[tokio::test]
async fn no_pan_pin_or_pin_block_reaches_redis_or_the_log() {
    let bank = Bank::start().await;
    let mut client = bank.client().await;
    let request = purchase(DEBIT, 100, Some("123456"));
    let block = hex::encode(&request.pin_block);
    assert_eq!(authorize(&mut client, request).await.response_code, "00");
    authorize(&mut client, purchase(DEBIT, 100, Some("999999"))).await;
    authorize(&mut client, purchase(UNKNOWN, 100, None)).await;
    let redis = bank.dump_redis().await;
    assert!(
        redis.contains("621700****5677"),
        "the books hold the masked PAN"
    );
    let log = bank.log();
    assert!(
        log.contains("621700****5677"),
        "the log names cards masked:\n{log}"
    );
    for secret in [
        DEBIT,
        CREDIT,
        UNKNOWN,
        LOW,
        block.as_str(),
        &block.to_uppercase(),
    ] {
        assert!(!redis.contains(secret), "redis holds a secret");
        assert!(!log.contains(secret), "the log holds a secret");
    }
    // No stored value is a PIN (an approval code could be, once in a million runs).
    assert!(
        !redis
            .lines()
            .any(|line| line == "123456" || line == "999999"),
        "redis holds a PIN"
    );
}
