//! Whether the host's answer settles a request. Only a MAC-verified answer to the request's
//! message that is the right kind of answer and repeats the request's STAN, batch, type, amount
//! and original counts: anything else (no answer, a broken stream, a failed MAC, a refusal at
//! the protocol level, an answer about another transaction) leaves the request in doubt, and a
//! request in doubt is reversed (REFERENCE.md "Reversal").

use pos_proto::v1 as pb;
use pos_proto::v1::host_message::Body as HostBody;

use crate::journal::{PendingReversal, ReasonCode};
use crate::link::NoAnswer;

/// What the answer to a financial request must repeat.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// The terminal's id.
    pub terminal_id: String,
    /// Batch of the request.
    pub batch_no: u32,
    /// STAN of the request.
    pub stan: u32,
    /// Amount of the request; `None` for a balance inquiry.
    pub amount: Option<pb::Money>,
    /// The transaction types the answer may name (a void of an original the terminal does not
    /// know is a purchase void or a completion void).
    pub types: Vec<pb::TransactionType>,
    /// The original the request names, if any.
    pub original: Original,
}

/// What the terminal knows of the original a request names (void, refund, completion, pre-auth
/// void); an answer naming another original is not about this request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Original {
    /// Its STAN in the current batch (void).
    pub stan: Option<u32>,
    /// Its RRN (void by RRN, refund).
    pub rrn: Option<String>,
    /// Its approval code (completion, pre-auth void).
    pub approval_code: Option<String>,
}

/// What became of a financial request.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A valid answer, approving or declining.
    Answered(Box<pb::TransactionResponse>),
    /// The host refused the message at the protocol level (an `ErrorResponse`, MACed or not):
    /// it says it did nothing, but that cannot settle a reversible request, which is reversed
    /// with "98" all the same.
    Refused {
        /// The host's response code.
        code: String,
        /// The host's message.
        message: String,
    },
    /// No valid answer: the request is in doubt and is reversed with `reason`.
    InDoubt {
        /// The reason code of the reversal.
        reason: ReasonCode,
        /// What went wrong, for the cashier.
        why: String,
    },
}

/// Judges the outcome of waiting for the answer to a request.
pub fn judge(expected: &Expected, outcome: Result<HostBody, NoAnswer>) -> Verdict {
    let in_doubt = |reason, why: String| Verdict::InDoubt { reason, why };
    let body = match outcome {
        Ok(body) => body,
        Err(NoAnswer::BadMac) => {
            return in_doubt(ReasonCode::MacFailure, NoAnswer::BadMac.to_string());
        }
        Err(other) => return in_doubt(ReasonCode::NoResponse, other.to_string()),
    };
    let response = match body {
        HostBody::Transaction(response) => response,
        HostBody::Error(error) => {
            return Verdict::Refused {
                code: error.response_code,
                message: error.response_message,
            };
        }
        _ => {
            return in_doubt(
                ReasonCode::NoResponse,
                "the host answered with something other than a transaction answer".to_owned(),
            );
        }
    };
    match mismatch(expected, &response) {
        Some(what) => in_doubt(
            ReasonCode::NoResponse,
            format!("the host's answer is not about this request: {what}"),
        ),
        None => Verdict::Answered(Box::new(response)),
    }
}

/// The first field of `response` that contradicts the request, if any. Fields the answer
/// leaves empty are not held against it.
fn mismatch(expected: &Expected, response: &pb::TransactionResponse) -> Option<String> {
    if response.stan != expected.stan {
        return Some(format!(
            "STAN {:06} instead of {:06}",
            response.stan, expected.stan
        ));
    }
    if response.batch_no != expected.batch_no {
        return Some(format!(
            "batch {:06} instead of {:06}",
            response.batch_no, expected.batch_no
        ));
    }
    if !response.terminal_id.is_empty() && response.terminal_id != expected.terminal_id {
        return Some(format!("terminal {}", response.terminal_id));
    }
    let kind = pb::TransactionType::try_from(response.transaction_type)
        .unwrap_or(pb::TransactionType::Unspecified);
    if !expected.types.contains(&kind) {
        return Some(format!("type {}", kind.as_str_name()));
    }
    if let (Some(want), Some(got)) = (&expected.amount, &response.amount)
        && (want.minor_units != got.minor_units || want.currency != got.currency)
    {
        return Some(format!(
            "amount {} {} instead of {} {}",
            got.minor_units, got.currency, want.minor_units, want.currency
        ));
    }
    let original = response.original.as_ref()?;
    let known = &expected.original;
    if let Some(stan) = known.stan
        && original.stan != 0
        && original.stan != stan
    {
        return Some(format!("original STAN {:06}", original.stan));
    }
    if let Some(rrn) = &known.rrn
        && !original.rrn.is_empty()
        && &original.rrn != rrn
    {
        return Some(format!("original RRN {}", original.rrn));
    }
    if let Some(code) = &known.approval_code
        && !original.approval_code.is_empty()
        && &original.approval_code != code
    {
        return Some(format!("original approval code {}", original.approval_code));
    }
    None
}

