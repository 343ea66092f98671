//! The tonic adapter: `Assess` for authorization (an internal call, behind mutual TLS when it
//! is configured), the blacklist and alert calls for operators (bearer credential, role
//! `risk`, every call audited on `pos.fraud.v1`).

use std::sync::Arc;

use pos_auth::OperatorGate;
use pos_proto::v1 as pb;
use pos_proto::v1::fraud_check_server::FraudCheck;
use tonic::{Request, Response, Status};

use crate::lists::{millis_of, now_ms};
use crate::service::Service;

/// The FraudCheck API.
#[derive(Debug, Clone)]
pub struct FraudApi {
    /// The flows.
    pub service: Arc<Service>,
    /// Operators of the blacklist and alerts.
    pub operators: OperatorGate,
}

fn offset(page: Option<&pb::PageRequest>) -> Result<(usize, usize), Status> {
    let page = page.cloned().unwrap_or_default();
    let offset = match page.page_token.as_str() {
        "" => 0,
        token => token
            .parse()
            .map_err(|_| Status::invalid_argument("page_token: not a token of this list"))?,
    };
    Ok((offset, page.page_size as usize))
}

fn next(position: Option<usize>) -> Option<pb::PageResponse> {
    Some(pb::PageResponse {
        next_page_token: position.map(|p| p.to_string()).unwrap_or_default(),
    })
}

#[tonic::async_trait]
impl FraudCheck for FraudApi {
    async fn assess(
        &self,
        request: Request<pb::AssessRequest>,
    ) -> Result<Response<pb::AssessResponse>, Status> {
        self.service
            .assess(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn add_blacklist_entry(
        &self,
        request: Request<pb::AddBlacklistEntryRequest>,
    ) -> Result<Response<pb::AddBlacklistEntryResponse>, Status> {
        use pb::add_blacklist_entry_request::Target;
        // The audit record names the target, never a PAN.
        let target = match &request.get_ref().target {
            Some(Target::Pan(_)) => ("card", "by PAN".to_owned()),
            Some(Target::CardToken(token)) => ("card", token.clone()),
            Some(Target::BinRange(range)) => {
                ("bin_range", format!("{}-{}", range.start, range.end))
            }
            Some(Target::MerchantId(id)) => ("merchant", id.clone()),
            Some(Target::TerminalId(id)) => ("terminal", id.clone()),
            None => ("blacklist", String::new()),
        };
        let service = self.service.clone();
        self.operators
            .call_as(
                request,
                "AddBlacklistEntry",
                target,
                async move |caller, r| {
                    let entry = service.add_entry(r, caller.actor()).await?;
                    Ok(pb::AddBlacklistEntryResponse { entry: Some(entry) })
                },
            )
            .await
    }

    async fn remove_blacklist_entry(
        &self,
        request: Request<pb::RemoveBlacklistEntryRequest>,
    ) -> Result<Response<pb::RemoveBlacklistEntryResponse>, Status> {
        let target = ("blacklist_entry", request.get_ref().entry_id.clone());
        let service = self.service.clone();
        self.operators
            .call_as(
                request,
                "RemoveBlacklistEntry",
                target,
                async move |caller, r| {
                    let entry = service.remove_entry(r, caller.actor()).await?;
                    Ok(pb::RemoveBlacklistEntryResponse { entry: Some(entry) })
                },
            )
            .await
    }

    async fn list_blacklist_entries(
        &self,
        request: Request<pb::ListBlacklistEntriesRequest>,
    ) -> Result<Response<pb::ListBlacklistEntriesResponse>, Status> {
        let service = self.service.clone();
        self.operators
            .call(
                request,
                "ListBlacklistEntries",
                ("blacklist", String::new()),
                async move |r| {
                    let kind = pb::BlacklistKind::try_from(r.kind)
                        .map_err(|_| Status::invalid_argument("kind: unknown"))?;
                    let (offset, size) = offset(r.page.as_ref())?;
                    let (entries, position) = service
                        .lists
                        .entries(kind, offset, size)
                        .await
                        .map_err(|e| Status::unavailable(e.to_string()))?;
                    Ok(pb::ListBlacklistEntriesResponse {
                        entries,
                        page: next(position),
                    })
                },
            )
            .await
    }

    async fn list_fraud_alerts(
        &self,
        request: Request<pb::ListFraudAlertsRequest>,
    ) -> Result<Response<pb::ListFraudAlertsResponse>, Status> {
        let target = ("merchant", request.get_ref().merchant_id.clone());
        let service = self.service.clone();
        self.operators
            .call(request, "ListFraudAlerts", target, async move |r| {
                let decision = pb::FraudDecision::try_from(r.decision)
                    .map_err(|_| Status::invalid_argument("decision: unknown"))?;
                let since = match &r.since {
                    Some(since) => millis_of(Some(since)),
                    None => now_ms().saturating_sub(24 * 3600 * 1000),
                };
                let (offset, size) = offset(r.page.as_ref())?;
                let (alerts, position) = service
                    .lists
                    .alerts(&r.merchant_id, since, decision, offset, size)
                    .await
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                Ok(pb::ListFraudAlertsResponse {
                    alerts,
                    page: next(position),
                })
            })
            .await
    }
}
