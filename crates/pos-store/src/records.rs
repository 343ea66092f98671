//! Single-value records with a time to live: idempotency records and similar.

use std::time::Duration;

use crate::{Result, Store, millis};

impl Store {
    /// Stores `value` under `key` for `ttl` unless the key exists. Returns `None` when this
    /// call stored it, or `Some(existing)` with the value the first writer stored (which is
    /// then left untouched). One atomic `SET NX PX GET`.
    pub async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<Option<Vec<u8>>> {
        let mut conn = self.conn.clone();
        let existing: Option<Vec<u8>> = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .arg("GET")
            .query_async(&mut conn)
            .await?;
        Ok(existing)
    }

    /// Stores `value` under `key` for `ttl`, replacing what was there.
    pub async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()> {
        let mut conn = self.conn.clone();
        let () = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// The value under `key`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("GET").arg(key).query_async(&mut conn).await?)
    }

    /// Removes `key`; `true` when it existed.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let mut conn = self.conn.clone();
        let n: u64 = redis::cmd("DEL").arg(key).query_async(&mut conn).await?;
        Ok(n > 0)
    }

    /// Sets several fields of the hash under `key`.
    pub async fn hash_set(&self, key: &str, fields: &[(&str, &str)]) -> Result<()> {
        if fields.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("HSET");
        cmd.arg(key);
        for (field, value) in fields {
            cmd.arg(*field).arg(*value);
        }
        let _: u64 = cmd.query_async(&mut conn).await?;
        Ok(())
    }

    /// Every field of the hash under `key` (empty when the key does not exist).
    pub async fn hash_get_all(&self, key: &str) -> Result<Vec<(String, String)>> {
        let mut conn = self.conn.clone();
        let mut fields: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut conn)
            .await?;
        fields.sort();
        Ok(fields)
    }

    /// One field of the hash under `key`.
    pub async fn hash_get(&self, key: &str, field: &str) -> Result<Option<String>> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("HGET")
            .arg(key)
            .arg(field)
            .query_async(&mut conn)
            .await?)
    }
}
