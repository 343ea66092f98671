//! Who may call the management API: operators present a bearer token in the `authorization`
//! metadata; the gateway keeps only SHA-256 digests of the tokens, each with the operator's
//! name and roles. Every management call checks a role before it does anything.
//!
//! The credentials file and its checks live in `pos-auth`, shared with the settlement service
//! (merchant settlement calls), so one operators file serves both.

pub use pos_auth::{Caller, Credentials, Role};
