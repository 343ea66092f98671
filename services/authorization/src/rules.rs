//! The acquirer's own decisions, pure and synchronous: what is checked before anything leaves
//! for fraud-check or the issuer, the pre-authorization rules of completions and voids, and the
//! policy when fraud-check does not answer. Each refusal is a [`Decline`] with its DE39 code
//! and a message for the cashier.
//!
//! Codes (REFERENCE.md), in the order the checks run:
//! - merchant unknown or not active: "03"; terminal unknown: "97"; terminal not active or of
//!   another merchant: "58";
//! - amount missing, zero, negative, in an unknown currency or another currency than the
//!   merchant's: "13"; above the merchant's per-transaction limit (purchase, pre-auth): "61";
//! - entry mode missing, track 2 missing for a swipe or malformed, expiry or service code
//!   malformed: "30";
//! - PAN not 13-19 digits or failing Luhn, BIN not accepted by this deployment, PAN different
//!   from the one on track 2: "14";
//! - card expired: "54";
//! - field 55 missing, malformed, lacking a mandatory tag or disagreeing with the amount: "30";
//! - PIN required by the service code but no PIN block, or a PIN block without its key: "30";
//! - completion / void: pre-authorization not found, not approved, of another card or merchant:
//!   "25"; already completed or voided: "12"; completion above the pre-auth plus the tolerance,
//!   or void amount other than the pre-auth's: "64".

use std::cmp::Ordering;

use pos_domain::{Currency, EntryMode, Expiry, Money, Pan, ResponseCode, ServiceCode};
use pos_facts::{MerchantFacts, TerminalFacts};
use pos_proto::v1 as pb;
use rust_decimal::Decimal;

use crate::clock::Date;
use crate::emv::{self, ChipData};
use crate::model::{Kind, Request};
use pos_facts::txn::TxnRecord;

/// The deployment's settings that decisions depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// PAN prefixes accepted ("62" = UnionPay).
    pub accepted_bins: Vec<String>,
    /// Per-transaction limit, in major units of the merchant's currency, for merchants without
    /// a limit of their own.
    pub default_limit: Decimal,
    /// A completion may exceed its pre-authorization by this fraction (0.15 = 15 %).
    pub completion_tolerance: Decimal,
    /// When fraud-check is slow or down, amounts below this (major units) go on without it.
    pub fraud_fail_open_below: Decimal,
    /// The answer when fraud-check is slow or down at or above that amount ("96" or "59").
    pub fraud_fail_closed_code: ResponseCode,
}

/// A refusal: its code, the cashier's message and who refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decline {
    /// DE39.
    pub code: ResponseCode,
    /// Message for the cashier (never card data).
    pub message: String,
    /// Validation, fraud, issuer or system.
    pub source: pb::DeclineSource,
}

impl Decline {
    /// A refusal by the platform's own validation.
    pub fn validation(code: ResponseCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            source: pb::DeclineSource::Validation,
        }
    }

    /// A refusal because something failed ("91", "96").
    pub fn system(code: ResponseCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            source: pb::DeclineSource::System,
        }
    }
}

/// What validation learned about a request that passed it.
#[derive(Debug)]
pub struct Checked {
    /// Amount; `None` for balance inquiry and a pre-auth void that did not state one.
    pub amount: Option<Money>,
    /// The card number.
    pub pan: Pan,
    /// How it was read.
    pub entry_mode: EntryMode,
    /// Checked field 55 of a chip or contactless read.
    pub chip: Option<ChipData>,
    /// Expiry "YYMM" read from track 2; empty without track data.
    pub track2_expiry: String,
}

