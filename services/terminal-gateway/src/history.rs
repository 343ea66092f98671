//! The transaction history projection (`pos-history`) run by the gateway, which serves it to
//! operators (GetTransactionHistory, ListTransactions).
//!
//! At start-up the projection is rebuilt from the first event of `pos.transactions.v1` when
//! its marker is missing (first start, or Redis was flushed), before anything is served; then
//! a consumer group follows the topic, so an ordinary restart resumes at the committed offsets.
//! Every gateway instance of a deployment joins the same group and applies its share of the
//! partitions into the shared Redis.

use anyhow::Context;
use pos_events::BusConfig;
use pos_history::{HistoryError, HistoryProjection};
use pos_proto::v1 as pb;
use pos_store::Store;
use tracing::{error, info};

use crate::error::{GatewayError, Result};

/// Consumer group of the history projection (within the deployment's topic namespace).
const GROUP: &str = "terminal-gateway-history";

/// Rebuilds the projection if needed and starts following the topic; returns the projection
/// for the read API.
pub async fn start(bus: &BusConfig, store: &Store) -> anyhow::Result<HistoryProjection> {
    let projection = HistoryProjection::new(store.clone());
    if let Some(events) = pos_history::rebuild_if_needed(&projection, bus)
        .await
        .context("rebuilding the transaction histories from the topic")?
    {
        info!(events, "transaction histories rebuilt from the topic");
    }
    let group = bus.group(GROUP);
    let follower = projection.clone();
    let bus = bus.clone();
    tokio::spawn(async move {
        if let Err(e) = pos_history::follow(&follower, &bus, &group, std::future::pending()).await {
            error!(error = %e, "the transaction history projection stopped");
        }
    });
    Ok(projection)
}

/// One transaction's history, by id, trace or RRN + business date.
pub async fn get(
    projection: &HistoryProjection,
    request: &pb::GetTransactionHistoryRequest,
) -> Result<pb::GetTransactionHistoryResponse> {
    let lookup = pos_history::lookup_of(request).map_err(error)?;
    let history = projection
        .find(&lookup)
        .await
        .map_err(error)?
        .ok_or_else(|| pos_registry::RegistryError::not_found("transaction", &lookup))?;
    Ok(pb::GetTransactionHistoryResponse {
        transaction: Some(history.summary),
        entries: history.entries,
    })
}

/// A page of transactions, newest first.
pub async fn list(
    projection: &HistoryProjection,
    request: &pb::ListTransactionsRequest,
) -> Result<pb::ListTransactionsResponse> {
    let filter = pos_history::filter_of(request).map_err(error)?;
    let page = request.page.clone().unwrap_or_default();
    let found = projection
        .list(&filter, page.page_size, &page.page_token)
        .await
        .map_err(error)?;
    Ok(pb::ListTransactionsResponse {
        transactions: found.transactions,
        page: Some(pb::PageResponse {
            next_page_token: found.next_page_token.unwrap_or_default(),
        }),
    })
}

/// The audit target of a history request: the id, trace or RRN asked for.
pub fn target(request: &pb::GetTransactionHistoryRequest) -> (&'static str, String) {
    use pb::get_transaction_history_request::Lookup as L;
    let id = match &request.lookup {
        Some(L::TransactionId(id)) => id.clone(),
        Some(L::Trace(t)) => format!("{}:{:06}:{:06}", t.terminal_id, t.batch_no, t.stan),
        Some(L::Rrn(r)) => format!("rrn:{}:{}", r.business_date, r.rrn),
        None => String::new(),
    };
    ("transaction", id)
}

fn error(error: HistoryError) -> GatewayError {
    match error {
        HistoryError::Invalid(message) => GatewayError::BadRequest(message),
        HistoryError::Store(e) => GatewayError::Store(e),
        HistoryError::Bus(e) => GatewayError::Bus(e),
        HistoryError::Corrupt { .. } => GatewayError::Internal(error.to_string()),
    }
}
