//! The merchant aggregate (events on `pos.merchants.v1`, aggregate "merchant", id = the
//! 15-digit merchant id).
//!
//! Lifecycle: onboarded PENDING → approved → ACTIVE, ACTIVE or APPROVED → SUSPENDED, and
//! SUSPENDED → ACTIVE again (management.proto). Approve only from pending; activate only from
//! approved or suspended. Terminals may be registered and activated for approved and active
//! merchants ([`MerchantStatus::may_have_terminals`]); only active merchants transact.
//!
//! Fee schedules are dated: a change names the first business date it applies to (always a
//! later day than today, so a day's fees never change while it trades) and replaces every
//! change scheduled from that date on. [`MerchantState::fee_schedule_on`] gives the schedule
//! of a business date.

mod fees;
mod onboarding;
#[cfg(test)]
mod tests;

use std::fmt;

use pos_domain::{Mcc, MerchantId};
use pos_proto::v1::{
    FeeSchedule, MerchantActivated, MerchantApproved, MerchantFeeScheduleChanged,
    MerchantOnboarded, MerchantSuspended, MerchantType,
};

pub use fees::{DatedFeeSchedule, ValidFeeSchedule, validate_fee_schedule};
pub use onboarding::{OnboardMerchant, Protection, ValidatedOnboarding, validate_onboarding};

use crate::error::{RegistryError, Result};
use crate::time::Date;
use crate::{Ctx, Payload};

/// The envelope's `aggregate_type` of merchant events.
pub const AGGREGATE_TYPE: &str = "merchant";
/// Longest note or suspension reason.
const MAX_NOTE_CHARS: usize = 200;

/// Micro merchant (小微商户) or enterprise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MerchantKind {
    /// 小微商户: no business licence, paid to the legal person's own card.
    Micro,
    /// Enterprise or individual business with a business licence.
    Enterprise,
}

impl MerchantKind {
    /// From the contract's enum value; `None` for unspecified or unknown values.
    pub fn from_proto(value: i32) -> Option<Self> {
        match MerchantType::try_from(value) {
            Ok(MerchantType::Micro) => Some(Self::Micro),
            Ok(MerchantType::Enterprise) => Some(Self::Enterprise),
            _ => None,
        }
    }

    /// The contract's enum.
    pub fn to_proto(self) -> MerchantType {
        match self {
            Self::Micro => MerchantType::Micro,
            Self::Enterprise => MerchantType::Enterprise,
        }
    }
}

/// Where a merchant is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MerchantStatus {
    /// Onboarded, waiting for approval.
    Pending,
    /// Approved: terminals may be registered and activated; no transactions yet.
    Approved,
    /// May transact.
    Active,
    /// Every transaction refused ("03").
    Suspended,
}

impl MerchantStatus {
    /// Whether terminals may be registered, issued activation codes and activated.
    pub fn may_have_terminals(self) -> bool {
        matches!(self, Self::Approved | Self::Active)
    }

    /// The contract's enum.
    pub fn to_proto(self) -> pos_proto::v1::MerchantStatus {
        use pos_proto::v1::MerchantStatus as P;
        match self {
            Self::Pending => P::Pending,
            Self::Approved => P::Approved,
            Self::Active => P::Active,
            Self::Suspended => P::Suspended,
        }
    }
}

/// "pending", "approved", "active", "suspended".
impl fmt::Display for MerchantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Active => "active",
            Self::Suspended => "suspended",
        })
    }
}

/// What terminal decisions need to know of a merchant: its id and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantStanding {
    /// The merchant.
    pub merchant_id: MerchantId,
    /// Its status now.
    pub status: MerchantStatus,
}

/// A merchant as its events built it.
#[derive(Debug, Clone, PartialEq)]
pub struct MerchantState {
    /// 15-digit merchant id.
    pub merchant_id: MerchantId,
    /// Micro or enterprise.
    pub kind: MerchantKind,
    /// Lifecycle status.
    pub status: MerchantStatus,
    /// Merchant category code.
    pub mcc: Mcc,
    /// Fee schedules by first business date, ascending; the first is the onboarding one
    /// (effective from the start, empty date).
    pub fee_schedules: Vec<DatedFeeSchedule>,
    /// Why it was suspended; `None` unless suspended.
    pub suspension_reason: Option<String>,
    /// The onboarding event: names, city, masked and tokenized personal data, encrypted
    /// phone and account, trading hours, limit, agreement (its fee schedule is the first).
    pub onboarded: MerchantOnboarded,
    /// Number of events applied; the next event is number `version + 1`.
    pub version: u64,
}

impl MerchantState {
    /// Id and status, for terminal commands.
    pub fn standing(&self) -> MerchantStanding {
        MerchantStanding {
            merchant_id: self.merchant_id.clone(),
            status: self.status,
        }
    }

    /// Name printed on receipts.
    pub fn display_name(&self) -> &str {
        &self.onboarded.display_name
    }

