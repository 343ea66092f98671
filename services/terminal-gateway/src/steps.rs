//! Requests the reversal service decides: reversals 冲正, voids 撤销 and refunds 退货 from
//! terminals, the gateway's own reversal of a request whose authorization outcome it never
//! learned, and the record of an approval it could not hand to its terminal
//! (`ApprovalUndelivered`, which the reversal service then reverses). The gateway checks the
//! operator (and the supervisor's password, in `connect`), the reversal service the rest.

use std::time::{Duration, SystemTime};

use pos_domain::TerminalId;
use pos_events::{AggregateRef, Payload, Topic, new_envelope};
use pos_proto::v1 as pb;
use pos_proto::v1::host_message::Body as HostBody;
use tracing::{info, warn};

use crate::app::Gateway;
use crate::error::Result;

/// Aggregate type of the gateway's delivery records.
pub const DELIVERY_AGGREGATE: &str = "delivery";

/// Whether an answer is an approval that moved money or a hold (what an undelivered approval
/// must have reversed).
pub fn reversible_approval(answer: &HostBody) -> Option<&pb::TransactionResponse> {
    use pb::TransactionType as T;
    match answer {
        HostBody::Transaction(t)
            if t.response_code == "00"
                && matches!(
                    T::try_from(t.transaction_type),
                    Ok(T::Purchase | T::PreAuth | T::PreAuthCompletion | T::PreAuthVoid)
                ) =>
        {
            Some(t)
        }
        _ => None,
    }
}

fn now() -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp::from(SystemTime::now()))
}

impl Gateway {
    fn reversal_call<T>(&self, message: T) -> tonic::Request<T> {
        let mut call = tonic::Request::new(message);
        call.set_timeout(Duration::from_millis(self.config.reversal_timeout_ms));
        pos_telemetry::grpc::inject_context(call.metadata_mut());
        call
    }

    async fn merchant_of(&self, terminal_id: &TerminalId) -> Result<(String, String)> {
        let Some(terminal) = self.repo.facts().terminal(terminal_id.as_str()).await? else {
            return Ok((String::new(), String::new()));
        };
        let name = self
            .repo
            .facts()
            .merchant(&terminal.merchant_id)
            .await?
            .map(|m| m.name)
            .unwrap_or_default();
        Ok((terminal.merchant_id, name))
    }

    /// A terminal's reversal 冲正 (0400/0401).
    pub async fn reverse(
        &self,
        terminal_id: &TerminalId,
        request: pb::ReversalRequest,
    ) -> Result<HostBody> {
        let (merchant_id, _) = self.merchant_of(terminal_id).await?;
        let call = pb::ReverseRequest {
            original: Some(pb::TerminalTraceRef {
                terminal_id: terminal_id.to_string(),
                batch_no: request.original_batch_no,
                stan: request.original_stan,
            }),
            original_type: request.original_type,
            amount: request.amount,
            reason_code: request.reason_code,
            repeat: request.repeat,
            operator_no: request.operator_no,
            merchant_id,
            original_local_datetime: request.original_local_datetime,
            received_at: now(),
        };
        let answer = match self
            .reversal
            .clone()
            .reverse(self.reversal_call(call))
            .await
        {
            Ok(answer) => answer.into_inner(),
            Err(status) => {
                warn!(%terminal_id, code = ?status.code(), detail = status.message(), "reversal service failed");
                let code = if status.code() == tonic::Code::InvalidArgument {
                    "30"
                } else {
                    "96"
                };
                return Ok(HostBody::Reversal(pb::ReversalResponse {
                    response_code: code.to_owned(),
                    response_message: format!(
                        "reversal not done: {}; send it again",
                        status.message()
                    ),
                    original_batch_no: request.original_batch_no,
                    original_stan: request.original_stan,
                    ..pb::ReversalResponse::default()
                }));
            }
        };
        Ok(HostBody::Reversal(pb::ReversalResponse {
            response_code: answer.response_code,
            response_message: answer.response_message,
            original_batch_no: request.original_batch_no,
            original_stan: request.original_stan,
            outcome: answer.outcome,
            transaction_id: answer
                .original
                .map(|o| o.transaction_id)
                .unwrap_or_default(),
        }))
    }

