//! A decided transaction and its three renderings: the event that records it on
//! `pos.transactions.v1` (sequence 1 of the "transaction" aggregate), the answer to the gateway,
//! and this service's Redis record. All three carry the masked card and its token, never the
//! PAN, track data or PIN block.

use pos_domain::{Money, ResponseCode};
use pos_events::Payload;
use pos_proto::v1 as pb;
use prost_types::Timestamp;

use crate::model::{Kind, Request, Trace};
use crate::rules::Decline;
use pos_facts::txn::TxnRecord;

/// What fraud-check contributed.
#[derive(Debug, Clone, PartialEq)]
pub struct FraudResult {
    /// Decision applied (UNSPECIFIED when not assessed).
    pub decision: pb::FraudDecision,
    /// Policy applied.
    pub policy: pb::FraudPolicy,
    /// Score 0..1000.
    pub score: i32,
    /// Reasons that contributed.
    pub reasons: Vec<pb::FraudReason>,
}

impl Default for FraudResult {
    fn default() -> Self {
        Self {
            decision: pb::FraudDecision::Unspecified,
            policy: pb::FraudPolicy::None,
            score: 0,
            reasons: Vec::new(),
        }
    }
}

/// The result of asking.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The issuer approved.
    Approved(pb::IssuerAuthorizeResponse),
    /// Someone declined; `issuer` holds the issuer's answer when it was the issuer.
    Declined {
        /// Code, message, source.
        decline: Decline,
        /// The issuer's answer, when the issuer declined.
        issuer: Option<pb::IssuerAuthorizeResponse>,
        /// True when the issuer may have acted on a request it did not answer.
        issuer_outcome_unknown: bool,
    },
}

/// Everything known about one decided transaction.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Transaction id (UUIDv7): the aggregate id and the issuer's acquirer transaction id.
    pub transaction_id: String,
    /// Type.
    pub kind: Kind,
    /// Terminal, batch, STAN.
    pub trace: Trace,
    /// Merchant.
    pub merchant_id: String,
    /// Operator.
    pub operator_no: String,
    /// Merchant category code; empty when the merchant is unknown.
    pub mcc: String,
    /// Amount as requested.
    pub requested: Option<pb::Money>,
    /// The card, masked; `None` when the PAN is not a valid card number.
    pub card: Option<pb::MaskedCard>,
    /// Entry mode as sent.
    pub entry_mode: i32,
    /// Terminal local date-time.
    pub local_datetime: String,
    /// Business date.
    pub business_date: String,
    /// Idempotency fingerprint (keyed).
    pub request_digest: String,
    /// Fraud-check's part.
    pub fraud: FraudResult,
    /// The pre-authorization of a completion or void, as found.
    pub original: Option<TxnRecord>,
    /// What came of it.
    pub outcome: Outcome,
}

impl Decision {
    /// A decision about `request` not yet made (declined "96" until `outcome` is set).
    pub fn new(
        request: &Request,
        transaction_id: String,
        card: Option<pb::MaskedCard>,
        business_date: String,
        request_digest: String,
    ) -> Self {
        Self {
            transaction_id,
            kind: request.kind,
            trace: request.trace.clone(),
            merchant_id: request.merchant_id.clone(),
            operator_no: request.operator_no.clone(),
            mcc: String::new(),
            requested: request.amount.clone(),
            card,
            entry_mode: request.card.entry_mode,
            local_datetime: request.local_datetime.clone(),
            business_date,
            request_digest,
            fraud: FraudResult::default(),
            original: None,
            outcome: Outcome::Declined {
                decline: Decline::system(ResponseCode::SystemMalfunction, "not decided"),
                issuer: None,
                issuer_outcome_unknown: false,
            },
        }
    }

    /// Whether the issuer approved.
    pub fn approved(&self) -> bool {
        matches!(self.outcome, Outcome::Approved(_))
    }

