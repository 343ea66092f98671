//! Keeps the hold state of pre-authorizations right when the reversal service reverses one of
//! them, its completion or its void (`TransactionReversed` on `pos.transactions.v1`, consumer
//! group `authorization-holds`): a reversed pre-authorization can no longer be completed, and
//! a reversed completion or pre-auth void makes the hold completable again, as the issuer
//! restores it.

use pos_events::{BusConfig, BusError, EventConsumer, Topic};
use pos_facts::txn::Records;
use tracing::info;

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
    consumer
        .follow(
            |event| {
                let records = records.clone();
                Box::pin(async move {
                    let Some(change) = hold_change(&event.envelope) else {
                        return Ok(());
                    };
                    records
                        .settle_hold(&change.pre_auth, change.state, &change.by)
                        .await
                        .map_err(|e| BusError::Handler(e.to_string()))?;
                    info!(pre_auth = %change.pre_auth, state = change.state, "pre-authorization hold changed by a reversal");
                    Ok(())
                })
            },
            shutdown,
        )
        .await?;
    Ok(())
}
