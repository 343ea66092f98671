//! The flows: reversal (terminal and host), void, refund.
//!
//! Every command on one original is serialized by a short lock, the issuer is called with ids
//! that stay the same on every retry (the original's transaction id for a reversal or void, the
//! refund's own id for a refund), and the event is on the topic before the answer leaves. A
//! system failure (issuer silent, broker down) answers a code that makes the terminal try
//! again; the retry runs under the same ids, so nothing is undone or credited twice.
//!
//! Reversals are idempotent per original: the reversal aggregate `{terminal}:{batch}:{stan}`
//! records `TransactionReversed` at most once, and every other reversal of the same original
//! (a repeat, a host reversal, an unknown or declined original) records `ReversalAcknowledged`
//! and changes nothing. A reversal that arrives before its original leaves a mark that makes
//! authorization refuse the original; if authorization already had it in hand, the issuer is
//! asked to undo it by the transaction id authorization claimed, and the approval, when its
//! event arrives, is recorded as reversed by the follower.

use std::time::SystemTime;

use pos_domain::{Pan, ResponseCode, TokenKey};
use pos_events::{AggregateRef, EventPublisher, Payload, Topic, new_envelope};
use pos_facts::txn::{Records, TxnRecord, kind_type};
use pos_proto::v1 as pb;
use prost::Message;
use tracing::{info, warn};

use crate::config::Approval;
use crate::error::{Result, ReversalError};
use crate::facts::{
    new_rrn, original_facts, original_ref, record_amount, record_card, refund_answer, void_answer,
};
use crate::issuer::Issuer;
use crate::metrics;
use crate::rules::{self, Effects, RefundAsk, Refusal, VoidAsk, is_reversible, yuan};
use crate::state::{ReversalState, State, StepClaim, StepFound, StepKind};

/// Name of this service in event envelopes.
pub const PRODUCER: &str = "reversal";

/// Settings of the flows.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Refund window in days.
    pub refund_window_days: u32,
    /// Who may authorize a void.
    pub void_approval: Approval,
    /// Who may authorize a refund.
    pub refund_approval: Approval,
    /// The business day steps are dated in.
    pub business_day: pos_domain::time::BusinessDay,
}

/// Everything a request needs.
#[derive(Debug)]
pub struct Service {
    /// Transaction records written by authorization.
    pub records: Records,
    /// This service's state.
    pub state: State,
    /// Event publisher.
    pub publisher: EventPublisher,
    /// The issuer.
    pub issuer: Issuer,
    /// Card tokens and request fingerprints.
    pub tokens: TokenKey,
    /// Settings.
    pub policy: Policy,
}

/// Who asked for a reversal.
#[derive(Debug, Clone)]
pub struct ReversalAsk {
    /// Terminal, batch and STAN of the original.
    pub trace: (String, u32, u32),
    /// Reason code ("98", "A0", "06", "UNDELIVERED", ...).
    pub reason: String,
    /// Terminal, host or operator.
    pub initiator: pb::ReversalInitiator,
    /// A repeat (0401).
    pub repeat: bool,
    /// Amount the terminal gave (used when the original is not known here yet).
    pub amount: Option<pb::Money>,
    /// Merchant, for the acknowledgement event.
    pub merchant_id: String,
    /// Type of the original as the caller knows it.
    pub original_type: i32,
}

/// What a reversal did.
#[derive(Debug, Clone)]
pub struct ReversalDone {
    /// "00", or a code meaning "send it again".
    pub code: ResponseCode,
    /// Words for the cashier.
    pub message: String,
    /// What happened.
    pub outcome: pb::ReversalOutcome,
    /// The reversal's id.
    pub reversal_id: String,
    /// The original as found.
    pub original: pb::OriginalTransactionRef,
}

fn outcome_name(outcome: pb::ReversalOutcome) -> &'static str {
    match outcome {
        pb::ReversalOutcome::Reversed => "reversed",
        pb::ReversalOutcome::AlreadyReversed => "already_reversed",
        pb::ReversalOutcome::OriginalNotFound => "original_not_found",
        pb::ReversalOutcome::OriginalDeclined => "original_declined",
        pb::ReversalOutcome::Unspecified => "unspecified",
    }
}

fn initiator_name(initiator: pb::ReversalInitiator) -> &'static str {
    match initiator {
        pb::ReversalInitiator::Terminal => "terminal",
        pb::ReversalInitiator::Host => "host",
        pb::ReversalInitiator::Operator => "operator",
        pb::ReversalInitiator::Unspecified => "unspecified",
    }
}

