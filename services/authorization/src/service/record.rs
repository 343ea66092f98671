//! Step 5 of the flow: the decision's event first, then (once the broker has it) the
//! transaction record and the answer kept for retries; when the event cannot be written, "96"
//! and the transaction listed for the reversal service.

use std::time::{SystemTime, UNIX_EPOCH};

use pos_domain::ResponseCode;
use pos_events::{AggregateRef, Topic, new_envelope};
use pos_proto::v1 as pb;
use prost_types::Timestamp;
use tracing::{debug, error};

use super::{AGGREGATE, PRODUCER, Service};
use crate::decision::Decision;
use crate::idempotency::Record;
use crate::metrics;
use crate::model::Kind;

impl Service {
    /// Step 5: the event first; the answer only once the broker has it.
    pub(super) async fn record(&self, decision: Decision) -> pb::AuthorizationResponse {
        let aggregate = AggregateRef::new(AGGREGATE, &decision.transaction_id);
        let mut envelope = new_envelope(&aggregate, 1, PRODUCER, decision.payload());
        envelope.correlation_id = decision.transaction_id.clone();
        envelope.causation_id = format!("terminal:{}", decision.trace);
        let terminal_id = decision.trace.terminal_id.as_str();
        let published = self
            .publisher
            .publish(Topic::Transactions, terminal_id, &envelope)
            .await;
        let now = SystemTime::now();
        if let Err(e) = published {
            return self.unpublished(&decision, &e, now).await;
        }
        let answer = decision.response(Timestamp::from(now));
        metrics::DECISIONS
            .with_label_values(&[
                decision.kind.as_str(),
                decision.response_code(),
                decision.source_label(),
            ])
            .inc();
        debug!(
            transaction_id = %decision.transaction_id,
            trace = %decision.trace,
            kind = decision.kind.as_str(),
            code = decision.response_code(),
            "decided"
        );
        if let Err(e) = self.records.save(&decision.record()).await {
            error!(error = %e, transaction_id = %decision.transaction_id, "keeping the transaction record failed");
        }
        if let (true, Some(original)) = (decision.approved(), &decision.original) {
            let state = if decision.kind == Kind::Completion {
                "completed"
            } else {
                "voided"
            };
            if let Err(e) = self
                .records
                .settle_hold(&original.transaction_id, state, &decision.transaction_id)
                .await
            {
                error!(error = %e, transaction_id = %decision.transaction_id, "marking the pre-authorization failed");
            }
        }
        let kept = Record::done(&decision.request_digest, &decision.transaction_id, &answer);
        if let Err(e) = self.idempotency.finish(&decision.trace, &kept).await {
            // The event is the truth; a retry after the lease re-runs under the same id and
            // the issuer replays its answer.
            error!(error = %e, transaction_id = %decision.transaction_id, "keeping the answer for retries failed");
        }
        answer
    }

    /// The decision's event was not acknowledged: answer "96", keep nothing as approved, and
    /// list what the issuer may have done for the reversal service.
    async fn unpublished(
        &self,
        decision: &Decision,
        cause: &pos_events::BusError,
        now: SystemTime,
    ) -> pb::AuthorizationResponse {
        metrics::UNRECORDED.inc();
        metrics::DECISIONS
            .with_label_values(&[decision.kind.as_str(), "96", "system"])
            .inc();
        error!(
            error = %cause,
            transaction_id = %decision.transaction_id,
            issuer_code = decision.response_code(),
            "the decision could not be recorded; answering 96"
        );
        if decision.issuer_may_have_acted() {
            let millis = now
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            if let Err(e) = self
                .records
                .save_unrecorded(&decision.record(), millis)
                .await
            {
                error!(
                    error = %e,
                    transaction_id = %decision.transaction_id,
                    "listing the unrecorded transaction for reversal failed; reverse it by hand"
                );
            }
        }
        let answer = pb::AuthorizationResponse {
            response_code: ResponseCode::SystemMalfunction.code().to_owned(),
            response_message: "system malfunction: the transaction was not completed".to_owned(),
            transaction_id: decision.transaction_id.clone(),
            card: decision.card.clone(),
            business_date: decision.business_date.clone(),
            decided_at: Some(Timestamp::from(now)),
            ..pb::AuthorizationResponse::default()
        };
        let kept = Record::done(&decision.request_digest, &decision.transaction_id, &answer);
        if let Err(e) = self.idempotency.finish(&decision.trace, &kept).await {
            error!(error = %e, transaction_id = %decision.transaction_id, "keeping the answer for retries failed");
        }
        answer
    }
}
