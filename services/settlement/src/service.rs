//! Terminal batch settlement (结算): compare the terminal's totals with the host's (0500),
//! reconcile uploaded records line by line (0320), close the batch and hand out the next batch
//! number. Every call is serialized per batch by a short lock and is idempotent.
//!
//! The comparison is made on complete lines: `SettleBatch` writes `BatchSettlementRequested`
//! to `pos.transactions.v1` keyed by the terminal id, behind every transaction of the batch,
//! and waits until the follower has applied it (the batch's cut). `BatchClosed` goes the same
//! way, so a transaction that arrives after the close is recorded as late, live and in a
//! rebuild alike.

use std::collections::BTreeSet;
use std::time::Duration;

use pos_events::{AggregateRef, EventPublisher, Payload, Topic, new_envelope};
use pos_facts::Facts;
use pos_proto::v1 as pb;
use prost::Message;
use tracing::info;

use crate::error::{Result, SettlementError};
use crate::lines::{LineState, Side, balanced, reconcile, to_proto, totals};
use crate::store::Batches;

/// Name of this service in event envelopes.
pub const PRODUCER: &str = "settlement";
/// How long `SettleBatch` waits for the follower to reach the batch's cut.
const CUT_WAIT: Duration = Duration::from_secs(10);

/// Everything a request needs.
#[derive(Debug)]
pub struct Service {
    /// The batch projection.
    pub batches: Batches,
    /// Event publisher.
    pub publisher: EventPublisher,
}

fn next_batch(batch_no: u32) -> u32 {
    if batch_no >= 999_999 { 1 } else { batch_no + 1 }
}

impl Service {
    async fn publish(
        &self,
        topic: Topic,
        terminal_id: &str,
        batch_no: u32,
        seq: u64,
        payload: Payload,
    ) -> Result<String> {
        let envelope = new_envelope(
            &AggregateRef::new("batch", format!("{terminal_id}:{batch_no}")),
            seq,
            PRODUCER,
            payload,
        );
        self.publisher
            .publish(topic, terminal_id, &envelope)
            .await?;
        self.batches.raise_seq(terminal_id, batch_no, seq).await?;
        Ok(envelope.event_id)
    }

    async fn locked<T>(
        &self,
        terminal_id: &str,
        batch_no: u32,
        run: impl AsyncFnOnce() -> Result<T>,
    ) -> Result<T> {
        let Some(lock) = self.batches.lock(terminal_id, batch_no).await? else {
            return Err(SettlementError::Busy);
        };
        let result = run().await;
        if let Err(error) = lock.release().await {
            tracing::warn!(%error, "releasing a batch lock");
        }
        result
    }

    /// Compares the terminal's totals with the host's (0500).
    pub async fn settle(&self, request: pb::SettleBatchRequest) -> Result<pb::SettleBatchResponse> {
        let (terminal_id, batch_no) = (request.terminal_id.clone(), request.batch_no);
        self.locked(&terminal_id, batch_no, async || {
            let header = self.batches.header(&terminal_id, batch_no).await?;
            let lines = self.batches.lines(&terminal_id, batch_no).await?;
            if header.state == "closed" {
                return Ok(pb::SettleBatchResponse {
                    response_code: "12".to_owned(),
                    response_message: format!("batch {batch_no:06} is already closed"),
                    batch_no,
                    result: header.settled,
                    host_totals: to_proto(&totals(&lines)),
                });
            }
            let requested = pb::BatchSettlementRequested {
                terminal_id: terminal_id.clone(),
                merchant_id: request.merchant_id.clone(),
                batch_no,
                terminal_totals: request.terminal_totals.clone(),
                operator_no: request.operator_no.clone(),
                forced: request.forced,
            };
            let cut = self
                .publish(
                    Topic::Transactions,
                    &terminal_id,
                    batch_no,
                    header.seq + 1,
                    Payload::BatchSettlementRequested(requested),
                )
                .await?;
            self.wait_for_cut(&terminal_id, batch_no, &cut).await?;
            let lines = self.batches.lines(&terminal_id, batch_no).await?;
            let host = totals(&lines);
            let host_totals = to_proto(&host);
            let agreed = balanced(&request.terminal_totals, &host);
            let seq = self.batches.header(&terminal_id, batch_no).await?.seq + 1;
            let (result, payload) = if agreed {
                (
                    pb::BatchBalance::Balanced,
                    Payload::BatchBalanced(pb::BatchBalanced {
                        terminal_id: terminal_id.clone(),
                        merchant_id: request.merchant_id.clone(),
                        batch_no,
                        host_totals: host_totals.clone(),
                    }),
                )
            } else {
                (
                    pb::BatchBalance::Unbalanced,
                    Payload::BatchUnbalanced(pb::BatchUnbalanced {
                        terminal_id: terminal_id.clone(),
                        merchant_id: request.merchant_id.clone(),
                        batch_no,
                        terminal_totals: request.terminal_totals.clone(),
                        host_totals: host_totals.clone(),
                    }),
                )
            };
            self.publish(Topic::Settlement, &terminal_id, batch_no, seq, payload)
                .await?;
            let mut fields = vec![
                ("settled", (result as i32).to_string()),
                ("state", "settling".to_owned()),
            ];
            if !request.merchant_id.is_empty() {
                fields.push(("merchant_id", request.merchant_id.clone()));
            }
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            self.batches
                .set_header(&terminal_id, batch_no, &fields)
                .await?;
            info!(%terminal_id, batch_no, ?result, "batch compared");
            Ok(pb::SettleBatchResponse {
                response_code: "00".to_owned(),
                response_message: if agreed {
                    "balanced: totals agree".to_owned()
                } else {
                    "unbalanced: upload every record of the batch".to_owned()
                },
                batch_no,
                result: result as i32,
                host_totals,
            })
        })
        .await
    }