impl Service {
    /// Reverses the original named by `ask.trace`, or acknowledges that nothing needs undoing.
    /// `known` is the original's record when the caller has it (the follower builds it from
    /// the approval's event, which may be ahead of authorization's record).
    pub async fn reverse(
        &self,
        ask: &ReversalAsk,
        known: Option<TxnRecord>,
    ) -> Result<ReversalDone> {
        let (terminal_id, batch_no, stan) = (&ask.trace.0, ask.trace.1, ask.trace.2);
        let reversal_id = reversal_id(terminal_id, batch_no, stan);
        // The mark goes first: from here on authorization refuses to start the original.
        if ask.initiator == pb::ReversalInitiator::Terminal {
            self.state
                .mark_trace(terminal_id, batch_no, stan, &reversal_id)
                .await?;
        }
        let Some(lock) = self.state.lock(&format!("reversal:{reversal_id}")).await? else {
            return Err(ReversalError::Busy);
        };
        let result = self.reverse_locked(ask, &reversal_id, known).await;
        if let Err(error) = lock.release().await {
            warn!(%error, "releasing a reversal lock");
        }
        let done = result?;
        metrics::REVERSALS
            .with_label_values(&[initiator_name(ask.initiator), outcome_name(done.outcome)])
            .inc();
        Ok(done)
    }

    async fn reverse_locked(
        &self,
        ask: &ReversalAsk,
        reversal_id: &str,
        known: Option<TxnRecord>,
    ) -> Result<ReversalDone> {
        let (terminal_id, batch_no, stan) = (&ask.trace.0, ask.trace.1, ask.trace.2);
        let aggregate = self.state.reversal(reversal_id).await?;
        let record = match known {
            Some(record) => Some(record),
            None => self.records.by_trace(terminal_id, batch_no, stan).await?,
        };
        let named = record.as_ref().map_or_else(
            || pb::OriginalTransactionRef {
                terminal_id: terminal_id.clone(),
                batch_no,
                stan,
                transaction_type: ask.original_type,
                amount: ask.amount.clone(),
                ..pb::OriginalTransactionRef::default()
            },
            original_ref,
        );
        if aggregate.reversed {
            return self
                .acknowledge(
                    ask,
                    reversal_id,
                    aggregate,
                    named,
                    pb::ReversalOutcome::AlreadyReversed,
                )
                .await;
        }
        if record.is_none()
            && let Some(found) = self
                .state
                .step(StepKind::Void, (terminal_id, batch_no, stan))
                .await?
        {
            return self
                .reverse_void(ask, reversal_id, aggregate, named, found)
                .await;
        }
        let Some(record) = record else {
            // Not decided yet, or never arrived. If authorization claimed it, the issuer may
            // be acting on it right now: undo by the claimed id (the issuer then refuses a late
            // original, or credits back what it approved).
            if let Some(claimed) = self
                .state
                .claimed_transaction(terminal_id, batch_no, stan)
                .await?
            {
                let answer = self
                    .issuer
                    .reverse(reversal_id, &claimed, ask.amount.clone(), &ask.reason)
                    .await
                    .map_err(ReversalError::Issuer)?;
                if answer.response_code != "00" {
                    return Err(ReversalError::Issuer(format!(
                        "the issuer refused the reversal of {claimed}: {} {}",
                        answer.response_code, answer.response_message
                    )));
                }
                info!(%reversal_id, transaction_id = %claimed, outcome = answer.outcome, "reversed at the issuer before the original was recorded");
            }
            return self
                .acknowledge(
                    ask,
                    reversal_id,
                    aggregate,
                    named,
                    pb::ReversalOutcome::OriginalNotFound,
                )
                .await;
        };
        if !record.approved() || record.unrecorded || !is_reversible(&record) {
            // A declined original moved nothing, unless the issuer never answered ("91") or the
            // decision was never published: then undo at the issuer, which is idempotent.
            if record.response_code == "91" || record.unrecorded {
                self.undo_unknown(&record, &ask.reason).await?;
            }
            return self
                .acknowledge(
                    ask,
                    reversal_id,
                    aggregate,
                    named,
                    pb::ReversalOutcome::OriginalDeclined,
                )
                .await;
        }
        let effects = self.state.effects(&record.transaction_id).await?;
        if effects.voided_by.is_some() || effects.reversed_by.is_some() {
            return self
                .acknowledge(
                    ask,
                    reversal_id,
                    aggregate,
                    named,
                    pb::ReversalOutcome::AlreadyReversed,
                )
                .await;
        }
        let answer = self
            .issuer
            .reverse(
                reversal_id,
                &record.transaction_id,
                record_amount(&record),
                &ask.reason,
            )
            .await
            .map_err(ReversalError::Issuer)?;
        if answer.response_code != "00" {
            return Err(ReversalError::Issuer(format!(
                "the issuer refused the reversal of {}: {} {}",
                record.transaction_id, answer.response_code, answer.response_message
            )));
        }
        let seq = aggregate.seq + 1;
        let event = pb::TransactionReversed {
            reversal_id: reversal_id.to_owned(),
            original: Some(original_facts(&record)),
            reason_code: ask.reason.clone(),
            initiator: ask.initiator as i32,
            amount: record_amount(&record),
            issuer_reference: answer.issuer_reference,
            business_date: self.policy.business_day.today(),
        };
        self.publish(
            "reversal",
            reversal_id,
            seq,
            terminal_id,
            Payload::TransactionReversed(event),
        )
        .await?;
        self.state
            .set_reversal(
                reversal_id,
                ReversalState {
                    seq,
                    reversed: true,
                },
            )
            .await?;
        self.state
            .mark_reversed(&record.transaction_id, reversal_id)
            .await?;
        info!(%reversal_id, transaction_id = %record.transaction_id, reason = %ask.reason, "transaction reversed");
        Ok(ReversalDone {
            code: ResponseCode::Approved,
            message: format!(
                "reversed: {} {} returned to the card",
                yuan(record.amount_minor.unwrap_or_default()),
                record.currency
            ),
            outcome: pb::ReversalOutcome::Reversed,
            reversal_id: reversal_id.to_owned(),
            original: named,
        })
    }

