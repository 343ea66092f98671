//! Terminal batch settlement 结算 (0500, batch upload 0320, close) on behalf of a terminal:
//! the gateway checks the operator, the settlement service compares, reconciles and closes.
//! Also the guard that keeps new transactions out of a closed batch.

use std::time::Duration;

use pos_domain::TerminalId;
use pos_proto::v1 as pb;
use pos_proto::v1::host_message::Body as HostBody;
use tracing::warn;

use crate::app::Gateway;
use crate::error::Result;

impl Gateway {
    fn settlement_call<T>(&self, message: T) -> tonic::Request<T> {
        let mut call = tonic::Request::new(message);
        call.set_timeout(Duration::from_millis(self.config.reversal_timeout_ms));
        pos_telemetry::grpc::inject_context(call.metadata_mut());
        call
    }

    /// `Some(words)` when `batch_no` is not the terminal's open batch (it was settled): the
    /// terminal must sign in again to learn the new one.
    pub async fn closed_batch(
        &self,
        terminal_id: &TerminalId,
        batch_no: u32,
    ) -> Result<Option<String>> {
        let open = self.repo.facts().open_batch(terminal_id.as_str()).await?;
        Ok(open.filter(|o| o.batch_no != batch_no).map(|o| {
            format!(
                "batch {batch_no:06} is settled: sign in again to continue in batch {:06}",
                o.batch_no
            )
        }))
    }

    /// `Some((batch, business date))` when the terminal's open batch began on an earlier
    /// business day: it must be settled (隔日强制结算) before new transactions.
    pub async fn forced_settlement(
        &self,
        terminal_id: &TerminalId,
    ) -> Result<Option<(u32, String)>> {
        let today = self.config.business_day().unwrap_or_default().today();
        let open = self.repo.facts().open_batch(terminal_id.as_str()).await?;
        Ok(open
            .filter(|o| !o.first_business_date.is_empty() && o.first_business_date < today)
            .map(|o| (o.batch_no, o.first_business_date)))
    }

    /// The terminal's totals (0500): balanced or not, with the host's.
    pub async fn settle(
        &self,
        terminal_id: &TerminalId,
        request: pb::SettlementRequest,
    ) -> Result<HostBody> {
        let merchant_id = self
            .repo
            .facts()
            .terminal(terminal_id.as_str())
            .await?
            .map(|t| t.merchant_id)
            .unwrap_or_default();
        let forced = self
            .forced_settlement(terminal_id)
            .await?
            .is_some_and(|(batch, _)| batch == request.batch_no);
        let call = pb::SettleBatchRequest {
            terminal_id: terminal_id.to_string(),
            merchant_id,
            batch_no: request.batch_no,
            terminal_totals: request.totals,
            operator_no: request.operator_no,
            forced,
            local_datetime: request.local_datetime,
        };
        let answer = match self
            .settlement
            .clone()
            .settle_batch(self.settlement_call(call))
            .await
        {
            Ok(answer) => answer.into_inner(),
            Err(status) => {
                warn!(%terminal_id, code = ?status.code(), detail = status.message(), "settlement not compared");
                return Ok(HostBody::Settlement(pb::SettlementResponse {
                    response_code: "96".to_owned(),
                    response_message: format!(
                        "settlement not done: {}; try again",
                        status.message()
                    ),
                    batch_no: request.batch_no,
                    ..pb::SettlementResponse::default()
                }));
            }
        };
        Ok(HostBody::Settlement(pb::SettlementResponse {
            response_code: answer.response_code,
            response_message: answer.response_message,
            batch_no: answer.batch_no,
            result: answer.result,
            host_totals: answer.host_totals,
        }))
    }

    /// One uploaded record (0320).
    pub async fn upload(
        &self,
        terminal_id: &TerminalId,
        upload: pb::BatchUploadRecord,
    ) -> Result<HostBody> {
        let stan = upload.record.as_ref().map_or(0, |r| r.stan);
        let call = pb::UploadBatchRequest {
            terminal_id: terminal_id.to_string(),
            batch_no: upload.batch_no,
            records: upload.record.into_iter().collect(),
        };
        let ack = |code: &str, message: String, reconciliation: i32| {
            HostBody::BatchUploadAck(pb::BatchUploadAck {
                response_code: code.to_owned(),
                response_message: message,
                batch_no: upload.batch_no,
                stan,
                reconciliation,
            })
        };
        Ok(
            match self
                .settlement
                .clone()
                .upload_batch(self.settlement_call(call))
                .await
            {
                Ok(answer) => {
                    let answer = answer.into_inner();
                    let reconciliation = answer.results.first().map_or(0, |r| r.reconciliation);
                    ack(
                        &answer.response_code,
                        answer.response_message,
                        reconciliation,
                    )
                }
                Err(status) => {
                    warn!(%terminal_id, code = ?status.code(), detail = status.message(), "upload not received");
                    ack(
                        "96",
                        format!("record not received: {}; send it again", status.message()),
                        0,
                    )
                }
            },
        )
    }

    /// The end of settlement: the batch closes and the next one opens.
    pub async fn close_batch(
        &self,
        terminal_id: &TerminalId,
        complete: pb::SettlementComplete,
    ) -> Result<HostBody> {
        let call = pb::CloseBatchRequest {
            terminal_id: terminal_id.to_string(),
            batch_no: complete.batch_no,
            operator_no: complete.operator_no,
            uploaded_records: complete.uploaded_records,
        };
        Ok(
            match self
                .settlement
                .clone()
                .close_batch(self.settlement_call(call))
                .await
            {
                Ok(answer) => {
                    let answer = answer.into_inner();
                    HostBody::SettlementComplete(pb::SettlementCompleteResponse {
                        response_code: answer.response_code,
                        response_message: answer.response_message,
                        closed_batch_no: answer.closed_batch_no,
                        next_batch_no: answer.next_batch_no,
                        result: answer.result,
                        host_totals: answer.host_totals,
                        difference_count: answer.difference_count,
                    })
                }
                Err(status) => {
                    warn!(%terminal_id, code = ?status.code(), detail = status.message(), "batch not closed");
                    HostBody::SettlementComplete(pb::SettlementCompleteResponse {
                        response_code: "96".to_owned(),
                        response_message: format!(
                            "batch not closed: {}; try again",
                            status.message()
                        ),
                        closed_batch_no: complete.batch_no,
                        ..pb::SettlementCompleteResponse::default()
                    })
                }
            },
        )
    }
}
