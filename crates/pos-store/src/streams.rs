//! Per-aggregate event lists: a writer's own copy of each aggregate's events, in order, so it
//! can fold the current state in one round trip. The list's length is the aggregate's version:
//! an event is appended only when it is exactly the next one, so a redelivered or replayed
//! event is skipped and a missing one is noticed. Rebuilt from the topic like any projection.

use std::sync::LazyLock;

use redis::Script;

use crate::{Result, Store};

/// KEYS[1] = list, ARGV[1] = sequence (1-based), ARGV[2] = encoded event.
/// Returns 1 appended, 0 already there, -N a gap (N = the list's length).
static APPEND_NEXT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local len = redis.call('LLEN', KEYS[1])
local seq = tonumber(ARGV[1])
if seq == len + 1 then
  redis.call('RPUSH', KEYS[1], ARGV[2])
  return 1
elseif seq <= len then
  return 0
end
return -len
",
    )
});

/// What [`Store::append_next`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The event was the next one and is now in the list.
    Appended,
    /// The list already holds this sequence (a redelivery).
    AlreadyThere,
    /// Events are missing before this one; the list holds `len` events.
    Gap {
        /// Events in the list.
        len: u64,
    },
}

impl Store {
    /// Appends `event` as number `sequence` of the list `key` if it is the next one.
    pub async fn append_next(&self, key: &str, sequence: u64, event: &[u8]) -> Result<Appended> {
        let mut conn = self.conn.clone();
        let outcome: i64 = APPEND_NEXT
            .key(key)
            .arg(sequence)
            .arg(event)
            .invoke_async(&mut conn)
            .await?;
        Ok(match outcome {
            1 => Appended::Appended,
            0 => Appended::AlreadyThere,
            n => Appended::Gap {
                len: n.unsigned_abs(),
            },
        })
    }

    /// Every event of the list `key`, in order.
    pub async fn event_list(&self, key: &str) -> Result<Vec<Vec<u8>>> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("LRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?)
    }
}
