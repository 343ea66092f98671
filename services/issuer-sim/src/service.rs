//! The bank's logic: authorize, reverse and refund, over the books in Redis.
//!
//! Each request goes: idempotency (a known id with the same digest gets its first answer back,
//! `replayed`; with another digest "94"), then the pure checks of [`crate::checks`], then PIN
//! verification when a PIN is involved, then one Lua script that re-checks what can change,
//! moves the money and writes the ledger entry and the request's record atomically. When the
//! script finds that the card changed since it was read (a stale view), the request is run
//! again from the read, at most [`ATTEMPTS`] times.

use std::fmt;

use pos_domain::{Currency, Money, Pan, ResponseCode};
use rand::Rng;
use tracing::{info, warn};

use crate::books::{AuthorizeArgs, Books, Outcome, Record, RefundArgs, ReverseOutcome};
use crate::card::{CardRecord, Funding};
use crate::checks::{
    self, DigestFields, Operation, PinState, Presented, declines_before_pin, pin_involved,
};
use crate::clock::BankTime;
use crate::error::{IssuerError, Result};
use crate::metrics;
use crate::pin::{PinBlock, PinVerifier};

/// How often a request is run again when the books changed under it.
const ATTEMPTS: usize = 3;

/// A card number as received: valid (Luhn, length) or not ("14"). Never shows the digits.
#[derive(Clone)]
pub enum CardNumber {
    /// A valid PAN.
    Valid(Pan),
    /// Digits that are not a valid PAN; kept only to tell requests apart.
    Invalid(String),
}

impl CardNumber {
    /// Parses the digits of a request (the caller has checked they are digits).
    pub fn from_digits(digits: &str) -> Self {
        match Pan::parse(digits) {
            Ok(pan) => Self::Valid(pan),
            Err(_) => Self::Invalid(digits.to_owned()),
        }
    }

    /// The PAN when it is valid.
    pub fn pan(&self) -> Option<&Pan> {
        match self {
            Self::Valid(pan) => Some(pan),
            Self::Invalid(_) => None,
        }
    }

    pub(crate) fn digits(&self) -> &str {
        match self {
            Self::Valid(pan) => pan.expose_digits(),
            Self::Invalid(digits) => digits,
        }
    }
}

/// Masked, or "invalid PAN".
impl fmt::Display for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Valid(pan) => fmt::Display::fmt(pan, f),
            Self::Invalid(_) => f.write_str("invalid PAN"),
        }
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An amount of a request: minor units > 0 and its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount {
    /// Minor units.
    pub minor: i64,
    /// Currency.
    pub currency: Currency,
}

/// An Authorize request, parsed.
#[derive(Debug)]
pub struct AuthorizeCommand {
    /// Acquirer transaction id (idempotency key).
    pub id: String,
    /// Operation.
    pub op: Operation,
    /// Card number.
    pub card: CardNumber,
    /// Card data presented, compared with the card number.
    pub presented: Presented,
    /// PIN block, when a PIN was entered.
    pub pin_block: Option<PinBlock>,
    /// Amount (none for a balance inquiry; optional for a void).
    pub amount: Option<Amount>,
    /// Merchant id.
    pub merchant_id: String,
    /// Terminal id.
    pub terminal_id: String,
    /// Hold id (completion, void).
    pub hold_id: String,
    /// The pre-auth's acquirer transaction id (completion, void).
    pub original: String,
}

/// A Reverse request, parsed.
#[derive(Debug)]
pub struct ReverseCommand {
    /// Id of this reversal (for tracing).
    pub reversal_id: String,
    /// The original's acquirer transaction id (idempotency key of the reversal).
    pub original: String,
    /// The original's amount, when given.
    pub amount: Option<Amount>,
    /// Reason code, for the log.
    pub reason: String,
}

/// A Refund request, parsed.
#[derive(Debug)]
pub struct RefundCommand {
    /// The refund's acquirer transaction id (idempotency key).
    pub id: String,
    /// The original's acquirer transaction id.
    pub original: String,
    /// Amount to credit.
    pub amount: Amount,
    /// The card, when presented.
    pub card: Option<CardNumber>,
    /// Merchant id.
    pub merchant_id: String,
    /// Terminal id.
    pub terminal_id: String,
}

