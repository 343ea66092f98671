//! Merchant settlement's Redis state (under the deployment prefix), all of it rebuilt from the
//! topics (`pos.transactions.v1` and `pos.settlement.v1` by the batch projection's rebuild,
//! `pos.merchants.v1` at every start):
//!
//! - `stl:md:step:{key}`: JSON [`Step`] of every money step (looked up as an original);
//! - `stl:md:day:{merchant}:{date}`: set of the step keys that are lines of that day;
//! - `stl:md:active:{date}`: set of the merchants with lines on that date;
//! - `stl:md:late`: hash step key → "" of the steps that arrived after their date was settled;
//!   `stl:md:pending`: set of those not yet recorded as an adjustment event;
//! - `stl:md:adj:{merchant}`: hash adjustment id → hex `SettlementAdjustment` (recorded);
//!   `stl:md:carried:{merchant}`: hash adjustment id → business date of the settlement that
//!   carried it; `stl:md:adjusted`: set of merchants with adjustments;
//! - `stl:md:settlement:{merchant}:{date}`: hex `MerchantSettlement` of a settled day;
//!   `stl:md:seq:{merchant}:{date}`: last event sequence of that `merchant_settlement`
//!   aggregate; `stl:md:settled`: sorted set of `{date}|{merchant}` scored by day number;
//! - `stl:md:merchant:{merchant}`: JSON [`Terms`] (fee schedules by date, masked account);
//! - `lock:stl:md:{merchant}`: serializes the follower, the adjustment recorder and the runs
//!   on one merchant.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use pos_proto::v1 as pb;
use pos_store::{Lock, Result, Store, StoreError};
use prost::Message;
use serde::{Deserialize, Serialize};

use super::steps::Step;
use crate::day::day_number;

const LOCK_TTL: Duration = Duration::from_secs(30);
const LOCK_WAIT: Duration = Duration::from_secs(8);

/// A merchant's terms as the settlement needs them, from `pos.merchants.v1`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    /// Last applied event sequence of the merchant aggregate.
    pub seq: u64,
    /// Masked settlement account ("bank account_masked").
    pub account_masked: String,
    /// Fee schedules (hex proto) by first business date ("" = from the start), oldest first.
    pub schedules: Vec<(String, String)>,
}

impl Terms {
    /// The schedule in force on `date`.
    pub fn schedule_on(&self, date: &str) -> Option<pb::FeeSchedule> {
        self.schedules
            .iter()
            .rev()
            .find(|(from, _)| from.as_str() <= date)
            .and_then(|(_, hex)| decode::<pb::FeeSchedule>(hex))
    }

    /// Adds a schedule from `from` on (replacing any from that date or later).
    pub fn set_schedule(&mut self, from: &str, schedule: &pb::FeeSchedule) {
        self.schedules.retain(|(f, _)| f.as_str() < from);
        self.schedules
            .push((from.to_owned(), hex::encode(schedule.encode_to_vec())));
    }
}

fn decode<T: Message + Default>(text: &str) -> Option<T> {
    T::decode(hex::decode(text).ok()?.as_slice()).ok()
}

/// The Redis state of merchant settlement.
#[derive(Debug, Clone)]
pub struct Days {
    store: Store,
}

