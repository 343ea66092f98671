//! The request as this service works with it: the five transaction types it serves, and the
//! gateway's `AuthorizationRequest` checked for what the idempotency key and the flow need
//! (anything else wrong with it is a decline with a response code, decided by `rules`).

use std::fmt;

use pos_domain::{BatchNo, EntryMode, Stan, TerminalId};
use pos_proto::v1 as pb;

/// A transaction type served by `Authorization.Authorize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Purchase 消费: debit.
    Purchase,
    /// Balance inquiry 余额查询: moves no money.
    BalanceInquiry,
    /// Pre-authorization 预授权: places a hold.
    PreAuth,
    /// Pre-auth completion 预授权完成: captures a hold.
    Completion,
    /// Pre-auth void 预授权撤销: releases a hold.
    PreAuthVoid,
}

impl Kind {
    /// The type of a request; `None` for types served elsewhere (voids, refunds, reversals).
    pub fn from_proto(value: i32) -> Option<Self> {
        use pb::TransactionType as T;
        match T::try_from(value).ok()? {
            T::Purchase => Some(Self::Purchase),
            T::BalanceInquiry => Some(Self::BalanceInquiry),
            T::PreAuth => Some(Self::PreAuth),
            T::PreAuthCompletion => Some(Self::Completion),
            T::PreAuthVoid => Some(Self::PreAuthVoid),
            _ => None,
        }
    }

    /// The proto enum.
    pub fn proto(self) -> pb::TransactionType {
        use pb::TransactionType as T;
        match self {
            Self::Purchase => T::Purchase,
            Self::BalanceInquiry => T::BalanceInquiry,
            Self::PreAuth => T::PreAuth,
            Self::Completion => T::PreAuthCompletion,
            Self::PreAuthVoid => T::PreAuthVoid,
        }
    }

    /// The issuer operation that carries it out.
    pub fn issuer_operation(self) -> pb::IssuerOperation {
        use pb::IssuerOperation as O;
        match self {
            Self::Purchase => O::Purchase,
            Self::BalanceInquiry => O::BalanceInquiry,
            Self::PreAuth => O::PreAuth,
            Self::Completion => O::PreAuthCompletion,
            Self::PreAuthVoid => O::PreAuthVoid,
        }
    }

    /// A short name for metrics, logs and Redis records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Purchase => "purchase",
            Self::BalanceInquiry => "balance_inquiry",
            Self::PreAuth => "pre_auth",
            Self::Completion => "pre_auth_completion",
            Self::PreAuthVoid => "pre_auth_void",
        }
    }

    /// Whether it acts on an earlier pre-authorization.
    pub fn needs_original(self) -> bool {
        matches!(self, Self::Completion | Self::PreAuthVoid)
    }
}

/// Terminal id + batch number + STAN: the idempotency key of a terminal request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// Terminal.
    pub terminal_id: TerminalId,
    /// Batch number.
    pub batch_no: BatchNo,
    /// STAN.
    pub stan: Stan,
}

impl Trace {
    /// The proto form.
    pub fn proto(&self) -> pb::TerminalTraceRef {
        pb::TerminalTraceRef {
            terminal_id: self.terminal_id.to_string(),
            batch_no: self.batch_no.value(),
            stan: self.stan.value(),
        }
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.terminal_id, self.batch_no, self.stan)
    }
}

/// An authorization request whose idempotency key and type are known to be valid. Holds the
/// full card data (in memory only): its `Debug` shows the trace and type, never the card.
pub struct Request {
    /// What is asked.
    pub kind: Kind,
    /// Idempotency key.
    pub trace: Trace,
    /// Merchant of the terminal as the gateway knows it.
    pub merchant_id: String,
    /// Operator number.
    pub operator_no: String,
    /// Amount as sent (checked by the rules).
    pub amount: Option<pb::Money>,
    /// Card data as read (PAN, track 2, field 55).
    pub card: pb::CardData,
    /// PIN block under the terminal's PIN key; empty when no PIN was entered.
    pub pin_block: Vec<u8>,
    /// Which key the PIN block is under.
    pub pin_key: Option<pb::PinKeyRef>,
    /// Terminal local date-time.
    pub local_datetime: String,
    /// The pre-authorization a completion or pre-auth void acts on.
    pub original: Option<pb::OriginalTransactionRef>,
    /// Gateway session id (logs).
    pub session_id: String,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("kind", &self.kind)
            .field("trace", &self.trace)
            .field("merchant_id", &self.merchant_id)
            .finish_non_exhaustive()
    }
}

impl Request {
    /// How the card was read; `None` when the request does not say.
    pub fn entry_mode(&self) -> Option<EntryMode> {
        entry_mode(self.card.entry_mode)
    }
}