/// The answer to an Authorize or Refund request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Response code.
    pub code: ResponseCode,
    /// Approval code, when approved.
    pub approval_code: String,
    /// RRN (empty for "94", which is not recorded).
    pub rrn: String,
    /// Available balance, when disclosed.
    pub available: Option<Money>,
    /// Hold id placed by a pre-auth.
    pub hold_id: String,
    /// Amount approved.
    pub approved: Option<Money>,
    /// Funding of the card, when known.
    pub funding: Option<Funding>,
    /// Issuer reference.
    pub reference: String,
    /// Business date.
    pub business_date: String,
    /// Sum of refunds of the original (refunds only).
    pub refunded_total: Option<Money>,
    /// Whether this answer is the replay of an earlier one.
    pub replayed: bool,
}

/// The answer to a Reverse request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReverseAnswer {
    /// "00", or the refusal ("64", "12").
    pub code: ResponseCode,
    /// What happened (ReversalOutcome number; 0 when refused).
    pub outcome: i32,
    /// Available balance after, when disclosed.
    pub available: Option<Money>,
    /// Issuer reference.
    pub reference: String,
}

/// Settings of the logic.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// How much a completion may exceed its hold, in percent.
    pub completion_tolerance_percent: u32,
    /// Consecutive wrong PINs that block the card's PIN.
    pub pin_try_limit: u32,
    /// How long an authorization's answer is held back after the bank acted (a slow network or
    /// bank; for demonstrations and tests of reversals). Zero in normal use.
    pub answer_delay: std::time::Duration,
}

/// The issuing bank.
#[derive(Debug)]
pub struct Issuer {
    books: Books,
    pins: PinVerifier,
    rules: Rules,
}

/// ReversalOutcome numbers (proto `ReversalOutcome`).
pub mod outcome {
    /// Reversed.
    pub const REVERSED: i32 = 1;
    /// Already reversed.
    pub const ALREADY_REVERSED: i32 = 2;
    /// Original not found.
    pub const ORIGINAL_NOT_FOUND: i32 = 3;
    /// Original declined.
    pub const ORIGINAL_DECLINED: i32 = 4;

    /// Name for logs and metrics.
    pub fn name(outcome: i32) -> &'static str {
        match outcome {
            REVERSED => "reversed",
            ALREADY_REVERSED => "already_reversed",
            ORIGINAL_NOT_FOUND => "original_not_found",
            ORIGINAL_DECLINED => "original_declined",
            _ => "refused",
        }
    }
}

impl Issuer {
    /// The configured answer delay of authorizations.
    pub fn answer_delay(&self) -> std::time::Duration {
        self.rules.answer_delay
    }

    /// The bank over `books`, checking PINs with `pins`, under `rules`.
    pub fn new(books: Books, pins: PinVerifier, rules: Rules) -> Self {
        Self { books, pins, rules }
    }