    /// Reverses a void (the terminal got no answer to it): the issuer takes the void's credit
    /// back and the original stands again.
    async fn reverse_void(
        &self,
        ask: &ReversalAsk,
        reversal_id: &str,
        aggregate: ReversalState,
        named: pb::OriginalTransactionRef,
        found: StepFound,
    ) -> Result<ReversalDone> {
        let StepFound::Done(answer) = found else {
            // The void is still being decided: its outcome comes first, then its reversal.
            return Err(ReversalError::Busy);
        };
        let void = pb::ReversalVoidResponse::decode(answer.as_slice())
            .map_err(|e| ReversalError::Internal(format!("stored void answer: {e}")))?;
        if void.response_code != "00" {
            return self
                .acknowledge(
                    ask,
                    reversal_id,
                    aggregate,
                    named,
                    pb::ReversalOutcome::OriginalDeclined,
                )
                .await;
        }
        let answer = self
            .issuer
            .reverse(reversal_id, &void.void_id, void.amount.clone(), &ask.reason)
            .await
            .map_err(ReversalError::Issuer)?;
        if answer.response_code != "00" {
            return Err(ReversalError::Issuer(format!(
                "the issuer refused the reversal of void {}: {} {}",
                void.void_id, answer.response_code, answer.response_message
            )));
        }
        let (terminal_id, batch_no, stan) = (&ask.trace.0, ask.trace.1, ask.trace.2);
        let trace = pb::TerminalTraceRef {
            terminal_id: terminal_id.clone(),
            batch_no,
            stan,
        };
        let facts = pb::TransactionFacts {
            transaction_id: void.void_id.clone(),
            transaction_type: void.transaction_type,
            merchant_id: ask.merchant_id.clone(),
            trace: Some(trace),
            amount: void.amount.clone(),
            card: void.card.clone(),
            rrn: void.rrn.clone(),
            approval_code: void.approval_code.clone(),
            response_code: void.response_code.clone(),
            original: void.original.clone(),
            business_date: void.business_date.clone(),
            ..pb::TransactionFacts::default()
        };
        let seq = aggregate.seq + 1;
        let event = pb::TransactionReversed {
            reversal_id: reversal_id.to_owned(),
            original: Some(facts),
            reason_code: ask.reason.clone(),
            initiator: ask.initiator as i32,
            amount: void.amount.clone(),
            issuer_reference: answer.issuer_reference,
            business_date: self.policy.business_day.today(),
        };
        self.publish(
            "reversal",
            reversal_id,
            seq,
            terminal_id,
            Payload::TransactionReversed(event),
        )
        .await?;
        self.state
            .set_reversal(
                reversal_id,
                ReversalState {
                    seq,
                    reversed: true,
                },
            )
            .await?;
        if let Some(original) = &void.original {
            self.state.unmark_voided(&original.transaction_id).await?;
        }
        info!(%reversal_id, void_id = %void.void_id, "void reversed: the original stands again");
        Ok(ReversalDone {
            code: ResponseCode::Approved,
            message: "void reversed: the original transaction stands".to_owned(),
            outcome: pb::ReversalOutcome::Reversed,
            reversal_id: reversal_id.to_owned(),
            original: pb::OriginalTransactionRef {
                transaction_id: void.void_id,
                terminal_id: terminal_id.clone(),
                batch_no,
                stan,
                rrn: void.rrn,
                approval_code: void.approval_code,
                business_date: void.business_date,
                transaction_type: void.transaction_type,
                amount: void.amount,
            },
        })
    }

    /// Records that a reversal changed nothing, and answers success.
    async fn acknowledge(
        &self,
        ask: &ReversalAsk,
        reversal_id: &str,
        aggregate: ReversalState,
        original: pb::OriginalTransactionRef,
        outcome: pb::ReversalOutcome,
    ) -> Result<ReversalDone> {
        let seq = aggregate.seq + 1;
        let event = pb::ReversalAcknowledged {
            reversal_id: reversal_id.to_owned(),
            original: Some(original.clone()),
            merchant_id: ask.merchant_id.clone(),
            reason_code: ask.reason.clone(),
            initiator: ask.initiator as i32,
            outcome: outcome as i32,
            repeat: ask.repeat,
        };
        self.publish(
            "reversal",
            reversal_id,
            seq,
            &ask.trace.0,
            Payload::ReversalAcknowledged(event),
        )
        .await?;
        self.state
            .set_reversal(
                reversal_id,
                ReversalState {
                    seq,
                    reversed: aggregate.reversed,
                },
            )
            .await?;
        let message = match outcome {
            pb::ReversalOutcome::AlreadyReversed => "already reversed: nothing to do",
            pb::ReversalOutcome::OriginalDeclined => "the original was declined: nothing to undo",
            _ => "original not found: nothing to undo",
        };
        Ok(ReversalDone {
            code: ResponseCode::Approved,
            message: message.to_owned(),
            outcome,
            reversal_id: reversal_id.to_owned(),
            original,
        })
    }

