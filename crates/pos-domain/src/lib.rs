//! Domain types of the POS acquiring platform: the values every service agrees on.
//!
//! Pure logic, no I/O: services parse their input into these types once, at the edge, and
//! work with them from then on (DESIGN.md §4).
//!
//! - [`money`]: ISO 4217 currencies and exact [`Money`] over `rust_decimal`, never floats.
//! - [`ids`]: validated identifiers (merchant, terminal, STAN, batch, RRN, approval code, ...).
//! - [`pan`]: the card number, which renders masked and tokenizes with a keyed HMAC.
//! - [`card`]: how the card was read (entry mode), its service code and its expiry.
//! - [`response`]: the ISO 8583 / CUP DE39 response codes.
//! - [`time`]: the calendar in China Standard Time (business dates, receipts).
//!
//! Every fallible constructor returns [`Result`] with the crate's one error type,
//! [`DomainError`], whose messages say what was wrong and never contain a card number.

pub mod card;
mod error;
mod fields;
pub mod ids;
pub mod money;
pub mod pan;
pub mod response;
pub mod time;

pub use card::{EntryMode, Expiry, ServiceCode};
pub use error::{DomainError, Result};
pub use ids::{
    ApprovalCode, BatchNo, Mcc, MerchantId, OperatorNo, Rrn, Stan, TerminalId, TransactionId,
};
pub use money::{Currency, Money};
pub use pan::{CardToken, MaskedPan, Pan, TokenKey};
pub use response::ResponseCode;