    /// Authorizes a purchase, pre-auth, completion, void or balance inquiry.
    pub async fn authorize(&self, cmd: &AuthorizeCommand) -> Result<Answer> {
        let digest = checks::request_digest(
            self.books.digest_key(),
            &DigestFields {
                kind: &format!("authorize:{}", cmd.op.as_str()),
                pan: cmd.card.digits(),
                amount: cmd.amount.map(|a| a.minor),
                currency: cmd.amount.map_or("", |a| a.currency.code()),
                merchant_id: &cmd.merchant_id,
                terminal_id: &cmd.terminal_id,
                hold_id: &cmd.hold_id,
                original: &cmd.original,
            },
        );
        // A retry is answered from its record without touching the card (or the PIN tries).
        if let Some(record) = self.books.record(&cmd.id).await?
            && !record.is_tombstone()
        {
            return Ok(self.known_request(cmd.op.as_str(), &cmd.id, &record, &digest));
        }
        let token = cmd.card.pan().map(|pan| self.books.token(pan));
        let hold_id = self.hold_for(cmd).await?;
        let reference = new_reference();
        let approval = new_approval_code();
        for _ in 0..ATTEMPTS {
            let card = match &token {
                Some(token) => self.books.card(token).await?,
                None => None,
            };
            let now = BankTime::now();
            let precheck = card.as_ref().and_then(|card| {
                checks::precheck(
                    cmd.op,
                    card,
                    &cmd.presented,
                    cmd.amount.map(|a| a.currency),
                    now.year_month(),
                )
            });
            let pin = self.pin_state(cmd, card.as_ref(), precheck).await?;
            let outcome = self
                .books
                .authorize(&AuthorizeArgs {
                    op: cmd.op,
                    id: &cmd.id,
                    card: token.as_ref(),
                    hold_id: &hold_id,
                    digest: &digest,
                    amount: cmd.amount.map(|a| a.minor),
                    currency: cmd.amount.map_or("", |a| a.currency.code()),
                    precheck: precheck.map_or("", ResponseCode::code),
                    pin: pin.as_str(),
                    approval: &approval,
                    reference: &reference,
                    date: &now.business_date(),
                    rrn_prefix: &now.rrn_prefix(),
                    now: &now.timestamp(),
                    original: &cmd.original,
                    tolerance_percent: self.rules.completion_tolerance_percent,
                    pin_try_limit: self.rules.pin_try_limit,
                })
                .await?;
            let answer = match outcome {
                Outcome::New(record) => answer_of(&record, false),
                Outcome::Replay(record) => answer_of(&record, true),
                Outcome::Mismatch => duplicate(),
                Outcome::Retry => continue,
            };
            metrics::AUTHORIZATIONS
                .with_label_values(&[cmd.op.as_str(), answer.code.code()])
                .inc();
            if answer.replayed {
                metrics::REPLAYS.with_label_values(&["authorize"]).inc();
            }
            info!(
                txn = %cmd.id,
                op = cmd.op.as_str(),
                card = %cmd.card,
                code = answer.code.code(),
                replayed = answer.replayed,
                rrn = %answer.rrn,
                "authorization answered"
            );
            return Ok(answer);
        }
        Err(IssuerError::Contended(
            "the card kept changing during the authorization",
        ))
    }

    /// Reverses an earlier request (idempotent on the original).
    pub async fn reverse(&self, cmd: &ReverseCommand) -> Result<ReverseAnswer> {
        let reference = new_reference();
        for _ in 0..ATTEMPTS {
            let record = self.books.record(&cmd.original).await?;
            let record = record.filter(|r| !r.is_tombstone());
            // The amount must be the original's, in its currency.
            if let (Some(record), Some(amount)) = (&record, cmd.amount) {
                let currency = record.get("currency");
                if !currency.is_empty() && currency != amount.currency.code() {
                    return Ok(self.reverse_refused(cmd, ResponseCode::OriginalAmountIncorrect));
                }
            }
            let now = BankTime::now();
            let done = self
                .books
                .reverse(
                    &cmd.original,
                    record.as_ref(),
                    cmd.amount.map(|a| a.minor),
                    &cmd.reversal_id,
                    &now.timestamp(),
                )
                .await?;
            match done {
                ReverseOutcome::Done { outcome, available } => {
                    let currency = record.as_ref().and_then(account_currency);
                    let available = available
                        .zip(currency)
                        .map(|(a, c)| Money::from_minor(a, c));
                    metrics::REVERSALS
                        .with_label_values(&[outcome::name(outcome)])
                        .inc();
                    info!(
                        original = %cmd.original,
                        reversal = %cmd.reversal_id,
                        reason = %cmd.reason,
                        outcome = outcome::name(outcome),
                        "reversal answered"
                    );
                    return Ok(ReverseAnswer {
                        code: ResponseCode::Approved,
                        outcome,
                        available,
                        reference,
                    });
                }
                ReverseOutcome::Refused(code) => {
                    let code = ResponseCode::parse(&code)
                        .map_err(|e| IssuerError::Internal(e.to_string()))?;
                    return Ok(self.reverse_refused(cmd, code));
                }
                ReverseOutcome::Retry => continue,
            }
        }
        Err(IssuerError::Contended(
            "the original kept changing during the reversal",
        ))
    }

