//! `cargo xtask up`: the whole platform on one machine with no configuration. Starts Tansu and
//! Redis (or uses `--kafka` / `--redis`), builds and starts every service, seeds a demo
//! merchant, activated and signed-in terminals and the issuer's test cards, prints the
//! commands to run a purchase by hand, and stops everything on Ctrl-C.
//!
//! Every run starts a fresh demo under `.pos/up` (broker data, secrets, terminals).

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::stack::{Deps, DepsOptions};
use crate::{Result, fail, tools, workspace_root};

const GATEWAY: &str = "127.0.0.1:7001";
const AUTHORIZATION: &str = "127.0.0.1:7002";
const ISSUER: &str = "127.0.0.1:7010";
const REVERSAL: &str = "127.0.0.1:7003";
const SETTLEMENT: &str = "127.0.0.1:7004";
const FRAUD: &str = "127.0.0.1:7005";

/// Demo terminals seeded when `--terminals` is not given.
const DEFAULT_TERMINALS: u32 = 2;

/// Options of `up`.
#[derive(Debug)]
struct UpOptions {
    terminals: u32,
    kafka: Option<String>,
    redis: Option<String>,
}

fn parse(args: &[String]) -> Result<UpOptions> {
    let mut options = UpOptions {
        terminals: DEFAULT_TERMINALS,
        kafka: None,
        redis: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--terminals" => {
                let text = value("--terminals")?;
                options.terminals = text
                    .parse()
                    .ok()
                    .filter(|n| (1..=20).contains(n))
                    .ok_or_else(|| format!("--terminals: `{text}` is not a number from 1 to 20"))?;
            }
            "--kafka" => options.kafka = Some(value("--kafka")?),
            "--redis" => options.redis = Some(value("--redis")?),
            other => return fail(format!("up: unknown option {other}")),
        }
    }
    Ok(options)
}

/// The services started by `up`, killed on drop.
struct Services {
    children: Vec<(String, Child)>,
}

impl Drop for Services {
    fn drop(&mut self) {
        for (name, child) in self.children.iter_mut().rev() {
            if child.kill().is_ok() {
                let _ = child.wait();
                eprintln!("xtask: stopped {name}");
            }
        }
    }
}

impl Services {
    fn start(
        &mut self,
        bin: &Path,
        name: &str,
        dir: &Path,
        envs: &[(&str, String)],
        listen: &str,
    ) -> Result<()> {
        let log = fs::File::create(dir.join(format!("{name}.log")))
            .map_err(|e| format!("cannot create the {name} log: {e}"))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut command = Command::new(bin.join(name));
        command
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .env("POS_LOG_FORMAT", "json");
        for (key, value) in envs {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        self.children.push((name.to_owned(), child));
        wait_for(name, listen, dir)
    }

    fn check_alive(&mut self) -> Result<()> {
        for (name, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                return fail(format!("{name} exited ({status}); see .pos/up/{name}.log"));
            }
        }
        Ok(())
    }
}

fn wait_for(name: &str, listen: &str, dir: &Path) -> Result<()> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| format!("bad address {listen}"))?;
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(200));
    }
    fail(format!(
        "{name} did not listen on {listen}; see {}",
        dir.join(format!("{name}.log")).display()
    ))
}

fn target_bin_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
        .join("debug")
}

