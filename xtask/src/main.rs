//! `cargo xtask`: the project's own commands (DESIGN.md §9).
//!
//! - `deps`  installs when missing and runs Tansu and redis-server on loopback until Ctrl-C;
//! - `test`  starts them on free ports, runs fmt, clippy and every test, stops them, and exits
//!   non-zero on any failure (this is what `.ci/run` calls);
//! - `up`    the whole platform on one machine: dependencies, services, a demo merchant with
//!   signed-in terminals and the issuer's test cards (see `up.rs`).

mod bench;
mod stack;
mod tools;
mod up;

use std::env;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
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
  up [--terminals N] [--kafka HOST:PORT --redis URL]
                                           the platform on one machine with a demo merchant
  bench [--requests N] [--concurrency C] [-- <pos-bench fraud options>]
                                           fraud-check Assess throughput and latency percentiles";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("deps") => deps(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("up") => up::up(&args[1..]),
        Some("bench") => bench::bench(&args[1..]),
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

pub fn workspace_root() -> PathBuf {
    // At run time first: a target directory shared between checkouts may hold an xtask built
    // in another one.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
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

fn wait_until_dead(deps: &mut Deps) -> Result<()> {
    let stop = stop_flag()?;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        deps.check_alive()?;
        std::thread::sleep(Duration::from_millis(300));
    }
    eprintln!("xtask: stopping");
    Ok(())
}

/// Set when Ctrl-C (SIGINT) or SIGTERM arrives, so that whatever was started is stopped.
pub fn stop_flag() -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, std::sync::Arc::clone(&flag))
            .map_err(|e| format!("cannot watch for signals: {e}"))?;
    }
    Ok(flag)
}

fn test(args: &[String]) -> Result<()> {
    let extra: Vec<String> = match args.iter().position(|a| a == "--") {
        Some(i) => args[i + 1..].to_vec(),
        None => args.to_vec(),
    };
    let root = workspace_root();
    tools::ensure_build_tools()?;
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
    // Build the binaries (tests run them as users do) and the tests before the broker starts,
    // so that a slow build does not count against it.
    step(
        "cargo build --bins",
        Command::new(tools::cargo()).current_dir(&root).args([
            "build",
            "--workspace",
            "--bins",
            "--locked",
        ]),
    )?;
    step(
        "cargo test --no-run",
        Command::new(tools::cargo()).current_dir(&root).args([
            "test",
            "--workspace",
            "--locked",
            "--no-run",
        ]),
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
    let (outcome, summary) = run_tests(&mut cmd);
    let alive = deps.check_alive();
    drop(deps);
    // Last line of the run: what ran, after the dependencies' shutdown messages.
    println!("{summary}");
    outcome.and(alive)
}

/// Runs `cargo test`, echoing its output; returns its outcome and one line totalling every test
/// binary's `test result:` line.
fn run_tests(cmd: &mut Command) -> (Result<()>, String) {
    eprintln!("xtask: == cargo test");
    let mut totals = (0u64, 0u64, 0u64);
    let outcome = run_and_count(cmd, &mut totals);
    let (passed, failed, ignored) = totals;
    let summary = format!("tests: {passed} passed, {failed} failed, {ignored} skipped");
    (outcome, summary)
}

fn run_and_count(cmd: &mut Command, totals: &mut (u64, u64, u64)) -> Result<()> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    let stdout = child.stdout.take().ok_or("cargo test has no stdout")?;
    let (passed, failed, ignored) = totals;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading cargo test output: {e}"))?;
        println!("{line}");
        if let Some(counts) = line.strip_prefix("test result: ") {
            *passed += count_of(counts, " passed");
            *failed += count_of(counts, " failed");
            *ignored += count_of(counts, " ignored");
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for cargo test: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        fail(format!("cargo test failed ({status})"))
    }
}

/// The number before `label` in a `test result:` line (`ok. 12 passed; 0 failed; ...`).
fn count_of(counts: &str, label: &str) -> u64 {
    counts
        .split(';')
        .find_map(|part| part.trim().strip_suffix(label.trim_start()))
        .and_then(|n| n.trim().rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
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

#[cfg(test)]
mod tests {
    use super::count_of;

    #[test]
    fn counts_come_from_cargo_test_result_lines() {
        let line =
            "ok. 12 passed; 1 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.1s";
        assert_eq!(count_of(line, " passed"), 12);
        assert_eq!(count_of(line, " failed"), 1);
        assert_eq!(count_of(line, " ignored"), 3);
        assert_eq!(count_of("FAILED. 0 passed; 2 failed;", " failed"), 2);
    }
}
