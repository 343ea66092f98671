//! Running the project's own binaries in tests, as a user would: each service is a child
//! process with its own log file, killed when the handle is dropped (also when a test fails).

use std::collections::BTreeSet;
use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The path of a workspace binary (built by `cargo test --workspace` / `cargo build`): it sits
/// in the profile directory, beside the `deps` directory holding the test executable.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built; run the tests through `cargo xtask test` (it builds every binary)",
        path.display()
    );
    path
}

/// Ports handed out by [`free_port`] in this process.
static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A free loopback port for a service a test starts (released before returning; the service
/// binds it right after). Ports come from 20000..32000, below Linux's ephemeral range, so that
/// neither the kernel's choice for an outgoing connection nor another `bind(0)` takes them in
/// the meantime, and no port is handed out twice in one test process.
pub fn free_port() -> u16 {
    let mut given = GIVEN.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let random = uuid::Uuid::new_v4().as_u128();
        let port = 20_000 + u16::try_from(random % 12_000).unwrap_or(0);
        if given.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
}

/// A running child process that is killed on drop.
#[derive(Debug)]
pub struct ServiceProcess {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ServiceProcess {
    /// Starts binary `name` with `envs`, logging stdout and stderr to `log_dir/name.log`.
    pub fn start(name: &str, envs: &[(&str, String)], log_dir: &Path) -> Self {
        std::fs::create_dir_all(log_dir).expect("log directory");
        let log = log_dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file handle");
        let mut command = Command::new(bin_path(name));
        command
            .current_dir(log_dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env("POS_LOG_FORMAT", "json");
        for (key, value) in envs {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// Waits until the process accepts TCP connections on `port`.
    pub fn wait_for_port(&mut self, port: u16) {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before listening; log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{} did not listen on {addr} within 60 s; log:\n{}",
            self.name,
            self.log_text()
        );
    }

    /// Everything the process logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the process (SIGKILL) and waits for it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a CLI binary to completion (posctl, pos-agent) and returns its output.
pub fn run_cli(name: &str, args: &[&str], envs: &[(&str, String)], dir: &Path) -> Output {
    let mut command = Command::new(bin_path(name));
    command.current_dir(dir).args(args).stdin(Stdio::null());
    for (key, value) in envs {
        command.env(key, value);
    }
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"))
}