/// What became of one reversal attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReversalVerdict {
    /// The host answered "00": the reversal is done (or nothing needed doing).
    Acknowledged(pb::ReversalOutcome),
    /// Anything else: the reversal stays pending and is sent again.
    NotAcknowledged(String),
}

/// Judges the outcome of waiting for the answer to the reversal of `record`.
pub fn judge_reversal(
    record: &PendingReversal,
    outcome: Result<HostBody, NoAnswer>,
) -> ReversalVerdict {
    let not = ReversalVerdict::NotAcknowledged;
    let response = match outcome {
        Ok(HostBody::Reversal(response)) => response,
        Ok(HostBody::Error(error)) => {
            return not(format!(
                "refused by the host ({}): {}",
                error.response_code, error.response_message
            ));
        }
        Ok(_) => {
            return not("the host answered with something other than a reversal answer".into());
        }
        Err(no_answer) => return not(no_answer.to_string()),
    };
    let other = |field: u32, own: u32| field != 0 && field != own;
    if other(response.original_stan, record.stan)
        || other(response.original_batch_no, record.batch_no)
    {
        return not(format!(
            "the host answered about batch {:06} STAN {:06}",
            response.original_batch_no, response.original_stan
        ));
    }
    if response.response_code != "00" {
        return not(format!(
            "({}) {}",
            response.response_code, response.response_message
        ));
    }
    ReversalVerdict::Acknowledged(
        pb::ReversalOutcome::try_from(response.outcome).unwrap_or(pb::ReversalOutcome::Unspecified),
    )
}