    /// Whether money may have moved at the issuer (so an unrecorded decision must be reversed).
    pub fn issuer_may_have_acted(&self) -> bool {
        let moves_money = self.kind != Kind::BalanceInquiry;
        match &self.outcome {
            Outcome::Approved(_) => moves_money,
            Outcome::Declined {
                issuer_outcome_unknown,
                ..
            } => moves_money && *issuer_outcome_unknown,
        }
    }

    fn issuer(&self) -> Option<&pb::IssuerAuthorizeResponse> {
        match &self.outcome {
            Outcome::Approved(answer) => Some(answer),
            Outcome::Declined { issuer, .. } => issuer.as_ref(),
        }
    }

    /// DE39 given to the terminal.
    pub fn response_code(&self) -> &str {
        match &self.outcome {
            Outcome::Approved(_) => ResponseCode::Approved.code(),
            Outcome::Declined { decline, .. } => decline.code.code(),
        }
    }

    /// Who declined, for metrics ("none" when approved).
    pub fn source_label(&self) -> &'static str {
        match &self.outcome {
            Outcome::Approved(_) => "none",
            Outcome::Declined { decline, .. } => match decline.source {
                pb::DeclineSource::Validation => "validation",
                pb::DeclineSource::Fraud => "fraud",
                pb::DeclineSource::Issuer => "issuer",
                pb::DeclineSource::System | pb::DeclineSource::Unspecified => "system",
            },
        }
    }

    fn response_message(&self) -> String {
        match &self.outcome {
            Outcome::Approved(answer) if !answer.response_message.is_empty() => {
                answer.response_message.clone()
            }
            Outcome::Approved(_) => ResponseCode::Approved.description().to_owned(),
            Outcome::Declined { decline, .. } => decline.message.clone(),
        }
    }

    /// The amount of this step: approved amount when approved, requested otherwise; for a
    /// void without an amount, the held amount.
    fn amount(&self) -> Option<pb::Money> {
        if self.kind == Kind::BalanceInquiry {
            return None;
        }
        let approved = self.issuer().and_then(|a| a.approved_amount.clone());
        let held = || {
            self.original.as_ref().and_then(|o| {
                o.amount_minor.map(|minor| pb::Money {
                    minor_units: minor,
                    currency: o.currency.clone(),
                })
            })
        };
        match &self.outcome {
            Outcome::Approved(_) => approved.or_else(|| self.requested.clone()).or_else(held),
            Outcome::Declined { .. } => self.requested.clone().or_else(held),
        }
    }

    /// The issuer's hold id: the pre-auth's own, or the one a completion or void acted on.
    fn hold_id(&self) -> String {
        match (&self.original, self.issuer()) {
            (Some(original), _) => original.hold_id.clone(),
            (None, Some(answer)) => answer.hold_id.clone(),
            (None, None) => String::new(),
        }
    }

    /// The pre-authorization as found, in its reference form.
    fn original_ref(&self) -> Option<pb::OriginalTransactionRef> {
        self.original.as_ref().map(|o| pb::OriginalTransactionRef {
            transaction_id: o.transaction_id.clone(),
            terminal_id: o.terminal_id.clone(),
            batch_no: o.batch_no,
            stan: o.stan,
            rrn: o.rrn.clone(),
            approval_code: o.approval_code.clone(),
            business_date: o.business_date.clone(),
            transaction_type: pb::TransactionType::PreAuth as i32,
            amount: o.amount_minor.map(|minor| pb::Money {
                minor_units: minor,
                currency: o.currency.clone(),
            }),
        })
    }

    /// The facts every event of this transaction carries.
    pub fn facts(&self) -> pb::TransactionFacts {
        let issuer = self.issuer();
        let text = |f: fn(&pb::IssuerAuthorizeResponse) -> &String| {
            issuer.map(|a| f(a).clone()).unwrap_or_default()
        };
        pb::TransactionFacts {
            transaction_id: self.transaction_id.clone(),
            transaction_type: self.kind.proto() as i32,
            merchant_id: self.merchant_id.clone(),
            trace: Some(self.trace.proto()),
            operator_no: self.operator_no.clone(),
            amount: self.amount(),
            card: self.card.clone(),
            entry_mode: self.entry_mode,
            card_funding: issuer.map_or(0, |a| a.card_funding),
            rrn: text(|a| &a.rrn),
            approval_code: if self.approved() {
                text(|a| &a.approval_code)
            } else {
                String::new()
            },
            response_code: self.response_code().to_owned(),
            response_message: self.response_message(),
            issuer_hold_id: self.hold_id(),
            fraud_decision: self.fraud.decision as i32,
            fraud_policy: self.fraud.policy as i32,
            fraud_score: self.fraud.score,
            original: self.original_ref(),
            business_date: self.business_date.clone(),
            local_datetime: self.local_datetime.clone(),
            mcc: self.mcc.clone(),
            request_digest: self.request_digest.clone(),
            issuer_reference: text(|a| &a.issuer_reference),
        }
    }

    /// The event payload that records the decision.
    pub fn payload(&self) -> Payload {
        let txn = Some(self.facts());
        let reasons = self.fraud.reasons.clone();
        match &self.outcome {
            Outcome::Declined { decline, .. } => {
                let fraud_reasons = if decline.source == pb::DeclineSource::Fraud {
                    reasons
                } else {
                    Vec::new()
                };
                Payload::AuthorizationDeclined(pb::AuthorizationDeclined {
                    txn,
                    source: decline.source as i32,
                    fraud_reasons,
                })
            }
            Outcome::Approved(_) => match self.kind {
                Kind::Purchase => Payload::AuthorizationApproved(pb::AuthorizationApproved {
                    txn,
                    fraud_reasons: reasons,
                }),
                Kind::BalanceInquiry => Payload::BalanceInquired(pb::BalanceInquired { txn }),
                Kind::PreAuth => Payload::PreAuthHoldPlaced(pb::PreAuthHoldPlaced {
                    txn,
                    fraud_reasons: reasons,
                }),
                Kind::Completion => Payload::PreAuthCompleted(pb::PreAuthCompleted {
                    txn,
                    hold_amount: self.original_ref().and_then(|o| o.amount),
                }),
                Kind::PreAuthVoid => Payload::PreAuthVoided(pb::PreAuthVoided { txn }),
            },
        }
    }

    /// The answer to the gateway.
    pub fn response(&self, decided_at: Timestamp) -> pb::AuthorizationResponse {
        let mut answer = response_from_facts(&self.facts(), decided_at);
        if let Some(issuer) = self.issuer() {
            if self.approved() && self.kind == Kind::BalanceInquiry {
                answer.balance.clone_from(&issuer.available_balance);
            }
            answer.emv_data.clone_from(&issuer.emv_data);
        }
        answer
    }

    /// This service's record of the decision.
    pub fn record(&self) -> TxnRecord {
        TxnRecord::from_facts(&self.facts())
    }
}

