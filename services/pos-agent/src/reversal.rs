//! Sending pending reversals (冲正): each journal record becomes a `ReversalRequest` (0400, or
//! 0401 when an earlier attempt went unacknowledged) over a MACed exchange. A "00" answer deletes
//! the record; anything else counts the attempt, turns the reason to "06" and keeps the record
//! for the next try (after sign-in, before the next financial request, or `pos-agent reverse`).

use std::io::Write as _;

use pos_proto::v1 as pb;
use pos_proto::v1::terminal_message::Body;

use crate::answer::{self, ReversalVerdict};
use crate::device::{DataDir, Session};
use crate::journal::{Journal, PendingReversal};
use crate::link::Link;

/// The reversal request of a journal record: no card data, track or PIN block, only the masked
/// PAN for the host's logs.
pub fn request(record: &PendingReversal) -> pb::ReversalRequest {
    pb::ReversalRequest {
        original_batch_no: record.batch_no,
        original_stan: record.stan,
        original_type: record.original_type as i32,
        amount: Some(record.amount.money()),
        reason_code: record.reason.code().to_owned(),
        repeat: record.repeat(),
        operator_no: record.operator_no.clone(),
        original_local_datetime: record.local_datetime.clone(),
        masked_pan: record.masked_pan.clone(),
    }
}

/// Sends the pending reversals over `link`, oldest first, and stops at the first one that is
/// not acknowledged. Returns how many remain pending.
pub async fn send_pending(
    link: &mut Link,
    dir: &DataDir,
    session: &mut Session,
    journal: &Journal,
) -> anyhow::Result<u32> {
    for record in journal.pending()? {
        let stan = record.stan;
        let seq = session.take_seq();
        dir.save_session(session)?;
        let mac_key = session.mac_key()?;
        if link
            .send(seq, Body::Reversal(request(&record)), &mac_key)
            .await
            .is_err()
        {
            println!(
                "reversal of STAN {stan:06} not sent: the connection to the host closed; still pending"
            );
            break;
        }
        println!(
            "reversal of STAN {stan:06} sent ({}, reason {}), waiting for the host",
            if record.repeat() { "0401" } else { "0400" },
            record.reason.code()
        );
        std::io::stdout().flush()?;
        let outcome = link.answer(seq, Some(&mac_key)).await;
        match answer::judge_reversal(&record, outcome) {
            ReversalVerdict::Acknowledged(outcome) => {
                journal.reversal_acknowledged(record.key())?;
                println!(
                    "reversal of STAN {stan:06} acknowledged: {}",
                    answer::outcome_name(outcome)
                );
            }
            ReversalVerdict::NotAcknowledged(why) => {
                journal.update_reversal(record.key(), PendingReversal::attempt_failed)?;
                println!("reversal of STAN {stan:06} not acknowledged: {why}; still pending");
                break;
            }
        }
    }
    journal.pending_count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Amount, ReasonCode};

    #[test]
    fn a_reversal_copies_the_original_and_marks_repeats() {
        let mut record = PendingReversal {
            batch_no: 3,
            stan: 42,
            original_type: pb::TransactionType::PreAuthCompletion,
            amount: Amount {
                minor_units: 5_000,
                currency: "CNY".to_owned(),
            },
            operator_no: "01".to_owned(),
            local_datetime: "2026-11-28T18:00:00".to_owned(),
            masked_pan: "622202****3446".to_owned(),
            reason: ReasonCode::MacFailure,
            attempts: 0,
            written_at: "2026-11-28T18:00:00".to_owned(),
        };
        let first = request(&record);
        assert_eq!(
            first,
            pb::ReversalRequest {
                original_batch_no: 3,
                original_stan: 42,
                original_type: pb::TransactionType::PreAuthCompletion as i32,
                amount: Some(pb::Money {
                    minor_units: 5_000,
                    currency: "CNY".to_owned(),
                }),
                reason_code: "A0".to_owned(),
                repeat: false,
                operator_no: "01".to_owned(),
                original_local_datetime: "2026-11-28T18:00:00".to_owned(),
                masked_pan: "622202****3446".to_owned(),
            }
        );
        record.attempt_failed();
        let again = request(&record);
        assert_eq!((again.reason_code.as_str(), again.repeat), ("06", true));
    }
}
