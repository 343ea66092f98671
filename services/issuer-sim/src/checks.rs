//! The pure decisions of an authorization, made before the books are touched: the operation,
//! the idempotency digest of a request, the checks decided from data that does not change
//! (expiry, the card data presented, the currency) and whether a PIN is involved.
//!
//! Everything that depends on the account's changing state (status, PIN tries, limits,
//! funds, holds) is decided atomically inside the Lua scripts (`lua/authorize.lua`), in the
//! order: unknown card 14 → these pre-checks (14 track 2, 54 expired, 13 currency) → status
//! 41/43/57 → PIN 75/99/55 → per-transaction limit 61 → funds 51 → approved 00.

use pos_domain::{Currency, Expiry, ResponseCode, TokenKey};

use crate::card::{CardRecord, CardStatus};

/// What an Authorize request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Debit the account.
    Purchase,
    /// Place a hold.
    PreAuth,
    /// Capture a hold.
    Completion,
    /// Release a hold.
    PreAuthVoid,
    /// Tell the available balance.
    BalanceInquiry,
}

impl Operation {
    /// The name in records, ledgers, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Purchase => "purchase",
            Self::PreAuth => "pre_auth",
            Self::Completion => "completion",
            Self::PreAuthVoid => "pre_auth_void",
            Self::BalanceInquiry => "balance_inquiry",
        }
    }

    /// Whether the request must carry an amount.
    pub fn needs_amount(self) -> bool {
        matches!(self, Self::Purchase | Self::PreAuth | Self::Completion)
    }

    /// Whether the operation acts on an existing hold.
    pub fn acts_on_hold(self) -> bool {
        matches!(self, Self::Completion | Self::PreAuthVoid)
    }

    /// Whether the card itself is being used (expiry and the card data presented matter).
    /// Releasing a hold never harms the cardholder, so a void is honoured on any card.
    fn uses_card(self) -> bool {
        !matches!(self, Self::PreAuthVoid)
    }

    /// Whether the card's service code can demand a PIN: for the operations a cardholder
    /// starts at the terminal, not for completing or voiding an earlier pre-authorization.
    fn pin_by_service_code(self) -> bool {
        matches!(self, Self::Purchase | Self::PreAuth | Self::BalanceInquiry)
    }
}

/// The card data presented with the request, already compared with the PAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Presented {
    /// Expiry sent in the request, when any.
    pub expiry: Option<Expiry>,
    /// Expiry in track 2, when track 2 was sent.
    pub track2_expiry: Option<Expiry>,
    /// False when track 2 carries another PAN than the request.
    pub track2_pan_matches: bool,
}

/// The decline decided from data that does not change, if any (see the module docs for the
/// order). `today` is the bank's (year, month).
pub fn precheck(
    op: Operation,
    card: &CardRecord,
    presented: &Presented,
    currency: Option<Currency>,
    today: (u16, u8),
) -> Option<ResponseCode> {
    if op.uses_card() {
        if !presented.track2_pan_matches {
            return Some(ResponseCode::InvalidCardNumber);
        }
        // Valid through the last day of the expiry month.
        if card.expiry.is_expired_at(today.0, today.1) {
            return Some(ResponseCode::ExpiredCard);
        }
        // An expiry other than the one on file is an old or forged card.
        let differs = |e: Option<Expiry>| e.is_some_and(|e| e != card.expiry);
        if differs(presented.expiry) || differs(presented.track2_expiry) {
            return Some(ResponseCode::ExpiredCard);
        }
    }
    if currency.is_some_and(|c| c != card.currency) {
        return Some(ResponseCode::InvalidAmount);
    }
    None
}

/// Whether the request involves a PIN: one was entered (it is then always verified), or the
/// card's service code requires one for this operation.
pub fn pin_involved(op: Operation, card: &CardRecord, pin_block_present: bool) -> bool {
    pin_block_present || (op.pin_by_service_code() && card.service_code.requires_pin())
}

/// Whether the scripts will decline before they look at the PIN, so that verifying it (an
/// argon2 hash, tens of milliseconds) can be skipped.
pub fn declines_before_pin(
    card: &CardRecord,
    precheck: Option<ResponseCode>,
    pin_try_limit: u32,
) -> bool {
    precheck.is_some() || card.status != CardStatus::Active || card.pin_tries >= pin_try_limit
}

