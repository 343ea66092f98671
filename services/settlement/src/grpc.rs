//! The tonic adapter: validation of the terminal and batch, a span parented on the caller's
//! trace context, errors mapped in `error`. Merchant settlement calls are operators' calls:
//! authenticated, role-checked and audited by the operator gate (`pos_auth::OperatorGate`,
//! role `settlement`), errors mapped in `merchant`.

use std::sync::Arc;

use pos_auth::OperatorGate;
use pos_proto::v1 as pb;
use pos_proto::v1::settlement_server::Settlement;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::error::SettlementError;
use crate::merchant::MerchantSettlements;
use crate::service::Service;

/// The gRPC face of [`Service`] (batches) and [`MerchantSettlements`], with the operators who
/// may call the latter.
#[derive(Debug, Clone)]
pub struct SettlementApi(
    pub Arc<Service>,
    pub Arc<MerchantSettlements>,
    pub OperatorGate,
);

fn span<T>(request: &Request<T>, name: &'static str) -> tracing::Span {
    let parent = pos_telemetry::grpc::extract_context(request.metadata());
    let span = tracing::info_span!("settlement", call = name);
    let _ = span.set_parent(parent);
    span
}

fn check(terminal_id: &str, batch_no: u32, open_allowed: bool) -> Result<(), SettlementError> {
    if terminal_id.len() != 8 || !terminal_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(SettlementError::Malformed(format!(
            "terminal id {terminal_id:?} is not 8 letters or digits"
        )));
    }
    let open = open_allowed && batch_no == 0;
    if !open && !(1..=999_999).contains(&batch_no) {
        return Err(SettlementError::Malformed(format!(
            "batch number {batch_no} is not 1..999999"
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl Settlement for SettlementApi {
    async fn settle_batch(
        &self,
        request: Request<pb::SettleBatchRequest>,
    ) -> Result<Response<pb::SettleBatchResponse>, Status> {
        let span = span(&request, "settle_batch");
        let request = request.into_inner();
        check(&request.terminal_id, request.batch_no, false)?;
        Ok(Response::new(
            self.0.settle(request).instrument(span).await?,
        ))
    }

    async fn upload_batch(
        &self,
        request: Request<pb::UploadBatchRequest>,
    ) -> Result<Response<pb::UploadBatchResponse>, Status> {
        let span = span(&request, "upload_batch");
        let request = request.into_inner();
        check(&request.terminal_id, request.batch_no, false)?;
        Ok(Response::new(
            self.0.upload(request).instrument(span).await?,
        ))
    }

    async fn close_batch(
        &self,
        request: Request<pb::CloseBatchRequest>,
    ) -> Result<Response<pb::CloseBatchResponse>, Status> {
        let span = span(&request, "close_batch");
        let request = request.into_inner();
        check(&request.terminal_id, request.batch_no, false)?;
        Ok(Response::new(self.0.close(request).instrument(span).await?))
    }

    async fn get_batch_totals(
        &self,
        request: Request<pb::GetBatchTotalsRequest>,
    ) -> Result<Response<pb::GetBatchTotalsResponse>, Status> {
        let request = request.into_inner();
        check(&request.terminal_id, request.batch_no, true)?;
        Ok(Response::new(self.0.totals(request).await?))
    }

    async fn run_merchant_settlement(
        &self,
        request: Request<pb::RunMerchantSettlementRequest>,
    ) -> Result<Response<pb::RunMerchantSettlementResponse>, Status> {
        let span = span(&request, "run_merchant_settlement");
        let r = request.get_ref();
        let merchant = if r.merchant_id.is_empty() {
            "*"
        } else {
            &r.merchant_id
        };
        let target = format!("{merchant}:{}", r.business_date);
        self.2
            .call(
                request,
                "RunMerchantSettlement",
                ("merchant_settlement", target),
                async |r| Ok(self.1.run(r).await?),
            )
            .instrument(span)
            .await
    }

    async fn get_merchant_settlement(
        &self,
        request: Request<pb::GetMerchantSettlementRequest>,
    ) -> Result<Response<pb::GetMerchantSettlementResponse>, Status> {
        let span = span(&request, "get_merchant_settlement");
        let r = request.get_ref();
        let target = format!("{}:{}", r.merchant_id, r.business_date);
        self.2
            .call(
                request,
                "GetMerchantSettlement",
                ("merchant_settlement", target),
                async |r| Ok(self.1.get(r).await?),
            )
            .instrument(span)
            .await
    }

    async fn list_settlements(
        &self,
        request: Request<pb::ListSettlementsRequest>,
    ) -> Result<Response<pb::ListSettlementsResponse>, Status> {
        let span = span(&request, "list_settlements");
        let r = request.get_ref();
        let merchant = if r.merchant_id.is_empty() {
            "*"
        } else {
            &r.merchant_id
        };
        let target = format!("{merchant}:{}..{}", r.from_date, r.to_date);
        self.2
            .call(
                request,
                "ListSettlements",
                ("merchant_settlement", target),
                async |r| Ok(self.1.list(r).await?),
            )
            .instrument(span)
            .await
    }
}