    /// Reverses a financial request whose authorization outcome the gateway never learned
    /// (the authorization call failed or timed out); `true` when the reversal service confirmed.
    pub async fn reverse_unknown(
        &self,
        terminal_id: &TerminalId,
        trace: (u32, u32),
        transaction_type: i32,
        amount: Option<pb::Money>,
        operator_no: &str,
    ) -> bool {
        let request = pb::ReversalRequest {
            original_batch_no: trace.0,
            original_stan: trace.1,
            original_type: transaction_type,
            amount,
            reason_code: "98".to_owned(),
            repeat: false,
            operator_no: operator_no.to_owned(),
            ..pb::ReversalRequest::default()
        };
        match self.reverse(terminal_id, request).await {
            Ok(HostBody::Reversal(answer)) if answer.response_code == "00" => {
                info!(%terminal_id, batch_no = trace.0, stan = trace.1, "request of unknown outcome reversed by the gateway");
                true
            }
            Ok(_) => false,
            Err(error) => {
                warn!(%error, "reversing a request of unknown outcome");
                false
            }
        }
    }

    /// A void 撤销, authorized by `authorized_by` (checked by the caller).
    pub async fn void(
        &self,
        terminal_id: &TerminalId,
        request: pb::VoidRequest,
        authorized_by: String,
    ) -> Result<HostBody> {
        let (merchant_id, merchant_name) = self.merchant_of(terminal_id).await?;
        let original = request.original.clone().map(|o| match o {
            pb::void_request::Original::OriginalStan(stan) => {
                pb::reversal_void_request::Original::OriginalStan(stan)
            }
            pb::void_request::Original::OriginalRrn(rrn) => {
                pb::reversal_void_request::Original::OriginalRrn(rrn)
            }
        });
        let call = pb::ReversalVoidRequest {
            trace: Some(pb::TerminalTraceRef {
                terminal_id: terminal_id.to_string(),
                batch_no: request.batch_no,
                stan: request.stan,
            }),
            merchant_id: merchant_id.clone(),
            operator_no: request.operator_no.clone(),
            authorized_by_operator_no: authorized_by,
            original,
            amount: request.amount.clone(),
            card: request.card.clone(),
            local_datetime: request.local_datetime.clone(),
        };
        let mut base = pb::TransactionResponse {
            transaction_type: pb::TransactionType::PurchaseVoid as i32,
            amount: request.amount.clone(),
            merchant_id,
            merchant_name,
            terminal_id: terminal_id.to_string(),
            batch_no: request.batch_no,
            stan: request.stan,
            operator_no: request.operator_no.clone(),
            entry_mode: request.card.as_ref().map_or(0, |c| c.entry_mode),
            host_time: now(),
            ..pb::TransactionResponse::default()
        };
        if let Some(text) = self.closed_batch(terminal_id, request.batch_no).await? {
            base.response_code = "12".to_owned();
            base.response_message = text;
            return Ok(HostBody::Transaction(base));
        }
        match self.reversal.clone().void(self.reversal_call(call)).await {
            Ok(answer) => {
                let answer = answer.into_inner();
                base.response_code = answer.response_code;
                base.response_message = answer.response_message;
                if answer.transaction_type != 0 {
                    base.transaction_type = answer.transaction_type;
                }
                base.rrn = answer.rrn;
                base.approval_code = answer.approval_code;
                base.amount = answer.amount.or(base.amount);
                base.card = answer.card;
                base.transaction_id = answer.void_id;
                base.settlement_date = answer.business_date;
                base.original = answer.original;
            }
            Err(status) => {
                warn!(%terminal_id, code = ?status.code(), detail = status.message(), "void not decided");
                base.response_code = refusal_of(&status).to_owned();
                base.response_message =
                    format!("void not completed: {}; send it again", status.message());
            }
        }
        Ok(HostBody::Transaction(base))
    }