    /// The fee schedule in force on a business date "YYYY-MM-DD".
    pub fn fee_schedule_on(&self, business_date: &str) -> Option<&FeeSchedule> {
        self.fee_schedules
            .iter()
            .rev()
            .find(|dated| dated.effective_from.as_str() <= business_date)
            .map(|dated| &dated.fee_schedule)
    }

    /// The schedule in force the day before `date`: what a change from `date` replaces.
    fn fee_schedule_before(&self, date: &str) -> Option<&FeeSchedule> {
        self.fee_schedules
            .iter()
            .rev()
            .find(|dated| dated.effective_from.as_str() < date)
            .map(|dated| &dated.fee_schedule)
    }
}

/// What can be asked of a merchant.
#[derive(Debug, Clone, PartialEq)]
pub enum MerchantCommand {
    /// Create it, PENDING (built by [`ValidatedOnboarding::into_command`]).
    Onboard(Box<OnboardMerchant>),
    /// PENDING → APPROVED.
    Approve {
        /// The merchant.
        merchant_id: MerchantId,
        /// Approval note; may be empty.
        note: String,
    },
    /// APPROVED or SUSPENDED → ACTIVE.
    Activate {
        /// The merchant.
        merchant_id: MerchantId,
        /// Note; may be empty.
        note: String,
    },
    /// ACTIVE or APPROVED → SUSPENDED.
    Suspend {
        /// The merchant.
        merchant_id: MerchantId,
        /// Why; required.
        reason: String,
    },
    /// Replace the fee schedule from a later business date on.
    ChangeFeeSchedule {
        /// The merchant.
        merchant_id: MerchantId,
        /// The new, complete schedule.
        fee_schedule: ValidFeeSchedule,
        /// First business date "YYYY-MM-DD" it applies to; after today (China time).
        effective_from: String,
    },
}

impl MerchantCommand {
    /// The merchant the command is for.
    pub fn merchant_id(&self) -> &MerchantId {
        match self {
            Self::Onboard(onboard) => onboard.merchant_id(),
            Self::Approve { merchant_id, .. }
            | Self::Activate { merchant_id, .. }
            | Self::Suspend { merchant_id, .. }
            | Self::ChangeFeeSchedule { merchant_id, .. } => merchant_id,
        }
    }
}

/// Decides which events a command produces on the merchant `state` (`None`: not onboarded).
pub fn decide(
    state: Option<&MerchantState>,
    command: MerchantCommand,
    ctx: &Ctx,
) -> Result<Vec<Payload>> {
    let actor = ctx.actor.clone();
    let event = match command {
        MerchantCommand::Onboard(onboard) => {
            if let Some(existing) = state {
                return Err(RegistryError::Conflict(format!(
                    "merchant {} already exists",
                    existing.merchant_id
                )));
            }
            let mut event = onboard.into_event();
            event.actor = actor;
            Payload::MerchantOnboarded(event)
        }
        MerchantCommand::Approve { merchant_id, note } => {
            let merchant = existing(state, &merchant_id)?;
            check_note("note", &note)?;
            let refusal = match merchant.status {
                MerchantStatus::Pending => None,
                MerchantStatus::Approved => Some("is already approved".to_owned()),
                MerchantStatus::Active => Some("is already active".to_owned()),
                MerchantStatus::Suspended => {
                    Some("is suspended; activate it to let it trade again".to_owned())
                }
            };
            refuse_if(&merchant_id, refusal)?;
            Payload::MerchantApproved(MerchantApproved {
                merchant_id: merchant_id.to_string(),
                actor,
                note,
            })
        }
        MerchantCommand::Activate { merchant_id, note } => {
            let merchant = existing(state, &merchant_id)?;
            check_note("note", &note)?;
            let refusal = match merchant.status {
                MerchantStatus::Pending => Some("is pending; approve it first".to_owned()),
                MerchantStatus::Active => Some("is already active".to_owned()),
                MerchantStatus::Approved | MerchantStatus::Suspended => None,
            };
            refuse_if(&merchant_id, refusal)?;
            Payload::MerchantActivated(MerchantActivated {
                merchant_id: merchant_id.to_string(),
                actor,
                note,
            })
        }
        MerchantCommand::Suspend {
            merchant_id,
            reason,
        } => {
            let merchant = existing(state, &merchant_id)?;
            if reason.trim().is_empty() {
                return Err(RegistryError::invalid(
                    "reason",
                    "required: why it is suspended",
                ));
            }
            check_note("reason", &reason)?;
            let refusal = match merchant.status {
                MerchantStatus::Pending => {
                    Some("is pending and cannot trade yet: there is nothing to suspend".to_owned())
                }
                MerchantStatus::Suspended => Some("is already suspended".to_owned()),
                MerchantStatus::Approved | MerchantStatus::Active => None,
            };
            refuse_if(&merchant_id, refusal)?;
            Payload::MerchantSuspended(MerchantSuspended {
                merchant_id: merchant_id.to_string(),
                actor,
                reason: reason.trim().to_owned(),
            })
        }
        MerchantCommand::ChangeFeeSchedule {
            merchant_id,
            fee_schedule,
            effective_from,
        } => {
            let merchant = existing(state, &merchant_id)?;
            let today = Date::in_china(ctx.now);
            let Some(date) = Date::parse_iso(&effective_from) else {
                return Err(RegistryError::invalid(
                    "effective_from",
                    "must be a business date YYYY-MM-DD",
                ));
            };
            if date <= today {
                return Err(RegistryError::invalid(
                    "effective_from",
                    format!(
                        "must be a later business date than today ({today}): the fees of a day already trading never change"
                    ),
                ));
            }
            let previous = merchant.fee_schedule_before(&effective_from).cloned();
            Payload::MerchantFeeScheduleChanged(MerchantFeeScheduleChanged {
                merchant_id: merchant_id.to_string(),
                fee_schedule: Some(fee_schedule.into_proto()),
                previous_fee_schedule: previous,
                effective_from,
                actor,
            })
        }
    };
    Ok(vec![event])
}

