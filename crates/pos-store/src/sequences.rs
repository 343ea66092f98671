//! The last applied sequence of every aggregate, per projection, so redelivered and replayed
//! events are skipped (DESIGN.md §3). Positions only move forward.

use std::sync::LazyLock;

use pos_events::{AggregateRef, AppliedSequences};
use redis::Script;

use crate::{Result, Store, StoreError};

/// Sets the position to ARGV[1] unless it is already there or further.
static MARK_APPLIED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local incoming = tonumber(ARGV[1])
if incoming > current then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
",
    )
});

/// Applies a projection update to a hash and records its sequence in one step: nothing is
/// written when the sequence was already applied. KEYS[1] = position, KEYS[2] = hash;
/// ARGV[1] = sequence, then field/value pairs. Returns 1 when applied, 0 when skipped.
static HASH_SET_IF_NEWER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local incoming = tonumber(ARGV[1])
if incoming <= current then
  return 0
end
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
",
    )
});

/// Applied positions of one projection (e.g. "gateway-terminals"), keyed by aggregate.
#[derive(Debug, Clone)]
pub struct SequenceLog {
    store: Store,
    projection: String,
}

impl SequenceLog {
    /// The positions of `projection` in `store`.
    pub fn new(store: Store, projection: impl Into<String>) -> Self {
        Self {
            store,
            projection: projection.into(),
        }
    }

    /// The Redis key holding the position of `aggregate`.
    pub fn position_key(&self, aggregate: &AggregateRef) -> String {
        self.store
            .key(&["seq", &self.projection, &aggregate.kind, &aggregate.id])
    }

    /// Writes `fields` into the hash `hash_key` and records `sequence` for `aggregate`,
    /// atomically; returns `false` (and writes nothing) when `sequence` was already applied.
    pub async fn hash_set_if_newer(
        &self,
        aggregate: &AggregateRef,
        sequence: u64,
        hash_key: &str,
        fields: &[(&str, &str)],
    ) -> Result<bool> {
        self.store
            .hash_set_if_newer(&self.position_key(aggregate), hash_key, sequence, fields)
            .await
    }
}

impl Store {
    /// Moves the counter under `key` forward to `value`; `false` (and no change) when it is
    /// already at `value` or beyond. Used for positions and message sequence numbers.
    pub async fn advance(&self, key: &str, value: u64) -> Result<bool> {
        let mut conn = self.conn.clone();
        let moved: u8 = MARK_APPLIED
            .key(key)
            .arg(value)
            .invoke_async(&mut conn)
            .await?;
        Ok(moved == 1)
    }

    /// See [`SequenceLog::hash_set_if_newer`]; `position_key` is the sequence's key.
    pub async fn hash_set_if_newer(
        &self,
        position_key: &str,
        hash_key: &str,
        sequence: u64,
        fields: &[(&str, &str)],
    ) -> Result<bool> {
        let mut conn = self.conn.clone();
        let mut invocation = HASH_SET_IF_NEWER.key(position_key);
        invocation.key(hash_key).arg(sequence);
        for (field, value) in fields {
            invocation.arg(*field).arg(*value);
        }
        let applied: u8 = invocation.invoke_async(&mut conn).await?;
        Ok(applied == 1)
    }
}

impl AppliedSequences for SequenceLog {
    type Error = StoreError;

    async fn last_applied(&self, aggregate: &AggregateRef) -> Result<u64> {
        let key = self.position_key(aggregate);
        match self.store.get(&key).await? {
            None => Ok(0),
            Some(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(StoreError::Corrupt {
                    key,
                    detail: "sequence is not a number".to_owned(),
                }),
        }
    }

    async fn mark_applied(&self, aggregate: &AggregateRef, sequence: u64) -> Result<()> {
        self.store
            .advance(&self.position_key(aggregate), sequence)
            .await?;
        Ok(())
    }
}
