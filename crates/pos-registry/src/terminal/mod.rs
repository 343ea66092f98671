//! The terminal aggregate (events on `pos.terminals.v1`, aggregate "terminal", id = the
//! 8-character terminal id).
//!
//! A terminal is registered for an approved or active merchant, then activated by a device
//! with a one-time activation code ([`activation`]), then signs in for working keys and a
//! batch number, signs out, and may be suspended ([`session`]).
//!
//! Activation codes are never here in clear: commands carry the keyed hash (64 lowercase hex)
//! the gateway computed. A code is single use, expires, and is blocked after `max_attempts`
//! wrong codes; a new code replaces the previous one. Codes may be issued for a registered
//! terminal and also for an active one, to bind it again after a reset or replacement of the
//! device (same serial number when one was registered); a suspended terminal gets none.

mod activation;
mod apply;
mod session;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::{Duration, SystemTime};

use pos_domain::{BatchNo, MerchantId, TerminalId};
use pos_proto::v1::{EncryptedValue, TerminalLocation};

pub use apply::{apply, replay};

use crate::error::{RegistryError, Result};
use crate::merchant::MerchantStanding;
use crate::{Ctx, Payload};

/// The envelope's `aggregate_type` of terminal events.
pub const AGGREGATE_TYPE: &str = "terminal";
/// The envelope's `aggregate_type` of an `ActivationFailed` whose code matched no terminal
/// (id = the presented serial number), for rate limiting by device.
pub const DEVICE_AGGREGATE_TYPE: &str = "device";
/// Most wrong attempts an activation code may allow.
pub const MAX_CODE_ATTEMPTS: u32 = 10;

/// Where a terminal is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TerminalStatus {
    /// Registered, not yet activated by a device.
    Registered,
    /// Bound to a device, holds a TMK, may sign in.
    Active,
    /// Sign-in refused; there is no way back (register a new terminal).
    Suspended,
}

impl TerminalStatus {
    /// The contract's enum.
    pub fn to_proto(self) -> pos_proto::v1::TerminalState {
        use pos_proto::v1::TerminalState as P;
        match self {
            Self::Registered => P::Registered,
            Self::Active => P::Active,
            Self::Suspended => P::Suspended,
        }
    }
}

/// "registered", "active", "suspended".
impl fmt::Display for TerminalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Registered => "registered",
            Self::Active => "active",
            Self::Suspended => "suspended",
        })
    }
}

/// The terminal master key encrypted under the host's local master key, with its check
/// value. `Debug` shows the key id and check value, never the wrapped bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedTmk {
    under_lmk: EncryptedValue,
    check_value: [u8; 4],
}

impl WrappedTmk {
    /// Wraps what the Hsm returned: at least 16 bytes of ciphertext (a double-length TDES
    /// key) under a named key, and the TMK's 4-byte check value.
    pub fn new(under_lmk: EncryptedValue, check_value: [u8; 4]) -> Result<Self> {
        if under_lmk.ciphertext.len() < 16 || under_lmk.key_id.trim().is_empty() {
            return Err(RegistryError::invalid(
                "tmk",
                "must be the TMK encrypted under a named local master key (16 bytes or more)",
            ));
        }
        Ok(Self {
            under_lmk,
            check_value,
        })
    }

    /// The TMK under the local master key, for the Hsm.
    pub fn under_lmk(&self) -> &EncryptedValue {
        &self.under_lmk
    }

    /// The TMK's check value.
    pub fn check_value(&self) -> [u8; 4] {
        self.check_value
    }

    /// The check value as upper-case hex, as `Terminal.tmk_check_value` shows it.
    pub fn check_value_hex(&self) -> String {
        hex::encode_upper(self.check_value)
    }
}

impl fmt::Debug for WrappedTmk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedTmk")
            .field("key_id", &self.under_lmk.key_id)
            .field("key", &format_args!("<wrapped key>"))
            .field("check_value", &self.check_value_hex())
            .finish()
    }
}

/// Whether an activation code can still be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeStatus {
    /// Issued, not used (it may have expired: compare `expires_at` with the time).
    Open,
    /// Used once; any later use fails.
    Redeemed,
    /// Too many wrong attempts.
    Blocked,
}

