//! Onboarding: from the clear request to the `MerchantOnboarded` event, in two steps, so that
//! personal data cannot reach an event in clear.
//!
//! 1. [`validate_onboarding`] checks the request field by field, reports every problem at
//!    once, and returns a [`ValidatedOnboarding`] whose personal values (legal person's name
//!    and ID number, phone, account number) are [`Sensitive`]: `Debug` shows `<redacted>`.
//! 2. The service tokenizes and encrypts those values (keys live there) and calls
//!    [`ValidatedOnboarding::into_command`] with the results in a [`Protection`]. This crate
//!    computes the masks itself and builds the event from masks, tokens and ciphertexts only;
//!    the clear values are dropped with the `ValidatedOnboarding`.

use std::time::SystemTime;

use pos_domain::pan::{CardToken, Pan, luhn};
use pos_domain::{Mcc, MerchantId};
use pos_proto::v1::{
    AgreementAcceptance, EncryptedValue, MerchantOnboarded, Money, OnboardMerchantRequest,
    SettlementAccountRecord, TradingHours, TradingWindow,
};

use super::fees::{ValidFeeSchedule, check_fee_schedule, positive_cny};
use super::{MerchantCommand, MerchantKind};
use crate::checks::{
    is_token, mask_account, mask_id_number, mask_name, mask_phone, phone_problem,
    resident_id_problem, uscc_problem,
};
use crate::error::{Problems, Result};
use crate::secret::Sensitive;
use crate::time::{Date, system_time};

/// Bytes an AEAD adds to a plaintext (the authentication tag of ChaCha20-Poly1305 / AES-GCM).
const AEAD_TAG_BYTES: usize = 16;
/// Most trading windows per day.
const MAX_TRADING_WINDOWS: usize = 8;

/// An onboarding request that passed validation, with its personal data still in clear but
/// wrapped. Build the command with [`ValidatedOnboarding::into_command`].
#[derive(Debug, Clone)]
pub struct ValidatedOnboarding {
    request_id: String,
    kind: MerchantKind,
    legal_name: String,
    display_name: String,
    city: String,
    address: String,
    business_licence_no: String,
    legal_person_name: Sensitive<String>,
    legal_person_id_number: Sensitive<String>,
    contact_phone: Sensitive<String>,
    account_name: String,
    account_number: Sensitive<String>,
    bank_name: String,
    bank_code: String,
    mcc: Mcc,
    fee_schedule: ValidFeeSchedule,
    trading_hours: Option<TradingHours>,
    per_transaction_limit: Option<Money>,
    agreement: AgreementAcceptance,
}

/// What the service computed from the clear personal data: keyed tokens (lowercase hex
/// HMAC-SHA-256 under the platform token key) and AEAD ciphertexts (under the data key).
#[derive(Debug, Clone, PartialEq)]
pub struct Protection {
    /// Token of [`ValidatedOnboarding::legal_person_name`].
    pub legal_person_name_token: String,
    /// Token of [`ValidatedOnboarding::legal_person_id_number`] (upper-case X).
    pub legal_person_id_token: String,
    /// Ciphertext of [`ValidatedOnboarding::contact_phone`].
    pub contact_phone_encrypted: EncryptedValue,
    /// Token of [`ValidatedOnboarding::account_number`].
    pub account_number_token: String,
    /// Ciphertext of [`ValidatedOnboarding::account_number`].
    pub account_number_encrypted: EncryptedValue,
    /// Card token (`Pan::token`) of [`ValidatedOnboarding::account_card`] when the account
    /// number is a card number; `None` otherwise.
    pub account_card_token: Option<CardToken>,
    /// Keyed HMAC of the request content (the encoded `OnboardMerchantRequest`), to refuse
    /// the same request id with other content after a rebuild.
    pub request_digest: String,
}

