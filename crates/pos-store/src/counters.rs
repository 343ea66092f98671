//! Counters over time windows: fixed windows (attempt limits: "5 wrong codes per 15 minutes")
//! and sliding windows with a count and an amount sum (velocity: "5 purchases or 5,000.00 per
//! card per 10 minutes").

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use crate::{Result, Store, millis};

/// Count and amount sum of the entries inside a sliding window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowTotals {
    /// Entries in the window.
    pub count: u64,
    /// Sum of their amounts (minor units).
    pub sum: i64,
}

/// Drops entries older than the window, adds the new one (unless the member is empty), keeps
/// the key alive for one window and returns the count and the sum of amounts. Members are
/// `id|amount`: re-adding the same id (a redelivered event) does not count twice.
static SLIDING_WINDOW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[1], now, ARGV[3] .. '|' .. ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
end
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local sum = 0
for _, m in ipairs(members) do
  local amount = string.match(m, '|(-?%d+)$')
  sum = sum + tonumber(amount)
end
return {#members, sum}
",
    )
});

impl Store {
    /// Increments the counter under `key` and returns its new value. The first increment
    /// starts a window of `window`; when it ends the counter disappears and counting restarts.
    pub async fn incr_fixed_window(&self, key: &str, window: Duration) -> Result<u64> {
        let mut conn = self.conn.clone();
        let (count,): (u64,) = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg(key)
            .cmd("PEXPIRE")
            .arg(key)
            .arg(millis(window))
            .arg("NX")
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(count)
    }

    /// The current value of a fixed-window counter (0 when absent or expired).
    pub async fn fixed_window_count(&self, key: &str) -> Result<u64> {
        let mut conn = self.conn.clone();
        let count: Option<u64> = redis::cmd("GET").arg(key).query_async(&mut conn).await?;
        Ok(count.unwrap_or(0))
    }

    /// Adds an entry `id` with `amount` at `now_ms` to the sliding window under `key` and
    /// returns the totals of the last `window` (the new entry included). The caller passes the
    /// time so that every instance of a service agrees on it and tests can control it.
    pub async fn sliding_window_add(
        &self,
        key: &str,
        window: Duration,
        now_ms: u64,
        id: &str,
        amount: i64,
    ) -> Result<WindowTotals> {
        debug_assert!(
            !id.is_empty() && !id.contains('|'),
            "window ids are non-empty, no '|'"
        );
        self.sliding_window(key, window, now_ms, id, amount).await
    }

    /// The totals of the last `window` at `now_ms`, without adding anything.
    pub async fn sliding_window_totals(
        &self,
        key: &str,
        window: Duration,
        now_ms: u64,
    ) -> Result<WindowTotals> {
        self.sliding_window(key, window, now_ms, "", 0).await
    }

    async fn sliding_window(
        &self,
        key: &str,
        window: Duration,
        now_ms: u64,
        id: &str,
        amount: i64,
    ) -> Result<WindowTotals> {
        let mut conn = self.conn.clone();
        let (count, sum): (u64, i64) = SLIDING_WINDOW
            .key(key)
            .arg(now_ms)
            .arg(millis(window))
            .arg(id)
            .arg(amount)
            .invoke_async(&mut conn)
            .await?;
        Ok(WindowTotals { count, sum })
    }
}