/// The terminal's current activation code. `Debug` hides the hash.
#[derive(Clone, PartialEq, Eq)]
pub struct ActivationCode {
    /// Id of the code, to refer to it without the code.
    pub code_id: String,
    /// Keyed hash (HMAC-SHA-256 hex) of the code.
    pub code_hash: String,
    /// When it stops working.
    pub expires_at: SystemTime,
    /// Wrong attempts allowed.
    pub max_attempts: u32,
    /// Wrong attempts so far.
    pub failed_attempts: u32,
    /// Open, redeemed or blocked.
    pub status: CodeStatus,
}

impl fmt::Debug for ActivationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivationCode")
            .field("code_id", &self.code_id)
            .field("code_hash", &format_args!("<code hash>"))
            .field("expires_at", &self.expires_at)
            .field("max_attempts", &self.max_attempts)
            .field("failed_attempts", &self.failed_attempts)
            .field("status", &self.status)
            .finish()
    }
}

/// What the last sign-in presented, to refuse a replay of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInMark {
    /// Its nonce.
    pub nonce: Vec<u8>,
    /// Its terminal time.
    pub terminal_time: SystemTime,
}

/// A terminal as its events built it.
#[derive(Debug, Clone, PartialEq)]
pub struct TerminalState {
    /// 8-character terminal id.
    pub terminal_id: TerminalId,
    /// Owning merchant.
    pub merchant_id: MerchantId,
    /// Lifecycle status.
    pub status: TerminalStatus,
    /// Serial number given at registration; empty = any device may activate it.
    pub expected_serial: String,
    /// Serial number of the device bound by the last activation.
    pub bound_serial: Option<String>,
    /// Device model; empty when unknown.
    pub model: String,
    /// Where it stands.
    pub location: Option<TerminalLocation>,
    /// Software version last reported.
    pub software_version: String,
    /// The TMK of the bound device.
    pub tmk: Option<WrappedTmk>,
    /// The current activation code.
    pub activation_code: Option<ActivationCode>,
    /// Version of the last working keys; 0 before the first sign-in.
    pub key_version: u32,
    /// Batch number the terminal uses (from 1).
    pub batch_no: BatchNo,
    /// Session of the current sign-in; `None` when signed out.
    pub session_id: Option<String>,
    /// The last sign-in's nonce and terminal time (cleared by a new activation).
    pub last_sign_in: Option<SignInMark>,
    /// MAC failures since the last sign-in.
    pub mac_failures: u32,
    /// Why it was suspended; `None` unless suspended.
    pub suspension_reason: Option<String>,
    /// Number of events applied; the next event is number `version + 1`.
    pub version: u64,
}

/// Register a terminal for a merchant.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterTerminal {
    /// The terminal id (8 upper-case letters or digits), chosen by the caller or the service.
    pub terminal_id: TerminalId,
    /// The owning merchant as it stands now (approved or active).
    pub merchant: MerchantStanding,
    /// Serial number of the device that may activate it; empty = any.
    pub serial_number: String,
    /// Device model; may be empty.
    pub model: String,
    /// Where it stands (city required).
    pub location: TerminalLocation,
}

/// Issue a one-time activation code.
#[derive(Debug, Clone, PartialEq)]
pub struct IssueActivationCode {
    /// The terminal.
    pub terminal_id: TerminalId,
    /// Its merchant as it stands now (approved or active).
    pub merchant: MerchantStanding,
    /// Id of the code (e.g. a UUID).
    pub code_id: String,
    /// Keyed hash of the code: HMAC-SHA-256 under the gateway's secret, 64 lowercase hex.
    pub code_hash: String,
    /// When it stops working (after `Ctx::now`).
    pub expires_at: SystemTime,
    /// Wrong attempts allowed, 1..=[`MAX_CODE_ATTEMPTS`].
    pub max_attempts: u32,
}

/// Redeem an activation code: bind the presenting device and its new TMK.
#[derive(Clone, PartialEq)]
pub struct RedeemActivationCode {
    /// The terminal the gateway found for the code (by its hash, or by the registered serial
    /// number when the hash matched nothing).
    pub terminal_id: TerminalId,
    /// Its merchant as it stands now.
    pub merchant: MerchantStanding,
    /// Keyed hash of the presented code.
    pub code_hash: String,
    /// The device's serial number.
    pub serial_number: String,
    /// Software version reported.
    pub software_version: String,
    /// Device model reported; may be empty.
    pub model: String,
    /// The TMK generated for this activation (under the LMK); discarded when refused.
    pub tmk: WrappedTmk,
}