/// Validates an onboarding request at `now` and reports every offending field at once.
///
/// Text fields are trimmed; the ID number's check character is upper-cased and the licence
/// number is upper-cased, so that equal values give equal tokens.
pub fn validate_onboarding(
    request: &OnboardMerchantRequest,
    now: SystemTime,
) -> Result<ValidatedOnboarding> {
    let mut p = Problems::default();
    let request_id = text(&mut p, "request_id", &request.request_id, 1, 64);
    let kind = MerchantKind::from_proto(request.merchant_type);
    if kind.is_none() {
        p.add("merchant_type", "must be MICRO (小微商户) or ENTERPRISE");
    }
    let city = text(&mut p, "city", &request.city, 1, 32);
    let legal_name = text(&mut p, "legal_name", &request.legal_name, 2, 64);
    let licence = request.business_licence_no.trim().to_uppercase();
    match kind {
        Some(MerchantKind::Micro) => check_micro(&mut p, &legal_name, &city, &licence),
        Some(MerchantKind::Enterprise) => {
            if let Some(problem) = uscc_problem(&licence) {
                p.add("business_licence_no", problem);
            }
        }
        None => {}
    }
    let display_name = match request.display_name.trim() {
        "" => legal_name.clone(),
        _ => text(&mut p, "display_name", &request.display_name, 1, 40),
    };
    let address = text(&mut p, "address", &request.address, 1, 128);
    let person = text(
        &mut p,
        "legal_person_name",
        &request.legal_person_name,
        2,
        30,
    );
    let id_number = request.legal_person_id_number.trim().to_uppercase();
    if let Some(problem) = resident_id_problem(&id_number, Date::in_china(now)) {
        p.add("legal_person_id_number", problem);
    }
    let phone = request.contact_phone.trim().to_owned();
    if let Some(problem) = phone_problem(&phone) {
        p.add("contact_phone", problem);
    }
    let account = check_account(&mut p, request, kind, &legal_name, &person);
    let mcc = p.check(
        "mcc",
        Mcc::parse(request.mcc.trim())
            .map_err(|_| "must be 4 digits (ISO 18245 merchant category code), e.g. 5411".into()),
    );
    let fee_schedule = check_fee_schedule(request.fee_schedule.as_ref(), &mut p);
    if let Some(hours) = &request.trading_hours {
        check_trading_hours(&mut p, hours);
    }
    let per_transaction_limit = request
        .per_transaction_limit
        .as_ref()
        .and_then(|limit| p.check("per_transaction_limit", positive_cny(limit)));
    check_agreement(&mut p, request.agreement.as_ref(), now);

    p.into_result()?;
    // every check passed, so every part is present
    let (Some(kind), Some(account), Some(mcc), Some(fee_schedule), Some(agreement)) =
        (kind, account, mcc, fee_schedule, request.agreement.clone())
    else {
        return Err(crate::RegistryError::invalid("request", "is incomplete"));
    };
    Ok(ValidatedOnboarding {
        request_id,
        kind,
        legal_name,
        display_name,
        city,
        address,
        business_licence_no: licence,
        legal_person_name: Sensitive::new(person),
        legal_person_id_number: Sensitive::new(id_number),
        contact_phone: Sensitive::new(phone),
        account_name: account.account_name,
        account_number: Sensitive::new(account.account_number),
        bank_name: account.bank_name,
        bank_code: account.bank_code,
        mcc,
        fee_schedule,
        trading_hours: request.trading_hours.clone(),
        per_transaction_limit,
        agreement,
    })
}

/// A required, trimmed text of `min..=max` characters; records its problem.
fn text(p: &mut Problems, field: &str, value: &str, min: usize, max: usize) -> String {
    let value = value.trim();
    let count = value.chars().count();
    if count == 0 {
        p.add(field, "required");
    } else if !(min..=max).contains(&count) {
        p.add(
            field,
            format!("must be {min} to {max} characters, got {count}"),
        );
    } else if value.chars().any(char::is_control) {
        p.add(field, "must not contain control characters");
    }
    value.to_owned()
}

