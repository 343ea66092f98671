//! Keeping the projection up to date from `pos.transactions.v1`.
//!
//! - [`rebuild_if_needed`]: when the projection's marker is missing (first start, or Redis was
//!   flushed), read the topic from its first record to its current end, then set the marker.
//! - [`follow`]: from then on, new events, resuming at the group's committed offsets instead
//!   of replaying everything. Offsets are committed only for applied events; anything
//!   delivered twice is applied twice harmlessly.

use std::future::Future;

use pos_events::{BusConfig, BusError, EventConsumer, EventReader, ReceivedEvent, Topic};
use tracing::debug;

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

/// Follows `pos.transactions.v1` for consumer group `group` and applies every event until
/// `shutdown` completes (`EventConsumer::follow`: an event whose application fails is retried
/// with backoff, never skipped; offsets are committed only for applied events).
pub async fn follow(
    projection: &HistoryProjection,
    bus: &BusConfig,
    group: &str,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let consumer = EventConsumer::new(bus, group, &[Topic::Transactions])?;
    consumer
        .follow(
            |event| {
                let projection = projection.clone();
                Box::pin(async move { apply(&projection, event).await })
            },
            shutdown,
        )
        .await?;
    Ok(())
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
