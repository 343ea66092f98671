//! The tonic adapter: proto requests become commands (malformed ones INVALID_ARGUMENT, in
//! `TryFrom`s here), answers become proto responses, errors become `Status` (in
//! [`crate::error`]). Every call runs in a span parented on the caller's trace context and is
//! timed.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use pos_domain::{Currency, Expiry, Money, ResponseCode};
use pos_proto::v1::{
    self as pb, CardFundingType, IssuerAuthorizeRequest, IssuerAuthorizeResponse, IssuerOperation,
    IssuerRefundRequest, IssuerRefundResponse, IssuerReverseRequest, IssuerReverseResponse,
    PinBlockFormat,
};
use tonic::{Request, Response, Status};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::card::Funding;
use crate::checks::{Operation, Presented};
use crate::error::IssuerError;
use crate::metrics;
use crate::pin::{BlockFormat, PinBlock};
use crate::service::{
    Amount, Answer, AuthorizeCommand, CardNumber, Issuer, RefundCommand, ReverseAnswer,
    ReverseCommand,
};

/// Largest amount in minor units: ISO 8583 DE4 is 12 digits.
const MAX_MINOR_UNITS: i64 = 999_999_999_999;
/// Longest accepted acquirer id (UUIDs are 36 characters).
const MAX_ID_LEN: usize = 64;

/// The Issuer gRPC service.
#[derive(Debug, Clone)]
pub struct IssuerService(pub Arc<Issuer>);

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::issuer_server::Issuer for IssuerService {
    async fn authorize(
        &self,
        request: Request<IssuerAuthorizeRequest>,
    ) -> Reply<IssuerAuthorizeResponse> {
        let span = tracing::info_span!("issuer.authorize");
        let _ = span.set_parent(pos_telemetry::grpc::extract_context(request.metadata()));
        timed("Authorize", async {
            let command = AuthorizeCommand::try_from(request.into_inner())?;
            let answer = self.0.authorize(&command).await?;
            let delay = self.0.answer_delay();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(authorize_response(answer))
        })
        .instrument(span)
        .await
    }

    async fn reverse(
        &self,
        request: Request<IssuerReverseRequest>,
    ) -> Reply<IssuerReverseResponse> {
        let span = tracing::info_span!("issuer.reverse");
        let _ = span.set_parent(pos_telemetry::grpc::extract_context(request.metadata()));
        timed("Reverse", async {
            let command = ReverseCommand::try_from(request.into_inner())?;
            let answer = self.0.reverse(&command).await?;
            Ok(reverse_response(answer))
        })
        .instrument(span)
        .await
    }

    async fn refund(&self, request: Request<IssuerRefundRequest>) -> Reply<IssuerRefundResponse> {
        let span = tracing::info_span!("issuer.refund");
        let _ = span.set_parent(pos_telemetry::grpc::extract_context(request.metadata()));
        timed("Refund", async {
            let command = RefundCommand::try_from(request.into_inner())?;
            let answer = self.0.refund(&command).await?;
            Ok(refund_response(answer))
        })
        .instrument(span)
        .await
    }
}

/// Runs a call, converts its error, and observes its latency.
async fn timed<T>(
    method: &'static str,
    call: impl Future<Output = Result<T, IssuerError>>,
) -> Reply<T> {
    let started = Instant::now();
    let result = call.await.map(Response::new).map_err(Status::from);
    let status = match &result {
        Ok(_) => "ok".to_owned(),
        Err(status) => format!("{:?}", status.code()).to_lowercase(),
    };
    metrics::LATENCY
        .with_label_values(&[method, &status])
        .observe(started.elapsed().as_secs_f64());
    result
}

fn bad(message: impl Into<String>) -> IssuerError {
    IssuerError::BadRequest(message.into())
}

/// An acquirer id: 1 to 64 letters, digits, '-', '_', '.', ':'.
fn id(field: &str, value: &str) -> Result<String, IssuerError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(bad(format!(
            "{field} must be 1 to {MAX_ID_LEN} letters, digits, '-', '_', '.' or ':'"
        )))
    }
}