/// The outcome's name without its prefix, e.g. "REVERSED".
pub fn outcome_name(outcome: pb::ReversalOutcome) -> &'static str {
    let name = outcome.as_str_name();
    name.strip_prefix("REVERSAL_OUTCOME_").unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Amount;
    use pb::TransactionType as T;

    fn cny(minor_units: i64) -> pb::Money {
        pb::Money {
            minor_units,
            currency: "CNY".to_owned(),
        }
    }

    fn purchase() -> Expected {
        Expected {
            terminal_id: "12345678".to_owned(),
            batch_no: 1,
            stan: 42,
            amount: Some(cny(5_000)),
            types: vec![T::Purchase],
            ..Expected::default()
        }
    }

    fn answer() -> pb::TransactionResponse {
        pb::TransactionResponse {
            response_code: "00".to_owned(),
            transaction_type: T::Purchase as i32,
            amount: Some(cny(5_000)),
            terminal_id: "12345678".to_owned(),
            batch_no: 1,
            stan: 42,
            ..pb::TransactionResponse::default()
        }
    }

    fn reason(verdict: &Verdict) -> Option<ReasonCode> {
        match verdict {
            Verdict::InDoubt { reason, .. } => Some(*reason),
            Verdict::Answered(_) | Verdict::Refused { .. } => None,
        }
    }

    #[test]
    fn a_matching_answer_settles_the_request_approved_or_declined() {
        let verdict = judge(&purchase(), Ok(HostBody::Transaction(answer())));
        assert_eq!(verdict, Verdict::Answered(Box::new(answer())));
        let mut declined = answer();
        declined.response_code = "51".to_owned();
        declined.amount = None;
        assert_eq!(
            reason(&judge(&purchase(), Ok(HostBody::Transaction(declined)))),
            None
        );
    }

    #[test]
    fn a_protocol_refusal_is_told_apart() {
        let refusal = HostBody::Error(pb::ErrorResponse {
            response_code: "12".to_owned(),
            response_message: "not signed in".to_owned(),
            closing: false,
        });
        assert_eq!(
            judge(&purchase(), Ok(refusal)),
            Verdict::Refused {
                code: "12".to_owned(),
                message: "not signed in".to_owned(),
            }
        );
    }

    #[test]
    fn no_answer_a_broken_stream_or_another_kind_of_answer_reverse_with_98() {
        for outcome in [
            Err(NoAnswer::Timeout(std::time::Duration::from_secs(60))),
            Err(NoAnswer::Closed(
                "the host closed the connection".to_owned(),
            )),
            Err(NoAnswer::Unusable("empty")),
            Ok(HostBody::Ack(pb::HostAck::default())),
        ] {
            assert_eq!(
                reason(&judge(&purchase(), outcome)),
                Some(ReasonCode::NoResponse)
            );
        }
    }

    #[test]
    fn a_failed_mac_reverses_with_a0() {
        assert_eq!(
            reason(&judge(&purchase(), Err(NoAnswer::BadMac))),
            Some(ReasonCode::MacFailure)
        );
    }

    #[test]
    fn an_answer_about_another_stan_batch_type_amount_or_terminal_reverses_with_98() {
        let changes: [fn(&mut pb::TransactionResponse); 6] = [
            |a| a.stan = 43,
            |a| a.batch_no = 2,
            |a| a.transaction_type = T::PreAuth as i32,
            |a| a.amount = Some(cny(5_001)),
            |a| {
                a.amount = Some(pb::Money {
                    minor_units: 5_000,
                    currency: "USD".to_owned(),
                })
            },
            |a| a.terminal_id = "87654321".to_owned(),
        ];
        for change in changes {
            let mut wrong = answer();
            change(&mut wrong);
            let verdict = judge(&purchase(), Ok(HostBody::Transaction(wrong)));
            assert_eq!(
                reason(&verdict),
                Some(ReasonCode::NoResponse),
                "{verdict:?}"
            );
        }
    }

    #[test]
    fn a_void_answer_must_name_the_original_it_was_asked_about() {
        let void = Expected {
            types: vec![T::PurchaseVoid, T::CompletionVoid],
            original: Original {
                stan: Some(7),
                ..Original::default()
            },
            ..purchase()
        };
        let mut good = answer();
        good.transaction_type = T::CompletionVoid as i32;
        good.original = Some(pb::OriginalTransactionRef {
            stan: 7,
            ..pb::OriginalTransactionRef::default()
        });
        assert!(matches!(
            judge(&void, Ok(HostBody::Transaction(good.clone()))),
            Verdict::Answered(_)
        ));
        let mut other = good;
        if let Some(original) = other.original.as_mut() {
            original.stan = 8;
        }
        assert_eq!(
            reason(&judge(&void, Ok(HostBody::Transaction(other)))),
            Some(ReasonCode::NoResponse)
        );
        let refund = Expected {
            types: vec![T::Refund],
            original: Original {
                rrn: Some("612345678901".to_owned()),
                ..Original::default()
            },
            ..purchase()
        };
        let mut wrong_rrn = answer();
        wrong_rrn.transaction_type = T::Refund as i32;
        wrong_rrn.original = Some(pb::OriginalTransactionRef {
            rrn: "699999999999".to_owned(),
            ..pb::OriginalTransactionRef::default()
        });
        assert!(reason(&judge(&refund, Ok(HostBody::Transaction(wrong_rrn)))).is_some());
    }

    fn record() -> PendingReversal {
        PendingReversal {
            batch_no: 1,
            stan: 42,
            original_type: T::Purchase,
            amount: Amount::from(&cny(5_000)),
            operator_no: "01".to_owned(),
            local_datetime: String::new(),
            masked_pan: String::new(),
            reason: ReasonCode::NoResponse,
            attempts: 0,
            written_at: String::new(),
        }
    }

    fn reversal_answer(code: &str, stan: u32) -> Result<HostBody, NoAnswer> {
        Ok(HostBody::Reversal(pb::ReversalResponse {
            response_code: code.to_owned(),
            original_batch_no: 1,
            original_stan: stan,
            outcome: pb::ReversalOutcome::OriginalNotFound as i32,
            ..pb::ReversalResponse::default()
        }))
    }

    #[test]
    fn only_a_00_about_the_same_original_acknowledges_a_reversal() {
        let acknowledged = judge_reversal(&record(), reversal_answer("00", 42));
        assert_eq!(
            acknowledged,
            ReversalVerdict::Acknowledged(pb::ReversalOutcome::OriginalNotFound)
        );
        assert_eq!(
            outcome_name(pb::ReversalOutcome::OriginalNotFound),
            "ORIGINAL_NOT_FOUND"
        );
        assert_eq!(outcome_name(pb::ReversalOutcome::Reversed), "REVERSED");
        for outcome in [
            reversal_answer("96", 42),
            reversal_answer("00", 43),
            Err(NoAnswer::BadMac),
            Err(NoAnswer::Timeout(std::time::Duration::from_secs(1))),
            Ok(HostBody::Transaction(answer())),
        ] {
            assert!(matches!(
                judge_reversal(&record(), outcome),
                ReversalVerdict::NotAcknowledged(_)
            ));
        }
    }
}
