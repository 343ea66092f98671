//! What the service does on its own, from `pos.transactions.v1` (consumer group `reversal`)
//! and from authorization's list of unpublished decisions:
//!
//! - `ApprovalUndelivered` (the gateway could not hand an approval to its terminal): reverse
//!   it, initiator HOST, reason "UNDELIVERED";
//! - an approval whose trace carries a reversal mark (the terminal's reversal came first):
//!   record it as reversed (the issuer was already asked, or is now);
//! - an `AuthorizationDeclined` with "91" (the issuer did not answer, it may have acted): undo
//!   at the issuer (idempotent on the transaction id; no event, the log never counted it);
//! - `BatchClosed` (settlement writes it to `pos.transactions.v1`): the batch can no longer be
//!   voided;
//! - every few seconds, the transactions authorization lists under `txn:unrecorded`: undo them
//!   at the issuer.
//!
//! A handler that fails (issuer or Redis down) is retried by the consumer, never skipped.

use std::sync::Arc;
use std::time::Duration;

use pos_events::{BusConfig, BusError, EventConsumer, EventEnvelope, Payload, Topic};
use pos_facts::txn::TxnRecord;
use pos_proto::v1 as pb;
use tracing::{info, warn};

use crate::grpc::host_ask;
use crate::rules::is_reversible;
use crate::service::{Service, reversal_id};

/// Consumer group of the follower.
pub const GROUP: &str = "reversal";

/// Follows the topics until `shutdown`: each event is acknowledged once handled; a failing
/// handler is retried with backoff, so nothing is skipped while the issuer or Redis is down.
pub async fn follow(
    bus: &BusConfig,
    service: Arc<Service>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let consumer = EventConsumer::new(bus, GROUP, &[Topic::Transactions, Topic::Settlement])?;
    consumer
        .follow(
            |event| {
                let service = std::sync::Arc::clone(&service);
                Box::pin(async move {
                    handle(&service, &event.envelope)
                        .await
                        .map_err(|e| BusError::Handler(e.to_string()))
                })
            },
            shutdown,
        )
        .await?;
    Ok(())
}

fn approved_facts(payload: &Payload) -> Option<&pb::TransactionFacts> {
    match payload {
        Payload::AuthorizationApproved(e) => e.txn.as_ref(),
        Payload::PreAuthHoldPlaced(e) => e.txn.as_ref(),
        Payload::PreAuthCompleted(e) => e.txn.as_ref(),
        Payload::PreAuthVoided(e) => e.txn.as_ref(),
        _ => None,
    }
}

/// One event.
pub async fn handle(service: &Service, envelope: &EventEnvelope) -> crate::error::Result<()> {
    let Some(payload) = &envelope.payload else {
        return Ok(());
    };
    if let Some(facts) = approved_facts(payload) {
        let trace = facts.trace.clone().unwrap_or_default();
        let reversal_id = reversal_id(&trace.terminal_id, trace.batch_no, trace.stan);
        if service
            .state
            .is_marked(&trace.terminal_id, trace.batch_no, trace.stan)
            .await?
            && !service.state.reversal(&reversal_id).await?.reversed
        {
            let record = TxnRecord::from_facts(facts);
            if is_reversible(&record) {
                let mut ask = host_ask(&record, "98");
                ask.initiator = pb::ReversalInitiator::Terminal;
                let done = service.reverse(&ask, Some(record)).await?;
                info!(reversal_id = %done.reversal_id, outcome = ?done.outcome, "approval that arrived after its reversal handled");
            }
        }
        return Ok(());
    }
    match payload {
        Payload::ApprovalUndelivered(undelivered) => {
            let Some(facts) = &undelivered.txn else {
                return Ok(());
            };
            let record = TxnRecord::from_facts(facts);
            if record.approved() && is_reversible(&record) {
                let done = service
                    .reverse(&host_ask(&record, "UNDELIVERED"), Some(record))
                    .await?;
                info!(reversal_id = %done.reversal_id, outcome = ?done.outcome, "undelivered approval reversed by the host");
            }
        }
        Payload::AuthorizationDeclined(declined) => {
            if let Some(facts) = &declined.txn
                && facts.response_code == "91"
                && declined.source == pb::DeclineSource::System as i32
            {
                let record = TxnRecord::from_facts(facts);
                if is_reversible(&record) {
                    service.undo_unknown(&record, "98").await?;
                }
            }
        }
        Payload::BatchClosed(closed) => {
            service
                .state
                .close_batch(&closed.terminal_id, closed.batch_no)
                .await?;
        }
        _ => {}
    }
    Ok(())
}

/// Undoes, every `every`, what authorization could not publish; runs until the process ends.
pub async fn sweep_unrecorded(service: Arc<Service>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = sweep_once(&service).await {
            warn!(%error, "undoing unrecorded transactions; trying again later");
        }
    }
}

async fn sweep_once(service: &Service) -> crate::error::Result<()> {
    for id in service.records.unrecorded(100).await? {
        match service.records.get(&id).await? {
            Some(record) => service.undo_unknown(&record, "98").await?,
            // The record expired: nothing left to know what to undo.
            None => service.records.forget_unrecorded(&id).await?,
        }
    }
    Ok(())
}
