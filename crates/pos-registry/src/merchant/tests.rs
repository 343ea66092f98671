use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pos_domain::MerchantId;
use pos_domain::pan::{Pan, TokenKey};
use pos_proto::v1::{
    Actor, AgreementAcceptance, EncryptedValue, FeeSchedule, MerchantType, Money,
    OnboardMerchantRequest, SettlementAccountInput, SettlementAccountRecord, TradingHours,
    TradingWindow,
};
use prost::Message;

use super::*;
use crate::time::timestamp;
use crate::{FieldError, resident_id_check_char};

const MERCHANT: &str = "898310048990001";
const ID_NUMBER: &str = "310104199001011233";
const CARD: &str = "6228480402564890018";
const PHONE: &str = "13812345678";

/// 2025-03-02 00:00 in Shanghai.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_740_844_800)
}

fn ctx() -> Ctx {
    let actor = Actor {
        subject: "ops:alice".into(),
        role: "operations".into(),
    };
    Ctx::with_actor(now(), actor)
}

fn cny(minor_units: i64) -> Money {
    Money {
        minor_units,
        currency: "CNY".into(),
    }
}

fn fees(debit: &str, credit: &str) -> FeeSchedule {
    FeeSchedule {
        debit_rate: debit.into(),
        debit_cap: Some(cny(2000)),
        credit_rate: credit.into(),
        ..Default::default()
    }
}

fn micro_request() -> OnboardMerchantRequest {
    OnboardMerchantRequest {
        request_id: "5b0c7e0e-1d1a-4a51-9a0e-3f0b7d2c9a11".into(),
        merchant_type: MerchantType::Micro.into(),
        legal_name: "上海市徐汇区张三便利店".into(),
        display_name: "张三便利店".into(),
        city: "上海".into(),
        address: "徐汇区漕溪北路 88 号".into(),
        business_licence_no: String::new(),
        legal_person_name: "张三".into(),
        legal_person_id_number: ID_NUMBER.into(),
        contact_phone: PHONE.into(),
        settlement_account: Some(SettlementAccountInput {
            account_name: "张三".into(),
            account_number: CARD.into(),
            bank_name: "中国农业银行上海徐汇支行".into(),
            bank_code: String::new(),
        }),
        mcc: "5411".into(),
        fee_schedule: Some(fees("0.0050", "0.0060")),
        trading_hours: Some(TradingHours {
            windows: vec![TradingWindow {
                opens_at: "07:00".into(),
                closes_at: "23:00".into(),
            }],
            time_zone: "Asia/Shanghai".into(),
            night_business: false,
        }),
        per_transaction_limit: Some(cny(5_000_000)),
        agreement: Some(AgreementAcceptance {
            accepted: true,
            version: "2025-01".into(),
            accepted_at: Some(timestamp(now() - Duration::from_secs(3600))),
        }),
    }
}

fn enterprise_request() -> OnboardMerchantRequest {
    let mut request = micro_request();
    request.merchant_type = MerchantType::Enterprise.into();
    request.legal_name = "上海张三贸易有限公司".into();
    request.display_name = "张三贸易".into();
    request.business_licence_no = "91310110666007217T".into();
    request.settlement_account = Some(SettlementAccountInput {
        account_name: "上海张三贸易有限公司".into(),
        account_number: "31001234567890123".into(),
        bank_name: "中国建设银行上海分行".into(),
        bank_code: "105290000001".into(),
    });
    request
}

/// Stands in for the service's AEAD: scrambled bytes plus a 16-byte tag.
fn encrypted(clear: &str) -> EncryptedValue {
    let mut ciphertext: Vec<u8> = clear.bytes().map(|b| b ^ 0xa5).collect();
    ciphertext.extend([0x42; 16]);
    EncryptedValue {
        ciphertext,
        nonce: vec![7; 12],
        key_id: "data-key-2025-01".into(),
    }
}

/// The service's token key, for card tokens.
fn token_key() -> TokenKey {
    TokenKey::from_bytes(&[0x5a; 32]).unwrap()
}

