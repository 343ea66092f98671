//! What fraud-check learns after the fact, from the topics: merchants' trading hours, legal
//! person and settlement card (`pos.merchants.v1`), where terminals stand
//! (`pos.terminals.v1`), declines in a row and daily volume per terminal
//! (`pos.transactions.v1`), and its own blacklist and alerts (`pos.fraud.v1`, for a rebuild).
//!
//! Every apply is idempotent: profiles are overwritten, blacklist and alert applies are keyed
//! by id, and the counting applies (declines, volume) run once per event id (`applied:{event
//! id}`, kept for [`APPLIED_RETENTION`]). The follower is one consumer group (`fraud-check`);
//! when Redis lost the projection (no `projection` marker) every topic is replayed from the
//! start first.

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use pos_events::{BusConfig, BusError, EventConsumer, EventEnvelope, EventReader, Payload, Topic};
use pos_proto::v1 as pb;
use redis::{AsyncCommands, Script};
use tracing::info;

use crate::lists::Lists;

/// Consumer group of the follower.
pub const GROUP: &str = "fraud-check";

/// How long an applied event id is remembered (longer than any redelivery after a rebuild).
const APPLIED_RETENTION: Duration = Duration::from_secs(8 * 24 * 3600);

/// How long a terminal's daily volumes are kept (longer than any volume history).
const VOLUME_RETENTION: Duration = Duration::from_secs(100 * 24 * 3600);

/// The topics the projection reads.
pub const TOPICS: [Topic; 4] = [
    Topic::Merchants,
    Topic::Terminals,
    Topic::Fraud,
    Topic::Transactions,
];

/// Counts one transaction outcome once: KEYS 1 applied marker, 2 declines, 3 volume;
/// ARGV 1 marker ttl s, 2 "decline" | "approve", 3 business date, 4 amount minor (0 = none),
/// 5 volume ttl s.
static COUNT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
if ARGV[2] == 'decline' then
  redis.call('INCR', KEYS[2])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
else
  redis.call('SET', KEYS[2], '0', 'EX', ARGV[5])
end
if tonumber(ARGV[4]) > 0 and ARGV[3] ~= '' then
  redis.call('HINCRBY', KEYS[3], ARGV[3], ARGV[4])
  redis.call('EXPIRE', KEYS[3], ARGV[5])
end
return 1
",
    )
});

/// The projection over the shared store.
#[derive(Debug, Clone)]
pub struct Projection {
    lists: Lists,
}

impl Projection {
    /// Over the lists' store.
    pub fn new(lists: Lists) -> Self {
        Self { lists }
    }

    fn key(&self, parts: &[&str]) -> String {
        self.lists.key(parts)
    }