    /// Undoes at the issuer an operation whose outcome nobody recorded (a "91" decline, an
    /// unpublished decision); no event, since the event log never counted it as money moved.
    pub async fn undo_unknown(&self, record: &TxnRecord, reason: &str) -> Result<()> {
        let cause = if record.unrecorded {
            "unrecorded"
        } else {
            "no_issuer_answer"
        };
        let answer = self
            .issuer
            .reverse(
                &format!("undo:{}", record.transaction_id),
                &record.transaction_id,
                record_amount(record),
                reason,
            )
            .await;
        match answer {
            Ok(answer) if answer.response_code == "00" => {
                metrics::HOST_UNDO.with_label_values(&[cause, "done"]).inc();
                if record.unrecorded {
                    self.records
                        .forget_unrecorded(&record.transaction_id)
                        .await?;
                }
                info!(transaction_id = %record.transaction_id, cause, outcome = answer.outcome, "issuer operation of unknown outcome undone");
                Ok(())
            }
            Ok(answer) => {
                metrics::HOST_UNDO
                    .with_label_values(&[cause, "refused"])
                    .inc();
                Err(ReversalError::Issuer(format!(
                    "the issuer refused to undo {}: {} {}",
                    record.transaction_id, answer.response_code, answer.response_message
                )))
            }
            Err(error) => {
                metrics::HOST_UNDO
                    .with_label_values(&[cause, "failed"])
                    .inc();
                Err(ReversalError::Issuer(error))
            }
        }
    }

    async fn publish(
        &self,
        kind: &str,
        id: &str,
        seq: u64,
        terminal_id: &str,
        payload: Payload,
    ) -> Result<()> {
        let envelope = new_envelope(&AggregateRef::new(kind, id), seq, PRODUCER, payload);
        self.publisher
            .publish(Topic::Transactions, terminal_id, &envelope)
            .await?;
        Ok(())
    }

    fn fingerprint(&self, purpose: &str, parts: &[&str]) -> String {
        let mut content = Vec::with_capacity(128);
        for part in parts {
            content.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            content.extend_from_slice(part.as_bytes());
        }
        self.tokens.keyed_hash(purpose, &content)
    }

    /// The token of a presented card; `Err` (answer "14") for a card number that is not one.
    fn card_token(
        &self,
        card: Option<&pb::CardData>,
    ) -> std::result::Result<Option<String>, Refusal> {
        match card.filter(|c| !c.pan.is_empty()) {
            None => Ok(None),
            Some(card) => Pan::parse(&card.pan)
                .map(|pan| Some(pan.token(&self.tokens).to_string()))
                .map_err(|_| Refusal {
                    code: ResponseCode::InvalidCardNumber,
                    reason: "the card number is not valid".to_owned(),
                }),
        }
    }

    /// Void 撤销 of a purchase or completion of the terminal's open batch.
    pub async fn void(&self, request: pb::ReversalVoidRequest) -> Result<pb::ReversalVoidResponse> {
        let trace = request
            .trace
            .clone()
            .ok_or_else(|| ReversalError::Malformed("a void needs its own trace".to_owned()))?;
        validate_trace(&trace)?;
        let (by_stan, by_rrn) = match &request.original {
            Some(pb::reversal_void_request::Original::OriginalStan(stan)) if *stan > 0 => {
                (Some(*stan), None)
            }
            Some(pb::reversal_void_request::Original::OriginalRrn(rrn)) if !rrn.is_empty() => {
                (None, Some(rrn.clone()))
            }
            _ => {
                return Err(ReversalError::Malformed(
                    "a void names its original by STAN or RRN".to_owned(),
                ));
            }
        };
        let amount = request.amount.clone().unwrap_or_default();
        let pan = request.card.as_ref().map_or("", |c| c.pan.as_str());
        let fingerprint = self.fingerprint(
            "reversal-void",
            &[
                &request.merchant_id,
                &by_stan.map(|s| s.to_string()).unwrap_or_default(),
                by_rrn.as_deref().unwrap_or(""),
                &amount.minor_units.to_string(),
                &amount.currency,
                pan,
            ],
        );
        let key = (trace.terminal_id.as_str(), trace.batch_no, trace.stan);
        let void_id = match self
            .claim::<pb::ReversalVoidResponse>(StepKind::Void, key, &fingerprint, "void")
            .await?
        {
            Claimed::Run(id) => id,
            Claimed::Answer(answer) => return Ok(answer),
        };
        let result = self
            .void_claimed(&request, &trace, by_stan, by_rrn, &fingerprint, &void_id)
            .await;
        match result {
            Ok(answer) => {
                metrics::STEPS
                    .with_label_values(&["void", &answer.response_code])
                    .inc();
                Ok(answer)
            }
            Err(error) => {
                if let Err(e) = self
                    .state
                    .retry_step(StepKind::Void, key, &fingerprint, &void_id)
                    .await
                {
                    warn!(error = %e, "keeping a failed void for its retry");
                }
                Err(error)
            }
        }
    }