/// The result of looking at a request's PIN, as the scripts take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinState {
    /// No PIN involved.
    NotInvolved,
    /// The PIN is right.
    Right,
    /// The PIN is wrong: counts a try.
    Wrong,
    /// A PIN is required and none was sent: "55", no try counted.
    Missing,
    /// The PIN block cannot be decoded (wrong format, key or length): "99", no try counted.
    Malformed,
    /// Not verified because an earlier check declines.
    Unchecked,
}

impl PinState {
    /// The script argument.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotInvolved => "none",
            Self::Right => "ok",
            Self::Wrong => "wrong",
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Unchecked => "unchecked",
        }
    }
}

/// The fields of a request that make it the same request. The PIN block is not among them (a
/// retry may re-encrypt it), nor are times, STAN or EMV data.
#[derive(Clone, Copy)]
pub struct DigestFields<'a> {
    /// "authorize:purchase", "refund", ...
    pub kind: &'a str,
    /// PAN digits (only ever hashed, under the bank's key).
    pub pan: &'a str,
    /// Amount in minor units, when any.
    pub amount: Option<i64>,
    /// Currency code, when an amount is given.
    pub currency: &'a str,
    /// Merchant id.
    pub merchant_id: &'a str,
    /// Terminal id.
    pub terminal_id: &'a str,
    /// Hold id (completion, void).
    pub hold_id: &'a str,
    /// The original's acquirer transaction id (completion, void, refund).
    pub original: &'a str,
}

/// Leaves the PAN out.
impl std::fmt::Debug for DigestFields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestFields")
            .field("kind", &self.kind)
            .field("amount", &self.amount)
            .field("currency", &self.currency)
            .field("merchant_id", &self.merchant_id)
            .field("terminal_id", &self.terminal_id)
            .field("hold_id", &self.hold_id)
            .field("original", &self.original)
            .finish_non_exhaustive()
    }
}