/// Checks a request against the merchant's and terminal's facts, the deployment's rules and
/// the current date (China Standard Time).
pub fn validate(
    request: &Request,
    merchant: Option<&MerchantFacts>,
    terminal: Option<&TerminalFacts>,
    rules: &Rules,
    today: Date,
) -> Result<Checked, Decline> {
    use ResponseCode as C;
    let merchant = merchant.ok_or_else(|| {
        refuse(
            C::InvalidMerchant,
            format!("merchant {} is not known", request.merchant_id),
        )
    })?;
    if !merchant.is_active() {
        return Err(refuse(
            C::InvalidMerchant,
            format!("merchant is {}, not active", or_unknown(&merchant.status)),
        ));
    }
    let terminal = terminal.ok_or_else(|| {
        refuse(
            C::TerminalNotRegistered,
            format!("terminal {} is not registered", request.trace.terminal_id),
        )
    })?;
    if terminal.merchant_id != merchant.merchant_id {
        return Err(refuse(
            C::NotPermittedToTerminal,
            "terminal belongs to another merchant",
        ));
    }
    if !terminal.is_active() {
        return Err(refuse(
            C::NotPermittedToTerminal,
            format!("terminal is {}, not active", or_unknown(&terminal.status)),
        ));
    }
    let amount = amount(request, merchant, rules)?;

    let card = &request.card;
    let entry_mode = request.entry_mode().ok_or_else(|| {
        refuse(
            C::FormatError,
            "entry mode is required (swipe, chip, tap, fallback or manual)",
        )
    })?;
    let pan = Pan::parse(&card.pan)
        .map_err(|e| refuse(C::InvalidCardNumber, format!("invalid card number: {e}")))?;
    if !rules
        .accepted_bins
        .iter()
        .any(|bin| pan.expose_digits().starts_with(bin.as_str()))
    {
        return Err(refuse(
            C::InvalidCardNumber,
            format!("cards of BIN {} are not accepted here", pan.bin()),
        ));
    }
    let track2_expiry = track2(card, &pan, entry_mode)?;
    let today_month = (u16::try_from(today.year).unwrap_or(u16::MAX), today.month);
    if !card.expiry.is_empty() && request.kind != Kind::PreAuthVoid {
        let expiry =
            Expiry::parse(&card.expiry).map_err(|e| refuse(C::FormatError, e.to_string()))?;
        let month = u8::try_from(today_month.1).unwrap_or(12);
        if expiry.is_expired_at(today_month.0, month) {
            return Err(refuse(
                C::ExpiredCard,
                format!("card expired at the end of {expiry}"),
            ));
        }
    }
    let service_code = (!card.service_code.is_empty())
        .then(|| ServiceCode::parse(&card.service_code))
        .transpose()
        .map_err(|e| refuse(C::FormatError, e.to_string()))?;
    let chip = if entry_mode.is_chip_read() {
        let compared = if request.kind == Kind::BalanceInquiry {
            None
        } else {
            amount.as_ref()
        };
        Some(
            emv::check(&card.emv_data, compared)
                .map_err(|e| refuse(C::FormatError, e.to_string()))?,
        )
    } else {
        None
    };
    check_pin_presence(request, service_code)?;
    Ok(Checked {
        amount,
        pan,
        entry_mode,
        chip,
        track2_expiry,
    })
}

/// A refusal by validation.
fn refuse(code: ResponseCode, message: impl Into<String>) -> Decline {
    Decline::validation(code, message)
}

fn or_unknown(status: &str) -> &str {
    if status.is_empty() { "unknown" } else { status }
}

/// The request's amount, checked for its type, currency and the merchant's limit.
fn amount(
    request: &Request,
    merchant: &MerchantFacts,
    rules: &Rules,
) -> Result<Option<Money>, Decline> {
    use ResponseCode as C;
    let raw = match (request.kind, &request.amount) {
        (Kind::BalanceInquiry, _) | (Kind::PreAuthVoid, None) => return Ok(None),
        (_, Some(raw)) => raw,
        (kind, None) => {
            return Err(refuse(
                C::InvalidAmount,
                format!(
                    "an amount is required for a {}",
                    kind.as_str().replace('_', " ")
                ),
            ));
        }
    };
    let currency =
        Currency::parse(&raw.currency).map_err(|e| refuse(C::InvalidAmount, e.to_string()))?;
    if raw.minor_units <= 0 {
        return Err(refuse(
            C::InvalidAmount,
            format!(
                "the amount must be greater than zero, got {}",
                Money::from_minor(raw.minor_units, currency)
            ),
        ));
    }
    let money = Money::from_minor(raw.minor_units, currency);
    let merchant_currency = Currency::parse(&merchant.currency).unwrap_or(Currency::CNY);
    if currency != merchant_currency {
        return Err(refuse(
            C::InvalidAmount,
            format!("the merchant trades in {merchant_currency}, not {currency}"),
        ));
    }
    if matches!(request.kind, Kind::Purchase | Kind::PreAuth) {
        let limit = merchant.limit_minor.map_or_else(
            || Money::new(rules.default_limit, merchant_currency),
            |minor| Money::from_minor(minor, merchant_currency),
        );
        if money.checked_cmp(&limit) == Ok(Ordering::Greater) {
            return Err(refuse(
                C::ExceedsAmountLimit,
                format!("{money} exceeds the merchant's limit of {limit} per transaction"),
            ));
        }
    }
    Ok(Some(money))
}