impl fmt::Debug for RedeemActivationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedeemActivationCode")
            .field("terminal_id", &self.terminal_id)
            .field("merchant", &self.merchant)
            .field("code_hash", &format_args!("<code hash>"))
            .field("serial_number", &self.serial_number)
            .field("software_version", &self.software_version)
            .field("model", &self.model)
            .field("tmk", &self.tmk)
            .finish()
    }
}

/// The network connection a sign-in arrived on, when it is the first message of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Remote address.
    pub peer_address: String,
    /// Gateway instance serving it.
    pub gateway_instance: String,
}

/// Sign in (签到): the gateway verified the MAC under the TMK and generated the working keys.
#[derive(Debug, Clone, PartialEq)]
pub struct SignIn {
    /// The terminal.
    pub terminal_id: TerminalId,
    /// Its merchant as it stands now (must be active).
    pub merchant: MerchantStanding,
    /// Id of the new session.
    pub session_id: String,
    /// `Some` when this sign-in opens a new Connect stream (records `SessionOpened` first).
    pub connection: Option<Connection>,
    /// Serial number in the request; must be the bound device's.
    pub serial_number: String,
    /// Software version in the request.
    pub software_version: String,
    /// The request's nonce.
    pub nonce: [u8; 16],
    /// The request's terminal time.
    pub terminal_time: SystemTime,
    /// How far the terminal time may be from `Ctx::now` (default 5 minutes).
    pub max_clock_skew: Duration,
    /// Check value of the new PIN key.
    pub pin_key_check_value: [u8; 4],
    /// Check value of the new MAC key.
    pub mac_key_check_value: [u8; 4],
    /// The open batch number the settlement side knows (`next_batch_no` of the terminal's
    /// last `BatchClosed`); `None` keeps the terminal's current batch number.
    pub batch_no: Option<BatchNo>,
    /// Whether an earlier day's batch must be settled first.
    pub settlement_pending: bool,
}

/// Why a signed-in session ended (`TerminalSignedOut.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignOutReason {
    /// The terminal signed out.
    SignOut,
    /// A newer sign-in replaced it.
    Replaced,
    /// The terminal was suspended.
    Suspended,
    /// Too many MAC failures.
    MacFailures,
}

impl SignOutReason {
    /// The text the event carries.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignOut => "SIGN_OUT",
            Self::Replaced => "REPLACED",
            Self::Suspended => "SUSPENDED",
            Self::MacFailures => "MAC_FAILURES",
        }
    }
}

/// Why a Connect stream ended (`SessionClosed.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCloseReason {
    /// The terminal closed it.
    ClientClosed,
    /// No message for too long.
    Timeout,
    /// A newer connection of the terminal replaced it.
    Replaced,
    /// Too many MAC failures.
    MacFailures,
    /// The terminal or its merchant was suspended.
    Suspended,
    /// The gateway shut down.
    Shutdown,
}

impl SessionCloseReason {
    /// The text the event carries.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientClosed => "CLIENT_CLOSED",
            Self::Timeout => "TIMEOUT",
            Self::Replaced => "REPLACED",
            Self::MacFailures => "MAC_FAILURES",
            Self::Suspended => "SUSPENDED",
            Self::Shutdown => "SHUTDOWN",
        }
    }
}

/// What can be asked of a terminal.
#[derive(Debug, Clone, PartialEq)]
pub enum TerminalCommand {
    /// Create it, REGISTERED.
    Register(RegisterTerminal),
    /// Issue an activation code (replaces the previous one).
    IssueActivationCode(IssueActivationCode),
    /// Redeem the activation code: bind the device (`Activate` on the gateway).
    Redeem(Box<RedeemActivationCode>),
    /// Sign in: new key version, batch number.
    SignIn(Box<SignIn>),
    /// End the signed-in session.
    SignOut {
        /// The terminal.
        terminal_id: TerminalId,
        /// The session to end; must be the current one.
        session_id: String,
        /// Why.
        reason: SignOutReason,
    },
    /// Suspend it (ends its session).
    Suspend {
        /// The terminal.
        terminal_id: TerminalId,
        /// Why; required.
        reason: String,
    },
    /// A message failed its MAC check.
    RecordMacFailure {
        /// The terminal.
        terminal_id: TerminalId,
        /// The session; empty for a sign-in (no session yet).
        session_id: String,
        /// `TerminalMessage.message_seq` of the rejected message.
        message_seq: u64,
        /// True when the gateway drops the session because of it.
        close_session: bool,
    },
    /// A Connect stream ended.
    CloseSession {
        /// The terminal.
        terminal_id: TerminalId,
        /// The stream's session.
        session_id: String,
        /// Why.
        reason: SessionCloseReason,
    },
}

