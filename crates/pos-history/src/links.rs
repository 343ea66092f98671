//! Where one event belongs: the transaction it is the decision of (listed and indexed), the
//! transactions it names by id (their histories get the event), and the traces it names
//! without an id (a reversal of a request the host never saw).

use pos_events::{EventEnvelope, Payload};
use pos_proto::v1 as pb;

use crate::model::TraceKey;
use crate::view::{event_type, own_facts};

/// The transaction an event is the decision of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Own {
    /// Its id.
    pub id: String,
    /// Its merchant.
    pub merchant_id: String,
    /// Its trace.
    pub trace: Option<TraceKey>,
    /// Its RRN; empty when the issuer was not reached.
    pub rrn: String,
    /// Its business date "YYYY-MM-DD".
    pub business_date: String,
    /// When it was decided, in milliseconds since 1970 (0 when the event has no time).
    pub at_millis: u64,
}

/// A transaction an event names by id, with what the event knows of its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// Its id.
    pub id: String,
    /// Its trace, when known.
    pub trace: Option<TraceKey>,
    /// Its RRN; empty when unknown.
    pub rrn: String,
    /// Its business date; empty when unknown.
    pub business_date: String,
}

/// Where an event is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    /// The event's own transaction.
    pub own: Option<Own>,
    /// Other transactions it names by id.
    pub named: Vec<Named>,
    /// Transactions it names by trace only.
    pub traces: Vec<TraceKey>,
}

impl Links {
    fn name_original(&mut self, original: Option<&pb::OriginalTransactionRef>) {
        let Some(o) = original else { return };
        self.name(
            &o.transaction_id,
            TraceKey::of_original(o),
            &o.rrn,
            &o.business_date,
        );
    }

    fn name_facts(&mut self, facts: &pb::TransactionFacts) {
        self.name(
            &facts.transaction_id,
            TraceKey::of(facts.trace.as_ref()),
            &facts.rrn,
            &facts.business_date,
        );
    }

    fn name(&mut self, id: &str, trace: Option<TraceKey>, rrn: &str, business_date: &str) {
        let own = self.own.as_ref().is_some_and(|o| o.id == id);
        if !id.is_empty() && !own && !self.named.iter().any(|n| n.id == id) {
            self.named.push(Named {
                id: id.to_owned(),
                trace,
                rrn: rrn.to_owned(),
                business_date: business_date.to_owned(),
            });
        } else if let (true, Some(trace)) = (id.is_empty(), trace)
            && !self.traces.contains(&trace)
        {
            self.traces.push(trace);
        }
    }
}

/// Where `envelope` belongs; `None` for events that are no part of a transaction's history
/// (audit records, anything of another topic).
pub fn links(envelope: &EventEnvelope) -> Option<Links> {
    let payload = envelope.payload.as_ref()?;
    event_type(payload)?;
    let mut links = Links::default();
    if let Some(facts) = own_facts(payload) {
        links.own = Some(Own {
            id: facts.transaction_id.clone(),
            merchant_id: facts.merchant_id.clone(),
            trace: TraceKey::of(facts.trace.as_ref()),
            rrn: facts.rrn.clone(),
            business_date: facts.business_date.clone(),
            at_millis: millis(envelope.occurred_at.as_ref()),
        });
        links.name_original(facts.original.as_ref());
        return Some(links);
    }
    match payload {
        Payload::TransactionReversed(e) => {
            if let Some(reversed) = &e.original {
                links.name_facts(reversed);
                links.name_original(reversed.original.as_ref());
            }
        }
        Payload::ReversalAcknowledged(e) => links.name_original(e.original.as_ref()),
        Payload::ApprovalUndelivered(e) => {
            if let Some(facts) = &e.txn {
                links.name_facts(facts);
            }
        }
        _ => {}
    }
    Some(links)
}

fn millis(at: Option<&prost_types::Timestamp>) -> u64 {
    at.map_or(0, |t| {
        let seconds = u64::try_from(t.seconds).unwrap_or(0);
        let nanos = u64::try_from(t.nanos).unwrap_or(0);
        seconds
            .saturating_mul(1_000)
            .saturating_add(nanos / 1_000_000)
    })
}

#[cfg(test)]
mod tests {
    use pos_proto::v1::ReversalInitiator as Initiator;

    use super::*;
    use crate::fixtures::*;

    #[test]
    fn a_decision_is_kept_with_itself_and_with_the_original_it_names() {
        let (p, approved) = purchase();
        let own = links(&approved).and_then(|l| l.own);
        assert_eq!(own.as_ref().map(|o| o.id.as_str()), Some("P1"));
        assert_eq!(own.map(|o| o.at_millis), Some(1_795_831_201_000));

        let (_, refunded) = refund("R1", &p, 2, 60, 3000, 3000);
        let l = links(&refunded).unwrap_or_default();
        assert_eq!(l.own.map(|o| o.id), Some("R1".to_owned()));
        assert_eq!(
            l.named,
            [Named {
                id: "P1".to_owned(),
                trace: TraceKey::of(Some(&trace(1))),
                rrn: p.rrn.clone(),
                business_date: DATE.to_owned(),
            }]
        );
    }

    #[test]
    fn a_reversal_of_a_void_concerns_the_void_and_the_purchase() {
        let (p, _) = purchase();
        let (v, _) = void("V1", &p, 2, 30);
        let reversed = reversal("REV", &v, Initiator::Terminal, "98", 40);
        let l = links(&reversed).unwrap_or_default();
        assert_eq!(l.own, None);
        let ids: Vec<&str> = l.named.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["V1", "P1"]);
    }

    #[test]
    fn a_reversal_of_an_unknown_original_is_kept_by_its_trace() {
        let named = pb::OriginalTransactionRef {
            terminal_id: TERMINAL.to_owned(),
            batch_no: 1,
            stan: 11,
            ..Default::default()
        };
        let ack = acknowledged("REV", 1, named, pb::ReversalOutcome::OriginalNotFound, 1);
        let l = links(&ack).unwrap_or_default();
        assert!(l.named.is_empty());
        assert_eq!(
            l.traces,
            [TraceKey::of(Some(&trace(11))).unwrap_or_else(|| unreachable!())]
        );
    }

    #[test]
    fn audit_records_are_no_part_of_any_history() {
        let audit = envelope(
            "audit",
            "reversal:ops:alice",
            1,
            1,
            Payload::OperatorActionRecorded(pb::OperatorActionRecorded::default()),
        );
        assert_eq!(links(&audit), None);
    }
}