/// Checks track 2 (required for swipes) against the PAN; returns the expiry it carries.
fn track2(card: &pb::CardData, pan: &Pan, entry_mode: EntryMode) -> Result<String, Decline> {
    use ResponseCode as C;
    if card.track2.is_empty() {
        return match entry_mode {
            EntryMode::Swipe | EntryMode::FallbackSwipe => Err(refuse(
                C::FormatError,
                "track 2 data is required for a swiped card",
            )),
            _ => Ok(String::new()),
        };
    }
    let malformed = || refuse(C::FormatError, "track 2 data is malformed");
    let (track_pan, rest) = card.track2.split_once('=').ok_or_else(malformed)?;
    let well_formed = track_pan.bytes().all(|b| b.is_ascii_digit())
        && rest.len() >= 4
        && rest.bytes().all(|b| b.is_ascii_digit());
    if !well_formed {
        return Err(malformed());
    }
    if track_pan != pan.expose_digits() {
        return Err(refuse(
            C::InvalidCardNumber,
            "the card number differs from the one on track 2",
        ));
    }
    Ok(rest[..4].to_owned())
}

/// A PIN block is needed when the service code requires a PIN (releasing a hold needs none),
/// and needs the key it is under.
fn check_pin_presence(request: &Request, service_code: Option<ServiceCode>) -> Result<(), Decline> {
    use ResponseCode as C;
    let required =
        request.kind != Kind::PreAuthVoid && service_code.is_some_and(ServiceCode::requires_pin);
    if request.pin_block.is_empty() {
        if required {
            return Err(Decline::validation(
                C::FormatError,
                "this card requires a PIN: ask the cardholder to enter it",
            ));
        }
        return Ok(());
    }
    match &request.pin_key {
        Some(key) if key.terminal_id == request.trace.terminal_id.as_str() => Ok(()),
        Some(_) => Err(Decline::validation(
            C::FormatError,
            "the PIN block is under another terminal's key",
        )),
        None => Err(Decline::validation(
            C::FormatError,
            "a PIN block needs the key version it is encrypted under",
        )),
    }
}

/// Checks that `original` is a held pre-authorization of this card and merchant that this
/// completion or void may act on; returns the pre-authorized amount.
pub fn check_original(
    kind: Kind,
    amount: Option<&Money>,
    original: &TxnRecord,
    asked: &pb::OriginalTransactionRef,
    card_token: &str,
    merchant_id: &str,
    rules: &Rules,
) -> Result<Money, Decline> {
    use ResponseCode as C;
    let not_found = |why: &str| {
        refuse(
            C::OriginalNotFound,
            format!("pre-authorization not found: {why}"),
        )
    };
    if original.kind != Kind::PreAuth.as_str() || !original.approved() {
        return Err(not_found(
            "the original is not an approved pre-authorization",
        ));
    }
    if original.card_token != card_token {
        return Err(not_found("it was made with another card"));
    }
    if original.merchant_id != merchant_id {
        return Err(not_found("it was made at another merchant"));
    }
    if !asked.approval_code.is_empty() && asked.approval_code != original.approval_code {
        return Err(not_found("its approval code differs"));
    }
    match original.hold_state.as_str() {
        "completed" => {
            return Err(refuse(
                C::InvalidTransaction,
                "the pre-authorization is already completed",
            ));
        }
        "voided" => {
            return Err(refuse(
                C::InvalidTransaction,
                "the pre-authorization is already voided",
            ));
        }
        "reversed" => {
            return Err(refuse(
                C::InvalidTransaction,
                "the pre-authorization was reversed: its hold is released",
            ));
        }
        _ => {}
    }
    let currency =
        Currency::parse(&original.currency).map_err(|_| not_found("its currency is unknown"))?;
    let held = Money::from_minor(original.amount_minor.unwrap_or(0), currency);
    let Some(amount) = amount else {
        return Ok(held);
    };
    if amount.currency() != currency {
        return Err(refuse(
            C::OriginalAmountIncorrect,
            format!(
                "the pre-authorization is in {currency}, not {}",
                amount.currency()
            ),
        ));
    }
    match kind {
        Kind::Completion if !within_tolerance(&held, amount, rules.completion_tolerance) => {
            Err(refuse(
                C::OriginalAmountIncorrect,
                format!(
                    "completion {amount} exceeds the pre-authorized {held} plus {}%",
                    (rules.completion_tolerance * Decimal::ONE_HUNDRED).normalize()
                ),
            ))
        }
        Kind::PreAuthVoid if *amount != held => Err(refuse(
            C::OriginalAmountIncorrect,
            format!("a pre-auth void releases the whole {held}, not {amount}"),
        )),
        _ => Ok(held),
    }
}

