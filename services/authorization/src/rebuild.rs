//! Rebuilding this service's Redis state from its own events (DESIGN.md §3): after Redis was
//! flushed (or on the very first start), the transaction records and the idempotency answers
//! are read back from `pos.transactions.v1` before anything is served, so that a retry of a
//! decided request still gets its first answer, and a completion still finds its
//! pre-authorization.
//!
//! A marker key `authz:rebuilt` says the state is complete; it is set once the topic has been
//! read to its end, so a restart with Redis intact does not re-read the topic. Restored records
//! keep what is left of their time to live, computed from the event's `occurred_at` (a
//! reversal of a pre-authorization, of its completion or of its void sets its hold state as
//! [`hold_change`] says, as the live follower in `holds` does); answers
//! restored from events lack the balance of an inquiry and the issuer's chip data (events do
//! not carry them).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pos_events::{BusConfig, BusError, EventEnvelope, EventReader, Payload, Topic};
use pos_proto::v1 as pb;
use pos_store::Store;
use prost_types::Timestamp;
use tracing::info;

use crate::decision::response_from_facts;
use crate::idempotency::{self, Idempotency, Record};
use crate::model::{Kind, Trace};
use crate::service::AGGREGATE;
use pos_facts::txn::{self, Records, TxnRecord};

/// Rebuilds the records from the topic unless the marker says they are complete.
pub async fn rebuild_if_needed(
    bus: &BusConfig,
    store: &Store,
    records: &Records,
    idempotency: &Idempotency,
) -> anyhow::Result<()> {
    let marker = store.key(&["authz", "rebuilt"]);
    if store.get(&marker).await?.is_some() {
        return Ok(());
    }
    let reader = EventReader::from_beginning(bus, &[Topic::Transactions]).await?;
    let now = SystemTime::now();
    let mut restored = 0u64;
    // Completions and voids are applied to their pre-authorizations once every record is back:
    // a pre-auth and its completion at another terminal sit in different partitions, in no
    // particular order.
    let mut settled = Vec::new();
    let read = reader
        .catch_up(async |event| {
            let applied = apply(&event.envelope, now, records, idempotency)
                .await
                .map_err(|e| BusError::Handler(e.to_string()))?;
            if let Some(applied) = applied {
                restored += 1;
                settled.extend(applied);
            }
            settled.extend(hold_change(&event.envelope));
            Ok(())
        })
        .await?;
    for settle in &settled {
        records
            .settle_hold(&settle.pre_auth, settle.state, &settle.by)
            .await?;
    }
    let mut conn = store.connection();
    let () = redis::cmd("SET")
        .arg(&marker)
        .arg(millis(now))
        .query_async(&mut conn)
        .await?;
    info!(
        events = read,
        restored, "transaction records rebuilt from the topic"
    );
    Ok(())
}

/// The facts of a decision event of this service.
pub fn decision_facts(envelope: &EventEnvelope) -> Option<&pb::TransactionFacts> {
    if envelope.aggregate_type != AGGREGATE {
        return None;
    }
    match envelope.payload.as_ref()? {
        Payload::AuthorizationApproved(e) => e.txn.as_ref(),
        Payload::AuthorizationDeclined(e) => e.txn.as_ref(),
        Payload::BalanceInquired(e) => e.txn.as_ref(),
        Payload::PreAuthHoldPlaced(e) => e.txn.as_ref(),
        Payload::PreAuthCompleted(e) => e.txn.as_ref(),
        Payload::PreAuthVoided(e) => e.txn.as_ref(),
        _ => None,
    }
}

/// A pre-authorization completed or voided by a restored transaction, or changed by a
/// reversal.
#[derive(Debug, PartialEq, Eq)]
pub struct Settle {
    /// The pre-authorization's transaction id.
    pub pre_auth: String,
    /// Its hold state from now on.
    pub state: &'static str,
    /// The transaction (or reversal) that changed it; empty when it is held again.
    pub by: String,
}

/// What a reversal does to a pre-authorization's hold: reversing the pre-authorization
/// releases it ("reversed"); reversing its completion or its void puts the hold back ("held",
/// as the issuer does).
pub fn hold_change(envelope: &EventEnvelope) -> Option<Settle> {
    let Some(Payload::TransactionReversed(reversed)) = envelope.payload.as_ref() else {
        return None;
    };
    let original = reversed.original.as_ref()?;
    match pb::TransactionType::try_from(original.transaction_type).ok()? {
        pb::TransactionType::PreAuth => Some(Settle {
            pre_auth: original.transaction_id.clone(),
            state: "reversed",
            by: reversed.reversal_id.clone(),
        }),
        pb::TransactionType::PreAuthCompletion | pb::TransactionType::PreAuthVoid => {
            let pre_auth = original.original.as_ref()?.transaction_id.clone();
            (!pre_auth.is_empty()).then_some(Settle {
                pre_auth,
                state: "held",
                by: String::new(),
            })
        }
        _ => None,
    }
}

