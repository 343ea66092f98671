//! A platform for one test: the real binaries against the broker and Redis that
//! `cargo xtask test` started, with this test's own topics, keys and files.

#![allow(dead_code, clippy::unwrap_used)] // each test file uses part of it

use std::path::{Path, PathBuf};
use std::process::Output;

use pos_testkit::{ServiceProcess, TestEnv, free_port, run_cli};

/// The admin token written into the gateway's operators file.
pub const ADMIN_TOKEN: &str = "test-admin-token-5b1f0c";
/// A token with the onboarding role only.
pub const ONBOARDING_TOKEN: &str = "test-onboarding-token-77aa";
/// A token with the settlement role only.
pub const SETTLEMENT_TOKEN: &str = "test-settlement-token-3c9e";
/// A token with the risk role only (blacklists, fraud alerts).
pub const RISK_TOKEN: &str = "test-risk-token-91d4";

/// The gateway (and, for the purchase path, authorization and the issuer) of one test.
pub struct Platform {
    pub env: TestEnv,
    pub dir: PathBuf,
    pub port: u16,
    pub gateway: ServiceProcess,
    /// Authorization and issuer, when started with [`Platform::start_full`].
    pub authorization: Option<ServiceProcess>,
    pub issuer: Option<ServiceProcess>,
    pub issuer_port: u16,
    pub authorization_port: u16,
    /// The reversal service, when started with [`Platform::start_full`].
    pub reversal: Option<ServiceProcess>,
    pub reversal_port: u16,
    /// The settlement service, when started with [`Platform::start_full`].
    pub settlement: Option<ServiceProcess>,
    pub settlement_port: u16,
    /// Extra settings of the gateway (e.g. its business day).
    pub gateway_settings: Vec<(&'static str, String)>,
    /// Extra settings of the issuer simulator (e.g. a slow bank).
    pub issuer_settings: Vec<(&'static str, String)>,
    /// Extra settings of the settlement service (e.g. `POS_SETTLEMENT_CLOSED_THROUGH`).
    pub settlement_settings: Vec<(&'static str, String)>,
    /// fraud-check, when started with [`Platform::start_fraud`].
    pub fraud: Option<ServiceProcess>,
    pub fraud_port: u16,
    /// Extra settings of authorization (e.g. `POS_FRAUD_URL`).
    pub authorization_settings: Vec<(&'static str, String)>,
}

/// The issuer simulator's demo cards.
pub fn demo_cards() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/demo/cards.json")
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

impl Platform {
    /// Starts a gateway with fresh secrets, an admin and an onboarding operator.
    pub fn start() -> Self {
        let env = TestEnv::new();
        let dir = std::env::temp_dir().join("pos-tests").join(&env.namespace);
        std::fs::create_dir_all(&dir).unwrap();
        let operators = format!(
            "admin admin {}\nonboarder onboarding {}\nsettler settlement {}\nanalyst risk {}\n",
            sha256_hex(ADMIN_TOKEN),
            sha256_hex(ONBOARDING_TOKEN),
            sha256_hex(SETTLEMENT_TOKEN),
            sha256_hex(RISK_TOKEN)
        );
        std::fs::write(dir.join("operators"), operators).unwrap();
        let port = free_port();
        let authorization_port = free_port();
        let reversal_port = free_port();
        let settlement_port = free_port();
        let gateway = Self::spawn_gateway(
            &env,
            &dir,
            port,
            (authorization_port, reversal_port, settlement_port),
            &[],
        );
        Self {
            env,
            dir,
            port,
            gateway,
            authorization: None,
            issuer: None,
            issuer_port: free_port(),
            authorization_port,
            reversal: None,
            reversal_port,
            settlement: None,
            settlement_port,
            gateway_settings: Vec::new(),
            issuer_settings: Vec::new(),
            settlement_settings: Vec::new(),
            fraud: None,
            fraud_port: free_port(),
            authorization_settings: Vec::new(),
        }
    }

    /// The whole purchase path: gateway, authorization and the issuer simulator with the demo
    /// cards.
    pub fn start_full() -> Self {
        let mut platform = Self::start();
        platform.start_issuer();
        platform.start_authorization();
        platform.start_reversal();
        platform.start_settlement();
        platform
    }

    /// Starts (or restarts) the settlement service on its port.
    pub fn start_settlement(&mut self) {
        if let Some(mut running) = self.settlement.take() {
            running.stop();
        }
        let envs = [
            (
                "POS_SETTLEMENT_LISTEN",
                format!("127.0.0.1:{}", self.settlement_port),
            ),
            (
                "POS_SETTLEMENT_METRICS",
                format!("127.0.0.1:{}", free_port()),
            ),
            ("POS_KAFKA", self.env.kafka.clone()),
            ("POS_TOPIC_NAMESPACE", self.env.namespace.clone()),
            ("POS_REDIS", self.env.redis.clone()),
            ("POS_REDIS_PREFIX", self.env.namespace.clone()),
            ("RUST_LOG", "info".to_owned()),
            (
                "POS_OPERATORS_FILE",
                self.dir.join("operators").display().to_string(),
            ),
            (
                "POS_SETTLEMENT_FILES_DIR",
                self.settlement_files_dir().display().to_string(),
            ),
        ];
        let envs: Vec<(&str, String)> = envs
            .into_iter()
            .chain(self.settlement_settings.iter().cloned())
            .collect();
        let mut settlement = ServiceProcess::start("settlement", &envs, &self.dir);
        settlement.wait_for_port(self.settlement_port);
        self.settlement = Some(settlement);
    }

    /// Where the settlement service writes merchant settlement files.
    pub fn settlement_files_dir(&self) -> PathBuf {
        self.dir.join("settlement-files")
    }

    /// Runs `posctl` against the settlement service with `token`.
    pub fn posctl_settlement_as(&self, token: &str, args: &[&str]) -> Output {
        run_cli(
            "posctl",
            args,
            &[
                ("POSCTL_GATEWAY", self.url()),
                (
                    "POSCTL_SETTLEMENT",
                    format!("http://127.0.0.1:{}", self.settlement_port),
                ),
                ("POSCTL_TOKEN", token.to_owned()),
            ],
            &self.dir,
        )
    }

    /// Starts (or restarts) the authorization service on its port.
    pub fn start_authorization(&mut self) {
        if let Some(mut running) = self.authorization.take() {
            running.stop();
        }
        let envs = [
            (
                "POS_AUTHORIZATION_LISTEN",
                format!("127.0.0.1:{}", self.authorization_port),
            ),
            (
                "POS_AUTHORIZATION_METRICS",
                format!("127.0.0.1:{}", free_port()),
            ),
            ("POS_KAFKA", self.env.kafka.clone()),
            ("POS_TOPIC_NAMESPACE", self.env.namespace.clone()),
            ("POS_REDIS", self.env.redis.clone()),
            ("POS_REDIS_PREFIX", self.env.namespace.clone()),
            (
                "POS_HSM_LMK_FILE",
                self.dir.join("lmk.hex").display().to_string(),
            ),
            (
                "POS_TOKEN_KEY_FILE",
                self.dir.join("token-key.hex").display().to_string(),
            ),
            (
                "POS_ISSUER_URL",
                format!("http://127.0.0.1:{}", self.issuer_port),
            ),
            ("POS_ISSUER_TIMEOUT_MS", "3000".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ];
        let envs: Vec<(&str, String)> = envs
            .into_iter()
            .chain(self.authorization_settings.iter().cloned())
            .collect();
        let mut authorization = ServiceProcess::start("authorization", &envs, &self.dir);
        authorization.wait_for_port(self.authorization_port);
        self.authorization = Some(authorization);
    }

    /// The rules file fraud-check reads (the shipped default until a test rewrites it).
    pub fn fraud_rules_file(&self) -> PathBuf {
        self.dir.join("fraud-rules.toml")
    }

    /// Starts (or restarts) fraud-check on its port; the rules file is the shipped default
    /// unless the test wrote its own.
    pub fn start_fraud(&mut self) {
        self.stop_fraud();
        let rules = self.fraud_rules_file();
        if !rules.exists() {
            let default = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../services/fraud-check/rules/default.toml");
            std::fs::copy(default, &rules).unwrap();
        }
        let envs = [
            ("POS_FRAUD_LISTEN", format!("127.0.0.1:{}", self.fraud_port)),
            ("POS_FRAUD_METRICS", format!("127.0.0.1:{}", free_port())),
            ("POS_KAFKA", self.env.kafka.clone()),
            ("POS_TOPIC_NAMESPACE", self.env.namespace.clone()),
            ("POS_REDIS", self.env.redis.clone()),
            ("POS_REDIS_PREFIX", self.env.namespace.clone()),
            ("POS_FRAUD_RULES_FILE", rules.display().to_string()),
            ("POS_FRAUD_RULES_POLL_MS", "200".to_owned()),
            (
                "POS_TOKEN_KEY_FILE",
                self.dir.join("token-key.hex").display().to_string(),
            ),
            (
                "POS_OPERATORS_FILE",
                self.dir.join("operators").display().to_string(),
            ),
            ("RUST_LOG", "info".to_owned()),
        ];
        let mut fraud = ServiceProcess::start("fraud-check", &envs, &self.dir);
        fraud.wait_for_port(self.fraud_port);
        self.fraud = Some(fraud);
    }

    /// Stops fraud-check.
    pub fn stop_fraud(&mut self) {
        if let Some(mut fraud) = self.fraud.take() {
            fraud.stop();
        }
    }

    /// fraud-check's address.
    pub fn fraud_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.fraud_port)
    }

    /// Starts fraud-check and (re)starts authorization calling it, with its fail-open limit.
    pub fn use_fraud_check(&mut self, fail_open_below: &str) {
        self.start_fraud();
        self.authorization_settings = vec![
            ("POS_FRAUD_URL", self.fraud_url()),
            // Generous for a loaded test machine; the service's own time is benchmarked.
            ("POS_FRAUD_TIMEOUT_MS", "1000".to_owned()),
            ("POS_FRAUD_FAIL_OPEN_BELOW", fail_open_below.to_owned()),
            ("POS_FRAUD_FAIL_CLOSED_CODE", "96".to_owned()),
        ];
        self.start_authorization();
    }

    /// Runs `posctl` against fraud-check (and the gateway) with `token`.
    pub fn posctl_fraud_as(&self, token: &str, args: &[&str]) -> Output {
        run_cli(
            "posctl",
            args,
            &[
                ("POSCTL_GATEWAY", self.url()),
                ("POSCTL_FRAUD", self.fraud_url()),
                ("POSCTL_TOKEN", token.to_owned()),
            ],
            &self.dir,
        )
    }

    /// Flushes the platform's Redis keys (not the bank's) and restarts every service, which
    /// rebuild their state from the topics; the terminals must sign in again.
    pub fn flush_and_restart(&mut self) {
        self.gateway.stop();
        if let Some(mut authorization) = self.authorization.take() {
            authorization.stop();
        }
        self.stop_reversal();
        if let Some(mut settlement) = self.settlement.take() {
            settlement.stop();
        }
        let env = self.env.clone();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let store = pos_store::Store::connect(&env.store()).await.unwrap();
                store.flush_prefix().await.unwrap();
            });
        self.gateway = Self::spawn_gateway(
            &self.env,
            &self.dir,
            self.port,
            (
                self.authorization_port,
                self.reversal_port,
                self.settlement_port,
            ),
            &self.gateway_settings,
        );
        self.start_authorization();
        self.start_reversal();
        self.start_settlement();
    }

    /// Starts (or restarts) the reversal service on its port.
    pub fn start_reversal(&mut self) {
        self.stop_reversal();
        let envs = [
            (
                "POS_REVERSAL_LISTEN",
                format!("127.0.0.1:{}", self.reversal_port),
            ),
            ("POS_REVERSAL_METRICS", format!("127.0.0.1:{}", free_port())),
            ("POS_KAFKA", self.env.kafka.clone()),
            ("POS_TOPIC_NAMESPACE", self.env.namespace.clone()),
            ("POS_REDIS", self.env.redis.clone()),
            ("POS_REDIS_PREFIX", self.env.namespace.clone()),
            (
                "POS_TOKEN_KEY_FILE",
                self.dir.join("token-key.hex").display().to_string(),
            ),
            (
                "POS_ISSUER_URL",
                format!("http://127.0.0.1:{}", self.issuer_port),
            ),
            ("POS_ISSUER_TIMEOUT_MS", "3000".to_owned()),
            ("POS_REVERSAL_SWEEP_MS", "500".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ];
        let mut reversal = ServiceProcess::start("reversal", &envs, &self.dir);
        reversal.wait_for_port(self.reversal_port);
        self.reversal = Some(reversal);
    }

    /// Stops the reversal service.
    pub fn stop_reversal(&mut self) {
        if let Some(mut reversal) = self.reversal.take() {
            reversal.stop();
        }
    }

    /// Restarts the gateway with extra settings (e.g. `POS_BUSINESS_DAY_CUTOFF`).
    pub fn restart_gateway_with(&mut self, settings: &[(&'static str, &str)]) {
        self.gateway_settings = settings
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect();
        self.restart_gateway();
    }

    /// Restarts the issuer simulator with extra settings (e.g. `POS_ISSUER_ANSWER_DELAY_MS`).
    pub fn restart_issuer_with(&mut self, settings: &[(&'static str, &str)]) {
        self.stop_issuer();
        self.issuer_settings = settings
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect();
        self.start_issuer();
    }

    /// Starts (or restarts) the issuer simulator on its port with the demo cards.
    pub fn start_issuer(&mut self) {
        let mut issuer = ServiceProcess::start("issuer-sim", &self.issuer_envs(), &self.dir);
        issuer.wait_for_port(self.issuer_port);
        self.issuer = Some(issuer);
    }

    /// Stops the issuer simulator (the bank is down).
    pub fn stop_issuer(&mut self) {
        if let Some(mut issuer) = self.issuer.take() {
            issuer.stop();
        }
    }

    fn issuer_envs(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "POS_ISSUER_LISTEN",
                format!("127.0.0.1:{}", self.issuer_port),
            ),
            ("POS_ISSUER_METRICS", format!("127.0.0.1:{}", free_port())),
            ("POS_REDIS", self.env.redis.clone()),
            (
                "POS_ISSUER_REDIS_PREFIX",
                format!("{}-issuer", self.env.namespace),
            ),
            ("POS_ISSUER_SEED", demo_cards().display().to_string()),
            ("RUST_LOG", "info".to_owned()),
        ]
        .into_iter()
        .chain(self.issuer_settings.iter().cloned())
        .collect()
    }

    /// `issuer-sim account --pan PAN` against this test's bank.
    pub fn issuer_account(&self, pan: &str) -> String {
        ok(run_cli(
            "issuer-sim",
            &["account", "--pan", pan],
            &self.issuer_envs(),
            &self.dir,
        ))
    }

    /// The available balance the issuer reports for `pan`, in fen.
    pub fn available_fen(&self, pan: &str) -> i64 {
        let account = self.issuer_account(pan);
        let value = field(&account, "available");
        let amount = value.split_whitespace().next().unwrap();
        let (yuan, fen) = amount.split_once('.').unwrap();
        yuan.parse::<i64>().unwrap() * 100 + fen.parse::<i64>().unwrap()
    }

    fn spawn_gateway(
        env: &TestEnv,
        dir: &Path,
        port: u16,
        (authorization_port, reversal_port, settlement_port): (u16, u16, u16),
        extra: &[(&'static str, String)],
    ) -> ServiceProcess {
        let envs = [
            ("POS_GATEWAY_LISTEN", format!("127.0.0.1:{port}")),
            ("POS_GATEWAY_METRICS", format!("127.0.0.1:{}", free_port())),
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
            (
                "POS_OPERATORS_FILE",
                dir.join("operators").display().to_string(),
            ),
            (
                "POS_DATA_KEY_FILE",
                dir.join("data-key.hex").display().to_string(),
            ),
            (
                "POS_AUTHORIZATION_URL",
                format!("http://127.0.0.1:{authorization_port}"),
            ),
            (
                "POS_REVERSAL_URL",
                format!("http://127.0.0.1:{reversal_port}"),
            ),
            (
                "POS_SETTLEMENT_URL",
                format!("http://127.0.0.1:{settlement_port}"),
            ),
            ("RUST_LOG", "info".to_owned()),
        ];
        let envs: Vec<(&str, String)> = envs.into_iter().chain(extra.iter().cloned()).collect();
        let mut process = ServiceProcess::start("terminal-gateway", &envs, dir);
        process.wait_for_port(port);
        process
    }

    /// Stops the gateway and starts a new one on the same port and files.
    pub fn restart_gateway(&mut self) {
        self.gateway.stop();
        self.gateway = Self::spawn_gateway(
            &self.env,
            &self.dir,
            self.port,
            (
                self.authorization_port,
                self.reversal_port,
                self.settlement_port,
            ),
            &self.gateway_settings,
        );
    }

    /// The gateway's address for clients.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs `posctl` as the admin.
    pub fn posctl(&self, args: &[&str]) -> Output {
        self.posctl_as(ADMIN_TOKEN, args)
    }

    /// Runs `posctl` with `token`.
    pub fn posctl_as(&self, token: &str, args: &[&str]) -> Output {
        run_cli(
            "posctl",
            args,
            &[
                ("POSCTL_GATEWAY", self.url()),
                ("POSCTL_TOKEN", token.to_owned()),
            ],
            &self.dir,
        )
    }

    /// Runs `pos-agent` with the data directory `device`.
    pub fn agent(&self, device: &str, args: &[&str]) -> Output {
        run_cli(
            "pos-agent",
            args,
            &[
                (
                    "POS_AGENT_DIR",
                    self.device_dir(device).display().to_string(),
                ),
                ("POS_AGENT_GATEWAY", self.url()),
            ],
            &self.dir,
        )
    }

    /// Starts `pos-agent` with the data directory `device` and its stdout piped, without
    /// waiting for it (to kill it mid-transaction).
    pub fn agent_child(&self, device: &str, args: &[&str]) -> std::process::Child {
        std::process::Command::new(pos_testkit::bin_path("pos-agent"))
            .current_dir(&self.dir)
            .args(args)
            .env("POS_AGENT_DIR", self.device_dir(device))
            .env("POS_AGENT_GATEWAY", self.url())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    /// The data directory of agent `device`.
    pub fn device_dir(&self, device: &str) -> PathBuf {
        self.dir.join("devices").join(device)
    }

    /// Onboards, approves and activates a micro merchant; returns its id.
    pub fn active_merchant(&self) -> String {
        let merchant = ok(self.posctl(&onboard_args(&valid_id_number(), &valid_card_account())));
        let id = field(&merchant, "merchant_id");
        ok(self.posctl(&["merchant", "approve", &id]));
        ok(self.posctl(&["merchant", "activate", &id]));
        id
    }

    /// Registers a terminal for `merchant`; returns its id.
    pub fn terminal(&self, merchant: &str, serial: &str) -> String {
        let out = ok(self.posctl(&[
            "terminal",
            "register",
            "--merchant",
            merchant,
            "--serial",
            serial,
        ]));
        field(&out, "terminal_id")
    }

    /// Issues an activation code for `terminal`.
    pub fn activation_code(&self, terminal: &str) -> String {
        let out = ok(self.posctl(&["terminal", "activation-code", terminal]));
        field(&out, "activation_code")
    }

    /// A terminal activated on agent `device`, signed in, with operator 01 logged in.
    pub fn ready_terminal(&self, merchant: &str, device: &str) -> String {
        let terminal = self.signed_in_terminal(merchant, device);
        ok(self.agent(device, &["login", "--operator", "01", "--password", "0000"]));
        terminal
    }

    /// A terminal that is activated on agent `device` and signed in; returns its id.
    pub fn signed_in_terminal(&self, merchant: &str, device: &str) -> String {
        let serial = format!("SN-{device}");
        let terminal = self.terminal(merchant, &serial);
        let code = self.activation_code(&terminal);
        ok(self.agent(device, &["activate", "--code", &code, "--serial", &serial]));
        ok(self.agent(device, &["sign-in"]));
        terminal
    }
}

/// The stdout of a successful command (panics with its output otherwise).
pub fn ok(output: Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "command failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The stderr of a failed command (panics if it succeeded).
pub fn refused(output: Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "command should have failed\nstdout:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

/// The value of a `key: value` line.
pub fn field(text: &str, key: &str) -> String {
    let prefix = format!("{key}: ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no `{key}` in:\n{text}"))
        .trim()
        .to_owned()
}

/// A resident ID number with a correct check character.
pub fn valid_id_number() -> String {
    let first17 = "31010419850612003";
    let check = pos_registry::resident_id_check_char(first17).unwrap();
    format!("{first17}{check}")
}

/// A personal debit card number (Luhn-valid) as a micro merchant's settlement account.
pub fn valid_card_account() -> String {
    let payload = "622202100112345678";
    let check = pos_domain::pan::luhn::check_digit(payload).unwrap();
    format!("{payload}{check}")
}

/// posctl arguments onboarding a micro merchant in Shanghai.
pub fn onboard_args<'a>(id_number: &'a str, account: &'a str) -> Vec<&'a str> {
    vec![
        "merchant",
        "onboard",
        "--type",
        "micro",
        "--name",
        "上海市徐汇区张三便利店",
        "--city",
        "上海",
        "--address",
        "上海市徐汇区漕溪北路88号",
        "--legal-person",
        "张三",
        "--id-number",
        id_number,
        "--phone",
        "13800138000",
        "--account-name",
        "张三",
        "--account-number",
        account,
        "--bank",
        "中国工商银行上海徐汇支行",
        "--mcc",
        "5411",
        "--debit-rate",
        "0.0050",
        "--debit-cap",
        "20.00",
        "--credit-rate",
        "0.0060",
        "--hours",
        "07:00-22:00",
        "--accept-agreement",
    ]
}

/// Every key and value under the test's Redis prefix (the platform's, not the bank's).
pub fn redis_bytes(env: &TestEnv) -> Vec<u8> {
    let env = env.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut all = Vec::new();
        let store = pos_store::Store::connect(&env.store()).await.unwrap();
        let mut conn = store.connection();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", env.namespace))
            .query_async(&mut conn)
            .await
            .unwrap();
        for key in keys {
            all.extend_from_slice(key.as_bytes());
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let values: Vec<Vec<u8>> = match kind.as_str() {
                "string" => vec![
                    redis::cmd("GET")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .unwrap(),
                ],
                "list" => redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await
                    .unwrap(),
                "hash" => redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap(),
                "zset" => redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await
                    .unwrap(),
                "set" => redis::cmd("SMEMBERS")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap(),
                "none" => Vec::new(), // expired since KEYS
                other => panic!("unexpected redis type {other} under {key}"),
            };
            for value in values {
                all.extend_from_slice(&value);
            }
        }
        all
    })
}