    async fn void_claimed(
        &self,
        request: &pb::ReversalVoidRequest,
        trace: &pb::TerminalTraceRef,
        by_stan: Option<u32>,
        by_rrn: Option<String>,
        fingerprint: &str,
        void_id: &str,
    ) -> Result<pb::ReversalVoidResponse> {
        let record = match (by_stan, by_rrn) {
            (Some(stan), _) => {
                self.records
                    .by_trace(&trace.terminal_id, trace.batch_no, stan)
                    .await?
            }
            (None, Some(rrn)) => self.records.by_rrn(&rrn).await?,
            (None, None) => None,
        };
        let lock = match &record {
            Some(r) => match self
                .state
                .lock(&format!("orig:{}", r.transaction_id))
                .await?
            {
                Some(lock) => Some(lock),
                None => return Err(ReversalError::Busy),
            },
            None => None,
        };
        let result = self
            .void_locked(request, trace, record.as_ref(), fingerprint, void_id)
            .await;
        if let Some(lock) = lock
            && let Err(error) = lock.release().await
        {
            warn!(%error, "releasing an original's lock");
        }
        result
    }

    async fn void_locked(
        &self,
        request: &pb::ReversalVoidRequest,
        trace: &pb::TerminalTraceRef,
        record: Option<&TxnRecord>,
        fingerprint: &str,
        void_id: &str,
    ) -> Result<pb::ReversalVoidResponse> {
        let effects = match record {
            Some(r) => self.state.effects(&r.transaction_id).await?,
            None => Effects::default(),
        };
        let batch_closed = self
            .state
            .batch_closed(&trace.terminal_id, trace.batch_no)
            .await?;
        let void_type = match record.map(|r| r.kind.as_str()) {
            Some("pre_auth_completion") => pb::TransactionType::CompletionVoid,
            _ => pb::TransactionType::PurchaseVoid,
        };
        let mut facts = pb::TransactionFacts {
            transaction_id: void_id.to_owned(),
            transaction_type: void_type as i32,
            merchant_id: request.merchant_id.clone(),
            trace: Some(trace.clone()),
            operator_no: request.operator_no.clone(),
            amount: request.amount.clone(),
            card: record.and_then(record_card),
            entry_mode: request.card.as_ref().map_or(0, |c| c.entry_mode),
            original: record.map(original_ref),
            business_date: self.policy.business_day.today(),
            local_datetime: request.local_datetime.clone(),
            request_digest: fingerprint.to_owned(),
            ..pb::TransactionFacts::default()
        };
        let reversed_first = self
            .state
            .is_marked(&trace.terminal_id, trace.batch_no, trace.stan)
            .await?;
        let checked = self.card_token(request.card.as_ref()).and_then(|token| {
            if reversed_first {
                return Err(Refusal {
                    code: ResponseCode::InvalidTransaction,
                    reason: "this void was reversed by the terminal before it arrived".to_owned(),
                });
            }
            let amount = request
                .amount
                .as_ref()
                .map(|m| (m.minor_units, m.currency.as_str()));
            rules::check_void(
                record.map(|r| (r, &effects)),
                &VoidAsk {
                    terminal_id: &trace.terminal_id,
                    merchant_id: &request.merchant_id,
                    batch_no: trace.batch_no,
                    authorized_by: &request.authorized_by_operator_no,
                    amount,
                    card_token: token.as_deref(),
                    batch_closed,
                },
                self.policy.void_approval,
            )
        });
        let (Some(record), Ok(())) = (record, checked.as_ref()) else {
            let refusal = checked.err().unwrap_or(Refusal {
                code: ResponseCode::OriginalNotFound,
                reason: "original not found".to_owned(),
            });
            return self.void_declined(facts, trace, fingerprint, refusal).await;
        };
        // At the issuer a void is a credit of the full amount under the void's own id, so
        // that the void itself can be reversed (the issuer takes the credit back).
        let answer = self
            .issuer
            .refund(pb::IssuerRefundRequest {
                acquirer_transaction_id: void_id.to_owned(),
                original_acquirer_transaction_id: record.transaction_id.clone(),
                original_approval_code: record.approval_code.clone(),
                original_rrn: record.rrn.clone(),
                amount: record_amount(record),
                pan: request
                    .card
                    .as_ref()
                    .map(|c| c.pan.clone())
                    .unwrap_or_default(),
                merchant_id: request.merchant_id.clone(),
                terminal_id: trace.terminal_id.clone(),
                transmitted_at: Some(prost_types::Timestamp::from(SystemTime::now())),
            })
            .await
            .map_err(ReversalError::Issuer)?;
        if answer.response_code != "00" {
            let code =
                ResponseCode::parse(&answer.response_code).unwrap_or(ResponseCode::DoNotHonour);
            if matches!(
                code,
                ResponseCode::SystemMalfunction | ResponseCode::IssuerUnavailable
            ) {
                return Err(ReversalError::Issuer(format!(
                    "the issuer could not void now: {} {}",
                    answer.response_code, answer.response_message
                )));
            }
            let refusal = Refusal {
                code,
                reason: format!("the issuer refused the void: {}", answer.response_message),
            };
            return self.void_declined(facts, trace, fingerprint, refusal).await;
        }
        facts.response_code = ResponseCode::Approved.code().to_owned();
        facts.response_message = format!(
            "voided: {} {} returned to the card",
            yuan(record.amount_minor.unwrap_or_default()),
            record.currency
        );
        facts.rrn = if answer.rrn.is_empty() {
            new_rrn()
        } else {
            answer.rrn
        };
        facts.approval_code = if answer.approval_code.is_empty() {
            record.approval_code.clone()
        } else {
            answer.approval_code
        };
        facts.issuer_reference = answer.issuer_reference;
        facts.amount = record_amount(record);
        let event = pb::TransactionVoided {
            txn: Some(facts.clone()),
            authorized_by_operator_no: request.authorized_by_operator_no.clone(),
        };
        self.publish(
            "void",
            void_id,
            1,
            &trace.terminal_id,
            Payload::TransactionVoided(event),
        )
        .await?;
        self.state
            .mark_voided(&record.transaction_id, void_id)
            .await?;
        let mut answer = void_answer(&facts);
        answer.decided_at = Some(prost_types::Timestamp::from(SystemTime::now()));
        self.state
            .finish_step(
                StepKind::Void,
                (&trace.terminal_id, trace.batch_no, trace.stan),
                fingerprint,
                void_id,
                &answer.encode_to_vec(),
            )
            .await?;
        info!(void_id, original = %record.transaction_id, "transaction voided");
        Ok(answer)
    }