impl Days {
    /// State in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut all = vec!["stl", "md"];
        all.extend_from_slice(parts);
        self.store.key(&all)
    }

    fn corrupt(key: &str, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            key: key.to_owned(),
            detail: detail.into(),
        }
    }

    /// Takes the merchant's lock, waiting a little for its holder.
    pub async fn lock(&self, merchant_id: &str) -> Result<Option<Lock>> {
        let name = format!("stl:md:{merchant_id}");
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
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

    /// The step under `key`.
    pub async fn step(&self, key: &str) -> Result<Option<Step>> {
        Ok(self.steps(&[key.to_owned()]).await?.pop())
    }

    /// The steps under `keys` that exist.
    pub async fn steps(&self, keys: &[String]) -> Result<Vec<Step>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let full: Vec<String> = keys.iter().map(|k| self.key(&["step", k])).collect();
        let mut conn = self.store.connection();
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(&full).query_async(&mut conn).await?;
        let mut steps = Vec::new();
        for (key, value) in full.iter().zip(values) {
            if let Some(json) = value {
                steps.push(
                    serde_json::from_str(&json).map_err(|e| Self::corrupt(key, e.to_string()))?,
                );
            }
        }
        Ok(steps)
    }

    fn step_json(step: &Step) -> String {
        serde_json::to_string(step).unwrap_or_default()
    }

    /// Keeps a step as a line of its merchant's day.
    pub async fn put_line(&self, step: &Step) -> Result<()> {
        let mut conn = self.store.connection();
        let () = redis::pipe()
            .atomic()
            .cmd("SADD")
            .arg(self.key(&["day", &step.merchant_id, &step.business_date]))
            .arg(&step.key)
            .ignore()
            .cmd("SADD")
            .arg(self.key(&["active", &step.business_date]))
            .arg(&step.merchant_id)
            .ignore()
            .cmd("SET")
            .arg(self.key(&["step", &step.key]))
            .arg(Self::step_json(step))
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Keeps a step that arrived after its date was settled, to be recorded as an adjustment
    /// (`pending`), or only the step when its adjustment is recorded already.
    pub async fn put_late(&self, step: &Step, pending: bool) -> Result<()> {
        let mut conn = self.store.connection();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HSET")
            .arg(self.key(&["late"]))
            .arg(&step.key)
            .arg("")
            .ignore();
        if pending {
            pipe.cmd("SADD")
                .arg(self.key(&["pending"]))
                .arg(&step.key)
                .ignore();
        }
        let () = pipe
            .cmd("SET")
            .arg(self.key(&["step", &step.key]))
            .arg(Self::step_json(step))
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Whether `key` is known as a late step.
    pub async fn is_late(&self, key: &str) -> Result<bool> {
        let mut conn = self.store.connection();
        Ok(redis::cmd("HEXISTS")
            .arg(self.key(&["late"]))
            .arg(key)
            .query_async(&mut conn)
            .await?)
    }

    /// Late steps not yet recorded as adjustments.
    pub async fn pending(&self) -> Result<Vec<String>> {
        let mut conn = self.store.connection();
        let mut keys: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.key(&["pending"]))
            .query_async(&mut conn)
            .await?;
        keys.sort();
        Ok(keys)
    }

    /// The step keys of a merchant's day.
    pub async fn day(&self, merchant_id: &str, date: &str) -> Result<Vec<String>> {
        self.members(&self.key(&["day", merchant_id, date])).await
    }

    /// Merchants with lines on `date`.
    pub async fn active(&self, date: &str) -> Result<Vec<String>> {
        self.members(&self.key(&["active", date])).await
    }

    /// Merchants with adjustments (carried or not).
    pub async fn adjusted(&self) -> Result<Vec<String>> {
        self.members(&self.key(&["adjusted"])).await
    }

    async fn members(&self, key: &str) -> Result<Vec<String>> {
        let mut conn = self.store.connection();
        let mut members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(key)
            .query_async(&mut conn)
            .await?;
        members.sort();
        Ok(members)
    }

    /// The settlement of a merchant's day, when settled.
    pub async fn settlement(
        &self,
        merchant_id: &str,
        date: &str,
    ) -> Result<Option<pb::MerchantSettlement>> {
        let key = self.key(&["settlement", merchant_id, date]);
        let Some(bytes) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes);
        decode(&text)
            .map(Some)
            .ok_or_else(|| Self::corrupt(&key, "not a hex MerchantSettlement"))
    }

    /// The last event sequence of the `merchant_settlement` aggregate of a merchant's day.
    pub async fn seq(&self, merchant_id: &str, date: &str) -> Result<u64> {
        let key = self.key(&["seq", merchant_id, date]);
        Ok(self
            .store
            .get(&key)
            .await?
            .and_then(|b| String::from_utf8_lossy(&b).parse().ok())
            .unwrap_or(0))
    }

    /// Keeps a settled day (its `MerchantSettled` event was written, live or in a rebuild):
    /// the settlement, its sequence, the settled index, and the adjustments it carried. The
    /// first settlement of a day stays (a repeated event changes nothing).
    pub async fn record_settled(
        &self,
        settlement: &pb::MerchantSettlement,
        seq: u64,
    ) -> Result<()> {
        let (merchant, date) = (&settlement.merchant_id, &settlement.business_date);
        let score = day_number(date).unwrap_or(0);
        let mut conn = self.store.connection();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(self.key(&["settlement", merchant, date]))
            .arg(hex::encode(settlement.encode_to_vec()))
            .arg("NX")
            .ignore()
            .cmd("ZADD")
            .arg(self.key(&["settled"]))
            .arg(score)
            .arg(format!("{date}|{merchant}"))
            .ignore();
        for adjustment in &settlement.adjustments {
            pipe.cmd("HSET")
                .arg(self.key(&["carried", merchant]))
                .arg(&adjustment.adjustment_id)
                .arg(date)
                .ignore();
        }
        let () = pipe.query_async(&mut conn).await?;
        self.store
            .advance(&self.key(&["seq", merchant, date]), seq)
            .await?;
        Ok(())
    }

    /// Keeps a recorded adjustment (its `SettlementAdjustmentRecorded` event was written): the
    /// adjustment, its step marked late and no longer pending, the aggregate's sequence.
    pub async fn record_adjustment(
        &self,
        adjustment: &pb::SettlementAdjustment,
        seq: u64,
    ) -> Result<()> {
        let merchant = &adjustment.merchant_id;
        let mut conn = self.store.connection();
        let () = redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(self.key(&["adj", merchant]))
            .arg(&adjustment.adjustment_id)
            .arg(hex::encode(adjustment.encode_to_vec()))
            .ignore()
            .cmd("HSET")
            .arg(self.key(&["late"]))
            .arg(&adjustment.adjustment_id)
            .arg("")
            .ignore()
            .cmd("SREM")
            .arg(self.key(&["pending"]))
            .arg(&adjustment.adjustment_id)
            .ignore()
            .cmd("SADD")
            .arg(self.key(&["adjusted"]))
            .arg(merchant)
            .ignore()
            .query_async(&mut conn)
            .await?;
        self.store
            .advance(
                &self.key(&["seq", merchant, &adjustment.original_business_date]),
                seq,
            )
            .await?;
        Ok(())
    }

    /// Whether an adjustment is recorded.
    pub async fn has_adjustment(&self, merchant_id: &str, adjustment_id: &str) -> Result<bool> {
        let mut conn = self.store.connection();
        Ok(redis::cmd("HEXISTS")
            .arg(self.key(&["adj", merchant_id]))
            .arg(adjustment_id)
            .query_async(&mut conn)
            .await?)
    }

    /// A merchant's recorded adjustments that no settlement has carried yet, oldest first.
    pub async fn open_adjustments(
        &self,
        merchant_id: &str,
    ) -> Result<Vec<pb::SettlementAdjustment>> {
        let key = self.key(&["adj", merchant_id]);
        let recorded = self.store.hash_get_all(&key).await?;
        let carried: HashSet<String> = self
            .store
            .hash_get_all(&self.key(&["carried", merchant_id]))
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut open = Vec::new();
        for (id, hex) in recorded {
            if carried.contains(&id) {
                continue;
            }
            let adjustment: pb::SettlementAdjustment =
                decode(&hex).ok_or_else(|| Self::corrupt(&key, format!("adjustment {id}")))?;
            open.push(adjustment);
        }
        open.sort_by(|a, b| {
            (&a.original_business_date, &a.adjustment_id)
                .cmp(&(&b.original_business_date, &b.adjustment_id))
        });
        Ok(open)
    }

    /// Settled days (date, merchant) with dates in `from..=to` (day numbers).
    pub async fn settled_between(&self, from: i64, to: i64) -> Result<Vec<(String, String)>> {
        let mut conn = self.store.connection();
        let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.key(&["settled"]))
            .arg(from)
            .arg(to)
            .query_async(&mut conn)
            .await?;
        Ok(members
            .into_iter()
            .filter_map(|m| {
                let (date, merchant) = m.split_once('|')?;
                Some((date.to_owned(), merchant.to_owned()))
            })
            .collect())
    }

    /// A merchant's terms, when its onboarding was seen.
    pub async fn terms(&self, merchant_id: &str) -> Result<Option<Terms>> {
        let key = self.key(&["merchant", merchant_id]);
        let Some(bytes) = self.store.get(&key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Self::corrupt(&key, e.to_string()))
    }

    /// Replaces a merchant's terms.
    pub async fn put_terms(&self, merchant_id: &str, terms: &Terms) -> Result<()> {
        let mut conn = self.store.connection();
        let () = redis::cmd("SET")
            .arg(self.key(&["merchant", merchant_id]))
            .arg(serde_json::to_string(terms).unwrap_or_default())
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// The fee schedules of a merchant by business date, for the dates asked: from its terms,
    /// or else from the settlement of that date (a day settled keeps the schedule applied).
    pub async fn schedules(
        &self,
        merchant_id: &str,
        dates: impl IntoIterator<Item = String>,
    ) -> Result<BTreeMap<String, pb::FeeSchedule>> {
        let terms = self.terms(merchant_id).await?;
        let mut schedules = BTreeMap::new();
        for date in dates {
            if schedules.contains_key(&date) {
                continue;
            }
            let found = match terms.as_ref().and_then(|t| t.schedule_on(&date)) {
                Some(schedule) => Some(schedule),
                None => self
                    .settlement(merchant_id, &date)
                    .await?
                    .and_then(|s| s.fee_schedule),
            };
            if let Some(schedule) = found {
                schedules.insert(date, schedule);
            }
        }
        Ok(schedules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_in_force_is_the_latest_that_started_on_or_before_the_date() {
        let rate = |r: &str| pb::FeeSchedule {
            debit_rate: r.to_owned(),
            credit_rate: r.to_owned(),
            ..pb::FeeSchedule::default()
        };
        let mut terms = Terms::default();
        terms.set_schedule("", &rate("0.005"));
        terms.set_schedule("2026-12-01", &rate("0.004"));
        let on = |d: &str| terms.schedule_on(d).map(|s| s.debit_rate);
        assert_eq!(on("2026-11-30").as_deref(), Some("0.005"));
        assert_eq!(on("2026-12-01").as_deref(), Some("0.004"));
        terms.set_schedule("2026-11-20", &rate("0.003"));
        assert_eq!(
            terms.schedules.len(),
            2,
            "a change replaces later-dated ones"
        );
        assert_eq!(
            terms
                .schedule_on("2026-12-05")
                .map(|s| s.debit_rate)
                .as_deref(),
            Some("0.003")
        );
    }
}
