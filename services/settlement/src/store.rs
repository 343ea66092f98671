//! The settlement service's Redis state (under the deployment prefix), all of it rebuilt from
//! the topics by [`crate::follow::rebuild_if_needed`]:
//!
//! - `stl:lines:{terminal}:{batch}`: hash STAN → JSON [`Line`];
//! - `stl:batch:{terminal}:{batch}`: hash of the batch: `seq` (last event of the `batch`
//!   aggregate), `state` (open, settling, closed), `merchant_id`, `first_business_date`, `cut`
//!   (event id of the last settlement request the lines were brought up to), `settled`
//!   (1 balanced / 2 unbalanced at the comparison), `closed` (hex of the close answer);
//! - `stl:uploads:{terminal}:{batch}`: hash STAN → reconciliation of an uploaded record;
//! - `stl:late:{terminal}:{batch}`: list of event ids that arrived after the batch closed
//!   (adjustments for merchant settlement);
//! - `facts:batch:{terminal}`: the open batch for the gateway (`pos_facts::OpenBatch`);
//! - `lock:stl:*`: short locks per batch.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use pos_facts::{Facts, OpenBatch};
use pos_store::{Lock, Result, Store, StoreError};

use crate::lines::{Change, Line, apply};

const LOCK_TTL: Duration = Duration::from_secs(30);
const LOCK_WAIT: Duration = Duration::from_secs(8);

/// A batch's header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchHeader {
    /// Last event sequence of the batch aggregate.
    pub seq: u64,
    /// "open", "settling" or "closed".
    pub state: String,
    /// Merchant.
    pub merchant_id: String,
    /// Business date of the first line.
    pub first_business_date: String,
    /// Event id of the last settlement request the lines are complete up to.
    pub cut: String,
    /// Result of the comparison (proto `BatchBalance`), 0 before.
    pub settled: i32,
    /// The close answer, encoded; empty while open.
    pub closed: Vec<u8>,
}

/// The Redis state.
#[derive(Debug, Clone)]
pub struct Batches {
    store: Store,
}

