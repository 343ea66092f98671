//! `cargo xtask bench`: the benchmark (DESIGN.md §9), printing throughput and latency
//! percentiles. Builds `fraud-check` and the load client `pos-bench` in release, starts Tansu
//! and redis-server on free loopback ports and fraud-check on them with the shipped rules and a
//! fresh token key, runs `pos-bench fraud` against it (client round trips, and the service's
//! own `pos_fraud_assess_duration_seconds` over the measured run), and stops everything, also
//! when a step failed. Keys, logs and broker data stay in a fresh run directory. Options after
//! `--` go to `pos-bench fraud` as they are (`pos-bench fraud --help` lists them).

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::stack::{Deps, DepsOptions};
use crate::{Result, fail, run_dir, step, tools, workspace_root};

/// Measured requests when `--requests` is not given.
const DEFAULT_REQUESTS: u64 = 20_000;
/// Runs when `--concurrency` is not given: one request at a time (the latency a lone
/// authorization sees), then 16 in flight (throughput; on a small machine the client, the
/// service, Redis and the broker then queue for the same cores).
const DEFAULT_CONCURRENCY: [u32; 2] = [1, 16];

/// Options of `bench`.
#[derive(Debug)]
struct BenchOptions {
    requests: u64,
    /// One run per entry.
    concurrency: Vec<u32>,
    /// After `--`: more options of `pos-bench fraud` (`--per-merchant`, `--warmup`, ...).
    extra: Vec<String>,
}

fn parse(args: &[String]) -> Result<BenchOptions> {
    let mut options = BenchOptions {
        requests: DEFAULT_REQUESTS,
        concurrency: DEFAULT_CONCURRENCY.to_vec(),
        extra: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<u64> {
            let text = it.next().ok_or_else(|| format!("{name} needs a number"))?;
            text.parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name}: `{text}` is not a positive number"))
        };
        match arg.as_str() {
            "--requests" => options.requests = number("--requests")?,
            "--concurrency" => {
                options.concurrency = vec![
                    u32::try_from(number("--concurrency")?)
                        .map_err(|_| "--concurrency: too large".to_owned())?,
                ];
            }
            "--" => options.extra = it.by_ref().cloned().collect(),
            other => return fail(format!("bench: unknown option {other}")),
        }
    }
    Ok(options)
}

/// fraud-check, killed on drop.
struct Service {
    name: &'static str,
    child: Child,
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.child.kill().is_ok() {
            let _ = self.child.wait();
            eprintln!("xtask: stopped {}", self.name);
        }
    }
}