/// The answer a decision's facts give (without the balance of an inquiry and the issuer's
/// chip data, which events do not carry).
pub fn response_from_facts(
    facts: &pb::TransactionFacts,
    decided_at: Timestamp,
) -> pb::AuthorizationResponse {
    let approved = facts.response_code == ResponseCode::Approved.code();
    pb::AuthorizationResponse {
        response_code: facts.response_code.clone(),
        response_message: facts.response_message.clone(),
        approval_code: facts.approval_code.clone(),
        rrn: facts.rrn.clone(),
        balance: None,
        amount: if approved { facts.amount.clone() } else { None },
        transaction_id: facts.transaction_id.clone(),
        fraud_decision: facts.fraud_decision,
        fraud_policy: facts.fraud_policy,
        card: facts.card.clone(),
        business_date: facts.business_date.clone(),
        decided_at: Some(decided_at),
        emv_data: Vec::new(),
        replayed: false,
        original: facts.original.clone(),
    }
}

/// The masked card of `pan` with its token.
pub fn masked_card(pan: &pos_domain::Pan, tokens: &pos_domain::TokenKey) -> pb::MaskedCard {
    pb::MaskedCard {
        masked_pan: pan.masked().to_string(),
        card_token: pan.token(tokens).to_string(),
        bin: pan.bin().to_owned(),
        last4: pan.last4().to_owned(),
    }
}