    async fn wait_for_cut(&self, terminal_id: &str, batch_no: u32, cut: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + CUT_WAIT;
        while self.batches.header(terminal_id, batch_no).await?.cut != cut {
            if tokio::time::Instant::now() >= deadline {
                return Err(SettlementError::Lagging);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Reconciles uploaded records (0320), each once.
    pub async fn upload(&self, request: pb::UploadBatchRequest) -> Result<pb::UploadBatchResponse> {
        let (terminal_id, batch_no) = (request.terminal_id.clone(), request.batch_no);
        self.locked(&terminal_id, batch_no, async || {
            let header = self.batches.header(&terminal_id, batch_no).await?;
            if header.state != "settling" {
                return Ok(pb::UploadBatchResponse {
                    response_code: "12".to_owned(),
                    response_message: format!(
                        "batch {batch_no:06} is not being settled ({})",
                        header.state
                    ),
                    results: Vec::new(),
                });
            }
            let lines = self.batches.lines(&terminal_id, batch_no).await?;
            let uploaded = self.batches.uploads(&terminal_id, batch_no).await?;
            let mut seq = header.seq;
            let mut results = Vec::with_capacity(request.records.len());
            for record in &request.records {
                let line = lines.get(&record.stan);
                let (reconciliation, detail) = reconcile(record, line);
                let transaction_id = line.map(|l| l.transaction_id.clone()).unwrap_or_default();
                if !uploaded.contains_key(&record.stan) {
                    seq += 1;
                    let event = pb::BatchRecordUploaded {
                        terminal_id: terminal_id.clone(),
                        merchant_id: header.merchant_id.clone(),
                        batch_no,
                        record: Some(record.clone()),
                        reconciliation: reconciliation as i32,
                        transaction_id: transaction_id.clone(),
                    };
                    self.publish(
                        Topic::Settlement,
                        &terminal_id,
                        batch_no,
                        seq,
                        Payload::BatchRecordUploaded(event),
                    )
                    .await?;
                    if reconciliation != pb::RecordReconciliation::Matched {
                        seq += 1;
                        let difference = pb::BatchDifferenceRecorded {
                            terminal_id: terminal_id.clone(),
                            merchant_id: header.merchant_id.clone(),
                            batch_no,
                            stan: record.stan,
                            kind: reconciliation as i32,
                            transaction_id: transaction_id.clone(),
                            terminal_amount: record.amount.clone(),
                            host_amount: line.map(|l| pb::Money {
                                minor_units: l.amount_minor,
                                currency: l.currency.clone(),
                            }),
                            detail: detail.clone(),
                        };
                        self.publish(
                            Topic::Settlement,
                            &terminal_id,
                            batch_no,
                            seq,
                            Payload::BatchDifferenceRecorded(difference),
                        )
                        .await?;
                    }
                    self.batches
                        .put_upload(&terminal_id, batch_no, record.stan, reconciliation as i32)
                        .await?;
                }
                results.push(pb::UploadedRecordResult {
                    stan: record.stan,
                    reconciliation: reconciliation as i32,
                    transaction_id,
                    detail,
                });
            }
            Ok(pb::UploadBatchResponse {
                response_code: "00".to_owned(),
                response_message: "received".to_owned(),
                results,
            })
        })
        .await
    }

    /// Closes the batch and hands out the next batch number; closing again gives the same
    /// answer.
    pub async fn close(&self, request: pb::CloseBatchRequest) -> Result<pb::CloseBatchResponse> {
        let (terminal_id, batch_no) = (request.terminal_id.clone(), request.batch_no);
        self.locked(&terminal_id, batch_no, async || {
            let header = self.batches.header(&terminal_id, batch_no).await?;
            if header.state == "closed" {
                return pb::CloseBatchResponse::decode(header.closed.as_slice())
                    .map_err(|e| SettlementError::Internal(format!("stored close answer: {e}")));
            }
            if header.state != "settling" {
                return Ok(pb::CloseBatchResponse {
                    response_code: "12".to_owned(),
                    response_message: format!("batch {batch_no:06} must be settled first"),
                    closed_batch_no: batch_no,
                    ..pb::CloseBatchResponse::default()
                });
            }
            let lines = self.batches.lines(&terminal_id, batch_no).await?;
            let uploads = self.batches.uploads(&terminal_id, batch_no).await?;
            let mut seq = header.seq;
            let mut differences = uploads
                .values()
                .filter(|r| **r != pb::RecordReconciliation::Matched as i32)
                .count();
            if header.settled == pb::BatchBalance::Unbalanced as i32 {
                // What the host counts and the terminal did not upload.
                let uploaded: BTreeSet<u32> = uploads.keys().copied().collect();
                for line in lines.values().filter(|l| {
                    l.state == LineState::Standing
                        && l.side != Side::None
                        && !uploaded.contains(&l.stan)
                }) {
                    seq += 1;
                    differences += 1;
                    let difference = pb::BatchDifferenceRecorded {
                        terminal_id: terminal_id.clone(),
                        merchant_id: header.merchant_id.clone(),
                        batch_no,
                        stan: line.stan,
                        kind: pb::RecordReconciliation::MissingOnTerminal as i32,
                        transaction_id: line.transaction_id.clone(),
                        terminal_amount: None,
                        host_amount: Some(pb::Money {
                            minor_units: line.amount_minor,
                            currency: line.currency.clone(),
                        }),
                        detail: "the host counts a transaction the terminal did not upload"
                            .to_owned(),
                    };
                    self.publish(
                        Topic::Settlement,
                        &terminal_id,
                        batch_no,
                        seq,
                        Payload::BatchDifferenceRecorded(difference),
                    )
                    .await?;
                }
            }
            let result = if header.settled == pb::BatchBalance::Balanced as i32 || differences == 0
            {
                pb::BatchBalance::Balanced
            } else {
                pb::BatchBalance::Unbalanced
            };
            let host_totals = to_proto(&totals(&lines));
            let next = next_batch(batch_no);
            let difference_count = u32::try_from(differences).unwrap_or(u32::MAX);
            let closed = pb::BatchClosed {
                terminal_id: terminal_id.clone(),
                merchant_id: header.merchant_id.clone(),
                batch_no,
                next_batch_no: next,
                result: result as i32,
                host_totals: host_totals.clone(),
                difference_count,
                forced: false,
                first_business_date: header.first_business_date.clone(),
            };
            self.publish(
                Topic::Transactions,
                &terminal_id,
                batch_no,
                seq + 1,
                Payload::BatchClosed(closed),
            )
            .await?;
            let answer = pb::CloseBatchResponse {
                response_code: "00".to_owned(),
                response_message: "batch closed".to_owned(),
                closed_batch_no: batch_no,
                next_batch_no: next,
                result: result as i32,
                host_totals,
                difference_count,
                closed_at: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
            };
            self.batches
                .set_header(
                    &terminal_id,
                    batch_no,
                    &[
                        ("state", "closed"),
                        ("closed", &hex::encode(answer.encode_to_vec())),
                    ],
                )
                .await?;
            Facts::new(self.batches.store().clone())
                .put_open_batch(
                    &terminal_id,
                    &pos_facts::OpenBatch {
                        batch_no: next,
                        first_business_date: String::new(),
                    },
                )
                .await?;
            info!(%terminal_id, batch_no, next, ?result, differences, "batch closed");
            Ok(answer)
        })
        .await
    }

    /// The host totals and state of a batch (0 = the terminal's open batch).
    pub async fn totals(
        &self,
        request: pb::GetBatchTotalsRequest,
    ) -> Result<pb::GetBatchTotalsResponse> {
        let terminal_id = request.terminal_id;
        let batch_no = if request.batch_no == 0 {
            Facts::new(self.batches.store().clone())
                .open_batch(&terminal_id)
                .await?
                .map_or(1, |b| b.batch_no)
        } else {
            request.batch_no
        };
        let header = self.batches.header(&terminal_id, batch_no).await?;
        let lines = self.batches.lines(&terminal_id, batch_no).await?;
        let closed = pb::CloseBatchResponse::decode(header.closed.as_slice()).unwrap_or_default();
        let state = match header.state.as_str() {
            "closed" => pb::BatchState::Closed,
            "settling" => pb::BatchState::Settling,
            _ => pb::BatchState::Open,
        };
        Ok(pb::GetBatchTotalsResponse {
            terminal_id,
            batch_no,
            state: state as i32,
            totals: to_proto(&totals(&lines)),
            first_business_date: header.first_business_date,
            settlement_pending: false,
            result: header.settled,
            closed_at: closed.closed_at,
        })
    }
}
