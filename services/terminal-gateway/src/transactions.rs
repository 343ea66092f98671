//! Financial requests from terminals (purchase, balance inquiry, pre-authorization, its
//! completion and void): the gateway checks that a logged-in operator sends them, hands them to
//! the authorization service over one long-lived channel, and turns the decision into the
//! terminal's answer. The card data passes through in memory only.

use std::time::{Duration, SystemTime};

use pos_domain::TerminalId;
use pos_facts::SessionKeys;
use pos_proto::v1 as pb;
use pos_proto::v1::host_message::Body as HostBody;
use pos_proto::v1::terminal_message::Body;
use tracing::warn;

use crate::app::Gateway;
use crate::error::{GatewayError, Result};

/// The fields every financial request has.
struct Common {
    transaction_type: pb::TransactionType,
    batch_no: u32,
    stan: u32,
    operator_no: String,
    amount: Option<pb::Money>,
    card: Option<pb::CardData>,
    pin_block: Vec<u8>,
    local_datetime: String,
    original: Option<pb::OriginalTransactionRef>,
}

fn original(approval_code: String, business_date: String) -> Option<pb::OriginalTransactionRef> {
    Some(pb::OriginalTransactionRef {
        approval_code,
        business_date,
        ..pb::OriginalTransactionRef::default()
    })
}

fn common(body: Body) -> Result<Common> {
    use pb::TransactionType as T;
    Ok(match body {
        Body::Purchase(r) => Common {
            transaction_type: T::Purchase,
            batch_no: r.batch_no,
            stan: r.stan,
            operator_no: r.operator_no,
            amount: r.amount,
            card: r.card,
            pin_block: r.pin_block,
            local_datetime: r.local_datetime,
            original: None,
        },
        Body::BalanceInquiry(r) => Common {
            transaction_type: T::BalanceInquiry,
            batch_no: r.batch_no,
            stan: r.stan,
            operator_no: r.operator_no,
            amount: None,
            card: r.card,
            pin_block: r.pin_block,
            local_datetime: r.local_datetime,
            original: None,
        },
        Body::PreAuth(r) => Common {
            transaction_type: T::PreAuth,
            batch_no: r.batch_no,
            stan: r.stan,
            operator_no: r.operator_no,
            amount: r.amount,
            card: r.card,
            pin_block: r.pin_block,
            local_datetime: r.local_datetime,
            original: None,
        },
        Body::PreAuthCompletion(r) => Common {
            transaction_type: T::PreAuthCompletion,
            batch_no: r.batch_no,
            stan: r.stan,
            operator_no: r.operator_no,
            amount: r.amount,
            card: r.card,
            pin_block: r.pin_block,
            local_datetime: r.local_datetime,
            original: original(r.original_approval_code, r.original_date),
        },
        Body::PreAuthVoid(r) => Common {
            transaction_type: T::PreAuthVoid,
            batch_no: r.batch_no,
            stan: r.stan,
            operator_no: r.operator_no,
            amount: r.amount,
            card: r.card,
            pin_block: r.pin_block,
            local_datetime: r.local_datetime,
            original: original(r.original_approval_code, r.original_date),
        },
        _ => return Err(GatewayError::Internal("not a financial request".to_owned())),
    })
}

fn declined(
    request: &Common,
    terminal_id: &TerminalId,
    code: &str,
    message: impl Into<String>,
) -> HostBody {
    HostBody::Transaction(pb::TransactionResponse {
        response_code: code.to_owned(),
        response_message: message.into(),
        transaction_type: request.transaction_type as i32,
        amount: request.amount.clone(),
        terminal_id: terminal_id.to_string(),
        batch_no: request.batch_no,
        stan: request.stan,
        operator_no: request.operator_no.clone(),
        host_time: Some(prost_types::Timestamp::from(SystemTime::now())),
        ..pb::TransactionResponse::default()
    })
}

