//! Exactly-once *application* on top of at-least-once delivery: every projection remembers the
//! last sequence it applied per aggregate and skips events it has already seen (DESIGN.md §3).
//!
//! [`check_sequence`] is the rule; [`AppliedSequences`] is where a projection keeps its
//! positions (`pos-store` implements it over Redis); [`apply_once`] puts them together.

use std::future::Future;

use tracing::warn;

use crate::{AggregateRef, EventEnvelope};

/// What to do with an incoming event given the last sequence applied for its aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// The next event of the aggregate: apply it.
    Apply,
    /// Seen before (a redelivery or a replay): skip it.
    AlreadyApplied,
    /// Later than the next expected one: events in between were never applied. The caller
    /// decides; [`apply_once`] applies it and logs the gap.
    Gap {
        /// The sequence that was expected.
        expected: u64,
    },
}

/// The rule: `incoming` is applied when it is newer than `last_applied` (0 = nothing yet).
pub fn check_sequence(last_applied: u64, incoming: u64) -> SequenceCheck {
    let expected = last_applied + 1;
    match incoming {
        s if s <= last_applied => SequenceCheck::AlreadyApplied,
        s if s == expected => SequenceCheck::Apply,
        _ => SequenceCheck::Gap { expected },
    }
}

/// Where a projection keeps the last applied sequence of each aggregate.
pub trait AppliedSequences: Send + Sync {
    /// The store's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The last sequence applied for `aggregate`, 0 when none.
    fn last_applied(
        &self,
        aggregate: &AggregateRef,
    ) -> impl Future<Output = Result<u64, Self::Error>> + Send;

    /// Records that `sequence` was applied; never moves a position backwards.
    fn mark_applied(
        &self,
        aggregate: &AggregateRef,
        sequence: u64,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Runs `apply` for `envelope` unless its sequence was already applied, then records it.
///
/// A crash between `apply` and the record means `apply` runs again on redelivery, so `apply`
/// must be idempotent itself (setting fields, not incrementing them); for increments use a
/// store operation that checks and records the sequence atomically.
pub async fn apply_once<S, F, E>(
    sequences: &S,
    envelope: &EventEnvelope,
    apply: F,
) -> Result<SequenceCheck, E>
where
    S: AppliedSequences,
    E: From<S::Error>,
    F: AsyncFnOnce() -> Result<(), E>,
{
    let aggregate = AggregateRef::of(envelope);
    let last = sequences.last_applied(&aggregate).await?;
    let check = check_sequence(last, envelope.sequence);
    match check {
        SequenceCheck::AlreadyApplied => return Ok(check),
        SequenceCheck::Gap { expected } => warn!(
            aggregate_type = %aggregate.kind,
            aggregate_id = %aggregate.id,
            expected,
            got = envelope.sequence,
            "sequence gap; applying the later event"
        ),
        SequenceCheck::Apply => {}
    }
    apply().await?;
    sequences
        .mark_applied(&aggregate, envelope.sequence)
        .await?;
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_sequence_is_applied() {
        assert_eq!(check_sequence(0, 1), SequenceCheck::Apply);
        assert_eq!(check_sequence(41, 42), SequenceCheck::Apply);
    }

    #[test]
    fn seen_sequences_are_skipped() {
        assert_eq!(check_sequence(5, 5), SequenceCheck::AlreadyApplied);
        assert_eq!(check_sequence(5, 1), SequenceCheck::AlreadyApplied);
    }

    #[test]
    fn a_jump_is_a_gap() {
        assert_eq!(check_sequence(5, 8), SequenceCheck::Gap { expected: 6 });
        assert_eq!(check_sequence(0, 2), SequenceCheck::Gap { expected: 1 });
    }
}