/// Whether `completion` ≤ `held` × (1 + `tolerance`), exactly (no rounding).
pub fn within_tolerance(held: &Money, completion: &Money, tolerance: Decimal) -> bool {
    let ceiling = held
        .amount()
        .checked_mul(Decimal::ONE + tolerance)
        .unwrap_or(Decimal::MAX);
    held.currency() == completion.currency() && completion.amount() <= ceiling
}

/// The policy when fraud-check is slow or down: go on without it below the configured amount,
/// decline at or above it. A balance inquiry (no amount) moves no money and goes on.
pub fn fraud_fallback(amount: Option<&Money>, rules: &Rules) -> pb::FraudPolicy {
    match amount {
        Some(amount) if amount.amount() >= rules.fraud_fail_open_below => {
            pb::FraudPolicy::FailClosed
        }
        _ => pb::FraudPolicy::FailOpen,
    }
}

#[cfg(test)]
mod tests {
    use pos_proto::v1 as pb;
    use rust_decimal_macros::dec;

    use super::*;
    use crate::emv::tests::{field55, field55_without};
    use crate::model::tests::purchase;

    fn rules() -> Rules {
        Rules {
            accepted_bins: vec!["62".to_owned()],
            default_limit: dec!(50000),
            completion_tolerance: dec!(0.15),
            fraud_fail_open_below: dec!(1000),
            fraud_fail_closed_code: ResponseCode::SystemMalfunction,
        }
    }

    fn merchant() -> MerchantFacts {
        MerchantFacts {
            merchant_id: "898310048990001".to_owned(),
            status: "active".to_owned(),
            name: "上海测试便利店".to_owned(),
            city: "上海".to_owned(),
            mcc: "5411".to_owned(),
            limit_minor: Some(1_000_000),
            currency: "CNY".to_owned(),
        }
    }

    fn terminal() -> TerminalFacts {
        TerminalFacts {
            terminal_id: "TERM0001".to_owned(),
            merchant_id: "898310048990001".to_owned(),
            status: "active".to_owned(),
        }
    }

    fn today() -> Date {
        Date {
            year: 2025,
            month: 6,
            day: 1,
        }
    }

    fn request(edit: impl FnOnce(&mut pb::AuthorizationRequest)) -> Request {
        let mut proto = purchase();
        edit(&mut proto);
        Request::try_from(proto).unwrap()
    }

    fn card(edit: impl FnOnce(&mut pb::CardData)) -> Request {
        request(|r| edit(r.card.as_mut().unwrap()))
    }

    fn outcome(request: &Request) -> Result<Checked, Decline> {
        validate(
            request,
            Some(&merchant()),
            Some(&terminal()),
            &rules(),
            today(),
        )
    }

    fn code(request: &Request) -> String {
        match outcome(request) {
            Ok(_) => "ok".to_owned(),
            Err(d) => d.code.code().to_owned(),
        }
    }

    fn message(request: &Request) -> String {
        outcome(request).unwrap_err().message
    }

