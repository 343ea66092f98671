//! Keeping the projection up to date from `pos.transactions.v1`.
//!
//! - [`rebuild_if_needed`]: when the projection's marker is missing (first start, or Redis was
//!   flushed), read the topic from its first record to its current end, then set the marker.
//! - [`follow`]: from then on, a consumer group delivers new events, so a restart resumes at
//!   the group's committed offsets instead of replaying everything. Offsets are committed
//!   only for applied events; anything delivered twice is applied twice harmlessly. (The loop
//!   is written over `recv` and `ack` rather than `EventConsumer::run`, whose async-closure
//!   handler cannot be proven `Send` inside `tokio::spawn`.)

use std::future::Future;
use std::time::Duration;

use pos_events::{BusConfig, BusError, EventConsumer, EventReader, ReceivedEvent, Topic};
use tracing::{debug, warn};

use crate::error::Result;
use crate::projection::HistoryProjection;

/// Rebuilds the projection from the topic's first event unless its marker is set; returns
/// how many events were read, `None` when no rebuild was needed.
pub async fn rebuild_if_needed(
    projection: &HistoryProjection,
    bus: &BusConfig,
) -> Result<Option<u64>> {
    if projection.is_rebuilt().await? {
        return Ok(None);
    }
    let reader = EventReader::from_beginning(bus, &[Topic::Transactions]).await?;
    let read = reader
        .catch_up(async |event| apply(projection, event).await)
        .await?;
    projection.mark_rebuilt().await?;
    Ok(Some(read))
}

/// Joins consumer group `group` on `pos.transactions.v1` and applies every event it
/// receives until `shutdown` completes, then commits the offsets of what was applied. An event
/// whose application fails is retried with backoff, never skipped; offsets are committed
/// every `bus.commit_interval`, only for applied events.
pub async fn follow(
    projection: &HistoryProjection,
    bus: &BusConfig,
    group: &str,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let consumer = EventConsumer::new(bus, group, &[Topic::Transactions])?;
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(bus.commit_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            _ = tick.tick() => {
                if let Err(error) = consumer.commit_async() {
                    warn!(%error, group, "committing history offsets");
                }
            }
            received = consumer.recv() => match received {
                Ok(event) => {
                    if !apply_until_done(projection, &event, &mut shutdown).await {
                        break;
                    }
                    consumer.ack(&event);
                }
                Err(error) => {
                    warn!(%error, group, "reading pos.transactions.v1 for the history");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            },
        }
    }
    consumer.commit().await?;
    Ok(())
}

/// Applies `event`, retrying with backoff while Redis fails; `false` when shutdown came first.
async fn apply_until_done<S>(
    projection: &HistoryProjection,
    event: &ReceivedEvent,
    shutdown: &mut S,
) -> bool
where
    S: Future<Output = ()> + Unpin,
{
    let mut backoff = Duration::from_millis(50);
    loop {
        match apply(projection, event).await {
            Ok(()) => return true,
            Err(error) => warn!(
                %error,
                event_id = %event.envelope.event_id,
                retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                "applying a history event failed; retrying"
            ),
        }
        tokio::select! {
            () = &mut *shutdown => return false,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn apply(projection: &HistoryProjection, event: &ReceivedEvent) -> pos_events::Result<()> {
    let applied = projection
        .apply(&event.envelope)
        .await
        .map_err(|e| BusError::Handler(e.to_string()))?;
    debug!(
        event_id = %event.envelope.event_id,
        aggregate_type = %event.envelope.aggregate_type,
        ?applied,
        "history event"
    );
    Ok(())
}
