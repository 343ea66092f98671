//! The Redis side of the platform: projections and hot state that can always be rebuilt from
//! the topics (DESIGN.md §3). One [`Store`] per process holds a multiplexed connection manager
//! (reconnects on its own) and the deployment's key prefix; every key goes through
//! [`Store::key`] so two deployments, or two tests, can share one Redis.
//!
//! Primitives, each a single round trip (a command, a `MULTI` pipeline or a Lua script):
//! - idempotency records: [`Store::set_if_absent`] (`SET NX PX GET`), [`Store::put`], [`Store::get`];
//! - counters: [`Store::incr_fixed_window`] and [`Store::sliding_window_add`] (count and sum);
//! - projection hashes: [`Store::hash_set`], [`Store::hash_get_all`], and
//!   [`Store::hash_set_if_newer`] which applies a projection update and its sequence atomically;
//! - applied sequences per aggregate: [`SequenceLog`] (implements `pos_events::AppliedSequences`);
//! - per-aggregate event lists whose length is the version: [`Store::append_next`];
//! - short locks serializing commands on one aggregate: [`Store::try_lock`].

mod counters;
mod error;
mod locks;
mod records;
mod sequences;
mod streams;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

pub use counters::WindowTotals;
pub use error::{Result, StoreError};
pub use locks::Lock;
pub use sequences::SequenceLog;
pub use streams::Appended;

/// How to reach Redis and which part of its keyspace is ours.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `redis://host:port[/db]`.
    pub url: String,
    /// Prefix of every key, e.g. the deployment name (`pos`), or a test's namespace.
    pub prefix: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".to_owned(),
            prefix: "pos".to_owned(),
        }
    }
}

/// A connection to Redis plus the key prefix. Cheap to clone (the connection is shared).
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects (and keeps reconnecting in the background when the connection drops).
    pub async fn connect(config: &StoreConfig) -> Result<Self> {
        let client = redis::Client::open(config.url.as_str())?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        let conn = ConnectionManager::new_with_config(client, manager_config).await?;
        Ok(Self {
            conn,
            prefix: config.prefix.clone(),
        })
    }

    /// The full key for `parts`: `prefix:part1:part2...`.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }

    /// The deployment prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A handle to the shared connection for commands not wrapped here.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Every key matching the glob `pattern` (a full key pattern, prefix included), by SCAN
    /// so Redis is never blocked; for listings and maintenance, not for hot paths.
    pub async fn scan_keys(&self, pattern: &str) -> Result<Vec<String>> {
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut keys = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await?;
            keys.extend(batch);
            if next == 0 {
                keys.sort();
                keys.dedup();
                return Ok(keys);
            }
            cursor = next;
        }
    }

    /// Deletes every key under this store's prefix (tests and rebuilds from the topics).
    pub async fn flush_prefix(&self) -> Result<u64> {
        let keys = self.scan_keys(&format!("{}:*", self.prefix)).await?;
        let mut conn = self.conn.clone();
        let mut deleted = 0;
        for chunk in keys.chunks(500) {
            let n: u64 = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await?;
            deleted += n;
        }
        Ok(deleted)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
