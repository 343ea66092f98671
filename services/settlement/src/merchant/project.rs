//! The merchant-day projection: money steps from `pos.transactions.v1` into the merchant's
//! business days (called from [`crate::follow::apply`], live and in a rebuild), settled days
//! and adjustments from `pos.settlement.v1` (in a rebuild; live, the run and the recorder
//! write the same state), and fee schedules and settlement accounts from `pos.merchants.v1`.
//!
//! Idempotent: a step already kept changes nothing, whatever happened since. A step whose
//! business date is settled already for its merchant is *late*: live, it is kept aside as
//! pending and the recorder writes its `SettlementAdjustmentRecorded`; in a rebuild (the
//! settlement topic is replayed first) a step with a recorded adjustment is late, and any other
//! step of a settled day was counted by that settlement.

use pos_events::{BusConfig, BusError, EventEnvelope, EventReader, Payload, Topic};
use tracing::{info, warn};

use super::days::Days;
use super::steps::{Step, step};
use crate::store::Batches;

/// Applies one event of `pos.transactions.v1` or `pos.settlement.v1` to the merchant days.
pub async fn apply(batches: &Batches, envelope: &EventEnvelope) -> pos_store::Result<()> {
    let days = Days::new(batches.store().clone());
    match &envelope.payload {
        Some(Payload::MerchantSettled(e)) => {
            if let Some(settlement) = &e.settlement {
                days.record_settled(settlement, envelope.sequence).await?;
            }
            Ok(())
        }
        Some(Payload::SettlementAdjustmentRecorded(e)) => {
            if let Some(adjustment) = &e.adjustment {
                days.record_adjustment(adjustment, envelope.sequence)
                    .await?;
            }
            Ok(())
        }
        _ => match step(envelope) {
            Some(step) => keep(&days, batches, step).await,
            None => Ok(()),
        },
    }
}

async fn keep(days: &Days, batches: &Batches, mut step: Step) -> pos_store::Result<()> {
    if days.step(&step.key).await?.is_some() {
        return Ok(());
    }
    // Voids, refunds and reversals do not carry the card's funding: the fee of what they undo
    // or refund is computed from their original when the day is settled (the original may be
    // on another terminal's partition, so it is not looked up here, where the order differs
    // between live and a rebuild). Every step names its merchant; an original is asked only
    // when one does not.
    if step.merchant_id.is_empty()
        && !step.original.is_empty()
        && let Some(original) = days.step(&step.original).await?
    {
        step.merchant_id = original.merchant_id;
    }
    if step.merchant_id.is_empty() || step.business_date.is_empty() {
        warn!(step = %step.key, "a money step without merchant or business date; not settled");
        return Ok(());
    }
    // A run holds the lock for a moment; a dead holder's lock expires.
    let lock = loop {
        if let Some(lock) = days.lock(&step.merchant_id).await? {
            break lock;
        }
        warn!(merchant_id = %step.merchant_id, "waiting for the merchant's settlement lock");
    };
    let result = keep_locked(days, batches, &step).await;
    if let Err(error) = lock.release().await {
        warn!(%error, "releasing a merchant lock");
    }
    result
}

async fn keep_locked(days: &Days, batches: &Batches, step: &Step) -> pos_store::Result<()> {
    if days.step(&step.key).await?.is_some() {
        return Ok(());
    }
    if days.is_late(&step.key).await? {
        // Its adjustment was recorded (replayed from the settlement topic).
        return days.put_late(step, false).await;
    }
    let settled = days
        .settlement(&step.merchant_id, &step.business_date)
        .await?
        .is_some();
    if settled && batches.rebuilt().await? {
        info!(step = %step.key, merchant_id = %step.merchant_id, business_date = %step.business_date, "a step of a settled day: an adjustment for the next settlement");
        return days.put_late(step, true).await;
    }
    days.put_line(step).await
}

/// Applies one event of `pos.merchants.v1`: the onboarding's fee schedule and settlement
/// account, and later fee schedules, each once (by the merchant aggregate's sequence).
pub async fn apply_merchant(days: &Days, envelope: &EventEnvelope) -> pos_store::Result<()> {
    if envelope.aggregate_type != "merchant" {
        return Ok(());
    }
    let merchant_id = &envelope.aggregate_id;
    let mut terms = days.terms(merchant_id).await?.unwrap_or_default();
    if envelope.sequence <= terms.seq {
        return Ok(());
    }
    match &envelope.payload {
        Some(Payload::MerchantOnboarded(e)) => {
            terms.set_schedule("", &e.fee_schedule.clone().unwrap_or_default());
            if let Some(account) = &e.settlement_account {
                terms.account_masked =
                    format!("{} {}", account.bank_name, account.account_number_masked)
                        .trim()
                        .to_owned();
            }
        }
        Some(Payload::MerchantFeeScheduleChanged(e)) => {
            terms.set_schedule(
                &e.effective_from,
                &e.fee_schedule.clone().unwrap_or_default(),
            );
        }
        _ => {}
    }
    terms.seq = envelope.sequence;
    days.put_terms(merchant_id, &terms).await
}

/// Replays `pos.merchants.v1` into the terms (idempotent, at every start), then follows it
/// until `shutdown`.
pub async fn follow_merchants(
    bus: &BusConfig,
    days: Days,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let reader = EventReader::from_beginning(bus, &[Topic::Merchants]).await?;
    let read = reader
        .catch_up(async |event| {
            apply_merchant(&days, &event.envelope)
                .await
                .map_err(|e| BusError::Handler(e.to_string()))
        })
        .await?;
    info!(read, "merchant fee schedules read from the topic");
    tokio::spawn(async move {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                received = reader.recv() => match received {
                    Ok(event) => {
                        let mut backoff = std::time::Duration::from_millis(100);
                        while let Err(error) = apply_merchant(&days, &event.envelope).await {
                            warn!(%error, "applying a merchant event; retrying");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                        }
                    }
                    Err(error) => warn!(%error, "reading the merchants topic"),
                },
            }
        }
    });
    Ok(())
}