/// The domain entry mode of the proto enum; `None` for UNSPECIFIED or unknown values.
pub fn entry_mode(value: i32) -> Option<EntryMode> {
    use pb::CardEntryMode as M;
    match M::try_from(value).ok()? {
        M::Swipe => Some(EntryMode::Swipe),
        M::Chip => Some(EntryMode::Chip),
        M::Contactless => Some(EntryMode::Contactless),
        M::FallbackSwipe => Some(EntryMode::FallbackSwipe),
        M::Manual => Some(EntryMode::Manual),
        M::Unspecified => None,
    }
}

/// Why a request cannot be handled at all (INVALID_ARGUMENT): without a valid key or type
/// nothing can be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

impl TryFrom<pb::AuthorizationRequest> for Request {
    type Error = Malformed;

    fn try_from(request: pb::AuthorizationRequest) -> Result<Self, Malformed> {
        let kind = Kind::from_proto(request.transaction_type).ok_or_else(|| {
            Malformed(format!(
                "transaction type {} is not served by authorization: expected purchase, \
                 balance inquiry, pre-auth, pre-auth completion or pre-auth void",
                request.transaction_type
            ))
        })?;
        let bad = |e: pos_domain::DomainError| Malformed(e.to_string());
        let trace = Trace {
            terminal_id: TerminalId::parse(&request.terminal_id).map_err(bad)?,
            batch_no: BatchNo::new(request.batch_no).map_err(bad)?,
            stan: Stan::new(request.stan).map_err(bad)?,
        };
        if request.merchant_id.is_empty() {
            return Err(Malformed("merchant_id is required".to_owned()));
        }
        let card = request
            .card
            .ok_or_else(|| Malformed("card is required".to_owned()))?;
        Ok(Self {
            kind,
            trace,
            merchant_id: request.merchant_id,
            operator_no: request.operator_no,
            amount: request.amount,
            card,
            pin_block: request.pin_block,
            pin_key: request.pin_key,
            local_datetime: request.local_datetime,
            original: request.original,
            session_id: request.session_id,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid purchase request of 50.00 CNY by swipe.
    pub(crate) fn purchase() -> pb::AuthorizationRequest {
        pb::AuthorizationRequest {
            transaction_type: pb::TransactionType::Purchase as i32,
            terminal_id: "TERM0001".to_owned(),
            batch_no: 1,
            stan: 42,
            merchant_id: "898310048990001".to_owned(),
            operator_no: "01".to_owned(),
            amount: Some(pb::Money {
                minor_units: 5000,
                currency: "CNY".to_owned(),
            }),
            card: Some(pb::CardData {
                pan: "6222020200112233446".to_owned(),
                expiry: "3012".to_owned(),
                service_code: "201".to_owned(),
                track2: "6222020200112233446=30122010000000000".to_owned(),
                entry_mode: pb::CardEntryMode::Swipe as i32,
                ..pb::CardData::default()
            }),
            local_datetime: "2025-06-01T12:00:00".to_owned(),
            ..pb::AuthorizationRequest::default()
        }
    }

    #[test]
    fn parses_a_valid_request_and_never_shows_the_card() {
        let request = Request::try_from(purchase()).unwrap();
        assert_eq!(request.kind, Kind::Purchase);
        assert_eq!(request.trace.to_string(), "TERM0001:000001:000042");
        let shown = format!("{request:?}");
        assert!(!shown.contains("6222020200112233446"), "{shown}");
        assert!(!shown.contains("622202"), "{shown}");
    }

    #[test]
    fn refuses_requests_without_a_key_type_or_card() {
        let mut refund = purchase();
        refund.transaction_type = pb::TransactionType::Refund as i32;
        assert!(
            Request::try_from(refund)
                .unwrap_err()
                .0
                .starts_with("transaction type 8 is not served")
        );
        let mut no_stan = purchase();
        no_stan.stan = 0;
        assert_eq!(
            Request::try_from(no_stan).unwrap_err().0,
            "STAN must be 1 to 999999, got 0"
        );
        let mut bad_terminal = purchase();
        bad_terminal.terminal_id = "t1".to_owned();
        assert!(Request::try_from(bad_terminal).is_err());
        let mut no_card = purchase();
        no_card.card = None;
        assert_eq!(
            Request::try_from(no_card).unwrap_err().0,
            "card is required"
        );
    }

    #[test]
    fn kinds_round_trip_through_the_proto_enum() {
        for kind in [
            Kind::Purchase,
            Kind::BalanceInquiry,
            Kind::PreAuth,
            Kind::Completion,
            Kind::PreAuthVoid,
        ] {
            assert_eq!(Kind::from_proto(kind.proto() as i32), Some(kind));
        }
    }
}