/// Keyed digest (HMAC-SHA-256 under the bank's key, so it cannot be used to test guesses of
/// the PAN) of the fields that identify a request's content.
pub fn request_digest(key: &TokenKey, fields: &DigestFields<'_>) -> String {
    let amount = fields.amount.map(|a| a.to_string()).unwrap_or_default();
    let parts = [
        fields.kind,
        fields.pan,
        &amount,
        fields.currency,
        fields.merchant_id,
        fields.terminal_id,
        fields.hold_id,
        fields.original,
    ];
    // Length-prefixed, so no two different field lists give the same bytes.
    let mut data = Vec::new();
    for part in parts {
        data.extend_from_slice(&(part.len() as u64).to_be_bytes());
        data.extend_from_slice(part.as_bytes());
    }
    key.keyed_hash("issuer-request-v1", &data)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn card(expiry: &str, service_code: &str, status: &str) -> CardRecord {
        let fields: HashMap<String, String> = [
            ("masked", "621700****5677"),
            ("expiry", expiry),
            ("service_code", service_code),
            ("funding", "debit"),
            ("status", status),
            ("currency", "CNY"),
            ("pin_hash", "x"),
            ("pin_tries", "0"),
            ("balance", "100"),
            ("holds", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        CardRecord::from_hash("k", &fields).unwrap()
    }

    fn presented() -> Presented {
        Presented {
            track2_pan_matches: true,
            ..Presented::default()
        }
    }

    fn expiry(text: &str) -> Option<Expiry> {
        Some(Expiry::parse(text).unwrap())
    }

    #[test]
    fn a_card_is_valid_through_the_end_of_its_expiry_month() {
        let c = card("2503", "220", "active");
        let check = |today| precheck(Operation::Purchase, &c, &presented(), None, today);
        assert_eq!(check((2025, 2)), None);
        assert_eq!(check((2025, 3)), None);
        assert_eq!(check((2025, 4)), Some(ResponseCode::ExpiredCard));
        assert_eq!(check((2026, 1)), Some(ResponseCode::ExpiredCard));
    }

    #[test]
    fn presented_data_must_match_the_card_on_file() {
        let c = card("3012", "220", "active");
        let today = (2025, 6);
        let check = |p: Presented| precheck(Operation::Purchase, &c, &p, None, today);
        let mut p = presented();
        p.expiry = expiry("3012");
        p.track2_expiry = expiry("3012");
        assert_eq!(check(p), None);
        p.expiry = expiry("2912");
        assert_eq!(check(p), Some(ResponseCode::ExpiredCard));
        p.expiry = None;
        p.track2_expiry = expiry("2812");
        assert_eq!(check(p), Some(ResponseCode::ExpiredCard));
        p.track2_pan_matches = false;
        assert_eq!(check(p), Some(ResponseCode::InvalidCardNumber));
    }

    #[test]
    fn a_void_releases_even_on_an_expired_card_but_currency_always_counts() {
        let c = card("2001", "220", "active");
        let today = (2025, 6);
        let void = precheck(Operation::PreAuthVoid, &c, &presented(), None, today);
        assert_eq!(void, None);
        let usd = precheck(
            Operation::PreAuthVoid,
            &c,
            &presented(),
            Some(Currency::USD),
            today,
        );
        assert_eq!(usd, Some(ResponseCode::InvalidAmount));
        let cny = Some(Currency::CNY);
        let fresh = card("3012", "220", "active");
        assert_eq!(
            precheck(Operation::Purchase, &fresh, &presented(), cny, today),
            None
        );
    }

    #[test]
    fn pin_is_involved_when_given_or_required_by_the_service_code() {
        let chip = card("3012", "220", "active");
        let stripe = card("3012", "101", "active");
        assert!(pin_involved(Operation::Purchase, &chip, false));
        assert!(pin_involved(Operation::BalanceInquiry, &chip, false));
        assert!(!pin_involved(Operation::Completion, &chip, false));
        assert!(!pin_involved(Operation::Purchase, &stripe, false));
        assert!(pin_involved(Operation::Purchase, &stripe, true));
        assert!(pin_involved(Operation::PreAuthVoid, &stripe, true));
    }

    #[test]
    fn pin_verification_is_skipped_only_when_an_earlier_check_declines() {
        let active = card("3012", "220", "active");
        assert!(!declines_before_pin(&active, None, 3));
        assert!(declines_before_pin(
            &active,
            Some(ResponseCode::ExpiredCard),
            3
        ));
        assert!(declines_before_pin(&card("3012", "220", "lost"), None, 3));
        let mut blocked = active.clone();
        blocked.pin_tries = 3;
        assert!(declines_before_pin(&blocked, None, 3));
    }

    #[test]
    fn digest_changes_with_every_field_that_matters() {
        let key = TokenKey::from_bytes(&[7; 32]).unwrap();
        let base = DigestFields {
            kind: "authorize:purchase",
            pan: "6217000010012345677",
            amount: Some(5000),
            currency: "CNY",
            merchant_id: "898310048990001",
            terminal_id: "TERM0001",
            hold_id: "",
            original: "",
        };
        let digest = request_digest(&key, &base);
        assert_eq!(digest, request_digest(&key, &base));
        assert_eq!(digest.len(), 64);
        assert!(!digest.contains("6217000010012345677"));
        let variants = [
            DigestFields {
                kind: "authorize:pre_auth",
                ..base
            },
            DigestFields {
                pan: "6225880011223345",
                ..base
            },
            DigestFields {
                amount: Some(5001),
                ..base
            },
            DigestFields {
                amount: None,
                ..base
            },
            DigestFields {
                currency: "USD",
                ..base
            },
            DigestFields {
                merchant_id: "898310048990002",
                ..base
            },
            DigestFields {
                terminal_id: "TERM0002",
                ..base
            },
            DigestFields {
                hold_id: "h",
                ..base
            },
            DigestFields {
                original: "o",
                ..base
            },
        ];
        for variant in variants {
            assert_ne!(request_digest(&key, &variant), digest, "{variant:?}");
        }
        // Moving characters between adjacent fields is a different request.
        let shifted = DigestFields {
            merchant_id: "898310048990001T",
            terminal_id: "ERM0001",
            ..base
        };
        assert_ne!(request_digest(&key, &shifted), digest);
        let other_key = TokenKey::from_bytes(&[8; 32]).unwrap();
        assert_ne!(request_digest(&other_key, &base), digest);
    }

    #[test]
    fn operations_say_what_they_need() {
        assert!(Operation::Completion.acts_on_hold() && !Operation::Purchase.acts_on_hold());
        assert!(!Operation::BalanceInquiry.needs_amount());
    }
}
