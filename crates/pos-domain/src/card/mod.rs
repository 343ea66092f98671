//! What the terminal learned about the card besides its number: how it was read
//! ([`EntryMode`]), the magstripe service code ([`ServiceCode`]) and the expiry ([`Expiry`]).
//!
//! `ServiceCode` and `Expiry` deliberately have no serde: they come from track or chip data and
//! are used during authorization only, not written to events (PCI DSS 3.3.1).

mod entry_mode;
mod expiry;
mod service_code;

pub use entry_mode::EntryMode;
pub use expiry::Expiry;
pub use service_code::ServiceCode;
