//! Hot state of terminal sessions in Redis (DESIGN.md §3): the working keys of the current
//! sign-in (wrapped under the HSM's master key, never in clear), the highest message sequence
//! accepted under them, sign-in nonces already seen, and the fleet view (connected, last seen,
//! software version, batch). None of it is rebuilt from events: after a Redis flush terminals
//! simply sign in again, as they do every day.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pos_facts::{Facts, SessionKeys};
use pos_proto::v1::TerminalFleetStatus;
use pos_store::Store;

use crate::error::Result;

/// How long a terminal's connection count lives after its last change or heartbeat.
const CONNECTION_TTL_MS: u64 = 3_600 * 1_000;

/// How long the set of logged-in operators of a session is kept (a terminal signs in daily).
const SESSION_TTL_MS: u64 = 36 * 3_600 * 1_000;

/// Session and fleet state.
#[derive(Debug, Clone)]
pub struct Hot {
    store: Store,
    facts: Facts,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Hot {
    /// Hot state in `store`.
    pub fn new(store: Store) -> Self {
        Self {
            facts: Facts::new(store.clone()),
            store,
        }
    }

    /// Keeps the keys of a new sign-in (replacing the previous ones).
    pub async fn save_keys(&self, terminal_id: &str, keys: &SessionKeys) -> Result<()> {
        Ok(self.facts.put_session(terminal_id, keys).await?)
    }

    /// The keys of the terminal's current sign-in, if it has one.
    pub async fn keys(&self, terminal_id: &str) -> Result<Option<SessionKeys>> {
        Ok(self.facts.session(terminal_id).await?)
    }

    /// Accepts message `seq` under key version `key_version` only if it is above every one
    /// accepted before: a recorded message cannot be replayed, not even on a new connection.
    pub async fn accept_seq(&self, terminal_id: &str, key_version: u32, seq: u64) -> Result<bool> {
        let key = self
            .store
            .key(&["msgseq", terminal_id, &key_version.to_string()]);
        Ok(self.store.advance(&key, seq).await?)
    }

    /// `true` the first time a sign-in nonce is seen for this terminal within `window`.
    pub async fn fresh_nonce(
        &self,
        terminal_id: &str,
        nonce: &[u8],
        window: Duration,
    ) -> Result<bool> {
        let key = self
            .store
            .key(&["signin-nonce", terminal_id, &hex::encode(nonce)]);
        Ok(self
            .store
            .set_if_absent(&key, b"1", window)
            .await?
            .is_none())
    }

    /// Marks operator `operator_no` logged in (or out) within the terminal's sign-in session.
    pub async fn set_operator_login(
        &self,
        terminal_id: &str,
        session_id: &str,
        operator_no: &str,
        logged_in: bool,
    ) -> Result<()> {
        let key = self
            .store
            .key(&["session-operators", terminal_id, session_id]);
        let mut conn = self.store.connection();
        let mut pipe = redis::pipe();
        if logged_in {
            pipe.cmd("SADD").arg(&key).arg(operator_no).ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(SESSION_TTL_MS).ignore();
        } else {
            pipe.cmd("SREM").arg(&key).arg(operator_no).ignore();
        }
        let () = pipe
            .query_async(&mut conn)
            .await
            .map_err(pos_store::StoreError::from)?;
        Ok(())
    }

    /// Whether operator `operator_no` is logged in within the terminal's sign-in session.
    pub async fn operator_logged_in(
        &self,
        terminal_id: &str,
        session_id: &str,
        operator_no: &str,
    ) -> Result<bool> {
        let key = self
            .store
            .key(&["session-operators", terminal_id, session_id]);
        let mut conn = self.store.connection();
        let member: bool = redis::cmd("SISMEMBER")
            .arg(&key)
            .arg(operator_no)
            .query_async(&mut conn)
            .await
            .map_err(pos_store::StoreError::from)?;
        Ok(member)
    }

    /// Records a successful sign-in in the fleet view.
    pub async fn fleet_signed_in(
        &self,
        terminal_id: &str,
        merchant_id: &str,
        software_version: &str,
        batch_no: u32,
        session_id: &str,
    ) -> Result<()> {
        let now = now_secs().to_string();
        self.store
            .hash_set(
                &self.store.key(&["fleet", terminal_id]),
                &[
                    ("merchant_id", merchant_id),
                    ("software_version", software_version),
                    ("batch_no", &batch_no.to_string()),
                    ("session_id", session_id),
                    ("signed_in_at", &now),
                    ("last_seen", &now),
                ],
            )
            .await?;
        Ok(())
    }

    /// Counts a connection of the terminal opening (or closing) and marks it seen now. The
    /// count expires an hour after its last change, so a gateway that dies with connections
    /// open cannot leave a terminal "connected" for ever; heartbeats keep a long connection in.
    pub async fn fleet_seen(&self, terminal_id: &str, connected: bool) -> Result<()> {
        self.touch(terminal_id, Some(if connected { 1 } else { -1 }))
            .await
    }

    /// Keeps a long connection counted (on heartbeats).
    pub async fn fleet_heartbeat(&self, terminal_id: &str) -> Result<()> {
        self.touch(terminal_id, None).await
    }

    /// Adds `delta` to the open connections (if any), renews their expiry, records "seen now".
    async fn touch(&self, terminal_id: &str, delta: Option<i64>) -> Result<()> {
        let connections = self.store.key(&["fleet-connections", terminal_id]);
        let mut pipe = redis::pipe();
        if let Some(delta) = delta {
            pipe.cmd("INCRBY").arg(&connections).arg(delta).ignore();
        }
        pipe.cmd("PEXPIRE")
            .arg(&connections)
            .arg(CONNECTION_TTL_MS)
            .ignore()
            .cmd("HSET")
            .arg(self.store.key(&["fleet", terminal_id]))
            .arg("last_seen")
            .arg(now_secs().to_string())
            .ignore();
        let mut conn = self.store.connection();
        let () = pipe
            .query_async(&mut conn)
            .await
            .map_err(pos_store::StoreError::from)?;
        Ok(())
    }

    /// The fleet view of one terminal.
    pub async fn fleet(&self, terminal_id: &str) -> Result<TerminalFleetStatus> {
        let open_connections = self
            .store
            .get(&self.store.key(&["fleet-connections", terminal_id]))
            .await?
            .and_then(|v| String::from_utf8_lossy(&v).parse::<i64>().ok())
            .unwrap_or(0);
        let fields = self
            .store
            .hash_get_all(&self.store.key(&["fleet", terminal_id]))
            .await?;
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map_or("", |(_, v)| v.as_str())
        };
        let time = |name: &str| {
            get(name)
                .parse::<i64>()
                .ok()
                .map(|seconds| prost_types::Timestamp { seconds, nanos: 0 })
        };
        Ok(TerminalFleetStatus {
            terminal_id: terminal_id.to_owned(),
            merchant_id: get("merchant_id").to_owned(),
            connected: open_connections > 0,
            last_seen: time("last_seen"),
            software_version: get("software_version").to_owned(),
            batch_no: get("batch_no").parse().unwrap_or(0),
            session_id: get("session_id").to_owned(),
            signed_in_at: time("signed_in_at"),
            ..TerminalFleetStatus::default()
        })
    }
}
