//! Validated identifiers: each is parsed once at the edge and is then known to be well formed.
//!
//! Text identifiers ([`MerchantId`], [`TerminalId`], [`Rrn`], [`ApprovalCode`], [`OperatorNo`],
//! [`Mcc`]) keep their canonical string; counters ([`Stan`], [`BatchNo`]) are numbers in
//! 1..=999999 that print as six digits and wrap; [`TransactionId`] is a UUIDv7. All serialize
//! as their plain value and validate again when deserialized.

mod counter;
mod text;
mod transaction;

pub use counter::{BatchNo, Stan};
pub use text::{ApprovalCode, Mcc, MerchantId, OperatorNo, Rrn, TerminalId};
pub use transaction::TransactionId;