/// Restores what one event says, leaving records that exist as they are; `None` when it
/// wrote nothing, else the pre-authorization it settles, if any.
async fn apply(
    envelope: &EventEnvelope,
    now: SystemTime,
    records: &Records,
    idempotency: &Idempotency,
) -> pos_store::Result<Option<Option<Settle>>> {
    let Some(facts) = decision_facts(envelope) else {
        return Ok(None);
    };
    let occurred = envelope.occurred_at.unwrap_or_default();
    let age = now
        .duration_since(instant(&occurred))
        .unwrap_or(Duration::ZERO);
    let Some(record_ttl) = txn::RECORD_TTL.checked_sub(age) else {
        return Ok(None);
    };
    let record = TxnRecord::from_facts(facts);
    if records.exists(&record.transaction_id).await? {
        return Ok(None);
    }
    records.save_for(&record, record_ttl).await?;
    let kind = Kind::from_proto(facts.transaction_type);
    let settle = match kind {
        Some(Kind::Completion | Kind::PreAuthVoid) if record.approved() => Some(Settle {
            pre_auth: record.original_transaction_id.clone(),
            state: if kind == Some(Kind::Completion) {
                "completed"
            } else {
                "voided"
            },
            by: record.transaction_id.clone(),
        }),
        _ => None,
    };
    if let (Some(ttl), Some(trace)) = (
        idempotency::RECORD_TTL.checked_sub(age),
        facts.trace.as_ref().and_then(trace_of),
    ) {
        let answer = response_from_facts(facts, occurred);
        let done = Record::done(&facts.request_digest, &facts.transaction_id, &answer);
        idempotency.restore(&trace, &done, ttl).await?;
    }
    Ok(Some(settle))
}

fn trace_of(trace: &pb::TerminalTraceRef) -> Option<Trace> {
    Some(Trace {
        terminal_id: pos_domain::TerminalId::parse(&trace.terminal_id).ok()?,
        batch_no: pos_domain::BatchNo::new(trace.batch_no).ok()?,
        stan: pos_domain::Stan::new(trace.stan).ok()?,
    })
}

fn instant(at: &Timestamp) -> SystemTime {
    let seconds = u64::try_from(at.seconds).unwrap_or(0);
    let nanos = u32::try_from(at.nanos).unwrap_or(0);
    UNIX_EPOCH + Duration::new(seconds, nanos)
}

fn millis(at: SystemTime) -> String {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
        .to_string()
}

#[cfg(test)]
mod hold_tests {
    use super::*;

    fn reversed(kind: pb::TransactionType, original: Option<&str>) -> EventEnvelope {
        EventEnvelope {
            payload: Some(Payload::TransactionReversed(pb::TransactionReversed {
                reversal_id: "T0000001:1:7".to_owned(),
                original: Some(pb::TransactionFacts {
                    transaction_id: "txn".to_owned(),
                    transaction_type: kind as i32,
                    original: original.map(|id| pb::OriginalTransactionRef {
                        transaction_id: id.to_owned(),
                        ..pb::OriginalTransactionRef::default()
                    }),
                    ..pb::TransactionFacts::default()
                }),
                ..pb::TransactionReversed::default()
            })),
            ..EventEnvelope::default()
        }
    }

    #[test]
    fn reversals_release_a_pre_auth_or_give_back_the_hold_its_completion_or_void_took() {
        assert_eq!(
            hold_change(&reversed(pb::TransactionType::PreAuth, None)),
            Some(Settle {
                pre_auth: "txn".to_owned(),
                state: "reversed",
                by: "T0000001:1:7".to_owned(),
            })
        );
        for kind in [
            pb::TransactionType::PreAuthCompletion,
            pb::TransactionType::PreAuthVoid,
        ] {
            assert_eq!(
                hold_change(&reversed(kind, Some("pre"))),
                Some(Settle {
                    pre_auth: "pre".to_owned(),
                    state: "held",
                    by: String::new(),
                })
            );
            assert_eq!(hold_change(&reversed(kind, None)), None);
        }
        assert_eq!(
            hold_change(&reversed(pb::TransactionType::Purchase, None)),
            None
        );
    }
}