    async fn void_declined(
        &self,
        mut facts: pb::TransactionFacts,
        trace: &pb::TerminalTraceRef,
        fingerprint: &str,
        refusal: Refusal,
    ) -> Result<pb::ReversalVoidResponse> {
        facts.response_code = refusal.code.code().to_owned();
        facts.response_message = refusal.reason.clone();
        let void_id = facts.transaction_id.clone();
        let event = pb::VoidDeclined {
            txn: Some(facts.clone()),
            reason: refusal.reason,
        };
        self.publish(
            "void",
            &void_id,
            1,
            &trace.terminal_id,
            Payload::VoidDeclined(event),
        )
        .await?;
        let mut answer = void_answer(&facts);
        answer.decided_at = Some(prost_types::Timestamp::from(SystemTime::now()));
        self.state
            .finish_step(
                StepKind::Void,
                (&trace.terminal_id, trace.batch_no, trace.stan),
                fingerprint,
                &void_id,
                &answer.encode_to_vec(),
            )
            .await?;
        Ok(answer)
    }

    /// Refund 退货 of an earlier purchase or completion by RRN and date.
    pub async fn refund(
        &self,
        request: pb::ReversalRefundRequest,
    ) -> Result<pb::ReversalRefundResponse> {
        let trace = request
            .trace
            .clone()
            .ok_or_else(|| ReversalError::Malformed("a refund needs its own trace".to_owned()))?;
        validate_trace(&trace)?;
        if request.original_rrn.is_empty() || request.original_date.is_empty() {
            return Err(ReversalError::Malformed(
                "a refund names its original by RRN and date".to_owned(),
            ));
        }
        let amount = request.amount.clone().unwrap_or_default();
        let pan = request.card.as_ref().map_or("", |c| c.pan.as_str());
        let fingerprint = self.fingerprint(
            "reversal-refund",
            &[
                &request.merchant_id,
                &request.original_rrn,
                &request.original_date,
                &amount.minor_units.to_string(),
                &amount.currency,
                pan,
            ],
        );
        let key = (trace.terminal_id.as_str(), trace.batch_no, trace.stan);
        let refund_id = match self
            .claim::<pb::ReversalRefundResponse>(StepKind::Refund, key, &fingerprint, "refund")
            .await?
        {
            Claimed::Run(id) => id,
            Claimed::Answer(answer) => return Ok(answer),
        };
        let record = self.records.by_rrn(&request.original_rrn).await?;
        let lock = match &record {
            Some(r) => match self
                .state
                .lock(&format!("orig:{}", r.transaction_id))
                .await?
            {
                Some(lock) => Some(lock),
                None => {
                    self.state
                        .retry_step(StepKind::Refund, key, &fingerprint, &refund_id)
                        .await?;
                    return Err(ReversalError::Busy);
                }
            },
            None => None,
        };
        let result = self
            .refund_locked(&request, &trace, record.as_ref(), &fingerprint, &refund_id)
            .await;
        if let Some(lock) = lock
            && let Err(error) = lock.release().await
        {
            warn!(%error, "releasing an original's lock");
        }
        match result {
            Ok(answer) => {
                metrics::STEPS
                    .with_label_values(&["refund", &answer.response_code])
                    .inc();
                Ok(answer)
            }
            Err(error) => {
                if let Err(e) = self
                    .state
                    .retry_step(StepKind::Refund, key, &fingerprint, &refund_id)
                    .await
                {
                    warn!(error = %e, "keeping a failed refund for its retry");
                }
                Err(error)
            }
        }
    }

