//! Short locks that serialize commands on one aggregate across service instances, so two
//! instances never number events of one aggregate twice (DESIGN.md §3). A lock expires on its
//! own if its holder dies; only the holder (by its random token) can release it.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use crate::{Result, Store, millis};

static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// A held lock. Release it with [`Lock::release`]; if forgotten it expires after its TTL.
#[derive(Debug)]
#[must_use = "a lock is released explicitly with release()"]
pub struct Lock {
    store: Store,
    key: String,
    token: String,
}

impl Store {
    /// Takes the lock `name` for at most `ttl`; `None` when someone else holds it.
    pub async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<Lock>> {
        let key = self.key(&["lock", name]);
        let token = uuid::Uuid::new_v4().to_string();
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut conn)
            .await?;
        Ok(set.map(|_| Lock {
            store: self.clone(),
            key,
            token,
        }))
    }
}

impl Lock {
    /// Releases the lock; `false` when it had already expired (and may be someone else's now).
    pub async fn release(self) -> Result<bool> {
        let mut conn = self.store.connection();
        let released: u8 = RELEASE
            .key(&self.key)
            .arg(&self.token)
            .invoke_async(&mut conn)
            .await?;
        Ok(released == 1)
    }
}
