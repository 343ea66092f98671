//! Steps 3 and 4 of the flow: fraud-check (when configured, with its policy when it does not
//! answer in time) and the issuer (with its deadline).

use std::time::SystemTime;

use pos_domain::{Money, ResponseCode};
use pos_facts::MerchantFacts;
use pos_proto::v1 as pb;
use prost_types::Timestamp;
use tracing::{debug, warn};

use super::{Asked, Service};
use crate::clients::IssuerOutcome;
use crate::decision::{Decision, FraudResult, money};
use crate::metrics;
use crate::model::Request;
use crate::rules::{self, Checked, Decline};

impl Service {
    /// Step 4. Whatever failed, the issuer may have acted (a connection that broke after the
    /// request was sent also reads as unavailable), so every unanswered call is reversed.
    pub(super) async fn call_issuer(
        &self,
        call: pb::IssuerAuthorizeRequest,
        transaction_id: &str,
    ) -> Result<pb::IssuerAuthorizeResponse, Asked> {
        match self.issuer.authorize(call).await {
            IssuerOutcome::Answered(answer) => Ok(*answer),
            IssuerOutcome::Unavailable(why) => {
                // Counted in pos_authorization_issuer_duration_seconds{outcome="unavailable"}.
                debug!(transaction_id, %why, "issuer unavailable");
                Err(Asked::NoAnswer(Decline::system(
                    ResponseCode::IssuerUnavailable,
                    "issuer unavailable: try again later",
                )))
            }
            IssuerOutcome::Unknown(why) => {
                warn!(
                    transaction_id,
                    %why,
                    "no answer from the issuer; the transaction will be reversed"
                );
                Err(Asked::NoAnswer(Decline::system(
                    ResponseCode::IssuerUnavailable,
                    "no answer from the issuer: the transaction is cancelled and any debit \
                     reversed",
                )))
            }
        }
    }

    /// Step 3: fraud-check's decision, or the policy when it does not answer in time.
    pub(super) async fn assess(
        &self,
        request: &Request,
        checked: &Checked,
        merchant: &MerchantFacts,
        decision: &mut Decision,
    ) -> Result<(), Decline> {
        let Some(fraud) = &self.fraud else {
            return Ok(());
        };
        let card = &request.card;
        let merchant_limit = merchant.limit_minor.map(|minor| pb::Money {
            minor_units: minor,
            currency: merchant.currency.clone(),
        });
        let assessment = fraud
            .assess(pb::AssessRequest {
                transaction_id: decision.transaction_id.clone(),
                transaction_type: request.kind.proto() as i32,
                card: decision.card.clone(),
                card_funding: pb::CardFundingType::Unspecified as i32,
                service_code: card.service_code.clone(),
                entry_mode: card.entry_mode,
                emv: checked.chip.as_ref().map(|c| c.facts.clone()),
                expiry: card.expiry.clone(),
                track2_expiry: checked.track2_expiry.clone(),
                displayed_last4: card.displayed_last4.clone(),
                amount: checked.amount.as_ref().map(money),
                merchant_id: request.merchant_id.clone(),
                mcc: merchant.mcc.clone(),
                terminal_id: request.trace.terminal_id.to_string(),
                terminal_location: None,
                local_datetime: request.local_datetime.clone(),
                trading_hours: None,
                merchant_limit,
                pin_present: !request.pin_block.is_empty(),
            })
            .await;
        match assessment {
            Ok(answer) => {
                let verdict = pb::FraudDecision::try_from(answer.decision)
                    .unwrap_or(pb::FraudDecision::Unspecified);
                decision.fraud = FraudResult {
                    decision: verdict,
                    policy: pb::FraudPolicy::Checked,
                    score: answer.score,
                    reasons: answer.reasons,
                };
                metrics::FRAUD
                    .with_label_values(&["checked", verdict.as_str_name()])
                    .inc();
                if verdict == pb::FraudDecision::Decline {
                    return Err(Decline {
                        code: ResponseCode::SuspectedFraud,
                        message: "declined: suspected fraud".to_owned(),
                        source: pb::DeclineSource::Fraud,
                    });
                }
                Ok(())
            }
            Err(why) => {
                let policy = rules::fraud_fallback(checked.amount.as_ref(), &self.rules);
                decision.fraud.policy = policy;
                metrics::FRAUD
                    .with_label_values(&[policy.as_str_name(), "none"])
                    .inc();
                // Counted in pos_authorization_fraud_total{policy="FRAUD_POLICY_FAIL_..."}.
                debug!(
                    transaction_id = %decision.transaction_id,
                    %why,
                    policy = policy.as_str_name(),
                    "fraud-check did not answer in time"
                );
                if policy == pb::FraudPolicy::FailClosed {
                    return Err(Decline {
                        code: self.rules.fraud_fail_closed_code,
                        message: "the fraud check is unavailable for this amount: try again later"
                            .to_owned(),
                        source: pb::DeclineSource::Fraud,
                    });
                }
                Ok(())
            }
        }
    }

    /// The issuer request of a validated transaction.
    pub(super) fn issuer_request(
        &self,
        request: &Request,
        checked: &Checked,
        merchant: &MerchantFacts,
        decision: &Decision,
        amount: Option<&Money>,
        pin_block: Option<[u8; 8]>,
    ) -> pb::IssuerAuthorizeRequest {
        let card = &request.card;
        let original = decision.original.as_ref();
        let (pin_block, pin_block_format, pin_key_id) = match pin_block {
            Some(block) => (
                block.to_vec(),
                pb::PinBlockFormat::Iso0,
                self.zone.id.clone(),
            ),
            None => (Vec::new(), pb::PinBlockFormat::Unspecified, String::new()),
        };
        pb::IssuerAuthorizeRequest {
            acquirer_transaction_id: decision.transaction_id.clone(),
            operation: request.kind.issuer_operation() as i32,
            pan: checked.pan.expose_digits().to_owned(),
            expiry: card.expiry.clone(),
            service_code: card.service_code.clone(),
            track2: card.track2.clone(),
            card_sequence_number: card.card_sequence_number.clone(),
            entry_mode: card.entry_mode,
            pin_block,
            pin_block_format: pin_block_format as i32,
            pin_key_id,
            amount: amount.map(money),
            emv_data: if checked.entry_mode.is_chip_read() {
                card.emv_data.clone()
            } else {
                Vec::new()
            },
            merchant_id: request.merchant_id.clone(),
            merchant_name: merchant.name.clone(),
            merchant_city: merchant.city.clone(),
            mcc: merchant.mcc.clone(),
            terminal_id: request.trace.terminal_id.to_string(),
            acquirer_id: self.acquirer_id.clone(),
            hold_id: original.map(|o| o.hold_id.clone()).unwrap_or_default(),
            original_acquirer_transaction_id: original
                .map(|o| o.transaction_id.clone())
                .unwrap_or_default(),
            local_datetime: request.local_datetime.clone(),
            transmitted_at: Some(Timestamp::from(SystemTime::now())),
            stan: request.trace.stan.value(),
        }
    }
}
