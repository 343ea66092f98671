//! The batch projection: `pos.transactions.v1` (consumer group `settlement`) in each
//! terminal's partition order, so that a batch's lines are exactly the transactions before its
//! cut: a transaction of a batch that is closed is recorded as late instead of changing it. The
//! settlement events (`BatchSettlementRequested`, `BatchClosed`, written to the transactions
//! topic; the rest on `pos.settlement.v1`) restore the batch headers in a rebuild.

use pos_events::{BusConfig, BusError, EventConsumer, EventEnvelope, EventReader, Payload, Topic};
use pos_facts::{Facts, OpenBatch};
use pos_proto::v1 as pb;
use prost::Message;
use tracing::info;

use crate::lines::effect;
use crate::store::Batches;

/// Consumer group of the follower.
pub const GROUP: &str = "settlement";

/// Applies one event; `true` when it concerned a batch.
pub async fn apply(batches: &Batches, envelope: &EventEnvelope) -> pos_store::Result<bool> {
    let Some(payload) = &envelope.payload else {
        return Ok(false);
    };
    // The merchant days (merchant settlement) follow the same events, in the same order.
    crate::merchant::apply(batches, envelope).await?;
    if let Some(effect) = effect(payload) {
        let header = batches.header(&effect.terminal_id, effect.batch_no).await?;
        if header.state == "closed" {
            batches
                .record_late(&effect.terminal_id, effect.batch_no, &envelope.event_id)
                .await?;
        } else {
            batches
                .change_lines(&effect.terminal_id, effect.batch_no, &effect.changes)
                .await?;
        }
        return Ok(true);
    }
    match payload {
        Payload::BatchSettlementRequested(e) => {
            batches
                .set_header(&e.terminal_id, e.batch_no, &[("cut", &envelope.event_id)])
                .await?;
            batches
                .raise_seq(&e.terminal_id, e.batch_no, envelope.sequence)
                .await?;
        }
        Payload::BatchBalanced(e) => {
            settled(
                batches,
                &e.terminal_id,
                e.batch_no,
                pb::BatchBalance::Balanced,
            )
            .await?;
            batches
                .raise_seq(&e.terminal_id, e.batch_no, envelope.sequence)
                .await?;
        }
        Payload::BatchUnbalanced(e) => {
            settled(
                batches,
                &e.terminal_id,
                e.batch_no,
                pb::BatchBalance::Unbalanced,
            )
            .await?;
            batches
                .raise_seq(&e.terminal_id, e.batch_no, envelope.sequence)
                .await?;
        }
        Payload::BatchRecordUploaded(e) => {
            if let Some(record) = &e.record {
                batches
                    .put_upload(&e.terminal_id, e.batch_no, record.stan, e.reconciliation)
                    .await?;
            }
            batches
                .raise_seq(&e.terminal_id, e.batch_no, envelope.sequence)
                .await?;
        }
        Payload::BatchDifferenceRecorded(e) => {
            batches
                .raise_seq(&e.terminal_id, e.batch_no, envelope.sequence)
                .await?;
        }
        Payload::BatchClosed(e) => {
            let answer = pb::CloseBatchResponse {
                response_code: "00".to_owned(),
                response_message: "batch closed".to_owned(),
                closed_batch_no: e.batch_no,
                next_batch_no: e.next_batch_no,
                result: e.result,
                host_totals: e.host_totals.clone(),
                difference_count: e.difference_count,
                closed_at: envelope.occurred_at,
            };
            batches
                .set_header(
                    &e.terminal_id,
                    e.batch_no,
                    &[
                        ("state", "closed"),
                        ("closed", &hex::encode(answer.encode_to_vec())),
                    ],
                )
                .await?;
            batches
                .raise_seq(&e.terminal_id, e.batch_no, envelope.sequence)
                .await?;
            let facts = Facts::new(batches.store().clone());
            let open = facts.open_batch(&e.terminal_id).await?;
            if open.is_none_or(|o| o.batch_no == e.batch_no) {
                facts
                    .put_open_batch(
                        &e.terminal_id,
                        &OpenBatch {
                            batch_no: e.next_batch_no,
                            first_business_date: String::new(),
                        },
                    )
                    .await?;
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

async fn settled(
    batches: &Batches,
    terminal_id: &str,
    batch_no: u32,
    result: pb::BatchBalance,
) -> pos_store::Result<()> {
    let header = batches.header(terminal_id, batch_no).await?;
    let mut fields = vec![("settled", (result as i32).to_string())];
    if header.state != "closed" {
        fields.push(("state", "settling".to_owned()));
    }
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    batches.set_header(terminal_id, batch_no, &fields).await
}

/// Rebuilds the projection from the topics unless the marker says it is complete.
pub async fn rebuild_if_needed(bus: &BusConfig, batches: &Batches) -> anyhow::Result<()> {
    if batches.rebuilt().await? {
        return Ok(());
    }
    // The settlement topic first (headers, uploads), then the transactions in partition order
    // (lines, cuts and closes, which decide what is late).
    let mut read = 0;
    for topic in [Topic::Settlement, Topic::Transactions] {
        let reader = EventReader::from_beginning(bus, &[topic]).await?;
        read += reader
            .catch_up(async |event| {
                apply(batches, &event.envelope)
                    .await
                    .map(drop)
                    .map_err(|e| BusError::Handler(e.to_string()))
            })
            .await?;
    }
    batches.set_rebuilt().await?;
    info!(read, "batch projection rebuilt from the topics");
    Ok(())
}

/// Follows the transactions topic until `shutdown`; a failing event is retried, never
/// skipped.
pub async fn follow(
    bus: &BusConfig,
    batches: Batches,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let consumer = EventConsumer::new(bus, &bus.group(GROUP), &[Topic::Transactions])?;
    consumer
        .follow(
            |event| {
                let batches = batches.clone();
                Box::pin(async move {
                    apply(&batches, &event.envelope)
                        .await
                        .map(drop)
                        .map_err(|e| BusError::Handler(e.to_string()))
                })
            },
            shutdown,
        )
        .await?;
    Ok(())
}