fn protection(validated: &ValidatedOnboarding) -> Protection {
    Protection {
        legal_person_name_token: "1".repeat(64),
        legal_person_id_token: "2".repeat(64),
        contact_phone_encrypted: encrypted(validated.contact_phone().expose()),
        account_number_token: "3".repeat(64),
        account_number_encrypted: encrypted(validated.account_number().expose()),
        account_card_token: validated
            .account_card()
            .map(|card| card.token(&token_key())),
        request_digest: "4".repeat(64),
    }
}

fn merchant_id() -> MerchantId {
    MerchantId::parse(MERCHANT).unwrap()
}

fn onboard_command(request: &OnboardMerchantRequest) -> MerchantCommand {
    let validated = validate_onboarding(request, now()).unwrap();
    let protection = protection(&validated);
    validated.into_command(merchant_id(), protection).unwrap()
}

/// Decides a command and applies its events.
fn step(
    state: Option<MerchantState>,
    command: MerchantCommand,
) -> Result<(Option<MerchantState>, Vec<Payload>)> {
    let events = decide(state.as_ref(), command, &ctx())?;
    let state = events.iter().fold(state, apply);
    Ok((state, events))
}

fn onboarded() -> MerchantState {
    step(None, onboard_command(&micro_request()))
        .unwrap()
        .0
        .unwrap()
}

fn problems(request: &OnboardMerchantRequest) -> Vec<FieldError> {
    match validate_onboarding(request, now()) {
        Err(RegistryError::Invalid(problems)) => problems,
        other => panic!("expected invalid, got {other:?}"),
    }
}

fn messages_for(request: &OnboardMerchantRequest, field: &str) -> Vec<String> {
    problems(request)
        .into_iter()
        .filter(|p| p.field == field)
        .map(|p| p.message)
        .collect()
}

fn with_check(first17: &str) -> String {
    format!("{first17}{}", resident_id_check_char(first17).unwrap())
}

#[test]
fn a_micro_merchant_named_with_its_city_is_onboarded_pending() {
    let (state, events) = step(None, onboard_command(&micro_request())).unwrap();
    let state = state.unwrap();
    assert_eq!(state.status, MerchantStatus::Pending);
    assert_eq!(state.kind, MerchantKind::Micro);
    assert_eq!(state.version, 1);
    assert_eq!(state.display_name(), "张三便利店");
    let [Payload::MerchantOnboarded(event)] = events.as_slice() else {
        panic!("expected one MerchantOnboarded, got {events:?}");
    };
    assert_eq!(event.merchant_id, MERCHANT);
    assert_eq!(event.legal_name, "上海市徐汇区张三便利店");
    assert_eq!(event.legal_person_name_masked, "张*");
    assert_eq!(event.legal_person_id_masked, "310104********1233");
    assert_eq!(event.contact_phone_masked, "138****5678");
    let account = event.settlement_account.as_ref().unwrap();
    assert_eq!(account.account_number_masked, "6228****0018");
    assert_eq!(account.account_number_token, "3".repeat(64));
    assert_eq!(event.actor.as_ref().unwrap().subject, "ops:alice");
    assert_eq!(event.request_digest, "4".repeat(64));
}

#[test]
fn a_micro_merchants_name_must_contain_its_city() {
    let mut request = micro_request();
    request.legal_name = "张三便利店".into();
    assert_eq!(
        messages_for(&request, "legal_name"),
        ["a micro merchant's name must contain its city (上海)"]
    );
    // "上海市" as the city is found as 上海 in the name
    let mut request = micro_request();
    request.city = "上海市".into();
    request.legal_name = "上海徐汇张三便利店".into();
    assert!(validate_onboarding(&request, now()).is_ok());
}

#[test]
fn a_company_cannot_onboard_as_a_micro_merchant() {
    let mut request = micro_request();
    request.legal_name = "上海张三贸易有限公司".into();
    assert_eq!(
        messages_for(&request, "legal_name"),
        ["a micro merchant's name must not end in 公司 (a company onboards as an enterprise)"]
    );
    let mut request = micro_request();
    request.business_licence_no = "91310110666007217T".into();
    assert_eq!(
        messages_for(&request, "business_licence_no"),
        ["a micro merchant has no business licence: leave it empty or onboard as an enterprise"]
    );
}

