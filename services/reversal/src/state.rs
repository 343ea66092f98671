//! This service's state in Redis (under the deployment prefix), all of it rebuilt from its own
//! events by [`crate::rebuild`] after a flush:
//!
//! - `rev:orig:{transaction_id}`: hash of what was done to an original: `reversed_by`
//!   (reversal id), `voided_by` (void id), `refund:{refund_id}` = minor units of each refund
//!   (so applying the same refund twice changes nothing);
//! - `rev:agg:{reversal_id}`: hash of a reversal aggregate (`{terminal}:{batch}:{stan}` of the
//!   original): `seq` (last event sequence), `reversed` = 1 once `TransactionReversed` is out;
//! - `rev:step:{void|refund}:{terminal}:{batch}:{stan}`: idempotency of a void or refund
//!   request (JSON: fingerprint, the step's id, state, the encoded answer once decided);
//! - `rev:closed:{terminal}:{batch}`: the batch was closed by settlement (`BatchClosed`);
//! - `reversal:trace:{terminal}:{batch}:{stan}`: the mark authorization checks before it starts
//!   a request (`pos_facts::txn::reversal_mark_key`);
//! - `lock:rev:*`: short locks serializing the commands on one original or reversal.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pos_store::{Lock, Result, Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::rules::Effects;

/// How long the state is kept: longer than the refund window and the records it refers to.
pub const STATE_TTL: Duration = Duration::from_secs(400 * 24 * 3600);
/// How long one command may hold a lock.
const LOCK_TTL: Duration = Duration::from_secs(30);
/// How long a command waits for a lock before it answers "try again".
const LOCK_WAIT: Duration = Duration::from_secs(8);
/// A pending step older than this was abandoned (its process died): a retry takes it over.
const STEP_LEASE: Duration = Duration::from_secs(30);

/// Replaces a step record only if it is still the one read (compare and set, TTL kept).
static TAKE_OVER: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0
",
    )
});

/// A reversal aggregate's position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReversalState {
    /// Sequence of its last event (0 = none yet).
    pub seq: u64,
    /// Whether `TransactionReversed` was recorded.
    pub reversed: bool,
}

/// Which kind of step a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// A void.
    Void,
    /// A refund.
    Refund,
}

impl StepKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Void => "void",
            Self::Refund => "refund",
        }
    }
}

/// The idempotency record of a void or refund.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct StepRecord {
    fingerprint: String,
    id: String,
    /// "pending", "retry" (a system failure: the next attempt runs again under the same id) or
    /// "done".
    state: String,
    started_ms: u64,
    /// Hex of the encoded answer once done.
    #[serde(default)]
    answer: String,
}

/// A void or refund as its idempotency record has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepFound {
    /// Being decided, or waiting for a retry after a system failure.
    Undecided,
    /// Decided: the encoded answer.
    Done(Vec<u8>),
}

/// What claiming a step found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepClaim {
    /// First attempt, or a retry of one that failed or was abandoned: run under this id.
    Run(String),
    /// Decided: the encoded answer.
    Done(Vec<u8>),
    /// The same request is being handled right now.
    InProgress,
    /// The trace was used by a request with other content.
    Conflict,
}

/// The service's Redis state.
#[derive(Debug, Clone)]
pub struct State {
    store: Store,
}

fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl State {
    /// State kept in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    fn orig_key(&self, transaction_id: &str) -> String {
        self.store.key(&["rev", "orig", transaction_id])
    }

    fn agg_key(&self, reversal_id: &str) -> String {
        self.store.key(&["rev", "agg", reversal_id])
    }

    fn step_key(&self, kind: StepKind, terminal_id: &str, batch_no: u32, stan: u32) -> String {
        let (batch, stan) = (batch_no.to_string(), stan.to_string());
        self.store
            .key(&["rev", "step", kind.as_str(), terminal_id, &batch, &stan])
    }

    fn closed_key(&self, terminal_id: &str, batch_no: u32) -> String {
        self.store
            .key(&["rev", "closed", terminal_id, &batch_no.to_string()])
    }

    /// What was done to original `transaction_id`.
    pub async fn effects(&self, transaction_id: &str) -> Result<Effects> {
        let fields = self
            .store
            .hash_get_all(&self.orig_key(transaction_id))
            .await?;
        let mut effects = Effects::default();
        for (field, value) in fields {
            match field.as_str() {
                "reversed_by" => effects.reversed_by = Some(value),
                "voided_by" => effects.voided_by = Some(value),
                refund if refund.starts_with("refund:") => {
                    effects.refunded_minor += value.parse::<i64>().unwrap_or_default();
                }
                _ => {}
            }
        }
        Ok(effects)
    }

    async fn set_orig(&self, transaction_id: &str, field: &str, value: &str) -> Result<()> {
        let key = self.orig_key(transaction_id);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HSET")
            .arg(&key)
            .arg(field)
            .arg(value)
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(STATE_TTL.as_secs())
            .ignore();
        let mut conn = self.store.connection();
        let () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// Original `transaction_id` was reversed by `reversal_id`.
    pub async fn mark_reversed(&self, transaction_id: &str, reversal_id: &str) -> Result<()> {
        self.set_orig(transaction_id, "reversed_by", reversal_id)
            .await
    }

    /// Original `transaction_id` was voided by `void_id`.
    pub async fn mark_voided(&self, transaction_id: &str, void_id: &str) -> Result<()> {
        self.set_orig(transaction_id, "voided_by", void_id).await
    }

    /// The void of original `transaction_id` was itself reversed: the original stands again.
    pub async fn unmark_voided(&self, transaction_id: &str) -> Result<()> {
        let mut conn = self.store.connection();
        let _: u8 = redis::cmd("HDEL")
            .arg(self.orig_key(transaction_id))
            .arg("voided_by")
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Original `transaction_id` was refunded `minor` by `refund_id`.
    pub async fn add_refund(
        &self,
        transaction_id: &str,
        refund_id: &str,
        minor: i64,
    ) -> Result<()> {
        self.set_orig(
            transaction_id,
            &format!("refund:{refund_id}"),
            &minor.to_string(),
        )
        .await
    }

    /// The reversal aggregate `reversal_id`.
    pub async fn reversal(&self, reversal_id: &str) -> Result<ReversalState> {
        let fields: HashMap<String, String> = self
            .store
            .hash_get_all(&self.agg_key(reversal_id))
            .await?
            .into_iter()
            .collect();
        Ok(ReversalState {
            seq: fields
                .get("seq")
                .and_then(|s| s.parse().ok())
                .unwrap_or_default(),
            reversed: fields.get("reversed").is_some_and(|v| v == "1"),
        })
    }

    /// Records the reversal aggregate's position; never moves it back (rebuild and live writes
    /// may meet).
    pub async fn set_reversal(&self, reversal_id: &str, state: ReversalState) -> Result<()> {
        let current = self.reversal(reversal_id).await?;
        let key = self.agg_key(reversal_id);
        let seq = current.seq.max(state.seq);
        let reversed = current.reversed || state.reversed;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HSET")
            .arg(&key)
            .arg("seq")
            .arg(seq)
            .arg("reversed")
            .arg(u8::from(reversed))
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(STATE_TTL.as_secs())
            .ignore();
        let mut conn = self.store.connection();
        let () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// Leaves the mark that makes authorization refuse the request of this trace.
    pub async fn mark_trace(
        &self,
        terminal_id: &str,
        batch_no: u32,
        stan: u32,
        reversal_id: &str,
    ) -> Result<()> {
        let key = pos_facts::txn::reversal_mark_key(&self.store, terminal_id, batch_no, stan);
        self.store
            .put(&key, reversal_id.as_bytes(), pos_facts::txn::RECORD_TTL)
            .await
    }

    /// Whether the trace carries a reversal mark.
    pub async fn is_marked(&self, terminal_id: &str, batch_no: u32, stan: u32) -> Result<bool> {
        let key = pos_facts::txn::reversal_mark_key(&self.store, terminal_id, batch_no, stan);
        Ok(self.store.get(&key).await?.is_some())
    }

    /// The transaction id authorization claimed for this trace, if it claimed it.
    pub async fn claimed_transaction(
        &self,
        terminal_id: &str,
        batch_no: u32,
        stan: u32,
    ) -> Result<Option<String>> {
        let key = pos_facts::txn::claim_key(&self.store, terminal_id, batch_no, stan);
        Ok(self
            .store
            .get(&key)
            .await?
            .and_then(|record| pos_facts::txn::claimed_transaction_id(&record)))
    }

    /// Settlement closed this batch.
    pub async fn close_batch(&self, terminal_id: &str, batch_no: u32) -> Result<()> {
        self.store
            .put(&self.closed_key(terminal_id, batch_no), b"1", STATE_TTL)
            .await
    }

    /// Whether settlement closed this batch.
    pub async fn batch_closed(&self, terminal_id: &str, batch_no: u32) -> Result<bool> {
        Ok(self
            .store
            .get(&self.closed_key(terminal_id, batch_no))
            .await?
            .is_some())
    }

    /// Takes lock `name`, waiting a little for its holder; `None` when it stays taken.
    pub async fn lock(&self, name: &str) -> Result<Option<Lock>> {
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        let name = format!("rev:{name}");
        loop {
            if let Some(lock) = self.store.try_lock(&name, LOCK_TTL).await? {
                return Ok(Some(lock));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Claims the idempotency key of a void or refund; `fresh` is the id a new step runs under.
    pub async fn claim_step(
        &self,
        kind: StepKind,
        trace: (&str, u32, u32),
        fingerprint: &str,
        fresh: &str,
        now: SystemTime,
    ) -> Result<StepClaim> {
        let key = self.step_key(kind, trace.0, trace.1, trace.2);
        let mine = StepRecord {
            fingerprint: fingerprint.to_owned(),
            id: fresh.to_owned(),
            state: "pending".to_owned(),
            started_ms: millis(now),
            answer: String::new(),
        };
        let Some(existing) = self
            .store
            .set_if_absent(&key, &encode(&mine), STATE_TTL)
            .await?
        else {
            return Ok(StepClaim::Run(fresh.to_owned()));
        };
        let found: StepRecord =
            serde_json::from_slice(&existing).map_err(|e| StoreError::Corrupt {
                key: key.clone(),
                detail: format!("step record: {e}"),
            })?;
        if found.fingerprint != fingerprint {
            return Ok(StepClaim::Conflict);
        }
        let abandoned = found.state == "pending"
            && millis(now).saturating_sub(found.started_ms)
                > u64::try_from(STEP_LEASE.as_millis()).unwrap_or(u64::MAX);
        match found.state.as_str() {
            "done" => Ok(StepClaim::Done(hex::decode(&found.answer).map_err(
                |_| StoreError::Corrupt {
                    key,
                    detail: "step record: answer is not hex".to_owned(),
                },
            )?)),
            "retry" => self.take_over(&key, &existing, found, now).await,
            _ if abandoned => self.take_over(&key, &existing, found, now).await,
            _ => Ok(StepClaim::InProgress),
        }
    }

    async fn take_over(
        &self,
        key: &str,
        existing: &[u8],
        found: StepRecord,
        now: SystemTime,
    ) -> Result<StepClaim> {
        let renewed = StepRecord {
            state: "pending".to_owned(),
            started_ms: millis(now),
            ..found
        };
        let mut conn = self.store.connection();
        let replaced: u8 = TAKE_OVER
            .key(key)
            .arg(existing)
            .arg(encode(&renewed))
            .invoke_async(&mut conn)
            .await?;
        Ok(if replaced == 1 {
            StepClaim::Run(renewed.id)
        } else {
            StepClaim::InProgress
        })
    }

    /// The void or refund of a terminal trace, if one was asked for.
    pub async fn step(&self, kind: StepKind, trace: (&str, u32, u32)) -> Result<Option<StepFound>> {
        let key = self.step_key(kind, trace.0, trace.1, trace.2);
        let Some(bytes) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let found: StepRecord =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                key: key.clone(),
                detail: format!("step record: {e}"),
            })?;
        if found.state != "done" {
            return Ok(Some(StepFound::Undecided));
        }
        let answer = hex::decode(&found.answer).map_err(|_| StoreError::Corrupt {
            key,
            detail: "step record: answer is not hex".to_owned(),
        })?;
        Ok(Some(StepFound::Done(answer)))
    }

    /// Keeps the answer of a decided step for every retry.
    pub async fn finish_step(
        &self,
        kind: StepKind,
        trace: (&str, u32, u32),
        fingerprint: &str,
        id: &str,
        answer: &[u8],
    ) -> Result<()> {
        let record = StepRecord {
            fingerprint: fingerprint.to_owned(),
            id: id.to_owned(),
            state: "done".to_owned(),
            started_ms: millis(SystemTime::now()),
            answer: hex::encode(answer),
        };
        let key = self.step_key(kind, trace.0, trace.1, trace.2);
        self.store.put(&key, &encode(&record), STATE_TTL).await
    }

    /// A system failure: the next attempt of the same request runs again under the same id
    /// (the issuer is idempotent on it).
    pub async fn retry_step(
        &self,
        kind: StepKind,
        trace: (&str, u32, u32),
        fingerprint: &str,
        id: &str,
    ) -> Result<()> {
        let record = StepRecord {
            fingerprint: fingerprint.to_owned(),
            id: id.to_owned(),
            state: "retry".to_owned(),
            started_ms: millis(SystemTime::now()),
            answer: String::new(),
        };
        let key = self.step_key(kind, trace.0, trace.1, trace.2);
        self.store.put(&key, &encode(&record), STATE_TTL).await
    }

    /// Whether the rebuild marker is set.
    pub async fn rebuilt(&self) -> Result<bool> {
        Ok(self
            .store
            .get(&self.store.key(&["rev", "rebuilt"]))
            .await?
            .is_some())
    }

    /// Sets the rebuild marker.
    pub async fn set_rebuilt(&self) -> Result<()> {
        let key = self.store.key(&["rev", "rebuilt"]);
        self.store.put(&key, b"1", STATE_TTL).await
    }
}

fn encode(record: &StepRecord) -> Vec<u8> {
    serde_json::to_vec(record).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_records_round_trip_as_json() {
        let record = StepRecord {
            fingerprint: "f".to_owned(),
            id: "0190a0b0-0000-7000-8000-000000000001".to_owned(),
            state: "done".to_owned(),
            started_ms: 1_700_000_000_123,
            answer: hex::encode([1, 2, 3]),
        };
        let back: StepRecord = serde_json::from_slice(&encode(&record)).unwrap();
        assert_eq!(back, record);
    }
}
