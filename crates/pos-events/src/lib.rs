//! The event bus: how services publish and consume the events that are the platform's source of
//! truth (DESIGN.md §3).
//!
//! - [`EventPublisher`] writes one protobuf [`EventEnvelope`] per record with the idempotent
//!   producer and `acks=all`; `publish` returns only after the broker acknowledged the record.
//! - [`ensure_topics`] creates the `pos.*.v1` topics at start-up when they are missing (Tansu,
//!   like many production clusters, does not create topics on first use).
//! - [`EventConsumer`] delivers at least once: offsets are committed only for events the handler
//!   finished, so a crash means redelivery, never loss.
//! - [`EventReader`] reads topics from their first record without a consumer group, for
//!   projections that keep their positions with their data and rebuild from scratch.
//! - [`dedupe`] turns redelivery into exactly-once *application*: projections remember the last
//!   applied sequence per aggregate and skip what they have seen.
//! - [`trace`] carries W3C trace context in record headers so one purchase is one trace.
//!
//! Kafka transactions are deliberately not used (Tansu shows aborted records to
//! `read_committed` readers); idempotent projections make them unnecessary.

mod config;
mod consumer;
pub mod dedupe;
mod envelope;
mod error;
mod producer;
mod reader;
mod topics;
pub mod trace;

pub use config::BusConfig;
pub use consumer::{EventConsumer, Handling, ReceivedEvent};
pub use dedupe::{AppliedSequences, SequenceCheck};
pub use envelope::{AggregateRef, new_envelope};
pub use error::{BusError, Result};
pub use pos_proto::v1::EventEnvelope;
pub use pos_proto::v1::event_envelope::Payload;
pub use producer::{Delivery, EventPublisher};
pub use reader::EventReader;
pub use topics::{Topic, ensure_topics};
