//! The blacklist and the alerts as Redis keeps them: a projection of `pos.fraud.v1` (written
//! when this service's own event is acknowledged, and rebuilt from the topic when Redis lost
//! it). Applying an event twice changes nothing.
//!
//! Keys (`fraud:` under the deployment prefix): `bl:entry:{id}` (the entry, protobuf),
//! `bl:removed:{id}` (a removed entry, so that removing it again succeeds), `bl:index` (sorted
//! set of active entry ids by time added), `bl:{card|merchant|terminal}:{target}` (`id|expires
//! ms`, what an assessment reads), `bl:bins` (hash id → `start|end|expires ms`);
//! `alert:{id}` (FraudAlertView, protobuf, kept for [`ALERT_RETENTION`]), `alerts:all` and
//! `alerts:m:{merchant}` (sorted sets of alert ids by time raised).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pos_proto::v1 as pb;
use pos_store::{Store, StoreError};
use prost::Message;
use redis::AsyncCommands;

/// How long alerts stay listable.
pub const ALERT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Page size when the caller does not say, and the largest one served.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

/// Unix milliseconds of a timestamp (0 before the epoch or when unset).
pub fn millis_of(ts: Option<&prost_types::Timestamp>) -> u64 {
    ts.map_or(0, |t| {
        u64::try_from(t.seconds).unwrap_or(0) * 1000
            + u64::try_from(t.nanos / 1_000_000).unwrap_or(0)
    })
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Where an entry's target lives: its own key, or the BIN hash.
enum Target {
    Key(String),
    Bin(String, String),
}

/// The fraud projection in Redis.
#[derive(Debug, Clone)]
pub struct Lists {
    store: Store,
}

impl Lists {
    /// Over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The full key of `fraud:{parts…}` under the deployment prefix.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut all = vec!["fraud"];
        all.extend_from_slice(parts);
        self.store.key(&all)
    }

    fn target(&self, entry: &pb::BlacklistEntry) -> Option<Target> {
        use pb::blacklist_entry::Target as T;
        Some(match entry.target.as_ref()? {
            T::CardToken(token) => Target::Key(self.key(&["bl", "card", token])),
            T::MerchantId(id) => Target::Key(self.key(&["bl", "merchant", id])),
            T::TerminalId(id) => Target::Key(self.key(&["bl", "terminal", id])),
            T::BinRange(range) => Target::Bin(range.start.clone(), range.end.clone()),
        })
    }

    /// The active entry on the same target as `entry`, if any.
    pub async fn active_for(
        &self,
        entry: &pb::BlacklistEntry,
    ) -> Result<Option<pb::BlacklistEntry>, StoreError> {
        let mut conn = self.store.connection();
        let now = now_ms();
        let id = match self.target(entry) {
            None => return Ok(None),
            Some(Target::Key(key)) => {
                let value: Option<String> = conn.get(&key).await?;
                value.and_then(|v| {
                    let (id, expires) = v.split_once('|')?;
                    let expires: u64 = expires.parse().ok()?;
                    (expires == 0 || expires > now).then(|| id.to_owned())
                })
            }
            Some(Target::Bin(start, end)) => {
                let bins: Vec<(String, String)> = conn.hgetall(self.key(&["bl", "bins"])).await?;
                bins.into_iter().find_map(|(id, v)| {
                    let mut parts = v.split('|');
                    let (s, e, x) = (parts.next()?, parts.next()?, parts.next()?);
                    let x: u64 = x.parse().ok()?;
                    (s == start && e == end && (x == 0 || x > now)).then_some(id)
                })
            }
        };
        match id {
            Some(id) => self.entry(&id).await,
            None => Ok(None),
        }
    }

    /// An active entry by id.
    pub async fn entry(&self, id: &str) -> Result<Option<pb::BlacklistEntry>, StoreError> {
        let mut conn = self.store.connection();
        let bytes: Option<Vec<u8>> = conn.get(self.key(&["bl", "entry", id])).await?;
        Ok(bytes.and_then(|b| pb::BlacklistEntry::decode(b.as_slice()).ok()))
    }

    /// A removed entry by id.
    pub async fn removed(&self, id: &str) -> Result<Option<pb::BlacklistEntry>, StoreError> {
        let mut conn = self.store.connection();
        let bytes: Option<Vec<u8>> = conn.get(self.key(&["bl", "removed", id])).await?;
        Ok(bytes.and_then(|b| pb::BlacklistEntry::decode(b.as_slice()).ok()))
    }

    /// Applies BlacklistEntryAdded.
    pub async fn put_entry(&self, entry: &pb::BlacklistEntry) -> Result<(), StoreError> {
        if self.removed(&entry.entry_id).await?.is_some() {
            return Ok(());
        }
        let expires = millis_of(entry.expires_at.as_ref());
        let mut pipe = redis::pipe();
        pipe.atomic()
            .set(
                self.key(&["bl", "entry", &entry.entry_id]),
                entry.encode_to_vec(),
            )
            .ignore()
            .zadd(
                self.key(&["bl", "index"]),
                &entry.entry_id,
                millis_of(entry.added_at.as_ref()),
            )
            .ignore();
        match self.target(entry) {
            Some(Target::Key(key)) => {
                pipe.set(key, format!("{}|{expires}", entry.entry_id))
                    .ignore();
            }
            Some(Target::Bin(start, end)) => {
                pipe.hset(
                    self.key(&["bl", "bins"]),
                    &entry.entry_id,
                    format!("{start}|{end}|{expires}"),
                )
                .ignore();
            }
            None => {}
        }
        let mut conn = self.store.connection();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Applies BlacklistEntryRemoved; returns the entry when it was active.
    pub async fn remove_entry(&self, id: &str) -> Result<Option<pb::BlacklistEntry>, StoreError> {
        let Some(entry) = self.entry(id).await? else {
            return Ok(None);
        };
        let mut pipe = redis::pipe();
        pipe.atomic()
            .set(self.key(&["bl", "removed", id]), entry.encode_to_vec())
            .ignore()
            .del(self.key(&["bl", "entry", id]))
            .ignore()
            .zrem(self.key(&["bl", "index"]), id)
            .ignore()
            .hdel(self.key(&["bl", "bins"]), id)
            .ignore();
        let mut conn = self.store.connection();
        if let Some(Target::Key(key)) = self.target(&entry) {
            // Only this entry's mark: a later entry on the same target stays.
            let value: Option<String> = conn.get(&key).await?;
            if value.is_some_and(|v| v.split('|').next() == Some(id)) {
                pipe.del(key).ignore();
            }
        }
        pipe.query_async::<()>(&mut conn).await?;
        Ok(Some(entry))
    }

    /// Active entries, newest first, of `kind` (UNSPECIFIED = all), from `offset`; the next
    /// offset when more remain.
    pub async fn entries(
        &self,
        kind: pb::BlacklistKind,
        offset: usize,
        page_size: usize,
    ) -> Result<(Vec<pb::BlacklistEntry>, Option<usize>), StoreError> {
        let mut conn = self.store.connection();
        let ids: Vec<String> = conn.zrevrange(self.key(&["bl", "index"]), 0, -1).await?;
        let now = now_ms();
        let mut out = Vec::new();
        let size = page(page_size);
        for (position, id) in (offset..).zip(ids.iter().skip(offset)) {
            if out.len() == size {
                return Ok((out, Some(position)));
            }
            let Some(entry) = self.entry(id).await? else {
                continue;
            };
            let expires = millis_of(entry.expires_at.as_ref());
            let wanted = kind == pb::BlacklistKind::Unspecified || entry.kind == kind as i32;
            if wanted && (expires == 0 || expires > now) {
                out.push(entry);
            }
        }
        Ok((out, None))
    }

    /// Applies FraudAlertRaised.
    pub async fn put_alert(&self, view: &pb::FraudAlertView) -> Result<(), StoreError> {
        let Some(alert) = &view.alert else {
            return Ok(());
        };
        let raised = millis_of(view.raised_at.as_ref());
        let oldest = now_ms().saturating_sub(ALERT_RETENTION.as_millis() as u64);
        let all = self.key(&["alerts", "all"]);
        let merchant = self.key(&["alerts", "m", &alert.merchant_id]);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .set_ex(
                self.key(&["alert", &alert.alert_id]),
                view.encode_to_vec(),
                ALERT_RETENTION.as_secs(),
            )
            .ignore();
        for key in [&all, &merchant] {
            pipe.zadd(key, &alert.alert_id, raised)
                .ignore()
                .zrembyscore(key, "-inf", oldest)
                .ignore()
                .expire(key, ALERT_RETENTION.as_secs() as i64)
                .ignore();
        }
        let mut conn = self.store.connection();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Alerts raised since `since_ms`, newest first, of `merchant_id` (empty = all) and
    /// `decision` (UNSPECIFIED = all), from `offset`; the next offset when more remain.
    pub async fn alerts(
        &self,
        merchant_id: &str,
        since_ms: u64,
        decision: pb::FraudDecision,
        offset: usize,
        page_size: usize,
    ) -> Result<(Vec<pb::FraudAlertView>, Option<usize>), StoreError> {
        let key = if merchant_id.is_empty() {
            self.key(&["alerts", "all"])
        } else {
            self.key(&["alerts", "m", merchant_id])
        };
        let mut conn = self.store.connection();
        let ids: Vec<String> = conn.zrevrangebyscore(&key, "+inf", since_ms).await?;
        let size = page(page_size);
        let mut out = Vec::new();
        for (position, id) in (offset..).zip(ids.iter().skip(offset)) {
            if out.len() == size {
                return Ok((out, Some(position)));
            }
            let bytes: Option<Vec<u8>> = conn.get(self.key(&["alert", id])).await?;
            let Some(view) = bytes.and_then(|b| pb::FraudAlertView::decode(b.as_slice()).ok())
            else {
                continue;
            };
            let matches = decision == pb::FraudDecision::Unspecified
                || view
                    .alert
                    .as_ref()
                    .is_some_and(|a| a.decision == decision as i32);
            if matches {
                out.push(view);
            }
        }
        Ok((out, None))
    }
}

fn page(requested: usize) -> usize {
    match requested {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}