    fn amount(minor: i64) -> Option<pb::Money> {
        Some(pb::Money {
            minor_units: minor,
            currency: "CNY".to_owned(),
        })
    }

    #[test]
    fn a_valid_swipe_passes_with_its_facts() {
        let checked = outcome(&request(|_| {})).unwrap();
        assert_eq!(checked.amount, Some(Money::from_minor(5000, Currency::CNY)));
        assert_eq!(checked.entry_mode, EntryMode::Swipe);
        assert_eq!(checked.track2_expiry, "3012");
        assert!(checked.chip.is_none());
    }

    #[test]
    fn merchant_and_terminal_must_be_known_active_and_together() {
        let r = request(|_| {});
        let with = |m: Option<MerchantFacts>, t: Option<TerminalFacts>| {
            validate(&r, m.as_ref(), t.as_ref(), &rules(), today())
                .unwrap_err()
                .code
                .code()
        };
        assert_eq!(with(None, Some(terminal())), "03");
        let suspended = MerchantFacts {
            status: "suspended".to_owned(),
            ..merchant()
        };
        assert_eq!(with(Some(suspended), Some(terminal())), "03");
        assert_eq!(with(Some(merchant()), None), "97");
        let other = TerminalFacts {
            merchant_id: "898310048990002".to_owned(),
            ..terminal()
        };
        assert_eq!(with(Some(merchant()), Some(other)), "58");
        let registered = TerminalFacts {
            status: "registered".to_owned(),
            ..terminal()
        };
        assert_eq!(with(Some(merchant()), Some(registered)), "58");
    }

    #[test]
    fn amounts_must_be_positive_known_and_within_the_limit() {
        assert_eq!(code(&request(|r| r.amount = amount(0))), "13");
        assert_eq!(code(&request(|r| r.amount = amount(-100))), "13");
        assert_eq!(code(&request(|r| r.amount = None)), "13");
        let mut usd = amount(100);
        usd.as_mut().unwrap().currency = "USD".to_owned();
        assert_eq!(
            message(&request(|r| r.amount = usd)),
            "the merchant trades in CNY, not USD"
        );
        let mut unknown = amount(100);
        unknown.as_mut().unwrap().currency = "XXX".to_owned();
        assert_eq!(code(&request(|r| r.amount = unknown)), "13");
        assert_eq!(code(&request(|r| r.amount = amount(1_000_000))), "ok");
        let over = request(|r| r.amount = amount(1_000_001));
        assert_eq!(code(&over), "61");
        assert_eq!(
            message(&over),
            "10000.01 CNY exceeds the merchant's limit of 10000.00 CNY per transaction"
        );
        // Without a limit of its own the merchant gets the platform default (50000.00).
        let no_limit = MerchantFacts {
            limit_minor: None,
            ..merchant()
        };
        let big = request(|r| r.amount = amount(5_000_001));
        let refused = validate(&big, Some(&no_limit), Some(&terminal()), &rules(), today());
        assert_eq!(refused.unwrap_err().code, ResponseCode::ExceedsAmountLimit);
        // A balance inquiry has no amount.
        let balance = request(|r| {
            r.transaction_type = pb::TransactionType::BalanceInquiry as i32;
            r.amount = None;
        });
        assert_eq!(outcome(&balance).unwrap().amount, None);
    }

    #[test]
    fn card_numbers_must_be_valid_and_of_an_accepted_bin() {
        assert_eq!(
            code(&card(|c| c.pan = "6222020200112233447".to_owned())),
            "14"
        );
        assert_eq!(code(&card(|c| c.pan = "62220202".to_owned())), "14");
        let visa = card(|c| {
            c.pan = "4111111111111111".to_owned();
            c.track2 = "4111111111111111=3012201".to_owned();
        });
        assert_eq!(code(&visa), "14");
        assert_eq!(message(&visa), "cards of BIN 411111 are not accepted here");
        let mismatch = card(|c| c.track2 = "6222020200112233453=30122010".to_owned());
        assert_eq!(code(&mismatch), "14");
        assert!(
            !message(&mismatch).contains("6222"),
            "no card number in messages"
        );
    }

