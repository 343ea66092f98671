//! `cargo xtask`: the project's own commands (DESIGN.md §9).
//!
//! - `deps`  installs when missing and runs Tansu and redis-server on loopback until Ctrl-C;
//! - `test`  starts them on free ports, runs fmt, clippy and every test, stops them, and exits
//!   non-zero on any failure (this is what `.ci/run` calls);
//! - `up`    the whole platform on one machine (today: its dependencies; the services join as
//!   their issues land).

mod stack;
mod tools;

use std::env;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use stack::{Deps, DepsOptions};

/// xtask's error: a message for the person running it.
pub type Result<T> = std::result::Result<T, String>;

/// Shorthand for returning an error message.
pub fn fail<T>(msg: impl Into<String>) -> Result<T> {
    Err(msg.into())
}

const USAGE: &str = "usage: cargo xtask <command>

commands:
  deps [--kafka-port P] [--redis-port P]   run Tansu and redis-server on loopback until Ctrl-C
  test [-- <cargo test args>]              fmt, clippy and the whole test suite against them
  up                                       the platform on one machine (see README.md)";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("deps") => deps(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("up") => up(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => fail(USAGE),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("xtask: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// A fresh directory under `target/xtask` (or `$CARGO_TARGET_DIR/xtask`) for one run.
fn run_dir(kind: &str) -> PathBuf {
    let target = env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    target
        .join("xtask")
        .join(format!("{kind}-{stamp}-{}", std::process::id()))
}

fn port_flag(args: &[String], flag: &str) -> Result<Option<u16>> {
    match args.iter().position(|a| a == flag) {
        None => Ok(None),
        Some(i) => {
            let value = args
                .get(i + 1)
                .ok_or_else(|| format!("{flag} needs a port number"))?;
            value
                .parse()
                .map(Some)
                .map_err(|_| format!("{flag}: `{value}` is not a port number"))
        }
    }
}

fn deps(args: &[String]) -> Result<()> {
    let opts = DepsOptions {
        data_dir: workspace_root().join(".pos/deps"),
        kafka_port: port_flag(args, "--kafka-port")?.or(Some(9092)),
        redis_port: port_flag(args, "--redis-port")?.or(Some(6379)),
    };
    let mut deps = Deps::start(&opts)?;
    println!("kafka: {}", deps.endpoints.kafka);
    println!("redis: {}", deps.endpoints.redis);
    println!("data:  {}", opts.data_dir.display());
    println!("running; press Ctrl-C to stop");
    wait_until_dead(&mut deps)
}

fn up(args: &[String]) -> Result<()> {
    eprintln!(
        "xtask: the services join `cargo xtask up` as their issues land; \
         for now it runs the broker and Redis they will use"
    );
    deps(args)
}

fn wait_until_dead(deps: &mut Deps) -> Result<()> {
    loop {
        deps.check_alive()?;
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn test(args: &[String]) -> Result<()> {
    let extra: Vec<String> = match args.iter().position(|a| a == "--") {
        Some(i) => args[i + 1..].to_vec(),
        None => args.to_vec(),
    };
    let root = workspace_root();
    step(
        "cargo fmt --check",
        Command::new(tools::cargo())
            .current_dir(&root)
            .args(["fmt", "--all", "--check"]),
    )?;
    step(
        "cargo clippy",
        Command::new(tools::cargo()).current_dir(&root).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    // Build the tests before the broker starts so that a slow build does not count against it.
    step(
        "cargo test --no-run",
        Command::new(tools::cargo())
            .current_dir(&root)
            .args(["test", "--workspace", "--locked", "--no-run"]),
    )?;

    let opts = DepsOptions {
        data_dir: run_dir("test"),
        kafka_port: None,
        redis_port: None,
    };
    let mut deps = Deps::start(&opts)?;
    eprintln!(
        "xtask: broker {} and redis {} (logs in {})",
        deps.endpoints.kafka,
        deps.endpoints.redis,
        opts.data_dir.display()
    );
    let mut cmd = Command::new(tools::cargo());
    cmd.current_dir(&root)
        .args(["test", "--workspace", "--locked"])
        .args(&extra)
        .env("POS_TEST_KAFKA", &deps.endpoints.kafka)
        .env("POS_TEST_REDIS", &deps.endpoints.redis)
        .env("POS_TANSU_BIN", &deps.tansu_bin);
    let outcome = step("cargo test", &mut cmd);
    deps.check_alive()?;
    outcome
}

fn step(name: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: == {name}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        fail(format!("{name} failed ({status})"))
    }
}
