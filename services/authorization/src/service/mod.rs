//! The authorization flow, in order:
//!
//! 1. claim the idempotency key (terminal id + batch + STAN): a retry gets the first answer
//!    (waiting for it while the first attempt runs; "96" if it takes too long), the same key with
//!    other content "94";
//! 2. validate against the merchant's and terminal's facts and the deployment's rules, find the
//!    pre-authorization of a completion or void, translate the PIN block to the zone PIN key;
//! 3. ask fraud-check when it is configured (its policy when it is slow or down);
//! 4. ask the issuer with a deadline;
//! 5. publish the decision's event and, once the broker acknowledged it, keep the answer for
//!    retries and the transaction record, then answer.
//!
//! When the issuer does not answer, the answer is "91" and the event an AuthorizationDeclined
//! with source SYSTEM: the issuer may still have acted, and the reversal service reverses
//! every such transaction at the issuer (idempotent on the transaction id, so an issuer that
//! never saw it answers "00, nothing to do"). When the event cannot be published, the answer is
//! "96", nothing is kept as approved, and a transaction the issuer may have approved is listed
//! under `txn:unrecorded` for the reversal service to undo.

mod calls;
mod checks;
mod record;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use pos_crypto::{Hsm, KeyUnderLmk};
use pos_domain::{Pan, ResponseCode, TokenKey, TransactionId};
use pos_events::EventPublisher;
use pos_facts::Facts;
use pos_proto::v1 as pb;
use prost_types::Timestamp;
use tracing::{debug, error, warn};

use crate::clients::{Fraud, Issuer};
use crate::decision::{Decision, Outcome, masked_card};
use crate::error::Result;
use crate::idempotency::{self, Claim, Idempotency};
use crate::metrics;
use crate::model::{Kind, Request};
use crate::rules::{Decline, Rules};
use pos_facts::txn::Records;

/// Aggregate type of the events this service writes.
pub const AGGREGATE: &str = "transaction";
/// Producer name in the event envelopes.
pub const PRODUCER: &str = "authorization";

/// How this service reaches the issuer's PIN zone.
#[derive(Debug)]
pub struct ZoneKey {
    /// The zone PIN key under the HSM's LMK.
    pub key: KeyUnderLmk,
    /// Its id, sent with every PIN block.
    pub id: String,
}

/// Everything a request needs; shared by every request.
#[derive(Debug)]
pub struct Service {
    /// Decision settings.
    pub rules: Rules,
    /// Merchant, terminal and session facts (the gateway's read model).
    pub facts: Facts,
    /// Idempotency records.
    pub idempotency: Idempotency,
    /// Transaction records.
    pub records: Records,
    /// Event publisher.
    pub publisher: EventPublisher,
    /// Key handling.
    pub hsm: Arc<dyn Hsm>,
    /// Where translated PIN blocks go.
    pub zone: ZoneKey,
    /// Card tokens and request fingerprints.
    pub tokens: TokenKey,
    /// The issuer.
    pub issuer: Issuer,
    /// fraud-check, when configured.
    pub fraud: Option<Fraud>,
    /// Acquirer institution id (DE32).
    pub acquirer_id: String,
    /// How long a retry waits for the answer of its first attempt that is still running.
    pub in_progress_wait: Duration,
    /// The business day decisions are dated in.
    pub business_day: pos_domain::time::BusinessDay,
}

impl Service {
    /// Decides `request`, or replays the answer to an identical earlier one.
    pub async fn authorize(&self, request: Request) -> Result<pb::AuthorizationResponse> {
        let fingerprint = idempotency::fingerprint(&self.tokens, &request);
        let fresh = TransactionId::new().to_string();
        let claim = self
            .idempotency
            .claim(&request.trace, &fingerprint, &fresh, SystemTime::now())
            .await?;
        let transaction_id = match claim {
            Claim::New => {
                metrics::IDEMPOTENCY.with_label_values(&["new"]).inc();
                fresh
            }
            Claim::TakenOver { transaction_id } => {
                metrics::IDEMPOTENCY
                    .with_label_values(&["taken_over"])
                    .inc();
                warn!(
                    trace = %request.trace,
                    %transaction_id,
                    "taking over an abandoned attempt with its transaction id"
                );
                transaction_id
            }
            Claim::Done(mut answer) => {
                metrics::IDEMPOTENCY.with_label_values(&["replayed"]).inc();
                debug!(trace = %request.trace, "replaying the first answer");
                answer.replayed = true;
                return Ok(*answer);
            }
            Claim::InProgress => {
                metrics::IDEMPOTENCY
                    .with_label_values(&["in_progress"])
                    .inc();
                let deadline = Instant::now() + self.in_progress_wait;
                let first = self
                    .idempotency
                    .wait_for_answer(&request.trace, &fingerprint, deadline)
                    .await?;
                if let Some(mut answer) = first {
                    debug!(trace = %request.trace, "answering a retry with its first answer");
                    answer.replayed = true;
                    return Ok(answer);
                }
                return Ok(self.unrecorded_answer(
                    &request,
                    ResponseCode::SystemMalfunction,
                    "the same request is still being processed: try again later",
                ));
            }
            Claim::Reversed => {
                metrics::IDEMPOTENCY.with_label_values(&["reversed"]).inc();
                warn!(trace = %request.trace, "request arrived after its reversal");
                return Ok(self.unrecorded_answer(
                    &request,
                    ResponseCode::InvalidTransaction,
                    "this transaction was already reversed: start a new one",
                ));
            }
            Claim::Conflict => {
                metrics::IDEMPOTENCY.with_label_values(&["conflict"]).inc();
                warn!(trace = %request.trace, "same terminal, batch and STAN with other content");
                return Ok(self.unrecorded_answer(
                    &request,
                    ResponseCode::DuplicateTransmission,
                    "duplicate transmission: this terminal, batch and trace number were already \
                     used for another transaction",
                ));
            }
        };
        let decision = self.decide(&request, transaction_id, fingerprint).await;
        Ok(self.record(decision).await)
    }

