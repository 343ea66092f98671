//! Rebuilding this service's Redis state from the topics (DESIGN.md §3): after Redis was
//! flushed (or on the very first start) the effects on originals, the reversal aggregates'
//! positions, the reversal marks, the answers to voids and refunds and the closed batches are
//! read back from `pos.transactions.v1` and `pos.settlement.v1` before anything is served. The
//! marker `rev:rebuilt` says the state is complete.

use pos_events::{BusConfig, BusError, EventEnvelope, EventReader, Payload, Topic};
use pos_proto::v1 as pb;
use prost::Message;
use tracing::info;

use crate::facts::{refund_answer, void_answer};
use crate::state::{ReversalState, State, StepKind};

/// Rebuilds the state unless the marker says it is complete.
pub async fn rebuild_if_needed(bus: &BusConfig, state: &State) -> anyhow::Result<()> {
    if state.rebuilt().await? {
        return Ok(());
    }
    let reader =
        EventReader::from_beginning(bus, &[Topic::Transactions, Topic::Settlement]).await?;
    let mut applied = 0u64;
    let read = reader
        .catch_up(async |event| {
            if apply(state, &event.envelope)
                .await
                .map_err(|e| BusError::Handler(e.to_string()))?
            {
                applied += 1;
            }
            Ok(())
        })
        .await?;
    state.set_rebuilt().await?;
    info!(read, applied, "reversal state rebuilt from the topics");
    Ok(())
}

fn trace_of(facts: &pb::TransactionFacts) -> (String, u32, u32) {
    let trace = facts.trace.clone().unwrap_or_default();
    (trace.terminal_id, trace.batch_no, trace.stan)
}

/// Applies one event to the state; `true` when it was one of this service's.
pub async fn apply(state: &State, envelope: &EventEnvelope) -> pos_store::Result<bool> {
    let Some(payload) = &envelope.payload else {
        return Ok(false);
    };
    match payload {
        Payload::TransactionReversed(e) => {
            let position = ReversalState {
                seq: envelope.sequence,
                reversed: true,
            };
            state.set_reversal(&e.reversal_id, position).await?;
            if let Some(original) = &e.original {
                let voids = [
                    pb::TransactionType::PurchaseVoid as i32,
                    pb::TransactionType::CompletionVoid as i32,
                ];
                if voids.contains(&original.transaction_type)
                    && let Some(voided) = &original.original
                {
                    // A reversed void: the voided transaction stands again.
                    state.unmark_voided(&voided.transaction_id).await?;
                }
                state
                    .mark_reversed(&original.transaction_id, &e.reversal_id)
                    .await?;
                if e.initiator == pb::ReversalInitiator::Terminal as i32 {
                    let (terminal, batch, stan) = trace_of(original);
                    state
                        .mark_trace(&terminal, batch, stan, &e.reversal_id)
                        .await?;
                }
            }
        }
        Payload::ReversalAcknowledged(e) => {
            let position = ReversalState {
                seq: envelope.sequence,
                reversed: false,
            };
            state.set_reversal(&e.reversal_id, position).await?;
            if e.initiator == pb::ReversalInitiator::Terminal as i32
                && let Some(original) = &e.original
            {
                state
                    .mark_trace(
                        &original.terminal_id,
                        original.batch_no,
                        original.stan,
                        &e.reversal_id,
                    )
                    .await?;
            }
        }
        Payload::TransactionVoided(e) => {
            let Some(facts) = &e.txn else {
                return Ok(false);
            };
            if let Some(original) = &facts.original {
                state
                    .mark_voided(&original.transaction_id, &facts.transaction_id)
                    .await?;
            }
            finish(
                state,
                StepKind::Void,
                facts,
                &void_answer(facts).encode_to_vec(),
            )
            .await?;
        }
        Payload::VoidDeclined(e) => {
            let Some(facts) = &e.txn else {
                return Ok(false);
            };
            finish(
                state,
                StepKind::Void,
                facts,
                &void_answer(facts).encode_to_vec(),
            )
            .await?;
        }
        Payload::TransactionRefunded(e) => {
            let Some(facts) = &e.txn else {
                return Ok(false);
            };
            if let Some(original) = &facts.original {
                let minor = facts.amount.as_ref().map_or(0, |m| m.minor_units);
                state
                    .add_refund(&original.transaction_id, &facts.transaction_id, minor)
                    .await?;
            }
            let totals = e
                .refunded_total
                .as_ref()
                .zip(e.remaining_refundable.as_ref())
                .map(|(total, remaining)| (total, remaining, e.partial));
            finish(
                state,
                StepKind::Refund,
                facts,
                &refund_answer(facts, totals).encode_to_vec(),
            )
            .await?;
        }
        Payload::RefundDeclined(e) => {
            let Some(facts) = &e.txn else {
                return Ok(false);
            };
            finish(
                state,
                StepKind::Refund,
                facts,
                &refund_answer(facts, None).encode_to_vec(),
            )
            .await?;
        }
        Payload::BatchClosed(e) => state.close_batch(&e.terminal_id, e.batch_no).await?,
        _ => return Ok(false),
    }
    Ok(true)
}

async fn finish(
    state: &State,
    kind: StepKind,
    facts: &pb::TransactionFacts,
    answer: &[u8],
) -> pos_store::Result<()> {
    let (terminal, batch, stan) = trace_of(facts);
    state
        .finish_step(
            kind,
            (&terminal, batch, stan),
            &facts.request_digest,
            &facts.transaction_id,
            answer,
        )
        .await
}