/// An optional acquirer id ("" when absent).
fn optional_id(field: &str, value: &str) -> Result<String, IssuerError> {
    if value.is_empty() {
        Ok(String::new())
    } else {
        id(field, value)
    }
}

/// A request amount: > 0, at most 12 digits, known currency.
fn amount(field: &str, money: Option<&pb::Money>) -> Result<Option<Amount>, IssuerError> {
    let Some(money) = money else { return Ok(None) };
    let currency = Currency::parse(&money.currency)
        .map_err(|_| bad(format!("{field}.currency must be a known ISO 4217 code")))?;
    if !(1..=MAX_MINOR_UNITS).contains(&money.minor_units) {
        return Err(bad(format!(
            "{field}.minor_units must be between 1 and {MAX_MINOR_UNITS}"
        )));
    }
    Ok(Some(Amount {
        minor: money.minor_units,
        currency,
    }))
}

/// A card number: digits (else malformed); a valid PAN or not ("14" later).
fn card_number(value: &str) -> Result<CardNumber, IssuerError> {
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("pan must be 1 to 19 digits"));
    }
    Ok(CardNumber::from_digits(value))
}

/// The card data presented, compared with the PAN (whose digits never leave this function).
fn presented(
    card: &CardNumber,
    expiry: &str,
    service_code: &str,
    track2: &str,
) -> Result<Presented, IssuerError> {
    let expiry = match expiry {
        "" => None,
        text => Some(Expiry::parse(text).map_err(|e| bad(e.to_string()))?),
    };
    if !service_code.is_empty()
        && (service_code.len() != 3 || !service_code.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad("service_code must be 3 digits or empty"));
    }
    let mut out = Presented {
        expiry,
        track2_expiry: None,
        track2_pan_matches: true,
    };
    if !track2.is_empty() {
        let malformed = || bad("track2 must be PAN '=' YYMM service code and digits");
        let (track_pan, rest) = track2.split_once('=').ok_or_else(malformed)?;
        if !rest.bytes().all(|b| b.is_ascii_digit()) || rest.len() < 4 {
            return Err(malformed());
        }
        out.track2_pan_matches = track_pan == card.digits();
        out.track2_expiry = Some(Expiry::parse(&rest[..4]).map_err(|_| malformed())?);
    }
    Ok(out)
}

impl TryFrom<IssuerAuthorizeRequest> for AuthorizeCommand {
    type Error = IssuerError;

    fn try_from(r: IssuerAuthorizeRequest) -> Result<Self, IssuerError> {
        let op = match IssuerOperation::try_from(r.operation) {
            Ok(IssuerOperation::Purchase) => Operation::Purchase,
            Ok(IssuerOperation::PreAuth) => Operation::PreAuth,
            Ok(IssuerOperation::PreAuthCompletion) => Operation::Completion,
            Ok(IssuerOperation::PreAuthVoid) => Operation::PreAuthVoid,
            Ok(IssuerOperation::BalanceInquiry) => Operation::BalanceInquiry,
            Ok(IssuerOperation::Unspecified) | Err(_) => {
                return Err(bad("operation must be set"));
            }
        };
        let card = card_number(&r.pan)?;
        let presented = presented(&card, &r.expiry, &r.service_code, &r.track2)?;
        let pin_block = if r.pin_block.is_empty() {
            None
        } else {
            let format = match PinBlockFormat::try_from(r.pin_block_format) {
                Ok(PinBlockFormat::Iso0) => BlockFormat::Iso0,
                Ok(PinBlockFormat::Iso4) => BlockFormat::Iso4,
                Ok(PinBlockFormat::Unspecified) | Err(_) => {
                    return Err(bad("pin_block_format must be set when pin_block is"));
                }
            };
            Some(PinBlock {
                bytes: r.pin_block,
                format,
                key_id: r.pin_key_id,
            })
        };
        let amount = match op {
            Operation::BalanceInquiry => None,
            _ => amount("amount", r.amount.as_ref())?,
        };
        if op.needs_amount() && amount.is_none() {
            return Err(bad(format!("amount is required for {}", op.as_str())));
        }
        let (hold_id, original) = if op.acts_on_hold() {
            let hold_id = optional_id("hold_id", &r.hold_id)?;
            let original = optional_id(
                "original_acquirer_transaction_id",
                &r.original_acquirer_transaction_id,
            )?;
            if hold_id.is_empty() && original.is_empty() {
                return Err(bad(
                    "hold_id or original_acquirer_transaction_id is required",
                ));
            }
            (hold_id, original)
        } else {
            (String::new(), String::new())
        };
        Ok(Self {
            id: id("acquirer_transaction_id", &r.acquirer_transaction_id)?,
            op,
            card,
            presented,
            pin_block,
            amount,
            merchant_id: r.merchant_id,
            terminal_id: r.terminal_id,
            hold_id,
            original,
        })
    }
}