    /// An answer that is neither recorded nor kept (refused duplicates, requests in flight).
    fn unrecorded_answer(
        &self,
        request: &Request,
        code: ResponseCode,
        message: &str,
    ) -> pb::AuthorizationResponse {
        metrics::DECISIONS
            .with_label_values(&[request.kind.as_str(), code.code(), "idempotency"])
            .inc();
        pb::AuthorizationResponse {
            response_code: code.code().to_owned(),
            response_message: message.to_owned(),
            card: self.card_of(request),
            decided_at: Some(Timestamp::from(SystemTime::now())),
            ..pb::AuthorizationResponse::default()
        }
    }

    fn card_of(&self, request: &Request) -> Option<pb::MaskedCard> {
        Pan::parse(&request.card.pan)
            .ok()
            .map(|pan| masked_card(&pan, &self.tokens))
    }

    /// Validation, fraud-check and the issuer: every path ends in a decision.
    async fn decide(&self, request: &Request, transaction_id: String, digest: String) -> Decision {
        let business_date = self.business_day.today();
        let mut decision = Decision::new(
            request,
            transaction_id,
            self.card_of(request),
            business_date,
            digest,
        );
        decision.outcome = match self.ask(request, &mut decision).await {
            Ok(answer) => match ResponseCode::parse(&answer.response_code) {
                Ok(ResponseCode::Approved) => Outcome::Approved(answer),
                parsed => {
                    let code = parsed.unwrap_or(ResponseCode::DoNotHonour);
                    let message = if answer.response_message.is_empty() {
                        code.description().to_owned()
                    } else {
                        answer.response_message.clone()
                    };
                    Outcome::Declined {
                        decline: Decline {
                            code,
                            message,
                            source: pb::DeclineSource::Issuer,
                        },
                        issuer: Some(answer),
                        issuer_outcome_unknown: false,
                    }
                }
            },
            Err(Asked::Declined(decline)) => Outcome::Declined {
                decline,
                issuer: None,
                issuer_outcome_unknown: false,
            },
            Err(Asked::NoAnswer(decline)) => Outcome::Declined {
                decline,
                issuer: None,
                issuer_outcome_unknown: true,
            },
        };
        decision
    }

    /// Steps 2 to 4; the issuer's answer, or why it was not asked or did not answer.
    async fn ask(
        &self,
        request: &Request,
        decision: &mut Decision,
    ) -> Result<pb::IssuerAuthorizeResponse, Asked> {
        let (merchant, checked) = self.validate(request, decision).await?;
        let held = self.original(request, &checked, decision).await?;
        let pin_block = self.translate_pin(request, &checked).await?;
        if request.kind != Kind::PreAuthVoid {
            // Releasing a hold adds no risk: pre-auth voids are not assessed.
            self.assess(request, &checked, &merchant, decision).await?;
        }
        let amount = match request.kind {
            Kind::PreAuthVoid => held,
            _ => checked.amount,
        };
        let call = self.issuer_request(
            request,
            &checked,
            &merchant,
            decision,
            amount.as_ref(),
            pin_block,
        );
        self.call_issuer(call, &decision.transaction_id).await
    }
}

/// Why the issuer's answer is missing.
#[derive(Debug)]
enum Asked {
    /// Declined before the issuer was asked (or the issuer refused the call outright).
    Declined(Decline),
    /// The issuer was asked and did not answer.
    NoAnswer(Decline),
}

impl From<Decline> for Asked {
    fn from(decline: Decline) -> Self {
        Self::Declined(decline)
    }
}

/// A Redis failure while deciding: logged, answered "96".
fn store_failure(error: pos_store::StoreError) -> Decline {
    error!(%error, "reading the store failed");
    Decline::system(
        ResponseCode::SystemMalfunction,
        "system malfunction: try again",
    )
}