    #[test]
    fn swipes_need_well_formed_track_2() {
        assert_eq!(code(&card(|c| c.track2.clear())), "30");
        assert_eq!(
            code(&card(|c| c.track2 = "6222020200112233446D3012".to_owned())),
            "30"
        );
        assert_eq!(
            code(&card(|c| c.track2 = "6222020200112233446=30".to_owned())),
            "30"
        );
        let manual = card(|c| {
            c.track2.clear();
            c.service_code.clear();
            c.entry_mode = pb::CardEntryMode::Manual as i32;
        });
        assert_eq!(code(&manual), "ok");
        assert_eq!(code(&card(|c| c.entry_mode = 0)), "30");
    }

    #[test]
    fn expired_cards_are_refused_from_the_month_after_expiry() {
        assert_eq!(code(&card(|c| c.expiry = "2506".to_owned())), "ok");
        let expired = card(|c| c.expiry = "2505".to_owned());
        assert_eq!(code(&expired), "54");
        assert_eq!(message(&expired), "card expired at the end of 2505");
        assert_eq!(code(&card(|c| c.expiry = "2513".to_owned())), "30");
    }

    #[test]
    fn chip_reads_need_complete_field_55_matching_the_amount() {
        let chip = |data: Vec<u8>, mode: pb::CardEntryMode| {
            card(move |c| {
                c.entry_mode = mode as i32;
                c.emv_data = data;
            })
        };
        let ok = outcome(&chip(field55(5000), pb::CardEntryMode::Chip)).unwrap();
        assert!(ok.chip.unwrap().facts.amount_consistent);
        assert_eq!(
            code(&chip(field55(5000), pb::CardEntryMode::Contactless)),
            "ok"
        );
        assert_eq!(code(&chip(Vec::new(), pb::CardEntryMode::Chip)), "30");
        assert_eq!(
            code(&chip(vec![0x9F, 0x26, 0x08], pb::CardEntryMode::Chip)),
            "30"
        );
        let missing = chip(
            field55_without(5000, &[0x9F33]),
            pb::CardEntryMode::Contactless,
        );
        assert_eq!(message(&missing), "field 55 lacks the mandatory tags 9F33");
        assert_eq!(code(&chip(field55(4999), pb::CardEntryMode::Chip)), "30");
    }

    #[test]
    fn a_pin_is_required_where_the_service_code_says_so() {
        let needs_pin = card(|c| {
            c.service_code = "220".to_owned();
            c.track2 = "6222020200112233446=30122200000".to_owned();
        });
        assert_eq!(code(&needs_pin), "30");
        assert_eq!(
            message(&needs_pin),
            "this card requires a PIN: ask the cardholder to enter it"
        );
        let with_pin = request(|r| {
            let c = r.card.as_mut().unwrap();
            c.service_code = "220".to_owned();
            r.pin_block = vec![0; 8];
            r.pin_key = Some(pb::PinKeyRef {
                terminal_id: "TERM0001".to_owned(),
                key_version: 1,
            });
        });
        assert_eq!(code(&with_pin), "ok");
        let keyless = request(|r| r.pin_block = vec![0; 8]);
        assert_eq!(code(&keyless), "30");
        let foreign_key = request(|r| {
            r.pin_block = vec![0; 8];
            r.pin_key = Some(pb::PinKeyRef {
                terminal_id: "TERM0002".to_owned(),
                key_version: 1,
            });
        });
        assert_eq!(code(&foreign_key), "30");
    }

    fn pre_auth(amount_minor: i64) -> TxnRecord {
        TxnRecord {
            transaction_id: "0190a0b0-0000-7000-8000-000000000001".to_owned(),
            kind: "pre_auth".to_owned(),
            merchant_id: "898310048990001".to_owned(),
            amount_minor: Some(amount_minor),
            currency: "CNY".to_owned(),
            card_token: "token".to_owned(),
            response_code: "00".to_owned(),
            approval_code: "A1B2C3".to_owned(),
            hold_state: "held".to_owned(),
            ..TxnRecord::default()
        }
    }

