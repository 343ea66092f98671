//! Finds, and when missing installs, the two programs the platform needs on a machine with no
//! containers: Tansu (a Kafka-compatible broker, built from crates.io) and redis-server (from
//! the system package manager). Installs go outside the clone (cargo's own bin directory), so a
//! second clone or a CI run reuses them.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, fail};

/// The Tansu release the project is tested with (see shared TOOLING.md).
pub const TANSU_VERSION: &str = "0.6.0";

/// Returns the path of a `tansu` binary, installing it with `cargo install` when none is found.
pub fn ensure_tansu() -> Result<PathBuf> {
    if let Some(path) = find_tansu() {
        return Ok(path);
    }
    eprintln!(
        "xtask: tansu {TANSU_VERSION} not found; installing it from crates.io \
         (about 10 minutes on 2 cores, once per machine)"
    );
    let status = Command::new(cargo())
        .args(["install", "tansu", "--version", TANSU_VERSION, "--locked"])
        .args(["--features", "dynostore,libsql"])
        .status()
        .map_err(|e| format!("cannot run cargo install: {e}"))?;
    if !status.success() {
        return fail("cargo install tansu failed; see its output above");
    }
    find_tansu().ok_or_else(|| "tansu was installed but is not on PATH nor in cargo's bin".into())
}

/// Returns the path of `redis-server`, installing Debian's package when running as root.
pub fn ensure_redis() -> Result<PathBuf> {
    if let Some(path) = which("redis-server") {
        return Ok(path);
    }
    if !is_root() {
        return fail(
            "redis-server is not installed; install it with `sudo apt-get install -y redis-server` \
             (or your system's package for Redis 7) and run the command again",
        );
    }
    eprintln!("xtask: redis-server not found; installing Debian's redis-server package");
    run_quiet(Command::new("apt-get").args(["update", "-qq"]))?;
    run_quiet(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "redis-server"]),
    )?;
    which("redis-server")
        .ok_or_else(|| "apt-get installed redis-server but it is not on PATH".into())
}

/// Makes sure the C build tools that bundled native crates need (librdkafka builds with
/// `make` and a C compiler) are present, installing Debian's packages when running as root.
pub fn ensure_build_tools() -> Result<()> {
    let missing: Vec<&str> = ["make", "cc", "g++"]
        .into_iter()
        .filter(|tool| which(tool).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        return fail(format!(
            "missing build tools {missing:?}; install them with `sudo apt-get install -y build-essential`"
        ));
    }
    eprintln!("xtask: installing build tools ({missing:?} missing)");
    run_quiet(Command::new("apt-get").args(["update", "-qq"]))?;
    run_quiet(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "build-essential"]),
    )
}

/// The cargo that runs us (so `cargo install` uses the same toolchain).
pub fn cargo() -> String {
    env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn find_tansu() -> Option<PathBuf> {
    which("tansu").or_else(|| {
        let home = env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
        let candidate = home.join("bin").join("tansu");
        candidate.is_file().then_some(candidate)
    })
}

fn which(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn run_quiet(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    fail(format!(
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}
