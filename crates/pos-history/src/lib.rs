//! The transaction history projection (DESIGN.md §3: "a transaction's full history is a
//! projection that joins these streams"): for every transaction its current state (approved,
//! declined, reversed, voided, partly or fully refunded, completed, hold released) and every
//! step of its history, oldest first, joined from the events of authorization ("transaction"),
//! reversal ("reversal", "void", "refund") and the gateway ("delivery") on
//! `pos.transactions.v1`.
//!
//! Layout:
//! - [`model`]: lookups, list filters, pages and the history itself;
//! - `view`, `fold`, `detail` (pure, no I/O): how one event reads for one transaction, how the
//!   summary and status follow from all of them, and the texts of each step;
//! - `links`: which transactions and traces an event concerns;
//! - [`HistoryProjection`]: the Redis side (apply an event, find, list);
//! - [`rebuild_if_needed`] and [`follow`]: reading the topic.
//!
//! Redis keys, under the store's prefix (`{p}`):
//! - `{p}:hist:txn:{id}`: hash, event id → the protobuf `EventEnvelope` of every event that
//!   concerns transaction `id` (its own decision and the steps that name it);
//! - `{p}:hist:trace-steps:{terminal}:{batch:06}:{stan:06}`: hash like the above, for events
//!   that name a trace without a transaction id (reversal of an unknown original);
//! - `{p}:hist:trace:{terminal}:{batch:06}:{stan:06}`: string, the transaction id of the
//!   request with that trace (a void's or refund's own trace names the void or refund);
//! - `{p}:hist:rrn:{business_date}:{rrn}`: string, the transaction id with that RRN that day;
//! - `{p}:hist:listed:{id}`: string, the list member of transaction `id` (set once);
//! - `{p}:hist:list:all`, `…:list:merchant:{merchant}`, `…:list:merchant-date:{merchant}:{date}`,
//!   `…:list:terminal:{terminal}`, `…:list:terminal-date:{terminal}:{date}`,
//!   `…:list:batch:{terminal}:{batch}`, `…:list:date:{date}`: sorted sets, score 0, member
//!   `{decided_at_ms:013}:{id}`, so lexicographic order is time order (paged newest first);
//! - `{p}:hist:rebuilt`: the marker that the topic was read from its start.
//!
//! Events carry only masked PANs and card tokens (DESIGN.md §4), so nothing stored here is
//! card data that must not be stored.

mod detail;
mod error;
#[cfg(test)]
mod fixtures;
mod fold;
mod follow;
mod links;
pub mod model;
mod projection;
mod view;

pub use detail::{major, status_name, type_name};
pub use error::{HistoryError, Result};
pub use fold::build;
pub use follow::{follow, rebuild_if_needed};
pub use links::{Links, Named, Own, links};
pub use model::{ListFilter, Lookup, Page, Subject, TraceKey, TransactionHistory};
pub use projection::{
    Applied, DEFAULT_PAGE_SIZE, HistoryProjection, MAX_PAGE_SIZE, filter_of, lookup_of,
};