#[test]
fn an_enterprise_needs_a_valid_unified_social_credit_code() {
    assert!(validate_onboarding(&enterprise_request(), now()).is_ok());
    let mut request = enterprise_request();
    request.business_licence_no = "914403001922038216".into(); // Huawei, Shenzhen
    assert!(validate_onboarding(&request, now()).is_ok());
    request.business_licence_no = "91310110666007217t".into(); // lower case is accepted
    assert!(validate_onboarding(&request, now()).is_ok());

    request.business_licence_no = String::new();
    assert_eq!(
        messages_for(&request, "business_licence_no"),
        ["an enterprise needs its 18-character unified social credit code (统一社会信用代码)"]
    );
    request.business_licence_no = "91310110666007217U".into();
    assert_eq!(
        messages_for(&request, "business_licence_no"),
        ["not a valid unified social credit code (check character)"]
    );
}

#[test]
fn the_legal_persons_id_number_must_be_valid() {
    let mut request = micro_request();
    request.legal_person_id_number = "310104199001011234".into();
    assert_eq!(
        messages_for(&request, "legal_person_id_number"),
        ["not a valid resident ID number (check character)"]
    );
    request.legal_person_id_number = with_check("31010419900231123");
    assert_eq!(
        messages_for(&request, "legal_person_id_number"),
        ["characters 7 to 14 must be a real birth date YYYYMMDD"]
    );
    // the example of GB 11643-1999, with a lower-case x, is stored with an upper-case X
    request.legal_person_id_number = "11010519491231002x".into();
    let Ok(MerchantCommand::Onboard(onboard)) = validate_onboarding(&request, now())
        .map(|v| {
            let protection = protection(&v);
            v.into_command(merchant_id(), protection)
        })
        .and_then(|command| command)
    else {
        panic!("expected an onboard command");
    };
    assert_eq!(
        onboard.into_event().legal_person_id_masked,
        "110105********002X"
    );
}

#[test]
fn the_legal_persons_name_has_two_to_thirty_characters() {
    let mut request = micro_request();
    request.legal_person_name = "张".into();
    assert_eq!(
        messages_for(&request, "legal_person_name"),
        ["must be 2 to 30 characters, got 1"]
    );
    request.legal_person_name = "x".repeat(31);
    assert_eq!(
        messages_for(&request, "legal_person_name"),
        ["must be 2 to 30 characters, got 31"]
    );
}

#[test]
fn a_micro_merchant_settles_to_the_legal_persons_debit_card() {
    let field = "settlement_account.account_number";
    let mut request = micro_request();
    let account = request.settlement_account.as_mut().unwrap();
    account.account_number = "6228480402564890017".into();
    assert_eq!(
        messages_for(&request, field),
        ["not a valid bank card number (Luhn check failed)"]
    );
    let account = request.settlement_account.as_mut().unwrap();
    account.account_number = "6228 4804 0256 4890 018".into();
    assert_eq!(
        messages_for(&request, field),
        ["must contain only digits (no spaces or dashes)"]
    );
    let account = request.settlement_account.as_mut().unwrap();
    account.account_number = "79927398713".into();
    assert_eq!(
        messages_for(&request, field),
        ["a micro merchant settles to a personal debit card of 12 to 19 digits, got 11"]
    );
    let mut request = micro_request();
    request.settlement_account.as_mut().unwrap().account_name = "李四".into();
    assert_eq!(
        messages_for(&request, "settlement_account.account_name"),
        [
            "a micro merchant is paid to the legal person's own card: the account name must be the legal person's name"
        ]
    );
}

#[test]
fn an_enterprise_settles_to_a_corporate_account_without_luhn() {
    let field = "settlement_account.account_number";
    let mut request = enterprise_request();
    request.settlement_account.as_mut().unwrap().account_number = "12345678".into();
    assert!(validate_onboarding(&request, now()).is_ok());
    request.settlement_account.as_mut().unwrap().account_number = "1234567".into();
    assert_eq!(
        messages_for(&request, field),
        ["a corporate account number has 8 to 32 digits, got 7"]
    );
    let mut request = enterprise_request();
    request.settlement_account.as_mut().unwrap().bank_name = String::new();
    assert_eq!(
        messages_for(&request, "settlement_account.bank_name"),
        ["required"]
    );
}