impl TryFrom<IssuerReverseRequest> for ReverseCommand {
    type Error = IssuerError;

    fn try_from(r: IssuerReverseRequest) -> Result<Self, IssuerError> {
        Ok(Self {
            reversal_id: optional_id("acquirer_reversal_id", &r.acquirer_reversal_id)?,
            original: id(
                "original_acquirer_transaction_id",
                &r.original_acquirer_transaction_id,
            )?,
            amount: amount("amount", r.amount.as_ref())?,
            reason: r.reason_code.chars().take(16).collect(),
        })
    }
}

impl TryFrom<IssuerRefundRequest> for RefundCommand {
    type Error = IssuerError;

    fn try_from(r: IssuerRefundRequest) -> Result<Self, IssuerError> {
        let card = match r.pan.as_str() {
            "" => None,
            digits => Some(card_number(digits)?),
        };
        Ok(Self {
            id: id("acquirer_transaction_id", &r.acquirer_transaction_id)?,
            original: id(
                "original_acquirer_transaction_id",
                &r.original_acquirer_transaction_id,
            )?,
            amount: amount("amount", r.amount.as_ref())?
                .ok_or_else(|| bad("amount is required"))?,
            card,
            merchant_id: r.merchant_id,
            terminal_id: r.terminal_id,
        })
    }
}

fn money(m: Option<Money>) -> Option<pb::Money> {
    let m = m?;
    Some(pb::Money {
        minor_units: m.to_minor().ok()?,
        currency: m.currency().code().to_owned(),
    })
}

fn message(code: ResponseCode) -> String {
    format!("{} ({})", code.description(), code.description_zh())
}

fn funding(f: Option<Funding>) -> i32 {
    match f {
        Some(Funding::Debit) => CardFundingType::Debit as i32,
        Some(Funding::Credit) => CardFundingType::Credit as i32,
        None => CardFundingType::Unspecified as i32,
    }
}

fn authorize_response(a: Answer) -> IssuerAuthorizeResponse {
    IssuerAuthorizeResponse {
        response_code: a.code.code().to_owned(),
        response_message: message(a.code),
        approval_code: a.approval_code,
        rrn: a.rrn,
        available_balance: money(a.available),
        hold_id: a.hold_id,
        approved_amount: money(a.approved),
        card_funding: funding(a.funding),
        emv_data: Vec::new(),
        issuer_reference: a.reference,
        business_date: a.business_date,
        replayed: a.replayed,
    }
}

fn reverse_response(a: ReverseAnswer) -> IssuerReverseResponse {
    IssuerReverseResponse {
        response_code: a.code.code().to_owned(),
        response_message: message(a.code),
        outcome: a.outcome,
        available_balance: money(a.available),
        issuer_reference: a.reference,
    }
}