impl Batches {
    /// State in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn key(&self, kind: &str, terminal_id: &str, batch_no: u32) -> String {
        self.store
            .key(&["stl", kind, terminal_id, &batch_no.to_string()])
    }

    /// Every line of a batch, by STAN.
    pub async fn lines(&self, terminal_id: &str, batch_no: u32) -> Result<BTreeMap<u32, Line>> {
        let key = self.key("lines", terminal_id, batch_no);
        let mut lines = BTreeMap::new();
        for (stan, json) in self.store.hash_get_all(&key).await? {
            let line: Line = serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                key: key.clone(),
                detail: format!("line {stan}: {e}"),
            })?;
            lines.insert(line.stan, line);
        }
        Ok(lines)
    }

    /// Applies changes to a batch's lines (the follower is their only writer).
    pub async fn change_lines(
        &self,
        terminal_id: &str,
        batch_no: u32,
        changes: &[Change],
    ) -> Result<()> {
        let mut lines = self.lines(terminal_id, batch_no).await?;
        let before = lines.clone();
        apply(&mut lines, changes);
        let changed: Vec<(String, String)> = lines
            .iter()
            .filter(|(stan, line)| before.get(stan) != Some(line))
            .map(|(stan, line)| {
                (
                    stan.to_string(),
                    serde_json::to_string(line).unwrap_or_default(),
                )
            })
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        let fields: Vec<(&str, &str)> = changed
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.store
            .hash_set(&self.key("lines", terminal_id, batch_no), &fields)
            .await?;
        if let Some(first) = lines.values().map(|l| l.business_date.as_str()).min() {
            // The gateway's view of the open batch: its number and the day it began.
            let facts = Facts::new(self.store.clone());
            let open = facts.open_batch(terminal_id).await?;
            let unknown_date = open
                .as_ref()
                .is_none_or(|o| o.batch_no == batch_no && o.first_business_date.is_empty());
            if unknown_date && !first.is_empty() {
                facts
                    .put_open_batch(
                        terminal_id,
                        &OpenBatch {
                            batch_no,
                            first_business_date: first.to_owned(),
                        },
                    )
                    .await?;
            }
            let header = self.key("batch", terminal_id, batch_no);
            let merchant = lines
                .values()
                .next()
                .map(|l| l.merchant_id.clone())
                .unwrap_or_default();
            let mut conn = self.store.connection();
            let _: () = redis::pipe()
                .cmd("HSETNX")
                .arg(&header)
                .arg("first_business_date")
                .arg(first)
                .ignore()
                .cmd("HSETNX")
                .arg(&header)
                .arg("merchant_id")
                .arg(merchant)
                .ignore()
                .cmd("HSETNX")
                .arg(&header)
                .arg("state")
                .arg("open")
                .ignore()
                .query_async(&mut conn)
                .await?;
        }
        Ok(())
    }

    /// Records an event that arrived after its batch closed.
    pub async fn record_late(
        &self,
        terminal_id: &str,
        batch_no: u32,
        event_id: &str,
    ) -> Result<()> {
        let mut conn = self.store.connection();
        let key = self.key("late", terminal_id, batch_no);
        let _: () = redis::pipe()
            .cmd("LREM")
            .arg(&key)
            .arg(0)
            .arg(event_id)
            .ignore()
            .cmd("RPUSH")
            .arg(&key)
            .arg(event_id)
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// The batch's header (defaults when it has none yet).
    pub async fn header(&self, terminal_id: &str, batch_no: u32) -> Result<BatchHeader> {
        let fields: HashMap<String, String> = self
            .store
            .hash_get_all(&self.key("batch", terminal_id, batch_no))
            .await?
            .into_iter()
            .collect();
        let get = |name: &str| fields.get(name).cloned().unwrap_or_default();
        Ok(BatchHeader {
            seq: get("seq").parse().unwrap_or_default(),
            state: if get("state").is_empty() {
                "open".to_owned()
            } else {
                get("state")
            },
            merchant_id: get("merchant_id"),
            first_business_date: get("first_business_date"),
            cut: get("cut"),
            settled: get("settled").parse().unwrap_or_default(),
            closed: hex::decode(get("closed")).unwrap_or_default(),
        })
    }

    /// Sets header fields.
    pub async fn set_header(
        &self,
        terminal_id: &str,
        batch_no: u32,
        fields: &[(&str, &str)],
    ) -> Result<()> {
        self.store
            .hash_set(&self.key("batch", terminal_id, batch_no), fields)
            .await
    }

    /// Raises the header's event sequence to at least `seq`.
    pub async fn raise_seq(&self, terminal_id: &str, batch_no: u32, seq: u64) -> Result<()> {
        let current = self.header(terminal_id, batch_no).await?.seq;
        if seq > current {
            self.set_header(terminal_id, batch_no, &[("seq", &seq.to_string())])
                .await?;
        }
        Ok(())
    }

    /// Reconciliations of the uploaded records, by STAN.
    pub async fn uploads(&self, terminal_id: &str, batch_no: u32) -> Result<BTreeMap<u32, i32>> {
        Ok(self
            .store
            .hash_get_all(&self.key("uploads", terminal_id, batch_no))
            .await?
            .into_iter()
            .filter_map(|(stan, r)| Some((stan.parse().ok()?, r.parse().ok()?)))
            .collect())
    }

    /// Keeps an uploaded record's reconciliation.
    pub async fn put_upload(
        &self,
        terminal_id: &str,
        batch_no: u32,
        stan: u32,
        reconciliation: i32,
    ) -> Result<()> {
        self.store
            .hash_set(
                &self.key("uploads", terminal_id, batch_no),
                &[(&stan.to_string(), &reconciliation.to_string())],
            )
            .await
    }

    /// Takes the batch's lock, waiting a little for its holder.
    pub async fn lock(&self, terminal_id: &str, batch_no: u32) -> Result<Option<Lock>> {
        let name = format!("stl:{terminal_id}:{batch_no}");
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

    /// Whether the rebuild marker is set.
    pub async fn rebuilt(&self) -> Result<bool> {
        Ok(self
            .store
            .get(&self.store.key(&["stl", "rebuilt"]))
            .await?
            .is_some())
    }

    /// Sets the rebuild marker.
    pub async fn set_rebuilt(&self) -> Result<()> {
        self.store
            .put(
                &self.store.key(&["stl", "rebuilt"]),
                b"1",
                Duration::from_secs(10 * 365 * 24 * 3600),
            )
            .await
    }
}