#[test]
fn mcc_limits_fees_and_hours_are_checked() {
    let mut request = micro_request();
    request.mcc = "541".into();
    request.fee_schedule = Some(fees("0.5", "0.0060"));
    request.per_transaction_limit = Some(cny(0));
    request.trading_hours.as_mut().unwrap().windows[0].closes_at = "25:00".into();
    let found: Vec<String> = problems(&request).iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        [
            "mcc: must be 4 digits (ISO 18245 merchant category code), e.g. 5411",
            "fee_schedule.debit_rate: must be at most 0.05 (5 %), got 0.5: a rate is a fraction, 0.60 % is 0.0060",
            "trading_hours.windows[0].closes_at: must be a 24-hour time HH:MM, got \"25:00\"",
            "per_transaction_limit: must be a positive amount",
        ]
    );
}

#[test]
fn the_agreement_must_be_accepted_with_its_version() {
    let mut request = micro_request();
    request.agreement = Some(AgreementAcceptance {
        accepted: false,
        version: String::new(),
        accepted_at: Some(timestamp(now() + Duration::from_secs(60))),
    });
    let fields: Vec<String> = problems(&request).into_iter().map(|p| p.field).collect();
    assert_eq!(
        fields,
        [
            "agreement.accepted",
            "agreement.version",
            "agreement.accepted_at"
        ]
    );
    request.agreement = None;
    assert_eq!(
        messages_for(&request, "agreement"),
        ["required: the merchant must accept the electronic acquiring agreement"]
    );
}

#[test]
fn every_problem_of_a_bad_request_is_reported_together() {
    let mut request = micro_request();
    request.legal_name = "张三贸易有限公司".into();
    request.legal_person_id_number = "310104199001011234".into();
    request.contact_phone = "99999".into();
    request.settlement_account.as_mut().unwrap().account_number = "6228480402564890017".into();
    request.mcc = String::new();
    request.fee_schedule = Some(fees("0.50%", "0"));
    request.agreement.as_mut().unwrap().accepted = false;
    let err = validate_onboarding(&request, now()).unwrap_err();
    let RegistryError::Invalid(found) = &err else {
        panic!("expected invalid, got {err:?}");
    };
    let fields: Vec<&str> = found.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "legal_name",
            "legal_name",
            "legal_person_id_number",
            "contact_phone",
            "settlement_account.account_number",
            "mcc",
            "fee_schedule.debit_rate",
            "fee_schedule.credit_rate",
            "agreement.accepted",
        ]
    );
    // the message names the rules, never the personal data
    let text = err.to_string();
    assert!(text.starts_with(
        "invalid request: legal_name: a micro merchant's name must contain its city (上海); "
    ));
    for secret in ["310104199001011234", "6228480402564890017", "99999"] {
        assert!(!text.contains(secret), "{secret} leaked into {text}");
    }
}

#[test]
fn no_clear_personal_data_reaches_the_event_or_debug_output() {
    let validated = validate_onboarding(&micro_request(), now()).unwrap();
    let debug = format!("{validated:?}");
    for secret in [ID_NUMBER, CARD, PHONE] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    let protection = protection(&validated);
    let command = validated.into_command(merchant_id(), protection).unwrap();
    let events = decide(None, command, &ctx()).unwrap();
    let bytes = events[0].clone();
    let envelope = pos_proto::v1::EventEnvelope {
        payload: Some(bytes),
        ..Default::default()
    }
    .encode_to_vec();
    for secret in [ID_NUMBER, CARD, PHONE] {
        let found = envelope
            .windows(secret.len())
            .any(|w| w == secret.as_bytes());
        assert!(!found, "{secret} is in the encoded event");
    }
}

/// The settlement account of the `MerchantOnboarded` event `request` gives.
fn account_record(request: &OnboardMerchantRequest) -> SettlementAccountRecord {
    let MerchantCommand::Onboard(onboard) = onboard_command(request) else {
        panic!("expected an onboard command");
    };
    onboard.into_event().settlement_account.unwrap()
}