    fn check(kind: Kind, minor: Option<i64>, original: &TxnRecord) -> Result<Money, Decline> {
        let amount = minor.map(|m| Money::from_minor(m, Currency::CNY));
        let asked = pb::OriginalTransactionRef {
            approval_code: "A1B2C3".to_owned(),
            ..pb::OriginalTransactionRef::default()
        };
        check_original(
            kind,
            amount.as_ref(),
            original,
            &asked,
            "token",
            "898310048990001",
            &rules(),
        )
    }

    #[test]
    fn completion_may_exceed_the_pre_auth_by_the_tolerance_only() {
        let held = pre_auth(10_000);
        assert_eq!(
            check(Kind::Completion, Some(11_500), &held),
            Ok(Money::from_minor(10_000, Currency::CNY))
        );
        assert!(check(Kind::Completion, Some(8_000), &held).is_ok());
        let over = check(Kind::Completion, Some(11_501), &held).unwrap_err();
        assert_eq!(over.code, ResponseCode::OriginalAmountIncorrect);
        assert_eq!(
            over.message,
            "completion 115.01 CNY exceeds the pre-authorized 100.00 CNY plus 15%"
        );
    }

    #[test]
    fn tolerance_is_exact_to_the_fen() {
        let held = Money::from_minor(333, Currency::CNY);
        let tolerance = dec!(0.15);
        // 3.33 × 1.15 = 3.8295: 3.82 fits, 3.83 does not.
        assert!(within_tolerance(
            &held,
            &Money::from_minor(382, Currency::CNY),
            tolerance
        ));
        assert!(!within_tolerance(
            &held,
            &Money::from_minor(383, Currency::CNY),
            tolerance
        ));
        assert!(within_tolerance(&held, &held, Decimal::ZERO));
        let usd = Money::from_minor(100, Currency::USD);
        assert!(!within_tolerance(&held, &usd, tolerance));
    }

    #[test]
    fn voids_release_exactly_the_held_amount() {
        let held = pre_auth(10_000);
        assert!(check(Kind::PreAuthVoid, None, &held).is_ok());
        assert!(check(Kind::PreAuthVoid, Some(10_000), &held).is_ok());
        assert_eq!(
            check(Kind::PreAuthVoid, Some(9_000), &held)
                .unwrap_err()
                .code,
            ResponseCode::OriginalAmountIncorrect
        );
    }

    #[test]
    fn only_a_held_pre_auth_of_this_card_and_merchant_qualifies() {
        let mut declined = pre_auth(100);
        declined.response_code = "51".to_owned();
        assert_eq!(
            check(Kind::Completion, Some(100), &declined)
                .unwrap_err()
                .code
                .code(),
            "25"
        );
        let mut purchase = pre_auth(100);
        purchase.kind = "purchase".to_owned();
        assert_eq!(
            check(Kind::Completion, Some(100), &purchase)
                .unwrap_err()
                .code
                .code(),
            "25"
        );
        let mut other_card = pre_auth(100);
        other_card.card_token = "other".to_owned();
        assert_eq!(
            check(Kind::Completion, Some(100), &other_card)
                .unwrap_err()
                .code
                .code(),
            "25"
        );
        let mut other_code = pre_auth(100);
        other_code.approval_code = "ZZZZZZ".to_owned();
        assert_eq!(
            check(Kind::PreAuthVoid, None, &other_code)
                .unwrap_err()
                .code
                .code(),
            "25"
        );
        let mut completed = pre_auth(100);
        completed.hold_state = "completed".to_owned();
        let refused = check(Kind::PreAuthVoid, None, &completed).unwrap_err();
        assert_eq!(
            (refused.code.code(), refused.message.as_str()),
            ("12", "the pre-authorization is already completed")
        );
    }

    #[test]
    fn fraud_fallback_fails_open_below_the_amount_and_closed_from_it() {
        let cny = |minor| Money::from_minor(minor, Currency::CNY);
        assert_eq!(
            fraud_fallback(Some(&cny(99_999)), &rules()),
            pb::FraudPolicy::FailOpen
        );
        assert_eq!(
            fraud_fallback(Some(&cny(100_000)), &rules()),
            pb::FraudPolicy::FailClosed
        );
        assert_eq!(fraud_fallback(None, &rules()), pb::FraudPolicy::FailOpen);
    }
}