    /// Refunds part or all of an approved purchase or completion.
    pub async fn refund(&self, cmd: &RefundCommand) -> Result<Answer> {
        let digest = checks::request_digest(
            self.books.digest_key(),
            &DigestFields {
                kind: "refund",
                pan: cmd.card.as_ref().map_or("", CardNumber::digits),
                amount: Some(cmd.amount.minor),
                currency: cmd.amount.currency.code(),
                merchant_id: &cmd.merchant_id,
                terminal_id: &cmd.terminal_id,
                hold_id: "",
                original: &cmd.original,
            },
        );
        if let Some(record) = self.books.record(&cmd.id).await?
            && !record.is_tombstone()
        {
            return Ok(self.known_request("refund", &cmd.id, &record, &digest));
        }
        // A presented card that is not a valid PAN cannot be the original's: "14".
        let pan_token = match &cmd.card {
            None => String::new(),
            Some(CardNumber::Valid(pan)) => self.books.token(pan).as_str().to_owned(),
            Some(CardNumber::Invalid(_)) => "invalid".to_owned(),
        };
        let reference = new_reference();
        let approval = new_approval_code();
        for _ in 0..ATTEMPTS {
            let original = self.books.record(&cmd.original).await?;
            let expected = original.as_ref().map_or("", |r| r.get("card")).to_owned();
            let now = BankTime::now();
            let outcome = self
                .books
                .refund(&RefundArgs {
                    id: &cmd.id,
                    original: &cmd.original,
                    expected_card: &expected,
                    digest: &digest,
                    amount: cmd.amount.minor,
                    currency: cmd.amount.currency.code(),
                    pan_token: &pan_token,
                    approval: &approval,
                    reference: &reference,
                    date: &now.business_date(),
                    rrn_prefix: &now.rrn_prefix(),
                    now: &now.timestamp(),
                })
                .await?;
            let answer = match outcome {
                Outcome::New(record) => answer_of(&record, false),
                Outcome::Replay(record) => answer_of(&record, true),
                Outcome::Mismatch => duplicate(),
                Outcome::Retry => continue,
            };
            metrics::REFUNDS
                .with_label_values(&[answer.code.code()])
                .inc();
            if answer.replayed {
                metrics::REPLAYS.with_label_values(&["refund"]).inc();
            }
            info!(
                txn = %cmd.id,
                original = %cmd.original,
                code = answer.code.code(),
                replayed = answer.replayed,
                "refund answered"
            );
            return Ok(answer);
        }
        Err(IssuerError::Contended(
            "the original kept changing during the refund",
        ))
    }

    /// The answer to a request id that has a record: the replay, or "94".
    fn known_request(&self, kind: &str, id: &str, record: &Record, digest: &str) -> Answer {
        if record.get("digest") == digest {
            metrics::REPLAYS.with_label_values(&[kind]).inc();
            info!(txn = %id, op = kind, code = record.get("code"), "replayed the first answer");
            answer_of(record, true)
        } else {
            warn!(txn = %id, op = kind, "same id, different request: refused as a duplicate");
            duplicate()
        }
    }

    fn reverse_refused(&self, cmd: &ReverseCommand, code: ResponseCode) -> ReverseAnswer {
        metrics::REVERSALS.with_label_values(&["refused"]).inc();
        warn!(original = %cmd.original, code = code.code(), "reversal refused");
        ReverseAnswer {
            code,
            outcome: 0,
            available: None,
            reference: new_reference(),
        }
    }

    /// The hold a request acts on: a new id for a pre-auth; for a completion or void the
    /// given one, or the one the pre-auth `original` placed; empty otherwise (the scripts
    /// then answer "25").
    async fn hold_for(&self, cmd: &AuthorizeCommand) -> Result<String> {
        match cmd.op {
            Operation::PreAuth => Ok(uuid::Uuid::now_v7().to_string()),
            Operation::Completion | Operation::PreAuthVoid if cmd.hold_id.is_empty() => {
                let record = self.books.record(&cmd.original).await?;
                Ok(record
                    .filter(|r| r.get("op") == Operation::PreAuth.as_str())
                    .map(|r| r.get("hold").to_owned())
                    .unwrap_or_default())
            }
            _ => Ok(cmd.hold_id.clone()),
        }
    }

    /// Looks at the PIN if the request involves one and no earlier check declines.
    async fn pin_state(
        &self,
        cmd: &AuthorizeCommand,
        card: Option<&CardRecord>,
        precheck: Option<ResponseCode>,
    ) -> Result<PinState> {
        let (Some(card), Some(pan)) = (card, cmd.card.pan()) else {
            // Unknown card: "14" comes before any PIN check.
            return Ok(PinState::Unchecked);
        };
        if !pin_involved(cmd.op, card, cmd.pin_block.is_some()) {
            return Ok(PinState::NotInvolved);
        }
        if declines_before_pin(card, precheck, self.rules.pin_try_limit) {
            return Ok(PinState::Unchecked);
        }
        let state = match &cmd.pin_block {
            None => PinState::Missing,
            Some(block) => self.pins.verify(block, pan, &card.pin_hash).await?,
        };
        metrics::PIN_CHECKS
            .with_label_values(&[state.as_str()])
            .inc();
        Ok(state)
    }
}

