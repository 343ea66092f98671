//! Building event envelopes: ids, clock, sequence and trace context in one place.

use std::time::SystemTime;

use pos_proto::v1::EventEnvelope;
use pos_proto::v1::event_envelope::Payload;

/// Which aggregate an event belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AggregateRef {
    /// "merchant", "terminal", "transaction", ...
    pub kind: String,
    /// The aggregate's id.
    pub id: String,
}

impl AggregateRef {
    /// An aggregate reference.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            id: id.into(),
        }
    }

    /// The aggregate an envelope belongs to.
    pub fn of(envelope: &EventEnvelope) -> Self {
        Self::new(&envelope.aggregate_type, &envelope.aggregate_id)
    }
}

/// A new envelope for the `sequence`-th event of `aggregate`, stamped with a fresh UUIDv7, the
/// current time and the current span's trace context.
pub fn new_envelope(
    aggregate: &AggregateRef,
    sequence: u64,
    producer: &str,
    payload: Payload,
) -> EventEnvelope {
    let (traceparent, tracestate) = crate::trace::current_context_headers();
    EventEnvelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        aggregate_type: aggregate.kind.clone(),
        aggregate_id: aggregate.id.clone(),
        sequence,
        occurred_at: Some(prost_types::Timestamp::from(SystemTime::now())),
        causation_id: String::new(),
        correlation_id: String::new(),
        traceparent,
        tracestate,
        producer: producer.to_owned(),
        payload: Some(payload),
    }
}