/// The proto form of an amount.
pub fn money(amount: &Money) -> pb::Money {
    pb::Money {
        minor_units: amount.to_minor().unwrap_or_default(),
        currency: amount.currency().code().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use pos_domain::{Pan, TokenKey};

    use super::*;
    use crate::model::tests::purchase;

    fn decision(outcome: Outcome) -> Decision {
        let request = Request::try_from(purchase()).unwrap();
        let tokens = TokenKey::from_bytes(&[3; 32]).unwrap();
        let pan = Pan::parse(&request.card.pan).unwrap();
        let mut decision = Decision::new(
            &request,
            "0190a0b0-0000-7000-8000-000000000001".to_owned(),
            Some(masked_card(&pan, &tokens)),
            "2025-06-01".to_owned(),
            "digest".to_owned(),
        );
        decision.outcome = outcome;
        decision
    }

    fn approval() -> pb::IssuerAuthorizeResponse {
        pb::IssuerAuthorizeResponse {
            response_code: "00".to_owned(),
            approval_code: "A1B2C3".to_owned(),
            rrn: "512300000001".to_owned(),
            approved_amount: Some(pb::Money {
                minor_units: 5000,
                currency: "CNY".to_owned(),
            }),
            available_balance: Some(pb::Money {
                minor_units: 995_000,
                currency: "CNY".to_owned(),
            }),
            ..pb::IssuerAuthorizeResponse::default()
        }
    }

    #[test]
    fn an_approved_purchase_is_recorded_with_the_masked_card_only() {
        let approved = decision(Outcome::Approved(approval()));
        let Payload::AuthorizationApproved(event) = approved.payload() else {
            panic!("an approved purchase is AuthorizationApproved");
        };
        let txn = event.txn.unwrap();
        assert_eq!(txn.response_code, "00");
        assert_eq!(txn.approval_code, "A1B2C3");
        assert_eq!(txn.card.as_ref().unwrap().masked_pan, "622202****3446");
        assert_eq!(txn.trace.unwrap().stan, 42);
        let encoded = format!("{:?}", approved.payload());
        assert!(!encoded.contains("6222020200112233446"));
        assert!(!encoded.contains("=3012"), "no track data");

        let answer = approved.response(Timestamp::default());
        assert_eq!(answer.amount.unwrap().minor_units, 5000);
        assert!(
            answer.balance.is_none(),
            "only a balance inquiry shows the balance"
        );
        assert_eq!(approved.record().approval_code, "A1B2C3");
        assert!(approved.issuer_may_have_acted());
    }

    #[test]
    fn a_decline_keeps_the_requested_amount_and_no_approval_code() {
        let mut issuer = approval();
        issuer.response_code = "51".to_owned();
        let declined = decision(Outcome::Declined {
            decline: Decline {
                code: ResponseCode::InsufficientFunds,
                message: "insufficient funds".to_owned(),
                source: pb::DeclineSource::Issuer,
            },
            issuer: Some(issuer),
            issuer_outcome_unknown: false,
        });
        let Payload::AuthorizationDeclined(event) = declined.payload() else {
            panic!("a decline is AuthorizationDeclined");
        };
        assert_eq!(event.source, pb::DeclineSource::Issuer as i32);
        let txn = event.txn.unwrap();
        assert_eq!(
            (txn.response_code.as_str(), txn.approval_code.as_str()),
            ("51", "")
        );
        assert_eq!(txn.amount.unwrap().minor_units, 5000);
        let answer = declined.response(Timestamp::default());
        assert!(answer.amount.is_none() && answer.approval_code.is_empty());
        assert!(!declined.issuer_may_have_acted());
    }

    #[test]
    fn an_unanswered_issuer_call_may_have_moved_money() {
        let lost = decision(Outcome::Declined {
            decline: Decline::system(ResponseCode::IssuerUnavailable, "no answer"),
            issuer: None,
            issuer_outcome_unknown: true,
        });
        assert!(lost.issuer_may_have_acted());
        assert_eq!(lost.source_label(), "system");
        assert_eq!(lost.response_code(), "91");
    }
}