#[test]
fn a_settlement_card_is_recorded_with_its_card_token_and_a_corporate_account_without() {
    let card = Pan::parse(CARD).unwrap().token(&token_key()).to_string();
    let record = account_record(&micro_request());
    assert_eq!(record.account_card_token, card);
    assert_ne!(record.account_card_token, record.account_number_token);

    let mut request = enterprise_request();
    let number = "31001234567890124";
    request.settlement_account.as_mut().unwrap().account_number = number.into();
    assert!(Pan::parse(number).is_err());
    assert_eq!(account_record(&request).account_card_token, "");
    // an enterprise paid to its legal person's card is recognised as well
    let mut request = enterprise_request();
    let account = request.settlement_account.as_mut().unwrap();
    account.account_number = CARD.into();
    account.account_name = "张三".into();
    assert_eq!(account_record(&request).account_card_token, card);
}

#[test]
fn a_card_token_is_required_exactly_for_a_card_account() {
    let validated = validate_onboarding(&micro_request(), now()).unwrap();
    let mut missing = protection(&validated);
    missing.account_card_token = None;
    let err = validated.into_command(merchant_id(), missing).unwrap_err();
    assert!(err.to_string().contains("account_card_token"), "{err}");

    let mut request = enterprise_request();
    request.settlement_account.as_mut().unwrap().account_number = "31001234567890124".into();
    let validated = validate_onboarding(&request, now()).unwrap();
    let mut stray = protection(&validated);
    stray.account_card_token = Some(Pan::parse(CARD).unwrap().token(&token_key()));
    let err = validated.into_command(merchant_id(), stray).unwrap_err();
    assert!(err.to_string().contains("account_card_token"), "{err}");
}

#[test]
fn protected_forms_that_are_not_protected_are_refused() {
    let validated = validate_onboarding(&micro_request(), now()).unwrap();
    let mut protection = protection(&validated);
    protection.legal_person_id_token = ID_NUMBER.into();
    let mut clear = CARD.as_bytes().to_vec();
    clear.extend([0; 16]);
    protection.account_number_encrypted.ciphertext = clear;
    let err = validated
        .into_command(merchant_id(), protection)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid request: legal_person_id_token: must be a keyed token: 64 lowercase hex digits (HMAC-SHA-256); account_number_encrypted: does not look like AEAD ciphertext of the value (too short, or contains it in clear)"
    );
}

#[test]
fn the_lifecycle_runs_pending_approved_active_suspended_active() {
    let id = merchant_id();
    let state = Some(onboarded());
    let approve = MerchantCommand::Approve {
        merchant_id: id.clone(),
        note: "documents checked".into(),
    };
    let (state, events) = step(state, approve).unwrap();
    assert!(matches!(&events[..], [Payload::MerchantApproved(e)] if e.note == "documents checked"));
    assert_eq!(state.as_ref().unwrap().status, MerchantStatus::Approved);
    assert!(state.as_ref().unwrap().status.may_have_terminals());
    let activate = || MerchantCommand::Activate {
        merchant_id: id.clone(),
        note: String::new(),
    };
    let (state, _) = step(state, activate()).unwrap();
    assert_eq!(state.as_ref().unwrap().status, MerchantStatus::Active);
    let suspend = MerchantCommand::Suspend {
        merchant_id: id.clone(),
        reason: "suspected cash-out".into(),
    };
    let (state, _) = step(state, suspend).unwrap();
    let suspended = state.clone().unwrap();
    assert_eq!(suspended.status, MerchantStatus::Suspended);
    assert_eq!(
        suspended.suspension_reason.as_deref(),
        Some("suspected cash-out")
    );
    let (state, _) = step(state, activate()).unwrap();
    let state = state.unwrap();
    assert_eq!(state.status, MerchantStatus::Active);
    assert_eq!(state.suspension_reason, None);
    assert_eq!(state.version, 5);
}