/// Runs a CLI (posctl, pos-agent) and returns its stdout, failing with its stderr.
fn cli(
    bin: &Path,
    dir: &Path,
    name: &str,
    args: &[&str],
    envs: &[(&str, String)],
) -> Result<String> {
    let mut command = Command::new(bin.join(name));
    command.current_dir(dir).args(args).stdin(Stdio::null());
    for (key, value) in envs {
        command.env(key, value);
    }
    let out = command
        .output()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    if !out.status.success() {
        return fail(format!(
            "{name} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn field(text: &str, key: &str) -> Result<String> {
    let prefix = format!("{key}: ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().to_owned())
        .ok_or_else(|| format!("no {key} in:\n{text}"))
}

/// `cargo xtask up`.
pub fn up(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    let root = workspace_root();
    let dir = root.join(".pos/up");
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;

    eprintln!("xtask: building the services");
    let status = Command::new(tools::cargo())
        .current_dir(&root)
        .args(["build", "--workspace", "--bins"])
        .status()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if !status.success() {
        return fail("cargo build failed");
    }

    let _deps;
    let (kafka, redis) = match (&options.kafka, &options.redis) {
        (Some(kafka), Some(redis)) => (kafka.clone(), redis.clone()),
        _ => {
            let deps = Deps::start(&DepsOptions {
                data_dir: dir.join("deps"),
                kafka_port: Some(9092),
                redis_port: Some(6379),
            })?;
            let endpoints = (
                options
                    .kafka
                    .clone()
                    .unwrap_or_else(|| deps.endpoints.kafka.clone()),
                options
                    .redis
                    .clone()
                    .unwrap_or_else(|| deps.endpoints.redis.clone()),
            );
            _deps = deps;
            endpoints
        }
    };

    let bin = target_bin_dir();
    let secrets = dir.join("secrets");
    let seed = root.join("deploy/demo/cards.json");
    let common = vec![
        ("POS_KAFKA", kafka.clone()),
        ("POS_REDIS", redis.clone()),
        (
            "POS_HSM_LMK_FILE",
            secrets.join("hsm-lmk.hex").display().to_string(),
        ),
        (
            "POS_TOKEN_KEY_FILE",
            secrets.join("token-key.hex").display().to_string(),
        ),
        (
            "POS_DATA_KEY_FILE",
            secrets.join("data-key.hex").display().to_string(),
        ),
        (
            "POS_OPERATORS_FILE",
            secrets.join("operators").display().to_string(),
        ),
        ("POS_AUTHORIZATION_URL", format!("http://{AUTHORIZATION}")),
        ("POS_REVERSAL_URL", format!("http://{REVERSAL}")),
        ("POS_SETTLEMENT_URL", format!("http://{SETTLEMENT}")),
        ("POS_ISSUER_URL", format!("http://{ISSUER}")),
        ("POS_FRAUD_URL", format!("http://{FRAUD}")),
    ];
    let mut services = Services {
        children: Vec::new(),
    };
    let with = |extra: &[(&'static str, String)]| {
        let mut envs = common.clone();
        envs.extend_from_slice(extra);
        envs
    };
    services.start(
        &bin,
        "issuer-sim",
        &dir,
        &with(&[("POS_ISSUER_SEED", seed.display().to_string())]),
        ISSUER,
    )?;
    services.start(&bin, "terminal-gateway", &dir, &with(&[]), GATEWAY)?;
    let rules = root.join("services/fraud-check/rules/default.toml");
    services.start(
        &bin,
        "fraud-check",
        &dir,
        &with(&[("POS_FRAUD_RULES_FILE", rules.display().to_string())]),
        FRAUD,
    )?;
    services.start(&bin, "authorization", &dir, &with(&[]), AUTHORIZATION)?;
    services.start(&bin, "reversal", &dir, &with(&[]), REVERSAL)?;
    services.start(&bin, "settlement", &dir, &with(&[]), SETTLEMENT)?;

    let token_file = secrets.join("admin.token");
    let posctl_env = vec![
        ("POSCTL_GATEWAY", format!("http://{GATEWAY}")),
        ("POSCTL_TOKEN_FILE", token_file.display().to_string()),
    ];
    let posctl = |args: &[&str]| cli(&bin, &dir, "posctl", args, &posctl_env);
    let merchant = posctl(&[
        "merchant",
        "onboard",
        "--type",
        "micro",
        "--name",
        "上海市徐汇区演示便利店",
        "--city",
        "上海",
        "--address",
        "上海市徐汇区漕溪北路88号",
        "--legal-person",
        "张三",
        "--id-number",
        "310104198506120035",
        "--phone",
        "13800138000",
        "--account-name",
        "张三",
        "--account-number",
        "6222021001123456789",
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
        "07:00-23:00",
        "--accept-agreement",
    ])?;
    let merchant_id = field(&merchant, "merchant_id")?;
    posctl(&["merchant", "approve", &merchant_id])?;
    posctl(&["merchant", "activate", &merchant_id])?;

    let mut agents = Vec::new();
    for n in 1..=options.terminals {
        let serial = format!("DEMO-SN-{n:02}");
        let terminal = field(
            &posctl(&[
                "terminal",
                "register",
                "--merchant",
                &merchant_id,
                "--serial",
                &serial,
            ])?,
            "terminal_id",
        )?;
        let code = field(
            &posctl(&["terminal", "activation-code", &terminal])?,
            "activation_code",
        )?;
        let agent_dir = dir.join("agents").join(format!("{n}"));
        let agent_env = vec![
            ("POS_AGENT_DIR", agent_dir.display().to_string()),
            ("POS_AGENT_GATEWAY", format!("http://{GATEWAY}")),
        ];
        let agent = |args: &[&str]| cli(&bin, &dir, "pos-agent", args, &agent_env);
        agent(&["activate", "--code", &code, "--serial", &serial])?;
        agent(&["sign-in"])?;
        agent(&["login", "--operator", "01", "--password", "0000"])?;
        agents.push((terminal, agent_dir));
    }
    services.check_alive()?;
    print_guide(&bin, &merchant_id, &agents, &kafka, &redis, &token_file);
    let stop = crate::stop_flag()?;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        services.check_alive()?;
        thread::sleep(Duration::from_millis(300));
    }
    eprintln!("xtask: stopping the platform");
    Ok(())
}

fn print_guide(
    bin: &Path,
    merchant_id: &str,
    agents: &[(String, PathBuf)],
    kafka: &str,
    redis: &str,
    token: &Path,
) {
    println!();
    println!("The platform is up (logs and data in .pos/up; Ctrl-C stops everything).");
    println!(
        "  terminal gateway  http://{GATEWAY}   authorization http://{AUTHORIZATION}   reversal http://{REVERSAL}   settlement http://{SETTLEMENT}   fraud-check http://{FRAUD}   issuer http://{ISSUER}"
    );
    println!(
        "  kafka {kafka}   redis {redis}   metrics 127.0.0.1:9101 (gateway), 9102, 9103, 9104, 9105, 9110"
    );
    println!(
        "  demo merchant {merchant_id}; operator token in {}",
        token.display()
    );
    println!();
    let agent = bin.join("pos-agent");
    for (terminal, dir) in agents {
        println!("terminal {terminal} (signed in, operator 01 logged in):");
        println!(
            "  {} --data-dir {} purchase --amount 50.00 --card deploy/demo/cards/unionpay-debit.json --entry chip --pin 123456",
            agent.display(),
            dir.display()
        );
    }
    if let Some((_, dir)) = agents.first() {
        println!();
        println!("more:");
        println!(
            "  {} --data-dir {} balance --card deploy/demo/cards/unionpay-debit.json --pin 123456",
            agent.display(),
            dir.display()
        );
        println!(
            "  {} --data-dir {} preauth --amount 300.00 --card deploy/demo/cards/unionpay-credit.json --pin 654321",
            agent.display(),
            dir.display()
        );
        println!(
            "  {} --data-dir {} purchase --amount 12.00 --card deploy/demo/cards/magstripe.json --entry swipe --pin 123456",
            agent.display(),
            dir.display()
        );
        println!(
            "  {} merchant show {merchant_id}      (POSCTL_TOKEN_FILE={})",
            bin.join("posctl").display(),
            token.display()
        );
    }
}
