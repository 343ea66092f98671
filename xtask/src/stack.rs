//! Starts the platform's dependencies (Tansu and redis-server) as child processes on loopback
//! and stops them again when the [`Deps`] handle is dropped, also when a step failed.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::tools;
use crate::{Result, fail};

/// Where the dependencies listen, as the services and tests expect them.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Kafka bootstrap address, `127.0.0.1:PORT`.
    pub kafka: String,
    /// Redis URL, `redis://127.0.0.1:PORT`.
    pub redis: String,
}

/// How to run the dependencies.
#[derive(Debug, Clone)]
pub struct DepsOptions {
    /// Directory for the broker's SQLite file, the logs and Redis' working directory.
    pub data_dir: PathBuf,
    /// Fixed ports, or `None` to pick free ones.
    pub kafka_port: Option<u16>,
    pub redis_port: Option<u16>,
}

/// Running Tansu and redis-server; both are killed on drop.
#[derive(Debug)]
pub struct Deps {
    pub endpoints: Endpoints,
    pub tansu_bin: PathBuf,
    children: Vec<(String, Child)>,
}

impl Deps {
    /// Makes sure both programs exist, starts them and waits until they accept connections.
    pub fn start(opts: &DepsOptions) -> Result<Self> {
        let tansu_bin = tools::ensure_tansu()?;
        let redis_bin = tools::ensure_redis()?;
        fs::create_dir_all(&opts.data_dir)
            .map_err(|e| format!("cannot create {}: {e}", opts.data_dir.display()))?;
        let kafka_port = opts.kafka_port.map_or_else(free_port, Ok)?;
        let redis_port = opts.redis_port.map_or_else(free_port, Ok)?;
        let mut deps = Deps {
            endpoints: Endpoints {
                kafka: format!("127.0.0.1:{kafka_port}"),
                redis: format!("redis://127.0.0.1:{redis_port}"),
            },
            tansu_bin: tansu_bin.clone(),
            children: Vec::new(),
        };

        let listener = format!("tcp://127.0.0.1:{kafka_port}");
        let mut tansu = Command::new(&tansu_bin);
        // Tansu resolves a sqlite:// path against its working directory (absolute paths fail).
        tansu
            .current_dir(&opts.data_dir)
            .env("RUST_LOG", "warn")
            .args(["broker", "--listener-url", &listener])
            .args(["--advertised-listener-url", &listener])
            .args(["--storage-engine", "sqlite://tansu.db"]);
        deps.spawn("tansu", &mut tansu, &opts.data_dir)?;

        let mut redis = Command::new(&redis_bin);
        redis
            .current_dir(&opts.data_dir)
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ]);
        deps.spawn("redis-server", &mut redis, &opts.data_dir)?;

        wait_for_port("tansu", kafka_port, &opts.data_dir)?;
        wait_for_port("redis-server", redis_port, &opts.data_dir)?;
        Ok(deps)
    }

    fn spawn(&mut self, name: &str, cmd: &mut Command, data_dir: &Path) -> Result<()> {
        let log = fs::File::create(data_dir.join(format!("{name}.log")))
            .map_err(|e| format!("cannot create the {name} log: {e}"))?;
        let err = log
            .try_clone()
            .map_err(|e| format!("cannot share the {name} log: {e}"))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        self.children.push((name.to_owned(), child));
        Ok(())
    }

    /// Fails when one of the children has exited (crashed) since it was started.
    pub fn check_alive(&mut self) -> Result<()> {
        for (name, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                return fail(format!("{name} exited unexpectedly ({status})"));
            }
        }
        Ok(())
    }
}

impl Drop for Deps {
    fn drop(&mut self) {
        for (name, child) in self.children.iter_mut().rev() {
            if child.kill().is_ok() {
                let _ = child.wait();
                eprintln!("xtask: stopped {name}");
            }
        }
    }
}

fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("cannot read the free port: {e}"))?
        .port();
    Ok(port)
}

fn wait_for_port(name: &str, port: u16, data_dir: &Path) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(100));
    }
    let log = data_dir.join(format!("{name}.log"));
    fail(format!(
        "{name} did not listen on {addr} within 60 s; its log is {}",
        log.display()
    ))
}