/// A micro merchant (小微商户): no licence, the city in its name, and not a company name.
fn check_micro(p: &mut Problems, legal_name: &str, city: &str, licence: &str) {
    if !city.is_empty() && !legal_name.is_empty() && !legal_name.contains(city_core(city)) {
        p.add(
            "legal_name",
            format!(
                "a micro merchant's name must contain its city ({})",
                city_core(city)
            ),
        );
    }
    if legal_name.ends_with("公司") {
        p.add(
            "legal_name",
            "a micro merchant's name must not end in 公司 (a company onboards as an enterprise)",
        );
    }
    if !licence.is_empty() {
        p.add(
            "business_licence_no",
            "a micro merchant has no business licence: leave it empty or onboard as an enterprise",
        );
    }
}

/// The city without a trailing 市, so that "上海市" is found in "上海徐汇区…" too.
fn city_core(city: &str) -> &str {
    match city.strip_suffix('市') {
        Some(core) if core.chars().count() >= 2 => core,
        _ => city,
    }
}

/// The settlement account of a request, trimmed.
struct Account {
    account_name: String,
    account_number: String,
    bank_name: String,
    bank_code: String,
}

/// Micro merchants settle to the legal person's own debit card (12-19 digits, Luhn);
/// enterprises to a corporate account (8-32 digits) in their name or their legal person's.
fn check_account(
    p: &mut Problems,
    request: &OnboardMerchantRequest,
    kind: Option<MerchantKind>,
    legal_name: &str,
    person: &str,
) -> Option<Account> {
    let Some(input) = &request.settlement_account else {
        p.add(
            "settlement_account",
            "required: the bank account the merchant is paid to",
        );
        return None;
    };
    let before = p.len();
    let account_name = text(
        p,
        "settlement_account.account_name",
        &input.account_name,
        1,
        64,
    );
    let number = input.account_number.trim().to_owned();
    let field = "settlement_account.account_number";
    let digits = number.bytes().all(|b| b.is_ascii_digit());
    match kind {
        _ if number.is_empty() => p.add(field, "required"),
        _ if !digits => p.add(field, "must contain only digits (no spaces or dashes)"),
        Some(MerchantKind::Micro) => {
            if !(12..=19).contains(&number.len()) {
                let message = format!(
                    "a micro merchant settles to a personal debit card of 12 to 19 digits, got {}",
                    number.len()
                );
                p.add(field, message);
            } else if !luhn::is_valid(&number) {
                p.add(field, "not a valid bank card number (Luhn check failed)");
            }
            if !account_name.is_empty() && !person.is_empty() && account_name != person {
                p.add(
                    "settlement_account.account_name",
                    "a micro merchant is paid to the legal person's own card: the account name must be the legal person's name",
                );
            }
        }
        Some(MerchantKind::Enterprise) => {
            if !(8..=32).contains(&number.len()) {
                let message = format!(
                    "a corporate account number has 8 to 32 digits, got {}",
                    number.len()
                );
                p.add(field, message);
            }
            let names = [legal_name, person];
            if !account_name.is_empty() && !names.contains(&account_name.as_str()) {
                p.add(
                    "settlement_account.account_name",
                    "must be the enterprise's registered name (legal_name) or its legal person's name",
                );
            }
        }
        None => {}
    }
    let bank_name = text(p, "settlement_account.bank_name", &input.bank_name, 1, 64);
    let bank_code = input.bank_code.trim().to_owned();
    let cnaps = bank_code.len() == 12 && bank_code.bytes().all(|b| b.is_ascii_digit());
    if !(bank_code.is_empty() || cnaps) {
        p.add(
            "settlement_account.bank_code",
            "must be the branch's 12-digit CNAPS code, or empty when unknown",
        );
    }
    (p.len() == before).then_some(Account {
        account_name,
        account_number: number,
        bank_name,
        bank_code,
    })
}