/// The state of merchant `id`, or why there is none.
fn existing<'a>(state: Option<&'a MerchantState>, id: &MerchantId) -> Result<&'a MerchantState> {
    match state {
        Some(merchant) if merchant.merchant_id == *id => Ok(merchant),
        Some(other) => Err(RegistryError::Conflict(format!(
            "a command for merchant {id} was given the state of merchant {}",
            other.merchant_id
        ))),
        None => Err(RegistryError::not_found("merchant", id)),
    }
}

fn refuse_if(id: &MerchantId, refusal: Option<String>) -> Result<()> {
    match refusal {
        Some(why) => Err(RegistryError::Conflict(format!("merchant {id} {why}"))),
        None => Ok(()),
    }
}

fn check_note(field: &str, note: &str) -> Result<()> {
    let count = note.chars().count();
    if count > MAX_NOTE_CHARS {
        let message = format!("must be at most {MAX_NOTE_CHARS} characters, got {count}");
        return Err(RegistryError::invalid(field, message));
    }
    Ok(())
}

/// Folds one event into the merchant. Events of other aggregates, of another merchant, or
/// that could not follow the state (a second onboarding) are ignored and not counted.
pub fn apply(state: Option<MerchantState>, payload: &Payload) -> Option<MerchantState> {
    match (state, payload) {
        (None, Payload::MerchantOnboarded(event)) => onboarded(event),
        (None, _) => None,
        (Some(merchant), payload) => Some(apply_to(merchant, payload)),
    }
}

/// Folds a merchant's events, oldest first.
pub fn replay<'a>(payloads: impl IntoIterator<Item = &'a Payload>) -> Option<MerchantState> {
    payloads.into_iter().fold(None, apply)
}

fn onboarded(event: &MerchantOnboarded) -> Option<MerchantState> {
    // an event this crate could not have written is ignored rather than half-applied
    let merchant_id = MerchantId::parse(&event.merchant_id).ok()?;
    let kind = MerchantKind::from_proto(event.merchant_type)?;
    let mcc = Mcc::parse(&event.mcc).ok()?;
    Some(MerchantState {
        merchant_id,
        kind,
        status: MerchantStatus::Pending,
        mcc,
        fee_schedules: vec![DatedFeeSchedule {
            effective_from: String::new(),
            fee_schedule: event.fee_schedule.clone().unwrap_or_default(),
        }],
        suspension_reason: None,
        onboarded: event.clone(),
        version: 1,
    })
}

fn apply_to(mut merchant: MerchantState, payload: &Payload) -> MerchantState {
    let id = merchant.merchant_id.as_str();
    let applied = match payload {
        Payload::MerchantApproved(e) if e.merchant_id == id => {
            merchant.status = MerchantStatus::Approved;
            true
        }
        Payload::MerchantActivated(e) if e.merchant_id == id => {
            merchant.status = MerchantStatus::Active;
            merchant.suspension_reason = None;
            true
        }
        Payload::MerchantSuspended(e) if e.merchant_id == id => {
            merchant.status = MerchantStatus::Suspended;
            merchant.suspension_reason = Some(e.reason.clone());
            true
        }
        Payload::MerchantFeeScheduleChanged(e) if e.merchant_id == id => {
            let from = e.effective_from.as_str();
            merchant
                .fee_schedules
                .retain(|dated| dated.effective_from.as_str() < from);
            merchant.fee_schedules.push(DatedFeeSchedule {
                effective_from: e.effective_from.clone(),
                fee_schedule: e.fee_schedule.clone().unwrap_or_default(),
            });
            true
        }
        _ => false,
    };
    if applied {
        merchant.version += 1;
    }
    merchant
}