#[test]
fn illegal_transitions_are_refused_with_the_current_status() {
    let id = merchant_id();
    let pending = onboarded();
    let activate = MerchantCommand::Activate {
        merchant_id: id.clone(),
        note: String::new(),
    };
    let err = decide(Some(&pending), activate, &ctx()).unwrap_err();
    assert_eq!(
        err,
        RegistryError::Conflict("merchant 898310048990001 is pending; approve it first".into())
    );
    let suspend = |reason: &str| MerchantCommand::Suspend {
        merchant_id: id.clone(),
        reason: reason.into(),
    };
    let err = decide(Some(&pending), suspend("fraud"), &ctx()).unwrap_err();
    assert!(err.to_string().contains("is pending and cannot trade yet"));
    let approve = || MerchantCommand::Approve {
        merchant_id: id.clone(),
        note: String::new(),
    };
    let (approved, _) = step(Some(pending), approve()).unwrap();
    let err = decide(approved.as_ref(), approve(), &ctx()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "merchant 898310048990001 is already approved"
    );
    let err = decide(approved.as_ref(), suspend("  "), &ctx()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid request: reason: required: why it is suspended"
    );
    // approved merchants may be suspended (management.proto)
    assert!(decide(approved.as_ref(), suspend("fraud"), &ctx()).is_ok());
}

#[test]
fn unknown_and_existing_merchants() {
    let approve = MerchantCommand::Approve {
        merchant_id: merchant_id(),
        note: String::new(),
    };
    let err = decide(None, approve, &ctx()).unwrap_err();
    assert_eq!(err, RegistryError::not_found("merchant", MERCHANT));
    assert_eq!(err.to_string(), "merchant 898310048990001 not found");
    let state = onboarded();
    let err = decide(Some(&state), onboard_command(&micro_request()), &ctx()).unwrap_err();
    assert_eq!(err.to_string(), "merchant 898310048990001 already exists");
}

#[test]
fn fee_schedules_change_from_a_later_business_date() {
    let id = merchant_id();
    let state = Some(onboarded());
    let change = |debit: &str, from: &str| MerchantCommand::ChangeFeeSchedule {
        merchant_id: id.clone(),
        fee_schedule: validate_fee_schedule(Some(&fees(debit, "0.0060"))).unwrap(),
        effective_from: from.into(),
    };
    let err = decide(state.as_ref(), change("0.0040", "2025-03-02"), &ctx()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid request: effective_from: must be a later business date than today (2025-03-02): the fees of a day already trading never change"
    );
    let (state, events) = step(state, change("0.0040", "2025-03-10")).unwrap();
    let [Payload::MerchantFeeScheduleChanged(e)] = events.as_slice() else {
        panic!("expected one change, got {events:?}");
    };
    assert_eq!(
        e.previous_fee_schedule.as_ref().unwrap().debit_rate,
        "0.0050"
    );
    let (state, _) = step(state, change("0.0045", "2025-03-05")).unwrap();
    let state = state.unwrap();
    let debit_on = |date: &str| state.fee_schedule_on(date).unwrap().debit_rate.clone();
    assert_eq!(debit_on("2025-03-04"), "0.0050");
    assert_eq!(debit_on("2025-03-05"), "0.0045");
    // the later change was replaced by the earlier, complete one
    assert_eq!(debit_on("2025-03-20"), "0.0045");
    assert_eq!(state.version, 3);
}

#[test]
fn replaying_the_decided_events_gives_the_same_state() {
    let id = merchant_id();
    let mut state = None;
    let mut all = Vec::new();
    let commands = [
        onboard_command(&micro_request()),
        MerchantCommand::Approve {
            merchant_id: id.clone(),
            note: String::new(),
        },
        MerchantCommand::Activate {
            merchant_id: id.clone(),
            note: String::new(),
        },
    ];
    for command in commands {
        let (next, events) = step(state, command).unwrap();
        state = next;
        all.extend(events);
    }
    // events of other aggregates in the stream are ignored
    all.push(Payload::OperatorLocked(Default::default()));
    let rebuilt = replay(&all);
    assert_eq!(rebuilt, state);
    assert_eq!(rebuilt.unwrap().version, 3);
}