/// Trading windows "HH:MM"-"HH:MM" (a window may cross midnight) and an IANA-looking zone.
fn check_trading_hours(p: &mut Problems, hours: &TradingHours) {
    if hours.windows.len() > MAX_TRADING_WINDOWS {
        let message = format!(
            "at most {MAX_TRADING_WINDOWS} trading windows, got {}",
            hours.windows.len()
        );
        p.add("trading_hours.windows", message);
    }
    for (
        index,
        TradingWindow {
            opens_at,
            closes_at,
        },
    ) in hours.windows.iter().enumerate()
    {
        let field = |name: &str| format!("trading_hours.windows[{index}].{name}");
        let opens = p.check(field("opens_at"), minute_of_day(opens_at));
        let closes = p.check(field("closes_at"), minute_of_day(closes_at));
        if opens.is_some() && opens == closes {
            p.add(
                field("closes_at"),
                "must differ from opens_at (write 00:00 to 23:59 for all day)",
            );
        }
    }
    let zone = &hours.time_zone;
    let zone_ok = zone.is_empty()
        || zone == "UTC"
        || zone.split('/').count() >= 2
            && zone.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
            });
    if !zone_ok {
        p.add(
            "trading_hours.time_zone",
            "must be an IANA time zone such as Asia/Shanghai, or empty for the platform default",
        );
    }
}

/// Minutes since midnight of "HH:MM" (24 h).
fn minute_of_day(text: &str) -> std::result::Result<u32, String> {
    let problem = || format!("must be a 24-hour time HH:MM, got {text:?}");
    let (hours, minutes) = text.split_once(':').ok_or_else(problem)?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(hours) || !two_digits(minutes) {
        return Err(problem());
    }
    let hours: u32 = hours.parse().map_err(|_| problem())?;
    let minutes: u32 = minutes.parse().map_err(|_| problem())?;
    if hours > 23 || minutes > 59 {
        return Err(problem());
    }
    Ok(hours * 60 + minutes)
}

/// The electronic agreement must be accepted, with its version, and not in the future.
fn check_agreement(p: &mut Problems, agreement: Option<&AgreementAcceptance>, now: SystemTime) {
    let Some(agreement) = agreement else {
        p.add(
            "agreement",
            "required: the merchant must accept the electronic acquiring agreement",
        );
        return;
    };
    if !agreement.accepted {
        p.add(
            "agreement.accepted",
            "the merchant must accept the electronic acquiring agreement",
        );
    }
    if agreement.version.trim().is_empty() {
        p.add(
            "agreement.version",
            "required: the version of the agreement text accepted, e.g. 2025-01",
        );
    }
    match &agreement.accepted_at {
        None => p.add(
            "agreement.accepted_at",
            "required: when the merchant accepted",
        ),
        Some(at) if system_time(at) > now => p.add("agreement.accepted_at", "is in the future"),
        Some(_) => {}
    }
}

impl ValidatedOnboarding {
    /// The request's idempotency key.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Micro or enterprise.
    pub fn kind(&self) -> MerchantKind {
        self.kind
    }

    /// The legal person's name in clear, to tokenize.
    pub fn legal_person_name(&self) -> &Sensitive<String> {
        &self.legal_person_name
    }

    /// The legal person's resident ID number in clear (check character upper case), to
    /// tokenize.
    pub fn legal_person_id_number(&self) -> &Sensitive<String> {
        &self.legal_person_id_number
    }

    /// The contact phone in clear, to encrypt.
    pub fn contact_phone(&self) -> &Sensitive<String> {
        &self.contact_phone
    }

    /// The settlement account number in clear, to tokenize and encrypt.
    pub fn account_number(&self) -> &Sensitive<String> {
        &self.account_number
    }

    /// The settlement account number as a card, when it is a valid card number (13 to 19
    /// digits, Luhn): a micro merchant's settlement card 结算卡, or an enterprise's legal
    /// person's card. Its token lets fraud-check recognise the merchant's own card paying at
    /// its terminals (cash-out, 套现).
    pub fn account_card(&self) -> Option<Pan> {
        Pan::parse(self.account_number.expose()).ok()
    }