/// The account currency a record's amounts are in.
fn account_currency(record: &Record) -> Option<Currency> {
    let code = match record.get("account_currency") {
        "" => record.get("currency"),
        code => code,
    };
    Currency::parse(code).ok()
}

/// The answer a record holds.
fn answer_of(record: &Record, replayed: bool) -> Answer {
    let account = account_currency(record);
    let request = Currency::parse(record.get("currency")).ok().or(account);
    let money = |field: &str, currency: Option<Currency>| {
        record
            .minor(field)
            .zip(currency)
            .map(|(minor, c)| Money::from_minor(minor, c))
    };
    let code = ResponseCode::parse(record.get("code")).unwrap_or(ResponseCode::SystemMalfunction);
    let hold_id = if record.get("op") == Operation::PreAuth.as_str() && code.is_approved() {
        record.get("hold").to_owned()
    } else {
        String::new()
    };
    Answer {
        code,
        approval_code: record.get("approval").to_owned(),
        rrn: record.get("rrn").to_owned(),
        available: money("available", account),
        hold_id,
        approved: money("approved", request),
        funding: Funding::parse(record.get("funding")),
        reference: record.get("ref").to_owned(),
        business_date: record.get("date").to_owned(),
        refunded_total: money("refunded_total", request),
        replayed,
    }
}

/// "94": the id was used for another request. Not recorded, so it carries no RRN.
fn duplicate() -> Answer {
    Answer {
        code: ResponseCode::DuplicateTransmission,
        approval_code: String::new(),
        rrn: String::new(),
        available: None,
        hold_id: String::new(),
        approved: None,
        funding: None,
        reference: new_reference(),
        business_date: BankTime::now().business_date(),
        refunded_total: None,
        replayed: false,
    }
}

/// A fresh issuer reference.
fn new_reference() -> String {
    format!("ISS-{}", uuid::Uuid::now_v7().simple())
}

/// Six random digits.
fn new_approval_code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pairs: &[(&str, &str)]) -> Record {
        let fields = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        Record::from_pairs(fields)
    }

    #[test]
    fn an_approved_pre_auth_record_becomes_its_answer() {
        let r = record(&[
            ("op", "pre_auth"),
            ("code", "00"),
            ("approval", "123456"),
            ("rrn", "507000000001"),
            ("available", "990000"),
            ("approved", "10000"),
            ("currency", "CNY"),
            ("account_currency", "CNY"),
            ("hold", "h-1"),
            ("funding", "debit"),
            ("date", "2025-03-11"),
            ("ref", "ISS-1"),
        ]);
        let a = answer_of(&r, true);
        assert_eq!(a.code, ResponseCode::Approved);
        assert_eq!(a.hold_id, "h-1");
        assert_eq!(a.available.unwrap().to_string(), "9900.00 CNY");
        assert_eq!(a.approved.unwrap().to_minor().unwrap(), 10_000);
        assert_eq!(a.funding, Some(Funding::Debit));
        assert!(a.replayed);
    }

    #[test]
    fn a_declined_balance_inquiry_discloses_nothing() {
        let r = record(&[("op", "balance_inquiry"), ("code", "55"), ("currency", "")]);
        let a = answer_of(&r, false);
        assert_eq!(a.code, ResponseCode::IncorrectPin);
        assert_eq!((a.available, a.approved, a.funding), (None, None, None));
        assert!(a.hold_id.is_empty() && a.approval_code.is_empty());
    }

    #[test]
    fn approval_codes_are_six_digits_and_card_numbers_render_masked() {
        let code = new_approval_code();
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        let valid = CardNumber::from_digits("6217000010012345677");
        assert_eq!(valid.to_string(), "621700****5677");
        let invalid = CardNumber::from_digits("6217000010012345678");
        assert_eq!(format!("{invalid:?}"), "invalid PAN");
        assert!(invalid.pan().is_none());
    }
}
