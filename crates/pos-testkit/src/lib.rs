//! Helpers for tests that cross a process boundary. `cargo xtask test` starts a real Tansu
//! broker and a real redis-server on loopback and passes their addresses in `POS_TEST_KAFKA`
//! and `POS_TEST_REDIS`; [`TestEnv`] reads them and hands every test its own topic namespace
//! and Redis key prefix, so tests run in parallel without seeing each other's data.

mod process;

use std::path::PathBuf;

use pos_events::BusConfig;
use pos_store::StoreConfig;

pub use process::{ServiceProcess, bin_path, free_port, run_cli};

/// The broker and Redis a test talks to, with names unique to that test.
#[derive(Debug, Clone)]
pub struct TestEnv {
    /// Kafka bootstrap servers, e.g. `127.0.0.1:40123`.
    pub kafka: String,
    /// Redis URL, e.g. `redis://127.0.0.1:40124`.
    pub redis: String,
    /// Unique per test: the topic namespace and the Redis key prefix.
    pub namespace: String,
}

impl TestEnv {
    /// Reads the addresses from the environment and makes a fresh namespace.
    ///
    /// # Panics
    /// When the variables are missing: such a test must not silently pass without its
    /// dependencies. Run it through `cargo xtask test`.
    pub fn new() -> Self {
        let kafka = required("POS_TEST_KAFKA");
        let redis = required("POS_TEST_REDIS");
        Self {
            kafka,
            redis,
            namespace: unique_name("t"),
        }
    }

    /// Bus settings whose topics live in this test's namespace.
    pub fn bus(&self, client_id: &str) -> BusConfig {
        BusConfig {
            brokers: self.kafka.clone(),
            client_id: client_id.to_owned(),
            topic_namespace: Some(self.namespace.clone()),
            ..BusConfig::default()
        }
    }

    /// Store settings whose keys all start with this test's prefix.
    pub fn store(&self) -> StoreConfig {
        StoreConfig {
            url: self.redis.clone(),
            prefix: self.namespace.clone(),
        }
    }

    /// A consumer group name unique to this test.
    pub fn group(&self, name: &str) -> String {
        format!("{}.{name}", self.namespace)
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

/// Path of the Tansu binary `cargo xtask test` found, for tests that run a broker of their own.
pub fn tansu_bin() -> PathBuf {
    PathBuf::from(required("POS_TANSU_BIN"))
}

/// A short name that no other test (or earlier run) uses: `prefix` + random hex.
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &id[..12])
}

fn required(var: &str) -> String {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{var} is not set: this test needs the broker and Redis that `cargo xtask test` starts \
             (run `cargo xtask test`, or `cargo xtask deps` and export {var})"
        ),
    }
}
