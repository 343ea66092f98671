//! How posctl prints what the platform answers: `key: value` lines a person can read and a
//! script can grep. Sensitive values arrive masked from the gateway and are printed as they are.

use pos_proto::v1 as pb;

fn time(ts: Option<&prost_types::Timestamp>) -> String {
    ts.map_or_else(|| "-".to_owned(), |t| format!("{}", t.seconds))
}

fn money(m: Option<&pb::Money>) -> String {
    m.map_or_else(
        || "-".to_owned(),
        |m| {
            let sign = if m.minor_units < 0 { "-" } else { "" };
            let abs = m.minor_units.unsigned_abs();
            format!("{sign}{}.{:02} {}", abs / 100, abs % 100, m.currency)
        },
    )
}

fn status_name(status: i32) -> &'static str {
    match pb::MerchantStatus::try_from(status) {
        Ok(pb::MerchantStatus::Pending) => "pending",
        Ok(pb::MerchantStatus::Approved) => "approved",
        Ok(pb::MerchantStatus::Active) => "active",
        Ok(pb::MerchantStatus::Suspended) => "suspended",
        _ => "unknown",
    }
}

fn terminal_state(state: i32) -> &'static str {
    match pb::TerminalState::try_from(state) {
        Ok(pb::TerminalState::Registered) => "registered",
        Ok(pb::TerminalState::Active) => "active",
        Ok(pb::TerminalState::Suspended) => "suspended",
        _ => "unknown",
    }
}

/// A merchant, in full.
pub fn merchant(m: &pb::Merchant) {
    let kind = match pb::MerchantType::try_from(m.merchant_type) {
        Ok(pb::MerchantType::Micro) => "micro",
        Ok(pb::MerchantType::Enterprise) => "enterprise",
        _ => "unknown",
    };
    println!("merchant_id: {}", m.merchant_id);
    println!("status: {}", status_name(m.status));
    println!("type: {kind}");
    println!("legal_name: {}", m.legal_name);
    println!("display_name: {}", m.display_name);
    println!("city: {}", m.city);
    if !m.business_licence_no.is_empty() {
        println!("business_licence: {}", m.business_licence_no);
    }
    println!("legal_person: {}", m.legal_person_name_masked);
    println!("legal_person_id: {}", m.legal_person_id_masked);
    if let Some(account) = &m.settlement_account {
        println!(
            "settlement_account: {} {} ({})",
            account.bank_name, account.account_number_masked, account.account_name
        );
    }
    println!("mcc: {}", m.mcc);
    if let Some(fees) = &m.fee_schedule {
        println!(
            "fees: debit {} cap {}, credit {} cap {}",
            fees.debit_rate,
            money(fees.debit_cap.as_ref()),
            fees.credit_rate,
            money(fees.credit_cap.as_ref())
        );
    }
    println!(
        "limit_per_transaction: {}",
        money(m.per_transaction_limit.as_ref())
    );
    if !m.suspension_reason.is_empty() {
        println!("suspension_reason: {}", m.suspension_reason);
    }
}

/// A merchant on one line.
pub fn merchant_line(m: &pb::Merchant) {
    println!(
        "{}  {:<9}  {}  {}",
        m.merchant_id,
        status_name(m.status),
        m.city,
        m.display_name
    );
}

/// A terminal with its fleet state when known.
pub fn terminal(t: Option<&pb::Terminal>, status: Option<&pb::TerminalFleetStatus>) {
    let Some(t) = t else {
        println!("terminal: -");
        return;
    };
    println!("terminal_id: {}", t.terminal_id);
    println!("merchant_id: {}", t.merchant_id);
    println!("state: {}", terminal_state(t.state));
    println!("serial_number: {}", t.serial_number);
    println!("tmk_check_value: {}", t.tmk_check_value);
    if !t.suspension_reason.is_empty() {
        println!("suspension_reason: {}", t.suspension_reason);
    }
    if let Some(s) = status {
        println!("connected: {}", s.connected);
        println!("last_seen: {}", time(s.last_seen.as_ref()));
        println!("software_version: {}", s.software_version);
        println!("batch_no: {:06}", s.batch_no);
        println!("signed_in_at: {}", time(s.signed_in_at.as_ref()));
    }
}

/// A terminal on one line.
pub fn terminal_line(t: &pb::Terminal) {
    println!(
        "{}  {}  {:<10}  {}",
        t.terminal_id,
        t.merchant_id,
        terminal_state(t.state),
        t.serial_number
    );
}

/// A freshly issued activation code (shown once; the platform keeps only its hash).
pub fn activation_code(code: &pb::IssueActivationCodeResponse) {
    println!("terminal_id: {}", code.terminal_id);
    println!("activation_code: {}", code.activation_code);
    println!("expires_at: {}", time(code.expires_at.as_ref()));
    println!("max_attempts: {}", code.max_attempts);
}

/// An operator on one line.
pub fn operator(o: &pb::Operator) {
    let (terminal, number) = o.operator.as_ref().map_or(("-", "-"), |r| {
        (r.terminal_id.as_str(), r.operator_no.as_str())
    });
    println!(
        "{terminal} operator {number}: {}{}, failed attempts {}",
        if o.locked { "locked" } else { "unlocked" },
        if o.must_change_password {
            ", must change password"
        } else {
            ""
        },
        o.failed_attempts
    );
}