    async fn refund_locked(
        &self,
        request: &pb::ReversalRefundRequest,
        trace: &pb::TerminalTraceRef,
        record: Option<&TxnRecord>,
        fingerprint: &str,
        refund_id: &str,
    ) -> Result<pb::ReversalRefundResponse> {
        let effects = match record {
            Some(r) => self.state.effects(&r.transaction_id).await?,
            None => Effects::default(),
        };
        let mut facts = pb::TransactionFacts {
            transaction_id: refund_id.to_owned(),
            transaction_type: pb::TransactionType::Refund as i32,
            merchant_id: request.merchant_id.clone(),
            trace: Some(trace.clone()),
            operator_no: request.operator_no.clone(),
            amount: request.amount.clone(),
            card: record.and_then(record_card),
            entry_mode: request.card.as_ref().map_or(0, |c| c.entry_mode),
            original: Some(record.map_or_else(
                || pb::OriginalTransactionRef {
                    rrn: request.original_rrn.clone(),
                    business_date: request.original_date.clone(),
                    ..pb::OriginalTransactionRef::default()
                },
                original_ref,
            )),
            business_date: self.policy.business_day.today(),
            local_datetime: request.local_datetime.clone(),
            request_digest: fingerprint.to_owned(),
            ..pb::TransactionFacts::default()
        };
        let today = self.policy.business_day.today();
        let checked = self.card_token(request.card.as_ref()).and_then(|token| {
            let amount = request
                .amount
                .as_ref()
                .map(|m| (m.minor_units, m.currency.as_str()));
            rules::check_refund(
                record.map(|r| (r, &effects)),
                &RefundAsk {
                    merchant_id: &request.merchant_id,
                    original_date: &request.original_date,
                    amount,
                    authorized_by: &request.authorized_by_operator_no,
                    card_token: token.as_deref(),
                    today: &today,
                    window_days: self.policy.refund_window_days,
                },
                self.policy.refund_approval,
            )
        });
        let (Some(record), Ok(plan)) = (record, checked.as_ref()) else {
            let refusal = checked.err().unwrap_or(Refusal {
                code: ResponseCode::OriginalNotFound,
                reason: "original not found".to_owned(),
            });
            return self
                .refund_declined(facts, trace, fingerprint, refusal)
                .await;
        };
        let money = |minor: i64| pb::Money {
            minor_units: minor,
            currency: record.currency.clone(),
        };
        let answer = self
            .issuer
            .refund(pb::IssuerRefundRequest {
                acquirer_transaction_id: refund_id.to_owned(),
                original_acquirer_transaction_id: record.transaction_id.clone(),
                original_approval_code: record.approval_code.clone(),
                original_rrn: record.rrn.clone(),
                amount: Some(money(plan.amount_minor)),
                pan: request
                    .card
                    .as_ref()
                    .map(|c| c.pan.clone())
                    .unwrap_or_default(),
                merchant_id: request.merchant_id.clone(),
                terminal_id: trace.terminal_id.clone(),
                transmitted_at: Some(prost_types::Timestamp::from(SystemTime::now())),
            })
            .await
            .map_err(ReversalError::Issuer)?;
        if answer.response_code != "00" {
            let code =
                ResponseCode::parse(&answer.response_code).unwrap_or(ResponseCode::DoNotHonour);
            if matches!(
                code,
                ResponseCode::SystemMalfunction | ResponseCode::IssuerUnavailable
            ) {
                return Err(ReversalError::Issuer(format!(
                    "the issuer could not refund now: {} {}",
                    answer.response_code, answer.response_message
                )));
            }
            let refusal = Refusal {
                code,
                reason: format!("the issuer refused the refund: {}", answer.response_message),
            };
            return self
                .refund_declined(facts, trace, fingerprint, refusal)
                .await;
        }
        let total = money(plan.refunded_total_minor);
        let remaining = money(plan.remaining_minor);
        facts.response_code = ResponseCode::Approved.code().to_owned();
        facts.response_message = format!(
            "refunded {} of {} {}",
            yuan(plan.refunded_total_minor),
            yuan(record.amount_minor.unwrap_or_default()),
            record.currency
        );
        facts.rrn = if answer.rrn.is_empty() {
            new_rrn()
        } else {
            answer.rrn
        };
        facts.approval_code = answer.approval_code;
        facts.issuer_reference = answer.issuer_reference;
        facts.amount = Some(money(plan.amount_minor));
        let event = pb::TransactionRefunded {
            txn: Some(facts.clone()),
            refunded_total: Some(total.clone()),
            remaining_refundable: Some(remaining.clone()),
            partial: plan.partial,
            authorized_by_operator_no: request.authorized_by_operator_no.clone(),
        };
        self.publish(
            "refund",
            refund_id,
            1,
            &trace.terminal_id,
            Payload::TransactionRefunded(event),
        )
        .await?;
        self.state
            .add_refund(&record.transaction_id, refund_id, plan.amount_minor)
            .await?;
        let mut answer = refund_answer(&facts, Some((&total, &remaining, plan.partial)));
        answer.decided_at = Some(prost_types::Timestamp::from(SystemTime::now()));
        self.state
            .finish_step(
                StepKind::Refund,
                (&trace.terminal_id, trace.batch_no, trace.stan),
                fingerprint,
                refund_id,
                &answer.encode_to_vec(),
            )
            .await?;
        info!(refund_id, original = %record.transaction_id, amount = plan.amount_minor, "transaction refunded");
        Ok(answer)
    }

