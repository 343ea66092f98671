//! What operators see: the contract's views of merchants, terminals and operators, built from
//! the aggregates. Personal data appears only masked (as the events carry it).

use pos_proto::v1 as pb;
use pos_registry::merchant::MerchantState;
use pos_registry::operator::OperatorState;
use pos_registry::terminal::TerminalState;

/// The merchant as `posctl merchant show` prints it.
pub fn merchant(state: &MerchantState) -> pb::Merchant {
    let onboarded = &state.onboarded;
    pb::Merchant {
        merchant_id: state.merchant_id.to_string(),
        merchant_type: onboarded.merchant_type,
        status: state.status.to_proto() as i32,
        legal_name: onboarded.legal_name.clone(),
        display_name: onboarded.display_name.clone(),
        city: onboarded.city.clone(),
        business_licence_no: onboarded.business_licence_no.clone(),
        legal_person_name_masked: onboarded.legal_person_name_masked.clone(),
        legal_person_id_masked: onboarded.legal_person_id_masked.clone(),
        settlement_account: onboarded.settlement_account.as_ref().map(|a| {
            pb::SettlementAccountView {
                account_name: a.account_name.clone(),
                account_number_masked: a.account_number_masked.clone(),
                bank_name: a.bank_name.clone(),
                bank_code: a.bank_code.clone(),
            }
        }),
        mcc: state.mcc.to_string(),
        fee_schedule: state
            .fee_schedules
            .last()
            .map(|dated| dated.fee_schedule.clone()),
        trading_hours: onboarded.trading_hours.clone(),
        per_transaction_limit: onboarded.per_transaction_limit.clone(),
        agreement: onboarded.agreement.clone(),
        onboarded_at: None,
        status_changed_at: None,
        suspension_reason: state.suspension_reason.clone().unwrap_or_default(),
        contact_phone_masked: onboarded.contact_phone_masked.clone(),
    }
}

/// The terminal as `posctl terminal show` prints it.
pub fn terminal(state: &TerminalState) -> pb::Terminal {
    pb::Terminal {
        terminal_id: state.terminal_id.to_string(),
        merchant_id: state.merchant_id.to_string(),
        state: state.status.to_proto() as i32,
        serial_number: state
            .bound_serial
            .clone()
            .unwrap_or_else(|| state.expected_serial.clone()),
        model: state.model.clone(),
        location: state.location.clone(),
        registered_at: None,
        activated_at: None,
        tmk_check_value: state
            .tmk
            .as_ref()
            .map(|tmk| tmk.check_value_hex())
            .unwrap_or_default(),
        suspension_reason: state.suspension_reason.clone().unwrap_or_default(),
    }
}

/// An operator as `posctl operator list` prints it.
pub fn operator(state: &OperatorState) -> pb::Operator {
    pb::Operator {
        operator: Some(pb::OperatorRef {
            terminal_id: state.key.terminal_id.to_string(),
            operator_no: state.key.operator_no.to_string(),
        }),
        role: state.role.to_proto() as i32,
        locked: state.locked,
        failed_attempts: state.failed_attempts,
        must_change_password: state.must_change_password,
        created_at: None,
        last_login_at: None,
    }
}