impl Gateway {
    /// Authorizes a financial request of a signed-in terminal.
    pub async fn authorize(
        &self,
        terminal_id: &TerminalId,
        keys: &SessionKeys,
        body: Body,
    ) -> Result<HostBody> {
        let request = common(body)?;
        if !self
            .hot
            .operator_logged_in(terminal_id.as_str(), &keys.session_id, &request.operator_no)
            .await?
        {
            let text = format!(
                "operator {:?} is not logged in on this terminal",
                request.operator_no
            );
            return Ok(declined(&request, terminal_id, "12", text));
        }
        if let Some(text) = self.closed_batch(terminal_id, request.batch_no).await? {
            return Ok(declined(&request, terminal_id, "12", text));
        }
        let Some(terminal) = self.repo.facts().terminal(terminal_id.as_str()).await? else {
            return Ok(declined(
                &request,
                terminal_id,
                "97",
                "terminal not registered",
            ));
        };
        let entry_mode = request.card.as_ref().map_or(0, |c| c.entry_mode);
        let call = pb::AuthorizationRequest {
            transaction_type: request.transaction_type as i32,
            terminal_id: terminal_id.to_string(),
            batch_no: request.batch_no,
            stan: request.stan,
            merchant_id: terminal.merchant_id.clone(),
            operator_no: request.operator_no.clone(),
            amount: request.amount.clone(),
            card: request.card.clone(),
            pin_block: request.pin_block.clone(),
            pin_key: Some(pb::PinKeyRef {
                terminal_id: terminal_id.to_string(),
                key_version: keys.key_version,
            }),
            local_datetime: request.local_datetime.clone(),
            original: request.original.clone(),
            received_at: Some(prost_types::Timestamp::from(SystemTime::now())),
            session_id: keys.session_id.clone(),
        };
        let mut rpc = tonic::Request::new(call);
        rpc.set_timeout(Duration::from_millis(self.config.authorization_timeout_ms));
        pos_telemetry::grpc::inject_context(rpc.metadata_mut());
        let answer = match self.authorization.clone().authorize(rpc).await {
            Ok(answer) => answer.into_inner(),
            Err(status) => {
                warn!(terminal_id = %terminal_id, code = ?status.code(), detail = status.message(), "authorization service failed");
                // A malformed request moved nothing; a balance inquiry moves nothing either.
                let unknown = status.code() != tonic::Code::InvalidArgument
                    && request.transaction_type != pb::TransactionType::BalanceInquiry;
                if unknown
                    && !self
                        .reverse_unknown(
                            terminal_id,
                            (request.batch_no, request.stan),
                            request.transaction_type as i32,
                            request.amount.clone(),
                            &request.operator_no,
                        )
                        .await
                {
                    return Err(GatewayError::Unanswered(
                        "authorization outcome unknown and the host reversal failed".to_owned(),
                    ));
                }
                return Ok(declined(
                    &request,
                    terminal_id,
                    "96",
                    "system malfunction; the transaction was not completed (nothing was charged)",
                ));
            }
        };
        let merchant = self.repo.facts().merchant(&terminal.merchant_id).await?;
        Ok(HostBody::Transaction(pb::TransactionResponse {
            response_code: answer.response_code,
            response_message: answer.response_message,
            transaction_type: request.transaction_type as i32,
            rrn: answer.rrn,
            approval_code: answer.approval_code,
            amount: answer.amount.or(request.amount),
            balance: answer.balance,
            card: answer.card,
            merchant_id: terminal.merchant_id,
            merchant_name: merchant.map(|m| m.name).unwrap_or_default(),
            terminal_id: terminal_id.to_string(),
            batch_no: request.batch_no,
            stan: request.stan,
            operator_no: request.operator_no,
            entry_mode,
            host_time: Some(prost_types::Timestamp::from(SystemTime::now())),
            transaction_id: answer.transaction_id,
            settlement_date: answer.business_date,
            original: answer.original,
            emv_data: answer.emv_data,
        }))
    }
}
