//! Keeps the hold state of pre-authorizations right when the reversal service reverses one of
//! them, its completion or its void (`TransactionReversed` on `pos.transactions.v1`, consumer
//! group `authorization-holds`): a reversed pre-authorization can no longer be completed, and
//! a reversed completion or pre-auth void makes the hold completable again, as the issuer
//! restores it.

use std::time::Duration;

use pos_events::{BusConfig, EventConsumer, Topic};
use pos_facts::txn::Records;
use tracing::{info, warn};

use crate::rebuild::hold_change;

/// Consumer group of the follower.
pub const GROUP: &str = "authorization-holds";

/// Follows the topic until `shutdown`; a failing update is retried, never skipped.
pub async fn follow(
    bus: &BusConfig,
    records: Records,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let consumer = EventConsumer::new(bus, GROUP, &[Topic::Transactions])?;
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            _ = tick.tick() => consumer.commit_async()?,
            received = consumer.recv() => {
                let event = received?;
                if let Some(change) = hold_change(&event.envelope) {
                    let mut backoff = Duration::from_millis(100);
                    while let Err(error) = records
                        .settle_hold(&change.pre_auth, change.state, &change.by)
                        .await
                    {
                        warn!(%error, "updating a pre-authorization's hold; retrying");
                        tokio::select! {
                            () = &mut shutdown => return Ok(consumer.commit().await?),
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                    info!(pre_auth = %change.pre_auth, state = change.state, "pre-authorization hold changed by a reversal");
                }
                consumer.ack(&event);
            }
        }
    }
    consumer.commit().await?;
    Ok(())
}