    /// Builds the onboarding command for merchant `merchant_id` (15 digits, generated by the
    /// service) from the protected forms, which are checked: tokens must be 64 lowercase hex
    /// digits, ciphertexts must name their key and must not contain the clear value, and a card
    /// token must be given exactly when the account number is a card number.
    pub fn into_command(
        self,
        merchant_id: MerchantId,
        protection: Protection,
    ) -> Result<MerchantCommand> {
        let mut p = Problems::default();
        let tokens = [
            (
                "legal_person_name_token",
                &protection.legal_person_name_token,
            ),
            ("legal_person_id_token", &protection.legal_person_id_token),
            ("account_number_token", &protection.account_number_token),
            ("request_digest", &protection.request_digest),
        ];
        for (field, token) in tokens {
            if !is_token(token) {
                p.add(
                    field,
                    "must be a keyed token: 64 lowercase hex digits (HMAC-SHA-256)",
                );
            }
        }
        let phone = &protection.contact_phone_encrypted;
        check_encrypted(
            &mut p,
            "contact_phone_encrypted",
            phone,
            &self.contact_phone,
        );
        let account = &protection.account_number_encrypted;
        check_encrypted(
            &mut p,
            "account_number_encrypted",
            account,
            &self.account_number,
        );
        if self.account_card().is_some() != protection.account_card_token.is_some() {
            p.add(
                "account_card_token",
                "must be the card token of the account number when that is a card number, and absent otherwise",
            );
        }
        p.into_result()?;

        let event = MerchantOnboarded {
            merchant_id: merchant_id.to_string(),
            merchant_type: self.kind.to_proto().into(),
            legal_name: self.legal_name,
            display_name: self.display_name,
            city: self.city,
            address: self.address,
            business_licence_no: self.business_licence_no,
            legal_person_name_masked: mask_name(self.legal_person_name.expose()),
            legal_person_name_token: protection.legal_person_name_token,
            legal_person_id_masked: mask_id_number(self.legal_person_id_number.expose()),
            legal_person_id_token: protection.legal_person_id_token,
            contact_phone_masked: mask_phone(self.contact_phone.expose()),
            contact_phone_encrypted: Some(protection.contact_phone_encrypted),
            settlement_account: Some(SettlementAccountRecord {
                account_name: self.account_name,
                account_number_masked: mask_account(self.account_number.expose()),
                account_number_token: protection.account_number_token,
                account_number_encrypted: Some(protection.account_number_encrypted),
                bank_name: self.bank_name,
                bank_code: self.bank_code,
                account_card_token: protection
                    .account_card_token
                    .map(String::from)
                    .unwrap_or_default(),
            }),
            mcc: self.mcc.to_string(),
            fee_schedule: Some(self.fee_schedule.into_proto()),
            trading_hours: self.trading_hours,
            per_transaction_limit: self.per_transaction_limit,
            agreement: Some(self.agreement),
            actor: None,
            request_id: self.request_id,
            request_digest: protection.request_digest,
        };
        Ok(MerchantCommand::Onboard(Box::new(OnboardMerchant {
            merchant_id,
            event,
        })))
    }
}

/// A ciphertext must name its key, be at least the value plus an AEAD tag long, and not
/// contain the value in clear (a service that forgot to encrypt).
fn check_encrypted(
    p: &mut Problems,
    field: &str,
    value: &EncryptedValue,
    clear: &Sensitive<String>,
) {
    let clear = clear.expose().as_bytes();
    if value.key_id.trim().is_empty() {
        p.add(field, "must name the data key that encrypted it (key_id)");
    }
    let contains_clear = value
        .ciphertext
        .windows(clear.len().max(1))
        .any(|window| window == clear);
    if value.ciphertext.len() < clear.len() + AEAD_TAG_BYTES || contains_clear {
        p.add(
            field,
            "does not look like AEAD ciphertext of the value (too short, or contains it in clear)",
        );
    }
}

/// The command to onboard one merchant, built only by [`ValidatedOnboarding::into_command`]:
/// it holds the event to record, with personal data masked, tokenized or encrypted.
#[derive(Debug, Clone, PartialEq)]
pub struct OnboardMerchant {
    merchant_id: MerchantId,
    event: MerchantOnboarded,
}

impl OnboardMerchant {
    /// The merchant to create.
    pub fn merchant_id(&self) -> &MerchantId {
        &self.merchant_id
    }

    /// The request's idempotency key.
    pub fn request_id(&self) -> &str {
        &self.event.request_id
    }

    /// The event this command records, without its actor (set from the context).
    pub(crate) fn into_event(self) -> MerchantOnboarded {
        self.event
    }
}