    async fn refund_declined(
        &self,
        mut facts: pb::TransactionFacts,
        trace: &pb::TerminalTraceRef,
        fingerprint: &str,
        refusal: Refusal,
    ) -> Result<pb::ReversalRefundResponse> {
        facts.response_code = refusal.code.code().to_owned();
        facts.response_message = refusal.reason.clone();
        let refund_id = facts.transaction_id.clone();
        let event = pb::RefundDeclined {
            txn: Some(facts.clone()),
            reason: refusal.reason,
        };
        self.publish(
            "refund",
            &refund_id,
            1,
            &trace.terminal_id,
            Payload::RefundDeclined(event),
        )
        .await?;
        let mut answer = refund_answer(&facts, None);
        answer.decided_at = Some(prost_types::Timestamp::from(SystemTime::now()));
        self.state
            .finish_step(
                StepKind::Refund,
                (&trace.terminal_id, trace.batch_no, trace.stan),
                fingerprint,
                &refund_id,
                &answer.encode_to_vec(),
            )
            .await?;
        Ok(answer)
    }

    /// The type of a record, for callers that only have the record.
    pub fn type_of(record: &TxnRecord) -> i32 {
        kind_type(&record.kind) as i32
    }
}

/// What claiming a void's or refund's trace gave.
enum Claimed<T> {
    /// Run it under this id.
    Run(String),
    /// Answer this (the first answer, or "94" for other content under the same trace).
    Answer(T),
}

/// Answers of voids and refunds: their code and message fields.
trait StepAnswer: Message + Default {
    fn refused(code: ResponseCode, message: &str) -> Self;
}

impl StepAnswer for pb::ReversalVoidResponse {
    fn refused(code: ResponseCode, message: &str) -> Self {
        Self {
            response_code: code.code().to_owned(),
            response_message: message.to_owned(),
            ..Self::default()
        }
    }
}

impl StepAnswer for pb::ReversalRefundResponse {
    fn refused(code: ResponseCode, message: &str) -> Self {
        Self {
            response_code: code.code().to_owned(),
            response_message: message.to_owned(),
            ..Self::default()
        }
    }
}

impl Service {
    /// Claims the idempotency key of a void or refund: a fresh id to run under, the stored
    /// answer of an identical earlier request, or "94" for other content under the same trace.
    async fn claim<T: StepAnswer>(
        &self,
        kind: StepKind,
        key: (&str, u32, u32),
        fingerprint: &str,
        name: &str,
    ) -> Result<Claimed<T>> {
        let fresh = uuid::Uuid::now_v7().to_string();
        match self
            .state
            .claim_step(kind, key, fingerprint, &fresh, SystemTime::now())
            .await?
        {
            StepClaim::Run(id) => Ok(Claimed::Run(id)),
            StepClaim::Done(answer) => T::decode(answer.as_slice())
                .map(Claimed::Answer)
                .map_err(|e| ReversalError::Internal(format!("stored {name} answer: {e}"))),
            StepClaim::InProgress => Err(ReversalError::Busy),
            StepClaim::Conflict => Ok(Claimed::Answer(T::refused(
                ResponseCode::DuplicateTransmission,
                "duplicate transmission: this trace number was already used for another request",
            ))),
        }
    }
}

/// Id of the reversal aggregate of an original: its terminal, batch and STAN. Every reversal
/// of that original (repeats, host reversals) is an event of this one aggregate.
pub fn reversal_id(terminal_id: &str, batch_no: u32, stan: u32) -> String {
    format!("{terminal_id}:{batch_no}:{stan}")
}

/// A terminal trace must name a terminal, a batch and a STAN in range.
pub fn validate_trace(trace: &pb::TerminalTraceRef) -> Result<()> {
    pos_domain::TerminalId::parse(&trace.terminal_id)
        .map_err(|e| ReversalError::Malformed(format!("terminal id: {e}")))?;
    pos_domain::BatchNo::new(trace.batch_no)
        .map_err(|e| ReversalError::Malformed(format!("batch number: {e}")))?;
    pos_domain::Stan::new(trace.stan)
        .map_err(|e| ReversalError::Malformed(format!("trace number: {e}")))?;
    Ok(())
}
