//! The tonic adapter: each call runs under a span parented on the caller's trace context;
//! errors map to gRPC codes in `error`.

use std::sync::Arc;

use pos_facts::txn::TxnRecord;
use pos_proto::v1 as pb;
use pos_proto::v1::reversal_server::Reversal;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::error::ReversalError;
use crate::service::{ReversalAsk, Service, validate_trace};

/// The gRPC face of [`Service`].
#[derive(Debug, Clone)]
pub struct ReversalApi(pub Arc<Service>);

fn span<T>(request: &Request<T>, name: &'static str) -> tracing::Span {
    let parent = pos_telemetry::grpc::extract_context(request.metadata());
    let span = tracing::info_span!("reversal", call = name);
    let _ = span.set_parent(parent);
    span
}

#[tonic::async_trait]
impl Reversal for ReversalApi {
    async fn reverse(
        &self,
        request: Request<pb::ReverseRequest>,
    ) -> Result<Response<pb::ReverseResponse>, Status> {
        let span = span(&request, "reverse");
        let request = request.into_inner();
        let original = request
            .original
            .clone()
            .ok_or_else(|| ReversalError::Malformed("a reversal names its original".to_owned()))?;
        validate_trace(&original)?;
        if !matches!(request.reason_code.as_str(), "98" | "A0" | "06") {
            return Err(ReversalError::Malformed(format!(
                "reversal reason {:?}: expected 98 (no response), A0 (MAC failure) or 06 (repeat after a failure)",
                request.reason_code
            ))
            .into());
        }
        let ask = ReversalAsk {
            trace: (original.terminal_id, original.batch_no, original.stan),
            reason: request.reason_code,
            initiator: pb::ReversalInitiator::Terminal,
            repeat: request.repeat,
            amount: request.amount,
            merchant_id: request.merchant_id,
            original_type: request.original_type,
        };
        let done = self.0.reverse(&ask, None).instrument(span).await?;
        Ok(Response::new(pb::ReverseResponse {
            response_code: done.code.code().to_owned(),
            response_message: done.message,
            outcome: done.outcome as i32,
            reversal_id: done.reversal_id,
            original: Some(done.original),
        }))
    }

    async fn host_reverse(
        &self,
        request: Request<pb::HostReverseRequest>,
    ) -> Result<Response<pb::HostReverseResponse>, Status> {
        let span = span(&request, "host_reverse");
        let request = request.into_inner();
        if request.transaction_id.is_empty() || request.reason.is_empty() {
            return Err(Status::invalid_argument(
                "a host reversal names the transaction id and a reason",
            ));
        }
        let service = Arc::clone(&self.0);
        let record = service
            .records
            .get(&request.transaction_id)
            .await
            .map_err(ReversalError::from)?;
        let Some(record) = record else {
            return Ok(Response::new(pb::HostReverseResponse {
                response_code: "00".to_owned(),
                response_message: "original not found: nothing to undo".to_owned(),
                outcome: pb::ReversalOutcome::OriginalNotFound as i32,
                reversal_id: String::new(),
                original: Some(pb::OriginalTransactionRef {
                    transaction_id: request.transaction_id,
                    ..pb::OriginalTransactionRef::default()
                }),
            }));
        };
        let ask = host_ask(&record, &request.reason);
        let done = service.reverse(&ask, Some(record)).instrument(span).await?;
        Ok(Response::new(pb::HostReverseResponse {
            response_code: done.code.code().to_owned(),
            response_message: done.message,
            outcome: done.outcome as i32,
            reversal_id: done.reversal_id,
            original: Some(done.original),
        }))
    }

    async fn void(
        &self,
        request: Request<pb::ReversalVoidRequest>,
    ) -> Result<Response<pb::ReversalVoidResponse>, Status> {
        let span = span(&request, "void");
        let answer = self.0.void(request.into_inner()).instrument(span).await?;
        Ok(Response::new(answer))
    }

    async fn refund(
        &self,
        request: Request<pb::ReversalRefundRequest>,
    ) -> Result<Response<pb::ReversalRefundResponse>, Status> {
        let span = span(&request, "refund");
        let answer = self.0.refund(request.into_inner()).instrument(span).await?;
        Ok(Response::new(answer))
    }
}

/// A host reversal of `record` for `reason`.
pub fn host_ask(record: &TxnRecord, reason: &str) -> ReversalAsk {
    ReversalAsk {
        trace: (record.terminal_id.clone(), record.batch_no, record.stan),
        reason: reason.to_owned(),
        initiator: pb::ReversalInitiator::Host,
        repeat: false,
        amount: crate::facts::record_amount(record),
        merchant_id: record.merchant_id.clone(),
        original_type: Service::type_of(record),
    }
}