    /// Applies one event of any of [`TOPICS`].
    pub async fn apply(&self, envelope: &EventEnvelope) -> anyhow::Result<()> {
        match &envelope.payload {
            Some(Payload::MerchantOnboarded(m)) => self.merchant(m).await?,
            Some(Payload::TerminalRegistered(t)) => self.terminal(t).await?,
            Some(Payload::BlacklistEntryAdded(e)) => {
                if let Some(entry) = &e.entry {
                    self.lists.put_entry(entry).await?;
                }
            }
            Some(Payload::BlacklistEntryRemoved(e)) => {
                self.lists.remove_entry(&e.entry_id).await?;
            }
            Some(Payload::FraudAlertRaised(e)) => {
                if let Some(alert) = &e.alert {
                    self.lists
                        .put_alert(&pb::FraudAlertView {
                            alert: Some(alert.clone()),
                            raised_at: envelope.occurred_at,
                        })
                        .await?;
                }
            }
            Some(Payload::AuthorizationApproved(e)) => {
                self.outcome(envelope, e.txn.as_ref(), true, true).await?;
            }
            Some(Payload::PreAuthCompleted(e)) => {
                self.outcome(envelope, e.txn.as_ref(), true, true).await?;
            }
            Some(Payload::PreAuthHoldPlaced(e)) => {
                self.outcome(envelope, e.txn.as_ref(), true, false).await?;
            }
            Some(Payload::BalanceInquired(e)) => {
                self.outcome(envelope, e.txn.as_ref(), true, false).await?;
            }
            Some(Payload::AuthorizationDeclined(e))
                if e.source != pb::DeclineSource::System as i32 =>
            {
                // "91"/"96" say nothing about the cards: only refusals count.
                self.outcome(envelope, e.txn.as_ref(), false, false).await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn merchant(&self, m: &pb::MerchantOnboarded) -> anyhow::Result<()> {
        let hours = m.trading_hours.clone().unwrap_or_default();
        let windows = hours
            .windows
            .iter()
            .map(|w| format!("{}-{}", w.opens_at, w.closes_at))
            .collect::<Vec<_>>()
            .join(",");
        let card = m
            .settlement_account
            .as_ref()
            .map(|a| a.account_card_token.clone())
            .unwrap_or_default();
        let mut pipe = redis::pipe();
        pipe.atomic().hset_multiple(
            self.key(&["merchant", &m.merchant_id]),
            &[
                ("known", "1"),
                ("night", if hours.night_business { "1" } else { "0" }),
                ("windows", windows.as_str()),
                ("lp", m.legal_person_id_token.as_str()),
            ],
        );
        if !card.is_empty() {
            pipe.sadd(self.key(&["cards", "merchant", &m.merchant_id]), &card);
            if !m.legal_person_id_token.is_empty() {
                pipe.sadd(self.key(&["cards", "lp", &m.legal_person_id_token]), &card);
            }
        }
        let mut conn = self.lists.store().connection();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    async fn terminal(&self, t: &pb::TerminalRegistered) -> anyhow::Result<()> {
        let location = t.location.clone().unwrap_or_default();
        let number = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
        let mut conn = self.lists.store().connection();
        conn.hset_multiple::<_, _, _, ()>(
            self.key(&["terminal", &t.terminal_id]),
            &[
                ("merchant", t.merchant_id.clone()),
                ("city", location.city.clone()),
                ("lat", number(location.latitude)),
                ("lon", number(location.longitude)),
            ],
        )
        .await?;
        Ok(())
    }

    async fn outcome(
        &self,
        envelope: &EventEnvelope,
        txn: Option<&pb::TransactionFacts>,
        approved: bool,
        volume: bool,
    ) -> anyhow::Result<()> {
        let Some(txn) = txn else {
            return Ok(());
        };
        let terminal = txn
            .trace
            .as_ref()
            .map(|t| t.terminal_id.as_str())
            .unwrap_or_default();
        if terminal.is_empty() {
            return Ok(());
        }
        let amount = if volume {
            txn.amount.as_ref().map_or(0, |m| m.minor_units)
        } else {
            0
        };
        let mut conn = self.lists.store().connection();
        let _: i64 = COUNT
            .key(self.key(&["applied", &envelope.event_id]))
            .key(self.key(&["declines", terminal]))
            .key(self.key(&["volume", terminal]))
            .arg(APPLIED_RETENTION.as_secs())
            .arg(if approved { "approve" } else { "decline" })
            .arg(&txn.business_date)
            .arg(amount)
            .arg(VOLUME_RETENTION.as_secs())
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Whether the projection is complete in Redis.
    async fn rebuilt(&self) -> anyhow::Result<bool> {
        let mut conn = self.lists.store().connection();
        Ok(conn.exists(self.key(&["projection"])).await?)
    }

    /// Replays every topic from the start unless the marker says Redis has the projection.
    pub async fn rebuild_if_needed(&self, bus: &BusConfig) -> anyhow::Result<()> {
        if self.rebuilt().await? {
            return Ok(());
        }
        let mut read = 0;
        for topic in TOPICS {
            let reader = EventReader::from_beginning(bus, &[topic]).await?;
            read += reader
                .catch_up(async |event| {
                    self.apply(&event.envelope)
                        .await
                        .map_err(|e| BusError::Handler(format!("{e:#}")))
                })
                .await?;
        }
        let mut conn = self.lists.store().connection();
        conn.set::<_, _, ()>(self.key(&["projection"]), "1").await?;
        info!(read, "fraud projection rebuilt from the topics");
        Ok(())
    }

    /// Follows the topics until `shutdown`; a failing event is retried, never skipped.
    pub async fn follow(
        &self,
        bus: &BusConfig,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let consumer = EventConsumer::new(bus, &bus.group(GROUP), &TOPICS)?;
        consumer
            .follow(
                |event| {
                    let projection = self.clone();
                    Box::pin(async move {
                        projection
                            .apply(&event.envelope)
                            .await
                            .map_err(|e| BusError::Handler(format!("{e:#}")))
                    })
                },
                shutdown,
            )
            .await?;
        Ok(())
    }
}