    /// A refund 退货, authorized by `authorized_by` (checked by the caller).
    pub async fn refund(
        &self,
        terminal_id: &TerminalId,
        request: pb::RefundRequest,
        authorized_by: String,
    ) -> Result<HostBody> {
        let (merchant_id, merchant_name) = self.merchant_of(terminal_id).await?;
        let call = pb::ReversalRefundRequest {
            trace: Some(pb::TerminalTraceRef {
                terminal_id: terminal_id.to_string(),
                batch_no: request.batch_no,
                stan: request.stan,
            }),
            merchant_id: merchant_id.clone(),
            operator_no: request.operator_no.clone(),
            authorized_by_operator_no: authorized_by,
            original_rrn: request.original_rrn.clone(),
            original_date: request.original_date.clone(),
            amount: request.amount.clone(),
            card: request.card.clone(),
            local_datetime: request.local_datetime.clone(),
        };
        let mut base = pb::TransactionResponse {
            transaction_type: pb::TransactionType::Refund as i32,
            amount: request.amount.clone(),
            merchant_id,
            merchant_name,
            terminal_id: terminal_id.to_string(),
            batch_no: request.batch_no,
            stan: request.stan,
            operator_no: request.operator_no.clone(),
            entry_mode: request.card.as_ref().map_or(0, |c| c.entry_mode),
            host_time: now(),
            ..pb::TransactionResponse::default()
        };
        if let Some(text) = self.closed_batch(terminal_id, request.batch_no).await? {
            base.response_code = "12".to_owned();
            base.response_message = text;
            return Ok(HostBody::Transaction(base));
        }
        match self.reversal.clone().refund(self.reversal_call(call)).await {
            Ok(answer) => {
                let answer = answer.into_inner();
                base.response_code = answer.response_code;
                base.response_message = answer.response_message;
                base.rrn = answer.rrn;
                base.approval_code = answer.approval_code;
                base.amount = answer.amount.or(base.amount);
                base.card = answer.card;
                base.transaction_id = answer.refund_id;
                base.settlement_date = answer.business_date;
                base.original = answer.original;
            }
            Err(status) => {
                warn!(%terminal_id, code = ?status.code(), detail = status.message(), "refund not decided");
                base.response_code = refusal_of(&status).to_owned();
                base.response_message =
                    format!("refund not completed: {}; send it again", status.message());
            }
        }
        Ok(HostBody::Transaction(base))
    }

    /// Records that an approval could not be handed to its terminal; the reversal service
    /// reverses it. Logged when even that fails (the terminal's own reversal is then the
    /// remaining safety net).
    pub async fn approval_undelivered(&self, session_id: &str, answer: &pb::TransactionResponse) {
        let facts = pb::TransactionFacts {
            transaction_id: answer.transaction_id.clone(),
            transaction_type: answer.transaction_type,
            merchant_id: answer.merchant_id.clone(),
            trace: Some(pb::TerminalTraceRef {
                terminal_id: answer.terminal_id.clone(),
                batch_no: answer.batch_no,
                stan: answer.stan,
            }),
            operator_no: answer.operator_no.clone(),
            amount: answer.amount.clone(),
            card: answer.card.clone(),
            entry_mode: answer.entry_mode,
            rrn: answer.rrn.clone(),
            approval_code: answer.approval_code.clone(),
            response_code: answer.response_code.clone(),
            response_message: answer.response_message.clone(),
            original: answer.original.clone(),
            business_date: answer.settlement_date.clone(),
            ..pb::TransactionFacts::default()
        };
        let event = pb::ApprovalUndelivered {
            txn: Some(facts),
            session_id: session_id.to_owned(),
            reason: "the terminal's stream closed before the approval was sent".to_owned(),
        };
        let envelope = new_envelope(
            &AggregateRef::new(DELIVERY_AGGREGATE, &answer.transaction_id),
            1,
            "terminal-gateway",
            Payload::ApprovalUndelivered(event),
        );
        match self
            .publisher
            .publish(Topic::Transactions, &answer.terminal_id, &envelope)
            .await
        {
            Ok(_) => {
                warn!(terminal_id = %answer.terminal_id, transaction_id = %answer.transaction_id, "approval undelivered: recorded for a host reversal");
            }
            Err(error) => {
                warn!(%error, transaction_id = %answer.transaction_id, "recording an undelivered approval failed");
            }
        }
    }
}

/// The response code a terminal gets when the reversal service gave no decision.
fn refusal_of(status: &tonic::Status) -> &'static str {
    match status.code() {
        tonic::Code::InvalidArgument => "30",
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => "91",
        _ => "96",
    }
}