fn refund_response(a: Answer) -> IssuerRefundResponse {
    IssuerRefundResponse {
        response_code: a.code.code().to_owned(),
        response_message: message(a.code),
        approval_code: a.approval_code,
        rrn: a.rrn,
        refunded_total: money(a.refunded_total),
        available_balance: money(a.available),
        issuer_reference: a.reference,
        replayed: a.replayed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAN: &str = "6217000010012345677";

    fn purchase() -> IssuerAuthorizeRequest {
        IssuerAuthorizeRequest {
            acquirer_transaction_id: "0197a0b4-6c1e-7cc3-9a55-1f0e2d3c4b5a".into(),
            operation: IssuerOperation::Purchase as i32,
            pan: PAN.into(),
            expiry: "3012".into(),
            service_code: "220".into(),
            track2: format!("{PAN}=3012220123"),
            amount: Some(pb::Money {
                minor_units: 5000,
                currency: "CNY".into(),
            }),
            pin_block: vec![0; 8],
            pin_block_format: PinBlockFormat::Iso0 as i32,
            ..Default::default()
        }
    }

    fn refused(r: IssuerAuthorizeRequest) -> String {
        match AuthorizeCommand::try_from(r) {
            Err(IssuerError::BadRequest(m)) => m,
            other => panic!("accepted: {other:?}"),
        }
    }

    #[test]
    fn a_well_formed_purchase_parses() {
        let c = AuthorizeCommand::try_from(purchase()).unwrap();
        assert_eq!(c.op, Operation::Purchase);
        assert_eq!(c.amount.unwrap().minor, 5000);
        assert!(c.presented.track2_pan_matches);
        assert_eq!(c.presented.track2_expiry, c.presented.expiry);
        assert!(c.pin_block.is_some());
        assert!(!format!("{c:?}").contains(PAN));
    }

    #[test]
    fn malformed_requests_are_invalid_arguments() {
        let mut r = purchase();
        r.amount = None;
        assert!(refused(r).contains("amount is required"));
        let mut r = purchase();
        r.amount.as_mut().unwrap().minor_units = 0;
        assert!(refused(r).contains("minor_units"));
        let mut r = purchase();
        r.amount.as_mut().unwrap().minor_units = 1_000_000_000_000;
        assert!(refused(r).contains("minor_units"));
        let mut r = purchase();
        r.amount.as_mut().unwrap().currency = "XXX".into();
        assert!(refused(r).contains("currency"));
        let mut r = purchase();
        r.operation = 0;
        assert!(refused(r).contains("operation"));
        let mut r = purchase();
        r.pan = "6217 0000".into();
        assert!(refused(r).contains("pan"));
        let mut r = purchase();
        r.pin_block_format = 0;
        assert!(refused(r).contains("pin_block_format"));
        let mut r = purchase();
        r.acquirer_transaction_id = "has space".into();
        assert!(refused(r).contains("acquirer_transaction_id"));
        let mut r = purchase();
        r.track2 = "no separator".into();
        assert!(refused(r).contains("track2"));
        let mut r = purchase();
        r.operation = IssuerOperation::PreAuthCompletion as i32;
        assert!(refused(r).contains("hold_id"));
    }

    #[test]
    fn a_luhn_failure_is_an_answer_not_an_error() {
        let mut r = purchase();
        r.pan = "6217000010012345678".into();
        r.track2 = String::new();
        let c = AuthorizeCommand::try_from(r).unwrap();
        assert!(c.card.pan().is_none());
    }

    #[test]
    fn another_pan_in_track2_is_flagged() {
        let mut r = purchase();
        r.track2 = "6225880011223345=3012220".into();
        let c = AuthorizeCommand::try_from(r).unwrap();
        assert!(!c.presented.track2_pan_matches);
    }

    #[test]
    fn balance_inquiry_needs_no_amount_and_ignores_one() {
        let mut r = purchase();
        r.operation = IssuerOperation::BalanceInquiry as i32;
        assert!(
            AuthorizeCommand::try_from(r.clone())
                .unwrap()
                .amount
                .is_none()
        );
        r.amount = None;
        assert!(AuthorizeCommand::try_from(r).is_ok());
    }

    #[test]
    fn responses_carry_code_and_message() {
        let response = reverse_response(ReverseAnswer {
            code: ResponseCode::OriginalAmountIncorrect,
            outcome: 0,
            available: None,
            reference: "ISS-1".into(),
        });
        assert_eq!(response.response_code, "64");
        assert!(
            response
                .response_message
                .contains("original amount incorrect")
        );
    }
}