/// `cargo xtask bench`.
pub fn bench(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    let root = workspace_root();
    tools::ensure_build_tools()?;
    step(
        "cargo build --release -p fraud-check -p pos-bench",
        Command::new(tools::cargo()).current_dir(&root).args([
            "build",
            "--release",
            "--locked",
            "-p",
            "fraud-check",
            "-p",
            "pos-bench",
        ]),
    )?;
    let bin = release_dir();

    let dir = run_dir("bench");
    let mut deps = Deps::start(&DepsOptions {
        data_dir: dir.clone(),
        kafka_port: None,
        redis_port: None,
    })?;
    let key_file = dir.join("token-key.hex");
    write_token_key(&key_file)?;
    let operators = dir.join("operators");
    fs::write(&operators, "").map_err(|e| format!("cannot write {}: {e}", operators.display()))?;

    let listen = format!("127.0.0.1:{}", free_port()?);
    let metrics = format!("127.0.0.1:{}", free_port()?);
    let rules = root.join("services/fraud-check/rules/default.toml");
    let namespace = dir
        .file_name()
        .map_or_else(|| "bench".to_owned(), |n| n.to_string_lossy().into_owned());
    let envs = [
        ("POS_KAFKA", deps.endpoints.kafka.clone()),
        ("POS_REDIS", deps.endpoints.redis.clone()),
        ("POS_REDIS_PREFIX", "bench".to_owned()),
        ("POS_TOPIC_NAMESPACE", namespace),
        ("POS_FRAUD_LISTEN", listen.clone()),
        ("POS_FRAUD_METRICS", metrics.clone()),
        ("POS_FRAUD_RULES_FILE", rules.display().to_string()),
        ("POS_TOKEN_KEY_FILE", key_file.display().to_string()),
        ("POS_OPERATORS_FILE", operators.display().to_string()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    eprintln!(
        "xtask: broker {} and redis {}, fraud-check on {listen} (logs in {})",
        deps.endpoints.kafka,
        deps.endpoints.redis,
        dir.display()
    );
    let mut fraud = start(&bin, "fraud-check", &dir, &envs)?;
    wait_for(&mut fraud, &listen, &dir)?;

    let mut outcome = Ok(());
    for concurrency in &options.concurrency {
        eprintln!("xtask: == pos-bench fraud --concurrency {concurrency}");
        let status = Command::new(bin.join("pos-bench"))
            .current_dir(&root)
            .stdin(Stdio::null())
            .args(["fraud", "--url", &format!("http://{listen}")])
            .args(["--metrics", &format!("http://{metrics}")])
            .args(["--requests", &options.requests.to_string()])
            .args(["--concurrency", &concurrency.to_string()])
            .arg("--token-key-file")
            .arg(&key_file)
            .args(&options.extra)
            .status()
            .map_err(|e| format!("cannot run pos-bench: {e}"))?;
        if !status.success() {
            outcome = fail(format!("pos-bench failed ({status})"));
            break;
        }
    }
    let alive = match fraud.child.try_wait() {
        Ok(Some(exit)) => fail(format!(
            "fraud-check exited during the benchmark ({exit}); see {}",
            dir.join("fraud-check.log").display()
        )),
        _ => Ok(()),
    };
    let deps_alive = deps.check_alive();
    drop(fraud);
    drop(deps);
    outcome.and(alive).and(deps_alive)
}

/// `$CARGO_TARGET_DIR/release` (or the workspace's `target/release`).
fn release_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
        .join("release")
}

/// A fresh 32-byte card token key as terminal-gateway writes it: hex, owner-only (fraud-check
/// refuses a key file others can read).
fn write_token_key(path: &Path) -> Result<()> {
    let mut key = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut key))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(hex.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn start(bin: &Path, name: &'static str, dir: &Path, envs: &[(&str, String)]) -> Result<Service> {
    let log = fs::File::create(dir.join(format!("{name}.log")))
        .map_err(|e| format!("cannot create the {name} log: {e}"))?;
    let err = log
        .try_clone()
        .map_err(|e| format!("cannot share the {name} log: {e}"))?;
    let mut command = Command::new(bin.join(name));
    command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    for (key, value) in envs {
        command.env(key, value);
    }
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    Ok(Service { name, child })
}

/// Waits until the service accepts connections on `listen`; fails at once when it exited.
fn wait_for(service: &mut Service, listen: &str, dir: &Path) -> Result<()> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| format!("bad address {listen}"))?;
    let log = dir.join(format!("{}.log", service.name));
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = service.child.try_wait() {
            return fail(format!(
                "{} exited at start-up ({status}); see {}",
                service.name,
                log.display()
            ));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(200));
    }
    fail(format!(
        "{} did not listen on {listen} within 90 s; see {}",
        service.name,
        log.display()
    ))
}

fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_default_and_parse() {
        let o = parse(&[]).unwrap();
        assert_eq!((o.requests, o.concurrency), (20_000, vec![1, 16]));
        let o = parse(&args(&["--requests", "500", "--concurrency", "4"])).unwrap();
        assert_eq!((o.requests, o.concurrency), (500, vec![4]));
        assert!(parse(&args(&["--requests", "0"])).is_err());
        assert!(parse(&args(&["--requests"])).is_err());
        assert!(parse(&args(&["--fast"])).is_err());
        let o = parse(&args(&["--requests", "9", "--", "--per-merchant", "500"])).unwrap();
        assert_eq!((o.requests, o.extra), (9, args(&["--per-merchant", "500"])));
    }
}