impl TerminalCommand {
    /// The terminal the command is for.
    pub fn terminal_id(&self) -> &TerminalId {
        match self {
            Self::Register(c) => &c.terminal_id,
            Self::IssueActivationCode(c) => &c.terminal_id,
            Self::Redeem(c) => &c.terminal_id,
            Self::SignIn(c) => &c.terminal_id,
            Self::SignOut { terminal_id, .. }
            | Self::Suspend { terminal_id, .. }
            | Self::RecordMacFailure { terminal_id, .. }
            | Self::CloseSession { terminal_id, .. } => terminal_id,
        }
    }
}

/// Decides which events a command produces on the terminal `state` (`None`: not
/// registered). A refused activation returns [`RegistryError::ActivationRefused`] with the
/// `ActivationFailed` event to record.
pub fn decide(
    state: Option<&TerminalState>,
    command: TerminalCommand,
    ctx: &Ctx,
) -> Result<Vec<Payload>> {
    let terminal = |id: &TerminalId| existing(state, id);
    match command {
        TerminalCommand::Register(register) => activation::register(state, register, ctx),
        TerminalCommand::IssueActivationCode(issue) => {
            activation::issue_code(terminal(&issue.terminal_id)?, issue, ctx)
        }
        TerminalCommand::Redeem(redeem) => {
            activation::redeem(terminal(&redeem.terminal_id)?, *redeem, ctx)
        }
        TerminalCommand::SignIn(sign_in) => {
            session::sign_in(terminal(&sign_in.terminal_id)?, *sign_in, ctx)
        }
        TerminalCommand::SignOut {
            terminal_id,
            session_id,
            reason,
        } => session::sign_out(terminal(&terminal_id)?, session_id, reason),
        TerminalCommand::Suspend {
            terminal_id,
            reason,
        } => session::suspend(terminal(&terminal_id)?, reason, ctx),
        TerminalCommand::RecordMacFailure {
            terminal_id,
            session_id,
            message_seq,
            close_session,
        } => session::mac_failure(
            terminal(&terminal_id)?,
            session_id,
            message_seq,
            close_session,
        ),
        TerminalCommand::CloseSession {
            terminal_id,
            session_id,
            reason,
        } => Ok(session::close_session(
            terminal(&terminal_id)?,
            session_id,
            reason,
        )),
    }
}

/// The state of terminal `id`, or why there is none.
fn existing<'a>(state: Option<&'a TerminalState>, id: &TerminalId) -> Result<&'a TerminalState> {
    match state {
        Some(terminal) if terminal.terminal_id == *id => Ok(terminal),
        Some(other) => Err(RegistryError::Conflict(format!(
            "a command for terminal {id} was given the state of terminal {}",
            other.terminal_id
        ))),
        None => Err(RegistryError::not_found("terminal", id)),
    }
}

/// The merchant standing must be the terminal's merchant (a service bug otherwise).
fn own_merchant(terminal: &TerminalState, merchant: &MerchantStanding) -> Result<()> {
    if merchant.merchant_id == terminal.merchant_id {
        Ok(())
    } else {
        Err(RegistryError::Conflict(format!(
            "terminal {} belongs to merchant {}, not {}",
            terminal.terminal_id, terminal.merchant_id, merchant.merchant_id
        )))
    }
}

/// The terminal id of a terminal-aggregate payload.
pub(crate) fn event_terminal_id(payload: &Payload) -> Option<String> {
    let id = match payload {
        Payload::TerminalRegistered(e) => &e.terminal_id,
        Payload::ActivationCodeIssued(e) => &e.terminal_id,
        Payload::ActivationCodeRedeemed(e) => &e.terminal_id,
        Payload::ActivationFailed(e) => &e.terminal_id,
        Payload::TerminalActivated(e) => &e.terminal_id,
        Payload::TerminalSignedIn(e) => &e.terminal_id,
        Payload::TerminalSignedOut(e) => &e.terminal_id,
        Payload::TerminalSuspended(e) => &e.terminal_id,
        Payload::MacFailureRecorded(e) => &e.terminal_id,
        Payload::SessionOpened(e) => &e.terminal_id,
        Payload::SessionClosed(e) => &e.terminal_id,
        _ => return None,
    };
    Some(id.clone())
}
